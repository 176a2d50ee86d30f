//! What a plugin may ask the host to do, named once for every stage: the project
//! grants capabilities in `hsm.yaml` (hsm-config), plugins declare them and the
//! host checks them (hsm-runtime).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A capability a plugin may declare and a project may grant. An action needs its
/// capability both declared by the plugin and granted to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Run, replace and remove its own containers, with named volumes and ports.
    Containers,
    /// Run commands inside its own containers.
    Exec,
    /// Install Python packages into the project's environment.
    UvInstall,
    /// Write files under `.hsm/<plugin>/` and mount them into its containers.
    Files,
    /// Wait for hosts other than its own containers to answer.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_those_of_hsm_yaml() {
        for c in Capability::ALL {
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{}\"", c.as_str()));
        }
    }
}
