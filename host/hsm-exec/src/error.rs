//! Why executing a plan failed, with what the user can do about it. Each error
//! names the thing concerned (service, container, image, port) in backticks; the
//! CLI prints its [`Explain::hint`] on a `hint:` line and its [`Explain::details`]
//! (a container's last log lines) below the message.

use hsm_model::Explain;

use crate::state::StateError;

/// Why a step of execution failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The Docker engine can't be reached.
    #[error("cannot reach the Docker engine at `{host}`: {message}")]
    DockerUnreachable {
        /// Where hsm looked (`DOCKER_HOST` or the default socket).
        host: String,
        /// What went wrong.
        message: String,
    },
    /// The Docker engine refused or failed an operation.
    #[error("Docker could not {operation}: {message}")]
    Docker {
        /// What hsm asked, such as ``create container `shop-postgres-server` ``.
        operation: String,
        /// Docker's message.
        message: String,
    },
    /// An image could not be pulled.
    #[error("cannot pull image `{image}`: {message}")]
    Pull {
        /// The image.
        image: String,
        /// Docker's message.
        message: String,
    },
    /// A Docker object hsm would create or change belongs to someone else.
    #[error("{kind} `{name}` {}", owner_text(owner))]
    Foreign {
        /// `container`, `volume` or `network`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The project and folder that own it, if hsm created it.
        owner: Option<(String, String)>,
    },
    /// An object of this project that belongs to another of its services: their
    /// names collide.
    #[error("{kind} `{name}` belongs to service `{owner}`, not to `{service}`")]
    OtherService {
        /// `container` or `volume`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The service that wanted it.
        service: String,
        /// The service that has it.
        owner: String,
    },
    /// Two services of the plan would give one Docker object the same name
    /// (`{project}-{service}-{name}`: `b-c` + `x` and `b` + `c-x`). Found before
    /// anything is touched.
    #[error("services `{first}` and `{second}` would both name a {kind} `{name}`")]
    NameClash {
        /// `container` or `volume`.
        kind: &'static str,
        /// The name both would use.
        name: String,
        /// The first service.
        first: String,
        /// The second service.
        second: String,
    },
    /// Another folder's project of the same name has containers on this engine.
    #[error(
        "project `{project}` already runs on this Docker engine from another folder, `{other_dir}`{}",
        other.said()
    )]
    SameNameElsewhere {
        /// The project's name.
        project: String,
        /// The other project's folder.
        other_dir: String,
        /// What is at that folder now (when not a project, it was probably moved or
        /// deleted, and `hsm down` can't be run there).
        other: OtherFolder,
    },
    /// A host port is taken.
    #[error("host port {port} for `{container}` of service `{service}` is already in use")]
    PortTaken {
        /// The service.
        service: String,
        /// The container's short name.
        container: String,
        /// The port.
        port: u16,
        /// Whether the plan fixes it (`port:` in the service's params); else hsm
        /// chose it.
        fixed: bool,
    },
    /// A service did not become ready in time.
    #[error("service `{service}` did not become ready within {}: {failure}", seconds(*timeout_ms))]
    NotReady {
        /// The service.
        service: String,
        /// The probe's last failure.
        failure: String,
        /// The timeout.
        timeout_ms: u32,
        /// The container to look at, if any.
        container: Option<String>,
        /// Its last log lines.
        logs: Vec<String>,
    },
    /// A container stopped while hsm waited for it.
    #[error("container `{container}` of service `{service}` stopped (exit code {code}) before it was ready")]
    Exited {
        /// The service.
        service: String,
        /// The container's full name.
        container: String,
        /// Its exit code.
        code: i64,
        /// Its last log lines.
        logs: Vec<String>,
    },
    /// A command run in a container failed.
    #[error(
        "`{command}` in container `{container}` of service `{service}` failed with exit code {code}{}",
        output_text(output)
    )]
    ExecFailed {
        /// The service.
        service: String,
        /// The container's full name.
        container: String,
        /// The command, shown with references (never secret values).
        command: String,
        /// The exit code.
        code: i64,
        /// The end of its output.
        output: String,
    },
    /// A reference in the plan could not be resolved (found in pre-flight: bad
    /// input, nothing touched).
    #[error("service `{service}`: {message}")]
    Reference {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// A reference could not be resolved once the sync had begun changing things.
    #[error("service `{service}`: {message}")]
    Unresolved {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
    /// A file under `.hsm/` could not be written.
    #[error("cannot write `{path}`: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The plan asks for something this build can't do yet.
    #[error("{0}")]
    Unsupported(String),
    /// Installing Python packages failed.
    #[error("{message}")]
    Python {
        /// uv's error, rendered.
        message: String,
        /// What to do about it.
        hint: Option<String>,
        /// Whether hsm.yaml asks for something that can't be installed as written.
        input: bool,
    },
    /// A package's task failed (or could not start).
    #[error("task `{task}` failed{}", match code { Some(c) => format!(" with exit code {c}"), None => String::new() })]
    TaskFailed {
        /// The task, `package/name`.
        task: String,
        /// Its exit code (`None`: ended by a signal, or could not start).
        code: Option<i32>,
        /// Its last output lines (or why it could not start).
        tail: Vec<String>,
    },
    /// Two networks carry the project's network name (Docker Engine before 25
    /// allows it) and containers run on more than one of them.
    #[error(
        "{count} networks are named `{name}` and containers run on more than one of them: hsm can't tell which to keep"
    )]
    NetworkTwice {
        /// The network's name.
        name: String,
        /// How many networks carry it.
        count: usize,
    },
    /// A service named on the command line has no container.
    #[error("service `{service}` has no container")]
    NoContainer {
        /// The service.
        service: String,
        /// The services that have containers.
        known: Vec<String>,
    },
    /// The state or the lock.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What is at the folder of a same-named project found on the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtherFolder {
    /// It still holds an hsm project (`hsm.yaml` or `.hsm/`).
    Project,
    /// It exists but holds no hsm project any more.
    NoProject,
    /// It no longer exists.
    Missing,
}

