//! Package tasks (migrations, seed data): a command run with the package's
//! environment, in the project's Python environment, from the package's folder.
//! A sync runs a task only when what it depends on changed since it last
//! succeeded — its command, its package's source, its environment — which the
//! state remembers as keyed fingerprints (never values); `hsm task` always runs it.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::process::Stdio;

use hsm_key::UserKey;
use hsm_model::Sensitive;
use hsm_plan::{Action, PackageSource, Plan, Task};
use serde::{Deserialize, Serialize};

use crate::uv::PythonState;

/// How many of a task's last output lines a failure shows.
pub const TAIL_LINES: usize = 40;

/// What a task depends on, each as a keyed fingerprint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInputs {
    /// The command and the folder it runs in.
    pub command: String,
    /// The package's source: its requirement and installed version, or its files.
    pub source: String,
    /// The package's environment (names and values).
    pub env: String,
}

impl TaskInputs {
    /// Why a task with these inputs runs again after one with `before`.
    pub fn changed_since(&self, before: &Self) -> Option<&'static str> {
        if self.command != before.command {
            Some("its command changed")
        } else if self.source != before.source {
            Some("its package changed")
        } else if self.env != before.env {
            Some("its environment changed")
        } else {
            None
        }
    }
}

/// What the state remembers of a task's last run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// What it depended on when it last succeeded; `None` if it never did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded_with: Option<TaskInputs>,
    /// Whether the last run succeeded.
    pub ok: bool,
    /// The last run's exit code (`None`: ended by a signal or not started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// When the last run ended, as seconds since the Unix epoch.
    pub finished_at: u64,
}

impl TaskRecord {
    /// A record of a run that ended now.
    pub fn now(ok: bool, code: Option<i32>, inputs: &TaskInputs, before: Option<&TaskRecord>) -> Self {
        let finished_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // A failed run keeps what the last success depended on: the next sync runs
        // it again anyway (`ok` is false).
        let succeeded_with = if ok { Some(inputs.clone()) } else { before.and_then(|b| b.succeeded_with.clone()) };
        Self { succeeded_with, ok, code, finished_at }
    }

    /// Why a sync would run the task again, or `None` when it is up to date.
    pub fn why_run(record: Option<&Self>, inputs: &TaskInputs) -> Option<&'static str> {
        match record {
            None => Some("it has not run yet"),
            Some(r) if !r.ok => Some("its last run failed"),
            Some(r) => match &r.succeeded_with {
                None => Some("it has not succeeded yet"),
                Some(before) => inputs.changed_since(before),
            },
        }
    }
}

/// The fingerprints of what `task` depends on, keyed with the user's key.
pub fn inputs(
    task: &Task,
    plan: &Plan,
    project_dir: &Path,
    python: Option<&PythonState>,
    env: &[(String, Sensitive)],
    key: &UserKey,
) -> TaskInputs {
    let mut command: Vec<&[u8]> = vec![b"task command", task.dir.as_bytes()];
    command.extend(task.run.iter().map(|a| a.as_bytes()));
    let source = source_stamp(task, plan, project_dir, python);
    let mut pairs: Vec<&(String, Sensitive)> = env.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut env_parts: Vec<&[u8]> = vec![b"task env"];
    for (name, value) in pairs {
        env_parts.push(name.as_bytes());
        env_parts.push(value.expose().as_bytes());
    }
    let hex = |parts: &[&[u8]]| hex::encode(&key.mac(parts)[..16]);
    TaskInputs { command: hex(&command), source: hex(&[b"task source", source.as_bytes()]), env: hex(&env_parts) }
}

/// What identifies the installed package a task belongs to: for a requirement, the
/// requirement and the version uv installed; for a local folder, the path, size
/// and modification time of every file in it (but hidden folders, `__pycache__`
/// and `*.pyc`); for a package without a source, nothing.
fn source_stamp(task: &Task, plan: &Plan, project_dir: &Path, python: Option<&PythonState>) -> String {
    let source = plan.services.iter().flat_map(|s| &s.actions).find_map(|a| match a {
        Action::UvInstall { packages } => packages.iter().find(|p| p.name == task.package).map(|p| &p.source),
        _ => None,
    });
    match source {
        None => "none".to_string(),
        Some(PackageSource::Pypi(requirement)) => {
            let version =
                python.and_then(|p| p.packages.get(&task.package)).and_then(|p| p.version.as_deref()).unwrap_or("-");
            format!("pypi {requirement} {version}")
        }
        Some(PackageSource::Path(dir) | PackageSource::Editable(dir)) => {
            let root = project_dir.join(dir);
            let mut stamp = format!("path {}\n", root.display());
            files_stamp(&root, &root, &mut stamp);
            stamp
        }
    }
}

