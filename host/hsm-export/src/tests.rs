//! The mapping of every action kind, on a plan built by hand that uses them all:
//! the exported objects are read back and compared with the plan, and each action
//! an export can't keep the meaning of is refused by name.

use hsm_model::{Encoding, Piece, SecretId, Text};
use hsm_plan::{
    Action, Consumer, ConsumerEnv, Container, Endpoint, Exec, Mode, Mount, Plan, Port, Probe, Protocol, RestartPolicy,
    ServicePlan, Wait, WriteFile,
};
use serde_json::{Value, json};

use crate::{ComposeOptions, KubeOptions, compose, kubernetes};

fn lit(s: &str) -> Text {
    Text::literal(s)
}

fn port(p: u16, protocol: Protocol, host_port: Option<u16>) -> Port {
    Port { container_port: p, protocol, host_port, host_ip: "127.0.0.1".into() }
}

fn exec(container: &str, argv: &[&str]) -> Exec {
    Exec { container: container.into(), command: argv.iter().map(|a| lit(a)).collect(), env: vec![], user: None }
}

/// A service `cache` with a server (a volume, a TCP wait, an HTTP wait with a
/// status) and a sidecar (UDP, a bound file, an exec probe), an exec as a numeric
/// user, and a package whose environment holds a generated secret.
fn plan() -> Plan {
    let password = Text::from_pieces([Piece::Generated { name: "password".into(), encoding: Encoding::Raw }]);
    let server = Container {
        name: "server".into(),
        image: "cache:1".into(),
        command: Some(vec![lit("cache-server"), lit("--price=$(5)")]),
        env: vec![("PASSWORD".into(), password.clone()), ("MODE".into(), lit("a$b"))],
        ports: vec![port(7000, Protocol::Tcp, None), port(7001, Protocol::Tcp, Some(17001))],
        mounts: vec![Mount::Volume { volume: "data".into(), target: "/data/${HOME}".into(), read_only: false }],
        restart: RestartPolicy::UnlessStopped,
        init: false,
        stop_signal: None,
    };
    let sidecar = Container {
        name: "metrics".into(),
        // The server's image with another command: its command probe can run in
        // the exec's container (Kubernetes) too.
        image: "cache:1".into(),
        command: None,
        env: vec![],
        ports: vec![port(9125, Protocol::Udp, None)],
        mounts: vec![Mount::Bind { source: "conf".into(), target: "/etc/metrics".into(), read_only: true }],
        restart: RestartPolicy::Always,
        init: false,
        stop_signal: None,
    };
    let tcp = Wait {
        probe: Probe::Tcp { endpoint: Endpoint::ContainerPort { container: "server".into(), port: 7000 } },
        timeout_ms: 30_000,
        interval_ms: 500,
    };
    let http = Wait {
        probe: Probe::Http {
            endpoint: Endpoint::ContainerPort { container: "server".into(), port: 7001 },
            path: "/ready".into(),
            tls: false,
            status: Some(204),
            headers: vec![],
        },
        timeout_ms: 30_000,
        interval_ms: 2_000,
    };
    let metrics_ready =
        Wait { probe: Probe::Exec(exec("metrics", &["metrics", "--check"])), timeout_ms: 10_000, interval_ms: 1000 };
    let mut setup = exec("server", &["cache-cli", "init"]);
    setup.env = vec![("TOKEN".into(), password.clone())];
    setup.user = Some("999:998".into());
    let url = Text::from_pieces([
        Piece::Lit("cache://:".into()),
        Piece::Generated { name: "password".into(), encoding: Encoding::Url },
        Piece::Lit("@cache:".into()),
        Piece::HostPort { container: "server".into(), port: 7000 },
    ]);
    let cache = ServicePlan {
        name: "cache".into(),
        kind: "cache".into(),
        plugin: "cachier@1.0.0".into(),
        profile: "dev".into(),
        mode: Mode::Managed,
        merged: hsm_model::Value::Null,
        actions: vec![
            Action::WriteFile(WriteFile {
                plugin: "cachier".into(),
                path: "conf/metrics.toml".into(),
                contents: "port = 9125\n".into(),
            }),
            Action::EnsureContainer(server),
            Action::EnsureContainer(sidecar),
            Action::Wait(tcp),
            Action::Wait(http),
            Action::Wait(metrics_ready),
            Action::Exec(setup),
        ],
        env: vec![ConsumerEnv {
            consumer: Consumer::Package("api".into()),
            vars: vec![("CACHE_URL".into(), url), ("CACHE_HOST".into(), lit("cache"))],
        }],
    };
    let external = ServicePlan {
        name: "search".into(),
        kind: "search".into(),
        plugin: "search@1.0.0".into(),
        profile: "prod".into(),
        mode: Mode::External,
        merged: hsm_model::Value::Null,
        actions: vec![],
        env: vec![ConsumerEnv {
            consumer: Consumer::Package("api".into()),
            vars: vec![(
                "SEARCH_KEY".into(),
                Text::from_pieces([Piece::Secret {
                    id: SecretId(0),
                    label: "${SEARCH_KEY}".into(),
                    encoding: Encoding::Raw,
                }]),
            )],
        }],
    };
    Plan { project: "demo".into(), services: vec![cache, external], tasks: Vec::new() }
}

