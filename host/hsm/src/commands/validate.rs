//! `hsm validate`: load, resolve and plan the project (the plugins merge and plan
//! every service, the host checks their actions), report problems, print no plan.

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::project;

/// Runs `hsm validate`.
pub(crate) fn run(global: &GlobalArgs, out: &Output) -> Result<(), Failure> {
    let planned = project::plan(global, out)?;
    let resolution = &planned.resolution;
    out.status(&format!(
        "`{}` is valid: {} {}, {} {}",
        resolution.project.name,
        resolution.packages.len(),
        plural(resolution.packages.len(), "package"),
        resolution.services.len(),
        plural(resolution.services.len(), "service"),
    ));
    Ok(())
}

pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}
