//! `hsm task PKG NAME`: runs one of a package's tasks now, whatever its `on`,
//! with the package's environment (values, as `hsm run` gives them) in the
//! project's Python environment, from the package's folder; its output is shown
//! redacted, and its result is recorded for `hsm sync` and `hsm status`.

use hsm_exec::env::{EnvContext, unsynced_services, values};
use hsm_exec::state::{Lock, State};
use hsm_exec::sync::Redactor;
use hsm_exec::tasks::{self, TaskRecord};
use hsm_model::{Diagnostic, Sources};
use hsm_plan::Consumer;

use crate::Failure;
use crate::cli::{GlobalArgs, TaskArgs};
use crate::commands::env::consumer;
use crate::engine;
use crate::output::Output;
use crate::project;

/// Runs `hsm task`.
pub(crate) fn run(global: &GlobalArgs, args: &TaskArgs, out: &Output) -> Result<(), Failure> {
    let planned = project::plan(global, out)?;
    consumer(&planned, Some(&args.package))?;
    let Some(task) = planned.plan.tasks.iter().find(|t| t.package == args.package && t.name == args.name) else {
        let names: Vec<&str> =
            planned.plan.tasks.iter().filter(|t| t.package == args.package).map(|t| t.name.as_str()).collect();
        let mut d = Diagnostic::new(format!("package `{}` has no task `{}`", args.package, args.name));
        d = match hsm_config::did_you_mean(&args.name, names.iter().copied()) {
            Some(best) => d.hint(format!("did you mean `{best}`?")),
            None if names.is_empty() => d.hint(
                "declare one under `tasks:` in the package's entry, such as `tasks: { migrate: { run: [alembic, upgrade, head] } }`",
            ),
            None => d.hint(format!("its tasks are {}", hsm_model::names_or_none(names.iter().copied()))),
        };
        return Err(Failure::Input(Sources::new(), d.into()));
    };
    let project = engine::project_id(&planned.resolution);
    let _lock = Lock::acquire(&project, "task").map_err(|e| engine::failure(out, &e))?;
    let mut state = State::load(&project).map_err(|e| engine::failure(out, &e))?;
    let key = engine::key(out)?;
    let secrets = &planned.resolution.secrets;
    let package = Consumer::Package(task.package.clone());
    let cx = EnvContext { project: &project, key: &key, secrets, state: &state };
    if let Some(service) = unsynced_services(&planned.plan, &package, &cx).first() {
        out.error_with(
            &format!("service `{service}` has not been synced yet, so task `{}` can't reach it", task.id()),
            &[],
            Some("run `hsm sync` first"),
        );
        return Err(Failure::Exit(1));
    }
    let env = values(&planned.plan, &package, &cx).map_err(|e| engine::failure(out, &e))?;
    let inputs = tasks::inputs(task, &planned.plan, &project.dir, state.python.as_ref(), &env, &key);
    let redactor = Redactor::new(&planned.plan, &project, &key, secrets);
    out.status(&format!("running task {}: {}", task.id(), task.run.join(" ")));
    let runtime = engine::runtime()?;
    let mut line = |text: &str| {
        let _ = out.data(&format!("{}\n", hsm_model::text::printable(&redactor.apply(text))));
    };
    let ended = runtime.block_on(async {
        tokio::select! {
            r = tasks::run(task, &project.dir, &env, &mut line) => Some(r),
            () = crate::commands::sync::interrupted() => None,
        }
    });
    let Some(ended) = ended else {
        out.error("interrupted: the task was stopped");
        return Err(Failure::Exit(130));
    };
    let before = state.tasks.get(&task.id()).cloned();
    let ended = match ended {
        Ok(end) => end,
        Err(e) => {
            let code = tasks::could_not_start(&e);
            state.tasks.insert(task.id(), TaskRecord::now(false, Some(code), &inputs, before.as_ref()));
            state.save(&project).map_err(|e| engine::failure(out, &e))?;
            out.error_with(
                &format!("cannot run `{}`: {e}", task.run[0]),
                &[],
                Some("check the command's name; it is looked up on `PATH`, with `.venv/bin` first"),
            );
            return Err(Failure::Exit(u8::try_from(code).unwrap_or(1)));
        }
    };
    // What it depends on as it left it (files it wrote in its package's folder).
    let inputs = if ended.ok() {
        tasks::inputs(task, &planned.plan, &project.dir, state.python.as_ref(), &env, &key)
    } else {
        inputs
    };
    state.tasks.insert(task.id(), TaskRecord::now(ended.ok(), ended.code, &inputs, before.as_ref()));
    state.save(&project).map_err(|e| engine::failure(out, &e))?;
    if ended.ok() {
        out.status(&format!("task {} succeeded", task.id()));
        Ok(())
    } else {
        let code = ended.code.map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
        out.error(&format!("task `{}` failed with {code}", task.id()));
        Err(Failure::Exit(ended.code.and_then(|c| u8::try_from(c).ok()).filter(|c| *c != 0).unwrap_or(1)))
    }
}
