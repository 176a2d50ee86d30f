//! What a sync did to the venv and, for `hsm status`, how the venv and each
//! asked-for package stand, by the same check a sync makes.

use std::fmt;

use hsm_plan::PythonPackage;
use serde::Serialize;

use super::site::{self, Health};
use super::wanted::{check, inspect};
use super::{PythonEnv, PythonState};

/// Why a package is (re)installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum InstallReason {
    /// hsm has not installed it before.
    New,
    /// hsm installed it, but it is no longer in the venv.
    Gone,
    /// hsm.yaml asks for it from another source than the one it came from.
    SourceChanged,
    /// Its build configuration (`pyproject.toml`, `setup.py`, `setup.cfg`) changed.
    BuildChanged,
    /// Something other than hsm changed it in the venv.
    ChangedOutsideHsm(String),
}

impl fmt::Display for InstallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallReason::New => f.write_str("not installed yet"),
            InstallReason::Gone => f.write_str("no longer in the environment"),
            InstallReason::SourceChanged => f.write_str("its source changed"),
            InstallReason::BuildChanged => f.write_str("its build configuration changed"),
            InstallReason::ChangedOutsideHsm(what) => write!(f, "changed outside hsm: {what}"),
        }
    }
}

/// What a sync changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PythonChanges {
    /// Whether the venv was created or recreated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venv: Option<VenvChange>,
    /// Packages installed or reinstalled, in hsm.yaml's order.
    pub installed: Vec<PackageChange>,
    /// Packages uninstalled because hsm.yaml no longer asks for them.
    pub uninstalled: Vec<RemovedPackage>,
    /// Packages hsm.yaml no longer asks for that stay, because another installed
    /// distribution requires them; hsm no longer counts them as its own.
    pub kept: Vec<KeptPackage>,
}

impl PythonChanges {
    /// Whether the sync changed nothing.
    pub fn is_empty(&self) -> bool {
        self.venv.is_none() && self.installed.is_empty() && self.uninstalled.is_empty() && self.kept.is_empty()
    }
}

/// What happened to the venv itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VenvChange {
    /// There was none: uv created it.
    Created,
    /// Its interpreter was gone: uv recreated it, empty.
    Recreated,
}

/// A package a sync installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// Its name in hsm.yaml.
    pub name: String,
    /// Its distribution name.
    pub distribution: String,
    /// The version now installed.
    pub version: Option<String>,
    /// Why it was installed.
    pub reason: InstallReason,
}

/// A package a sync uninstalled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemovedPackage {
    /// Its name in hsm.yaml, before it was removed from there.
    pub name: String,
    /// Its distribution name.
    pub distribution: String,
    /// The version that was installed.
    pub version: Option<String>,
}

/// A package no longer asked for that stays installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptPackage {
    /// Its name in hsm.yaml, before it was removed from there.
    pub name: String,
    /// Its distribution name.
    pub distribution: String,
    /// The installed distributions that require it.
    pub required_by: Vec<String>,
}

/// For `hsm status`: the venv and each asked-for package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PythonStatus {
    /// The venv.
    pub venv: VenvStatus,
    /// Each package hsm.yaml asks for, in its order.
    pub packages: Vec<PackageStatus>,
    /// Packages hsm installed that hsm.yaml no longer asks for: the next sync
    /// uninstalls them (or keeps them, when something still requires them).
    pub removed: Vec<String>,
}

/// The state of the venv.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VenvStatus {
    /// Present and usable.
    Ready,
    /// Not created yet.
    Missing,
    /// Its interpreter is gone: the next sync recreates it.
    Broken,
    /// The folder exists but is not a venv: sync refuses to touch it.
    NotAVenv,
}

/// The state of one asked-for package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageStatus {
    /// Its name in hsm.yaml.
    pub name: String,
    /// Its distribution name, when known.
    pub distribution: Option<String>,
    /// The version hsm installed, when installed.
    pub version: Option<String>,
    /// Installed, missing or stale.
    pub state: PackageState,
}

/// Whether an asked-for package is in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum PackageState {
    /// Installed from the asked-for source: a sync leaves it alone.
    Installed,
    /// Not installed: the next sync installs it.
    Missing,
    /// Installed, but not as asked: the next sync reinstalls it.
    Stale {
        /// Why.
        reason: InstallReason,
    },
    /// hsm.yaml's entry can't be installed as it is (a sync would fail).
    Invalid {
        /// Why.
        message: String,
    },
}

/// For `hsm status`: which asked-for packages are installed, missing or stale,
/// by the same check a sync makes. Runs no process.
pub fn status(env: &PythonEnv, desired: &[PythonPackage], state: &PythonState) -> PythonStatus {
    let venv = match site::health(&env.venv) {
        Health::Ready => VenvStatus::Ready,
        Health::Missing => VenvStatus::Missing,
        Health::Broken => VenvStatus::Broken,
        Health::NotAVenv => VenvStatus::NotAVenv,
    };
    let site_dir = if venv == VenvStatus::Ready { site::site_packages(&env.venv).ok().flatten() } else { None };
    let packages = desired
        .iter()
        .map(|p| {
            let entry = state.packages.get(&p.name);
            let (distribution, state) = match inspect(p, &env.project_dir) {
                Err(e) => (None, PackageState::Invalid { message: e.to_string() }),
                Ok(w) => {
                    let state = match check(&w, entry, site_dir.as_deref()) {
                        Ok(()) => PackageState::Installed,
                        Err(InstallReason::New | InstallReason::Gone) => PackageState::Missing,
                        Err(reason) => PackageState::Stale { reason },
                    };
                    (w.distribution.or_else(|| entry.map(|e| e.distribution.clone())), state)
                }
            };
            let version = match state {
                PackageState::Installed | PackageState::Stale { .. } => entry.and_then(|e| e.version.clone()),
                _ => None,
            };
            PackageStatus { name: p.name.clone(), distribution, version, state }
        })
        .collect();
    let removed = state.packages.keys().filter(|name| !desired.iter().any(|p| &p.name == *name)).cloned().collect();
    PythonStatus { venv, packages, removed }
}
