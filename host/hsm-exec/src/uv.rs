//! The project's Python packages, installed with uv into the project's `.venv`.
//! This is the one place hsm runs uv: it decides what is already in place (from
//! hsm's state and the venv's files, without starting a process), installs what is
//! missing or changed in one uv transaction, and uninstalls what hsm installed
//! earlier and hsm.yaml no longer asks for — never anything the user installed.
//! `docs/python.md` describes the behaviour for users.
//!
//! One file per job: `locate` finds uv, `process` runs and stops
//! it, `venv` is the environment itself, `state` what hsm remembers between
//! runs, `wanted` looks at each asked-for package and checks whether it is in
//! place, `install` makes the venv match, `report` says what happened (and what
//! `hsm status` shows), `error` why it failed.

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

pub use self::error::UvError;
pub use self::install::sync;
pub use self::locate::UV_ENV_VAR;
pub use self::process::StopOnDrop;
pub use self::report::{
    InstallReason, KeptPackage, PackageChange, PackageState, PackageStatus, PythonChanges, PythonStatus,
    RemovedPackage, VenvChange, VenvStatus, status,
};
pub use self::state::{InstalledPackage, InstalledSource, PythonState};
pub use self::venv::{ACTIVATION_UNSET, PythonEnv, VENV_DIR, activate, activation_env, venv_exists};
