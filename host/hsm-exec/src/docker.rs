//! The Docker engine, as hsm uses it: a thin layer over bollard that reports each
//! operation (for `-v`), turns bollard's errors into [`ExecError`]s that name what
//! was being done, and lists only objects carrying a project's labels.

use std::collections::HashMap;

use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerSummary, NetworkCreateRequest, Volume, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::error::ExecError;
use crate::names::{LABEL_PROJECT, LABEL_PROJECT_DIR, ProjectId};
use crate::report::{Event, Reporter};

/// How much of a command's output hsm keeps for error messages.
const OUTPUT_KEEP: usize = 4096;

/// How long a container name held by nothing visible (a create still in flight
/// in the engine) is waited for before it is an error.
const NAME_HELD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A network that exists.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    /// Its id (a network removed and created again under its name has a new
    /// one), if the engine gave it.
    pub id: Option<String>,
    /// Its labels.
    pub labels: Option<HashMap<String, String>>,
    /// How many running containers are on it, when it was asked (only of
    /// networks that share a name, see [`Docker::networks_named`]).
    pub containers: Option<usize>,
}

/// A connection to the Docker engine.
#[derive(Clone, Debug)]
pub struct Docker {
    api: bollard::Docker,
    host: String,
}

impl Docker {
    /// Connects to the engine named by `DOCKER_HOST` (else the default socket) and
    /// agrees on an API version (the engine's, when older than bollard's).
    pub async fn connect() -> Result<Self, ExecError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let unreachable = |message: String| ExecError::DockerUnreachable { host: host.clone(), message };
        let api = bollard::Docker::connect_with_defaults().map_err(|e| unreachable(short_error(&e)))?;
        // Pulls of large images may take long; each other call is short.
        let api = api.with_timeout(std::time::Duration::from_secs(3600));
        let api = api.negotiate_version().await.map_err(|e| unreachable(short_error(&e)))?;
        Ok(Self { api, host })
    }

    /// Where this connection goes.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The bollard client, for what this module does not wrap.
    pub fn api(&self) -> &bollard::Docker {
        &self.api
    }

    /// Turns a bollard error into an [`ExecError`] about `operation`.
    pub(crate) fn error(&self, operation: impl Into<String>, e: BollardError) -> ExecError {
        match e {
            BollardError::DockerResponseServerError { message, .. } => {
                ExecError::Docker { operation: operation.into(), message }
            }
            BollardError::DockerStreamError { error } => {
                ExecError::Docker { operation: operation.into(), message: error }
            }
            other if is_connection_error(&other) => {
                ExecError::DockerUnreachable { host: self.host.clone(), message: short_error(&other) }
            }
            other => ExecError::Docker { operation: operation.into(), message: short_error(&other) },
        }
    }

    /// Every container (running or not) whose labels match all of `labels`.
    pub(crate) async fn containers_labelled(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<ContainerSummary>, ExecError> {
        let filters: HashMap<&str, Vec<String>> =
            HashMap::from([("label", labels.iter().map(|(k, v)| format!("{k}={v}")).collect())]);
        let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        self.api.list_containers(Some(options)).await.map_err(|e| self.error("list containers", e))
    }

    /// The containers of a project (by name and folder), and those of projects with
    /// the same name in other folders.
    pub(crate) async fn project_containers(
        &self,
        project: &ProjectId,
    ) -> Result<(Vec<ContainerSummary>, Vec<ContainerSummary>), ExecError> {
        let dir = project.dir_label();
        let name_filter = [(LABEL_PROJECT, project.name.as_str())];
        let dir_filter = [(LABEL_PROJECT_DIR, dir.as_str())];
        let (by_name, by_dir) =
            tokio::try_join!(self.containers_labelled(&name_filter), self.containers_labelled(&dir_filter))?;
        let others: Vec<ContainerSummary> = by_name
            .into_iter()
            .filter(|c| c.labels.as_ref().and_then(|l| l.get(LABEL_PROJECT_DIR)) != Some(&dir))
            .collect();
        Ok((by_dir, others))
    }

    /// A container by name or id, or `None` when there is none.
    pub(crate) async fn inspect(&self, name: &str) -> Result<Option<ContainerInspectResponse>, ExecError> {
        match self.api.inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.error(format!("inspect container `{name}`"), e)),
        }
    }

    /// The id of a local image, or `None` when it is not here.
    pub(crate) async fn image_id(&self, image: &str) -> Result<Option<String>, ExecError> {
        match self.api.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.error(format!("inspect image `{image}`"), e)),
        }
    }

    /// Pulls an image, reporting each layer's progress.
    pub(crate) async fn pull(&self, image: &str, reporter: &dyn Reporter) -> Result<(), ExecError> {
        let (repo, tag) = split_reference(image);
        reporter.event(Event::Operation { service: None, what: &format!("pull image {image}") });
        reporter.event(Event::PullStarted { image });
        let options = CreateImageOptionsBuilder::default().from_image(repo).tag(tag).build();
        let mut stream = self.api.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let (Some(layer), Some(status)) = (info.id.as_deref(), info.status.as_deref()) {
                        let detail = info.progress_detail.as_ref();
                        reporter.event(Event::PullProgress {
                            image,
                            layer,
                            status,
                            current: detail.and_then(|d| d.current).and_then(|c| u64::try_from(c).ok()),
                            total: detail.and_then(|d| d.total).and_then(|t| u64::try_from(t).ok()),
                        });
                    }
                }
                Err(e) => {
                    reporter.event(Event::PullFinished { image, ok: false });
                    return Err(match self.error("pull", e) {
                        ExecError::Docker { message, .. } => ExecError::Pull { image: image.to_string(), message },
                        other => other,
                    });
                }
            }
        }
        reporter.event(Event::PullFinished { image, ok: true });
        Ok(())
    }

    /// Creates a container of `project`; returns its id.
    ///
    /// The name can be held by what the caller did not see when it looked: an
    /// interrupted run's create, which the engine finishes after that run is gone.
    /// The engine reserves the name before it lists (or inspects) the container, so
    /// a name held by nothing visible is waited for, a few seconds at most; a
    /// container of this project that holds it is that run's and is replaced. One
    /// of anyone else's is never touched: that is an error naming its owner.
    pub(crate) async fn create(
        &self,
        project: &ProjectId,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<String, ExecError> {
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        let deadline = std::time::Instant::now() + NAME_HELD_WAIT;
        loop {
            match self.api.create_container(Some(options.clone()), body.clone()).await {
                Ok(r) => return Ok(r.id),
                Err(BollardError::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(e) => return Err(self.error(format!("create container `{name}`"), e)),
            }
            let found = self.inspect(name).await?;
            let labels = found.as_ref().and_then(|c| c.config.as_ref()?.labels.as_ref());
            if found.is_some() && !project.owns(labels) {
                let owner = crate::names::owner(labels);
                return Err(ExecError::Foreign { kind: "container", name: name.to_string(), owner });
            }
            if std::time::Instant::now() >= deadline {
                return Err(ExecError::Docker {
                    operation: format!("create container `{name}`"),
                    message: format!(
                        "the name is still held after {}s, by a container the engine has not finished creating or removing; run `hsm sync` again",
                        NAME_HELD_WAIT.as_secs()
                    ),
                });
            }
            if let Some(id) = found.and_then(|c| c.id) {
                self.remove(&id).await?;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Starts a container. One already running (a start an interrupted run asked
    /// for, finishing) is not an error.
    pub(crate) async fn start(&self, name: &str) -> Result<(), ExecError> {
        match self.api.start_container(name, None).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(self.error(format!("start container `{name}`"), e)),
        }
    }

    /// The host ports a container is configured to publish, running or not: a
    /// container caught mid-start (an interrupted run's) already holds them
    /// before Docker lists them.
    pub(crate) async fn configured_ports(&self, id: &str) -> Vec<(u16, hsm_plan::Protocol)> {
        let Ok(Some(inspect)) = self.inspect(id).await else { return Vec::new() };
        port_bindings(&inspect).into_iter().map(|(key, port)| (port, crate::state::key_protocol(key))).collect()
    }

    /// Stops (briefly) and removes a container, with its anonymous volumes. A
    /// container that is already gone is not an error.
    pub(crate) async fn remove(&self, name: &str) -> Result<(), ExecError> {
        let stop = StopContainerOptionsBuilder::default().t(10).build();
        match self.api.stop_container(name, Some(stop)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
            Err(e) => return Err(self.error(format!("stop container `{name}`"), e)),
        }
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        match self.api.remove_container(name, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            // Already being removed (by `--rm` or a concurrent `docker rm`).
            Err(BollardError::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(self.error(format!("remove container `{name}`"), e)),
        }
    }

    /// Waits, up to `limit`, until `cmd` no longer runs in `container` as an exec
    /// started earlier: a sync killed while it ran a setup command leaves that
    /// command running in the container, and running it a second time beside it
    /// makes both race (two `CREATE DATABASE` of one name: one fails). Other
    /// commands (a user's shell, a probe) are not waited for. Found by
    /// scripts/soak.
    pub(crate) async fn wait_for_same_exec(
        &self,
        container: &str,
        cmd: &[String],
        limit: std::time::Duration,
    ) -> Result<(), ExecError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(info) = self.inspect(container).await? else { return Ok(()) };
            let mut same = false;
            for id in info.exec_ids.unwrap_or_default() {
                // An exec that ended meanwhile may be gone: not running.
                let Ok(exec) = self.api.inspect_exec(&id).await else { continue };
                let running = exec.running == Some(true);
                let argv = exec.process_config.map(|p| {
                    let mut argv: Vec<String> = p.entrypoint.into_iter().collect();
                    argv.extend(p.arguments.unwrap_or_default());
                    argv
                });
                if running && argv.as_deref() == Some(cmd) {
                    same = true;
                    break;
                }
            }
            if !same || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Runs a command in a running container; returns its exit code and the end of
    /// its output (stdout and stderr together).
    pub(crate) async fn exec(
        &self,
        container: &str,
        cmd: Vec<String>,
        env: Vec<String>,
        user: Option<String>,
    ) -> Result<(i64, String), ExecError> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let operation = || format!("run a command in container `{container}`");
        let options = CreateExecOptions {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(cmd),
            env: (!env.is_empty()).then_some(env),
            user,
            ..Default::default()
        };
        let exec = self.api.create_exec(container, options).await.map_err(|e| self.error(operation(), e))?;
        let mut output = Vec::new();
        if let StartExecResults::Attached { output: mut stream, .. } =
            self.api.start_exec(&exec.id, None).await.map_err(|e| self.error(operation(), e))?
        {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| self.error(operation(), e))?;
                output.extend_from_slice(chunk.as_ref());
                if output.len() > 2 * OUTPUT_KEEP {
                    output.drain(..output.len() - OUTPUT_KEEP);
                }
            }
        }
        let inspect = self.api.inspect_exec(&exec.id).await.map_err(|e| self.error(operation(), e))?;
        let start = output.len().saturating_sub(OUTPUT_KEEP);
        Ok((inspect.exit_code.unwrap_or(-1), String::from_utf8_lossy(&output[start..]).into_owned()))
    }

    /// The last `lines` lines a container logged (empty when they can't be read).
    pub(crate) async fn logs_tail(&self, container: &str, lines: usize) -> Vec<String> {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&lines.to_string()).build();
        let mut stream = self.api.logs(container, Some(options));
        let mut text = Vec::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.extend_from_slice(chunk.as_ref());
        }
        String::from_utf8_lossy(&text).lines().map(str::to_string).collect()
    }

    /// A volume, or `None` when there is none.
    pub(crate) async fn volume(&self, name: &str) -> Result<Option<Volume>, ExecError> {
        match self.api.inspect_volume(name).await {
            Ok(v) => Ok(Some(v)),
            Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(self.error(format!("inspect volume `{name}`"), e)),
        }
    }

    /// Creates a volume with these labels.
    pub(crate) async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<(), ExecError> {
        let request = VolumeCreateRequest { name: Some(name.to_string()), labels: Some(labels), ..Default::default() };
        self.api.create_volume(request).await.map(drop).map_err(|e| self.error(format!("create volume `{name}`"), e))
    }

    /// The volumes whose labels match all of `labels`.
    pub(crate) async fn volumes_labelled(&self, labels: &[(&str, &str)]) -> Result<Vec<Volume>, ExecError> {
        let filters: HashMap<&str, Vec<String>> =
            HashMap::from([("label", labels.iter().map(|(k, v)| format!("{k}={v}")).collect())]);
        let options = ListVolumesOptionsBuilder::default().filters(&filters).build();
        let list = self.api.list_volumes(Some(options)).await.map_err(|e| self.error("list volumes", e))?;
        Ok(list.volumes.unwrap_or_default())
    }

    /// Removes a volume (gone already is fine).
    pub(crate) async fn remove_volume(&self, name: &str) -> Result<(), ExecError> {
        let options = RemoveVolumeOptionsBuilder::default().force(false).build();
        match self.api.remove_volume(name, Some(options)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.error(format!("remove volume `{name}`"), e)),
        }
    }

    /// The networks (name, id and labels) whose labels match all of `labels`.
    pub(crate) async fn networks_labelled(&self, labels: &[(&str, &str)]) -> Result<Vec<(String, Network)>, ExecError> {
        let filters: HashMap<&str, Vec<String>> =
            HashMap::from([("label", labels.iter().map(|(k, v)| format!("{k}={v}")).collect())]);
        self.networks(&filters).await
    }

    /// The network of this name (its id and labels), or `None` when there is none.
    /// Of several (see [`Docker::networks_named`]), the one that counts.
    pub(crate) async fn network(&self, name: &str) -> Result<Option<Network>, ExecError> {
        Ok(self.networks_named(name).await?.into_iter().next())
    }

    /// Every network of this name. Engines before Docker 25 let networks share a
    /// name (a create an interrupted run sent, finished by the engine after the
    /// next run looked, makes a second), and then every use of the name is
    /// ambiguous. Of several, the one with the most running containers on it (then
    /// the smallest id) comes first: it is the network, the others are to remove
    /// once no container is on them.
    pub(crate) async fn networks_named(&self, name: &str) -> Result<Vec<Network>, ExecError> {
        let filters = HashMap::from([("name", vec![name.to_string()])]);
        // The filter matches parts of names too.
        let mut found: Vec<Network> =
            self.networks(&filters).await?.into_iter().filter(|(n, _)| n == name).map(|(_, n)| n).collect();
        if found.len() > 1 {
            let mut inspected = Vec::with_capacity(found.len());
            for mut n in found {
                let id = n.id.clone().unwrap_or_default();
                match self.api.inspect_network(&id, None).await {
                    Ok(i) => n.containers = Some(i.containers.map_or(0, |c| c.len())),
                    // Removed since it was listed.
                    Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => continue,
                    Err(e) => return Err(self.error(format!("inspect network `{name}` ({id})"), e)),
                }
                inspected.push(n);
            }
            inspected.sort_by(|x, y| y.containers.cmp(&x.containers).then_with(|| x.id.cmp(&y.id)));
            found = inspected;
        }
        Ok(found)
    }

    /// The networks matching `filters`, by name.
    async fn networks(&self, filters: &HashMap<&str, Vec<String>>) -> Result<Vec<(String, Network)>, ExecError> {
        let options = ListNetworksOptionsBuilder::default().filters(filters).build();
        let list = self.api.list_networks(Some(options)).await.map_err(|e| self.error("list networks", e))?;
        Ok(list
            .into_iter()
            .filter_map(|n| Some((n.name?, Network { id: n.id, labels: n.labels, containers: None })))
            .collect())
    }

    /// Creates a bridge network with these labels.
    pub(crate) async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<(), ExecError> {
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            labels: Some(labels),
            ..Default::default()
        };
        self.api.create_network(request).await.map(drop).map_err(|e| self.error(format!("create network `{name}`"), e))
    }

    /// Removes the network `name`, by its id when known (the name may be shared,
    /// see [`Docker::networks_named`]); gone already is fine.
    pub(crate) async fn remove_network(&self, name: &str, id: Option<&str>) -> Result<(), ExecError> {
        match self.api.remove_network(id.unwrap_or(name)).await {
            Ok(()) | Err(BollardError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
            Err(e) => Err(self.error(format!("remove network `{name}`"), e)),
        }
    }
}

