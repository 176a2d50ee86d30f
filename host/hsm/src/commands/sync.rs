//! `hsm sync`: plan the project, then make the Docker engine (and the Python
//! environment) match the plan. Nothing is touched when the input is invalid:
//! planning, which checks everything, comes first. Ctrl-C stops cleanly: what was
//! done is recorded, and the next `hsm sync` finishes the job.

use std::time::Instant;

use hsm_exec::docker::Docker;
use hsm_exec::error::ExecError;
use hsm_exec::report::Change;
use hsm_exec::state::{Lock, State};
use hsm_exec::sync::{Context, SyncOptions, Syncer};
use hsm_model::Explain;
use serde::Serialize;

use crate::Failure;
use crate::cli::{GlobalArgs, SyncArgs};
use crate::engine;
use crate::output::{Output, Style, paint};
use crate::progress::Progress;
use crate::project;

/// The `--json` summary.
#[derive(Serialize)]
struct Summary<'a> {
    project: &'a str,
    /// Whether everything is in place and ready.
    ok: bool,
    /// Whether Ctrl-C stopped the run.
    interrupted: bool,
    /// Whether anything changed.
    changed: bool,
    changes: &'a [Change],
    services: Vec<ServiceSummary<'a>>,
    errors: Vec<ErrorSummary>,
    duration_ms: u128,
}

#[derive(Serialize)]
struct ServiceSummary<'a> {
    name: &'a str,
    kind: &'a str,
    mode: hsm_plan::Mode,
    profile: &'a str,
}

#[derive(Serialize)]
struct ErrorSummary {
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
}

enum Ran {
    Done(Vec<ExecError>),
    Failed(ExecError),
    Interrupted,
}

/// Runs `hsm sync`.
pub(crate) fn run(global: &GlobalArgs, args: &SyncArgs, out: &Output) -> Result<(), Failure> {
    let started = Instant::now();
    let planned = project::plan(global, out)?;
    let project = engine::project_id(&planned.resolution);
    let _lock = Lock::acquire(&project, "sync").map_err(|e| engine::failure(out, &e))?;
    let key = engine::key(out)?;
    let state = State::load(&project).map_err(|e| engine::failure(out, &e))?;
    let loaded = state.clone();
    let progress = Progress::new(out);
    let runtime = engine::runtime()?;
    let options =
        SyncOptions { prune_volumes: args.prune_volumes, wait_timeout_ms: args.wait_timeout.map(|s| s * 1000) };

    let (ran, state, changes) = runtime.block_on(async {
        let docker = tokio::select! {
            d = Docker::connect() => d,
            () = interrupted() => return (Ran::Interrupted, None, Vec::new()),
        };
        let docker = match docker {
            Ok(d) => d,
            Err(e) => return (Ran::Failed(e), None, Vec::new()),
        };
        out.verbose(&format!("connected to the Docker engine at {}", docker.host()));
        let cx =
            Context { project: project.clone(), key: &key, secrets: &planned.resolution.secrets, reporter: &progress };
        let syncer = Syncer::new(docker, &planned.plan, cx, state, options);
        let ran = tokio::select! {
            r = syncer.run() => match r {
                Ok(failures) => Ran::Done(failures),
                Err(e) => Ran::Failed(e),
            },
            () = interrupted() => Ran::Interrupted,
        };
        let (state, changes) = syncer.finish();
        (ran, Some(state), changes)
    });
    progress.clear();
    // Written only when it changed (or was never written): a no-op sync writes nothing.
    let unchanged = state.as_ref() == Some(&loaded) && hsm_exec::state::state_path(&project).is_file();
    if let Some(state) = &state
        && !unchanged
        && let Err(e) = state.save(&project)
    {
        return Err(engine::failure(out, &e));
    }

    let errors: Vec<&ExecError> = match &ran {
        Ran::Done(failures) => failures.iter().collect(),
        Ran::Failed(e) => vec![e],
        Ran::Interrupted => Vec::new(),
    };
    let interrupted = matches!(ran, Ran::Interrupted);
    if args.json {
        let summary = Summary {
            project: &project.name,
            ok: errors.is_empty() && !interrupted,
            interrupted,
            changed: !changes.is_empty(),
            changes: &changes,
            services: planned
                .plan
                .services
                .iter()
                .map(|s| ServiceSummary { name: &s.name, kind: &s.kind, mode: s.mode, profile: &s.profile })
                .collect(),
            errors: errors.iter().map(|e| ErrorSummary { message: e.to_string(), hint: e.hint() }).collect(),
            duration_ms: started.elapsed().as_millis(),
        };
        out.json(&summary)?;
    }
    let mut exit = None;
    for e in &errors {
        let Failure::Exit(code) = engine::failure(out, *e) else { unreachable!("exec failures exit with a code") };
        exit = Some(exit.map_or(code, |c: u8| c.min(code)));
    }
    if interrupted {
        out.error_with(
            &match changes.len() {
                0 => "interrupted before any change".to_string(),
                n => format!("interrupted after {}", plural_changes(n)),
            },
            &[],
            Some("run `hsm sync` again to finish: it continues from where this one stopped"),
        );
        return Err(Failure::Exit(130));
    }
    if let Some(code) = exit {
        return Err(Failure::Exit(code));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let services = planned.plan.services.len();
    let name = paint(out.color_err(), Style::Name, &project.name);
    if changes.is_empty() {
        out.status(&format!("{name} is up to date: {services} {} ({elapsed:.2}s)", noun(services, "service")));
    } else {
        out.status(&format!("synced {name}: {} in {elapsed:.1}s", plural_changes(changes.len())));
    }
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM: either stops the sync cleanly.
pub(crate) async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn plural_changes(n: usize) -> String {
    match n {
        0 => "no changes".to_string(),
        1 => "1 change".to_string(),
        n => format!("{n} changes"),
    }
}

fn noun(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}