fn read(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[test]
fn compose_maps_every_action() {
    let export = compose(&plan(), &ComposeOptions { packages: vec![("api".into(), "api:3".into())] }).unwrap();
    let doc = read(&export.files["compose.yaml"]);
    let s = &doc["services"];
    let server = &s["cache"];
    assert_eq!(server["image"], "cache:1");
    assert_eq!(server["command"], json!(["cache-server", "--price=$$(5)"]));
    assert_eq!(server["environment"]["PASSWORD"], "${HSM_CACHE_PASSWORD:?HSM_CACHE_PASSWORD is not set}");
    assert_eq!(server["environment"]["MODE"], "a$$b");
    // The sidecar's port is published by the first container, whose namespace it shares.
    assert_eq!(
        server["ports"],
        json!([
            "127.0.0.1:${HSM_CACHE_PORT_7000:-7000}:7000",
            "127.0.0.1:17001:7001",
            "127.0.0.1:${HSM_CACHE_PORT_9125:-9125}:9125/udp"
        ])
    );
    assert_eq!(
        server["volumes"],
        json!([{ "type": "volume", "source": "cache-data", "target": "/data/$${HOME}", "read_only": false }])
    );
    assert_eq!(doc["volumes"], json!({ "cache-data": {} }));
    // Two waits on the server: both checks, every second at most, as long as the longest.
    let check = &server["healthcheck"];
    assert_eq!(check["test"][0], "CMD-SHELL");
    let line = check["test"][1].as_str().unwrap();
    assert!(
        line.contains("nc -z 127.0.0.1 7000")
            && line.contains("http://127.0.0.1:7001/ready")
            && line.contains("in 204)"),
        "{line}"
    );
    assert_eq!((check["interval"].as_str(), check["retries"].as_u64()), (Some("1s"), Some(30)));
    let metrics = &s["cache-metrics"];
    assert_eq!(metrics["network_mode"], "service:cache");
    assert_eq!(metrics["restart"], "always");
    assert_eq!(metrics["healthcheck"]["test"], json!(["CMD", "metrics", "--check"]));
    assert_eq!(metrics["volumes"][0]["source"], "./files/cachier/conf");
    assert_eq!(export.files["files/cachier/conf/metrics.toml"], "port = 9125\n");
    // The exec: a one-shot in the server's namespace, once it is healthy.
    let one_shot = &s["cache-exec-1"];
    assert_eq!(one_shot["entrypoint"], json!(["cache-cli", "init"]));
    assert_eq!(one_shot["user"], "999:998");
    assert_eq!(one_shot["environment"]["TOKEN"], one_shot["environment"]["PASSWORD"]);
    assert_eq!(one_shot["network_mode"], "service:cache");
    assert_eq!(one_shot["restart"], "no");
    // After every wait before it, on any container.
    assert_eq!(
        one_shot["depends_on"],
        json!({ "cache": { "condition": "service_healthy" }, "cache-metrics": { "condition": "service_healthy" } })
    );
    assert!(one_shot.get("command").is_none());
    // The package: its environment, by name inside the stack, once all is ready.
    let api = &s["api"];
    assert_eq!(
        api["environment"]["CACHE_URL"],
        "cache://:${HSM_CACHE_PASSWORD_URLENCODED:?HSM_CACHE_PASSWORD_URLENCODED is not set}@cache:7000"
    );
    assert_eq!(api["environment"]["SEARCH_KEY"], "${SEARCH_KEY:?SEARCH_KEY is not set}");
    assert_eq!(
        api["depends_on"],
        json!({
            "cache": { "condition": "service_healthy" },
            "cache-metrics": { "condition": "service_healthy" },
            "cache-exec-1": { "condition": "service_completed_successfully" },
        })
    );
    let names: Vec<&str> = export.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["HSM_CACHE_PASSWORD", "HSM_CACHE_PASSWORD_URLENCODED", "SEARCH_KEY"]);
}

