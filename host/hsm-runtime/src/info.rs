//! What a plugin says about itself and where it came from: the public face of a
//! loaded plugin, shown by `hsm plugin check` and used to check its actions.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// Where a plugin came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "path")]
pub enum PluginSource {
    /// Compiled into hsm.
    Bundled,
    /// A component file.
    File(PathBuf),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundled => f.write_str("bundled"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A capability a plugin may declare and be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Its own containers, volumes and published ports.
    Containers,
    /// Commands in its own containers.
    Exec,
    /// Python packages into the project's environment.
    UvInstall,
    /// Files under `.hsm/<plugin>/`.
    Files,
    /// Probes of hosts other than its own containers.
    NetworkProbe,
}

impl Capability {
    /// Every capability.
    pub const ALL: [Capability; 5] = [Self::Containers, Self::Exec, Self::UvInstall, Self::Files, Self::NetworkProbe];

    /// The name used in hsm.yaml and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::Exec => "exec",
            Self::UvInstall => "uv-install",
            Self::Files => "files",
            Self::NetworkProbe => "network-probe",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter or setting a plugin reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    /// The key.
    pub name: String,
    /// What it means.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
}

/// A variable a plugin declares it sets in its consumers' environments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VariableSpec {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub description: String,
}

/// What a plugin says about itself (checked when it is loaded).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The kinds it serves.
    pub kinds: Vec<String>,
    /// The parameters it reads.
    pub params: Vec<ParamSpec>,
    /// The external settings it reads.
    pub settings: Vec<ParamSpec>,
    /// The capabilities it needs.
    pub capabilities: BTreeSet<Capability>,
    /// The variables it sets in consumers' environments, when its WIT version
    /// lets it declare them (0.3.0 and later); `None` for older plugins, which may
    /// set only the variables `hsm.yaml` grants them by name.
    pub variables: Option<Vec<VariableSpec>>,
}

impl PluginInfo {
    /// Whether it declares `name` among its variables.
    pub fn declares_variable(&self, name: &str) -> bool {
        self.variables.iter().flatten().any(|v| v.name == name)
    }
}
