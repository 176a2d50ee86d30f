//! The project's Python packages, installed with uv into the project's `.venv`.
//! This is the one place hsm runs uv: it decides what is already in place (from
//! hsm's state and the venv's files, without starting a process), installs what is
//! missing or changed in one uv transaction, and uninstalls what hsm installed
//! earlier and hsm.yaml no longer asks for — never anything the user installed.
//! `docs/python.md` describes the behaviour for users.
//!
//! One file per job: `locate` finds uv (`bootstrap` installs a pinned one when
//! there is none), `process` runs and stops
//! it, `venv` is the environment itself, `state` what hsm remembers between
//! runs, `wanted` looks at each asked-for package and checks whether it is in
//! place, `install` makes the venv match, `report` says what happened (and what
//! `hsm status` shows), `error` why it failed.

mod bootstrap;
mod error;
mod install;
mod locate;
mod names;
mod process;
mod project;
mod report;
mod site;
mod state;
mod venv;
mod wanted;

pub use self::bootstrap::UV_VERSION;
pub use self::error::UvError;
pub use self::install::sync;
pub use self::locate::UV_ENV_VAR;
pub use self::process::StopOnDrop;
pub use self::project::distribution_name;
pub use self::report::{
    InstallReason, KeptPackage, PackageChange, PackageState, PackageStatus, PythonChanges, PythonStatus,
    RemovedPackage, VenvChange, VenvStatus, status,
};
pub use self::state::{InstalledPackage, InstalledSource, PythonState};
pub use self::venv::{ACTIVATION_UNSET, PythonEnv, VENV_DIR, activate, activation_env, venv_exists};

/// The project's Python environment with uv found as [`PythonEnv::new`] finds it,
/// else the pinned uv hsm installed into its cache folder, else, when `installing`
/// is given, that uv installed now (`installing` is told first: it takes seconds).
pub fn python_env(project_dir: &std::path::Path, installing: Option<&dyn Fn(&str)>) -> Result<PythonEnv, UvError> {
    match PythonEnv::new(project_dir, None) {
        Err(UvError::UvNotFound) => {
            let env = |k: &str| std::env::var(k).ok();
            let Some(cache) = hsm_key::cache_dir(&env) else { return Err(UvError::UvNotFound) };
            let uv = match (bootstrap::cached(&cache), installing) {
                (Some(uv), _) => uv,
                (None, None) => return Err(UvError::UvNotFound),
                (None, Some(installing)) => {
                    installing(&format!(
                        "uv is not on PATH: installing uv {UV_VERSION} from PyPI into {}",
                        cache.join("uv").display()
                    ));
                    bootstrap::install(&cache)?
                }
            };
            PythonEnv::new(project_dir, Some(uv))
        }
        other => other,
    }
}
