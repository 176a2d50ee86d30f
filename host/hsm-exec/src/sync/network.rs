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
        Ok(())
    }

    /// Makes sure the project's network exists when `needed` (containers will run
    /// on it), or removes it when not. A network of that name that is not this
    /// project's is refused.
    pub(super) async fn ensure_network(&self, needed: bool) -> Result<(), ExecError> {
        let project = &self.cx.project;
        let network = project.network();
        if needed {
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
        Ok(())
    }
}
