//! `hsm down`: removes what hsm created for a project, found by the labels that
//! name the project's folder, never by name.

use futures_util::future::join_all;

use crate::docker::Docker;
use crate::error::ExecError;
use crate::names::{LABEL_PROJECT_DIR, LABEL_SERVICE, ProjectId};
use crate::report::{Change, ChangeKind, Event, Reporter};

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
    for (name, network) in docker.networks_labelled(&filter).await? {
        reporter.event(Event::Operation { service: None, what: &format!("remove network {name}") });
        docker.remove_network(&name, network.id.as_deref()).await?;
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
