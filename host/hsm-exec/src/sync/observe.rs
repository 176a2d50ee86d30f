//! Observing the engine and deciding, per planned container, what a sync does
//! with it. The I/O ([`observe`]: listing, inspecting, looking up images and the
//! network) is kept apart from the decision ([`decide`]), a pure function of
//! what is planned and what was found, so that every case is tested without an
//! engine.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use bollard::models::{ContainerInspectResponse, ContainerSummary, ContainerSummaryStateEnum};
use futures_util::future::join_all;
use hsm_plan::{Container, Plan, Protocol, ServicePlan};

use super::files::file_hashes;
use super::{Context, containers_of, plugin_name};
use crate::docker::{Docker, Network, port_bindings};
use crate::error::ExecError;
use crate::names::{LABEL_CONFIG_HASH, LABEL_CONTAINER, LABEL_PROJECT_DIR, LABEL_SERVICE, ProjectId};
use crate::refs::ServiceRefs;
use crate::report::Event;
use crate::spec::{self, Exposer};
use crate::state::{State, port_key};

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
    /// The id of the project's network the decisions were made against (of
    /// several sharing its name, the one that counts), when one exists.
    pub network: Option<String>,
}

/// A planned container as the decision sees it.
#[derive(Debug)]
pub(crate) struct Planned<'a> {
    /// Its service.
    pub(crate) service: &'a str,
    /// Its short name.
    pub(crate) container: &'a str,
    /// Its image, as the plan names it.
    pub(crate) image: &'a str,
    /// The config hash it must carry; `None` when its description can't be built
    /// (a reference that can't be resolved), which never matches.
    pub(crate) hash: Option<String>,
    /// The id of its image on the engine, `None` when the image is not there.
    pub(crate) image_id: Option<String>,
}

/// What a sync does: one decision per planned container, and the orphans.
#[derive(Debug)]
pub(crate) struct Decisions {
    /// One per planned container, in the order given.
    pub(crate) containers: Vec<Decision>,
    /// Containers of the project to remove.
    pub(crate) orphans: Vec<Orphan>,
}

/// Decides what to do with each planned container, from what the engine has:
/// `found` is the project folder's containers (as listed), `network` the
/// project's network as it is now (`None` when it does not exist). A container
/// is kept only when its config hash, its image and its network all match and
/// it runs; one that matches but is stopped is started; any mismatch recreates
/// it. A container of the folder that the plan no longer has, or that carries
/// another project's name (a renamed project's), is an orphan. Pure: no I/O.
pub(crate) fn decide(
    project: &ProjectId,
    planned: &[Planned<'_>],
    found: &[ContainerSummary],
    network: Option<&Network>,
) -> Decisions {
    let by_key = keyed(project, found);
    let network_name = project.network();
    let containers = planned
        .iter()
        .map(|p| match by_key.get(&(p.service.to_string(), p.container.to_string())) {
            None => Decision::Create,
            Some(s) => {
                let label = s.labels.as_ref().and_then(|l| l.get(LABEL_CONFIG_HASH));
                if p.hash.is_none() || label != p.hash.as_ref() {
                    Decision::Recreate("its definition changed".into())
                } else if p.image_id.is_some() && s.image_id != p.image_id {
                    Decision::Recreate(format!("image `{}` changed", p.image))
                } else if let Some(why) = off_network(s, &network_name, network) {
                    Decision::Recreate(why)
                } else {
                    match s.state {
                        Some(ContainerSummaryStateEnum::RUNNING) => Decision::Keep,
                        Some(
                            ContainerSummaryStateEnum::EXITED
                            | ContainerSummaryStateEnum::CREATED
                            | ContainerSummaryStateEnum::RESTARTING,
                        ) => Decision::Start,
                        _ => Decision::Recreate(format!("it was {}", status(Some(s)))),
                    }
                }
            }
        })
        .collect();
    let planned_keys: BTreeSet<(&str, &str)> = planned.iter().map(|p| (p.service, p.container)).collect();
    let mut orphans = Vec::new();
    for c in found {
        let labels = c.labels.as_ref();
        let key = labels.and_then(|l| Some((l.get(LABEL_SERVICE)?.clone(), l.get(LABEL_CONTAINER)?.clone())));
        let is_planned = key.as_ref().is_some_and(|(s, c)| planned_keys.contains(&(s.as_str(), c.as_str())));
        let same_project = project.owns(labels);
        if !is_planned || !same_project {
            let name = c.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_string());
            let id = c.id.clone().unwrap_or_default();
            let name = name.unwrap_or_else(|| id.clone());
            orphans.push(Orphan { name, id, service: key.map(|k| k.0).unwrap_or_default() });
        }
    }
    Decisions { containers, orphans }
}

