//! From a plan's container description to what Docker is given, and the config
//! hash that says whether a running container still matches it.
//!
//! The hash covers everything that defines the container: image, command, env,
//! ports (with the host ports hsm chose), mounts, restart policy, network, the
//! files the service's plugin writes for bind mounts, and an init or stop signal
//! when the plan asks for one (left out otherwise, so that containers made before
//! they existed keep their hash and are not recreated). Secret values are folded in
//! as keyed fingerprints (the user's key), so the hash changes when a secret does
//! but reveals nothing; it is stored in a label anyone can read.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, HostConfig, Mount as DockerMount, MountType, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use hsm_key::UserKey;
use hsm_model::{ResolveRefs, SecretStore, Text};
use hsm_plan::{Container, Exec, Mount, Protocol, RestartPolicy as Restart};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::names::{LABEL_CONFIG_HASH, LABEL_CONTAINER, LABEL_SERVICE, ProjectId};
use crate::state::port_key;

/// Bump when the hash's input changes shape, so that every container is recreated
/// once rather than compared wrongly.
const HASH_VERSION: u32 = 1;

/// Texts exposed for one service, with their fingerprints for hashing.
pub(crate) struct Exposer<'a> {
    pub(crate) secrets: &'a SecretStore,
    pub(crate) refs: &'a dyn ResolveRefs,
    pub(crate) key: &'a UserKey,
}

impl Exposer<'_> {
    /// The value of a text, or why it has none.
    pub(crate) fn value(&self, text: &Text) -> Result<String, String> {
        text.expose(self.secrets, self.refs).map(|s| s.into_exposed())
    }

    /// What the hash sees of a text: its value, or a keyed fingerprint of it when it
    /// holds a secret.
    pub(crate) fn hashed(&self, text: &Text, value: &str) -> String {
        if text.has_secret() { format!("fp:{}", self.key.fingerprint(value.as_bytes())) } else { value.to_string() }
    }
}

/// A container ready to be created, with its hash.
pub(crate) struct Built {
    /// What Docker is given.
    pub(crate) body: ContainerCreateBody,
    /// The config hash (also in the body's labels).
    pub(crate) hash: String,
}

/// Host ports for a container, by port key (`5432/tcp`).
pub(crate) type HostPorts = BTreeMap<String, u16>;

#[derive(Serialize)]
struct HashInput<'a> {
    version: u32,
    image: &'a str,
    command: Option<Vec<String>>,
    env: Vec<(String, String)>,
    ports: Vec<(u16, &'static str, &'a str, u16)>,
    mounts: Vec<(String, String, &'a str, bool)>,
    restart: &'static str,
    network: String,
    files: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    init: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_signal: Option<&'a str>,
}