/// The host ports a container is configured to publish, with the container port
/// each is for (`5432/tcp`), from its inspection; port 0 (any) is left out.
pub(crate) fn port_bindings(inspected: &ContainerInspectResponse) -> Vec<(&str, u16)> {
    let Some(bindings) = inspected.host_config.as_ref().and_then(|h| h.port_bindings.as_ref()) else {
        return Vec::new();
    };
    bindings
        .iter()
        .flat_map(|(key, list)| {
            let host_ports = list.iter().flatten().filter_map(|b| b.host_port.as_deref()?.parse::<u16>().ok());
            host_ports.filter(|p| *p != 0).map(move |p| (key.as_str(), p))
        })
        .collect()
}

/// `repo` and `tag` of an image reference (`postgres:16` → `postgres`, `16`;
/// `x@sha256:…` → `x`, `sha256:…`; no tag → `latest`). Pulling with an empty tag
/// would pull every tag.
pub(crate) fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

fn is_connection_error(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::HyperLegacyError { .. }
            | BollardError::RequestTimeoutError
    )
}

/// A bollard error as one line, with its causes.
fn short_error(e: &BollardError) -> String {
    if let BollardError::SocketNotFoundError(path) = e {
        return format!("no socket at `{path}`");
    }
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_port_bindings_are_read_by_container_port() {
        use bollard::models::{HostConfig, PortBinding};
        let binding = |port: &str| PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(port.into()) };
        let inspected = ContainerInspectResponse {
            host_config: Some(HostConfig {
                port_bindings: Some(HashMap::from([
                    ("5432/tcp".to_string(), Some(vec![binding("40001")])),
                    ("53/udp".to_string(), Some(vec![binding("0"), binding("40002")])),
                    ("80/tcp".to_string(), None),
                    ("81/tcp".to_string(), Some(vec![binding("not a port")])),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut ports = port_bindings(&inspected);
        ports.sort();
        assert_eq!(ports, [("53/udp", 40002), ("5432/tcp", 40001)]);
        assert!(port_bindings(&ContainerInspectResponse::default()).is_empty());
    }

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(split_reference("postgres:16"), ("postgres", "16"));
        assert_eq!(split_reference("postgres"), ("postgres", "latest"));
        assert_eq!(split_reference("localhost:5000/x/y"), ("localhost:5000/x/y", "latest"));
        assert_eq!(split_reference("localhost:5000/x/y:1.2"), ("localhost:5000/x/y", "1.2"));
        assert_eq!(split_reference("quay.io/a/b@sha256:abc"), ("quay.io/a/b", "sha256:abc"));
    }

    /// The base test image's tag (`tests/images/build.sh` builds it).
    fn base_image() -> String {
        let env_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/images/images.env");
        let text = std::fs::read_to_string(env_file).expect("tests/images/images.env");
        std::env::var("HSM_TEST_IMAGE_BASE").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            text.lines().find_map(|l| l.strip_prefix("HSM_TEST_IMAGE_BASE=").map(str::to_string)).expect("the image")
        })
    }

    /// A name held by what the caller did not see (an interrupted run's create,
    /// finished by the engine after the run was gone; found by CI): the project's
    /// own container is replaced, anyone else's never touched.
    #[tokio::test]
    async fn a_name_held_by_the_projects_own_container_is_taken_back_and_anyone_elses_never() {
        let docker = Docker::connect().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let project = ProjectId::new(format!("hsm-unit-create-{}", std::process::id()), dir.path());
        let name = project.container("svc", "main");
        let body = |labels: HashMap<String, String>| ContainerCreateBody {
            image: Some(base_image()),
            cmd: Some(vec!["sleep".into(), "60".into()]),
            labels: Some(labels),
            ..Default::default()
        };
        /// Removes the container whatever the test's outcome.
        struct Cleanup(String);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                let _ = std::process::Command::new("docker").args(["rm", "-f", &self.0]).output();
            }
        }
        let _cleanup = Cleanup(name.clone());

        let left = docker.create(&project, &name, body(project.labels())).await.unwrap();
        let made = docker.create(&project, &name, body(project.labels())).await.unwrap();
        assert_ne!(left, made);
        assert!(docker.inspect(&left).await.unwrap().is_none(), "the leftover is gone");
        docker.remove(&made).await.unwrap();

        let other = ProjectId::new(project.name.clone(), &dir.path().join("elsewhere"));
        let theirs = docker.create(&other, &name, body(other.labels())).await.unwrap();
        let refused = docker.create(&project, &name, body(project.labels())).await;
        let kept = docker.inspect(&theirs).await.unwrap().is_some();
        docker.remove(&theirs).await.unwrap();
        match refused {
            Err(ExecError::Foreign { owner: Some((name, dir)), .. }) => {
                assert_eq!((name, dir), (other.name.clone(), other.dir_label()));
            }
            other => panic!("{other:?}"),
        }
        assert!(kept, "another project's container is never touched");
    }
}