fn files_stamp(root: &Path, dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if !name.starts_with('.') && name != "__pycache__" {
                files_stamp(root, &entry.path(), out);
            }
        } else if !name.ends_with(".pyc") {
            use std::os::unix::fs::MetadataExt;
            let rel = entry.path();
            let rel = rel.strip_prefix(root).unwrap_or(&rel);
            out.push_str(&format!("{} {} {}.{}\n", rel.display(), meta.len(), meta.mtime(), meta.mtime_nsec()));
        }
    }
}

/// The exit code a shell gives a command that could not start: 127 when there
/// is no such program, else 126.
pub fn could_not_start(e: &io::Error) -> i32 {
    if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 }
}

/// How a task's run ended.
#[derive(Debug)]
pub struct TaskEnd {
    /// Its exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    /// Its last output lines.
    pub tail: Vec<String>,
}

impl TaskEnd {
    /// Whether it succeeded.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `task` with `env` (values) from its folder, in the project's Python
/// environment (as `hsm run` does), giving every line it prints to `line` as it
/// comes. The task ends when its process does; what it started in the
/// background is stopped then (its process group gets SIGTERM, then SIGKILL).
/// Dropping the future stops the task the same way.
pub async fn run(
    task: &Task,
    project_dir: &Path,
    env: &[(String, Sensitive)],
    line: &mut dyn FnMut(&str),
) -> io::Result<TaskEnd> {
    let (program, args) = task.run.split_first().ok_or_else(|| io::Error::other("the task has no command"))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).current_dir(project_dir.join(&task.dir));
    for (name, value) in env {
        cmd.env(name, value.expose());
    }
    crate::uv::activate(&mut cmd, project_dir);
    // One pipe for both streams, as a terminal shows them: in the order written.
    let (reader, writer) = io::pipe()?;
    cmd.stdin(Stdio::null()).stdout(writer.try_clone()?).stderr(writer);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let spawned = tokio::process::Command::from(cmd).kill_on_drop(true).spawn();
    // Our copies of the writing end are gone with `cmd`: the pipe ends with the task.
    let mut child = spawned?;
    let mut group = StopGroup(child.id());
    // The leader is reaped below; its group id stays the group's until the group
    // is empty, so signalling the group never reaches another process.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        let mut reader = io::BufReader::new(reader);
        let mut buf = Vec::new();
        while matches!(io::BufRead::read_until(&mut reader, b'\n', &mut buf), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&buf);
            if tx.send(text.trim_end_matches(['\n', '\r']).to_string()).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let mut tail: VecDeque<String> = VecDeque::new();
    let mut keep = |text: String| {
        line(&text);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    };
    // Until the task ends (not the pipe: a background process it started may
    // hold the pipe open for ever), then what it left in the pipe.
    let status = loop {
        tokio::select! {
            Some(text) = rx.recv() => keep(text),
            status = child.wait() => break status?,
        }
    };
    let drain = tokio::time::sleep(LEFTOVER_GRACE);
    tokio::pin!(drain);
    loop {
        tokio::select! {
            text = rx.recv() => match text {
                Some(text) => keep(text),
                None => break,
            },
            () = &mut drain => break,
        }
    }
    // What the task left running in its group is stopped with it.
    group.stop();
    Ok(TaskEnd { code: status.code(), tail: tail.into() })
}

/// How long the output a task left in its pipe is read after it ended.
const LEFTOVER_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a task's process group gets after SIGTERM before SIGKILL.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A task's process group (the task and what it started): stopped when the run
/// is abandoned (Ctrl-C) or the task ended leaving processes behind.
struct StopGroup(Option<u32>);

