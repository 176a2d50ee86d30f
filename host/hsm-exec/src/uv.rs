//! The project's Python packages, installed with uv into the project's `.venv`.
//! This is the one place hsm runs uv: it decides what is already in place (from
//! hsm's state and the venv's files, without starting a process), installs what is
//! missing or changed in one uv transaction, and uninstalls what hsm installed
//! earlier and hsm.yaml no longer asks for — never anything the user installed.
//! `docs/python.md` describes the behaviour for users.

mod names;
mod project;
mod site;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::io::{IsTerminal as _, Read};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hsm_plan::{PackageSource, PythonPackage};
use serde::{Deserialize, Serialize};

use self::names::{normalize, redact_credentials, requirement_name};
use self::project::ProjectError;
use self::site::{Health, Site};

/// The environment variable that points hsm at a uv binary (a path, or a name
/// looked up on `PATH`), ahead of `PATH`.
pub const UV_ENV_VAR: &str = "HSM_UV";

/// The folder of the project's virtual environment, relative to the project.
pub const VENV_DIR: &str = ".venv";

/// Variables a command run inside the venv must not inherit (as `activate` does):
/// a `PYTHONHOME` from outside would point the venv's interpreter elsewhere.
pub const ACTIVATION_UNSET: &[&str] = &["PYTHONHOME"];

/// How often a running uv's environment is checked for a stop.
const UV_STOP_POLL: Duration = Duration::from_millis(20);

/// How long uv and what it started get to end after SIGTERM before SIGKILL.
const UV_GRACE: Duration = Duration::from_secs(5);

/// The project's Python environment: where it is and which uv manages it.
#[derive(Clone, Debug)]
pub struct PythonEnv {
    project_dir: PathBuf,
    venv: PathBuf,
    uv: PathBuf,
    /// Set when the run using this environment is abandoned (see
    /// [`PythonEnv::stop_on_drop`]); shared by clones.
    stop: Arc<AtomicBool>,
}

