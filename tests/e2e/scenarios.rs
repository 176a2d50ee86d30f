//! The product's scenarios 1.1, 1.2 and 2, idempotence, convergence (changed
//! config, orphans, drift) and the outputs.

use serde_json::json;

use crate::stack::{Project, docker, http, psql};

#[test]
fn one_postgres_serves_each_package_its_own_database_and_grows_without_recreation() {
    let p = Project::new("shared");
    p.setup(&["auth-service", "billing-service"], "");
    p.sync();
    let containers = p.containers();
    assert_eq!(containers.keys().collect::<Vec<_>>(), vec![&p.container("postgres", "server")], "one container");
    assert_eq!(containers.values().next().unwrap().1, "running");

    for (package, db) in [("auth-service", "auth"), ("billing-service", "billing")] {
        let env = p.env_values(package);
        assert_eq!(env["DB_NAME"], db);
        assert_eq!(env["DB_HOST"], "127.0.0.1");
        assert_eq!(psql(&env["DATABASE_URL"], "select current_database()"), db);
        let from_parts = format!(
            "postgresql://{}:{}@{}:{}/{}",
            env["DB_USER"], env["DB_PASSWORD"], env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]
        );
        assert_eq!(psql(&from_parts, "select current_database()"), db);
    }
    // A wrong password is refused: the credentials really are checked over TCP.
    let env = p.env_values("auth-service");
    let wrong = format!("postgresql://{}:nope@{}:{}/auth", env["DB_USER"], env["DB_HOST"], env["DB_PORT"]);
    assert!(!std::process::Command::new("psql").args([&wrong, "-c", "select 1"]).output().unwrap().status.success());

    // The password is a reference unless revealed.
    let shown = p.hsm(&["env", "auth-service"]).expect(0);
    assert!(shown.stdout.contains("DB_PASSWORD=${hsm:generated:password}\n"), "{}", shown.stdout);
    assert!(!shown.all().contains(&env["DB_PASSWORD"]));

    psql(&env["DATABASE_URL"], "create table notes(x text); insert into notes values ('kept')");

    // Nothing changed: nothing happens.
    let again = p.hsm(&["sync", "--json"]).expect(0);
    assert_eq!(again.json()["changes"], json!([]), "{}", again.stdout);
    assert_eq!(p.containers(), containers, "same ids and start times");

    // A third package: its database appears, the container stays, data stays.
    p.setup(&["auth-service", "billing-service", "reporting"], "");
    let grown = p.hsm(&["sync", "--json"]).expect(0);
    let changes = grown.changes();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(changes[0].starts_with("ran-exec "), "{changes:?}");
    assert_eq!(p.containers(), containers, "not recreated, not restarted");
    let reporting = p.env_values("reporting");
    assert_eq!(psql(&reporting["DATABASE_URL"], "select current_database()"), "reporting");
    assert_eq!(psql(&env["DATABASE_URL"], "select x from notes"), "kept");

    // hsm run: the package's env, the command's exit code.
    let run = p.hsm(&["run", "billing-service", "--", "sh", "-c", "test \"$DB_NAME\" = billing && exit 7"]);
    assert_eq!(run.code, 7, "{run:?}");
    let run = p.hsm(&["run", "reporting", "--", "sh", "-c", "psql \"$DATABASE_URL\" -tAc 'select current_database()'"]);
    assert_eq!(run.expect(0).stdout.trim(), "reporting");
    let missing = p.hsm(&["run", "reporting", "--", "no-such-command-hsm"]);
    assert_eq!(missing.code, 127, "{missing:?}");

    // status says all is well.
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["in_sync"], json!(true), "{status}");
    assert_eq!(status["services"][0]["health"]["state"], json!("ready"));
}

