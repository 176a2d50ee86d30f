//! What the commands that touch the Docker engine share: the async runtime, the
//! user's key, the project's identity on the engine, and how execution errors are
//! shown (message, a container's last log lines, a `hint:` line).

use hsm_exec::names::ProjectId;
use hsm_key::{KeyError, UserKey};
use hsm_model::Explain;
use hsm_resolve::Resolution;

use crate::Failure;
use crate::output::Output;

/// A single-threaded runtime: hsm's work is waiting on Docker, probes and uv.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Job(format!("cannot start the async runtime: {e}")))
}

/// The user's key, created on first use.
pub(crate) fn key(out: &Output) -> Result<UserKey, Failure> {
    UserKey::load_default().map_err(|e| failure(out, &KeyError(e)))
}

/// The project as the engine knows it.
pub(crate) fn project_id(resolution: &Resolution) -> ProjectId {
    ProjectId::new(resolution.project.name.clone(), &resolution.project.dir)
}

/// Shows an error as every error is shown (its message, the causes its message
/// does not already say, the lines below it, a `hint:`) and returns the failure to
/// exit with: 2 when the user's input was wrong and nothing was changed, else 1.
pub(crate) fn failure(out: &Output, e: &dyn Explain) -> Failure {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !message.contains(&said) {
            message = format!("{message}: {said}");
        }
        cause = c.source();
    }
    out.error_details(&message, e.details_title().as_deref(), e.details(), e.hint().as_deref());
    Failure::Exit(if e.is_input() { 2 } else { 1 })
}
