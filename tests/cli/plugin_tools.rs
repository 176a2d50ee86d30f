//! The plugin author tools: `hsm plugin new` scaffolds a crate that builds and
//! tests with the SDK alone, and `hsm plugin check` tells a valid plugin (its WIT
//! version, declarations and sha256) from anything else.

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

/// Runs cargo the way this test suite was built (same toolchain), in `dir`.
fn cargo(dir: &Path, args: &[&str]) {
    let toolchain = std::fs::read_to_string(support::repo_root().join("rust-toolchain.toml")).unwrap();
    let channel = toolchain.lines().find_map(|l| l.strip_prefix("channel = ")).unwrap().trim_matches('"').to_string();
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("RUSTUP_TOOLCHAIN", channel)
        // Shared between runs, so the scaffold's dependencies build once.
        .env("CARGO_TARGET_DIR", support::repo_root().join("target/scaffold"))
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_scaffolded_plugin_tests_builds_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("demo-kv");
    let sdk = support::repo_root().join("sdk").display().to_string();
    let path = crate_dir.display().to_string();
    let run = support::hsm(&["plugin", "new", "demo-kv", "--path", &path, "--sdk-path", &sdk], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("created plugin `demo-kv`"), "{}", run.stderr);
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("hsm-sdk = { path = "), "{manifest}");
    assert!(!manifest.contains("wit-bindgen"), "a scaffold uses the SDK alone");

    cargo(&crate_dir, &["test", "--quiet"]);
    cargo(&crate_dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    let wasm = support::repo_root().join("target/scaffold/wasm32-wasip2/release/hsm_plugin_demo_kv.wasm");
    let wasm_s = wasm.display().to_string();
    let check = support::hsm(&["plugin", "check", &wasm_s, "--json"], &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let report: serde_json::Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(report["name"], "demo-kv");
    assert_eq!(report["kinds"], serde_json::json!(["demo-kv"]));
    assert_eq!(report["wit_version"], "0.4.0");
    assert_eq!(report["capabilities"], serde_json::json!(["containers"]));
    assert_eq!(report["variables"][0]["name"], "DEMO_KV_URL", "the scaffold declares what it sets");
    assert_eq!(report["sha256"], hex(&std::fs::read(&wasm).unwrap()));

    let text = support::hsm(&["--color", "never", "plugin", "check", &wasm_s], &[]);
    assert!(text.stdout.contains("is a valid hsm plugin\n  name          demo-kv\n"), "{}", text.stdout);
    // The hsm.yaml entry that pins this build and grants what it declares.
    let digest = hex(&std::fs::read(&wasm).unwrap());
    let entry = format!("plugins:\n  demo-kv:\n    sha256: {digest}\n    grant: [containers]\n");
    assert!(text.stdout.contains(&entry), "{}", text.stdout);
    assert!(!text.stdout.contains("# env:"), "a plugin that declares its variables needs no env grant");
}

/// A plugin built for an older WIT gets a line for the variables to grant by name.
#[test]
fn a_legacy_plugins_entry_asks_for_its_variables_by_name() {
    let wasm = support::repo_root().join("tests/fixtures/plugins/redis-wit-0.1.0.wasm");
    let text = support::hsm(&["--color", "never", "plugin", "check", &wasm.display().to_string()], &[]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("plugins:\n  redis:\n    sha256: "), "{}", text.stdout);
    assert!(text.stdout.contains("    grant: [containers, exec]\n    # env: [NAME, …]"), "{}", text.stdout);
}

/// What a user who installed hsm gets: the SDK from crates.io at hsm's version,
/// not a path into the folder hsm was built from.
#[test]
fn a_scaffold_depends_on_the_sdk_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("demo");
    let run = support::hsm(&["plugin", "new", "demo", "--path", &crate_dir.display().to_string()], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let line = format!("\nhsm-sdk = \"{}\"\n", env!("CARGO_PKG_VERSION"));
    assert!(manifest.contains(&line), "{manifest}");
    assert!(!manifest.contains("path ="), "{manifest}");
    cargo(&crate_dir, &["metadata", "--no-deps", "--offline", "--format-version", "1", "--quiet"]);

    // `--sdk`, the option's old name, still works.
    let other = dir.path().join("other");
    let sdk = support::repo_root().join("sdk");
    let run = support::hsm(
        &["plugin", "new", "other", "--path", &other.display().to_string(), "--sdk", &sdk.display().to_string()],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let manifest = std::fs::read_to_string(other.join("Cargo.toml")).unwrap();
    let path = sdk.canonicalize().unwrap().display().to_string();
    assert!(manifest.contains(&format!("hsm-sdk = {{ path = {path:?} }}")), "{manifest}");
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn plugin_new_refuses_bad_names_and_full_folders() {
    let dir = tempfile::tempdir().unwrap();
    let bad = support::hsm(
        &["--color", "never", "plugin", "new", "Redis_2", "--path", &dir.path().join("x").display().to_string()],
        &[],
    );
    assert_eq!(bad.code, 2);
    assert_eq!(
        bad.stderr,
        "error: `Redis_2` is not a valid plugin name\n  = hint: use lowercase letters, digits and `-`, starting with a letter, such as `redis`\n"
    );
    std::fs::write(dir.path().join("taken"), "x").unwrap();
    let full =
        support::hsm(&["--color", "never", "plugin", "new", "redis", "--path", &dir.path().display().to_string()], &[]);
    assert_eq!(full.code, 2);
    assert!(full.stderr.contains("already exists and is not empty"), "{}", full.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing was written");
}

#[test]
fn plugin_check_refuses_what_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let run = support::hsm(&["--color", "never", "plugin", "check", &junk.display().to_string()], &[]);
    assert_eq!(run.code, 2);
    let expected_start = format!("error: `{}` is not a valid WebAssembly component: ", junk.display());
    assert!(run.stderr.starts_with(&expected_start), "{}", run.stderr);
    assert!(
        run.stderr.ends_with("  = hint: build it with `cargo build --release --target wasm32-wasip2`\n"),
        "{}",
        run.stderr
    );

    let future =
        hsm_sdk::testing::build_plugin(support::repo_root().join("tests/plugins/future-wit"), "hsm-fixture-future-wit")
            .unwrap();
    let run = support::hsm(&["--color", "never", "plugin", "check", &future.display().to_string()], &[]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains(
            "was built for `hsm:plugin@9.0.0`, which this hsm does not support (it loads `0.1.0`, `0.2.0`, `0.3.0`, `0.4.0`)"
        ),
        "{}",
        run.stderr
    );

    let missing = support::hsm(&["--color", "never", "plugin", "check", "nope.wasm"], &[]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.starts_with("error: cannot read `nope.wasm`: "), "{}", missing.stderr);
}

/// After a rebuild, one command re-pins the plugin where the project pins it —
/// the registry's declaration and the grant in hsm.yaml — and keeps the files'
/// comments and layout.
#[test]
fn pin_writes_a_rebuilds_digest_where_the_project_pins_it() {
    let dir = tempfile::tempdir().unwrap();
    let example = support::repo_root().join("examples/third-party-plugin");
    let copied = std::process::Command::new("cp").arg("-r").arg(&example).arg(dir.path().join("p")).status().unwrap();
    assert!(copied.success());
    let project = dir.path().join("p");
    let old = "5d0d7faca17dd0bfc43addf30b4474b62cc40ef0eddf21816fec6e9fe9c78423";
    // The rebuild lands where the registry points.
    let rebuilt = support::repo_root().join("tests/fixtures/plugins/redis-wit-0.1.0.wasm");
    let wasm = project.join("registry/plugins/redis.wasm");
    std::fs::copy(&rebuilt, &wasm).unwrap();
    let new = hex(&std::fs::read(&wasm).unwrap());
    let (p, w) = (project.display().to_string(), wasm.display().to_string());
    let run = support::hsm(&["--color", "never", "-C", &p, "plugin", "pin", &w], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(&format!("pinned `redis` to {new} in hsm.yaml")), "{}", run.stderr);
    assert!(run.stderr.contains("review what it declares"), "{}", run.stderr);
    for file in ["hsm.yaml", "registry/cache.yaml"] {
        let text = std::fs::read_to_string(project.join(file)).unwrap();
        assert!(text.contains(&new) && !text.contains(old), "{file}:\n{text}");
        assert!(text.starts_with("# A "), "{file} lost its comments:\n{text}");
    }
    let list = support::hsm(&["-C", &p, "plugin", "list", "--json"], &[]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains(&new), "{}", list.stdout);
    let again = support::hsm(&["--color", "never", "-C", &p, "plugin", "pin", &w], &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("is pinned to this build already"), "{}", again.stderr);
    // A plugin the project does not pin is refused.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("hsm.yaml"), "version: 1\nproject: x\npackages: []\n").unwrap();
    let e = empty.path().display().to_string();
    let refused = support::hsm(&["--color", "never", "-C", &e, "plugin", "pin", &w], &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("the project pins no plugin named `redis`"), "{}", refused.stderr);
}

/// Before the project grants a plugin anything, `hsm plan` shows what it would
/// do and lists every grant it lacks (exit 2); `hsm sync` refuses to run it.
#[test]
fn an_ungranted_plugins_plan_is_shown_with_every_missing_grant() {
    let dir = tempfile::tempdir().unwrap();
    let example = support::repo_root().join("examples/third-party-plugin");
    let copied = std::process::Command::new("cp").arg("-r").arg(&example).arg(dir.path().join("p")).status().unwrap();
    assert!(copied.success());
    let project = dir.path().join("p");
    let yaml =
        std::fs::read_to_string(project.join("hsm.yaml")).unwrap().replace("grant: [containers, exec]", "grant: []");
    std::fs::write(project.join("hsm.yaml"), yaml).unwrap();
    let p = project.display().to_string();
    let plan = support::hsm(&["--color", "never", "-C", &p, "plan"], &[]);
    assert_eq!(plan.code, 2, "{}", plan.stderr);
    assert!(
        plan.stdout.contains("run container `server`") || plan.stdout.contains("container server"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("REDIS_URL"), "the plan shows what it would give: {}", plan.stdout);
    assert!(plan.stderr.contains("the `containers` capability is not granted"), "{}", plan.stderr);
    assert!(plan.stderr.contains("the `exec` capability is not granted"), "{}", plan.stderr);
    let data = dir.path().join("data").display().to_string();
    let sync = support::hsm(
        &["--color", "never", "-C", &p, "sync"],
        &[("HSM_DATA_DIR", &data), ("DOCKER_HOST", "unix:///nonexistent")],
    );
    assert_eq!(sync.code, 2, "{}", sync.stderr);
    assert!(sync.stderr.contains("the `containers` capability is not granted"), "{}", sync.stderr);
    assert!(!sync.stderr.contains("Docker"), "sync was refused before it reached the engine: {}", sync.stderr);
}
