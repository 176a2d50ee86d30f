//! The executor against the real Docker engine, with plans written by hand (no
//! plugin needed): what leaves a sync or a status never holds a secret, the waits of
//! services without containers run, a recreate that can't succeed leaves the old
//! container running, and bad references are found before anything is touched.
//! Uses the test image `hsm-test/base` (`tests/images/build.sh`); every test has
//! its own project and removes what it created.

use hsm_key::UserKey;
use hsm_model::Explain;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use hsm_exec::error::ExecError;
use hsm_exec::names::ProjectId;
use hsm_exec::report::{Event, Reporter, Silent};
use hsm_exec::state::State;
use hsm_exec::sync::{Context, SyncOptions, Syncer};
use hsm_model::{Encoding, Piece, SecretId, SecretStore, Sensitive, Text};
use hsm_plan::{
    Action, Container, Endpoint, Exec, Mode, Plan, Port, Probe, Protocol, RestartPolicy, ServicePlan, Wait,
};
use tempfile::TempDir;

/// The base test image's tag, from `tests/images/images.env`.
fn base_image() -> String {
    let env_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/images/images.env");
    let text = std::fs::read_to_string(&env_file).expect("tests/images/images.env");
    let tag = std::env::var("HSM_TEST_IMAGE_BASE").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        text.lines().find_map(|l| l.strip_prefix("HSM_TEST_IMAGE_BASE=").map(str::to_string)).expect("the base image")
    });
    assert!(
        docker_ok(&["image", "inspect", &tag]),
        "the test image `{tag}` is not on the Docker engine: build it with `tests/images/build.sh`"
    );
    tag
}

fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker").args(args).output().is_ok_and(|o| o.status.success())
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Records every event, as its `Debug` text (which shows every field).
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Reporter for Recorder {
    fn event(&self, event: Event<'_>) {
        self.0.lock().unwrap().push(format!("{event:?}"));
    }
}

/// A throwaway project: folder, key, name; removes its Docker objects when dropped.
struct Sandbox {
    dir: TempDir,
    _key_dir: TempDir,
    key: UserKey,
    project: ProjectId,
}

impl Sandbox {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("exec-{tag}-{:x}", (std::process::id() ^ nanos) & 0xfffff);
        let dir = tempfile::Builder::new().prefix("hsm-exec-").tempdir().unwrap();
        let key_dir = tempfile::tempdir().unwrap();
        let key = UserKey::load_or_create(&key_dir.path().join("secret.key")).unwrap();
        let project = ProjectId::new(name, dir.path());
        Self { dir, _key_dir: key_dir, key, project }
    }

    /// Runs a sync of `plan` with `secrets`; returns its result, the state and the events.
    fn sync(
        &self,
        plan: &Plan,
        secrets: &SecretStore,
        state: State,
    ) -> (Result<Vec<ExecError>, ExecError>, State, Vec<String>) {
        let recorder = Recorder::default();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (result, state) = runtime.block_on(async {
            let docker = hsm_exec::docker::Docker::connect().await.expect("the Docker engine");
            let cx = Context { project: self.project.clone(), key: &self.key, secrets, reporter: &recorder };
            let syncer = Syncer::new(docker, plan, cx, state, SyncOptions::default());
            let result = syncer.run().await;
            (result, syncer.finish().0)
        });
        (result, state, recorder.0.into_inner().unwrap())
    }

    /// `hsm status`'s report as JSON.
    fn status(&self, plan: &Plan, secrets: &SecretStore, state: State) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let docker = hsm_exec::docker::Docker::connect().await.expect("the Docker engine");
            let cx = Context { project: self.project.clone(), key: &self.key, secrets, reporter: &Silent };
            let report = Syncer::new(docker, plan, cx, state, SyncOptions::default()).status().await.unwrap();
            serde_json::to_string(&report).unwrap()
        })
    }

    /// The ids of the project's containers.
    fn containers(&self) -> Vec<String> {
        let label = format!("label=dev.hsm.project-dir={}", self.project.dir_label());
        docker(&["ps", "-aq", "--no-trunc", "--filter", &label]).split_whitespace().map(str::to_string).collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let _ = runtime.block_on(async {
            let docker = hsm_exec::docker::Docker::connect().await?;
            hsm_exec::sync::down(&docker, &self.project, true, &Silent).await
        });
        let _ = &self.dir;
    }
}

fn service(name: &str, mode: Mode, actions: Vec<Action>) -> ServicePlan {
    ServicePlan {
        name: name.into(),
        kind: "test".into(),
        plugin: "test@0.1.0".into(),
        profile: "p".into(),
        mode,
        merged: hsm_model::Value::Null,
        actions,
        env: Vec::new(),
    }
}

