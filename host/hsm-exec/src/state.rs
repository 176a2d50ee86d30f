//! What hsm remembers between runs, in `.hsm/state.json`, and the lock that keeps
//! two runs from changing one project at once (`.hsm/lock`).
//!
//! The Docker engine's labels are the truth about which containers exist; the state
//! holds only what the engine can't say: the host ports hsm chose (so they stay
//! stable across recreations and `hsm down`), which `exec` actions already ran in a
//! container instance, and when a container was last seen ready. It never holds a
//! secret: values that must be compared are keyed fingerprints. Writes are atomic
//! (a temporary file renamed over the old one), so an interrupted run leaves either
//! the old state or the new one.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::ProjectId;
use crate::uv::PythonState;

/// The version of the state file's format.
pub const STATE_VERSION: u32 = 1;

/// Everything hsm remembers about one project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The format's version.
    pub version: u32,
    /// The project's name when the state was written.
    pub project: String,
    /// The project's folder when the state was written.
    pub project_dir: String,
    /// Per service instance.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceState>,
    /// What the Python side (uv) remembers: absent until a sync has run uv (then
    /// written even when empty, as `{}`).
    #[serde(default, deserialize_with = "lenient_python", skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonState>,
    /// The packages' tasks' last runs, by `package/name`.
    #[serde(default, deserialize_with = "lenient_tasks", skip_serializing_if = "BTreeMap::is_empty")]
    pub tasks: BTreeMap<String, crate::tasks::TaskRecord>,
}

/// Reads [`State::python`] as the untyped section it replaced was read: `null`
/// is none, and a section that is not a [`PythonState`] (damaged by hand) loads
/// as an empty one rather than making the whole state unreadable.
fn lenient_python<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PythonState>, D::Error> {
    let section = Option::<serde_json::Value>::deserialize(d)?;
    Ok(section.map(|v| serde_json::from_value(v).unwrap_or_default()))
}

/// Reads [`State::tasks`] leniently, like [`State::python`]: an entry damaged by
/// hand is forgotten (its task runs again) instead of the whole state failing.
fn lenient_tasks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, crate::tasks::TaskRecord>, D::Error> {
    let section = Option::<serde_json::Value>::deserialize(d)?;
    let Some(serde_json::Value::Object(entries)) = section else { return Ok(BTreeMap::new()) };
    Ok(entries.into_iter().filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?))).collect())
}

/// What hsm remembers about one service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Per container, by short name.
    #[serde(default)]
    pub containers: BTreeMap<String, ContainerState>,
}

/// What hsm remembers about one container.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    /// The host port chosen for each container port (`5432/tcp`), kept when the
    /// container is recreated or removed so that clients keep working.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    /// The container instance the fields below are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Hashes of the `exec` actions that completed in that instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub execs: Vec<String>,
    /// The instance's start time (Docker's `StartedAt`) when its service's probes
    /// last passed: while it is unchanged, the instance has not restarted since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<String>,
}

impl ContainerState {
    /// Forgets what was about an instance that is gone, keeping the ports.
    pub fn new_instance(&mut self, id: &str) {
        if self.id.as_deref() != Some(id) {
            self.id = Some(id.to_string());
            self.execs.clear();
            self.ready_at = None;
        }
    }
}

/// A port's key in [`ContainerState::ports`].
pub fn port_key(port: u16, protocol: hsm_plan::Protocol) -> String {
    match protocol {
        hsm_plan::Protocol::Tcp => format!("{port}/tcp"),
        hsm_plan::Protocol::Udp => format!("{port}/udp"),
    }
}

/// The protocol of a port's key (as [`port_key`] and Docker write it: `5432/tcp`,
/// `53/udp`); a key without one is TCP, as Docker takes it.
pub fn key_protocol(key: &str) -> hsm_plan::Protocol {
    if key.ends_with("/udp") { hsm_plan::Protocol::Udp } else { hsm_plan::Protocol::Tcp }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not a state file this hsm understands.
    #[error("`{}` is not a state file this version of hsm understands: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Another hsm holds the project's lock.
    #[error("another `hsm {}` is running in this project{}", command.as_deref().unwrap_or("sync"), pid.map(|p| format!(" (process {p})")).unwrap_or_default())]
    Locked {
        /// The command that holds it, when it said.
        command: Option<String>,
        /// Its process id, when it said.
        pid: Option<u32>,
    },
}

