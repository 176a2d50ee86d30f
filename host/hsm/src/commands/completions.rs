//! `hsm completions SHELL`: shell completion scripts generated from the clap
//! definitions, so they never drift from the command line. The default script is
//! static (subcommands, options, their values); the `--dynamic` one asks hsm at
//! each completion, which then also offers the current project's package and
//! service names, read from its `hsm.yaml` and registries.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::CompletionCandidate;
use clap_complete::env::Shells;
use hsm_config::{Config, Implies, LoadOptions};

use crate::Failure;
use crate::cli::{Cli, CompletionsArgs};
use crate::output::Output;

/// The variable that makes hsm answer a dynamic script's completion request
/// (`HSM_COMPLETE=bash hsm -- hsm env <TAB>`; a name of its own, so that a `COMPLETE` the user exports for something else never turns hsm into a completer) instead of running a command.
const COMPLETE_VAR: &str = "HSM_COMPLETE";

/// When a dynamic script started hsm to complete a command line, prints the
/// candidates and exits; otherwise returns at once.
pub(crate) fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command).var(COMPLETE_VAR).complete();
}

/// Runs `hsm completions`.
pub(crate) fn run(args: &CompletionsArgs, out: &Output) -> Result<(), Failure> {
    let mut script = Vec::new();
    if args.dynamic {
        let shell = args.shell.to_string();
        let shells = Shells::builtins();
        let Some(registration) = shells.completer(&shell) else {
            return Err(Failure::Job(format!("no dynamic completions for {shell}")));
        };
        registration
            .write_registration(COMPLETE_VAR, "hsm", "hsm", &completer(), &mut script)
            .map_err(|e| Failure::Job(format!("cannot write the completion script: {e}")))?;
    } else {
        clap_complete::generate(args.shell, &mut Cli::command(), "hsm", &mut script);
    }
    out.data(&String::from_utf8_lossy(&script))
}

/// The program a dynamic script runs: `hsm` found on `PATH` when hsm was started
/// that way, else this very executable.
fn completer() -> String {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| OsString::from("hsm"));
    if Path::new(&argv0).components().count() > 1 {
        let path = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&argv0));
        return path.to_string_lossy().into_owned();
    }
    argv0.to_string_lossy().into_owned()
}

/// The project's packages (those `hsm.yaml` lists and those they imply), for
/// `hsm env|run|task PKG`.
pub(crate) fn packages() -> Vec<CompletionCandidate> {
    names().map(|(packages, _)| candidates(packages)).unwrap_or_default()
}

/// The project's services (those `hsm.yaml` lists and those its packages imply),
/// for `hsm logs SERVICE…`.
pub(crate) fn services() -> Vec<CompletionCandidate> {
    names().map(|(_, services)| candidates(services)).unwrap_or_default()
}

fn candidates(names: BTreeSet<String>) -> Vec<CompletionCandidate> {
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The names of the packages and services of the project on the command line
/// being completed; `None` when its files can't be read. Only the files are read:
/// no plugin runs and nothing is interpolated, so a completion stays fast and works
/// on a project with problems.
fn names() -> Option<(BTreeSet<String>, BTreeSet<String>)> {
    let env: HashMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let git = crate::project::offline_git(&env);
    let options = LoadOptions { project_dir: project_dir(), env, git };
    let (config, _) = hsm_config::load_lenient(&options, &mut hsm_model::Sources::new());
    Some(walk(&config?))
}

/// Every package reachable from the project's list, and every service they or the
/// project ask for.
fn walk(config: &Config) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut packages = BTreeSet::new();
    let mut services: BTreeSet<String> = config.project.services.iter().map(|s| s.name.name.clone()).collect();
    let mut todo: Vec<&str> = Vec::new();
    for request in &config.project.packages {
        todo.push(&request.name.name);
        let implied = request.inline.iter().flat_map(|def| &def.implies);
        note(implied, &mut todo, &mut services);
    }
    while let Some(name) = todo.pop() {
        if packages.insert(name.to_string())
            && let Some(def) = config.packages.get(name)
        {
            note(&def.implies, &mut todo, &mut services);
        }
    }
    (packages, services)
}

fn note<'a>(implies: impl IntoIterator<Item = &'a Implies>, todo: &mut Vec<&'a str>, services: &mut BTreeSet<String>) {
    for implied in implies {
        match implied {
            Implies::Package { name, .. } => todo.push(&name.name),
            Implies::Service { name, .. } => {
                services.insert(name.name.clone());
            }
        }
    }
}

/// The `-C`/`--project-dir` of the command line being completed (the words after
/// `--` in hsm's own arguments), else the current folder.
fn project_dir() -> PathBuf {
    let words: Vec<String> =
        std::env::args_os().skip_while(|a| a != "--").skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let mut dir = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        if word == "-C" || word == "--project-dir" {
            dir = words.next().cloned().or(dir);
        } else if let Some(value) = word.strip_prefix("--project-dir=") {
            dir = Some(value.to_string());
        } else if let Some(value) = word.strip_prefix("-C").filter(|v| !v.is_empty()) {
            dir = Some(value.trim_start_matches('=').to_string());
        }
    }
    let dir = dir.unwrap_or_else(|| ".".into());
    // The shell hands the words over as typed, before it expands `~`.
    match (dir.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(dir),
    }
}
