//! Third-party plugins through the whole pipeline: the example `redis` plugin built
//! from source, shipped by a registry, granted by the project and synced on the real
//! engine; and a hostile plugin whose every out-of-bounds action is refused before
//! anything is executed.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::stack::{Project, image, repo_root};

/// Builds a plugin crate of the repository for wasm32-wasip2, once per test binary.
pub(crate) fn built(dir: &str, package: &str) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    if let Some((_, path)) = built.iter().find(|(p, _)| p == package) {
        return path.clone();
    }
    let path = hsm_sdk::testing::build_plugin(repo_root().join(dir), package).unwrap_or_else(|e| panic!("{e}"));
    built.push((package.to_string(), path.clone()));
    path
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a project whose registry ships `wasm` as plugin `name`, with `registry`
/// (services and packages) after it and `project` (packages, services, plugins) in
/// hsm.yaml. Returns the plugin's digest.
pub(crate) fn project_with_plugin(p: &Project, name: &str, wasm: &[u8], registry: &str, project: &str) -> String {
    let digest = sha256(wasm);
    std::fs::create_dir_all(p.dir.path().join("registry/plugins")).unwrap();
    std::fs::write(p.dir.path().join(format!("registry/plugins/{name}.wasm")), wasm).unwrap();
    p.write(
        "registry/registry.yaml",
        &format!(
            "version: 1\nplugins:\n  {name}:\n    path: plugins/{name}.wasm\n    sha256: {digest}\nprofiles:\n  managed-dev: {{ mode: managed }}\n{registry}"
        ),
    );
    p.write(
        "hsm.yaml",
        &format!("version: 1\nproject: {}\nprofile: managed-dev\nregistries: [./registry]\n{project}", p.name),
    );
    digest
}

