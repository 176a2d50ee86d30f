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

/// What a plugin may be granted: defined once, in hsm-model, for the project's
/// grants and the host's checks alike.
pub use hsm_model::Capability;

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