/// Stops the uv runs of a [`PythonEnv`] when dropped: see
/// [`PythonEnv::stop_on_drop`].
#[derive(Debug)]
#[must_use = "uv is stopped when this is dropped"]
pub struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl PythonEnv {
    /// The environment of the project in `project_dir` (its `.venv`), managed by
    /// the uv at `uv` if given, else the one `HSM_UV` names, else the first `uv` on
    /// `PATH`. Fails, saying how to install uv, when there is none. Runs nothing.
    pub fn new(project_dir: &Path, uv: Option<PathBuf>) -> Result<Self, UvError> {
        Self::with_env(project_dir, uv, &|key| std::env::var_os(key))
    }

    /// [`PythonEnv::new`] with the process environment given as a lookup, so the
    /// search for uv depends on nothing else.
    pub fn with_env(
        project_dir: &Path,
        uv: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, UvError> {
        let uv = find_uv(uv, env)?;
        let project_dir = std::path::absolute(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
        let venv = project_dir.join(VENV_DIR);
        Ok(Self { project_dir, venv, uv, stop: Arc::default() })
    }

    /// A guard that, when dropped, stops this environment's uv runs: the one
    /// running gets SIGTERM, with what it started (build backends), then SIGKILL
    /// after a grace period, and no further one starts; the call that ran it
    /// returns [`UvError::Stopped`]. Hold it in the async code that waits for the
    /// blocking work: when that code is abandoned (Ctrl-C, SIGTERM), uv stops too,
    /// instead of running on while hsm waits for it to exit.
    pub fn stop_on_drop(&self) -> StopOnDrop {
        StopOnDrop(Arc::clone(&self.stop))
    }

    /// The project folder.
    pub fn project_dir(&self) -> &Path {
        &self.project_dir
    }

    /// The virtual environment's folder (`.venv` in the project).
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// The uv binary hsm runs.
    pub fn uv(&self) -> &Path {
        &self.uv
    }

    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        site::python(&self.venv)
    }

    /// What `hsm run` adds to a command's environment, as the venv's `activate`
    /// script would: `VIRTUAL_ENV`, and `PATH` with the venv's executables first
    /// (then `inherited_path`). Remove [`ACTIVATION_UNSET`] as well.
    pub fn activation_env(&self, inherited_path: Option<&OsStr>) -> Vec<(OsString, OsString)> {
        activation_env(&self.venv, inherited_path)
    }

    /// Runs uv in the project folder, capturing its output, unless this
    /// environment was stopped (see [`PythonEnv::stop_on_drop`]).
    fn run_uv(&self, args: &[OsString]) -> Result<Output, UvError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(UvError::Stopped);
        }
        let spawn_error = |source| UvError::Spawn { program: self.uv.clone(), source };
        let mut command = Command::new(&self.uv);
        command
            .args(args)
            .current_dir(&self.project_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Off a terminal (CI, an editor, a service manager: where SIGTERM comes
        // from), uv gets a process group of its own, so that stopping it reaches
        // the build backends it starts too. On one, it stays in hsm's group: what
        // prompts on the terminal (an SSH key's passphrase, git's credentials)
        // would stop in a background group, and Ctrl-C reaches uv and its
        // backends from the terminal itself.
        let own_group = !(io::stdin().is_terminal() || io::stderr().is_terminal());
        if own_group {
            command.process_group(0);
        }
        let mut child = command.spawn().map_err(spawn_error)?;
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        std::thread::scope(|scope| {
            // Both pipes are drained while uv runs, so that it never blocks on a
            // full one. (`wait_for` fails only when uv is gone already, reaped by
            // someone else: it is not signalled then, its id may be anyone's.)
            let stdout = scope.spawn(move || read_all(stdout));
            let stderr = scope.spawn(move || read_all(stderr));
            let status = self.wait_for(&mut child, own_group).map_err(spawn_error);
            let join = |reader: std::thread::ScopedJoinHandle<'_, Vec<u8>>| {
                reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            let (stdout, stderr) = (join(stdout), join(stderr));
            match status? {
                Some(status) => Ok(Output { status, stdout, stderr }),
                None => Err(UvError::Stopped),
            }
        })
    }

    /// Waits for uv to end. If this environment is stopped meanwhile, uv (with
    /// its process group when it has one) gets SIGTERM, then SIGKILL after
    /// [`UV_GRACE`]; once uv has ended, whatever is left in its group gets
    /// SIGKILL, and the result is `None`. uv is reaped only after
    /// that: until then its id, which is its group's, can be no one else's. (A
    /// stop that comes as uv ends may still give `None`.)
    fn wait_for(&self, child: &mut Child, own_group: bool) -> io::Result<Option<ExitStatus>> {
        use rustix::io::Errno;
        use rustix::process::{Pid, Signal, WaitId, WaitIdOptions, kill_process, kill_process_group, waitid};
        let pid = Pid::from_child(child);
        let signal = |sig| if own_group { kill_process_group(pid, sig) } else { kill_process(pid, sig) };
        // `ended` is set under the lock before uv is reaped, and the watcher
        // signals only under the lock while it is not set.
        #[derive(Default)]
        struct Watch {
            ended: bool,
            stopping_since: Option<Instant>,
        }
        let (watch, woken) = (Mutex::new(Watch::default()), Condvar::new());
        std::thread::scope(|scope| {
            // Watches for a stop while this thread waits for uv to end.
            scope.spawn(|| {
                let mut w = watch.lock().expect("the uv watch's lock is never poisoned");
                while !w.ended {
                    if self.stop.load(Ordering::Relaxed) {
                        match w.stopping_since {
                            None => {
                                let _ = signal(Signal::TERM);
                                w.stopping_since = Some(Instant::now());
                            }
                            Some(since) if since.elapsed() >= UV_GRACE => {
                                let _ = signal(Signal::KILL);
                            }
                            Some(_) => {}
                        }
                    }
                    w = woken.wait_timeout(w, UV_STOP_POLL).expect("the uv watch's lock is never poisoned").0;
                }
            });
            // Until uv exits, without reaping it.
            let exited = loop {
                match waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOWAIT) {
                    Err(Errno::INTR) => continue,
                    other => break other,
                }
            };
            let stopping = {
                let mut w = watch.lock().expect("the uv watch's lock is never poisoned");
                w.ended = true;
                w.stopping_since.is_some()
            };
            woken.notify_all();
            exited?;
            if stopping && own_group {
                // Build backends that outlived uv: the group is still uv's while
                // uv is unreaped.
                let _ = kill_process_group(pid, Signal::KILL);
            }
            let status = child.wait()?;
            Ok((!stopping).then_some(status))
        })
    }

    /// `uv venv`, replacing a broken venv when `clear`.
    fn create_venv(&self, clear: bool) -> Result<(), UvError> {
        let mut args: Vec<OsString> = vec!["venv".into(), "--color".into(), "never".into()];
        if clear {
            args.push("--clear".into());
        }
        args.push(self.venv.clone().into_os_string());
        let out = self.run_uv(&args)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(UvError::CreateVenv { path: self.venv.clone(), message: uv_message(&out) })
        }
    }
}

/// Everything a child's pipe gives until it is closed (nothing without a pipe,
/// what came before a read error with one).
fn read_all(pipe: Option<impl Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    bytes
}

/// [`PythonEnv::activation_env`] for the venv at `venv`, without looking for uv:
/// running a command in the venv needs no uv. Whether there is a venv to
/// activate is [`venv_exists`].
pub fn activation_env(venv: &Path, inherited_path: Option<&OsStr>) -> Vec<(OsString, OsString)> {
    let mut path = site::bin_dir(venv).into_os_string();
    if let Some(inherited) = inherited_path.filter(|p| !p.is_empty()) {
        path.push(if cfg!(windows) { ";" } else { ":" });
        path.push(inherited);
    }
    vec![("VIRTUAL_ENV".into(), venv.as_os_str().to_owned()), ("PATH".into(), path)]
}

/// Whether `venv` is a virtual environment (it has a `pyvenv.cfg`), usable or not.
pub fn venv_exists(venv: &Path) -> bool {
    venv.join("pyvenv.cfg").is_file()
}