/// A container of the base image that sleeps (and stops at once when asked).
fn sleeper(ports: Vec<Port>, env: Vec<(String, Text)>) -> Container {
    Container {
        name: "server".into(),
        image: base_image(),
        command: Some(["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"].into_iter().map(Text::from).collect()),
        env,
        ports,
        mounts: Vec::new(),
        restart: RestartPolicy::No,
        init: false,
        stop_signal: None,
    }
}

fn secret(store: &mut SecretStore, label: &str, value: &str, encoding: Encoding) -> (SecretId, Text) {
    let id = store.insert(Sensitive::new(value.to_string()));
    (id, Text::from_pieces([Piece::Secret { id, label: label.into(), encoding }]))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_probes_output_with_a_secret_never_leaves_the_executor() {
    let sandbox = Sandbox::new("leak");
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let value = format!("p@ss w0rd/{nanos:x}");
    let encoded = Encoding::Url.apply(&value);
    let mut secrets = SecretStore::new();
    let (_, raw) = secret(&mut secrets, "${PROBE_TOKEN}", &value, Encoding::Raw);
    let (_, url) = secret(&mut secrets, "${PROBE_TOKEN}", &value, Encoding::Url);
    // The probe prints the secret, raw and percent-encoded (as in a DSN), and fails.
    let probe = Exec {
        container: "server".into(),
        command: ["sh", "-c", "echo \"not ready: token=$T dsn=postgresql://u:$U@db/x\"; exit 1"]
            .into_iter()
            .map(Text::from)
            .collect(),
        env: vec![("T".into(), raw.clone()), ("U".into(), url)],
        user: None,
    };
    let plan = Plan {
        project: sandbox.project.name.clone(),
        services: vec![service(
            "probed",
            Mode::Managed,
            vec![
                Action::EnsureContainer(sleeper(Vec::new(), vec![("TOKEN".into(), raw)])),
                Action::Wait(Wait { probe: Probe::Exec(probe), timeout_ms: 1500, interval_ms: 200 }),
            ],
        )],
        tasks: Vec::new(),
    };
    let (result, state, events) = sandbox.sync(&plan, &secrets, State::new(&sandbox.project));
    let failures = result.expect("the sync ran");
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failure = &failures[0];
    let shown = format!("{failure}\n{:?}\n{:?}\n{:?}", failure.hint(), failure.details(), failure);
    assert!(shown.contains("not ready: token=[redacted] dsn=postgresql://u:[redacted]@db/x"), "{shown}");
    let retries: Vec<&String> = events.iter().filter(|e| e.starts_with("WaitRetry")).collect();
    assert!(!retries.is_empty(), "-vv shows each failed attempt: {events:#?}");
    assert!(retries.iter().all(|e| e.contains("token=[redacted]")), "{retries:#?}");

    let status = sandbox.status(&plan, &secrets, state);
    assert!(status.contains("not-ready") && status.contains("token=[redacted]"), "{status}");

    for text in events.iter().chain([&shown, &status]) {
        assert!(!text.contains(&value), "a secret was shown: {text}");
        assert!(!text.contains(&encoded), "a percent-encoded secret was shown: {text}");
    }
}

#[test]
fn an_external_services_probe_runs_and_shows_its_address_as_written() {
    let sandbox = Sandbox::new("external");
    let mut secrets = SecretStore::new();
    // The host is a secret from the environment: shown as its reference only.
    let (_, host) = secret(&mut secrets, "${EXT_HOST}", "127.0.0.1", Encoding::Raw);
    let port = closed_port();
    let wait = Wait {
        probe: Probe::Tcp { endpoint: Endpoint::Address { host, port: Text::from(port.to_string().as_str()) } },
        timeout_ms: 1000,
        interval_ms: 200,
    };
    let plan = Plan {
        project: sandbox.project.name.clone(),
        services: vec![service("db", Mode::External, vec![Action::Wait(wait)])],
        tasks: Vec::new(),
    };
    let (result, _, events) = sandbox.sync(&plan, &secrets, State::new(&sandbox.project));
    let failures = result.expect("the sync ran");
    assert_eq!(failures.len(), 1, "the wait ran and failed: {failures:?} {events:#?}");
    let message = failures[0].to_string();
    assert!(message.starts_with("service `db` did not become ready within 1s"), "{message}");
    assert!(message.contains(&format!("TCP connection to ${{EXT_HOST}}:{port}")), "{message}");
    let started = events.iter().find(|e| e.starts_with("WaitStarted")).expect("a wait started");
    assert!(started.contains(&format!("${{EXT_HOST}}:{port}")), "{started}");
    for text in events.iter().chain([&message]) {
        assert!(!text.contains("127.0.0.1"), "the secret host was shown: {text}");
    }
}

#[test]
fn a_recreate_onto_a_taken_fixed_port_leaves_the_old_container_running() {
    let sandbox = Sandbox::new("recreate");
    let secrets = SecretStore::new();
    let plan_on = |host_port: u16| Plan {
        project: sandbox.project.name.clone(),
        services: vec![service(
            "web",
            Mode::Managed,
            vec![Action::EnsureContainer(sleeper(
                vec![Port {
                    container_port: 8080,
                    protocol: Protocol::Tcp,
                    host_port: Some(host_port),
                    host_ip: "127.0.0.1".into(),
                }],
                Vec::new(),
            ))],
        )],
        tasks: Vec::new(),
    };
    let (result, state, _) = sandbox.sync(&plan_on(closed_port()), &secrets, State::new(&sandbox.project));
    assert!(result.expect("the first sync ran").is_empty());
    let before = sandbox.containers();
    assert_eq!(before.len(), 1);

    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let (result, state, _) = sandbox.sync(&plan_on(taken), &secrets, state);
    let failures = result.expect("the second sync ran");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].to_string(), format!("host port {taken} for `server` of service `web` is already in use"));
    assert_eq!(sandbox.containers(), before, "the old container was not removed");
    assert_eq!(docker(&["inspect", "--format", "{{.State.Status}}", &before[0]]), "running");

    // Once the port is free, the recreate goes through.
    drop(squatter);
    let (result, _, _) = sandbox.sync(&plan_on(taken), &secrets, state);
    assert!(result.expect("the third sync ran").is_empty());
    let after = sandbox.containers();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "recreated");
}