/// Builds the Docker description of `container` of `service`.
///
/// `plugin` names the folder under `.hsm/` that bind mounts are relative to;
/// `files` are hashes of what the service's plugin writes there.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    project: &ProjectId,
    service: &str,
    plugin: &str,
    container: &Container,
    ports: &HostPorts,
    files: &[String],
    x: &Exposer<'_>,
) -> Result<Built, String> {
    let mut env = Vec::with_capacity(container.env.len());
    let mut env_hashed = Vec::with_capacity(container.env.len());
    for (name, text) in &container.env {
        let value = x.value(text)?;
        env_hashed.push((name.clone(), x.hashed(text, &value)));
        env.push(format!("{name}={value}"));
    }
    let (command, command_hashed) = match &container.command {
        None => (None, None),
        Some(words) => {
            let mut values = Vec::with_capacity(words.len());
            let mut hashed = Vec::with_capacity(words.len());
            for w in words {
                let v = x.value(w)?;
                hashed.push(x.hashed(w, &v));
                values.push(v);
            }
            (Some(values), Some(hashed))
        }
    };

    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    let mut ports_hashed = Vec::new();
    for port in &container.ports {
        let key = port_key(port.container_port, port.protocol);
        let host_port = port
            .host_port
            .or_else(|| ports.get(&key).copied())
            .ok_or_else(|| format!("no host port chosen for `{key}` of container `{}`", container.name))?;
        exposed.push(key.clone());
        bindings.insert(
            key,
            Some(vec![PortBinding { host_ip: Some(port.host_ip.clone()), host_port: Some(host_port.to_string()) }]),
        );
        let proto = match port.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        ports_hashed.push((port.container_port, proto, port.host_ip.as_str(), host_port));
    }

    let mut mounts = Vec::new();
    let mut mounts_hashed = Vec::new();
    for m in &container.mounts {
        let (typ, source, target, read_only) = match m {
            Mount::Volume { volume, target, read_only } => {
                (MountType::VOLUME, project.volume(service, volume), target, *read_only)
            }
            // Always read-only, whatever the plan says (the host refuses writable
            // binds already): a writable bind lets the container swap in a symlink
            // that Docker would follow on the next start.
            Mount::Bind { source, target, .. } => {
                let path = bind_source(project, plugin, source);
                (MountType::BIND, path.display().to_string(), target, true)
            }
        };
        mounts_hashed.push((
            if typ == MountType::VOLUME { "volume".to_string() } else { "bind".to_string() },
            source.clone(),
            target.as_str(),
            read_only,
        ));
        mounts.push(DockerMount {
            typ: Some(typ),
            source: Some(source),
            target: Some(target.clone()),
            read_only: Some(read_only),
            ..Default::default()
        });
    }

    let (restart, restart_name) = match container.restart {
        Restart::No => (RestartPolicyNameEnum::NO, "no"),
        Restart::OnFailure => (RestartPolicyNameEnum::ON_FAILURE, "on-failure"),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, "unless-stopped"),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, "always"),
    };
    let network = project.network();
    let input = HashInput {
        version: HASH_VERSION,
        image: &container.image,
        command: command_hashed,
        env: env_hashed,
        ports: ports_hashed,
        mounts: mounts_hashed,
        restart: restart_name,
        network: network.clone(),
        files,
        init: container.init,
        stop_signal: container.stop_signal.as_deref(),
    };
    let hash = sha256_json(&input);

    let mut labels = project.labels();
    labels.insert(LABEL_SERVICE.into(), service.into());
    labels.insert(LABEL_CONTAINER.into(), container.name.clone());
    labels.insert(LABEL_CONFIG_HASH.into(), hash.clone());
    let body = ContainerCreateBody {
        image: Some(container.image.clone()),
        cmd: command,
        env: Some(env),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        stop_signal: container.stop_signal.clone(),
        host_config: Some(HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            mounts: (!mounts.is_empty()).then_some(mounts),
            restart_policy: Some(RestartPolicy { name: Some(restart), maximum_retry_count: None }),
            network_mode: Some(network),
            init: container.init.then_some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Built { body, hash })
}

/// The absolute path of a bind mount's source: `.hsm/<plugin>/<source>`.
pub(crate) fn bind_source(project: &ProjectId, plugin: &str, source: &str) -> std::path::PathBuf {
    project.hsm_dir().join(plugin).join(source.trim_start_matches('/'))
}

/// An exec action with its references resolved: what Docker runs, and its hash
/// (secrets fingerprinted) for remembering that it ran.
pub(crate) struct BuiltExec {
    pub(crate) cmd: Vec<String>,
    pub(crate) env: Vec<String>,
    pub(crate) hash: String,
}

/// Resolves an exec action.
pub(crate) fn build_exec(exec: &Exec, x: &Exposer<'_>) -> Result<BuiltExec, String> {
    let mut cmd = Vec::new();
    let mut hashed_cmd = Vec::new();
    for w in &exec.command {
        let v = x.value(w)?;
        hashed_cmd.push(x.hashed(w, &v));
        cmd.push(v);
    }
    let mut env = Vec::new();
    let mut hashed_env = Vec::new();
    for (name, text) in &exec.env {
        let v = x.value(text)?;
        hashed_env.push((name.clone(), x.hashed(text, &v)));
        env.push(format!("{name}={v}"));
    }
    let hash = sha256_json(&(HASH_VERSION, &exec.container, hashed_cmd, hashed_env, &exec.user));
    Ok(BuiltExec { cmd, env, hash })
}

/// A short hex SHA-256 of a value's JSON.
pub(crate) fn sha256_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("hash inputs serialize");
    hex::encode(&Sha256::digest(&json)[..16])
}

/// A short hex SHA-256 of bytes.
pub(crate) fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

#[cfg(test)]
mod tests {
    use hsm_model::{NoRefs, Piece, SecretId, Sensitive};
    use hsm_plan::{Port, RestartPolicy};

    use super::*;

