//! What the commands that touch the Docker engine share: the async runtime, the
//! user's key, the project's identity on the engine, and how execution errors are
//! shown (message, a container's last log lines, a `hint:` line).

use hsm_exec::error::ExecError;
use hsm_exec::keys::UserKey;
use hsm_exec::names::ProjectId;
use hsm_exec::state::StateError;
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
pub(crate) fn key() -> Result<UserKey, Failure> {
    UserKey::load_default().map_err(|e| Failure::Job(format!("cannot read hsm's key: {e}")))
}

/// The project as the engine knows it.
pub(crate) fn project_id(resolution: &Resolution) -> ProjectId {
    ProjectId::new(resolution.project.name.clone(), &resolution.project.dir)
}

/// Shows an execution error and returns the failure to exit with.
pub(crate) fn exec_failure(out: &Output, e: &ExecError) -> Failure {
    out.error_details(&e.to_string(), e.details_title().as_deref(), e.details(), e.hint().as_deref());
    Failure::Exit(if e.is_input() { 2 } else { 1 })
}

/// Shows a state or lock error and returns the failure to exit with.
pub(crate) fn state_failure(out: &Output, e: &StateError) -> Failure {
    out.error_with(&e.to_string(), &[], e.hint().as_deref());
    Failure::Exit(1)
}
