//! The project's network: created when anything runs, removed when nothing
//! does, and a renamed project's old one removed with its containers. Only a
//! network labelled with this project's folder is touched.

use super::Syncer;
use crate::error::ExecError;
use crate::names::LABEL_PROJECT_DIR;
use crate::report::{Change, ChangeKind};

impl Syncer<'_> {
    /// Removes the networks of this project's folder other than its network: a
    /// renamed project leaves its old one behind.
    pub(super) async fn remove_old_networks(&self) -> Result<(), ExecError> {
        let project = &self.cx.project;
        let dir = project.dir_label();
        for (name, network) in self.docker.networks_labelled(&[(LABEL_PROJECT_DIR, &dir)]).await? {
            if name != project.network() {
                self.op(None, &format!("remove network {name}"));
                self.docker.remove_network(&name, network.id.as_deref()).await?;
                self.report(Change {
                    service: None,
                    action: ChangeKind::RemovedNetwork,
                    subject: name,
                    reason: Some("no longer this project's".into()),
                });
            }
        }
        Ok(())
    }

    /// Makes sure the project's network exists when `needed` (containers will run
    /// on it), or removes it when not. A network of that name that is not this
    /// project's is refused when needed and left alone otherwise; a second one of
    /// this project's (see [`crate::docker::Docker::networks_named`]) is removed,
    /// or, when containers run on it too, is an error that says how to start clean.
    ///
    /// `observed` is the id of the network the containers' decisions were made
    /// against: of several, that one is kept.
    pub(super) async fn ensure_network(&self, needed: bool, observed: Option<&str>) -> Result<(), ExecError> {
        let project = &self.cx.project;
        let network = project.network();
        let found = self.docker.networks_named(&network).await?;
        let (mut ours, theirs): (Vec<_>, Vec<_>) = found.into_iter().partition(|n| project.owns(n.labels.as_ref()));
        if let Some(at) = ours.iter().position(|n| n.id.is_some() && n.id.as_deref() == observed) {
            let kept = ours.remove(at);
            ours.insert(0, kept);
        }
        if needed && let Some(other) = theirs.first() {
            let owner = crate::names::owner(other.labels.as_ref());
            return Err(ExecError::Foreign { kind: "network", name: network, owner });
        }
        let extra = if needed { ours.get(1..).unwrap_or_default() } else { &ours[..] };
        // Running containers on a second one would have to be recreated on the
        // network kept, and a container can't be created on a name two networks
        // share: nothing is touched, and the user is told how to start clean.
        if needed && extra.iter().any(|n| n.containers.unwrap_or(0) > 0) {
            return Err(ExecError::NetworkTwice { name: network, count: ours.len() });
        }
        for n in extra {
            self.op(None, &format!("remove network {network}"));
            self.docker.remove_network(&network, n.id.as_deref()).await?;
            let reason = needed.then(|| "a second network of this name".to_string());
            self.report(Change { service: None, action: ChangeKind::RemovedNetwork, subject: network.clone(), reason });
        }
        if needed && ours.is_empty() {
            self.op(None, &format!("create network {network}"));
            self.docker.create_network(&network, project.labels()).await?;
            self.report(Change { service: None, action: ChangeKind::CreatedNetwork, subject: network, reason: None });
        }
        Ok(())
    }
}
