//! `hsm status`: the engine compared with the plan, running services probed
//! once, and the Python packages checked, changing nothing.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::join_all;
use hsm_plan::{Action, ServicePlan};

use crate::error::ExecError;
use crate::state::port_key;
use crate::sync::{Decision, Observation, Observed, Syncer, containers_of, observe};

/// How a service is doing, for `hsm status`.
#[derive(Debug, serde::Serialize)]
pub struct ServiceStatus {
    /// The service.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its profile.
    pub profile: String,
    /// Managed or external.
    pub mode: hsm_plan::Mode,
    /// Its containers (none for an external service).
    pub containers: Vec<ContainerStatus>,
    /// Whether its readiness probes pass now.
    pub health: Health,
}

/// How a container is doing.
#[derive(Debug, serde::Serialize)]
pub struct ContainerStatus {
    /// Its full name.
    pub name: String,
    /// Docker's state (`running`, `exited`, …) or `missing`.
    pub state: String,
    /// How it differs from the plan, if it does: `missing`, `stopped` or `outdated`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<&'static str>,
    /// Why it is outdated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its published ports, `127.0.0.1:49153->5432/tcp`.
    pub ports: Vec<String>,
}

/// A service's readiness.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "detail")]
pub enum Health {
    /// Every probe passes.
    Ready,
    /// A probe fails (why).
    NotReady(String),
    /// Not all its containers run.
    Down,
    /// Runs elsewhere; hsm does not probe it.
    External,
}

/// The project's state on the engine, for `hsm status`.
#[derive(Debug, serde::Serialize)]
pub struct StatusReport {
    /// The project.
    pub project: String,
    /// Per service, in plan order.
    pub services: Vec<ServiceStatus>,
    /// Containers of the project no longer in the plan (the next sync removes them).
    pub orphans: Vec<String>,
    /// The project's Python packages, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonReport>,
    /// The packages' tasks: when each last ran, and whether a sync would run it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskStatus>,
    /// Whether a sync would change anything.
    pub in_sync: bool,
}

/// A package's task, for `hsm status`.
#[derive(Debug, serde::Serialize)]
pub struct TaskStatus {
    /// `package/name`.
    pub task: String,
    /// When it runs.
    pub on: hsm_plan::TaskOn,
    /// Its last run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<crate::tasks::TaskRecord>,
    /// Why the next sync would run it (`on: sync` only), or `None` when it is up to date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
}

/// The Python side of `hsm status`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum PythonReport {
    /// What uv's environment holds.
    Checked(crate::uv::PythonStatus),
    /// It could not be looked at (no uv, say).
    Unknown {
        /// Why.
        message: String,
    },
}

