//! Package tasks and `hsm logs` on the real engine: a migrate task that writes to
//! its package's own PostgreSQL database through `DATABASE_URL` runs once, again
//! when its command changes, fails a sync and is retried by the next; tasks run
//! in the packages' order; `hsm logs` shows, follows and redacts.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::stack::{Project, http, psql};

/// hsm.yaml's packages: `auth-service` with a migrate task running `command`.
fn with_migrate(command: &str) -> String {
    format!(
        "packages:\n  - name: auth-service\n    tasks:\n      migrate:\n        run: [sh, -c, {}]\n",
        serde_json::to_string(command).unwrap()
    )
}

/// Writes the test registry and hsm.yaml with `rest` (its packages and services).
fn setup(p: &Project, rest: &str) {
    p.setup(&[], "");
    p.write(
        "hsm.yaml",
        &format!("version: 1\nproject: {}\nprofile: managed-dev\nregistries: [./registry]\n{rest}", p.name),
    );
}

fn runs(p: &Project) -> String {
    let url = &p.env_values("auth-service")["DATABASE_URL"];
    psql(url, "SELECT count(*) FROM runs").trim().to_string()
}

const MIGRATE: &str = r#"psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qc 'CREATE TABLE IF NOT EXISTS runs (n int); INSERT INTO runs VALUES (1)' && echo "migrated $DB_NAME""#;

#[test]
fn a_migrate_task_runs_when_what_it_depends_on_changed_and_is_retried_after_a_failure() {
    let p = Project::new("task-migrate");
    setup(&p, &with_migrate(MIGRATE));
    let first = p.sync();
    assert!(first.stderr.contains("auth-service/migrate | migrated auth"), "{}", first.stderr);
    assert!(first.stderr.contains("ran task auth-service/migrate (it has not run yet)"), "{}", first.stderr);
    assert_eq!(runs(&p), "1");

    // Nothing changed: not run again.
    let again = p.hsm(&["sync", "--json"]).expect(0);
    assert_eq!(again.json()["changes"], serde_json::json!([]), "{}", again.stdout);
    assert_eq!(runs(&p), "1");
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["tasks"][0]["task"], "auth-service/migrate");
    assert_eq!(status["tasks"][0]["last"]["ok"], true);
    assert!(status["tasks"][0].get("due").is_none(), "{status}");

    // A changed command runs it again.
    setup(&p, &with_migrate(&format!("{MIGRATE} # v2")));
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["tasks"][0]["due"], "its command changed");
    let changed = p.sync();
    assert!(changed.stderr.contains("ran task auth-service/migrate (its command changed)"), "{}", changed.stderr);
    assert_eq!(runs(&p), "2");

    // A failing task fails the sync with its last lines and what to do.
    setup(&p, &with_migrate("echo 'half way'; echo boom >&2; exit 3"));
    let failed = p.hsm(&["sync"]).expect(1);
    assert!(failed.stderr.contains("task `auth-service/migrate` failed with exit code 3"), "{}", failed.stderr);
    assert!(failed.stderr.contains("boom"), "{}", failed.stderr);
    assert!(failed.stderr.contains("`hsm task auth-service migrate`"), "{}", failed.stderr);
    // The next sync runs it again (it still fails), nothing else is undone.
    let retried = p.hsm(&["sync"]).expect(1);
    assert!(retried.stderr.contains("auth-service/migrate | half way"), "{}", retried.stderr);
    assert_eq!(runs(&p), "2");
    // Fixed: it runs, and the sync passes.
    setup(&p, &with_migrate(MIGRATE));
    p.sync();
    assert_eq!(runs(&p), "3");

    // `hsm task` always runs it, with the package's environment.
    let ran = p.hsm(&["task", "auth-service", "migrate"]).expect(0);
    assert!(ran.stdout.contains("migrated auth"), "{}", ran.stdout);
    assert_eq!(runs(&p), "4");
    let unknown = p.hsm(&["task", "auth-service", "migrat"]).expect(2);
    assert!(unknown.stderr.contains("did you mean `migrate`?"), "{}", unknown.stderr);

    // The data went with the volumes: the next sync migrates the new database.
    p.hsm(&["down", "--volumes"]).expect(0);
    let fresh = p.sync();
    assert!(fresh.stderr.contains("ran task auth-service/migrate (it has not run yet)"), "{}", fresh.stderr);
    assert_eq!(runs(&p), "1");
}

