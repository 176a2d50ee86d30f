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
//!    instance), files under `.hsm/`, Python packages.
//!
//! A no-op run makes a handful of read-only calls and no change: a kept container
//! whose service was seen ready since it last started is not probed again.
//!
//! Everything is recorded in the state as it happens, so an interrupted run
//! (Ctrl-C drops the future) leaves a state the next run continues from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum};
use futures_util::future::join_all;
use hsm_model::SecretStore;
use hsm_plan::{Action, Container, Endpoint, Plan, Probe, Protocol, ServicePlan, Wait};

use crate::docker::{Docker, Network};
use crate::error::ExecError;
use crate::keys::UserKey;
use crate::names::{LABEL_CONFIG_HASH, LABEL_CONTAINER, LABEL_PROJECT_DIR, LABEL_SERVICE, LABEL_VOLUME, ProjectId};
use crate::probe::Resolved;
use crate::refs::ServiceRefs;
use crate::report::{Change, ChangeKind, Event, Reporter};
use crate::spec::{self, Exposer};
use crate::state::{State, port_key};

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

/// What to do with one planned container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It matches and runs.
    Keep,
    /// It matches but is not running.
    Start,
    /// It does not exist.
    Create,
    /// It exists but no longer matches.
    Recreate(String),
}

/// One planned container with what exists of it.
#[derive(Debug)]
pub struct Observed {
    /// The service.
    pub service: String,
    /// The container's short name.
    pub container: String,
    /// Its full name.
    pub name: String,
    /// The image.
    pub image: String,
    /// What to do.
    pub decision: Decision,
    /// The existing container's id.
    pub id: Option<String>,
    /// Its state as Docker says (`running`, `exited`, …), or `missing`.
    pub status: String,
    /// When it started (Docker's `StartedAt`).
    pub started_at: Option<String>,
    /// Whether the image is present locally.
    pub image_present: bool,
    /// The host ports the existing container publishes (it frees them when removed).
    pub published: Vec<(u16, Protocol)>,
}

/// A container of the project that the plan no longer has.
#[derive(Debug)]
pub struct Orphan {
    /// Its full name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Its service label.
    pub service: String,
}

/// The engine compared with the plan.
#[derive(Debug, Default)]
pub struct Observation {
    /// One per planned container.
    pub containers: Vec<Observed>,
    /// Containers to remove.
    pub orphans: Vec<Orphan>,
}

