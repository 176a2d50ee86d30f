//! Running uv and stopping it: every uv process hsm starts goes through
//! [`PythonEnv::run_uv`], which drains its output, and stops it (with the build
//! backends it started) when the run that needs it is abandoned.

use std::ffi::OsString;
use std::io;
use std::io::{IsTerminal as _, Read};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{PythonEnv, UvError};

/// How often a running uv's environment is checked for a stop.
const UV_STOP_POLL: Duration = Duration::from_millis(20);

/// How long uv and what it started get to end after SIGTERM before SIGKILL.
const UV_GRACE: Duration = Duration::from_secs(5);

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
    /// A guard that, when dropped, stops this environment's uv runs: the one
    /// running gets SIGTERM, with what it started (build backends), then SIGKILL
    /// after a grace period, and no further one starts; the call that ran it
    /// returns [`UvError::Stopped`]. Hold it in the async code that waits for the
    /// blocking work: when that code is abandoned (Ctrl-C, SIGTERM), uv stops too,
    /// instead of running on while hsm waits for it to exit.
    pub fn stop_on_drop(&self) -> StopOnDrop {
        StopOnDrop(Arc::clone(&self.stop))
    }

    /// Runs uv in the project folder, capturing its output, unless this
    /// environment was stopped (see [`PythonEnv::stop_on_drop`]).
    pub(crate) fn run_uv(&self, args: &[OsString]) -> Result<Output, UvError> {
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

/// uv's message about a failure: its output from the first `error:` line on (the
/// progress lines before it say nothing about what went wrong), or all of it.
pub(crate) fn uv_message(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = if stderr.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { stderr };
    let text = text.trim_end();
    let start = text.find("\nerror:").map_or(0, |i| i + 1);
    let text = if text.starts_with("error:") { text } else { &text[start..] };
    if text.is_empty() { format!("uv exited with {}", out.status) } else { text.to_string() }
}
