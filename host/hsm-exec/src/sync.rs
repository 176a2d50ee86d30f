//! `hsm sync`: makes the Docker engine match a plan, idempotently.
//!
//! The engine's labels say what exists; the plan says what should. Each run:
//!
//! 1. **observes** the project's containers (by its labels) and refuses when a
//!    project of the same name from another folder runs on the engine;
//! 2. **decides** per planned container: keep, start (stopped by hand), create, or
//!    recreate (its config hash or image changed), and which containers are
//!    orphans (no longer planned);
//! 3. **pulls** the images it will need and does not have, before changing
//!    anything, so a bad image name changes nothing;
//! 4. removes orphans (their volumes stay unless asked), makes sure the project's
//!    network exists, then **executes each service's actions in order**, the
//!    services concurrently: containers, readiness waits, execs (once per container
//!    instance), files under `.hsm/`, Python packages; then the packages' tasks
//!    that are due.
//!
//! A no-op run makes a handful of read-only calls and no change: a kept container
//! whose service was seen ready since it last started is not probed again.
//!
//! Everything is recorded in the state as it happens, so an interrupted run
//! (Ctrl-C drops the future) leaves a state the next run continues from.
//!
//! This module is the orchestrator; each step is a module of its own:
//! `preflight` (what can be refused before anything is touched), `observe` (the
//! engine compared with the plan, and the pure decision per container),
//! `containers`, `network`, `ports`, `readiness`, `exec`, `files` (under
//! `.hsm/`), `python` (the bridge to uv), `tasks` (the packages' tasks, run last)
//! and `redact` (what leaves a sync never holds a secret). `hsm status` and `hsm down` live in the crate's `status` and
//! `down` modules.

mod containers;
mod exec;
mod files;
mod network;
mod observe;
mod ports;
mod preflight;
mod python;
mod readiness;
mod redact;
mod tasks;
#[cfg(test)]
mod testing;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use futures_util::future::join_all;
use hsm_key::UserKey;
use hsm_model::SecretStore;
use hsm_plan::{Action, Container, Plan, ServicePlan};

pub use self::observe::{Decision, Observation, Observed, Orphan, by_service, observe};
pub use self::preflight::check_names;
use self::readiness::seen_ready;
pub use self::redact::Redactor;
use crate::docker::Docker;
pub use crate::down::down;
use crate::error::ExecError;
use crate::names::ProjectId;
use crate::report::{Change, Event, Reporter};
use crate::state::State;
pub use crate::status::{ContainerStatus, Health, PythonReport, ServiceStatus, StatusReport, TaskStatus};

/// Options of a sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    /// Also remove the project's volumes that no planned container uses.
    pub prune_volumes: bool,
    /// Wait this long for each readiness probe instead of the plugin's timeout.
    pub wait_timeout_ms: Option<u32>,
}

/// What a sync needs to know besides the plan.
pub struct Context<'a> {
    /// The project.
    pub project: ProjectId,
    /// The user's key (generated secrets, fingerprints).
    pub key: &'a UserKey,
    /// The values of the secrets the plan refers to.
    pub secrets: &'a SecretStore,
    /// Where progress goes.
    pub reporter: &'a dyn Reporter,
}

/// What a sync did and what failed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every change made, in order.
    pub changes: Vec<Change>,
    /// The failures, one per service that failed (others went on).
    pub failures: Vec<ExecError>,
}

/// Runs a sync. Create with [`Syncer::new`], call [`Syncer::run`] (which may be
/// dropped half-way on Ctrl-C), then take the state with [`Syncer::finish`] and
/// save it.
pub struct Syncer<'a> {
    pub(crate) docker: Docker,
    pub(crate) plan: &'a Plan,
    pub(crate) cx: Context<'a>,
    options: SyncOptions,
    pub(crate) state: Mutex<State>,
    changes: Mutex<Vec<Change>>,
    /// Ports chosen during this run, so two containers never get the same one.
    chosen: Mutex<BTreeSet<u16>>,
    /// Every form of every secret value the plan may put anywhere, longest first:
    /// what redaction replaces.
    secret_forms: Vec<String>,
}

impl<'a> Syncer<'a> {
    /// A sync of `plan`, starting from `state`.
    pub fn new(docker: Docker, plan: &'a Plan, cx: Context<'a>, state: State, options: SyncOptions) -> Self {
        let secret_forms = redact::secret_forms(plan, &cx.project, cx.key, cx.secrets);
        Self {
            secret_forms,
            docker,
            plan,
            cx,
            options,
            state: Mutex::new(state),
            changes: Mutex::new(Vec::new()),
            chosen: Mutex::new(BTreeSet::new()),
        }
    }

    /// The state and the changes made so far (also after an interruption).
    pub fn finish(self) -> (State, Vec<Change>) {
        (self.state.into_inner().expect("state lock"), self.changes.into_inner().expect("changes lock"))
    }

    fn report(&self, change: Change) {
        self.cx.reporter.event(Event::Changed(&change));
        self.changes.lock().expect("changes lock").push(change);
    }

    fn op(&self, service: Option<&str>, what: &str) {
        self.cx.reporter.event(Event::Operation { service, what });
    }