#[test]
fn a_bad_reference_is_bad_input_found_before_anything_is_touched() {
    let sandbox = Sandbox::new("badref");
    let mut secrets = SecretStore::new();
    let (_, port) = secret(&mut secrets, "${EXT_PORT}", "not-a-port", Encoding::Raw);
    let wait = Wait {
        probe: Probe::Tcp { endpoint: Endpoint::Address { host: Text::from("127.0.0.1"), port } },
        timeout_ms: 1000,
        interval_ms: 200,
    };
    let plan = Plan {
        project: sandbox.project.name.clone(),
        services: vec![
            service("web", Mode::Managed, vec![Action::EnsureContainer(sleeper(Vec::new(), Vec::new()))]),
            service("db", Mode::External, vec![Action::Wait(wait)]),
        ],
        tasks: Vec::new(),
    };
    let (result, _, _) = sandbox.sync(&plan, &secrets, State::new(&sandbox.project));
    let err = result.expect_err("refused before any change");
    assert!(err.is_input(), "{err:?}");
    assert_eq!(err.to_string(), "service `db`: `${EXT_PORT}` of a readiness probe is not a port number");
    assert!(sandbox.containers().is_empty(), "nothing was created");
}

#[test]
fn a_symlink_planted_in_a_plugins_folder_is_refused_before_anything_is_touched() {
    let sandbox = Sandbox::new("planted");
    let outside = tempfile::tempdir().unwrap();
    let folder = sandbox.dir.path().join(".hsm/test");
    std::fs::create_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(outside.path(), folder.join("conf")).unwrap();
    let mut server = sleeper(Vec::new(), Vec::new());
    server.mounts.push(hsm_plan::Mount::Bind { source: "conf".into(), target: "/conf".into(), read_only: true });
    let write = Action::WriteFile(hsm_plan::WriteFile {
        plugin: "test".into(),
        path: "conf/app.toml".into(),
        contents: "x = 1\n".into(),
    });
    for actions in [vec![Action::EnsureContainer(server.clone())], vec![write]] {
        let plan = Plan {
            project: sandbox.project.name.clone(),
            services: vec![service("web", Mode::Managed, actions)],
            tasks: Vec::new(),
        };
        let (result, _, events) = sandbox.sync(&plan, &SecretStore::new(), State::new(&sandbox.project));
        let err = result.expect_err("refused");
        assert!(err.to_string().contains("`.hsm/test/conf` is a symlink, and hsm follows none out"), "{err}");
        assert!(sandbox.containers().is_empty(), "nothing was created");
        let label = format!("label=dev.hsm.project-dir={}", sandbox.project.dir_label());
        assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "", "no network was created: {events:#?}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing was written outside");
    }
}
