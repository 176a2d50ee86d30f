//! The bridge to uv: a sync's Python packages are installed by [`crate::uv`] on
//! a blocking thread (so other services' waits go on), its progress forwarded
//! and redacted, its state kept in hsm's state file, and its outcome reported
//! as changes.

use hsm_model::Explain;
use hsm_plan::{Action, PythonPackage};

use super::Syncer;
use crate::error::ExecError;
use crate::report::{Change, ChangeKind, Event};
use crate::uv::{self, PythonState};

impl Syncer<'_> {
    /// Checks, before anything changes, that uv is there and that every package can
    /// be installed as written (a folder that is a Python project, a valid
    /// requirement, …): bad entries are input errors, and touch nothing.
    pub(super) fn check_python(&self) -> Result<(), ExecError> {
        for svc in &self.plan.services {
            for action in &svc.actions {
                let Action::UvInstall { packages } = action else { continue };
                let env = self.python_env()?;
                let py_state = self.python_state();
                let status = uv::status(&env, packages, &py_state);
                for p in status.packages {
                    if let uv::PackageState::Invalid { message } = p.state {
                        return Err(ExecError::Python {
                            message: format!("package `{}`: {message}", p.name),
                            hint: None,
                            input: true,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The project's Python environment; uv is installed into hsm's cache when
    /// the machine has none.
    fn python_env(&self) -> Result<uv::PythonEnv, ExecError> {
        let say = |line: &str| self.cx.reporter.event(Event::Warning(line));
        uv::python_env(&self.cx.project.dir, Some(&say)).map_err(python_error)
    }

    /// What uv installed, as the state remembers it.
    pub(crate) fn python_state(&self) -> PythonState {
        self.state.lock().expect("state lock").python.clone().unwrap_or_default()
    }

    /// When the plan installs no package any more, uninstalls what hsm installed
    /// earlier.
    pub(super) async fn python_leftovers(&self) -> Result<(), ExecError> {
        let installs =
            self.plan.services.iter().any(|s| s.actions.iter().any(|a| matches!(a, Action::UvInstall { .. })));
        let installed_before =
            self.state.lock().expect("state lock").python.as_ref().is_some_and(|p| !p.packages.is_empty());
        if !installs && installed_before { self.python("python", &[]).await } else { Ok(()) }
    }

    /// Installs the project's Python packages with uv (blocking work, off the async
    /// thread so that other services' waits go on), forwarding uv's progress.
    pub(super) async fn python(&self, service: &str, packages: &[PythonPackage]) -> Result<(), ExecError> {
        let env = self.python_env()?;
        // Dropped with this future when the sync is abandoned (Ctrl-C, SIGTERM):
        // uv is stopped then, instead of running on while hsm waits to exit.
        let _stop_uv = env.stop_on_drop();
        let mut py_state = self.python_state();
        let desired = packages.to_vec();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let task = tokio::task::spawn_blocking(move || {
            let report = |line: &str| {
                let _ = tx.send(line.to_string());
            };
            let result = uv::sync(&env, &desired, &mut py_state, &report);
            (result, py_state)
        });
        while let Some(line) = rx.recv().await {
            self.op(Some(service), &self.redact(&line));
        }
        let (result, py_state) = task.await.map_err(|e| ExecError::Unsupported(format!("uv task failed: {e}")))?;
        self.state.lock().expect("state lock").python = Some(py_state);
        let changes = result.map_err(python_error)?;
        let service = Some(service.to_string());
        if let Some(venv) = changes.venv {
            let reason = match venv {
                uv::VenvChange::Created => None,
                uv::VenvChange::Recreated => Some("its interpreter was gone".to_string()),
            };
            self.report(Change {
                service: service.clone(),
                action: ChangeKind::CreatedVenv,
                subject: ".venv".into(),
                reason,
            });
        }
        for p in changes.installed {
            let version = p.version.map(|v| format!(" {v}")).unwrap_or_default();
            self.report(Change {
                service: service.clone(),
                action: ChangeKind::InstalledPackage,
                subject: format!("{}{version}", p.name),
                reason: Some(p.reason.to_string()),
            });
        }
        for p in changes.uninstalled {
            self.report(Change {
                service: service.clone(),
                action: ChangeKind::UninstalledPackage,
                subject: p.name,
                reason: Some("no longer in hsm.yaml".into()),
            });
        }
        for p in changes.kept {
            self.cx.reporter.event(Event::Warning(&format!(
                "`{}` is no longer in hsm.yaml but stays installed: {} requires it",
                p.name,
                p.required_by.join(", ")
            )));
        }
        Ok(())
    }
}

fn python_error(e: uv::UvError) -> ExecError {
    ExecError::Python { message: e.to_string(), hint: e.hint(), input: e.is_input() }
}
