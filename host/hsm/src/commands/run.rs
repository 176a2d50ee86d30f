//! `hsm run PKG -- CMD…`: runs a command with the package's environment (values,
//! not references) and, when the project has one, inside its Python environment
//! (as `.venv/bin/activate` would). hsm replaces itself with the command, so its
//! exit code, signals and terminal are the command's own.

use std::os::unix::process::CommandExt;
use std::process::Command;

use hsm_exec::env::{EnvContext, unsynced_services, values};
use hsm_exec::state::State;

use crate::Failure;
use crate::cli::{GlobalArgs, RunArgs};
use crate::commands::env::consumer;
use crate::engine;
use crate::output::Output;
use crate::project;

/// Runs `hsm run`.
pub(crate) fn run(global: &GlobalArgs, args: &RunArgs, out: &Output) -> Result<(), Failure> {
    // Only what the package's environment needs is planned.
    let scope = hsm_planner::Scope::UsedBy(&args.package);
    let planned = project::plan_scoped(global, out, hsm_planner::Reach::Local, scope)?;
    let consumer = consumer(&planned, Some(&args.package))?;
    let project = engine::project_id(&planned.resolution);
    let state = State::load(&project).map_err(|e| engine::failure(out, &e))?;
    let key = engine::key(out)?;
    let cx = EnvContext { project: &project, key: &key, secrets: &planned.resolution.secrets, state: &state };
    if let Some(service) = unsynced_services(&planned.plan, &consumer, &cx).first() {
        out.error_with(
            &format!("service `{service}` has not been synced yet, so `{}` can't reach it", args.package),
            &[],
            Some("run `hsm sync` first"),
        );
        return Err(Failure::Exit(1));
    }
    let vars = values(&planned.plan, &consumer, &cx).map_err(|e| engine::failure(out, &e))?;
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut cmd = Command::new(program);
    cmd.args(rest);
    // The plan's variables first, so that the venv's own (`PATH`, `VIRTUAL_ENV`)
    // win over anything a plan could hold.
    for (name, value) in &vars {
        cmd.env(name, value.expose());
    }
    hsm_exec::uv::activate(&mut cmd, &project.dir);
    out.verbose(&format!("running `{}` with {} variables from the plan", args.command.join(" "), vars.len()));
    // Only returns on failure.
    let e = cmd.exec();
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    out.error_with(
        &format!("cannot run `{program}`: {e}"),
        &[],
        (code == 127).then_some(
            "check the command's name; it is looked up on `PATH` (with `.venv/bin` first when the project has one)",
        ),
    );
    Err(Failure::Exit(code))
}