impl OtherFolder {
    /// What is at `dir` now.
    pub fn at(dir: &std::path::Path) -> Self {
        if dir.join("hsm.yaml").is_file() || dir.join(".hsm").is_dir() {
            Self::Project
        } else if dir.exists() {
            Self::NoProject
        } else {
            Self::Missing
        }
    }

    /// How the error message ends.
    fn said(self) -> &'static str {
        match self {
            Self::Project => "",
            Self::NoProject => ", which no longer holds an hsm project",
            Self::Missing => ", which no longer exists",
        }
    }
}

fn owner_text(owner: &Option<(String, String)>) -> String {
    match owner {
        Some((project, dir)) => format!("belongs to project `{project}` in `{dir}`"),
        None => "exists and was not created by hsm".to_string(),
    }
}

fn output_text(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() { String::new() } else { format!(": {output}") }
}

fn seconds(ms: u32) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{:.1}s", f64::from(ms) / 1000.0) }
}

impl Explain for ExecError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::DockerUnreachable { .. } => Some(
                "start the Docker engine (`sudo systemctl start docker`), or point `DOCKER_HOST` at a running one"
                    .into(),
            ),
            Self::Pull { image, .. } => Some(format!(
                "check the image's name and tag; for a private registry run `docker login` first, or build or `docker pull {image}` yourself: hsm uses a local image when there is one"
            )),
            Self::Foreign { kind, name, owner: Some(_) } => {
                Some(format!("rename this project in `hsm.yaml`, or remove the other one's {kind} `{name}`"))
            }
            Self::Foreign { kind, name, owner: None } => Some(format!(
                "hsm never touches what it did not create: remove or rename {kind} `{name}` yourself (`docker {kind} rm {name}`), or rename this project in `hsm.yaml`"
            )),
            Self::OtherService { kind, service, owner, .. } => Some(format!(
                "the names of services `{service}` and `{owner}` and their {kind}s run together; rename one of the services"
            )),
            Self::NameClash { kind, first, second, .. } => Some(format!(
                "{kind} names are `{{project}}-{{service}}-{{{kind}}}`, and these run together: rename service `{first}` or `{second}` in `hsm.yaml`"
            )),
            Self::SameNameElsewhere { other_dir, other: OtherFolder::Project, .. } => {
                Some(format!("give this project another name in `hsm.yaml`, or run `hsm down` in `{other_dir}` first"))
            }
            Self::SameNameElsewhere { other_dir, .. } => Some(format!(
                "if the project moved here, remove what the old folder left with `hsm down --from-folder '{other_dir}'` (its volumes stay unless you add `--volumes`; this folder can't reuse them), then sync again; or give this project another name in `hsm.yaml`"
            )),
            Self::NetworkTwice { .. } => Some(
                "run `hsm down` (it removes this project's containers and networks, and keeps its volumes), then `hsm sync`"
                    .into(),
            ),
            Self::PortTaken { port, fixed: true, .. } => Some(format!(
                "free port {port} (`ss -ltnp 'sport = :{port}'` shows who holds it), or choose another `port` for the service, or remove `port` to let hsm choose a free one"
            )),
            Self::PortTaken { port, fixed: false, .. } => Some(format!(
                "hsm chose port {port} and another program took it as the container started: run `hsm sync` again, and hsm chooses another"
            )),
            Self::NotReady { service, container: Some(_), .. } | Self::Exited { service, .. } => {
                Some(format!("see the whole log with `hsm logs {service}`"))
            }
            Self::ExecFailed { service, .. } => Some(format!("see the container's log with `hsm logs {service}`")),
            Self::TaskFailed { task, .. } => {
                let (package, name) = task.split_once('/').unwrap_or((task, ""));
                Some(format!(
                    "fix it, then run `hsm sync` again (it runs the task again) or just the task: `hsm task {package} {name}`"
                ))
            }
            Self::NoContainer { known, .. } if known.is_empty() => {
                Some("no container of this project exists: run `hsm sync` first".into())
            }
            Self::NoContainer { known, .. } => Some(format!(
                "the services with containers are {}",
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )),
            Self::State(e) => e.hint(),
            Self::Python { hint, .. } => hint.clone(),
            _ => None,
        }
    }

    fn details_title(&self) -> Option<String> {
        match self {
            Self::NotReady { container: Some(c), logs, .. } | Self::Exited { container: c, logs, .. }
                if !logs.is_empty() =>
            {
                Some(format!("the last lines `{c}` logged:"))
            }
            Self::TaskFailed { task, tail, .. } if !tail.is_empty() => {
                Some(format!("the last lines `{task}` printed:"))
            }
            _ => None,
        }
    }

    fn details(&self) -> &[String] {
        match self {
            Self::NotReady { logs, .. } | Self::Exited { logs, .. } => logs,
            Self::TaskFailed { tail, .. } => tail,
            _ => &[],
        }
    }

    fn is_input(&self) -> bool {
        matches!(
            self,
            Self::Reference { .. }
                | Self::NameClash { .. }
                | Self::Python { input: true, .. }
                | Self::NoContainer { .. }
        )
    }
}

