//! The plan: pure data saying what hsm will do for each service (the actions its
//! plugin returned, after the host checked them) and what environment each package
//! gets. `hsm plan` prints it; `hsm sync` executes it. Secrets appear only as
//! references, so a plan can be printed, serialized and compared freely.

use hsm_model::{Text, Value};
use serde::{Deserialize, Serialize};

/// The name of the service that installs the project's Python packages.
pub const PYTHON_SERVICE: &str = "python";

/// How a profile reaches a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// hsm runs it locally in containers.
    Managed,
    /// It runs elsewhere; connection settings are injected.
    External,
}

/// Who receives a service's environment.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "name")]
pub enum Consumer {
    /// The project itself (a service listed in hsm.yaml).
    Project,
    /// A package.
    Package(String),
}

impl Consumer {
    /// The package's name, if this is a package.
    pub fn package(&self) -> Option<&str> {
        match self {
            Self::Project => None,
            Self::Package(p) => Some(p),
        }
    }
}

/// Everything hsm will do for one project.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// The project's name.
    pub project: String,
    /// One entry per service instance, in the resolution's order.
    pub services: Vec<ServicePlan>,
    /// The packages' tasks, each after those of the packages its package implies.
    #[serde(default)]
    pub tasks: Vec<Task>,
}

/// When a task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskOn {
    /// During `hsm sync`, when what it depends on changed.
    Sync,
    /// Only from `hsm task PKG NAME`.
    Demand,
}

/// A command a package runs with its environment, in the project's Python
/// environment (migrations, seed data). Tasks come from the user's own files
/// (registries, `hsm.yaml`), never from a plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The package.
    pub package: String,
    /// The task's name within the package.
    pub name: String,
    /// The program and its arguments (not run through a shell).
    pub run: Vec<String>,
    /// When it runs.
    pub on: TaskOn,
    /// The folder it runs in: the package's own when it is a local folder, else
    /// the project's; relative to the project (`.` for the project itself).
    pub dir: String,
    /// The services whose environment the package gets: a task waits for them.
    pub services: Vec<String>,
    /// The tasks (`package/name`) that run before it.
    pub after: Vec<String>,
}

impl Task {
    /// `package/name`, as the state and messages name it.
    pub fn id(&self) -> String {
        format!("{}/{}", self.package, self.name)
    }
}

impl Plan {
    /// The environment a consumer gets from every service, in service order.
    pub fn env_of(&self, consumer: &Consumer) -> Vec<(&str, &Text, &str)> {
        let mut out = Vec::new();
        for service in &self.services {
            for env in service.env.iter().filter(|e| &e.consumer == consumer) {
                for (name, value) in &env.vars {
                    out.push((name.as_str(), value, service.name.as_str()));
                }
            }
        }
        out
    }
}

/// What hsm will do for one service instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServicePlan {
    /// The instance's name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// The plugin that planned it (`name@version`).
    pub plugin: String,
    /// The profile chosen.
    pub profile: String,
    /// Managed or external.
    pub mode: Mode,
    /// The merged configuration the plugin returned.
    pub merged: Value,
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// The environment each consumer gets.
    pub env: Vec<ConsumerEnv>,
}

/// The environment one consumer gets from one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerEnv {
    /// Who gets it.
    pub consumer: Consumer,
    /// The variables, in order.
    pub vars: Vec<(String, Text)>,
}

/// One step, from the closed set the host can check and execute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    /// Make a container exist, run and match its description.
    EnsureContainer(Container),
    /// Run a command in one of the service's containers.
    Exec(Exec),
    /// Wait until a probe succeeds.
    Wait(Wait),
    /// Install Python packages into the project's environment with uv.
    UvInstall {
        /// The packages.
        packages: Vec<PythonPackage>,
    },
    /// Write a file under `.hsm/<plugin>/`.
    WriteFile(WriteFile),
}

/// The transport protocol of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// A published port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Port {
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// A fixed host port, or `None` for one hsm chooses and keeps.
    pub host_port: Option<u16>,
    /// The host address it binds (127.0.0.1 unless the user allowed another).
    pub host_ip: String,
}