impl hsm_model::Explain for StateError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Locked { .. } => Some("wait for it to finish, then run this again".into()),
            Self::Invalid { path, .. } => Some(format!(
                "move `{}` away and run `hsm sync` again; hsm will rebuild it from the Docker engine's labels",
                path.display()
            )),
            Self::Io { .. } => None,
        }
    }
}

fn io_err<'p>(action: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> StateError + 'p {
    move |source| StateError::Io { action, path: path.to_path_buf(), source }
}

/// The state file of a project.
pub fn state_path(project: &ProjectId) -> PathBuf {
    project.hsm_dir().join("state.json")
}

impl State {
    /// A fresh state for a project.
    pub fn new(project: &ProjectId) -> Self {
        Self {
            version: STATE_VERSION,
            project: project.name.clone(),
            project_dir: project.dir_label(),
            services: BTreeMap::new(),
            python: None,
            tasks: BTreeMap::new(),
        }
    }

    /// Reads the project's state, or a fresh one when there is none.
    pub fn load(project: &ProjectId) -> Result<Self, StateError> {
        let path = state_path(project);
        // Bytes, not a string: a file damaged into invalid UTF-8 is a damaged state
        // (with its way out), not a failure to read.
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::new(project)),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mut state: Self = serde_json::from_slice(&bytes)
            .map_err(|e| StateError::Invalid { path: path.clone(), message: e.to_string() })?;
        if state.version != STATE_VERSION {
            return Err(StateError::Invalid { path, message: format!("format version {}", state.version) });
        }
        // A project renamed or moved keeps its ports; the new identity is written next time.
        state.project = project.name.clone();
        state.project_dir = project.dir_label();
        Ok(state)
    }

    /// Writes the state atomically.
    pub fn save(&self, project: &ProjectId) -> Result<(), StateError> {
        let dir = ensure_hsm_dir(project)?;
        let path = dir.join("state.json");
        let tmp = dir.join(format!(".state.json.{}.tmp", std::process::id()));
        let mut text = serde_json::to_string_pretty(self).expect("the state serializes");
        text.push('\n');
        let write = || -> io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("write", &path)(e)
        })
    }

    /// The state of a container, created when missing.
    pub fn container_mut(&mut self, service: &str, container: &str) -> &mut ContainerState {
        self.services.entry(service.to_string()).or_default().containers.entry(container.to_string()).or_default()
    }

    /// The state of a container.
    pub fn container(&self, service: &str, container: &str) -> Option<&ContainerState> {
        self.services.get(service)?.containers.get(container)
    }
}

/// Creates `.hsm/` (with a `.gitignore` that keeps it out of version control) and
/// returns it.
pub fn ensure_hsm_dir(project: &ProjectId) -> Result<PathBuf, StateError> {
    let dir = project.hsm_dir();
    if !dir.is_dir() {
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let ignore = dir.join(".gitignore");
        fs::write(&ignore, "# Written by hsm: machine-local state, never commit it.\n*\n")
            .map_err(io_err("write", &ignore))?;
    }
    Ok(dir)
}

/// The project's lock, held while a command changes the project. Released when
/// dropped (and by the OS when the process dies, so a crash leaves no stale lock).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock for `command` (`sync`, `down`), or says who holds it.
    pub fn acquire(project: &ProjectId, command: &str) -> Result<Self, StateError> {
        let dir = ensure_hsm_dir(project)?;
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        // The holder names itself just after it takes the lock and clears its name
        // as it lets go: a file without a name is one of those moments, so look
        // again (or take the lock) shortly rather than refuse without saying who
        // holds it (found by scripts/soak).
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut holder));
                    let mut words = holder.split_whitespace();
                    let command = words.next().map(str::to_string);
                    let pid = words.next().and_then(|p| p.parse().ok());
                    if pid.is_none() && tries < 50 {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                    return Err(StateError::Locked { command, pid });
                }
                Err(TryLockError::Error(e)) => return Err(io_err("lock", &path)(e)),
            }
        }
        // Who holds it, for the message another run prints.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.write_all(format!("{command} {}\n", std::process::id()).as_bytes());
        Ok(Self { _file: file })
    }
}