impl ExecError {
    /// The error with `f` applied to every text in it that came from outside hsm
    /// (Docker's messages, a command's output, a probe's failure, log lines, uv's
    /// errors): how secrets are redacted from errors.
    #[must_use]
    pub fn map_texts(self, f: &dyn Fn(&str) -> String) -> Self {
        match self {
            Self::DockerUnreachable { host, message } => Self::DockerUnreachable { host, message: f(&message) },
            Self::Docker { operation, message } => Self::Docker { operation: f(&operation), message: f(&message) },
            Self::Pull { image, message } => Self::Pull { image, message: f(&message) },
            Self::NotReady { service, failure, timeout_ms, container, logs } => Self::NotReady {
                service,
                failure: f(&failure),
                timeout_ms,
                container,
                logs: logs.iter().map(|l| f(l)).collect(),
            },
            Self::Exited { service, container, code, logs } => {
                Self::Exited { service, container, code, logs: logs.iter().map(|l| f(l)).collect() }
            }
            Self::ExecFailed { service, container, command, code, output } => {
                Self::ExecFailed { service, container, command, code, output: f(&output) }
            }
            Self::Reference { service, message } => Self::Reference { service, message: f(&message) },
            Self::Unresolved { service, message } => Self::Unresolved { service, message: f(&message) },
            Self::File { path, message } => Self::File { path, message: f(&message) },
            Self::Unsupported(message) => Self::Unsupported(f(&message)),
            Self::Python { message, hint, input } => {
                Self::Python { message: f(&message), hint: hint.map(|h| f(&h)), input }
            }
            Self::TaskFailed { task, code, tail } => {
                Self::TaskFailed { task, code, tail: tail.iter().map(|l| f(l)).collect() }
            }
            other => other,
        }
    }

    /// The error as raised after a sync began changing things: exit code 2 says
    /// "bad input: nothing was touched", so no error raised then is an input error.
    #[must_use]
    pub fn after_changes(self) -> Self {
        match self {
            Self::Reference { service, message } => Self::Unresolved { service, message },
            Self::Python { message, hint, .. } => Self::Python { message, hint, input: false },
            other => other,
        }
    }
}