/// Finds uv: `explicit`, else `HSM_UV`, else `PATH`.
fn find_uv(explicit: Option<PathBuf>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<PathBuf, UvError> {
    let path_var = env("PATH");
    let (given, origin) = match explicit {
        Some(p) => (p, "the given path"),
        None => match env(UV_ENV_VAR).filter(|v| !v.is_empty()) {
            Some(p) => (PathBuf::from(p), "`HSM_UV`"),
            None => {
                let name = format!("uv{}", std::env::consts::EXE_SUFFIX);
                return search_path(OsStr::new(&name), path_var.as_deref()).ok_or(UvError::UvNotFound);
            }
        },
    };
    // A bare name is a command, looked up on `PATH`; anything else is a path.
    let found = if given.components().count() == 1 && !given.is_absolute() {
        search_path(given.as_os_str(), path_var.as_deref())
    } else {
        Some(std::path::absolute(&given).unwrap_or_else(|_| given.clone())).filter(|p| is_executable(p))
    };
    found.ok_or(UvError::UvNotExecutable { path: given, origin })
}

/// The first executable `name` in the folders of `path_var`.
fn search_path(name: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

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

/// Why a package is (re)installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "reason", content = "detail")]
pub enum InstallReason {
    /// hsm has not installed it before.
    New,
    /// hsm installed it, but it is no longer in the venv.
    Gone,
    /// hsm.yaml asks for it from another source than the one it came from.
    SourceChanged,
    /// Its build configuration (`pyproject.toml`, `setup.py`, `setup.cfg`) changed.
    BuildChanged,
    /// Something other than hsm changed it in the venv.
    ChangedOutsideHsm(String),
}

impl fmt::Display for InstallReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallReason::New => f.write_str("not installed yet"),
            InstallReason::Gone => f.write_str("no longer in the environment"),
            InstallReason::SourceChanged => f.write_str("its source changed"),
            InstallReason::BuildChanged => f.write_str("its build configuration changed"),
            InstallReason::ChangedOutsideHsm(what) => write!(f, "changed outside hsm: {what}"),
        }
    }
}

/// What a sync changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PythonChanges {
    /// Whether the venv was created or recreated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venv: Option<VenvChange>,
    /// Packages installed or reinstalled, in hsm.yaml's order.
    pub installed: Vec<PackageChange>,
    /// Packages uninstalled because hsm.yaml no longer asks for them.
    pub uninstalled: Vec<RemovedPackage>,
    /// Packages hsm.yaml no longer asks for that stay, because another installed
    /// distribution requires them; hsm no longer counts them as its own.
    pub kept: Vec<KeptPackage>,
}

impl PythonChanges {
    /// Whether the sync changed nothing.
    pub fn is_empty(&self) -> bool {
        self.venv.is_none() && self.installed.is_empty() && self.uninstalled.is_empty() && self.kept.is_empty()
    }
}

/// What happened to the venv itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VenvChange {
    /// There was none: uv created it.
    Created,
    /// Its interpreter was gone: uv recreated it, empty.
    Recreated,
}

/// A package a sync installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// Its name in hsm.yaml.
    pub name: String,
    /// Its distribution name.
    pub distribution: String,
    /// The version now installed.
    pub version: Option<String>,
    /// Why it was installed.
    pub reason: InstallReason,
}

/// A package a sync uninstalled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RemovedPackage {
    /// Its name in hsm.yaml, before it was removed from there.
    pub name: String,
    /// Its distribution name.
    pub distribution: String,
    /// The version that was installed.
    pub version: Option<String>,
}

/// A package no longer asked for that stays installed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeptPackage {
    /// Its name in hsm.yaml, before it was removed from there.
    pub name: String,
    /// Its distribution name.
    pub distribution: String,
    /// The installed distributions that require it.
    pub required_by: Vec<String>,
}

/// For `hsm status`: the venv and each asked-for package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PythonStatus {
    /// The venv.
    pub venv: VenvStatus,
    /// Each package hsm.yaml asks for, in its order.
    pub packages: Vec<PackageStatus>,
    /// Packages hsm installed that hsm.yaml no longer asks for: the next sync
    /// uninstalls them (or keeps them, when something still requires them).
    pub removed: Vec<String>,
}

/// The state of the venv.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VenvStatus {
    /// Present and usable.
    Ready,
    /// Not created yet.
    Missing,
    /// Its interpreter is gone: the next sync recreates it.
    Broken,
    /// The folder exists but is not a venv: sync refuses to touch it.
    NotAVenv,
}

/// The state of one asked-for package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageStatus {
    /// Its name in hsm.yaml.
    pub name: String,
    /// Its distribution name, when known.
    pub distribution: Option<String>,
    /// The version hsm installed, when installed.
    pub version: Option<String>,
    /// Installed, missing or stale.
    pub state: PackageState,
}

/// Whether an asked-for package is in place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum PackageState {
    /// Installed from the asked-for source: a sync leaves it alone.
    Installed,
    /// Not installed: the next sync installs it.
    Missing,
    /// Installed, but not as asked: the next sync reinstalls it.
    Stale {
        /// Why.
        reason: InstallReason,
    },
    /// hsm.yaml's entry can't be installed as it is (a sync would fail).
    Invalid {
        /// Why.
        message: String,
    },
}