/// A mount.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Mount {
    /// A named volume owned by the project.
    Volume {
        /// Its short name (the host prefixes it with the project's name).
        volume: String,
        /// Path inside the container.
        target: String,
        /// Read-only.
        read_only: bool,
    },
    /// A path under `.hsm/<plugin>/`.
    Bind {
        /// Path relative to `.hsm/<plugin>/`.
        source: String,
        /// Path inside the container.
        target: String,
        /// Read-only.
        read_only: bool,
    },
}

/// What Docker does when the container stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    No,
    /// On a non-zero exit.
    OnFailure,
    /// Unless stopped by hand.
    UnlessStopped,
    /// Always.
    Always,
}

/// A container description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Short name within the service.
    pub name: String,
    /// The image.
    pub image: String,
    /// Overrides the image's command.
    pub command: Option<Vec<Text>>,
    /// Environment variables.
    pub env: Vec<(String, Text)>,
    /// Published ports.
    pub ports: Vec<Port>,
    /// Mounts.
    pub mounts: Vec<Mount>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// An init process as PID 1 that forwards signals and reaps children
    /// (Docker's `--init`). Left out of the plan when not asked for, so plans and
    /// container hashes from before it existed read the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// The signal that stops the container instead of the image's, one of
    /// [`STOP_SIGNALS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// The stop signals a plugin may ask for: those programs handle to shut down
/// (`SIGINT` is PostgreSQL's fast shutdown), and `SIGKILL`.
pub const STOP_SIGNALS: &[&str] = &["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL"];

/// A command in one of the service's containers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    /// The container's short name.
    pub container: String,
    /// The command.
    pub command: Vec<Text>,
    /// Extra environment.
    pub env: Vec<(String, Text)>,
    /// The user to run as.
    pub user: Option<String>,
}

/// Where a probe connects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Endpoint {
    /// A published port of one of the service's containers.
    ContainerPort {
        /// The container's short name.
        container: String,
        /// The port inside the container.
        port: u16,
    },
    /// Another host.
    Address {
        /// Host.
        host: Text,
        /// Port.
        port: Text,
    },
}

/// How readiness is checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "probe")]
pub enum Probe {
    /// A TCP connection succeeds.
    Tcp {
        /// Where.
        endpoint: Endpoint,
    },
    /// An HTTP GET answers 2xx (or `status`).
    Http {
        /// Where.
        endpoint: Endpoint,
        /// The path.
        path: String,
        /// Use https.
        tls: bool,
        /// The expected status.
        status: Option<u16>,
        /// Request headers.
        headers: Vec<(String, Text)>,
    },
    /// A command exits with 0.
    Exec(Exec),
}

/// Wait for a probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    /// The probe.
    pub probe: Probe,
    /// Give up after this many milliseconds.
    pub timeout_ms: u32,
    /// Pause between attempts.
    pub interval_ms: u32,
}

/// Where a Python package comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageSource {
    /// A requirement resolved from the index.
    Pypi(String),
    /// A local project, copied.
    Path(String),
    /// A local project, linked.
    Editable(String),
}

/// A Python package to install.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PythonPackage {
    /// Its name.
    pub name: String,
    /// Its source.
    pub source: PackageSource,
}

/// A file under `.hsm/<plugin>/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFile {
    /// The plugin whose folder it is in.
    pub plugin: String,
    /// Path relative to `.hsm/<plugin>/`.
    pub path: String,
    /// Contents (never secret).
    pub contents: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_with_a_tag() {
        let action = Action::Wait(Wait {
            probe: Probe::Tcp { endpoint: Endpoint::ContainerPort { container: "server".into(), port: 5432 } },
            timeout_ms: 1000,
            interval_ms: 100,
        });
        assert_eq!(
            serde_json::to_string(&action).unwrap(),
            r#"{"action":"wait","probe":{"probe":"tcp","endpoint":{"type":"container-port","container":"server","port":5432}},"timeout_ms":1000,"interval_ms":100}"#
        );
    }
}