#[test]
fn kubernetes_maps_every_action() {
    let (export, secrets) = kubernetes(&plan(), &KubeOptions { namespace: Some("team".into()) }).unwrap();
    let sts = read(&export.files["cache.statefulset.yaml"]);
    assert_eq!(sts["metadata"]["namespace"], "team");
    assert_eq!(sts["metadata"]["labels"]["app.kubernetes.io/managed-by"], "hsm");
    let pod = &sts["spec"]["template"]["spec"];
    let server = &pod["containers"][0];
    assert_eq!(server["name"], "server");
    assert_eq!(server["args"], json!(["cache-server", "--price=$$(5)"]));
    assert_eq!(
        server["env"][0],
        json!({ "name": "PASSWORD", "valueFrom": { "secretKeyRef": { "name": "cache-secrets", "key": "PASSWORD" } } })
    );
    assert_eq!(server["env"][1], json!({ "name": "MODE", "value": "a$$b" }));
    assert_eq!(
        server["ports"],
        json!([{ "containerPort": 7000, "protocol": "TCP" }, { "containerPort": 7001, "protocol": "TCP" }])
    );
    assert_eq!(server["volumeMounts"], json!([{ "name": "data", "mountPath": "/data/${HOME}", "readOnly": false }]));
    // Two waits: one shell check; the period is the shortest interval.
    let probe = &server["readinessProbe"];
    assert_eq!(probe["exec"]["command"][0], "/bin/sh");
    assert_eq!((probe["periodSeconds"].as_u64(), probe["failureThreshold"].as_u64()), (Some(1), Some(30)));
    let metrics = &pod["containers"][1];
    assert_eq!(metrics["readinessProbe"]["exec"]["command"], json!(["metrics", "--check"]));
    assert_eq!(
        metrics["volumeMounts"],
        json!([{ "name": "hsm-files", "mountPath": "/etc/metrics", "subPath": "conf", "readOnly": true }])
    );
    assert_eq!(pod["volumes"][0]["configMap"]["items"], json!([{ "key": "file-1", "path": "conf/metrics.toml" }]));
    let files = read(&export.files["cache-files.configmap.yaml"]);
    assert_eq!(files["data"]["file-1"], "port = 9125\n");
    // The exec: a container of the pod that waits with the server's checks, runs once, idles.
    let one_shot = &pod["containers"][2];
    assert_eq!(one_shot["name"], "exec-1");
    assert_eq!(one_shot["image"], "cache:1");
    assert_eq!(one_shot["securityContext"], json!({ "runAsUser": 999, "runAsGroup": 998 }));
    let command: Vec<&str> = one_shot["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    // Every wait before it, each given up after its timeout ($ doubled: Kubernetes expands).
    assert!(command[2].contains("until (") && command[2].contains("nc -z 127.0.0.1 7000"), "{}", command[2]);
    assert!(command[2].contains("until (metrics --check)") && command[2].contains("-lt 10 ]"), "{}", command[2]);
    assert!(command[2].contains("i=$$((i + 1))"), "{}", command[2]);
    assert_eq!(&command[3..], ["hsm-exec", "cache-cli", "init"]);
    assert_eq!(one_shot["env"].as_array().unwrap().last().unwrap()["name"], "TOKEN");
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data");
    let svc = read(&export.files["cache.service.yaml"]);
    let ports: Vec<(u64, &str)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["protocol"].as_str().unwrap()))
        .collect();
    assert_eq!(ports, [(7000, "TCP"), (7001, "TCP"), (9125, "UDP")]);
    // The package: plain variables in its ConfigMap, the rest in its Secret.
    let cm = read(&export.files["api-env.configmap.yaml"]);
    assert_eq!(cm["data"], json!({ "CACHE_HOST": "cache" }));
    let names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["cache-secrets", "api-secrets"]);
    let script = &export.files["create-secrets.sh"];
    assert!(script.contains("--from-literal=CACHE_URL=\"cache://:$(urlencode \"${HSM_CACHE_PASSWORD:?HSM_CACHE_PASSWORD is not set}\")@cache:7000\""), "{script}");
    assert!(script.contains("--namespace team"), "{script}");
}