/// Why hsm could not make the venv hold the asked-for packages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UvError {
    /// No uv anywhere.
    #[error(
        "`uv` was not found on `PATH`; install it with `pip install uv` or the official installer \
         (https://docs.astral.sh/uv/getting-started/installation/), or point `HSM_UV` at it"
    )]
    UvNotFound,
    /// The uv hsm was pointed at isn't an executable.
    #[error("`{}` (from {origin}) is not an executable uv", path.display())]
    UvNotExecutable {
        /// The path or name given.
        path: PathBuf,
        /// Where it came from.
        origin: &'static str,
    },
    /// uv could not be started.
    #[error("could not run `{}`", program.display())]
    Spawn {
        /// The uv binary.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `.venv` exists and is not a virtual environment.
    #[error("`{}` exists but is not a virtual environment (it has no `pyvenv.cfg`)", path.display())]
    NotAVenv {
        /// The folder.
        path: PathBuf,
    },
    /// `uv venv` failed.
    #[error("uv could not create the virtual environment `{}`:\n{}", path.display(), indent(message))]
    CreateVenv {
        /// The venv folder.
        path: PathBuf,
        /// uv's message.
        message: String,
    },
    /// A `path` or `editable` source that is no folder.
    #[error("package `{package}`: the folder `{}` does not exist", path.display())]
    PathNotFound {
        /// The package's name in hsm.yaml.
        package: String,
        /// The folder.
        path: PathBuf,
    },
    /// A `path` or `editable` source that is no Python project.
    #[error(
        "package `{package}`: `{}` is not a Python project (it has no `pyproject.toml`, `setup.py` or `setup.cfg`)",
        path.display()
    )]
    NotAPythonProject {
        /// The package's name in hsm.yaml.
        package: String,
        /// The folder.
        path: PathBuf,
    },
    /// A local project whose build files can't be read.
    #[error("package `{package}`: cannot read `{}`: {message}", path.display())]
    UnreadableProject {
        /// The package's name in hsm.yaml.
        package: String,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `pypi` source that does not start with a package name.
    #[error("package `{package}`: `{requirement}` is not a valid requirement: {reason}")]
    InvalidRequirement {
        /// The package's name in hsm.yaml.
        package: String,
        /// The requirement (credentials redacted).
        requirement: String,
        /// Why.
        reason: &'static str,
    },
    /// Two packages of hsm.yaml that are one distribution.
    #[error("packages `{first}` and `{second}` are both the distribution `{distribution}`")]
    SameDistribution {
        /// The first package's name.
        first: String,
        /// The second package's name.
        second: String,
        /// The distribution.
        distribution: String,
    },
    /// `uv pip install` failed; the venv is as it was.
    #[error("uv could not install {}:\n{}", backticked(packages), indent(message))]
    Install {
        /// The packages uv's message is about (all of the transaction when it names none).
        packages: Vec<String>,
        /// uv's message.
        message: String,
    },
    /// `uv pip uninstall` failed.
    #[error("uv could not uninstall {}:\n{}", backticked(packages), indent(message))]
    Uninstall {
        /// The packages.
        packages: Vec<String>,
        /// uv's message.
        message: String,
    },
    /// The run was abandoned (Ctrl-C, SIGTERM) and uv stopped: see
    /// [`PythonEnv::stop_on_drop`].
    #[error("uv was stopped: hsm was interrupted")]
    Stopped,
    /// The venv's files could not be read.
    #[error("cannot read the virtual environment at `{}`", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl UvError {
    /// Whether hsm.yaml (or a registry) asks for something that can't be installed
    /// as written, found before uv ran: the CLI's exit code 2, not 1.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            UvError::PathNotFound { .. }
                | UvError::NotAPythonProject { .. }
                | UvError::UnreadableProject { .. }
                | UvError::InvalidRequirement { .. }
                | UvError::SameDistribution { .. }
        )
    }

    /// What the user can do about it, when there is something to say.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            UvError::UvNotFound | UvError::UvNotExecutable { .. } => {
                "install uv with `pip install uv` (or `curl -LsSf https://astral.sh/uv/install.sh | sh`), \
                 or set `HSM_UV` to its path"
                    .into()
            }
            UvError::NotAVenv { path } => format!(
                "hsm keeps the project's packages in `{}`; move that folder away (or delete it if it holds nothing you need) and sync again",
                path.display()
            ),
            UvError::PathNotFound { .. } => {
                "check the package's `path` or `editable` in hsm.yaml or the registry".into()
            }
            UvError::NotAPythonProject { .. } => {
                "point the package at the folder that holds its `pyproject.toml`".into()
            }
            UvError::InvalidRequirement { .. } => {
                "write a PEP 508 requirement such as `requests>=2`, or use `path`/`editable` for a local folder".into()
            }
            UvError::SameDistribution { .. } => "keep one of them in hsm.yaml".into(),
            UvError::Install { .. } => "the environment was left as it was; fix the package and sync again".into(),
            _ => return None,
        })
    }
}

fn backticked(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn indent(message: &str) -> String {
    message.lines().map(|l| if l.is_empty() { String::new() } else { format!("  {l}") }).collect::<Vec<_>>().join("\n")
}

/// uv's message about a failure: its output from the first `error:` line on (the
/// progress lines before it say nothing about what went wrong), or all of it.
fn uv_message(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { stderr };
    let text = text.trim_end();
    let start = text.find("\nerror:").map_or(0, |i| i + 1);
    let text = if text.starts_with("error:") { text } else { &text[start..] };
    if text.is_empty() { format!("uv exited with {}", out.status) } else { text.to_string() }
}

/// An asked-for package, looked at before uv runs.
struct Wanted<'a> {
    name: &'a str,
    source: InstalledSource,
    /// Its arguments to `uv pip install`.
    args: Vec<OsString>,
    /// Its distribution name, when known before installing.
    distribution: Option<String>,
    /// For local sources, the digest of its build configuration.
    stamp: Option<String>,
}