#[test]
fn tasks_run_after_those_of_the_packages_they_imply_and_on_demand_ones_only_when_asked() {
    let p = Project::new("task-order");
    let yaml = "packages:\n  - name: billing-service\n    tasks:\n      seed: { run: [sh, -c, 'echo billing >> order.txt'] }\n      report: { run: [sh, -c, 'echo report >> order.txt'], on: demand }\n  - name: auth-service\n    tasks:\n      migrate: { run: [sh, -c, 'echo auth >> order.txt'] }\n";
    setup(&p, yaml);
    let plan = p.hsm(&["plan", "--json"]).expect(0).json();
    let order: Vec<&str> = plan["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(order, ["migrate", "seed", "report"]);
    assert_eq!(plan["tasks"][1]["after"], serde_json::json!(["auth-service/migrate"]));
    p.sync();
    assert_eq!(std::fs::read_to_string(p.path().join("order.txt")).unwrap(), "auth\nbilling\n");
    p.hsm(&["task", "billing-service", "report"]).expect(0);
    assert_eq!(std::fs::read_to_string(p.path().join("order.txt")).unwrap(), "auth\nbilling\nreport\n");
    // A failing task of a package holds back the tasks of the packages that imply it.
    let failing = yaml.replace("echo auth >> order.txt", "exit 5");
    setup(&p, &failing);
    let run = p.hsm(&["sync"]).expect(1);
    assert!(
        run.stderr.contains("task `billing-service/seed` was not run: task `auth-service/migrate` did not run"),
        "{}",
        run.stderr
    );
}

#[test]
fn logs_show_each_line_with_its_service_redacted_and_follow_a_recreated_container() {
    let mut p = Project::new("logs");
    p.set_env("CHUNK_TOKEN", "tok-3c9a1e");
    p.setup(&[], "services:\n  chunker:\n    params:\n      env: { API_TOKEN: \"${CHUNK_TOKEN}\" }\n");
    p.sync();
    let url = format!("http://127.0.0.1:{}", p.env_values("")["CHUNKER_URL"].rsplit(':').next().unwrap());
    // The chunker logs each request's path: this one holds the secret.
    assert_eq!(http("GET", &format!("{url}/health?token=tok-3c9a1e"), None).0, 200);
    let logs = p.hsm(&["logs"]).expect(0).stdout;
    assert!(logs.contains("chunker/server | chunker: listening on"), "{logs}");
    assert!(logs.contains("token=[redacted]"), "{logs}");
    assert!(!logs.contains("tok-3c9a1e"), "{logs}");
    let last = p.hsm(&["logs", "chunker", "-n", "1"]).expect(0).stdout;
    assert_eq!(last.lines().count(), 1, "{last}");
    let unknown = p.hsm(&["logs", "chunkr"]).expect(2);
    assert!(
        unknown.stderr.contains("service `chunkr` has no container") && unknown.stderr.contains("`chunker`"),
        "{}",
        unknown.stderr
    );
    assert!(p.hsm(&["logs", "--since", "soon"]).expect(2).stderr.contains("is not a duration"));

    // -f follows, and picks up the container a sync recreates.
    let mut follow = p.spawn(&["logs", "-f", "chunker"]);
    std::thread::sleep(Duration::from_secs(2));
    p.setup(&[], "services:\n  chunker:\n    params:\n      env: { API_TOKEN: \"${CHUNK_TOKEN}\", CHUNKER_DEFAULT_SIZE: \"7\" }\n");
    p.sync();
    let mut seen = String::new();
    let mut stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let read_until = |seen: &mut String, done: &dyn Fn(&str) -> bool| {
        // Generous: under a loaded machine a restart takes its time.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !done(seen) {
            if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    };
    read_until(&mut seen, &|s| s.contains("(default size 7)"));
    // A restart keeps the container's id: its new lines are followed too.
    let listening = |s: &str| s.matches("chunker: listening on").count();
    let before = listening(&seen);
    crate::stack::docker(&["restart", "-t", "1", &p.container("chunker", "server")]);
    read_until(&mut seen, &|s| listening(s) > before);
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.contains("chunker: listening on"), "{seen}");
    assert!(seen.contains("(default size 7)"), "the recreated container was not followed:\n{seen}");
    assert!(listening(&seen) > before, "the restarted container was not followed:\n{seen}");
}