/// Each action whose meaning an export can't keep is refused, naming the plugin,
/// the service and the action.
#[test]
fn what_can_not_be_mapped_is_refused_by_name() {
    let mut p = plan();
    p.services[0].actions.push(Action::Wait(Wait {
        probe: Probe::Tcp { endpoint: Endpoint::Address { host: lit("elsewhere"), port: lit("1") } },
        timeout_ms: 1000,
        interval_ms: 100,
    }));
    let e = compose(&p, &ComposeOptions::default()).unwrap_err().to_string();
    assert_eq!(
        e,
        "can't export service `cache` (plugin `cachier@1.0.0`), action 8 (wait): the probe checks another host, which an exported stack can't do before it starts"
    );

    let mut p = plan();
    let Action::Exec(e) = &mut p.services[0].actions[6] else { panic!() };
    e.user = Some("postgres".into());
    assert!(compose(&p, &ComposeOptions::default()).is_ok(), "Compose takes a user's name");
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("action 7 (exec in `server`)") && e.contains("a user's number"), "{e}");

    let mut p = plan();
    let Action::Exec(e) = &mut p.services[0].actions[6] else { panic!() };
    e.command.push(Text::from_pieces([Piece::Generated { name: "password".into(), encoding: Encoding::Raw }]));
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("holds a secret"), "{e}");

    let mut p = plan();
    let Action::EnsureContainer(c) = &mut p.services[0].actions[2] else { panic!() };
    c.ports.push(port(7000, Protocol::Tcp, None));
    let e = compose(&p, &ComposeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("both use port 7000"), "{e}");

    let mut p = plan();
    p.services[0].actions.remove(0);
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("action 2 (container `metrics`)") && e.contains("`conf` is no file the plan writes"), "{e}");
}

/// An init maps to Compose's `init` and to a pod whose PID 1 is Kubernetes' own; a
/// stop signal maps to Compose's and is refused for Kubernetes, which can't set one.
#[test]
fn init_and_stop_signal() {
    let mut p = plan();
    let Action::EnsureContainer(c) = &mut p.services[0].actions[2] else { panic!() };
    c.init = true;
    let export = compose(&p, &ComposeOptions::default()).unwrap();
    let doc = read(&export.files["compose.yaml"]);
    assert_eq!(doc["services"]["cache-metrics"]["init"], true);
    assert!(doc["services"]["cache"].get("init").is_none() && doc["services"]["cache"].get("stop_signal").is_none());
    let (export, _) = kubernetes(&p, &KubeOptions::default()).unwrap();
    let sts = read(&export.files["cache.statefulset.yaml"]);
    assert_eq!(sts["spec"]["template"]["spec"]["shareProcessNamespace"], true);
    let (export, _) = kubernetes(&plan(), &KubeOptions::default()).unwrap();
    assert!(
        read(&export.files["cache.statefulset.yaml"])["spec"]["template"]["spec"]
            .get("shareProcessNamespace")
            .is_none()
    );

    let Action::EnsureContainer(c) = &mut p.services[0].actions[1] else { panic!() };
    c.stop_signal = Some("SIGINT".into());
    let doc = read(&compose(&p, &ComposeOptions::default()).unwrap().files["compose.yaml"]);
    assert_eq!(doc["services"]["cache"]["stop_signal"], "SIGINT");
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("action 2 (container `server`)") && e.contains("a stop signal"), "{e}");
}