impl Wanted<'_> {
    fn local(&self) -> Option<(&Path, bool)> {
        match &self.source {
            InstalledSource::Pypi(_) => None,
            InstalledSource::Path(p) => Some((p, false)),
            InstalledSource::Editable(p) => Some((p, true)),
        }
    }
}

/// Checks one asked-for package: a requirement must start with a name, a folder
/// must be a Python project. Reads its name and build configuration.
fn inspect<'a>(package: &'a PythonPackage, project_dir: &Path) -> Result<Wanted<'a>, UvError> {
    let name = package.name.as_str();
    let (path, editable) = match &package.source {
        PackageSource::Pypi(requirement) => {
            let dist = requirement_name(requirement).map_err(|reason| UvError::InvalidRequirement {
                package: name.into(),
                requirement: redact_credentials(requirement),
                reason,
            })?;
            return Ok(Wanted {
                name,
                source: InstalledSource::Pypi(redact_credentials(requirement)),
                args: vec![requirement.trim().into()],
                distribution: Some(normalize(dist)),
                stamp: None,
            });
        }
        PackageSource::Path(p) => (p, false),
        PackageSource::Editable(p) => (p, true),
    };
    // The planner hands absolute paths; a relative one is taken from the project.
    let path = project_dir.join(path);
    let local = project::inspect(&path).map_err(|e| match e {
        ProjectError::Missing => UvError::PathNotFound { package: name.into(), path: path.clone() },
        ProjectError::NotAProject => UvError::NotAPythonProject { package: name.into(), path: path.clone() },
        ProjectError::Unreadable { file, message } => {
            UvError::UnreadableProject { package: name.into(), path: path.join(file), message }
        }
    })?;
    let mut args: Vec<OsString> = Vec::new();
    if editable {
        args.push("--editable".into());
    }
    args.push(path.clone().into_os_string());
    Ok(Wanted {
        name,
        source: if editable { InstalledSource::Editable(path) } else { InstalledSource::Path(path) },
        args,
        distribution: local.name,
        stamp: Some(local.stamp),
    })
}

/// Inspects every asked-for package, refusing two that are one distribution.
fn inspect_all<'a>(desired: &'a [PythonPackage], project_dir: &Path) -> Result<Vec<Wanted<'a>>, UvError> {
    let wanted = desired.iter().map(|p| inspect(p, project_dir)).collect::<Result<Vec<_>, _>>()?;
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for w in &wanted {
        if let Some(dist) = &w.distribution
            && let Some(first) = seen.insert(dist, w.name)
        {
            return Err(UvError::SameDistribution {
                first: first.into(),
                second: w.name.into(),
                distribution: dist.clone(),
            });
        }
    }
    Ok(wanted)
}

/// The no-op check: whether `w` is installed as asked, from hsm's state and the
/// venv's files only. `Err` says why it must be (re)installed.
fn check(w: &Wanted<'_>, entry: Option<&InstalledPackage>, site: Option<&Path>) -> Result<(), InstallReason> {
    let entry = entry.ok_or(InstallReason::New)?;
    if entry.source != w.source {
        return Err(InstallReason::SourceChanged);
    }
    if entry.build_stamp != w.stamp || w.distribution.as_ref().is_some_and(|d| *d != entry.distribution) {
        return Err(InstallReason::BuildChanged);
    }
    let site = site.ok_or(InstallReason::Gone)?;
    let Some(dist_info) = &entry.dist_info else {
        // uv installed nothing for it: a requirement whose markers exclude this
        // environment. A local project always installs something.
        return if w.local().is_none() { Ok(()) } else { Err(InstallReason::Gone) };
    };
    let dir = site.join(dist_info);
    if !dir.is_dir() {
        return Err(InstallReason::Gone);
    }
    let changed = |what: String| InstallReason::ChangedOutsideHsm(what);
    match w.local() {
        None => match site::direct_url(&dir) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(changed(format!("`{}` was reinstalled from a URL or folder", entry.distribution))),
            Err(e) => Err(changed(format!("cannot read `{dist_info}/direct_url.json`: {e}"))),
        },
        Some((path, editable)) => {
            match site::installed_from(&dir, path, editable) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(changed(format!(
                        "`{}` is no longer installed from `{}`",
                        entry.distribution,
                        path.display()
                    )));
                }
                Err(e) => return Err(changed(format!("cannot read `{dist_info}/direct_url.json`: {e}"))),
            }
            if editable {
                match site::missing_pth(site, dist_info) {
                    Ok(None) => {}
                    Ok(Some(pth)) => return Err(changed(format!("`{pth}` is gone"))),
                    Err(e) => return Err(changed(format!("cannot read `{dist_info}/RECORD`: {e}"))),
                }
            }
            Ok(())
        }
    }
}