impl Syncer<'_> {
    /// Compares the engine with the plan and probes running services once, changing
    /// nothing.
    pub async fn status(&self) -> Result<StatusReport, ExecError> {
        self.status_unredacted().await.map_err(|e| self.redact_error(e))
    }

    async fn status_unredacted(&self) -> Result<StatusReport, ExecError> {
        // Ports are adopted into this run's copy of the state only: status saves nothing.
        let observation = observe(&self.docker, self.plan, &self.cx, &self.state, true).await?;
        let mut services = Vec::new();
        let probes = join_all(self.plan.services.iter().map(|svc| self.probe_once(svc, &observation))).await;
        let mut in_sync = observation.orphans.is_empty();
        for (svc, health) in self.plan.services.iter().zip(probes) {
            let mut containers = Vec::new();
            for o in observation.containers.iter().filter(|o| o.service == svc.name) {
                let (drift, reason) = match &o.decision {
                    Decision::Keep => (None, None),
                    Decision::Start => (Some("stopped"), None),
                    Decision::Create => (Some("missing"), None),
                    Decision::Recreate(r) => (Some("outdated"), Some(r.clone())),
                };
                in_sync &= drift.is_none();
                let state = self.state.lock().expect("state lock");
                let spec = containers_of(svc).find(|c| c.name == o.container);
                let ports = spec
                    .map(|c| {
                        c.ports
                            .iter()
                            .filter_map(|p| {
                                let key = port_key(p.container_port, p.protocol);
                                let host = p.host_port.or_else(|| {
                                    state.container(&svc.name, &c.name).and_then(|s| s.ports.get(&key).copied())
                                })?;
                                Some(format!("{}:{host}->{key}", p.host_ip))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                containers.push(ContainerStatus {
                    name: o.name.clone(),
                    state: o.status.clone(),
                    drift,
                    reason,
                    ports,
                });
            }
            if matches!(health, Health::NotReady(_) | Health::Down) {
                in_sync = false;
            }
            services.push(ServiceStatus {
                name: svc.name.clone(),
                kind: svc.kind.clone(),
                profile: svc.profile.clone(),
                mode: svc.mode,
                containers,
                health,
            });
        }
        let packages: Vec<hsm_plan::PythonPackage> = self
            .plan
            .services
            .iter()
            .flat_map(|s| &s.actions)
            .filter_map(|a| match a {
                Action::UvInstall { packages } => Some(packages.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect();
        let py_state = self.python_state();
        let python = if packages.is_empty() && py_state.packages.is_empty() {
            None
        } else {
            // Status installs nothing: the uv hsm keeps in its cache, if any.
            Some(match crate::uv::python_env(&self.cx.project.dir, None) {
                Ok(env) => {
                    let status = crate::uv::status(&env, &packages, &py_state);
                    in_sync &= status.venv == crate::uv::VenvStatus::Ready
                        && status.removed.is_empty()
                        && status.packages.iter().all(|p| p.state == crate::uv::PackageState::Installed);
                    PythonReport::Checked(status)
                }
                Err(e) => {
                    in_sync = false;
                    PythonReport::Unknown { message: e.to_string() }
                }
            })
        };
        // The Python service is ready only when its environment and packages are.
        if let (Some(PythonReport::Checked(status)), Some(svc)) =
            (&python, services.iter_mut().find(|s| s.name == hsm_plan::PYTHON_SERVICE))
        {
            let missing: Vec<&str> = status
                .packages
                .iter()
                .filter(|p| p.state != crate::uv::PackageState::Installed)
                .map(|p| p.name.as_str())
                .collect();
            if status.venv != crate::uv::VenvStatus::Ready {
                svc.health = Health::NotReady(format!("the Python environment `{}` is not ready", crate::uv::VENV_DIR));
            } else if !missing.is_empty() {
                svc.health = Health::NotReady(format!("not installed yet: {}", missing.join(", ")));
            }
        }
        let tasks = self.task_statuses();
        in_sync &= tasks.iter().all(|t| t.due.is_none());
        Ok(StatusReport {
            project: self.cx.project.name.clone(),
            services,
            orphans: observation.orphans.iter().map(|o| o.name.clone()).collect(),
            python,
            tasks,
            in_sync,
        })
    }

    /// Each task's last run, and why a sync would run it.
    fn task_statuses(&self) -> Vec<TaskStatus> {
        let state = self.state.lock().expect("state lock");
        let cx = crate::env::EnvContext {
            project: &self.cx.project,
            key: self.cx.key,
            secrets: self.cx.secrets,
            state: &state,
        };
        self.plan
            .tasks
            .iter()
            .map(|t| {
                let last = state.tasks.get(&t.id()).cloned();
                let due = (t.on == hsm_plan::TaskOn::Sync).then(|| {
                    match crate::env::values(self.plan, &hsm_plan::Consumer::Package(t.package.clone()), &cx) {
                        Ok(env) => {
                            let inputs = crate::tasks::inputs(
                                t,
                                self.plan,
                                &self.cx.project.dir,
                                state.python.as_ref(),
                                &env,
                                self.cx.key,
                            );
                            crate::tasks::TaskRecord::why_run(last.as_ref(), &inputs).map(str::to_string)
                        }
                        Err(_) => Some("its services have not been synced yet".to_string()),
                    }
                });
                TaskStatus { task: t.id(), on: t.on, last, due: due.flatten() }
            })
            .collect()
    }

    async fn probe_once(&self, svc: &ServicePlan, observation: &Observation) -> Health {
        let mine: Vec<&Observed> = observation.containers.iter().filter(|o| o.service == svc.name).collect();
        if mine.is_empty() && svc.mode == hsm_plan::Mode::External {
            return Health::External;
        }
        if mine.iter().any(|o| o.status != "running") {
            return Health::Down;
        }
        for action in &svc.actions {
            let Action::Wait(w) = action else { continue };
            let ids: HashMap<String, String> =
                mine.iter().filter_map(|o| Some((o.container.clone(), o.id.clone()?))).collect();
            let probe = match self.resolve_probe(svc, &w.probe, &ids).await {
                Ok(p) => p,
                Err(e) => return Health::NotReady(self.redact(&e.to_string())),
            };
            if let Err(failure) = probe.attempt(&self.docker, Duration::from_secs(3)).await {
                return Health::NotReady(self.redact(&failure));
            }
        }
        Health::Ready
    }
}