/// Names that would run together, and orders the target can't keep, are refused.
#[test]
fn collisions_and_lost_orders_are_refused() {
    // Compose: service `a` with sidecar `b` against a service `a-b`.
    let mut p = plan();
    let mut other = p.services[0].clone();
    other.name = "cache-metrics".into();
    p.services.push(other);
    let e = compose(&p, &ComposeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("Compose service `cache-metrics` would have the name of another one"), "{e}");
    // Kubernetes: two services whose names become one.
    let mut p = plan();
    let mut other = p.services[0].clone();
    other.name = "Cache".into();
    p.services.push(other);
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("would have the name of"), "{e}");
    // Kubernetes: two containers of a pod on one port.
    let mut p = plan();
    let Action::EnsureContainer(c) = &mut p.services[0].actions[2] else { panic!() };
    c.ports.push(port(7000, Protocol::Tcp, None));
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("both use port 7000"), "{e}");
    // Kubernetes: a command probe of a container of another image.
    let mut p = plan();
    let Action::EnsureContainer(c) = &mut p.services[0].actions[2] else { panic!() };
    c.image = "metrics:2".into();
    let e = kubernetes(&p, &KubeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("can't run in a container of another image"), "{e}");
    // Compose: a wait after an exec.
    let mut p = plan();
    let late = p.services[0].actions[3].clone();
    p.services[0].actions.push(late);
    let e = compose(&p, &ComposeOptions::default()).unwrap_err().to_string();
    assert!(e.contains("action 8 (wait): a wait after an exec"), "{e}");
    assert!(kubernetes(&p, &KubeOptions::default()).is_ok(), "a pod's exec waits for itself");
}

/// Two execs of one pod run in the plan's order; bound files get keys of their own.
#[test]
fn a_pods_execs_run_in_order_and_files_keep_their_paths() {
    let mut p = plan();
    p.services[0].actions.push(Action::Exec(exec("server", &["cache-cli", "warm"])));
    let odd = WriteFile { plugin: "cachier".into(), path: "conf/a__b".into(), contents: "x".into() };
    p.services[0].actions.insert(0, Action::WriteFile(odd));
    let (export, _) = kubernetes(&p, &KubeOptions::default()).unwrap();
    let sts = read(&export.files["cache.statefulset.yaml"]);
    let pod = &sts["spec"]["template"]["spec"];
    let script = |i: usize| pod["containers"][i]["command"][2].as_str().unwrap().to_string();
    assert!(script(2).contains("touch /hsm-steps/1") && !script(2).contains("until [ -e"), "{}", script(2));
    assert!(
        script(3).contains("until [ -e /hsm-steps/1 ]") && script(3).contains("touch /hsm-steps/2"),
        "{}",
        script(3)
    );
    assert_eq!(pod["volumes"][1], json!({ "name": "hsm-steps", "emptyDir": {} }));
    let items = &pod["volumes"][0]["configMap"]["items"];
    assert_eq!(
        items,
        &json!([{ "key": "file-1", "path": "conf/a__b" }, { "key": "file-2", "path": "conf/metrics.toml" }])
    );
}

#[test]
fn the_same_plan_gives_the_same_bytes() {
    let a = compose(&plan(), &ComposeOptions::default()).unwrap().files;
    assert_eq!(a, compose(&plan(), &ComposeOptions::default()).unwrap().files);
    let b = kubernetes(&plan(), &KubeOptions::default()).unwrap().0.files;
    assert_eq!(b, kubernetes(&plan(), &KubeOptions::default()).unwrap().0.files);
}