#[test]
fn external_postgres_starts_nothing_and_hands_out_its_settings() {
    let mut p = Project::new("external");
    p.set_env("CORP_DB_PASSWORD", "corp-pass-7f3a");
    p.setup(&["auth-service", "billing-service"], "services:\n  postgres:\n    profile: external-corp\n");
    p.sync();
    assert!(p.containers().is_empty());
    let label = format!("label=dev.hsm.project-dir={}", p.path().display());
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]).trim(), "", "no network either");
    for (package, db) in [("auth-service", "auth"), ("billing-service", "billing")] {
        let env = p.env_values(package);
        assert_eq!(env["DB_HOST"], "10.0.0.50");
        assert_eq!(env["DB_PORT"], "5432");
        assert_eq!(env["DB_NAME"], db);
        assert_eq!(env["DB_USER"], "app");
        assert_eq!(env["DB_PASSWORD"], "corp-pass-7f3a");
        let shown = p.hsm(&["env", package]).expect(0).stdout;
        assert!(shown.contains("DB_PASSWORD=${CORP_DB_PASSWORD}\n"), "{shown}");
        assert!(!shown.contains("corp-pass-7f3a"));
    }
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["services"][0]["health"]["state"], json!("external"), "{status}");
    assert_eq!(p.hsm(&["sync", "--json"]).expect(0).json()["changes"], json!([]));
}

