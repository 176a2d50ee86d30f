//! What hsm remembers of the packages it installed, kept in the project's state
//! file (`State::python`): the next sync reads it to know what is already in
//! place and what it may uninstall.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What hsm installed into the venv, kept in hsm's state file so that the next
/// sync knows what is already in place and what it may uninstall. Holds no
/// secret: credentials in requirement URLs are replaced by `***`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonState {
    /// The packages hsm installed, by their name in hsm.yaml.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub packages: BTreeMap<String, InstalledPackage>,
}

/// One package hsm installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPackage {
    /// Where it was installed from.
    pub source: InstalledSource,
    /// Its distribution name, PEP 503-normalized.
    pub distribution: String,
    /// The version installed; none when uv installed nothing for it (its markers
    /// exclude this environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its `.dist-info` folder in site-packages, which must still be there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist_info: Option<String>,
    /// For local sources, a digest of the build configuration it was built from
    /// (`pyproject.toml`, `setup.py`, `setup.cfg`, whether there is a `src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_stamp: Option<String>,
}

/// Where a package was installed from, as recorded in the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstalledSource {
    /// A requirement resolved from the index (credentials redacted).
    Pypi(String),
    /// A copy of a local project.
    Path(PathBuf),
    /// A link to a local project.
    Editable(PathBuf),
}

impl fmt::Display for InstalledSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstalledSource::Pypi(r) => write!(f, "`{r}`"),
            InstalledSource::Path(p) => write!(f, "path `{}`", p.display()),
            InstalledSource::Editable(p) => write!(f, "editable `{}`", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let mut state = PythonState::default();
        state.packages.insert(
            "core".into(),
            InstalledPackage {
                source: InstalledSource::Editable("/src/core".into()),
                distribution: "hsm-fixture-core".into(),
                version: Some("0.1.0".into()),
                dist_info: Some("hsm_fixture_core-0.1.0.dist-info".into()),
                build_stamp: Some("abc".into()),
            },
        );
        let json = serde_json::to_string(&state).unwrap();
        assert!(json.contains(r#""source":{"editable":"/src/core"}"#), "{json}");
        assert_eq!(serde_json::from_str::<PythonState>(&json).unwrap(), state);
        assert_eq!(serde_json::from_str::<PythonState>("{}").unwrap(), PythonState::default());
    }
}