/// Runs a sync. Create with [`Syncer::new`], call [`Syncer::run`] (which may be
/// dropped half-way on Ctrl-C), then take the state with [`Syncer::finish`] and
/// save it.
pub struct Syncer<'a> {
    docker: Docker,
    plan: &'a Plan,
    cx: Context<'a>,
    options: SyncOptions,
    state: Mutex<State>,
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
        let secret_forms = secret_forms(plan, &cx);
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
        let project = &self.cx.project;
        check_names(self.plan, project)?;
        self.check_references()?;
        self.check_python()?;
        self.check_plugin_files()?;
        let observation = observe(&self.docker, self.plan, &self.cx, &self.state, true).await?;
        let decisions: HashMap<(String, String), &Observed> =
            observation.containers.iter().map(|o| ((o.service.clone(), o.container.clone()), o)).collect();

        // Pull what will be needed before changing anything.
        let mut to_pull: Vec<&str> = observation
            .containers
            .iter()
            .filter(|o| !o.image_present && !matches!(o.decision, Decision::Keep))
            .map(|o| o.image.as_str())
            .collect();
        to_pull.sort_unstable();
        to_pull.dedup();
        let pulls = join_all(to_pull.iter().map(|image| self.docker.pull(image, self.cx.reporter))).await;
        for (image, result) in to_pull.iter().zip(pulls) {
            result?;
            self.report(Change {
                service: None,
                action: ChangeKind::PulledImage,
                subject: (*image).to_string(),
                reason: None,
            });
        }

        // Orphans: containers of this project the plan no longer has.
        for orphan in &observation.orphans {
            self.op(Some(&orphan.service), &format!("remove container {}", orphan.name));
            self.docker.remove(&orphan.id).await?;
            self.report(Change {
                service: Some(orphan.service.clone()),
                action: ChangeKind::RemovedContainer,
                subject: orphan.name.clone(),
                reason: Some("no longer in the plan".into()),
            });
        }
        if !observation.orphans.is_empty() {
            // A renamed project leaves its old network behind too.
            let dir = project.dir_label();
            for (name, _) in self.docker.networks_labelled(&[(LABEL_PROJECT_DIR, &dir)]).await? {
                if name != project.network() {
                    self.op(None, &format!("remove network {name}"));
                    self.docker.remove_network(&name).await?;
                    self.report(Change {
                        service: None,
                        action: ChangeKind::RemovedNetwork,
                        subject: name,
                        reason: Some("no longer this project's".into()),
                    });
                }
            }
        }
        {
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

        // The network, when anything runs.
        let network = project.network();
        if !observation.containers.is_empty() {
            match self.docker.network(&network).await? {
                Some(found) if project.owns(found.labels.as_ref()) => {}
                Some(found) => {
                    return Err(ExecError::Foreign {
                        kind: "network",
                        name: network,
                        owner: crate::names::owner(found.labels.as_ref()),
                    });
                }
                None => {
                    self.op(None, &format!("create network {network}"));
                    self.docker.create_network(&network, project.labels()).await?;
                    self.report(Change {
                        service: None,
                        action: ChangeKind::CreatedNetwork,
                        subject: network.clone(),
                        reason: None,
                    });
                }
            }
        } else if let Some(found) = self.docker.network(&network).await?
            && project.owns(found.labels.as_ref())
        {
            self.op(None, &format!("remove network {network}"));
            self.docker.remove_network(&network).await?;
            self.report(Change { service: None, action: ChangeKind::RemovedNetwork, subject: network, reason: None });
        }

        // The services, concurrently; actions within one in order.
        // Past pre-flight, things were touched: no failure is "bad input, nothing
        // was touched" any more.
        let results = join_all(self.plan.services.iter().map(|svc| self.run_service(svc, &decisions))).await;
        let mut failures: Vec<ExecError> =
            results.into_iter().filter_map(Result::err).map(ExecError::after_changes).collect();

        // No package left to install: what hsm installed earlier is uninstalled.
        let installs =
            self.plan.services.iter().any(|s| s.actions.iter().any(|a| matches!(a, Action::UvInstall { .. })));
        let installed_before = {
            let state = self.state.lock().expect("state lock");
            state.python.get("packages").and_then(|p| p.as_object()).is_some_and(|p| !p.is_empty())
        };
        if !installs
            && installed_before
            && let Err(e) = self.python("python", &[]).await
        {
            failures.push(e.after_changes());
        }

        if self.options.prune_volumes {
            self.prune_volumes().await?;
        }
        Ok(failures)
    }

    async fn prune_volumes(&self) -> Result<(), ExecError> {
        let project = &self.cx.project;
        let wanted: BTreeSet<String> = self
            .plan
            .services
            .iter()
            .flat_map(|s| {
                containers_of(s).flat_map(move |c| {
                    c.mounts.iter().filter_map(move |m| match m {
                        hsm_plan::Mount::Volume { volume, .. } => Some(project.volume(&s.name, volume)),
                        hsm_plan::Mount::Bind { .. } => None,
                    })
                })
            })
            .collect();
        let dir = project.dir_label();
        for volume in self.docker.volumes_labelled(&[(LABEL_PROJECT_DIR, &dir)]).await? {
            if wanted.contains(&volume.name) || !project.owns(Some(&volume.labels)) {
                continue;
            }
            let service = volume.labels.get(LABEL_SERVICE).cloned();
            self.op(service.as_deref(), &format!("remove volume {}", volume.name));
            self.docker.remove_volume(&volume.name).await?;
            self.report(Change { service, action: ChangeKind::RemovedVolume, subject: volume.name, reason: None });
        }
        Ok(())
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
        let files = self.file_hashes(svc);
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

    /// Resolves, before anything is touched, every reference the plan's containers,
    /// execs and probes hold (host ports that will be chosen count as resolved) and
    /// checks that probe addresses have port numbers: a reference that can't be
    /// resolved is bad input, reported before any change.
    fn check_references(&self) -> Result<(), ExecError> {
        let state = self.state.lock().expect("state lock");
        for svc in &self.plan.services {
            let refs = PlannedRefs {
                inner: ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state),
                svc,
            };
            let reference = |message: String| ExecError::Reference { service: svc.name.clone(), message };
            let value = |t: &hsm_model::Text| t.expose(self.cx.secrets, &refs).map_err(reference);
            let exec_texts = |e: &hsm_plan::Exec| -> Result<(), ExecError> {
                e.command.iter().chain(e.env.iter().map(|(_, v)| v)).try_for_each(|t| value(t).map(drop))
            };
            let address = |endpoint: &Endpoint| -> Result<(), ExecError> {
                if let Endpoint::Address { host, port } = endpoint {
                    value(host)?;
                    if value(port)?.expose().parse::<u16>().is_err() {
                        return Err(reference(format!("`{port}` of a readiness probe is not a port number")));
                    }
                }
                Ok(())
            };
            for action in &svc.actions {
                match action {
                    Action::EnsureContainer(c) => {
                        c.env
                            .iter()
                            .map(|(_, v)| v)
                            .chain(c.command.iter().flatten())
                            .try_for_each(|t| value(t).map(drop))?;
                    }
                    Action::Exec(e) | Action::Wait(Wait { probe: Probe::Exec(e), .. }) => exec_texts(e)?,
                    Action::Wait(Wait { probe: Probe::Tcp { endpoint }, .. }) => address(endpoint)?,
                    Action::Wait(Wait { probe: Probe::Http { endpoint, headers, .. }, .. }) => {
                        address(endpoint)?;
                        headers.iter().try_for_each(|(_, v)| value(v).map(drop))?;
                    }
                    Action::WriteFile(_) | Action::UvInstall { .. } => {}
                }
            }
        }
        Ok(())
    }

    /// Hashes of the files the service's plugin writes, for the config hash of
    /// containers that bind-mount them.
    fn file_hashes(&self, svc: &ServicePlan) -> Vec<String> {
        svc.actions
            .iter()
            .filter_map(|a| match a {
                Action::WriteFile(f) => Some(format!("{}:{}", f.path, spec::sha256_bytes(f.contents.as_bytes()))),
                _ => None,
            })
            .collect()
    }

    /// Resolves an exec action of a service with the state as it is now.
    fn build_exec(&self, svc: &ServicePlan, e: &hsm_plan::Exec) -> Result<spec::BuiltExec, String> {
        let state = self.state.lock().expect("state lock");
        let refs = ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
        spec::build_exec(e, &Exposer { secrets: self.cx.secrets, refs: &refs, key: self.cx.key })
    }

    /// Makes one container match; returns its id.
    async fn ensure(
        &self,
        svc: &ServicePlan,
        c: &Container,
        observed: &Observed,
        files: &[String],
    ) -> Result<String, ExecError> {
        let name = &observed.name;
        let plugin = plugin_name(svc);
        match &observed.decision {
            Decision::Keep => return Ok(observed.id.clone().expect("a kept container exists")),
            Decision::Start => {
                if self.ports_free(svc, c, false, &[])? {
                    // Docker resolves bind sources on every start: check them again.
                    self.check_binds(&plugin, c)?;
                    self.op(Some(&svc.name), &format!("start container {name}"));
                    let id = observed.id.clone().expect("a stopped container exists");
                    let ports = self.recorded_ports(svc, c);
                    self.docker.start(&id).await.map_err(|e| port_error(e, svc, c, &ports))?;
                    self.report(Change {
                        service: Some(svc.name.clone()),
                        action: ChangeKind::StartedContainer,
                        subject: name.clone(),
                        reason: Some(format!("it was {}", observed.status)),
                    });
                    return Ok(id);
                }
            }
            Decision::Create | Decision::Recreate(_) => {}
        }
        // Create (or replace) it. Everything that can fail is checked before the old
        // container is removed, so that a failure leaves it running: host ports
        // (those it holds itself are free once it is gone), volumes, bind sources and
        // the description with every reference resolved.
        let held = observed.published.as_slice();
        self.ports_free(svc, c, true, held)?;
        self.ensure_volumes(svc, c).await?;
        self.check_binds(&plugin, c)?;
        let mut built = self.build_spec(svc, c, &plugin, files)?;
        if let Some(old) = &observed.id {
            self.op(Some(&svc.name), &format!("remove container {name}"));
            self.docker.remove(old).await?;
            if !held.is_empty() {
                // The ports it held are free now; one taken meanwhile is chosen anew
                // (or, fixed, is an error).
                self.ports_free(svc, c, true, &[])?;
                built = self.build_spec(svc, c, &plugin, files)?;
            }
        }
        self.op(Some(&svc.name), &format!("create container {name} from {}", c.image));
        let id = self.docker.create(name, built.body).await?;
        self.op(Some(&svc.name), &format!("start container {name}"));
        let ports = self.recorded_ports(svc, c);
        self.docker.start(&id).await.map_err(|e| port_error(e, svc, c, &ports))?;
        {
            let mut state = self.state.lock().expect("state lock");
            state.container_mut(&svc.name, &c.name).new_instance(&id);
        }
        let (action, reason) = match &observed.decision {
            Decision::Recreate(reason) => (ChangeKind::RecreatedContainer, Some(reason.clone())),
            Decision::Start => (ChangeKind::RecreatedContainer, Some("its host port was taken".to_string())),
            _ => (ChangeKind::CreatedContainer, None),
        };
        self.report(Change { service: Some(svc.name.clone()), action, subject: name.clone(), reason });
        Ok(id)
    }

    /// The host ports recorded for a container.
    fn recorded_ports(&self, svc: &ServicePlan, c: &Container) -> spec::HostPorts {
        let state = self.state.lock().expect("state lock");
        state.container(&svc.name, &c.name).map(|s| s.ports.clone()).unwrap_or_default()
    }

    /// The Docker description of a container, with every reference resolved.
    fn build_spec(
        &self,
        svc: &ServicePlan,
        c: &Container,
        plugin: &str,
        files: &[String],
    ) -> Result<spec::Built, ExecError> {
        let state = self.state.lock().expect("state lock");
        let ports = state.container(&svc.name, &c.name).map(|s| s.ports.clone()).unwrap_or_default();
        let refs = ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
        let x = Exposer { secrets: self.cx.secrets, refs: &refs, key: self.cx.key };
        spec::build(&self.cx.project, &svc.name, plugin, c, &ports, files, &x)
            .map_err(|message| ExecError::Reference { service: svc.name.clone(), message })
    }

    /// Checks that the container's host ports are free. A port hsm chose that is now
    /// taken is chosen anew (reported; returns `false` so that the container is
    /// recreated with it); a fixed port that is taken is an error. With `create`,
    /// ports still unchosen are chosen. Ports in `held` (published by the container
    /// about to be replaced, which frees them) count as free.
    fn ports_free(
        &self,
        svc: &ServicePlan,
        c: &Container,
        create: bool,
        held: &[(u16, Protocol)],
    ) -> Result<bool, ExecError> {
        let free =
            |ip: &str, port: u16, protocol: Protocol| held.contains(&(port, protocol)) || is_free(ip, port, protocol);
        let mut all_free = true;
        for port in &c.ports {
            let key = port_key(port.container_port, port.protocol);
            if let Some(fixed) = port.host_port {
                if !free(&port.host_ip, fixed, port.protocol) {
                    return Err(ExecError::PortTaken {
                        service: svc.name.clone(),
                        container: c.name.clone(),
                        port: fixed,
                    });
                }
                // Recorded too, so that `hsm env` finds every port in one place.
                self.state.lock().expect("state lock").container_mut(&svc.name, &c.name).ports.insert(key, fixed);
                continue;
            }
            let current = self
                .state
                .lock()
                .expect("state lock")
                .container(&svc.name, &c.name)
                .and_then(|s| s.ports.get(&key).copied());
            match current {
                Some(p) if free(&port.host_ip, p, port.protocol) => {}
                Some(p) => {
                    all_free = false;
                    if create {
                        let new = self.choose_port(&port.host_ip, port.protocol)?;
                        self.state
                            .lock()
                            .expect("state lock")
                            .container_mut(&svc.name, &c.name)
                            .ports
                            .insert(key.clone(), new);
                        self.report(Change {
                            service: Some(svc.name.clone()),
                            action: ChangeKind::MovedPort,
                            subject: format!("{}:{} {p} → {new}", c.name, port.container_port),
                            reason: Some(format!("port {p} was taken by another program")),
                        });
                    }
                }
                None => {
                    // Never chosen: an existing container can't be using it, so it is
                    // created anew with it.
                    all_free = false;
                    let new = self.choose_port(&port.host_ip, port.protocol)?;
                    self.state.lock().expect("state lock").container_mut(&svc.name, &c.name).ports.insert(key, new);
                }
            }
        }
        Ok(all_free)
    }

    fn choose_port(&self, host_ip: &str, protocol: Protocol) -> Result<u16, ExecError> {
        let mut chosen = self.chosen.lock().expect("chosen lock");
        for _ in 0..20 {
            let port = free_port(host_ip, protocol)
                .map_err(|e| ExecError::Unsupported(format!("cannot find a free port on {host_ip}: {e}")))?;
            if chosen.insert(port) {
                return Ok(port);
            }
        }
        Err(ExecError::Unsupported(format!("cannot find a free port on {host_ip}")))
    }

    async fn ensure_volumes(&self, svc: &ServicePlan, c: &Container) -> Result<(), ExecError> {
        let project = &self.cx.project;
        for m in &c.mounts {
            let hsm_plan::Mount::Volume { volume, .. } = m else { continue };
            let name = project.volume(&svc.name, volume);
            match self.docker.volume(&name).await? {
                Some(v)
                    if project.owns(Some(&v.labels))
                        && v.labels.get(LABEL_SERVICE) == Some(&svc.name)
                        && v.labels.get(LABEL_VOLUME) == Some(volume) => {}
                // This project's, but another service's (`a` + `b-data` and `a-b` +
                // `data` give one name): never hand one service another's data.
                Some(v) if project.owns(Some(&v.labels)) => {
                    return Err(ExecError::OtherService {
                        kind: "volume",
                        name,
                        service: svc.name.clone(),
                        owner: v.labels.get(LABEL_SERVICE).cloned().unwrap_or_default(),
                    });
                }
                Some(v) => {
                    let owner = crate::names::owner(Some(&v.labels));
                    return Err(ExecError::Foreign { kind: "volume", name, owner });
                }
                None => {
                    let mut labels = project.labels();
                    labels.insert(LABEL_SERVICE.into(), svc.name.clone());
                    labels.insert(LABEL_VOLUME.into(), volume.clone());
                    self.op(Some(&svc.name), &format!("create volume {name}"));
                    self.docker.create_volume(&name, labels).await?;
                    self.report(Change {
                        service: Some(svc.name.clone()),
                        action: ChangeKind::CreatedVolume,
                        subject: name,
                        reason: None,
                    });
                }
            }
        }
        Ok(())
    }

    async fn wait(&self, svc: &ServicePlan, w: &Wait, ids: &HashMap<String, String>) -> Result<(), ExecError> {
        let probe = self.resolve_probe(svc, &w.probe, ids).await?;
        let watched_short = match &w.probe {
            Probe::Tcp { endpoint: Endpoint::ContainerPort { container, .. } }
            | Probe::Http { endpoint: Endpoint::ContainerPort { container, .. }, .. } => Some(container.clone()),
            Probe::Exec(e) => Some(e.container.clone()),
            _ => containers_of(svc).next().map(|c| c.name.clone()),
        };
        // Looked at by id (what this run created or kept), named for people.
        let watched = watched_short.as_ref().map(|c| self.cx.project.container(&svc.name, c));
        let watched_id = watched_short.as_ref().and_then(|c| ids.get(c)).cloned();
        let restarts_at_start = match &watched_id {
            Some(id) => self.docker.inspect(id).await?.and_then(|i| i.restart_count).unwrap_or(0),
            None => 0,
        };
        let describe = probe.describe();
        self.op(Some(&svc.name), &format!("wait for {describe}"));
        let timeout_ms = self.options.wait_timeout_ms.unwrap_or(w.timeout_ms);
        self.cx.reporter.event(Event::WaitStarted { service: &svc.name, probe: &describe, timeout_ms });
        let start = Instant::now();
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let interval = Duration::from_millis(u64::from(w.interval_ms.max(50)));
        let finished = |ok: bool| {
            self.cx.reporter.event(Event::WaitFinished {
                service: &svc.name,
                ok,
                elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        };
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let failure = match probe
                .attempt(&self.docker, left.clamp(Duration::from_millis(100), Duration::from_secs(10)))
                .await
            {
                Ok(()) => {
                    finished(true);
                    return Ok(());
                }
                // What the probe printed can hold a secret: redacted before it is shown.
                Err(f) => self.redact(&f),
            };
            self.cx.reporter.event(Event::WaitRetry { service: &svc.name, failure: &failure });
            // A container that stopped, or that Docker restarted since the wait began
            // (it crashed), will not become ready: say so at once.
            if let (Some(name), Some(id)) = (&watched, &watched_id)
                && let Some(inspect) = self.docker.inspect(id).await?
                && let Some(s) = inspect.state
                && (matches!(
                    s.status,
                    Some(
                        ContainerStateStatusEnum::EXITED
                            | ContainerStateStatusEnum::DEAD
                            | ContainerStateStatusEnum::RESTARTING
                    )
                ) || inspect.restart_count.unwrap_or(0) > restarts_at_start)
            {
                finished(false);
                let logs = self.redact_lines(self.docker.logs_tail(id, 15).await);
                return Err(ExecError::Exited {
                    service: svc.name.clone(),
                    container: name.clone(),
                    code: s.exit_code.unwrap_or(-1),
                    logs,
                });
            }
            if start.elapsed() + interval > timeout {
                finished(false);
                let logs = match &watched_id {
                    Some(id) => self.redact_lines(self.docker.logs_tail(id, 15).await),
                    None => Vec::new(),
                };
                return Err(ExecError::NotReady {
                    service: svc.name.clone(),
                    failure,
                    timeout_ms,
                    container: watched,
                    logs,
                });
            }
            tokio::time::sleep(interval).await;
        }
    }

    async fn resolve_probe(
        &self,
        svc: &ServicePlan,
        probe: &Probe,
        ids: &HashMap<String, String>,
    ) -> Result<Resolved, ExecError> {
        // A container is reached by the id this run created or kept, never by name.
        let target = |short: &str| -> Result<(String, String), ExecError> {
            let name = self.cx.project.container(&svc.name, short);
            let id = ids.get(short).cloned().ok_or_else(|| ExecError::Reference {
                service: svc.name.clone(),
                message: format!("container `{name}` does not exist"),
            })?;
            Ok((id, name))
        };
        let reference = |message: String| ExecError::Reference { service: svc.name.clone(), message };
        let value = |t: &hsm_model::Text| -> Result<String, ExecError> {
            let state = self.state.lock().expect("state lock");
            let refs = ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
            t.expose(self.cx.secrets, &refs).map(|s| s.into_exposed()).map_err(reference)
        };
        let address = |host: &hsm_model::Text, port: &hsm_model::Text| -> Result<(String, u16), ExecError> {
            let h = value(host)?;
            let p = value(port)?;
            let p = p.parse().map_err(|_| reference(format!("`{}` is not a port number", port.display())))?;
            Ok((h, p))
        };
        // What people see of an address: its references, never its values.
        let shown_address = |host: &hsm_model::Text, port: &hsm_model::Text| format!("{host}:{port}");
        match probe {
            Probe::Tcp { endpoint: Endpoint::Address { host, port } } => {
                let shown = shown_address(host, port);
                let (host, port) = address(host, port)?;
                Ok(Resolved::Tcp { host, port, shown })
            }
            Probe::Tcp { endpoint: Endpoint::ContainerPort { container, port } } => {
                let (id, name) = target(container)?;
                let network = self.cx.project.network();
                let ip = self
                    .docker
                    .inspect(&id)
                    .await?
                    .and_then(|i| i.network_settings)
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(&network))
                    .and_then(|e| e.ip_address)
                    .filter(|ip| !ip.is_empty())
                    .ok_or_else(|| reference(format!("container `{name}` has no address on network `{network}`")))?;
                let shown = format!("{ip}:{port}");
                Ok(Resolved::Tcp { host: ip, port: *port, shown })
            }
            Probe::Http { endpoint, path, tls, status, headers } => {
                if *tls {
                    return Err(ExecError::Unsupported(format!(
                        "service `{}`: HTTPS readiness probes are not supported yet",
                        svc.name
                    )));
                }
                let (host, port, shown) = match endpoint {
                    Endpoint::Address { host, port } => {
                        let shown = shown_address(host, port);
                        let (h, p) = address(host, port)?;
                        (h, p, shown)
                    }
                    Endpoint::ContainerPort { container, port } => {
                        let spec = containers_of(svc).find(|c| &c.name == container).and_then(|c| {
                            c.ports.iter().find(|p| p.container_port == *port && p.protocol == Protocol::Tcp)
                        });
                        let host_ip = spec.map_or("127.0.0.1".to_string(), |p| p.host_ip.clone());
                        let host_port = spec.and_then(|p| p.host_port).or_else(|| {
                            let state = self.state.lock().expect("state lock");
                            state
                                .container(&svc.name, container)
                                .and_then(|c| c.ports.get(&format!("{port}/tcp")).copied())
                        });
                        let host_port = host_port
                            .ok_or_else(|| reference(format!("port {port} of `{container}` is not published")))?;
                        let shown = format!("{host_ip}:{host_port}");
                        (host_ip, host_port, shown)
                    }
                };
                let mut resolved = Vec::new();
                for (name, text) in headers {
                    let state = self.state.lock().expect("state lock");
                    let refs =
                        ServiceRefs::new(self.cx.key, &self.cx.project.dir, &self.cx.project.name, &svc.name, &state);
                    resolved.push((name.clone(), text.expose(self.cx.secrets, &refs).map_err(reference)?));
                }
                Ok(Resolved::Http { host, port, path: path.clone(), status: *status, headers: resolved, shown })
            }
            Probe::Exec(e) => {
                let built = self.build_exec(svc, e).map_err(reference)?;
                let (id, name) = target(&e.container)?;
                Ok(Resolved::Exec {
                    container: id,
                    name,
                    cmd: built.cmd.into_iter().map(hsm_model::Sensitive::new).collect(),
                    env: built.env,
                    user: e.user.clone(),
                    shown: shown_command(&e.command),
                })
            }
        }
    }

    async fn exec(
        &self,
        svc: &ServicePlan,
        e: &hsm_plan::Exec,
        ids: &HashMap<String, String>,
    ) -> Result<(), ExecError> {
        let built =
            self.build_exec(svc, e).map_err(|message| ExecError::Reference { service: svc.name.clone(), message })?;
        let id = ids.get(&e.container).cloned().unwrap_or_default();
        {
            let mut state = self.state.lock().expect("state lock");
            let entry = state.container_mut(&svc.name, &e.container);
            entry.new_instance(&id);
            if entry.execs.contains(&built.hash) {
                return Ok(());
            }
        }
        let name = self.cx.project.container(&svc.name, &e.container);
        let shown = shown_command(&e.command);
        self.op(Some(&svc.name), &format!("exec in {name}: {shown}"));
        let (code, output) = self.docker.exec(&id, built.cmd, built.env, e.user.clone()).await?;
        if code != 0 {
            return Err(ExecError::ExecFailed {
                service: svc.name.clone(),
                container: name,
                command: shown,
                code,
                output: self.redact(&output),
            });
        }
        self.state.lock().expect("state lock").container_mut(&svc.name, &e.container).execs.push(built.hash);
        self.report(Change {
            service: Some(svc.name.clone()),
            action: ChangeKind::RanExec,
            subject: format!("`{shown}` in {name}"),
            reason: None,
        });
        Ok(())
    }

    /// `text` with every secret value of the plan replaced, in every form hsm writes
    /// it (as it is, percent-encoded): a container's output or log, a probe's
    /// failure or Docker's message can echo them, and all of these are printed.
    fn redact(&self, text: &str) -> String {
        redact_with(&self.secret_forms, text)
    }

    fn redact_lines(&self, lines: Vec<String>) -> Vec<String> {
        lines.iter().map(|l| self.redact(l)).collect()
    }

    /// An error with every text in it redacted: the one way errors leave a sync.
    fn redact_error(&self, e: ExecError) -> ExecError {
        e.map_texts(&|t| self.redact(t))
    }

    /// Before anything changes: every file the plan writes and every bind source
    /// stays inside its plugin's folder (a symlink planted there is refused now,
    /// not after the network was created). Nothing is created.
    fn check_plugin_files(&self) -> Result<(), ExecError> {
        for svc in &self.plan.services {
            let plugin = plugin_name(svc);
            let written = svc.actions.iter().filter_map(|a| match a {
                Action::WriteFile(f) => Some((f.plugin.as_str(), f.path.as_str(), false)),
                _ => None,
            });
            let bound = containers_of(svc).flat_map(|c| &c.mounts).filter_map(|m| match m {
                hsm_plan::Mount::Bind { source, .. } => Some((plugin.as_str(), source.as_str(), true)),
                hsm_plan::Mount::Volume { .. } => None,
            });
            for (plugin, rel, followed) in written.chain(bound) {
                crate::plugin_files::PluginDir::check_inside(&self.cx.project, plugin, rel, followed)
                    .map_err(|e| ExecError::File { path: format!(".hsm/{plugin}/{rel}"), message: e.to_string() })?;
            }
        }
        Ok(())
    }

    /// Checks a container's bind sources through the plugin's folder as a
    /// capability: a source that climbs out (`..`, a symlink) fails here, before
    /// Docker sees it. (Binds are read-only, so the container can't plant one.)
    fn check_binds(&self, plugin: &str, c: &Container) -> Result<(), ExecError> {
        for m in &c.mounts {
            if let hsm_plan::Mount::Bind { source, .. } = m {
                let shown = format!(".hsm/{plugin}/{source}");
                let file_err = |e: std::io::Error| ExecError::File { path: shown.clone(), message: e.to_string() };
                crate::plugin_files::PluginDir::open(&self.cx.project, plugin)
                    .and_then(|files| files.bind_source(source))
                    .map_err(file_err)?;
            }
        }
        Ok(())
    }

    fn write_file(&self, svc: &ServicePlan, f: &hsm_plan::WriteFile) -> Result<(), ExecError> {
        let shown = format!(".hsm/{}/{}", f.plugin, f.path);
        let file_err = |e: std::io::Error| ExecError::File { path: shown.clone(), message: e.to_string() };
        // Through the plugin's folder as a capability: a path that climbs out (`..`,
        // absolute, a symlink on the way) fails.
        let files = crate::plugin_files::PluginDir::open(&self.cx.project, &f.plugin).map_err(file_err)?;
        if !files.write(&f.path, f.contents.as_bytes()).map_err(file_err)? {
            return Ok(());
        }
        self.report(Change {
            service: Some(svc.name.clone()),
            action: ChangeKind::WroteFile,
            subject: format!(".hsm/{}/{}", f.plugin, f.path),
            reason: None,
        });
        Ok(())
    }

    /// Checks, before anything changes, that uv is there and that every package can
    /// be installed as written (a folder that is a Python project, a valid
    /// requirement, …): bad entries are input errors, and touch nothing.
    fn check_python(&self) -> Result<(), ExecError> {
        for svc in &self.plan.services {
            for action in &svc.actions {
                let Action::UvInstall { packages } = action else { continue };
                let env = crate::uv::PythonEnv::new(&self.cx.project.dir, None).map_err(python_error)?;
                let py_state = self.python_state();
                let status = crate::uv::status(&env, packages, &py_state);
                for p in status.packages {
                    if let crate::uv::PackageState::Invalid { message } = p.state {
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

    fn python_state(&self) -> crate::uv::PythonState {
        let state = self.state.lock().expect("state lock");
        if state.python.is_null() {
            crate::uv::PythonState::default()
        } else {
            serde_json::from_value(state.python.clone()).unwrap_or_default()
        }
    }

    /// Installs the project's Python packages with uv (blocking work, off the async
    /// thread so that other services' waits go on), forwarding uv's progress.
    async fn python(&self, service: &str, packages: &[hsm_plan::PythonPackage]) -> Result<(), ExecError> {
        let env = crate::uv::PythonEnv::new(&self.cx.project.dir, None).map_err(python_error)?;
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
            let result = crate::uv::sync(&env, &desired, &mut py_state, &report);
            (result, py_state)
        });
        while let Some(line) = rx.recv().await {
            self.op(Some(service), &self.redact(&line));
        }
        let (result, py_state) = task.await.map_err(|e| ExecError::Unsupported(format!("uv task failed: {e}")))?;
        self.state.lock().expect("state lock").python =
            serde_json::to_value(&py_state).expect("the Python state serializes");
        let changes = result.map_err(python_error)?;
        let service = Some(service.to_string());
        if let Some(venv) = changes.venv {
            let reason = match venv {
                crate::uv::VenvChange::Created => None,
                crate::uv::VenvChange::Recreated => Some("its interpreter was gone".to_string()),
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

fn python_error(e: crate::uv::UvError) -> ExecError {
    ExecError::Python { message: e.to_string(), hint: e.hint(), input: e.is_bad_input() }
}

/// A service's references as pre-flight sees them: a host port of a port the
/// service publishes resolves (to its recorded number, or 0 until it is chosen),
/// any other fails.
struct PlannedRefs<'a> {
    inner: ServiceRefs<'a>,
    svc: &'a ServicePlan,
}

impl hsm_model::ResolveRefs for PlannedRefs<'_> {
    fn generated(&self, name: &str) -> Result<hsm_model::Sensitive, String> {
        self.inner.generated(name)
    }

    fn host_port(&self, container: &str, port: u16) -> Result<u16, String> {
        let published =
            containers_of(self.svc).any(|c| c.name == container && c.ports.iter().any(|p| p.container_port == port));
        if published {
            Ok(self.inner.host_port(container, port).unwrap_or(0))
        } else {
            Err(format!("port {port} of container `{container}` is not published by service `{}`", self.svc.name))
        }
    }
}

/// Refuses a plan in which two services would give a container (or a volume) the
/// same Docker name: `{project}-{service}-{name}` is ambiguous (`b-c` + `x` and
/// `b` + `c-x`). Checked before anything is touched; otherwise the second create
/// would fail half-way with a misleading "belongs to" error.
pub fn check_names(plan: &Plan, project: &ProjectId) -> Result<(), ExecError> {
    let mut containers: HashMap<String, &str> = HashMap::new();
    let mut volumes: HashMap<String, &str> = HashMap::new();
    for svc in &plan.services {
        for c in containers_of(svc) {
            let mut names = vec![("container", project.container(&svc.name, &c.name))];
            for m in &c.mounts {
                if let hsm_plan::Mount::Volume { volume, .. } = m {
                    names.push(("volume", project.volume(&svc.name, volume)));
                }
            }
            for (kind, name) in names {
                let seen = if kind == "container" { &mut containers } else { &mut volumes };
                match seen.get(&name) {
                    Some(other) if *other != svc.name => {
                        return Err(ExecError::NameClash {
                            kind,
                            name,
                            first: (*other).to_string(),
                            second: svc.name.clone(),
                        });
                    }
                    _ => {
                        seen.insert(name, &svc.name);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether a service's readiness waits are already satisfied: it has containers,
/// and every one was kept and seen ready since it last started. A service without
/// containers (an external one) has nothing that could have been seen ready, so its
/// waits always run.
fn seen_ready(svc: &ServicePlan, decisions: &HashMap<(String, String), &Observed>, state: &State) -> bool {
    let mut containers = containers_of(svc).peekable();
    containers.peek().is_some()
        && containers.all(|c| {
            let Some(o) = decisions.get(&(svc.name.clone(), c.name.clone())) else { return false };
            let recorded = state.container(&svc.name, &c.name);
            o.decision == Decision::Keep
                && o.started_at.is_some()
                && recorded.is_some_and(|r| r.id == o.id && r.ready_at == o.started_at)
        })
}

/// The containers a service's plan describes.
pub fn containers_of(svc: &ServicePlan) -> impl Iterator<Item = &Container> {
    svc.actions.iter().filter_map(|a| match a {
        Action::EnsureContainer(c) => Some(c),
        _ => None,
    })
}

fn plugin_name(svc: &ServicePlan) -> String {
    svc.plugin.split('@').next().unwrap_or(&svc.plugin).to_string()
}

/// A command as shown to people: its words with references, never values; a word
/// with spaces is quoted, a long or multi-line one cut (`sh -c 'set -eu…'`).
fn shown_command(words: &[hsm_model::Text]) -> String {
    let shown: Vec<String> = words
        .iter()
        .map(|w| {
            let (first, more) = w.first_line();
            let first = first.display();
            let cut = first.chars().count() > 40 || more;
            let mut word: String = first.chars().take(40).collect();
            if cut {
                word.push('…');
            }
            if word.contains([' ', '\t', '\'', '"']) || cut { format!("'{word}'") } else { word }
        })
        .collect();
    shown.join(" ")
}

/// A Docker error on start that means a host port is taken becomes
/// [`ExecError::PortTaken`], naming the port Docker could not bind (read from its
/// message), else the container's only host port.
fn port_error(e: ExecError, svc: &ServicePlan, c: &Container, ports: &spec::HostPorts) -> ExecError {
    match &e {
        ExecError::Docker { message, .. }
            if message.contains("address already in use") || message.contains("port is already allocated") =>
        {
            let host_ports: BTreeSet<u16> = c
                .ports
                .iter()
                .filter_map(|p| p.host_port.or_else(|| ports.get(&port_key(p.container_port, p.protocol)).copied()))
                .collect();
            let only = (host_ports.len() == 1).then(|| host_ports.first().copied()).flatten();
            match taken_port(message).or(only) {
                Some(port) => ExecError::PortTaken { service: svc.name.clone(), container: c.name.clone(), port },
                None => e,
            }
        }
        _ => e,
    }
}

/// The host port in Docker's "port taken" messages: `Bind for 127.0.0.1:5432
/// failed: port is already allocated`, `listen tcp4 127.0.0.1:5432: bind: address
/// already in use`.
fn taken_port(message: &str) -> Option<u16> {
    let address = if let Some((_, rest)) = message.split_once("Bind for ") {
        rest.split_whitespace().next()?
    } else {
        let (_, rest) = message.split_once("listen ")?;
        rest.split_whitespace().nth(1)?.trim_end_matches(':')
    };
    address.rsplit_once(':')?.1.parse().ok()
}

fn is_free(host_ip: &str, port: u16, protocol: Protocol) -> bool {
    match protocol {
        Protocol::Tcp => TcpListener::bind((host_ip, port)).is_ok(),
        Protocol::Udp => UdpSocket::bind((host_ip, port)).is_ok(),
    }
}

fn free_port(host_ip: &str, protocol: Protocol) -> std::io::Result<u16> {
    match protocol {
        Protocol::Tcp => Ok(TcpListener::bind((host_ip, 0))?.local_addr()?.port()),
        Protocol::Udp => Ok(UdpSocket::bind((host_ip, 0))?.local_addr()?.port()),
    }
}

/// Why a container is not on the project's network `network` as it is now
/// (`live`, `None` when it does not exist), if the engine says so: the network
/// was removed, or removed and created again (a new id), since the container was
/// first started, or the container was disconnected from it. What the engine does
/// not say (no network settings listed, a container never started, whose endpoint
/// has no network id yet and whose start looks the network up by name) is not
/// held against it.
fn off_network(c: &ContainerSummary, network: &str, live: Option<&Network>) -> Option<String> {
    let networks = c.network_settings.as_ref()?.networks.as_ref()?;
    let Some(endpoint) = networks.get(network) else {
        return Some(format!("it is not connected to network `{network}`"));
    };
    let attached = endpoint.network_id.as_deref().filter(|id| !id.is_empty())?;
    match live.map(|n| n.id.as_deref()) {
        None => Some(format!("network `{network}` was removed")),
        Some(Some(id)) if id != attached => Some(format!("network `{network}` was removed and created again")),
        Some(_) => None,
    }
}

/// Compares the engine with the plan. With `adopt_ports`, host ports found on
/// existing containers but missing from the state are recorded (a state file lost
/// or from an interrupted run).
pub async fn observe(
    docker: &Docker,
    plan: &Plan,
    cx: &Context<'_>,
    state: &Mutex<State>,
    adopt_ports: bool,
) -> Result<Observation, ExecError> {
    let project = &cx.project;
    cx.reporter.event(Event::Operation { service: None, what: "list containers" });
    let (ours, others) = docker.project_containers(project).await?;
    if let Some(other) = others.first() {
        let other_dir =
            other.labels.as_ref().and_then(|l| l.get(LABEL_PROJECT_DIR)).cloned().unwrap_or_else(|| "?".into());
        let other = crate::error::OtherFolder::at(std::path::Path::new(&other_dir));
        return Err(ExecError::SameNameElsewhere { project: project.name.clone(), other_dir, other });
    }
    // Only this project's (a renamed project's old containers are orphans).
    let by_key: HashMap<(String, String), &ContainerSummary> = ours
        .iter()
        .filter(|c| project.owns(c.labels.as_ref()))
        .filter_map(|c| {
            let l = c.labels.as_ref()?;
            Some(((l.get(LABEL_SERVICE)?.clone(), l.get(LABEL_CONTAINER)?.clone()), c))
        })
        .collect();

    let planned: Vec<(&ServicePlan, &Container)> =
        plan.services.iter().flat_map(|s| containers_of(s).map(move |c| (s, c))).collect();

    // Images and inspections, concurrently.
    let mut images: Vec<&str> = planned.iter().map(|(_, c)| c.image.as_str()).collect();
    images.sort_unstable();
    images.dedup();
    let image_ids: HashMap<&str, Option<String>> = join_all(images.iter().map(|i| docker.image_id(i)))
        .await
        .into_iter()
        .zip(images.iter())
        .map(|(r, i)| r.map(|id| (*i, id)))
        .collect::<Result<_, _>>()?;
    let inspections = join_all(planned.iter().map(|(s, c)| async {
        match by_key.get(&(s.name.clone(), c.name.clone())) {
            Some(summary) => docker.inspect(summary.id.as_deref().unwrap_or_default()).await,
            None => Ok(None),
        }
    }))
    .await;

    // The network the containers must be on, as it is now: a container still
    // pointing at one removed (Docker removes a network whose containers are all
    // stopped) could not start.
    let network = project.network();
    let any_exists = planned.iter().any(|(s, c)| by_key.contains_key(&(s.name.clone(), c.name.clone())));
    let live_network = if any_exists { docker.network(&network).await? } else { None };

    let mut out = Observation::default();
    for ((svc, c), inspection) in planned.iter().zip(inspections) {
        let inspection = inspection?;
        let summary = by_key.get(&(svc.name.clone(), c.name.clone())).copied();
        let name = project.container(&svc.name, &c.name);
        if adopt_ports && let Some(summary) = summary {
            adopt(state, svc, c, summary);
        }
        let image_id = image_ids.get(c.image.as_str()).cloned().flatten();
        let hash = {
            let st = state.lock().expect("state lock");
            let ports = st.container(&svc.name, &c.name).map(|s| s.ports.clone()).unwrap_or_default();
            let refs = ServiceRefs::new(cx.key, &project.dir, &project.name, &svc.name, &st);
            let x = Exposer { secrets: cx.secrets, refs: &refs, key: cx.key };
            let files: Vec<String> = svc
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::WriteFile(f) => Some(format!("{}:{}", f.path, spec::sha256_bytes(f.contents.as_bytes()))),
                    _ => None,
                })
                .collect();
            spec::build(project, &svc.name, &plugin_name(svc), c, &ports, &files, &x).ok().map(|b| b.hash)
        };
        let status = summary.and_then(|s| s.state).map(summary_state).unwrap_or("missing").to_string();
        let started_at = inspection.as_ref().and_then(|i| i.state.as_ref()).and_then(|s| s.started_at.clone());
        let decision = match summary {
            None => Decision::Create,
            Some(s) => {
                let label = s.labels.as_ref().and_then(|l| l.get(LABEL_CONFIG_HASH));
                if hash.is_none() || label != hash.as_ref() {
                    Decision::Recreate("its definition changed".into())
                } else if image_id.is_some() && s.image_id != image_id {
                    Decision::Recreate(format!("image `{}` changed", c.image))
                } else if let Some(why) = off_network(s, &network, live_network.as_ref()) {
                    Decision::Recreate(why)
                } else {
                    match s.state {
                        Some(ContainerSummaryStateEnum::RUNNING) => Decision::Keep,
                        Some(
                            ContainerSummaryStateEnum::EXITED
                            | ContainerSummaryStateEnum::CREATED
                            | ContainerSummaryStateEnum::RESTARTING,
                        ) => Decision::Start,
                        _ => Decision::Recreate(format!("it was {status}")),
                    }
                }
            }
        };
        out.containers.push(Observed {
            service: svc.name.clone(),
            container: c.name.clone(),
            name,
            image: c.image.clone(),
            decision,
            id: summary.and_then(|s| s.id.clone()),
            status,
            started_at,
            image_present: image_id.is_some(),
            published: summary.map(published).unwrap_or_default(),
        });
    }
    let planned_keys: BTreeSet<(String, String)> =
        planned.iter().map(|(s, c)| (s.name.clone(), c.name.clone())).collect();
    for c in &ours {
        let labels = c.labels.as_ref();
        let key = labels.and_then(|l| Some((l.get(LABEL_SERVICE)?.clone(), l.get(LABEL_CONTAINER)?.clone())));
        let is_planned = key.as_ref().is_some_and(|k| planned_keys.contains(k));
        let same_project = project.owns(labels);
        if !is_planned || !same_project {
            let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string());
            let id = c.id.clone().unwrap_or_default();
            let name = name.unwrap_or_else(|| id.clone());
            out.orphans.push(Orphan { name, id, service: key.map(|k| k.0).unwrap_or_default() });
        }
    }
    Ok(out)
}

/// The host ports a container publishes.
fn published(summary: &ContainerSummary) -> Vec<(u16, Protocol)> {
    summary
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let proto = match p.typ {
                Some(bollard::models::PortSummaryTypeEnum::UDP) => Protocol::Udp,
                _ => Protocol::Tcp,
            };
            Some((p.public_port?, proto))
        })
        .collect()
}

/// Records the host ports of an existing container that the state lacks.
fn adopt(state: &Mutex<State>, svc: &ServicePlan, c: &Container, summary: &ContainerSummary) {
    let mut st = state.lock().expect("state lock");
    let entry = st.container_mut(&svc.name, &c.name);
    for p in summary.ports.iter().flatten() {
        let Some(public) = p.public_port else { continue };
        let proto = match p.typ {
            Some(bollard::models::PortSummaryTypeEnum::UDP) => Protocol::Udp,
            _ => Protocol::Tcp,
        };
        let wanted = c.ports.iter().any(|w| w.container_port == p.private_port && w.protocol == proto);
        if wanted {
            entry.ports.entry(port_key(p.private_port, proto)).or_insert(public);
        }
    }
}

fn summary_state(s: ContainerSummaryStateEnum) -> &'static str {
    match s {
        ContainerSummaryStateEnum::RUNNING => "running",
        ContainerSummaryStateEnum::EXITED => "exited",
        ContainerSummaryStateEnum::CREATED => "created",
        ContainerSummaryStateEnum::PAUSED => "paused",
        ContainerSummaryStateEnum::RESTARTING => "restarting",
        ContainerSummaryStateEnum::REMOVING => "being removed",
        ContainerSummaryStateEnum::DEAD => "dead",
        ContainerSummaryStateEnum::STOPPING => "stopping",
        ContainerSummaryStateEnum::EMPTY => "unknown",
    }
}

/// Which services' containers exist, by service (for `status` and `down`).
pub fn by_service(observation: &Observation) -> BTreeMap<&str, Vec<&Observed>> {
    let mut out: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for o in &observation.containers {
        out.entry(o.service.as_str()).or_default().push(o);
    }
    out
}

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
    /// Whether a sync would change anything.
    pub in_sync: bool,
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
            Some(match crate::uv::PythonEnv::new(&self.cx.project.dir, None) {
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
        Ok(StatusReport {
            project: self.cx.project.name.clone(),
            services,
            orphans: observation.orphans.iter().map(|o| o.name.clone()).collect(),
            python,
            in_sync,
        })
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

/// Removes everything hsm created for the project in `project`'s folder: its
/// containers and network, and with `volumes` its volumes. Only objects labelled
/// with this folder are touched. Returns what was removed.
pub async fn down(
    docker: &Docker,
    project: &ProjectId,
    volumes: bool,
    reporter: &dyn Reporter,
) -> Result<Vec<Change>, ExecError> {
    let dir = project.dir_label();
    let filter = [(LABEL_PROJECT_DIR, dir.as_str())];
    let mut changes = Vec::new();
    let mut record = |change: Change| {
        reporter.event(Event::Changed(&change));
        changes.push(change);
    };
    reporter.event(Event::Operation { service: None, what: "list containers" });
    let containers = docker.containers_labelled(&filter).await?;
    let names: Vec<(String, Option<String>)> = containers
        .iter()
        .filter_map(|c| {
            let name = c.names.as_ref()?.first()?.trim_start_matches('/').to_string();
            Some((name, c.labels.as_ref().and_then(|l| l.get(LABEL_SERVICE).cloned())))
        })
        .collect();
    let removed = join_all(names.iter().map(|(name, service)| async move {
        reporter.event(Event::Operation { service: service.as_deref(), what: &format!("remove container {name}") });
        docker.remove(name).await
    }))
    .await;
    for ((name, service), result) in names.into_iter().zip(removed) {
        result?;
        record(Change { service, action: ChangeKind::RemovedContainer, subject: name, reason: None });
    }
    for (name, _) in docker.networks_labelled(&filter).await? {
        reporter.event(Event::Operation { service: None, what: &format!("remove network {name}") });
        docker.remove_network(&name).await?;
        record(Change { service: None, action: ChangeKind::RemovedNetwork, subject: name, reason: None });
    }
    if volumes {
        for v in docker.volumes_labelled(&filter).await? {
            let service = v.labels.get(LABEL_SERVICE).cloned();
            reporter
                .event(Event::Operation { service: service.as_deref(), what: &format!("remove volume {}", v.name) });
            docker.remove_volume(&v.name).await?;
            record(Change { service, action: ChangeKind::RemovedVolume, subject: v.name, reason: None });
        }
    }
    Ok(changes)
}

/// Every value a secret of the plan can have in what hsm hands out: the project's
/// secrets and each service's generated ones, in every [`hsm_model::Encoding`]
/// hsm writes them in, longest first (so a value containing another is replaced
/// whole).
fn secret_forms(plan: &Plan, cx: &Context<'_>) -> Vec<String> {
    let mut values: Vec<String> = cx.secrets.values().map(|v| v.expose().to_string()).collect();
    for svc in &plan.services {
        for name in generated_names(svc) {
            values.push(cx.key.generated(&cx.project.dir, &cx.project.name, &svc.name, &name).into_exposed());
        }
    }
    let mut forms: Vec<String> =
        values.iter().filter(|v| !v.is_empty()).flat_map(|v| hsm_model::Encoding::ALL.map(|e| e.apply(v))).collect();
    forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    forms.dedup();
    forms
}

/// `text` with each of `forms` (longest first) replaced by `[redacted]`.
fn redact_with(forms: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for form in forms {
        if out.contains(form.as_str()) {
            out = out.replace(form.as_str(), "[redacted]");
        }
    }
    out
}

/// The names of the generated secrets a service's plan refers to.
fn generated_names(svc: &ServicePlan) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut add = |t: &hsm_model::Text| {
        for p in t.pieces() {
            if let hsm_model::Piece::Generated { name, .. } = p {
                names.insert(name.clone());
            }
        }
    };
    for action in &svc.actions {
        match action {
            Action::EnsureContainer(c) => {
                c.env.iter().for_each(|(_, v)| add(v));
                c.command.iter().flatten().for_each(&mut add);
            }
            Action::Exec(e) | Action::Wait(Wait { probe: Probe::Exec(e), .. }) => {
                e.command.iter().for_each(&mut add);
                e.env.iter().for_each(|(_, v)| add(v));
            }
            _ => {}
        }
    }
    svc.env.iter().flat_map(|e| e.vars.iter()).for_each(|(_, v)| add(v));
    names
}

#[cfg(test)]
mod tests {
    use hsm_model::Text;

    use super::*;

    #[test]
    fn a_container_off_the_live_network_is_told_apart() {
        let on = |networks: &[(&str, &str)]| ContainerSummary {
            network_settings: Some(bollard::models::ContainerSummaryNetworkSettings {
                networks: Some(
                    networks
                        .iter()
                        .map(|(name, id)| {
                            let e = bollard::models::EndpointSettings {
                                network_id: Some(id.to_string()),
                                ..Default::default()
                            };
                            (name.to_string(), e)
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        };
        let live = |id: &str| Network { id: Some(id.into()), labels: None };
        let c = on(&[("p-hsm", "n1")]);
        assert_eq!(off_network(&c, "p-hsm", Some(&live("n1"))), None);
        assert_eq!(off_network(&c, "p-hsm", None).as_deref(), Some("network `p-hsm` was removed"));
        assert_eq!(
            off_network(&c, "p-hsm", Some(&live("n2"))).as_deref(),
            Some("network `p-hsm` was removed and created again")
        );
        assert_eq!(
            off_network(&on(&[("bridge", "n1")]), "p-hsm", Some(&live("n1"))).as_deref(),
            Some("it is not connected to network `p-hsm`")
        );
        // What the engine does not say is not held against a container: a
        // container never started has no network id yet; settings not listed;
        // a network whose id is not given.
        assert_eq!(off_network(&on(&[("p-hsm", "")]), "p-hsm", None), None);
        assert_eq!(off_network(&ContainerSummary::default(), "p-hsm", Some(&live("n1"))), None);
        assert_eq!(off_network(&c, "p-hsm", Some(&Network { id: None, labels: None })), None);
    }

    fn service(name: &str, mode: hsm_plan::Mode, actions: Vec<Action>) -> ServicePlan {
        ServicePlan {
            name: name.into(),
            kind: "k".into(),
            plugin: "k@1".into(),
            profile: "p".into(),
            mode,
            merged: hsm_model::Value::Null,
            actions,
            env: Vec::new(),
        }
    }

    fn wait_for_address() -> Action {
        Action::Wait(Wait {
            probe: Probe::Tcp { endpoint: Endpoint::Address { host: Text::from("127.0.0.1"), port: Text::from("1") } },
            timeout_ms: 1000,
            interval_ms: 100,
        })
    }

    /// An action ensuring a container with nothing but a name and an image.
    fn bare_container(name: &str) -> Action {
        Action::EnsureContainer(Container {
            name: name.into(),
            image: "i".into(),
            command: None,
            env: Vec::new(),
            ports: Vec::new(),
            mounts: Vec::new(),
            restart: hsm_plan::RestartPolicy::No,
        })
    }

    #[test]
    fn a_service_without_containers_is_never_taken_as_seen_ready() {
        let external = service("db", hsm_plan::Mode::External, vec![wait_for_address()]);
        assert!(!seen_ready(&external, &HashMap::new(), &State::default()), "its waits must run");
    }

    #[test]
    fn a_service_is_seen_ready_only_when_every_container_was_kept_since_it_was_ready() {
        let svc = service("db", hsm_plan::Mode::Managed, vec![bare_container("server"), wait_for_address()]);
        let observed = |decision: Decision| Observed {
            service: "db".into(),
            container: "server".into(),
            name: "p-db-server".into(),
            image: "i".into(),
            decision,
            id: Some("id1".into()),
            status: "running".into(),
            started_at: Some("t1".into()),
            image_present: true,
            published: Vec::new(),
        };
        let mut state = State::default();
        let entry = state.container_mut("db", "server");
        entry.new_instance("id1");
        entry.ready_at = Some("t1".into());
        let kept = observed(Decision::Keep);
        let decisions = HashMap::from([(("db".to_string(), "server".to_string()), &kept)]);
        assert!(seen_ready(&svc, &decisions, &state));
        let started = observed(Decision::Start);
        let decisions = HashMap::from([(("db".to_string(), "server".to_string()), &started)]);
        assert!(!seen_ready(&svc, &decisions, &state));
        state.container_mut("db", "server").ready_at = Some("t0".into());
        let decisions = HashMap::from([(("db".to_string(), "server".to_string()), &kept)]);
        assert!(!seen_ready(&svc, &decisions, &state), "restarted since it was last seen ready");
    }

    #[test]
    fn every_encoded_form_of_a_secret_is_redacted() {
        let mut forms: Vec<String> = hsm_model::Encoding::ALL.map(|e| e.apply("p@ss/w rd")).into();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let text = "postgresql://u:p%40ss%2Fw%20rd@h/db and p@ss/w rd";
        assert_eq!(redact_with(&forms, text), "postgresql://u:[redacted]@h/db and [redacted]");
    }

    #[test]
    fn two_services_whose_container_names_run_together_are_refused() {
        let container = bare_container;
        let plan = Plan {
            project: "a".into(),
            services: vec![
                service("b-c", hsm_plan::Mode::Managed, vec![container("x")]),
                service("b", hsm_plan::Mode::Managed, vec![container("c-x")]),
            ],
        };
        let project = ProjectId::new("a", std::path::Path::new("/nonexistent/a"));
        let err = check_names(&plan, &project).unwrap_err();
        assert_eq!(err.to_string(), "services `b-c` and `b` would both name a container `a-b-c-x`");
        assert!(err.is_input(), "nothing was touched");
        let fine = Plan { project: "a".into(), services: plan.services[..1].to_vec() };
        assert!(check_names(&fine, &project).is_ok());
    }

    #[test]
    fn the_taken_port_is_read_from_dockers_message() {
        let allocated = "driver failed programming external connectivity on endpoint p-db-server (0123): Bind for 127.0.0.1:40123 failed: port is already allocated";
        assert_eq!(taken_port(allocated), Some(40123));
        let in_use = "driver failed programming external connectivity on endpoint x (y): Error starting userland proxy: listen tcp4 127.0.0.1:5433: bind: address already in use";
        assert_eq!(taken_port(in_use), Some(5433));
        let v6 = "Error starting userland proxy: listen tcp6 [::1]:6380: bind: address already in use";
        assert_eq!(taken_port(v6), Some(6380));
        assert_eq!(taken_port("address already in use"), None);
    }

    #[test]
    fn commands_are_shown_short_and_quoted() {
        let words: Vec<Text> = ["pg_isready", "-q", "-U", "postgres"].into_iter().map(Text::from).collect();
        assert_eq!(shown_command(&words), "pg_isready -q -U postgres");
        let script: Vec<Text> =
            ["sh", "-c", "set -eu\nfor db in x; do\n  echo\ndone"].into_iter().map(Text::from).collect();
        assert_eq!(shown_command(&script), "sh -c 'set -eu…'");
    }
}