#[test]
fn hybrid_runs_the_chunker_here_and_injects_the_external_vector_db() {
    let mut p = Project::new("hybrid");
    p.set_env("QDRANT_API_KEY", "qk-hybrid-91c2");
    p.setup(&["rag-api"], "services:\n  vector-db:\n    profile: external-prod\n");
    p.sync();
    let containers = p.containers();
    assert_eq!(containers.keys().collect::<Vec<_>>(), vec![&p.container("chunker", "server")]);

    let env = p.env_values("rag-api");
    assert_eq!(env["QDRANT_URL"], "https://qdrant.example.invalid:6333");
    assert_eq!(env["QDRANT_API_KEY"], "qk-hybrid-91c2");
    let url = &env["CHUNKER_URL"];
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(http("GET", &format!("{url}/health"), None).0, 200);
    let (status, body) = http("POST", &format!("{url}/chunk"), Some(r#"{"text": "abcdefghij", "size": 4}"#));
    assert_eq!((status, body.contains(r#"["abcd", "efgh", "ij"]"#)), (200, true), "{body}");

    let shown = p.hsm(&["env", "rag-api", "--format", "shell"]).expect(0).stdout;
    assert!(shown.contains("export QDRANT_API_KEY='${QDRANT_API_KEY}'\n"), "{shown}");

    // Idempotent: no change, same container, same start, not even a write of the state.
    let state_file = p.path().join(".hsm/state.json");
    let written = std::fs::metadata(&state_file).unwrap().modified().unwrap();
    let again = p.hsm(&["sync", "--json"]).expect(0);
    assert_eq!(std::fs::metadata(&state_file).unwrap().modified().unwrap(), written);
    assert_eq!(again.json()["changes"], json!([]), "{}", again.stdout);
    assert_eq!(again.json()["ok"], json!(true));
    assert_eq!(p.containers(), containers);
    // -q: nothing at all on success; the default says it is up to date.
    assert_eq!(p.hsm(&["sync", "-q"]).expect(0).all(), "");
    let plain = p.hsm(&["sync"]).expect(0);
    assert!(plain.stdout.is_empty() && plain.stderr.contains(" is up to date: 2 services"), "{plain:?}");
}

#[test]
fn a_changed_definition_recreates_only_that_container_and_keeps_its_port() {
    let p = Project::new("change");
    p.setup(&[], "services:\n  chunker: {}\n  vector-db: {}\n");
    p.sync();
    let before = p.containers();
    let url_before = p.env_values("")["CHUNKER_URL"].clone();
    p.setup(&[], "services:\n  chunker:\n    params:\n      env: { CHUNKER_DEFAULT_SIZE: \"50\" }\n  vector-db: {}\n");
    let run = p.hsm(&["sync", "--json"]).expect(0);
    let chunker = p.container("chunker", "server");
    let qdrant = p.container("vector-db", "server");
    assert_eq!(run.changes(), vec![format!("recreated-container {chunker}")], "{}", run.stdout);
    let after = p.containers();
    assert_ne!(after[&chunker].0, before[&chunker].0, "chunker recreated");
    assert_eq!(after[&qdrant], before[&qdrant], "vector-db untouched");
    assert_eq!(p.env_values("")["CHUNKER_URL"], url_before, "the host port is stable");
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &chunker]);
    assert!(env.contains("CHUNKER_DEFAULT_SIZE=50"), "{env}");
}

#[test]
fn services_no_longer_planned_are_removed_and_their_volumes_kept_unless_pruned() {
    let p = Project::new("orphan");
    p.setup(&[], "services:\n  chunker: {}\n  vector-db: {}\n");
    p.sync();
    let volume = format!("{}-vector-db-storage", p.name);
    assert_eq!(p.volumes(), vec![volume.clone()]);
    p.setup(&[], "services:\n  chunker: {}\n");
    let run = p.hsm(&["sync", "--json"]).expect(0);
    assert_eq!(run.changes(), vec![format!("removed-container {}", p.container("vector-db", "server"))]);
    assert_eq!(p.containers().keys().collect::<Vec<_>>(), vec![&p.container("chunker", "server")]);
    assert_eq!(p.volumes(), vec![volume.clone()], "the volume is kept");
    let pruned = p.hsm(&["sync", "--prune-volumes", "--json"]).expect(0);
    assert_eq!(pruned.changes(), vec![format!("removed-volume {volume}")]);
    assert!(p.volumes().is_empty());
}

#[test]
fn drift_is_reported_then_repaired_and_data_survives() {
    let p = Project::new("drift");
    p.setup(&[], "services:\n  chunker: {}\n  vector-db: {}\n");
    p.sync();
    let before = p.containers();
    let chunker = p.container("chunker", "server");
    let qdrant = p.container("vector-db", "server");
    let qdrant_url = p.env_values("")["QDRANT_URL"].clone();
    assert_eq!(http("PUT", &format!("{qdrant_url}/collections/docs"), Some("{}")).0, 200);

    docker(&["stop", "-t", "1", &chunker]);
    docker(&["rm", "-f", &qdrant]);
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["in_sync"], json!(false));
    let drift: Vec<(String, String)> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["containers"].as_array().unwrap().clone())
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["drift"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(drift, vec![(chunker.clone(), "stopped".into()), (qdrant.clone(), "missing".into())], "{status}");
    let text = p.hsm(&["status"]).expect(0).stdout;
    assert!(text.contains("out of sync") && text.contains("stopped") && text.contains("missing"), "{text}");
    let checked = p.hsm(&["status", "--exit-code"]).expect(3).stdout;
    assert_eq!(checked, text, "the same report, with the exit code saying it is out of sync");

    let run = p.hsm(&["sync", "--json"]).expect(0);
    let changes = run.changes();
    assert!(changes.contains(&format!("started-container {chunker}")), "{changes:?}");
    assert!(changes.contains(&format!("created-container {qdrant}")), "{changes:?}");
    let after = p.containers();
    assert_eq!(after[&chunker].0, before[&chunker].0, "the stopped container was started, not replaced");
    assert_eq!(after[&chunker].1, "running");
    assert_eq!(p.env_values("")["QDRANT_URL"], qdrant_url, "same port after recreation");
    assert_eq!(http("GET", &format!("{qdrant_url}/collections/docs"), None).0, 200, "the volume kept the collection");
    assert_eq!(p.hsm(&["status", "--json"]).expect(0).json()["in_sync"], json!(true));
    assert_eq!(p.hsm(&["status", "--json", "--exit-code"]).expect(0).json()["in_sync"], json!(true));
}

#[test]
fn down_removes_only_this_project_and_keeps_volumes_unless_asked() {
    let p = Project::new("down");
    p.setup(&[], "services:\n  vector-db: {}\n");
    p.sync();
    let run = p.hsm(&["down"]).expect(0);
    assert!(run.stderr.contains("volumes kept"), "{}", run.stderr);
    assert!(p.containers().is_empty());
    assert_eq!(p.volumes().len(), 1);
    let label = format!("label=dev.hsm.project-dir={}", p.path().display());
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]).trim(), "");
    // Ports are remembered across `down`.
    let port = p.env_values("")["QDRANT_URL"].clone();
    p.sync();
    assert_eq!(p.env_values("")["QDRANT_URL"], port);
    p.hsm(&["down", "--volumes"]).expect(0);
    assert!(p.volumes().is_empty());
}

