//! What a plugin returns from `plan`: actions from the closed set the host knows how
//! to check and execute, and the environment each consumer gets.

use crate::request::Consumer;
use crate::text::Text;
use crate::value::Value;

/// The parameter every consumer may give any service to rename (or drop, with
/// `null`) the environment variables it gets. [`Plan::env`] applies it, and
/// [`crate::default_merge`] leaves it out of the merged configuration.
pub const ENV_NAMES: &str = "env_names";

/// The transport protocol of a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A container port published on the host (always on 127.0.0.1 unless the user
/// says otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// The port inside the container.
    pub container_port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// A fixed host port; `None` lets the host choose one and keep it stable.
    pub host_port: Option<u16>,
    /// The host address to bind; `None` is 127.0.0.1. The host refuses any other
    /// address unless the user allowed it for the service.
    pub host_ip: Option<String>,
}

/// A mount into a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A named volume owned by the project (the host prefixes the name).
    Volume {
        /// Short name.
        volume: String,
        /// Path inside the container.
        target: String,
        /// Mounted read-only.
        read_only: bool,
    },
    /// A file or folder under `.hsm/<plugin>/`.
    Bind {
        /// Path relative to `.hsm/<plugin>/`.
        source: String,
        /// Path inside the container.
        target: String,
        /// Mounted read-only.
        read_only: bool,
    },
}

/// What Docker does when a container stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    No,
    /// Restart when it exits with an error.
    OnFailure,
    /// Restart unless stopped by hand.
    #[default]
    UnlessStopped,
    /// Always restart.
    Always,
}

/// A container the host makes exist and run as described. The host names it
/// `<project>-<service>-<name>` and replaces it only when the description changes.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Run an init process as PID 1 that forwards signals and reaps children
    /// ([`Container::init`]).
    pub init: bool,
    /// The signal that stops the container instead of the image's
    /// ([`Container::stop_signal`]).
    pub stop_signal: Option<String>,
}

impl Container {
    /// A container with nothing but a name and an image.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            command: None,
            env: Vec::new(),
            ports: Vec::new(),
            mounts: Vec::new(),
            restart: RestartPolicy::default(),
            init: false,
            stop_signal: None,
        }
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<Text>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Publishes a TCP port on a host port the host chooses.
    #[must_use]
    pub fn port(mut self, container_port: u16) -> Self {
        self.ports.push(Port { container_port, protocol: Protocol::Tcp, host_port: None, host_ip: None });
        self
    }

    /// Publishes a TCP port on a fixed host port.
    #[must_use]
    pub fn port_on(mut self, container_port: u16, host_port: u16) -> Self {
        self.ports.push(Port { container_port, protocol: Protocol::Tcp, host_port: Some(host_port), host_ip: None });
        self
    }

    /// Mounts a named volume.
    #[must_use]
    pub fn volume(mut self, volume: impl Into<String>, target: impl Into<String>) -> Self {
        self.mounts.push(Mount::Volume { volume: volume.into(), target: target.into(), read_only: false });
        self
    }

    /// Overrides the image's command.
    #[must_use]
    pub fn command(mut self, command: impl IntoIterator<Item = impl Into<Text>>) -> Self {
        self.command = Some(command.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the restart policy.
    #[must_use]
    pub fn restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }

    /// Runs an init process as PID 1 (Docker's `--init`), which forwards signals
    /// to the command and reaps its children. A command that installs no handler
    /// for SIGTERM (`python3 -m http.server`, many scripts) ignores it as PID 1, so
    /// without an init every stop and recreate waits for the engine's 10 s
    /// timeout and then kills it.
    #[must_use]
    pub fn init(mut self) -> Self {
        self.init = true;
        self
    }

    /// Stops the container with `signal` instead of the image's stop signal
    /// (SIGTERM unless the image says otherwise): one of `SIGTERM`, `SIGINT`,
    /// `SIGQUIT`, `SIGHUP`, `SIGUSR1`, `SIGUSR2` or `SIGKILL`; hsm refuses any
    /// other. PostgreSQL, for one, shuts down fast on `SIGINT`.
    #[must_use]
    pub fn stop_signal(mut self, signal: impl Into<String>) -> Self {
        self.stop_signal = Some(signal.into());
        self
    }
}

/// A command run inside one of the service's containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The container's short name.
    pub container: String,
    /// The command and its arguments.
    pub command: Vec<Text>,
    /// Extra environment variables.
    pub env: Vec<(String, Text)>,
    /// The user to run as.
    pub user: Option<String>,
}

impl Exec {
    /// A command in a container.
    pub fn new(container: impl Into<String>, command: impl IntoIterator<Item = impl Into<Text>>) -> Self {
        Self {
            container: container.into(),
            command: command.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            user: None,
        }
    }

    /// Sets an environment variable for the command.
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<Text>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs the command as `user`.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }
}

/// Where a probe connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A published port of one of the service's containers.
    ContainerPort {
        /// The container's short name.
        container: String,
        /// The port inside the container.
        port: u16,
    },
    /// Another host (needs [`crate::Capability::NetworkProbe`]).
    Address {
        /// Host name or address.
        host: Text,
        /// Port.
        port: Text,
    },
}