impl StopGroup {
    /// SIGTERM to the group, then SIGKILL to what is left after [`STOP_GRACE`].
    fn stop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};
        let Some(pid) = self.0.take().and_then(|p| Pid::from_raw(i32::try_from(p).ok()?)) else { return };
        if kill_process_group(pid, Signal::TERM).is_err() {
            return; // No one left.
        }
        let until = std::time::Instant::now() + STOP_GRACE;
        while std::time::Instant::now() < until {
            if test_kill_process_group(pid).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

impl Drop for StopGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use hsm_plan::{PythonPackage, ServicePlan, TaskOn};

    use super::*;

    fn task(run: &[&str]) -> Task {
        Task {
            package: "app".into(),
            name: "migrate".into(),
            run: run.iter().map(|s| s.to_string()).collect(),
            on: TaskOn::Sync,
            dir: "app".into(),
            services: vec![],
            after: vec![],
        }
    }

    fn plan_with_editable() -> Plan {
        let python = ServicePlan {
            name: "python".into(),
            kind: "uv-package".into(),
            plugin: "uv-package@0.1.0".into(),
            profile: "local".into(),
            mode: hsm_plan::Mode::Managed,
            merged: hsm_model::Value::Null,
            actions: vec![Action::UvInstall {
                packages: vec![PythonPackage { name: "app".into(), source: PackageSource::Editable("app".into()) }],
            }],
            env: vec![],
        };
        Plan { project: "p".into(), services: vec![python], tasks: vec![] }
    }

    /// A task runs again when its command, its package's files or its environment
    /// changed, and its fingerprints hold no value.
    #[test]
    fn what_a_task_depends_on_is_fingerprinted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/src/__pycache__")).unwrap();
        std::fs::write(dir.path().join("app/src/models.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("app/src/__pycache__/models.pyc"), "junk").unwrap();
        let key = UserKey::load_or_create(&dir.path().join("key")).unwrap();
        let plan = plan_with_editable();
        let env = vec![("DATABASE_URL".to_string(), Sensitive::new("postgresql://u:s3cret@h/db".into()))];
        let t = task(&["alembic", "upgrade", "head"]);
        let first = inputs(&t, &plan, dir.path(), None, &env, &key);
        let record = TaskRecord::now(true, Some(0), &first, None);
        assert_eq!(TaskRecord::why_run(Some(&record), &first), None);
        assert!(!serde_json::to_string(&record).unwrap().contains("s3cret"));
        // Byte-code caches don't count; sources do.
        std::fs::write(dir.path().join("app/src/__pycache__/models.pyc"), "other junk").unwrap();
        assert_eq!(TaskRecord::why_run(Some(&record), &inputs(&t, &plan, dir.path(), None, &env, &key)), None);
        std::fs::write(dir.path().join("app/src/models.py"), "x = 22\n").unwrap();
        let changed = inputs(&t, &plan, dir.path(), None, &env, &key);
        assert_eq!(TaskRecord::why_run(Some(&record), &changed), Some("its package changed"));
        let other_env = vec![("DATABASE_URL".to_string(), Sensitive::new("postgresql://u:other@h/db".into()))];
        let by_env = inputs(&t, &plan, dir.path(), None, &other_env, &key);
        assert_eq!(
            first.changed_since(&TaskInputs { env: by_env.env.clone(), ..first.clone() }),
            Some("its environment changed")
        );
        let by_command = inputs(&task(&["alembic", "upgrade", "+1"]), &plan, dir.path(), None, &env, &key);
        assert_eq!(TaskRecord::why_run(Some(&record), &by_command), Some("its command changed"));
        // A failure runs it again, and keeps what the last success depended on.
        let failed = TaskRecord::now(false, Some(3), &changed, Some(&record));
        assert_eq!(TaskRecord::why_run(Some(&failed), &first), Some("its last run failed"));
        assert_eq!(failed.succeeded_with, Some(first));
        assert_eq!(TaskRecord::why_run(None, &changed), Some("it has not run yet"));
    }

    /// A task that leaves a process running in the background ends when it does;
    /// what it left is stopped.
    #[tokio::test]
    async fn a_background_process_neither_holds_the_run_nor_outlives_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 300 & echo $! > {}; echo started", pidfile.display());
        let t = task(&["sh", "-c", &script]);
        let started = std::time::Instant::now();
        let mut lines = Vec::new();
        let end = run(&t, dir.path(), &[], &mut |l| lines.push(l.to_string())).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the run waited for the background process");
        assert_eq!((end.code, lines), (Some(0), vec!["started".to_string()]));
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let gone = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            rustix::process::test_kill_process(rustix::process::Pid::from_raw(pid).unwrap()).is_err()
        });
        assert!(gone, "the background process outlived its task");
    }

    /// A run streams its lines, from its folder, with its environment, and gives
    /// its exit code and last lines.
    #[tokio::test]
    async fn a_run_streams_its_output_and_ends_with_its_code() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("app")).unwrap();
        let t = task(&["sh", "-c", "pwd; echo \"$GREETING\"; echo oops >&2; exit 4"]);
        let env = vec![("GREETING".to_string(), Sensitive::new("hello".into()))];
        let mut lines = Vec::new();
        let end = run(&t, dir.path(), &env, &mut |l| lines.push(l.to_string())).await.unwrap();
        assert_eq!(end.code, Some(4));
        assert!(!end.ok());
        assert!(lines[0].ends_with("/app"), "{lines:?}");
        assert!(lines.contains(&"hello".to_string()) && lines.contains(&"oops".to_string()), "{lines:?}");
        assert_eq!(end.tail, lines);
    }
}