impl Drop for Lock {
    /// Clears the holder's name, so that a run that ends leaves none behind for
    /// the next refusal to show.
    fn drop(&mut self) {
        let _ = self._file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::Explain;

    use super::*;

    fn project(dir: &Path) -> ProjectId {
        ProjectId::new("demo", dir)
    }

    #[test]
    fn a_ports_key_gives_back_its_protocol() {
        for protocol in [hsm_plan::Protocol::Tcp, hsm_plan::Protocol::Udp] {
            assert_eq!(key_protocol(&port_key(5432, protocol)), protocol);
        }
        assert_eq!(key_protocol("5432"), hsm_plan::Protocol::Tcp);
    }

    #[test]
    fn state_round_trips_atomically_and_ignores_itself_in_git() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        assert_eq!(State::load(&p).unwrap(), State::new(&p));
        let mut s = State::new(&p);
        let c = s.container_mut("postgres", "server");
        c.ports.insert("5432/tcp".into(), 49_000);
        c.new_instance("abc");
        c.execs.push("h1".into());
        s.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        assert!(fs::read_to_string(p.hsm_dir().join(".gitignore")).unwrap().contains('*'));
        let leftovers: Vec<_> = fs::read_dir(p.hsm_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    }

    #[test]
    fn a_new_instance_forgets_execs_but_keeps_ports() {
        let mut c = ContainerState::default();
        c.ports.insert("5432/tcp".into(), 1);
        c.new_instance("a");
        c.execs.push("x".into());
        c.ready_at = Some("t".into());
        c.new_instance("a");
        assert_eq!(c.execs.len(), 1);
        c.new_instance("b");
        assert!(c.execs.is_empty() && c.ready_at.is_none());
        assert_eq!(c.ports["5432/tcp"], 1);
    }

    #[test]
    fn a_second_lock_names_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        let held = Lock::acquire(&p, "sync").unwrap();
        let err = Lock::acquire(&p, "down").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("another `hsm sync` is running in this project (process {})", std::process::id())
        );
        drop(held);
        Lock::acquire(&p, "down").unwrap();
    }

    /// A second run that looks while the holder has taken the lock but not yet
    /// written its name waits for the name, instead of refusing without saying
    /// who holds the lock (found by scripts/soak).
    #[test]
    fn a_refusal_names_a_holder_that_is_still_writing_its_name() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        let path = ensure_hsm_dir(&p).unwrap().join("lock");
        let mut holder = OpenOptions::new().write(true).create(true).truncate(true).open(&path).unwrap();
        holder.try_lock().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            holder.write_all(b"sync 4242\n").unwrap();
            holder
        });
        let err = Lock::acquire(&p, "sync").unwrap_err();
        assert_eq!(err.to_string(), "another `hsm sync` is running in this project (process 4242)");
        drop(writer.join().unwrap());
        drop(Lock::acquire(&p, "down").unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "", "a lock let go leaves no name");
    }

    #[test]
    fn a_damaged_state_file_is_reported_with_a_way_out() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        ensure_hsm_dir(&p).unwrap();
        fs::write(state_path(&p), "{ not json").unwrap();
        let err = State::load(&p).unwrap_err();
        assert!(err.to_string().contains("not a state file"), "{err}");
        assert!(err.hint().unwrap().contains("hsm sync"));
    }

    /// Found by fuzzing: a state file that is not UTF-8 was a read error, without
    /// the way out a damaged state file gets.
    #[test]
    fn a_state_file_that_is_not_utf8_is_reported_as_damaged() {
        let tmp = tempfile::tempdir().unwrap();
        let p = project(tmp.path());
        ensure_hsm_dir(&p).unwrap();
        fs::write(state_path(&p), b"{\"version\": 1, \"project\": \"\xff\"}").unwrap();
        let err = State::load(&p).unwrap_err();
        assert!(matches!(err, StateError::Invalid { .. }), "{err:?}");
        assert!(err.hint().unwrap().contains("hsm sync"));
    }

    /// A state file as hsm writes it, Python section included.
    const TODAYS_STATE: &str = r#"{
  "version": 1,
  "project": "demo",
  "project_dir": "/src/demo",
  "services": {
    "postgres": {
      "containers": {
        "server": {
          "ports": {
            "5432/tcp": 49153
          },
          "id": "abc",
          "execs": [
            "h1"
          ],
          "ready_at": "2025-01-01T00:00:00Z"
        }
      }
    }
  },
  "python": {
    "packages": {
      "api": {
        "source": {
          "editable": "/src/demo/api"
        },
        "distribution": "demo-api",
        "version": "0.1.0",
        "dist_info": "demo_api-0.1.0.dist-info",
        "build_stamp": "f00d"
      },
      "lib": {
        "source": {
          "path": "/src/lib"
        },
        "distribution": "lib",
        "dist_info": "lib-1.0.dist-info",
        "build_stamp": "beef"
      },
      "requests": {
        "source": {
          "pypi": "requests>=2"
        },
        "distribution": "requests",
        "version": "2.32.3",
        "dist_info": "requests-2.32.3.dist-info"
      }
    }
  }
}
"#;

    #[test]
    fn todays_state_files_load_typed_and_are_written_back_unchanged() {
        // The sample is in the form `save` writes (the untyped section was
        // written the same way).
        let canonical: serde_json::Value = serde_json::from_str(TODAYS_STATE).unwrap();
        assert_eq!(format!("{}\n", serde_json::to_string_pretty(&canonical).unwrap()), TODAYS_STATE);

        let tmp = tempfile::tempdir().unwrap();
        let p = ProjectId { name: "demo".into(), dir: tmp.path().to_path_buf() };
        let text = TODAYS_STATE.replace("/src/demo\"", &format!("{}\"", p.dir_label()));
        ensure_hsm_dir(&p).unwrap();
        fs::write(state_path(&p), &text).unwrap();
        let state = State::load(&p).unwrap();
        let python = state.python.as_ref().expect("the Python section");
        assert_eq!(python.packages.keys().collect::<Vec<_>>(), ["api", "lib", "requests"]);
        let api = &python.packages["api"];
        assert_eq!(api.source, crate::uv::InstalledSource::Editable("/src/demo/api".into()));
        assert_eq!(api.version.as_deref(), Some("0.1.0"));
        assert_eq!(python.packages["lib"].version, None);
        assert_eq!(python.packages["requests"].source, crate::uv::InstalledSource::Pypi("requests>=2".into()));
        state.save(&p).unwrap();
        assert_eq!(fs::read_to_string(state_path(&p)).unwrap(), text);
    }

    #[test]
    fn the_python_section_keeps_its_three_shapes() {
        let load = |python: &str| -> State {
            let text = format!(r#"{{"version": 1, "project": "demo", "project_dir": "/d"{python}}}"#);
            serde_json::from_str(&text).unwrap()
        };
        let write = |state: &State| serde_json::to_value(state).unwrap().get("python").cloned();
        // No uv run yet: absent, and not written.
        for absent in ["", r#", "python": null"#] {
            let state = load(absent);
            assert_eq!(state.python, None);
            assert_eq!(write(&state), None);
        }
        // uv ran and installed nothing: written as `{}`.
        let empty = load(r#", "python": {}"#);
        assert_eq!(empty.python, Some(PythonState::default()));
        assert_eq!(write(&empty), Some(serde_json::json!({})));
        // A section damaged by hand does not make the state unreadable.
        assert_eq!(load(r#", "python": {"packages": 3}"#).python, Some(PythonState::default()));
    }
}