/// An editable package's task runs in the venv, from the package's folder; the
/// Python service is not ready before its `.venv` exists; a change to the
/// package's files runs the task again.
#[test]
fn an_editable_packages_task_runs_in_its_folder_and_reruns_when_its_files_change() {
    let p = Project::new("task-python");
    let src = crate::stack::repo_root().join("tests/fixtures/python/core");
    let core = p.path().join("core");
    let copy = std::process::Command::new("cp").arg("-r").arg(&src).arg(&core).status().unwrap();
    assert!(copy.success());
    setup(
        &p,
        "packages:\n  - name: hsm-fixture-core\n    editable: ./core\n    tasks:\n      check: { run: [python, -c, \"import os, hsm_fixture_core; print(os.getcwd(), os.environ['VIRTUAL_ENV'])\"] }\n",
    );
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    let python = status["services"].as_array().unwrap().iter().find(|s| s["name"] == "python").unwrap().clone();
    assert_eq!(python["health"]["state"], "not-ready", "{status}");
    assert_eq!(status["in_sync"], false);

    let run = p.sync();
    let expected = format!("hsm-fixture-core/check | {} {}", core.display(), p.path().join(".venv").display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["in_sync"], true, "{status}");
    assert!(!p.sync().stderr.contains("hsm-fixture-core/check |"));
    std::fs::write(core.join("src/hsm_fixture_core/extra.py"), "X = 1\n").unwrap();
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["tasks"][0]["due"], "its package changed", "{status}");
    let run = p.sync();
    assert!(run.stderr.contains("ran task hsm-fixture-core/check (its package changed)"), "{}", run.stderr);
}

/// On a machine with Python but no uv, a sync installs the pinned uv into hsm's
/// cache folder (saying so) and goes on; the next run uses it without asking PyPI.
#[test]
fn without_uv_on_path_a_sync_installs_its_own() {
    let p = Project::new("no-uv");
    let src = crate::stack::repo_root().join("tests/fixtures/python/core");
    let copy = std::process::Command::new("cp").arg("-r").arg(&src).arg(p.path().join("core")).status().unwrap();
    assert!(copy.success());
    setup(&p, "packages:\n  - name: hsm-fixture-core\n    editable: ./core\n");
    let path = std::env::var("PATH").unwrap();
    let no_uv: Vec<&str> = path.split(':').filter(|d| !std::path::Path::new(d).join("uv").exists()).collect();
    let no_uv = no_uv.join(":");
    let first = p.hsm_with(&["sync"], "PATH", &no_uv).expect(0);
    let version = hsm_exec::uv::UV_VERSION;
    assert!(first.stderr.contains(&format!("installing uv {version} from PyPI")), "{}", first.stderr);
    assert!(first.stderr.contains("installed package hsm-fixture-core"), "{}", first.stderr);
    assert!(p.cache.path().join("uv").join(version).join("bin/uv").is_file());
    let again = p.hsm_with(&["sync"], "PATH", &no_uv).expect(0);
    assert!(!again.stderr.contains("installing uv"), "{}", again.stderr);
}