/// This project's containers (a renamed project's old ones excluded) by their
/// service and short name.
fn keyed<'f>(project: &ProjectId, found: &'f [ContainerSummary]) -> HashMap<(String, String), &'f ContainerSummary> {
    found
        .iter()
        .filter(|c| project.owns(c.labels.as_ref()))
        .filter_map(|c| {
            let l = c.labels.as_ref()?;
            Some(((l.get(LABEL_SERVICE)?.clone(), l.get(LABEL_CONTAINER)?.clone()), c))
        })
        .collect()
}

/// A container's state as Docker says (`running`, `exited`, …), or `missing`.
fn status(summary: Option<&ContainerSummary>) -> &'static str {
    summary.and_then(|s| s.state).map(summary_state).unwrap_or("missing")
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
    let by_key = keyed(project, &ours);

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

    let mut wanted = Vec::with_capacity(planned.len());
    let mut started = Vec::with_capacity(planned.len());
    for ((svc, c), inspection) in planned.iter().zip(inspections) {
        let inspection = inspection?;
        if adopt_ports && let Some(summary) = by_key.get(&(svc.name.clone(), c.name.clone())) {
            adopt(state, svc, c, summary, inspection.as_ref());
        }
        started.push(inspection.and_then(|i| i.state).and_then(|s| s.started_at));
        wanted.push(Planned {
            service: &svc.name,
            container: &c.name,
            image: &c.image,
            hash: config_hash(cx, &state.lock().expect("state lock"), svc, c),
            image_id: image_ids.get(c.image.as_str()).cloned().flatten(),
        });
    }
    let decisions = decide(project, &wanted, &ours, live_network.as_ref());
    let network = live_network.and_then(|n| n.id);
    let containers = wanted
        .iter()
        .zip(decisions.containers)
        .zip(started)
        .map(|((p, decision), started_at)| {
            let summary = by_key.get(&(p.service.to_string(), p.container.to_string())).copied();
            Observed {
                service: p.service.to_string(),
                container: p.container.to_string(),
                name: project.container(p.service, p.container),
                image: p.image.to_string(),
                decision,
                id: summary.and_then(|s| s.id.clone()),
                status: status(summary).to_string(),
                started_at,
                image_present: p.image_id.is_some(),
                published: summary.map(published).unwrap_or_default(),
            }
        })
        .collect();
    Ok(Observation { containers, orphans: decisions.orphans, network })
}