/// An HTTP GET that must answer 2xx (or `status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    /// Where.
    pub endpoint: Endpoint,
    /// The path, starting with `/`.
    pub path: String,
    /// Use `https`.
    pub tls: bool,
    /// The status expected instead of any 2xx.
    pub status: Option<u16>,
    /// Request headers.
    pub headers: Vec<(String, Text)>,
}

impl HttpProbe {
    /// A plain-HTTP GET of `path` on a container's port of this service,
    /// passing on any 2xx.
    pub fn new(container: impl Into<String>, port: u16, path: impl Into<String>) -> Self {
        Self {
            endpoint: Endpoint::ContainerPort { container: container.into(), port },
            path: path.into(),
            tls: false,
            status: None,
            headers: Vec::new(),
        }
    }

    /// Over HTTPS.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Passing on this status only, instead of any 2xx.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// With a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Text>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// How readiness is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A TCP connection succeeds.
    Tcp(Endpoint),
    /// An HTTP request succeeds.
    Http(HttpProbe),
    /// A command in a container exits with 0.
    Exec(Exec),
}

/// Wait until a probe succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wait {
    /// The probe.
    pub probe: Probe,
    /// Give up after this many milliseconds.
    pub timeout_ms: u32,
    /// Pause between attempts, in milliseconds.
    pub interval_ms: u32,
}

impl Wait {
    /// Waits up to 60 s, trying every 250 ms.
    pub fn new(probe: Probe) -> Self {
        Self { probe, timeout_ms: 60_000, interval_ms: 250 }
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = ms;
        self
    }
}

/// Where a Python package comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageSource {
    /// A requirement resolved from the index.
    Pypi(String),
    /// A local project, installed as a copy.
    Path(String),
    /// A local project, installed as a link.
    Editable(String),
}

/// A Python package to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonPackage {
    /// The package's name.
    pub name: String,
    /// Where it comes from.
    pub source: PackageSource,
}

/// A file written under `.hsm/<plugin>/` (never holding secrets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFile {
    /// Path relative to `.hsm/<plugin>/`.
    pub path: String,
    /// Contents.
    pub contents: String,
}

/// One step the host executes, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make a container exist and run as described.
    EnsureContainer(Container),
    /// Run a command in a container.
    Exec(Exec),
    /// Wait for readiness.
    Wait(Wait),
    /// Install Python packages with uv.
    UvInstall(Vec<PythonPackage>),
    /// Write a file.
    WriteFile(WriteFile),
}

impl From<Container> for Action {
    fn from(c: Container) -> Self {
        Self::EnsureContainer(c)
    }
}

impl From<Exec> for Action {
    fn from(e: Exec) -> Self {
        Self::Exec(e)
    }
}

impl From<Wait> for Action {
    fn from(w: Wait) -> Self {
        Self::Wait(w)
    }
}

impl From<WriteFile> for Action {
    fn from(w: WriteFile) -> Self {
        Self::WriteFile(w)
    }
}

/// The environment one consumer gets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerEnv {
    /// The package, or `None` for the project itself.
    pub package: Option<String>,
    /// The variables, in order.
    pub vars: Vec<(String, Text)>,
}

/// The plan for one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// The environment per consumer.
    pub env: Vec<ConsumerEnv>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an action.
    pub fn action(&mut self, action: impl Into<Action>) -> &mut Self {
        self.actions.push(action.into());
        self
    }

    /// Sets a variable in a consumer's environment.
    ///
    /// A consumer may rename the variables it gets with the parameter `env_names`
    /// (`{DATABASE_URL: AUTH_DB_URL}`), or drop one by mapping it to `null`; this
    /// applies that, so every plugin honours it the same way.
    pub fn env(&mut self, consumer: &Consumer, name: impl Into<String>, value: impl Into<Text>) -> &mut Self {
        let mut name = name.into();
        match consumer.params.get(ENV_NAMES).and_then(|names| names.get(&name)) {
            Some(Value::Null) => return self,
            Some(renamed) => {
                if let Some(renamed) = renamed.as_str() {
                    name = renamed.to_string();
                }
            }
            None => {}
        }
        // From the end: a plugin sets a consumer's variables one after another.
        let index = match self.env.iter().rposition(|e| e.package == consumer.package) {
            Some(i) => i,
            None => {
                self.env.push(ConsumerEnv { package: consumer.package.clone(), vars: Vec::new() });
                self.env.len() - 1
            }
        };
        self.env[index].vars.push((name, value.into()));
        self
    }

    /// The environment of a consumer (`None` for the project), if it has one.
    pub fn env_of(&self, package: Option<&str>) -> Option<&[(String, Text)]> {
        self.env.iter().find(|e| e.package.as_deref() == package).map(|e| e.vars.as_slice())
    }
}

/// Why planning failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError {
    /// What is wrong.
    pub message: String,
    /// The parameter or setting in question.
    pub key: Option<String>,
}

impl PlanError {
    /// An error about a parameter or setting.
    pub fn at(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { message: message.into(), key: Some(key.into()) }
    }

    /// An error not about one key.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), key: None }
    }
}
