//! The `hsm` command line: parses arguments, runs one subcommand, renders what the
//! library crates return (diagnostics on stderr, data on stdout) and maps the outcome
//! to an exit code: 0 ok, 1 the job failed, 2 bad input or usage.

mod cli;
mod commands;
mod engine;
mod output;
mod progress;
mod project;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::output::Output;

/// How a command can fail.
pub(crate) enum Failure {
    /// The input (files, arguments) is wrong; the diagnostics say how.
    Input(hsm_model::Sources, hsm_model::Diagnostics),
    /// The job itself failed (writing output, say).
    Job(String),
    /// Already reported; exit with this code (1 for a failed job, 130 after Ctrl-C,
    /// a command's own code for `hsm run`).
    Exit(u8),
}

/// Whether a command line may ask for a command that plans the project (most do),
/// guessed from its words before they are parsed: help, the version and the
/// commands that plan nothing don't need the plugin engine. A wrong guess only
/// costs or saves a fraction of a millisecond: a host waits for the engine it needs.
fn may_plan(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    const PLAN_NOTHING: &[&str] =
        &["-h", "--help", "help", "-V", "--version", "init", "schema", "man", "completions", "down", "lock"];
    let mut words = args.take_while(|a| a != "--");
    !words.any(|a| PLAN_NOTHING.iter().any(|w| a == *w))
}

fn main() -> ExitCode {
    // A dynamic completion script asking for candidates: answered, and exits.
    commands::completions::answer_if_asked();
    // Most commands plan the project, which needs the plugin engine: it is made
    // while the arguments and files are read.
    if may_plan(std::env::args_os().skip(1)) {
        hsm_runtime::PluginHost::prepare_in_background();
    }
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout and usage errors to stderr, and
            // picks the exit code (0 or 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    // `hsm sync` and `hsm lock` write `hsm.lock`; other commands only read it.
    match &cli.command {
        Command::Sync(_) => cli.global.lock.write = true,
        Command::Lock(args) => {
            cli.global.lock.write = true;
            cli.global.lock.update = args.update.then(|| args.registries.clone());
        }
        _ => {}
    }
    let out = Output::new(&cli.global);
    let result = match &cli.command {
        Command::Init => commands::init::run(&cli.global, &out),
        Command::Validate => commands::validate::run(&cli.global, &out),
        Command::Plan(args) => commands::plan::run(&cli.global, args, &out),
        Command::Schema(args) => commands::schema::run(args, &out),
        Command::Plugin(command) => commands::plugin::run(&cli.global, command, &out),
        Command::Sync(args) => commands::sync::run(&cli.global, args, &out),
        Command::Lock(args) => commands::lock::run(&cli.global, args, &out),
        Command::Env(args) => commands::env::run(&cli.global, args, &out),
        Command::Run(args) => commands::run::run(&cli.global, args, &out),
        Command::Status(args) => commands::status::run(&cli.global, args, &out),
        Command::Task(args) => commands::task::run(&cli.global, args, &out),
        Command::Logs(args) => commands::logs::run(&cli.global, args, &out),
        Command::Down(args) => commands::down::run(&cli.global, args, &out),
        Command::Export(command) => commands::export::run(&cli.global, command, &out),
        Command::Completions(args) => commands::completions::run(args, &out),
        Command::Man => commands::man::run(&out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(sources, diags)) => {
            out.diagnostics(&sources, &diags);
            ExitCode::from(2)
        }
        Err(Failure::Job(message)) => {
            out.error(&message);
            ExitCode::from(1)
        }
        Err(Failure::Exit(code)) => ExitCode::from(code),
    }
}

#[cfg(test)]
mod tests {
    use super::may_plan;

    fn words(line: &str) -> impl Iterator<Item = std::ffi::OsString> {
        line.split_whitespace().map(std::ffi::OsString::from).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn the_engine_is_made_early_for_the_commands_that_plan() {
        for line in ["plan", "-C dir -q sync", "run app -- man ls", "env app", "plugin list", "status"] {
            assert!(may_plan(words(line)), "{line}");
        }
        for line in ["--version", "-C dir init", "help plan", "down", "lock --update", "schema", "plan --help"] {
            assert!(!may_plan(words(line)), "{line}");
        }
    }
}