/// The config hash a planned container must carry, with the host ports the state
/// holds; `None` when a reference can't be resolved yet.
fn config_hash(cx: &Context<'_>, state: &State, svc: &ServicePlan, c: &Container) -> Option<String> {
    let project = &cx.project;
    let ports = state.container(&svc.name, &c.name).map(|s| s.ports.clone()).unwrap_or_default();
    let refs = ServiceRefs::new(cx.key, &project.dir, &project.name, &svc.name, state);
    let x = Exposer { secrets: cx.secrets, refs: &refs, key: cx.key };
    spec::build(project, &svc.name, &plugin_name(svc), c, &ports, &file_hashes(svc), &x).ok().map(|b| b.hash)
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

/// Records the host ports of an existing container that the state lacks (those it
/// publishes, else those it is configured with: a stopped container publishes
/// none, nor does one an interrupted sync created or was starting), and the fixed
/// ones the plan gives. A run killed after it recreated a container on a new
/// fixed port, before it saved the state, left the old port there; the container
/// matches the plan and is kept, so without this `hsm env` would hand out the old
/// port for good (found by scripts/soak).
fn adopt(
    state: &Mutex<State>,
    svc: &ServicePlan,
    c: &Container,
    summary: &ContainerSummary,
    inspected: Option<&ContainerInspectResponse>,
) {
    let mut st = state.lock().expect("state lock");
    let entry = st.container_mut(&svc.name, &c.name);
    for w in &c.ports {
        if let Some(fixed) = w.host_port {
            entry.ports.insert(port_key(w.container_port, w.protocol), fixed);
        }
    }
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
    // The ports it is configured with, for one that publishes none (stopped, or
    // created or being started by an interrupted sync): without them its hash
    // can't be computed and it would be recreated on a newly chosen port (found
    // by scripts/soak).
    let configured = inspected.map(port_bindings).unwrap_or_default();
    for w in &c.ports {
        let key = port_key(w.container_port, w.protocol);
        if let Some(&(_, port)) = configured.iter().find(|(k, _)| *k == key) {
            entry.ports.entry(key).or_insert(port);
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

#[cfg(test)]
mod tests {
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
        let live = |id: &str| Network { id: Some(id.into()), labels: None, containers: None };
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
        assert_eq!(off_network(&c, "p-hsm", Some(&Network { id: None, labels: None, containers: None })), None);
    }

    /// The project of the decision's tests.
    fn project() -> ProjectId {
        ProjectId { name: "p".into(), dir: "/src/p".into() }
    }

    /// The project's network as it is now.
    fn live() -> Network {
        Network { id: Some("n1".into()), labels: None, containers: None }
    }

    /// Container `container` of service `db` as the engine lists it: it carries
    /// `owner`'s labels, config hash `h1` and image `img1`, and is attached to
    /// `owner`'s network (`n1`).
    fn found(owner: &ProjectId, container: &str, state: ContainerSummaryStateEnum) -> ContainerSummary {
        let mut labels = owner.labels();
        labels.insert(LABEL_SERVICE.into(), "db".into());
        labels.insert(LABEL_CONTAINER.into(), container.into());
        labels.insert(LABEL_CONFIG_HASH.into(), "h1".into());
        let endpoint = bollard::models::EndpointSettings { network_id: Some("n1".into()), ..Default::default() };
        ContainerSummary {
            id: Some(format!("id-{container}")),
            names: Some(vec![format!("/{}", owner.container("db", container))]),
            image_id: Some("img1".into()),
            labels: Some(labels),
            state: Some(state),
            network_settings: Some(bollard::models::ContainerSummaryNetworkSettings {
                networks: Some(HashMap::from([(owner.network(), endpoint)])),
            }),
            ..Default::default()
        }
    }

    /// Container `container` of service `db` as planned: hash `h1`, image `img1`.
    fn planned(container: &str) -> Planned<'_> {
        Planned {
            service: "db",
            container,
            image: "postgres:17",
            hash: Some("h1".into()),
            image_id: Some("img1".into()),
        }
    }

    /// The decision about the one planned container `server`.
    fn decide_server(found: &[ContainerSummary], network: Option<&Network>) -> Decision {
        let decisions = decide(&project(), &[planned("server")], found, network);
        assert!(decisions.orphans.is_empty(), "{:?}", decisions.orphans);
        decisions.containers.into_iter().next().unwrap()
    }

    #[test]
    fn a_matching_running_container_is_kept_and_a_missing_one_created() {
        let running = found(&project(), "server", ContainerSummaryStateEnum::RUNNING);
        assert_eq!(decide_server(&[running], Some(&live())), Decision::Keep);
        assert_eq!(decide_server(&[], None), Decision::Create);
    }

    #[test]
    fn a_matching_stopped_container_is_started() {
        for state in [
            ContainerSummaryStateEnum::EXITED,
            ContainerSummaryStateEnum::CREATED,
            ContainerSummaryStateEnum::RESTARTING,
        ] {
            let stopped = found(&project(), "server", state);
            assert_eq!(decide_server(&[stopped], Some(&live())), Decision::Start, "{state}");
        }
    }

    #[test]
    fn a_container_that_no_longer_matches_is_recreated() {
        let p = project();
        let running = found(&p, "server", ContainerSummaryStateEnum::RUNNING);
        let recreate = |why: &str| Decision::Recreate(why.into());

        let mut changed = planned("server");
        changed.hash = Some("h2".into());
        let decisions = decide(&p, &[changed], std::slice::from_ref(&running), Some(&live()));
        assert_eq!(decisions.containers, [recreate("its definition changed")]);

        // A description that can't be built yet never matches.
        let mut unbuilt = planned("server");
        unbuilt.hash = None;
        let decisions = decide(&p, &[unbuilt], std::slice::from_ref(&running), Some(&live()));
        assert_eq!(decisions.containers, [recreate("its definition changed")]);

        let mut pulled = planned("server");
        pulled.image_id = Some("img2".into());
        let decisions = decide(&p, &[pulled], std::slice::from_ref(&running), Some(&live()));
        assert_eq!(decisions.containers, [recreate("image `postgres:17` changed")]);

        // An image the engine lacks says nothing about the container's.
        let mut absent = planned("server");
        absent.image_id = None;
        let decisions = decide(&p, &[absent], std::slice::from_ref(&running), Some(&live()));
        assert_eq!(decisions.containers, [Decision::Keep]);

        let paused = found(&p, "server", ContainerSummaryStateEnum::PAUSED);
        assert_eq!(decide_server(&[paused], Some(&live())), recreate("it was paused"));
    }

    #[test]
    fn a_container_off_the_projects_network_is_recreated() {
        let running = found(&project(), "server", ContainerSummaryStateEnum::RUNNING);
        assert_eq!(
            decide_server(std::slice::from_ref(&running), None),
            Decision::Recreate("network `p-hsm` was removed".into())
        );
        let recreated = Network { id: Some("n2".into()), labels: None, containers: None };
        assert_eq!(
            decide_server(std::slice::from_ref(&running), Some(&recreated)),
            Decision::Recreate("network `p-hsm` was removed and created again".into())
        );
    }

    #[test]
    fn containers_the_plan_no_longer_has_are_orphans() {
        let p = project();
        let kept = found(&p, "server", ContainerSummaryStateEnum::RUNNING);
        let unplanned = found(&p, "replica", ContainerSummaryStateEnum::RUNNING);
        // The project was renamed (`old` to `p`) in the same folder: its
        // container is not this project's, even where its labels match a
        // planned one, and the planned one is created anew.
        let renamed = ProjectId { name: "old".into(), dir: p.dir.clone() };
        let old = found(&renamed, "server", ContainerSummaryStateEnum::RUNNING);

        let decisions = decide(&p, &[planned("server")], &[kept, unplanned], Some(&live()));
        assert_eq!(decisions.containers, [Decision::Keep]);
        let orphans: Vec<(&str, &str, &str)> =
            decisions.orphans.iter().map(|o| (o.name.as_str(), o.id.as_str(), o.service.as_str())).collect();
        assert_eq!(orphans, [("p-db-replica", "id-replica", "db")]);

        let decisions = decide(&p, &[planned("server")], &[old], Some(&live()));
        assert_eq!(decisions.containers, [Decision::Create]);
        let orphans: Vec<&str> = decisions.orphans.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(orphans, ["old-db-server"]);
    }
}
