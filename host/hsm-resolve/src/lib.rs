//! Resolution: from the packages a project asks for to the full set of packages
//! (following implications, transitively) and the service instances they need, each
//! with the contributions that asked for it (who, which params, written where) and
//! the profile chosen for it.
//!
//! Only what the project uses is interpolated, so a registry profile or package the
//! project does not select never needs its variables. Merging the contributions to
//! one service is the plugins' job, not this crate's: they stay separate here.

mod resolve;

use std::path::PathBuf;

use hsm_config::Mode;
use hsm_model::{Origin, SecretStore, Span, Value};
use serde::Serialize;

pub use resolve::{ResolveOptions, resolve};

/// A resolved project: what the next stage (the plugins) consumes.
#[derive(Debug, Serialize)]
pub struct Resolution {
    /// The project.
    pub project: ProjectInfo,
    /// Every package to install, in the order first seen (the project's list, each
    /// followed by what it implies).
    pub packages: Vec<ResolvedPackage>,
    /// Every service instance, by name.
    pub services: Vec<ServiceInstance>,
    /// The values of the secrets that the texts in this resolution refer to.
    #[serde(skip)]
    pub secrets: SecretStore,
}

/// The project itself.
#[derive(Debug, Serialize)]
pub struct ProjectInfo {
    /// Its name.
    pub name: String,
    /// The folder that holds `hsm.yaml`.
    #[serde(skip)]
    pub dir: PathBuf,
    /// `hsm.yaml` as shown to the user.
    pub file: String,
}

/// A package to install.
#[derive(Debug, Serialize)]
pub struct ResolvedPackage {
    /// Its name.
    pub name: String,
    /// Where it comes from; `None` for a package that only implies others.
    pub source: Option<PackageSource>,
    /// Who asked for it.
    pub requested_by: Vec<Requester>,
    /// Where it is defined.
    pub origin: Origin,
    /// The packages it implies directly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub implies: Vec<String>,
    /// Its tasks, in the order written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
}

/// A package's task.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    /// Its name.
    pub name: String,
    /// The program and its arguments.
    pub run: Vec<String>,
    /// Whether it runs only from `hsm task`.
    pub on_demand: bool,
    /// Where it is defined.
    pub origin: Origin,
}

/// Where a package is installed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum PackageSource {
    /// PyPI.
    Pypi {
        /// A PEP 508 requirement.
        requirement: String,
    },
    /// A local folder (checked to exist).
    Path {
        /// The folder, absolute.
        path: PathBuf,
        /// The folder relative to the project, as shown to the user.
        display: String,
        /// Whether uv installs it as an editable link.
        editable: bool,
    },
}

/// Who asked for a package or a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Requester {
    /// `hsm.yaml`.
    Project,
    /// A package, through its implications.
    Package(String),
}

/// One service the project needs.
#[derive(Debug, Serialize)]
pub struct ServiceInstance {
    /// Its name.
    pub name: String,
    /// The plugin that handles it.
    pub kind: String,
    /// The registry's default params, interpolated.
    pub defaults: Value,
    /// The profile chosen for it.
    pub profile: ChosenProfile,
    /// What each requester asked of it, kept separate for the plugin to merge.
    pub contributions: Vec<Contribution>,
    /// The packages that imply it directly, in the order first seen.
    pub consumers: Vec<String>,
}

/// The profile a service uses.
#[derive(Debug, Serialize)]
pub struct ChosenProfile {
    /// Its name.
    pub name: String,
    /// Managed or external.
    pub mode: Mode,
    /// This profile's settings for this service, interpolated: connection settings
    /// (external) or param overrides (managed); an empty map when it has none.
    pub settings: Value,
    /// Where the choice was made.
    pub chosen_by: Origin,
    /// Where each of the settings was written (in the registry's profile), in
    /// the resolution's sources.
    #[serde(skip)]
    pub settings_at: Vec<(String, Span)>,
}

/// What one requester asked of a service.
#[derive(Debug, Serialize)]
pub struct Contribution {
    /// Who.
    pub from: Requester,
    /// The params, interpolated (an empty map when none were given).
    pub params: Value,
    /// Where they were written.
    pub origin: Origin,
}

#[cfg(test)]
mod tests;
