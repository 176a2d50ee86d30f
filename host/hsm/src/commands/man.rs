//! `hsm man` (hidden): the manual page hsm(1), in roff, generated from the clap
//! definitions so that it says what `--help` says; packagers install it with
//! `hsm man > hsm.1`.

use clap::CommandFactory as _;

use crate::Failure;
use crate::cli::Cli;
use crate::output::Output;

/// Runs `hsm man`.
pub(crate) fn run(out: &Output) -> Result<(), Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Failure::Job(format!("cannot render the manual page: {e}")))?;
    out.data(&String::from_utf8_lossy(&page))
}