    fn container(env_value: Text) -> Container {
        Container {
            name: "server".into(),
            image: "postgres:16".into(),
            command: None,
            env: vec![("POSTGRES_PASSWORD".into(), env_value), ("PGDATA".into(), "/data".into())],
            ports: vec![Port {
                container_port: 5432,
                protocol: Protocol::Tcp,
                host_port: None,
                host_ip: "127.0.0.1".into(),
            }],
            mounts: vec![Mount::Volume { volume: "data".into(), target: "/data".into(), read_only: false }],
            restart: RestartPolicy::UnlessStopped,
            init: false,
            stop_signal: None,
        }
    }

    fn secret(store: &mut SecretStore, value: &str) -> Text {
        let id: SecretId = store.insert(Sensitive::new(value.into()));
        Text::from_pieces([Piece::Secret { id, label: "${PW}".into(), encoding: Default::default() }])
    }

    #[test]
    fn the_hash_follows_secret_values_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = UserKey::load_or_create(&dir.path().join("k")).unwrap();
        let project = ProjectId::new("shop", dir.path());
        let ports = HostPorts::from([("5432/tcp".to_string(), 49_999)]);
        let build_with = |value: &str| {
            let mut store = SecretStore::new();
            let c = container(secret(&mut store, value));
            let x = Exposer { secrets: &store, refs: &NoRefs, key: &key };
            build(&project, "postgres", "postgres", &c, &ports, &[], &x).unwrap()
        };
        let a = build_with("hunter2");
        let again = build_with("hunter2");
        let b = build_with("hunter3");
        assert_eq!(a.hash, again.hash);
        assert_ne!(a.hash, b.hash);
        assert!(a.body.env.as_ref().unwrap().contains(&"POSTGRES_PASSWORD=hunter2".to_string()));
        let labels = serde_json::to_string(&a.body.labels).unwrap();
        assert!(!labels.contains("hunter2"));
        let hc = a.body.host_config.unwrap();
        let binding = &hc.port_bindings.unwrap()["5432/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("49999"));
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(hc.mounts.unwrap()[0].source.as_deref(), Some("shop-postgres-data"));
    }

    /// An init or a stop signal is part of the container (a change recreates it),
    /// and leaves the hash of a container that asks for neither as it was.
    #[test]
    fn init_and_stop_signal_reach_docker_and_the_hash_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let key = UserKey::load_or_create(&dir.path().join("k")).unwrap();
        let project = ProjectId::new("shop", dir.path());
        let store = SecretStore::new();
        let x = Exposer { secrets: &store, refs: &NoRefs, key: &key };
        let ports = HostPorts::from([("5432/tcp".into(), 1)]);
        let plain = container("x".into());
        let built = |c: &Container| build(&project, "pg", "postgres", c, &ports, &[], &x).unwrap();
        let before = built(&plain);
        assert_eq!(before.body.stop_signal, None);
        assert_eq!(before.body.host_config.as_ref().unwrap().init, None);
        // The hash input of a container without them is the one from before they existed.
        let input = HashInput {
            version: HASH_VERSION,
            image: "i",
            command: None,
            env: vec![],
            ports: vec![],
            mounts: vec![],
            restart: "no",
            network: "n".into(),
            files: &[],
            init: false,
            stop_signal: None,
        };
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"version":1,"image":"i","command":null,"env":[],"ports":[],"mounts":[],"restart":"no","network":"n","files":[]}"#
        );

        let with_init = built(&Container { init: true, ..plain.clone() });
        assert_eq!(with_init.body.host_config.as_ref().unwrap().init, Some(true));
        let with_signal = built(&Container { stop_signal: Some("SIGINT".into()), ..plain.clone() });
        assert_eq!(with_signal.body.stop_signal.as_deref(), Some("SIGINT"));
        let hashes = [&before.hash, &with_init.hash, &with_signal.hash];
        assert!(hashes.iter().enumerate().all(|(i, h)| hashes[i + 1..].iter().all(|o| o != h)), "{hashes:?}");
    }

    #[test]
    fn a_changed_host_port_changes_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let key = UserKey::load_or_create(&dir.path().join("k")).unwrap();
        let project = ProjectId::new("shop", dir.path());
        let store = SecretStore::new();
        let c = container("x".into());
        let x = Exposer { secrets: &store, refs: &NoRefs, key: &key };
        let one = build(&project, "pg", "postgres", &c, &HostPorts::from([("5432/tcp".into(), 1)]), &[], &x).unwrap();
        let two = build(&project, "pg", "postgres", &c, &HostPorts::from([("5432/tcp".into(), 2)]), &[], &x).unwrap();
        assert_ne!(one.hash, two.hash);
        assert!(build(&project, "pg", "postgres", &c, &HostPorts::new(), &[], &x).is_err());
    }
}
