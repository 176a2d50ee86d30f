//! What the host asks of a plugin (describe, merge, plan) and the plugin's
//! self-description.

use crate::value::Value;

/// What a plugin may ask the host to do. A plugin declares what it needs; the host
/// executes an action only when the capability is both declared and granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Create, start and replace its own containers (named volumes, ports on 127.0.0.1).
    Containers,
    /// Run commands in its own containers.
    Exec,
    /// Install Python packages into the project's environment with uv.
    UvInstall,
    /// Write files under `.hsm/<plugin>/` and bind-mount them into its containers.
    Files,
    /// Wait for hosts other than its own containers to answer.
    NetworkProbe,
}

/// A parameter or setting a plugin reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// The key.
    pub name: String,
    /// What it means, in one line.
    pub description: String,
    /// Whether it must be given.
    pub required: bool,
}

/// What a plugin says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// The plugin's name (lowercase letters, digits, `-`).
    pub name: String,
    /// Its version (semver).
    pub version: String,
    /// The service kinds it serves.
    pub kinds: Vec<String>,
    /// The parameters packages may give a service.
    pub params: Vec<ParamSpec>,
    /// The settings an external profile gives a service.
    pub settings: Vec<ParamSpec>,
    /// The capabilities it needs.
    pub capabilities: Vec<Capability>,
    /// The variables it sets in its consumers' environments. hsm refuses a plan
    /// that sets any other (a consumer's renaming with `env_names` aside), so a
    /// user who reviews the plugin sees all it can put into the environment of the
    /// programs they run.
    pub variables: Vec<VariableSpec>,
}

/// A variable a plugin sets in its consumers' environments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableSpec {
    /// Its name (`REDIS_URL`).
    pub name: String,
    /// What it holds, in one line.
    pub description: String,
}

impl PluginInfo {
    /// A description with no parameters and no capabilities.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        kinds: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            kinds: kinds.into_iter().map(Into::into).collect(),
            params: Vec::new(),
            settings: Vec::new(),
            capabilities: Vec::new(),
            variables: Vec::new(),
        }
    }

    /// Declares a variable it sets in consumers' environments. Names that steer
    /// how programs start or connect (`PATH`, `LD_*`, `PYTHON*`, `XDG_*`,
    /// `*_PROXY`, `*_CONFIG_FILE`, ...) are refused by hsm whatever is declared.
    #[must_use]
    pub fn variable(mut self, name: &str, description: &str) -> Self {
        self.variables.push(VariableSpec { name: name.into(), description: description.into() });
        self
    }

    /// Adds a parameter.
    #[must_use]
    pub fn param(mut self, name: &str, description: &str, required: bool) -> Self {
        self.params.push(ParamSpec { name: name.into(), description: description.into(), required });
        self
    }

    /// Adds an external setting.
    #[must_use]
    pub fn setting(mut self, name: &str, description: &str, required: bool) -> Self {
        self.settings.push(ParamSpec { name: name.into(), description: description.into(), required });
        self
    }

    /// Adds a capability.
    #[must_use]
    pub fn capability(mut self, capability: Capability) -> Self {
        self.capabilities.push(capability);
        self
    }
}

/// Who asked for a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Requester {
    /// The project itself (a service listed in hsm.yaml).
    Project,
    /// A package, by name.
    Package(String),
}

/// Names the requester in messages: `` `auth-service` `` or `the project`.
impl std::fmt::Display for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Project => f.write_str("the project"),
            Self::Package(p) => write!(f, "`{p}`"),
        }
    }
}

/// What one requester asked of a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// Who asked.
    pub from: Requester,
    /// Where it was written (`file:line:column`).
    pub origin: String,
    /// What was asked.
    pub params: Value,
}

/// The contributions to one service, to be merged.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeRequest {
    /// The service instance's name.
    pub service: String,
    /// Its kind.
    pub kind: String,
    /// The registry's defaults for it.
    pub defaults: Value,
    /// What each requester asked.
    pub contributions: Vec<Contribution>,
}

/// Why a merge failed.
///
/// hsm shows the message under the plugin's name, points at the contributions in
/// the user's files, and adds a hint: the plugin's own ([`MergeError::hint`]) or,
/// for a conflict, its default ("make them agree on `key`, or give one of them a
/// service of its own in the registry").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeError {
    /// Contributions ask for things that can't hold at once.
    Conflict {
        /// What clashes.
        message: String,
        /// The parameter.
        key: String,
        /// Indices of the clashing contributions.
        contributions: Vec<u32>,
        /// What the user should do instead of hsm's default advice.
        hint: Option<String>,
    },
    /// A parameter is wrong on its own.
    Invalid {
        /// What is wrong.
        message: String,
        /// The parameter.
        key: String,
        /// The contribution, or none when the defaults are wrong.
        contribution: Option<u32>,
        /// What the user should do (hsm suggests a declared parameter for an
        /// unknown one when there is none).
        hint: Option<String>,
    },
}

impl MergeError {
    /// A conflict between contributions (by index in the request's
    /// `contributions`, as [`MergeError::invalid`] takes one).
    pub fn conflict(
        message: impl Into<String>,
        key: impl Into<String>,
        contributions: impl IntoIterator<Item = usize>,
    ) -> Self {
        let contributions = contributions.into_iter().map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect();
        Self::Conflict { message: message.into(), key: key.into(), contributions, hint: None }
    }

    /// A parameter that is wrong on its own.
    pub fn invalid(message: impl Into<String>, key: impl Into<String>, contribution: Option<usize>) -> Self {
        let contribution = contribution.map(|i| u32::try_from(i).unwrap_or(u32::MAX));
        Self::Invalid { message: message.into(), key: key.into(), contribution, hint: None }
    }

    /// With a hint: one line saying what the user should do, shown instead of
    /// hsm's default. A conflict over something each package must have for
    /// itself needs one: ``"give each package its own `db`"``, not "make them
    /// agree". hsm escapes it and cuts it at 1,000 characters, as every word a
    /// plugin says.
    #[must_use]
    pub fn hint(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Self::Conflict { hint, .. } | Self::Invalid { hint, .. } => *hint = Some(text.into()),
        }
        self
    }

    /// The parameter in question.
    pub fn key(&self) -> &str {
        match self {
            Self::Conflict { key, .. } | Self::Invalid { key, .. } => key,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Conflict { message, .. } | Self::Invalid { message, .. } => message,
        }
    }
}

/// How a profile reaches a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// hsm runs it locally in containers.
    Managed,
    /// It runs elsewhere; the profile gives connection settings.
    External,
}

/// The profile chosen for a service.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// Managed or external.
    pub mode: Mode,
    /// Connection settings (external) or parameter overrides (managed).
    pub settings: Value,
}

/// Who receives a service's environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    /// The package, or none for the project itself.
    pub package: Option<String>,
    /// What it asked of the service.
    pub params: Value,
}

/// One service to plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRequest {
    /// The project's name.
    pub project: String,
    /// The service instance's name.
    pub service: String,
    /// Its kind.
    pub kind: String,
    /// The merged configuration.
    pub config: Value,
    /// The chosen profile.
    pub profile: Profile,
    /// Who gets the environment.
    pub consumers: Vec<Consumer>,
    /// The address consumers use to reach published ports (`127.0.0.1`).
    pub host_address: String,
}

impl PlanRequest {
    /// A configuration value: the profile's setting when there is one (managed
    /// profiles may override parameters), else the merged configuration's.
    pub fn param(&self, key: &str) -> Option<&Value> {
        self.profile.settings.get(key).or_else(|| self.config.get(key))
    }
}
