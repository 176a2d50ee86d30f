//! Containers and volumes: each planned container made to match its decision
//! (kept, started, created or replaced, with everything that can fail checked
//! before the old one is removed), images pulled before anything changes, and
//! what the plan no longer has removed.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use hsm_plan::{Container, ServicePlan};

use super::ports::port_error;
use super::{Decision, Observation, Observed, Orphan, Syncer, containers_of, plugin_name};
use crate::error::ExecError;
use crate::names::{LABEL_PROJECT_DIR, LABEL_SERVICE, LABEL_VOLUME};
use crate::refs::ServiceRefs;
use crate::report::{Change, ChangeKind};
use crate::spec::{self, Exposer};

impl Syncer<'_> {
    /// Pulls the images that containers about to be created need and the engine
    /// lacks, before anything changes: a bad image name changes nothing.
    pub(super) async fn pull_images(&self, observation: &Observation) -> Result<(), ExecError> {
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
        Ok(())
    }

    /// Removes the containers of this project the plan no longer has, and the
    /// networks a renamed project left behind.
    pub(super) async fn remove_orphans(&self, orphans: &[Orphan]) -> Result<(), ExecError> {
        for orphan in orphans {
            self.op(Some(&orphan.service), &format!("remove container {}", orphan.name));
            self.docker.remove(&orphan.id).await?;
            self.report(Change {
                service: Some(orphan.service.clone()),
                action: ChangeKind::RemovedContainer,
                subject: orphan.name.clone(),
                reason: Some("no longer in the plan".into()),
            });
        }
        if !orphans.is_empty() {
            self.remove_old_networks().await?;
        }
        Ok(())
    }

    /// Makes one container match; returns its id.
    pub(super) async fn ensure(
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
                // Its own ports count as free: starting it checks them, and a
                // container an interrupted run was starting holds them already.
                let id = observed.id.clone().expect("a stopped container exists");
                let own = self.docker.configured_ports(&id).await;
                if self.ports_free(svc, c, false, &observed.published, &own)? {
                    // Docker resolves bind sources on every start: check them again.
                    self.check_binds(&plugin, c)?;
                    self.op(Some(&svc.name), &format!("start container {name}"));
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
        let configured = match &observed.id {
            Some(old) => self.docker.configured_ports(old).await,
            None => Vec::new(),
        };
        let held = !observed.published.is_empty() || !configured.is_empty();
        self.ports_free(svc, c, true, &observed.published, &configured)?;
        self.ensure_volumes(svc, c).await?;
        self.check_binds(&plugin, c)?;
        let mut built = self.build_spec(svc, c, &plugin, files)?;
        if let Some(old) = &observed.id {
            self.op(Some(&svc.name), &format!("remove container {name}"));
            self.docker.remove(old).await?;
            if held {
                // The ports it held are free now; one taken meanwhile is chosen anew
                // (or, fixed, is an error).
                self.ports_free(svc, c, true, &[], &[])?;
                built = self.build_spec(svc, c, &plugin, files)?;
            }
        }
        self.op(Some(&svc.name), &format!("create container {name} from {}", c.image));
        let id = self.docker.create(&self.cx.project, name, built.body).await?;
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
    pub(super) fn recorded_ports(&self, svc: &ServicePlan, c: &Container) -> spec::HostPorts {
        let state = self.state.lock().expect("state lock");
        state.container(&svc.name, &c.name).map(|s| s.ports.clone()).unwrap_or_default()
    }

    /// The Docker description of a container, with every reference resolved.
    pub(super) fn build_spec(
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

    pub(super) async fn ensure_volumes(&self, svc: &ServicePlan, c: &Container) -> Result<(), ExecError> {
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

    /// With `--prune-volumes`: removes the project's volumes no planned container uses.
    pub(super) async fn prune_volumes(&self) -> Result<(), ExecError> {
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
}