/// Sends `PING` to a Redis server and returns its answer.
fn redis_ping(port: &str) -> String {
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to redis");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

#[test]
fn the_example_plugin_syncs_a_redis_for_two_packages() {
    let wasm = std::fs::read(built("examples/plugins/redis", "hsm-example-redis")).unwrap();
    let p = Project::new("redis");
    let registry = format!(
        "services:\n  cache:\n    kind: redis\n    params: {{ image: \"{}\" }}\npackages:\n  api:\n    implies:\n      - service: cache\n        params: {{ db: 0 }}\n  worker:\n    implies:\n      - service: cache\n        params: {{ db: 1 }}\n",
        image("redis")
    );
    let digest = sha256(&wasm);
    project_with_plugin(
        &p,
        "redis",
        &wasm,
        &registry,
        &format!("packages: [api, worker]\nplugins:\n  redis:\n    sha256: {digest}\n    grant: [containers, exec]\n"),
    );
    let list = p.hsm(&["plugin", "list", "--json"]).expect(0).json();
    let redis = list.as_array().unwrap().iter().find(|l| l["name"] == "redis").expect("redis is listed");
    assert_eq!(redis["granted"], serde_json::json!(["containers", "exec"]));

    p.sync();
    let containers = p.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert!(containers.contains_key(&p.container("cache", "server")));
    let api = p.env_values("api");
    let worker = p.env_values("worker");
    assert_eq!(api["REDIS_DB"], "0");
    assert_eq!(worker["REDIS_DB"], "1");
    assert_eq!(api["REDIS_PORT"], worker["REDIS_PORT"], "one server for both");
    assert_eq!(api["REDIS_URL"], format!("redis://127.0.0.1:{}/0", api["REDIS_PORT"]));
    assert_eq!(redis_ping(&api["REDIS_PORT"]), "+PONG");

    // Nothing changed: nothing happens, from the compile cache.
    let again = p.hsm(&["sync", "--json"]).expect(0).json();
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(p.containers(), containers);
}

/// A plugin built for WIT 0.1.0 (committed, never rebuilt) keeps loading and
/// planning. It can't declare the variables it sets, so it sets only those
/// hsm.yaml grants it by name.
#[test]
fn the_committed_plugin_built_for_wit_0_1_0_keeps_loading() {
    let wasm = std::fs::read(repo_root().join("tests/fixtures/plugins/redis-wit-0.1.0.wasm")).unwrap();
    let p = Project::new("legacy");
    let registry = "services:\n  cache: { kind: redis }\npackages:\n  api:\n    implies: [{ service: cache, params: { db: 0 } }]\n  worker:\n    implies: [{ service: cache, params: { db: 1 } }]\n";
    let digest = sha256(&wasm);
    let plugins = format!("plugins:\n  redis:\n    sha256: {digest}\n    grant: [containers, exec]\n");
    project_with_plugin(&p, "redis", &wasm, registry, &format!("packages: [api, worker]\n{plugins}"));
    let file = p.dir.path().join("registry/plugins/redis.wasm");
    let report = p.hsm(&["plugin", "check", "--json", &file.display().to_string()]).expect(0).json();
    assert_eq!(report["wit_version"], "0.1.0");
    assert_eq!(report["kinds"], serde_json::json!(["redis"]));
    assert_eq!(report["variables"], serde_json::Value::Null, "0.1.0 can't declare variables");

    // No variable granted: the first one it sets is refused, with the grant to write.
    let run = p.hsm(&["plan"]).expect(2);
    assert!(
        run.stderr.contains("error: plugin `redis` may not set `REDIS_URL` in package `api`'s environment for service `cache`: the variable is not granted to it"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("grant it in hsm.yaml: `plugins.redis.env: [REDIS_URL]`"), "{}", run.stderr);

    // Granted by name: it plans as it always did.
    let granted = format!("{plugins}    env: [REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_DB]\n");
    project_with_plugin(&p, "redis", &wasm, registry, &format!("packages: [api, worker]\n{granted}"));
    let plan = p.hsm(&["plan", "--json"]).expect(0).json();
    assert_eq!(plan["services"][0]["plugin"], "redis@0.1.0");
    assert_eq!(plan["services"][0]["env"][1]["vars"]["REDIS_DB"], "1");
    let list = p.hsm(&["plugin", "list", "--json"]).expect(0).json();
    let redis = list.as_array().unwrap().iter().find(|l| l["name"] == "redis").expect("redis is listed");
    assert_eq!(redis["granted_env"], serde_json::json!(["REDIS_DB", "REDIS_HOST", "REDIS_PORT", "REDIS_URL"]));
}

/// One hostile service per attack; the plugin is granted everything it declares,
/// and still none of these may run.
#[test]
fn hostile_actions_are_refused_before_anything_runs() {
    let wasm = std::fs::read(built("tests/plugins/hostile", "hsm-fixture-hostile")).unwrap();
    let cases = [
        ("bind-root", "may not bind-mount `/` at `/host` for service `bind-root`"),
        ("foreign-exec", "may not exec in container `other-project-postgres-server`"),
        ("wide-port", "may not publish port 80 on 0.0.0.0 for service `wide-port`"),
        ("uv-outside", "may not install `passwd` from `/etc`"),
        ("file-outside", "may not write `../../etc/cron.d/evil`"),
    ];
    for (service, message) in cases {
        let p = Project::new("hostile");
        let digest = sha256(&wasm);
        project_with_plugin(
            &p,
            "hostile",
            &wasm,
            &format!("services:\n  {service}: {{ kind: hostile }}\n"),
            &format!(
                "services:\n  {service}: {{}}\nplugins:\n  hostile:\n    sha256: {digest}\n    grant: [containers, exec, uv-install, files, network-probe]\n"
            ),
        );
        let run = p.hsm(&["sync"]).expect(2);
        assert!(run.stderr.contains(&format!("error: plugin `hostile` {message}")), "{service}: {}", run.stderr);
        assert!(p.containers().is_empty(), "{service}: a container was created");
        assert!(p.volumes().is_empty(), "{service}: a volume was created");
        assert!(!p.dir.path().join(".hsm/hostile").exists(), "{service}: a file was written");
        assert!(!p.dir.path().join("../etc/cron.d/evil").exists(), "{service}: a file was written outside");
    }
}

#[test]
fn a_plugin_may_do_only_what_is_granted_to_the_digest_reviewed() {
    let wasm = std::fs::read(built("examples/plugins/redis", "hsm-example-redis")).unwrap();
    let registry = format!(
        "services:\n  cache:\n    kind: redis\n    params: {{ image: \"{}\" }}\npackages:\n  api:\n    implies: [{{ service: cache }}]\n",
        image("redis")
    );

    // No grant: the first action is refused, naming the plugin, the action and the grant.
    let p = Project::new("grant");
    project_with_plugin(&p, "redis", &wasm, &registry, "packages: [api]\n");
    let run = p.hsm(&["sync"]).expect(2);
    assert!(
        run.stderr.contains("error: plugin `redis` may not run container `server` for service `cache`: the `containers` capability is not granted to it"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "hint: if you trust `redis` to do this, grant it `containers` in hsm.yaml under `plugins.redis.grant`"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("note: `redis` declares the capabilities `containers`, `exec` and sets the variables `REDIS_URL`, `REDIS_HOST`, `REDIS_PORT`, `REDIS_DB`"),
        "what a grant would allow is shown: {}",
        run.stderr
    );
    assert!(p.containers().is_empty());

    // Half a grant: the exec probe is refused.
    let digest = sha256(&wasm);
    let p = Project::new("grant");
    project_with_plugin(
        &p,
        "redis",
        &wasm,
        &registry,
        &format!("packages: [api]\nplugins:\n  redis:\n    sha256: {digest}\n    grant: [containers]\n"),
    );
    let run = p.hsm(&["sync"]).expect(2);
    assert!(
        run.stderr.contains("error: plugin `redis` may not probe container `server` with `exec` for service `cache`: the `exec` capability is not granted to it"),
        "{}",
        run.stderr
    );
    assert!(p.containers().is_empty());

    // A grant for another digest (the registry shipped a new version): refused.
    let p = Project::new("grant");
    let stale = "0".repeat(64);
    project_with_plugin(
        &p,
        "redis",
        &wasm,
        &registry,
        &format!("packages: [api]\nplugins:\n  redis:\n    sha256: {stale}\n    grant: [containers, exec]\n"),
    );
    let run = p.hsm(&["sync"]).expect(2);
    assert!(run.stderr.contains("error: the grant for plugin `redis` is for another version of it"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("the plugin is now `{digest}`")), "{}", run.stderr);
    assert!(p.containers().is_empty());
}

#[test]
fn a_plugin_is_loaded_only_when_it_is_the_pinned_valid_component() {
    let redis = std::fs::read(built("examples/plugins/redis", "hsm-example-redis")).unwrap();

    // A wrong digest: refused at the line that pins it.
    let p = Project::new("pin");
    project_with_plugin(&p, "redis", &redis, "", "packages: []\n");
    let text = std::fs::read_to_string(p.dir.path().join("registry/registry.yaml")).unwrap();
    let mut tampered = redis.clone();
    *tampered.last_mut().unwrap() ^= 1;
    std::fs::write(p.dir.path().join("registry/plugins/redis.wasm"), &tampered).unwrap();
    let run = p.hsm(&["validate"]).expect(2);
    assert!(run.stderr.contains("error: plugin `redis` is not the file that was pinned"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("has sha256 `{}`", sha256(&tampered))), "{}", run.stderr);
    assert!(text.contains(&sha256(&redis)));

    // Pinned, but not a component / built for an unknown WIT / serving a bundled kind.
    let junk = b"\0asm\x0d\0\x01\0 definitely not a component".to_vec();
    let future = std::fs::read(built("tests/plugins/future-wit", "hsm-fixture-future-wit")).unwrap();
    let clash = std::fs::read(built("tests/plugins/kind-clash", "hsm-fixture-kind-clash")).unwrap();
    let bundled_name = std::fs::read(built("tests/plugins/name-clash", "hsm-fixture-name-clash")).unwrap();
    for (name, wasm, expected) in [
        ("junk", junk, "is not a valid WebAssembly component"),
        (
            "future",
            future,
            "was built for `hsm:plugin@9.0.0`, which this hsm does not support (it loads `0.1.0`, `0.2.0`, `0.3.0`, `0.4.0`)",
        ),
        (
            "pg-impostor",
            clash,
            "error: plugin `pg-impostor` serves kind `postgres`, which plugin `postgres` already serves",
        ),
        ("postgres", bundled_name, "error: plugin `postgres` has the name of a plugin hsm bundles"),
    ] {
        let p = Project::new("pin");
        project_with_plugin(&p, name, &wasm, "", "packages: []\n");
        let run = p.hsm(&["sync"]).expect(2);
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert!(run.stderr.contains("registry/registry.yaml:"), "{name}: no location: {}", run.stderr);
        assert!(p.containers().is_empty());
    }
}