/// Makes the venv hold exactly the packages of `desired`, as far as hsm installed
/// them: creates `.venv` with `uv venv` when there is none (or recreates it when
/// its interpreter is gone), installs what is missing or changed in ONE
/// `uv pip install`, then uninstalls what `state` says hsm installed earlier and
/// `desired` no longer holds — unless another installed distribution still
/// requires it. Touches nothing else. With nothing to do, runs no process at all.
///
/// Every entry is checked before uv runs; when uv fails, the venv is left as it
/// was (and a venv this call created is removed). `state` is updated as changes
/// are made, so save it even when this fails.
pub fn sync(
    env: &PythonEnv,
    desired: &[PythonPackage],
    state: &mut PythonState,
    report: &dyn Fn(&str),
) -> Result<PythonChanges, UvError> {
    let wanted = inspect_all(desired, &env.project_dir)?;
    let mut changes = PythonChanges::default();
    let venv_io = |source| UvError::Io { path: env.venv.clone(), source };

    let health = site::health(&env.venv);
    match health {
        Health::NotAVenv => return Err(UvError::NotAVenv { path: env.venv.clone() }),
        Health::Missing | Health::Broken if wanted.is_empty() => {
            // Nothing asked for, no usable venv: what hsm installed is gone with it.
            state.packages.clear();
            return Ok(changes);
        }
        Health::Missing => {
            report(&format!("creating the virtual environment `{VENV_DIR}`"));
            env.create_venv(false)?;
            changes.venv = Some(VenvChange::Created);
        }
        Health::Broken => {
            report(&format!("recreating `{VENV_DIR}`: its interpreter `{}` is gone", env.python().display()));
            env.create_venv(true)?;
            changes.venv = Some(VenvChange::Recreated);
        }
        Health::Ready => {}
    }
    let created = changes.venv == Some(VenvChange::Created);
    let site_dir = site::site_packages(&env.venv).map_err(venv_io)?;

    let mut to_install: Vec<(&Wanted<'_>, InstallReason)> = Vec::new();
    for w in &wanted {
        let verdict = match changes.venv {
            // A new venv holds nothing.
            Some(_) => Err(if state.packages.contains_key(w.name) { InstallReason::Gone } else { InstallReason::New }),
            None => check(w, state.packages.get(w.name), site_dir.as_deref()),
        };
        if let Err(reason) = verdict {
            to_install.push((w, reason));
        }
    }

    // Distributions hsm installed that may have to go: (name in hsm.yaml, entry).
    let mut leaving: Vec<(String, InstalledPackage)> = Vec::new();

    if !to_install.is_empty() {
        let result = install(env, &to_install, site_dir.as_deref(), report);
        let site = match result {
            Ok(site) => site,
            Err(e) => {
                if created {
                    // Leave things as they were: there was no venv.
                    let _ = fs::remove_dir_all(&env.venv);
                }
                return Err(e);
            }
        };
        for (w, reason) in to_install {
            let found = match (&w.distribution, w.local()) {
                (Some(dist), _) => site.find(dist),
                (None, Some((path, editable))) => site.find_by_path(path, editable),
                (None, None) => None,
            };
            let distribution =
                found.map(|d| d.name.clone()).or_else(|| w.distribution.clone()).unwrap_or_else(|| normalize(w.name));
            let entry = InstalledPackage {
                source: w.source.clone(),
                distribution: distribution.clone(),
                version: found.map(|d| d.version.clone()),
                dist_info: found.map(|d| d.dist_info.clone()),
                build_stamp: w.stamp.clone(),
            };
            changes.installed.push(PackageChange {
                name: w.name.into(),
                distribution,
                version: entry.version.clone(),
                reason,
            });
            if let Some(previous) = state.packages.insert(w.name.to_string(), entry)
                && previous.distribution != state.packages[w.name].distribution
            {
                // The project was renamed: the old distribution is hsm's to remove.
                leaving.push((w.name.to_string(), previous));
            }
        }
    }

    let wanted_names: BTreeSet<&str> = wanted.iter().map(|w| w.name).collect();
    let gone: Vec<String> = state.packages.keys().filter(|n| !wanted_names.contains(n.as_str())).cloned().collect();
    for name in gone {
        if let Some(entry) = state.packages.remove(&name) {
            leaving.push((name, entry));
        }
    }
    if !leaving.is_empty() {
        remove(env, leaving, state, &mut changes, report)?;
    }
    Ok(changes)
}

/// Runs the one `uv pip install` for `to_install`, returning site-packages after.
fn install(
    env: &PythonEnv,
    to_install: &[(&Wanted<'_>, InstallReason)],
    site_dir: Option<&Path>,
    report: &dyn Fn(&str),
) -> Result<Site, UvError> {
    let site_io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UvError::Io { path, source }
    };
    let mut args: Vec<OsString> =
        vec!["pip".into(), "install".into(), "--python".into(), env.python().into(), "--color".into(), "never".into()];
    // uv keeps an installed distribution that satisfies a plain requirement, even
    // one installed from a folder: a package that moves from a local source to the
    // index has to be reinstalled explicitly. (Local sources are always rebuilt.)
    if let Some(dir) = site_dir {
        let before = Site::read(dir).map_err(site_io(dir))?;
        for (w, _) in to_install {
            if w.local().is_none()
                && let Some(dist) = w.distribution.as_deref().and_then(|d| before.find(d))
                && matches!(site::direct_url(&dir.join(&dist.dist_info)), Ok(Some(_)))
            {
                args.extend(["--reinstall-package".into(), dist.name.clone().into()]);
            }
        }
    }
    for (w, _) in to_install {
        args.extend(w.args.iter().cloned());
    }
    let list: Vec<String> = to_install.iter().map(|(w, _)| format!("`{}` ({})", w.name, w.source)).collect();
    report(&format!("installing {}", list.join(", ")));
    let out = env.run_uv(&args)?;
    if !out.status.success() {
        let message = uv_message(&out);
        return Err(UvError::Install { packages: blame(to_install, &message), message });
    }
    let dir = site::site_packages(&env.venv)
        .map_err(site_io(&env.venv))?
        .ok_or_else(|| UvError::Io { path: env.venv.clone(), source: io::Error::other("no site-packages folder") })?;
    Site::read(&dir).map_err(site_io(&dir))
}

/// The packages of a failed install that uv's message names (by distribution
/// name in any spelling, or by folder); all of them when it names none.
fn blame(to_install: &[(&Wanted<'_>, InstallReason)], message: &str) -> Vec<String> {
    let words: BTreeSet<String> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter(|w| !w.is_empty())
        .map(|w| normalize(w.trim_matches('.')))
        .collect();
    let named: Vec<String> = to_install
        .iter()
        .filter(|(w, _)| {
            w.distribution.as_ref().is_some_and(|d| words.contains(d))
                || w.local().is_some_and(|(p, _)| {
                    let p = p.display().to_string();
                    message.contains(&p) || message.contains(&p.replace(' ', "%20"))
                })
        })
        .map(|(w, _)| w.name.to_string())
        .collect();
    if named.is_empty() { to_install.iter().map(|(w, _)| w.name.to_string()).collect() } else { named }
}

/// Uninstalls the distributions of `leaving` that nothing needs any more.
fn remove(
    env: &PythonEnv,
    leaving: Vec<(String, InstalledPackage)>,
    state: &mut PythonState,
    changes: &mut PythonChanges,
    report: &dyn Fn(&str),
) -> Result<(), UvError> {
    let still_wanted: BTreeSet<&str> = state.packages.values().map(|e| e.distribution.as_str()).collect();
    let Some(dir) = site::site_packages(&env.venv).map_err(|source| UvError::Io { path: env.venv.clone(), source })?
    else {
        return Ok(());
    };
    let site = Site::read(&dir).map_err(|source| UvError::Io { path: dir.clone(), source })?;
    // Another entry of hsm.yaml is the same distribution, or it's gone already:
    // only the record goes.
    let leaving: Vec<_> = leaving
        .into_iter()
        .filter(|(_, e)| !still_wanted.contains(e.distribution.as_str()) && site.find(&e.distribution).is_some())
        .collect();
    let dists: Vec<String> = leaving.iter().map(|(_, e)| e.distribution.clone()).collect();
    let needed = site.requirers(&dists).map_err(|source| UvError::Io { path: dir.clone(), source })?;

    let mut uninstall = Vec::new();
    for (name, entry) in leaving {
        match needed.get(&entry.distribution) {
            Some(by) => {
                report(&format!("keeping `{name}`, no longer in hsm.yaml: {} still requires it", backticked(by)));
                changes.kept.push(KeptPackage { name, distribution: entry.distribution, required_by: by.clone() });
            }
            None => uninstall.push((name, entry)),
        }
    }
    if uninstall.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = uninstall.iter().map(|(n, _)| n.clone()).collect();
    report(&format!("uninstalling {}", backticked(&names)));
    let mut args: Vec<OsString> = vec![
        "pip".into(),
        "uninstall".into(),
        "--python".into(),
        env.python().into(),
        "--color".into(),
        "never".into(),
    ];
    args.extend(uninstall.iter().map(|(_, e)| OsString::from(&e.distribution)));
    let failed = match env.run_uv(&args) {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(UvError::Uninstall { packages: names, message: uv_message(&out) }),
        Err(e) => Some(e),
    };
    if let Some(e) = failed {
        // Still hsm's: the next sync tries again.
        for (name, entry) in uninstall {
            state.packages.insert(name, entry);
        }
        return Err(e);
    }
    changes.uninstalled.extend(uninstall.into_iter().map(|(name, e)| RemovedPackage {
        name,
        distribution: e.distribution,
        version: e.version,
    }));
    Ok(())
}

/// For `hsm status`: which asked-for packages are installed, missing or stale,
/// by the same check a sync makes. Runs no process.
pub fn status(env: &PythonEnv, desired: &[PythonPackage], state: &PythonState) -> PythonStatus {
    let venv = match site::health(&env.venv) {
        Health::Ready => VenvStatus::Ready,
        Health::Missing => VenvStatus::Missing,
        Health::Broken => VenvStatus::Broken,
        Health::NotAVenv => VenvStatus::NotAVenv,
    };
    let site_dir = if venv == VenvStatus::Ready { site::site_packages(&env.venv).ok().flatten() } else { None };
    let packages = desired
        .iter()
        .map(|p| {
            let entry = state.packages.get(&p.name);
            let (distribution, state) = match inspect(p, &env.project_dir) {
                Err(e) => (None, PackageState::Invalid { message: e.to_string() }),
                Ok(w) => {
                    let state = match check(&w, entry, site_dir.as_deref()) {
                        Ok(()) => PackageState::Installed,
                        Err(InstallReason::New | InstallReason::Gone) => PackageState::Missing,
                        Err(reason) => PackageState::Stale { reason },
                    };
                    (w.distribution.or_else(|| entry.map(|e| e.distribution.clone())), state)
                }
            };
            let version = match state {
                PackageState::Installed | PackageState::Stale { .. } => entry.and_then(|e| e.version.clone()),
                _ => None,
            };
            PackageStatus { name: p.name.clone(), distribution, version, state }
        })
        .collect();
    let removed = state.packages.keys().filter(|name| !desired.iter().any(|p| &p.name == *name)).cloned().collect();
    PythonStatus { venv, packages, removed }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().into())).collect();
        move |key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn fake_uv(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn uv_is_found_explicit_then_hsm_uv_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let on_path = fake_uv(&bin, "uv");
        let pointed = fake_uv(dir.path(), "my-uv");
        let explicit = fake_uv(dir.path(), "other-uv");

        let env = env_of(&[("PATH", &bin)]);
        assert_eq!(PythonEnv::with_env(dir.path(), None, &env).unwrap().uv(), on_path);
        let env = env_of(&[("PATH", &bin), ("HSM_UV", &pointed)]);
        assert_eq!(PythonEnv::with_env(dir.path(), None, &env).unwrap().uv(), pointed);
        assert_eq!(PythonEnv::with_env(dir.path(), Some(explicit.clone()), &env).unwrap().uv(), explicit);
        // A bare name is looked up on PATH.
        let env = env_of(&[("PATH", &bin), ("HSM_UV", Path::new("uv"))]);
        assert_eq!(PythonEnv::with_env(dir.path(), None, &env).unwrap().uv(), on_path);
    }

    #[test]
    fn missing_uv_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = PythonEnv::with_env(dir.path(), None, &env_of(&[("PATH", dir.path())])).unwrap_err();
        assert!(matches!(err, UvError::UvNotFound));
        assert!(err.to_string().contains("`pip install uv`"), "{err}");
        assert!(err.hint().unwrap().contains("HSM_UV"));

        let not_exec = dir.path().join("uv-data");
        fs::write(&not_exec, "").unwrap();
        let err = PythonEnv::with_env(dir.path(), None, &env_of(&[("HSM_UV", &not_exec)])).unwrap_err();
        assert!(matches!(err, UvError::UvNotExecutable { origin: "`HSM_UV`", .. }), "{err}");
    }

    #[test]
    fn activation_puts_the_venv_first() {
        let dir = tempfile::tempdir().unwrap();
        let uv = fake_uv(dir.path(), "uv");
        let env = PythonEnv::with_env(dir.path(), Some(uv), &env_of(&[])).unwrap();
        let vars = env.activation_env(Some(OsStr::new("/usr/bin:/bin")));
        let venv = dir.path().join(".venv");
        assert_eq!(
            vars,
            [
                (OsString::from("VIRTUAL_ENV"), venv.clone().into_os_string()),
                (OsString::from("PATH"), OsString::from(format!("{}/bin:/usr/bin:/bin", venv.display()))),
            ]
        );
        assert_eq!(env.activation_env(None)[1].1, venv.join("bin").into_os_string());
        // The same without a uv, for `hsm run`.
        assert_eq!(activation_env(&venv, Some(OsStr::new("/usr/bin:/bin"))), vars);
        assert!(!venv_exists(&venv));
    }

    fn pkg(name: &str, source: PackageSource) -> PythonPackage {
        PythonPackage { name: name.into(), source }
    }

    #[test]
    fn requirements_are_checked_and_redacted() {
        let err = inspect(&pkg("evil", PackageSource::Pypi("--index-url=https://u:p@x/".into())), Path::new("/"))
            .err()
            .unwrap();
        assert!(matches!(err, UvError::InvalidRequirement { .. }));
        assert!(!err.to_string().contains("u:p"), "{err}");

        let lib = pkg("lib", PackageSource::Pypi("Lib_X @ https://u:tok@host/x.whl".into()));
        let w = inspect(&lib, Path::new("/")).unwrap();
        assert_eq!(w.distribution.as_deref(), Some("lib-x"));
        assert_eq!(w.source, InstalledSource::Pypi("Lib_X @ https://***@host/x.whl".into()));
        assert_eq!(w.args, [OsString::from("Lib_X @ https://u:tok@host/x.whl")]);
    }

    #[test]
    fn one_distribution_twice_is_refused() {
        let desired = [pkg("a", PackageSource::Pypi("Foo>=1".into())), pkg("b", PackageSource::Pypi("foo".into()))];
        let err = inspect_all(&desired, Path::new("/")).err().unwrap();
        assert_eq!(err.to_string(), "packages `a` and `b` are both the distribution `foo`");
        assert!(err.is_bad_input());
        assert!(!UvError::UvNotFound.is_bad_input());
    }

    #[test]
    fn blame_names_the_packages_uv_mentions() {
        let a = Wanted {
            name: "a",
            source: InstalledSource::Pypi("zz-nope".into()),
            args: vec![],
            distribution: Some("zz-nope".into()),
            stamp: None,
        };
        let b = Wanted {
            name: "b",
            source: InstalledSource::Editable("/tmp/with space/b".into()),
            args: vec![],
            distribution: None,
            stamp: None,
        };
        let both = [(&a, InstallReason::New), (&b, InstallReason::New)];
        assert_eq!(blame(&both, "Because zz_nope was not found in the package registry"), ["a"]);
        assert_eq!(blame(&both, "Failed to build `b @ file:///tmp/with%20space/b`"), ["b"]);
        assert_eq!(blame(&both, "network is down"), ["a", "b"]);
    }

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