#[test]
fn an_editable_package_runs_in_the_venv_and_reaches_its_service() {
    let p = Project::new("python");
    let core = crate::stack::repo_root().join("tests/fixtures/python/core");
    p.setup(&[], "");
    let yaml = std::fs::read_to_string(p.dir.path().join("hsm.yaml")).unwrap().replace(
        "packages: []\n",
        &format!(
            "packages:\n  - name: hsm-fixture-core\n    editable: {}\n    implies:\n      - service: chunker\n",
            core.display()
        ),
    );
    p.write("hsm.yaml", &yaml);
    let run = p.hsm(&["sync", "--json"]).expect(0);
    let changes = run.changes();
    assert!(changes.iter().any(|c| c.starts_with("installed-package hsm-fixture-core")), "{changes:?}");
    assert!(changes.iter().any(|c| c.starts_with("created-container ")), "{changes:?}");

    // The package's code, from its editable source, in the venv, with its service's env.
    let script = "import os, urllib.request, hsm_fixture_core as m\n\
                  print(os.environ['VIRTUAL_ENV'])\n\
                  print(m.__file__)\n\
                  print(urllib.request.urlopen(os.environ['CHUNKER_URL'] + '/health').status)";
    let out = p.hsm(&["run", "hsm-fixture-core", "--", "python", "-c", script]).expect(0).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], p.path().join(".venv").display().to_string(), "{out}");
    assert!(lines[1].starts_with(&core.join("src").display().to_string()), "editable: {out}");
    assert_eq!(lines[2], "200", "{out}");

    // Nothing to do the second time: no uv, no container change.
    assert_eq!(p.hsm(&["sync", "--json"]).expect(0).json()["changes"], json!([]));
    let status = p.hsm(&["status", "--json"]).expect(0).json();
    assert_eq!(status["in_sync"], json!(true), "{status}");
    assert_eq!(status["python"]["venv"], json!("ready"), "{status}");
    assert_eq!(status["python"]["packages"][0]["state"]["state"], json!("installed"), "{status}");
    let text = p.hsm(&["status"]).expect(0).stdout;
    assert!(text.contains("hsm-fixture-core  installed 0.1.0"), "{text}");

    // The last package leaves hsm.yaml: it is uninstalled (and its service removed).
    p.setup(&[], "");
    let run = p.hsm(&["sync", "--json"]).expect(0);
    let changes = run.changes();
    assert!(changes.contains(&"uninstalled-package hsm-fixture-core".to_string()), "{changes:?}");
}

#[test]
fn a_package_that_is_not_a_python_project_is_refused_before_anything_starts() {
    let p = Project::new("notpython");
    let fixtures = crate::stack::repo_root().join("tests/fixtures/python");
    p.setup(&[], "services:\n  chunker: {}\n");
    let yaml = std::fs::read_to_string(p.dir.path().join("hsm.yaml")).unwrap().replace(
        "packages: []\n",
        &format!("packages:\n  - name: not-python\n    editable: {}\n", fixtures.join("not-python").display()),
    );
    p.write("hsm.yaml", &yaml);
    let run = p.hsm(&["sync"]).expect(2);
    assert!(run.stderr.contains("not-python"), "{}", run.stderr);
    assert!(p.containers().is_empty(), "the chunker was not started");
}

#[test]
fn a_renamed_project_replaces_its_old_containers_and_network() {
    let mut p = Project::new("rename");
    p.setup(&[], "services:\n  chunker: {}\n");
    p.sync();
    let old = p.name.clone();
    p.name = format!("{old}-new");
    p.setup(&[], "services:\n  chunker: {}\n");
    let run = p.hsm(&["sync", "--json"]).expect(0);
    let changes = run.changes();
    assert!(changes.contains(&format!("removed-container {old}-chunker-server")), "{changes:?}");
    assert!(changes.contains(&format!("removed-network {old}-hsm")), "{changes:?}");
    assert!(changes.contains(&format!("created-container {}", p.container("chunker", "server"))), "{changes:?}");
    assert_eq!(p.containers().keys().collect::<Vec<_>>(), vec![&p.container("chunker", "server")]);
}
