//! How execution tells the outside world what it is doing and what it changed.
//! Library crates never print: the CLI implements [`Reporter`] (spinners on a
//! terminal, plain lines otherwise, nothing with `-q`) and renders the returned
//! [`Change`]s (text, or JSON with `--json`).

use serde::Serialize;

/// Receives progress while hsm works. Called from several tasks at once.
pub trait Reporter: Send + Sync {
    /// Something happened.
    fn event(&self, event: Event<'_>);
}

/// A reporter that ignores everything.
pub struct Silent;

impl Reporter for Silent {
    fn event(&self, _: Event<'_>) {}
}

/// What hsm is doing.
#[derive(Debug)]
pub enum Event<'a> {
    /// One call to the Docker engine, for `-v`.
    Operation {
        /// The service concerned, if any.
        service: Option<&'a str>,
        /// What it does, such as `create container shop-postgres-server`.
        what: &'a str,
    },
    /// An image is being pulled.
    PullStarted {
        /// The image.
        image: &'a str,
    },
    /// Progress of a pull: one layer's state.
    PullProgress {
        /// The image.
        image: &'a str,
        /// The layer.
        layer: &'a str,
        /// Docker's status (`Downloading`, `Extracting`, `Pull complete`, …).
        status: &'a str,
        /// Bytes done and total, when Docker says.
        current: Option<u64>,
        /// Total bytes, when Docker says.
        total: Option<u64>,
    },
    /// A pull ended (successfully or not).
    PullFinished {
        /// The image.
        image: &'a str,
        /// Whether it succeeded.
        ok: bool,
    },
    /// Waiting for a service to be ready.
    WaitStarted {
        /// The service.
        service: &'a str,
        /// The probe, described.
        probe: &'a str,
        /// The timeout.
        timeout_ms: u32,
    },
    /// A probe attempt failed; hsm tries again.
    WaitRetry {
        /// The service.
        service: &'a str,
        /// Why the attempt failed.
        failure: &'a str,
    },
    /// The wait ended.
    WaitFinished {
        /// The service.
        service: &'a str,
        /// Whether the service became ready.
        ok: bool,
        /// How long it took.
        elapsed_ms: u64,
    },
    /// A line a package's task printed (redacted).
    TaskOutput {
        /// The task, `package/name`.
        task: &'a str,
        /// The line.
        line: &'a str,
    },
    /// A change was made (also returned in the summary).
    Changed(&'a Change),
    /// Something the user should know that is not an error.
    Warning(&'a str),
}

/// One change hsm made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The service concerned (`None` for project-wide resources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What was done.
    pub action: ChangeKind,
    /// The Docker object (container, volume, network or image) or item concerned.
    pub subject: String,
    /// Why, when it is not obvious (what made a container outdated, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Kinds of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// An image was pulled.
    PulledImage,
    /// The project's network was created.
    CreatedNetwork,
    /// The project's network was removed.
    RemovedNetwork,
    /// A volume was created.
    CreatedVolume,
    /// A volume was removed.
    RemovedVolume,
    /// A container was created and started.
    CreatedContainer,
    /// A container was replaced by one matching the plan.
    RecreatedContainer,
    /// A stopped container was started again.
    StartedContainer,
    /// A container was removed.
    RemovedContainer,
    /// A command ran in a container.
    RanExec,
    /// A file under `.hsm/` was written.
    WroteFile,
    /// A new host port was chosen because the old one was taken.
    MovedPort,
    /// The project's virtual environment was created.
    CreatedVenv,
    /// A Python package was installed or reinstalled.
    InstalledPackage,
    /// A Python package was uninstalled.
    UninstalledPackage,
    /// A package's task ran and succeeded.
    RanTask,
}

impl ChangeKind {
    /// A past-tense verb for text output.
    pub fn verb(self) -> &'static str {
        match self {
            Self::PulledImage => "pulled image",
            Self::CreatedNetwork => "created network",
            Self::RemovedNetwork => "removed network",
            Self::CreatedVolume => "created volume",
            Self::RemovedVolume => "removed volume",
            Self::CreatedContainer => "created container",
            Self::RecreatedContainer => "recreated container",
            Self::StartedContainer => "started container",
            Self::RemovedContainer => "removed container",
            Self::RanExec => "ran",
            Self::WroteFile => "wrote",
            Self::MovedPort => "moved port",
            Self::CreatedVenv => "created Python environment",
            Self::InstalledPackage => "installed package",
            Self::UninstalledPackage => "uninstalled package",
            Self::RanTask => "ran task",
        }
    }
}