    /// Makes the engine match the plan. Errors before any change (the engine can't
    /// be reached, a foreign project, an image that can't be pulled) are returned as
    /// `Err`; a service that fails later does not stop the others and is listed in
    /// the outcome's failures.
    pub async fn run(&self) -> Result<Vec<ExecError>, ExecError> {
        match self.run_unredacted().await {
            Ok(failures) => Ok(failures.into_iter().map(|e| self.redact_error(e)).collect()),
            Err(e) => Err(self.redact_error(e)),
        }
    }

    async fn run_unredacted(&self) -> Result<Vec<ExecError>, ExecError> {
        check_names(self.plan, &self.cx.project)?;
        self.check_references()?;
        self.check_python()?;
        self.check_plugin_files()?;
        let observation = observe(&self.docker, self.plan, &self.cx, &self.state, true).await?;
        let decisions: HashMap<(String, String), &Observed> =
            observation.containers.iter().map(|o| ((o.service.clone(), o.container.clone()), o)).collect();

        // Pull what will be needed before changing anything.
        self.pull_images(&observation).await?;
        // Orphans: containers of this project the plan no longer has.
        self.remove_orphans(&observation.orphans).await?;
        self.forget_unplanned();
        // The network, when anything runs.
        self.ensure_network(!observation.containers.is_empty(), observation.network.as_deref()).await?;

        // The services, concurrently; actions within one in order.
        // Past pre-flight, things were touched: no failure is "bad input, nothing
        // was touched" any more.
        let results = join_all(self.plan.services.iter().map(|svc| self.run_service(svc, &decisions))).await;
        let mut failed = BTreeSet::new();
        let mut failures = Vec::new();
        for (svc, result) in self.plan.services.iter().zip(results) {
            if let Err(e) = result {
                failed.insert(svc.name.clone());
                failures.push(e.after_changes());
            }
        }

        // No package left to install: what hsm installed earlier is uninstalled.
        if let Err(e) = self.python_leftovers().await {
            failures.push(e.after_changes());
        }

        // The packages' tasks, once what they use is ready.
        failures.extend(self.run_tasks(&failed).await);

        if self.options.prune_volumes {
            self.prune_volumes().await?;
        }
        Ok(failures)
    }

    /// Forgets what the state holds of services and containers the plan no longer has.
    fn forget_unplanned(&self) {
        let planned: BTreeSet<&str> = self.plan.services.iter().map(|s| s.name.as_str()).collect();
        let mut state = self.state.lock().expect("state lock");
        state.services.retain(|name, _| planned.contains(name.as_str()));
        for svc in &self.plan.services {
            let wanted: BTreeSet<&str> = containers_of(svc).map(|c| c.name.as_str()).collect();
            if let Some(s) = state.services.get_mut(&svc.name) {
                s.containers.retain(|name, _| wanted.contains(name.as_str()));
            }
        }
    }

    async fn run_service(
        &self,
        svc: &ServicePlan,
        decisions: &HashMap<(String, String), &Observed>,
    ) -> Result<(), ExecError> {
        let mut ready = {
            let state = self.state.lock().expect("state lock");
            seen_ready(svc, decisions, &state)
        };
        let files = files::file_hashes(svc);
        let mut ids: HashMap<String, String> = HashMap::new();
        for o in decisions.values().filter(|o| o.service == svc.name) {
            if let Some(id) = &o.id {
                ids.insert(o.container.clone(), id.clone());
            }
        }
        for action in &svc.actions {
            match action {
                Action::EnsureContainer(c) => {
                    let observed =
                        decisions.get(&(svc.name.clone(), c.name.clone())).expect("every container observed");
                    let id = self.ensure(svc, c, observed, &files).await?;
                    if observed.decision != Decision::Keep {
                        ready = false;
                    }
                    ids.insert(c.name.clone(), id);
                }
                Action::Wait(w) if !ready => self.wait(svc, w, &ids).await?,
                Action::Wait(_) => {}
                Action::Exec(e) => self.exec(svc, e, &ids).await?,
                Action::WriteFile(f) => self.write_file(svc, f)?,
                Action::UvInstall { packages } => self.python(&svc.name, packages).await?,
            }
        }
        // Everything passed: remember that each container was ready at its current start.
        for c in containers_of(svc) {
            let Some(id) = ids.get(&c.name) else { continue };
            let observed = decisions.get(&(svc.name.clone(), c.name.clone()));
            let started_at = match observed {
                // Kept: its start time was read when it was observed.
                Some(o) if o.decision == Decision::Keep => o.started_at.clone(),
                _ => self.docker.inspect(id).await?.and_then(|i| i.state).and_then(|s| s.started_at),
            };
            let planned: BTreeSet<String> = svc
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::Exec(e) if e.container == c.name => Some(e),
                    _ => None,
                })
                .filter_map(|e| self.build_exec(svc, e).ok().map(|b| b.hash))
                .collect();
            let mut state = self.state.lock().expect("state lock");
            let entry = state.container_mut(&svc.name, &c.name);
            entry.new_instance(id);
            entry.ready_at = started_at;
            entry.execs.retain(|h| planned.contains(h));
        }
        Ok(())
    }
}

/// The containers a service's plan describes.
pub fn containers_of(svc: &ServicePlan) -> impl Iterator<Item = &Container> {
    svc.actions.iter().filter_map(|a| match a {
        Action::EnsureContainer(c) => Some(c),
        _ => None,
    })
}

pub(crate) fn plugin_name(svc: &ServicePlan) -> String {
    svc.plugin.split('@').next().unwrap_or(&svc.plugin).to_string()
}
