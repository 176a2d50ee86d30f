//! `hsm export compose` brought up for real with docker-compose (1.29 here, the
//! Compose specification) on the test images: the scenarios' exports start, their
//! one-shot services exit 0, the databases exist, and a package's exported
//! environment connects, from a package service of the stack; then `down -v`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stack::{Project, image};
use crate::third_party::{built, project_with_plugin};

/// A Compose project under test; `down -v` when dropped, pass or fail.
struct Stack {
    name: String,
    file: PathBuf,
    env: Vec<(String, String)>,
}

impl Stack {
    /// Exports `p` with `args`, then runs `up -d` with the variables `env`.
    fn up(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Self {
        let file = p.path().join("exported/compose.yaml");
        let file_s = file.display().to_string();
        let mut all = vec!["export", "compose", "-o", &file_s];
        all.extend_from_slice(args);
        p.hsm(&all).expect(0);
        // Ports published on ports Docker chooses: tests run side by side.
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            if let Some(var) =
                line.split("${").nth(1).and_then(|r| r.split(":-").next()).filter(|v| v.contains("_PORT_"))
            {
                env.push((var.to_string(), "0".to_string()));
            }
        }
        let stack = Self { name: p.name.replace('-', ""), file, env };
        stack.compose(&["up", "-d"]);
        stack
    }

    /// Runs docker-compose; panics with its output if it fails.
    fn compose(&self, args: &[&str]) -> String {
        let out = Command::new("docker-compose")
            .args(["--no-ansi", "-p", &self.name, "-f"])
            .arg(&self.file)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("docker-compose (scripts/bootstrap.sh installs it)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "docker-compose {args:?} failed:\n{text}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The exit code of a one-shot service's container.
    fn exit_code(&self, service: &str) -> String {
        let id = self.compose(&["ps", "-q", service]);
        crate::stack::docker(&["inspect", "--format", "{{.State.ExitCode}}", id.trim()]).trim().to_string()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new("docker-compose")
            .args(["--no-ansi", "-p", &self.name, "-f"])
            .arg(&self.file)
            .args(["down", "-v", "--remove-orphans"])
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output();
    }
}

fn values(p: &Project, file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let _ = p;
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), v.trim_matches('\'').to_string())
        })
        .collect()
}

#[test]
fn shared_managed_export_runs_under_compose_and_its_packages_connect() {
    let p = Project::new("export-shared");
    p.setup(&["auth-service", "billing-service"], "");
    let values_file = p.path().join("values.env");
    let values_s = values_file.display().to_string();
    let package = format!("billing-service={}", image("postgres"));
    // The values hsm would use (its generated password), from the values file.
    let file = p.path().join("exported/compose.yaml").display().to_string();
    p.hsm(&["export", "compose", "-o", &file, "--package", &package, "--values", &values_s]).expect(0);
    let vars = values(&p, &values_file);
    assert!(vars.iter().any(|(k, v)| k == "HSM_POSTGRES_PASSWORD" && v.len() >= 16), "{vars:?}");
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let stack = Stack::up(&p, &["--package", &package], &env);

    assert_eq!(stack.exit_code("postgres-exec-1"), "0");
    let dbs = stack.compose(&[
        "exec",
        "-T",
        "postgres",
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
        "-tAc",
        "SELECT datname FROM pg_database ORDER BY 1",
    ]);
    assert!(dbs.contains("auth\n") && dbs.contains("billing\n"), "{dbs}");
    // The package's service reaches its database with the exported environment.
    let db = stack.compose(&[
        "run",
        "--rm",
        "billing-service",
        "sh",
        "-c",
        "psql \"$DATABASE_URL\" -tAc 'SELECT current_database()'",
    ]);
    assert_eq!(db.trim(), "billing");
    let db = stack.compose(&["run", "--rm", "billing-service", "sh", "-c", "PGPASSWORD=\"$DB_PASSWORD\" psql -h \"$DB_HOST\" -p \"$DB_PORT\" -U \"$DB_USER\" -d \"$DB_NAME\" -tAc 'SELECT 1'"]);
    assert_eq!(db.trim(), "1");
    // Up again changes nothing: the one-shot ran once and stays done.
    stack.compose(&["up", "-d"]);
    assert_eq!(stack.exit_code("postgres-exec-1"), "0");
}

#[test]
fn a_password_that_needs_encoding_reaches_the_package_whole() {
    let p = Project::new("export-encode");
    p.setup(&["auth-service"], "");
    let package = format!("auth-service={}", image("postgres"));
    let password = "p@ss w:rd/é%";
    let encoded = "p%40ss%20w%3Ard%2F%C3%A9%25";
    let stack = Stack::up(
        &p,
        &["--package", &package],
        &[("HSM_POSTGRES_PASSWORD", password), ("HSM_POSTGRES_PASSWORD_URLENCODED", encoded)],
    );
    assert_eq!(stack.exit_code("postgres-exec-1"), "0");
    let db = stack.compose(&[
        "run",
        "--rm",
        "auth-service",
        "sh",
        "-c",
        "psql \"$DATABASE_URL\" -tAc 'SELECT current_database()'",
    ]);
    assert_eq!(db.trim(), "auth");
}

#[test]
fn hybrid_export_runs_the_chunker_and_hands_out_the_external_vector_db() {
    let mut p = Project::new("export-hybrid");
    p.set_env("QDRANT_API_KEY", "qk-export-5e1");
    p.setup(&["rag-api"], "services:\n  vector-db:\n    profile: external-prod\n");
    let package = format!("rag-api={}", image("chunker"));
    let stack = Stack::up(&p, &["--package", &package], &[("QDRANT_API_KEY", "qk-from-compose")]);
    let env_file = std::fs::read_to_string(p.path().join("exported/env/rag-api.env")).unwrap();
    assert!(env_file.contains("QDRANT_URL=https://qdrant.example.invalid:6333\n"), "{env_file}");
    assert!(env_file.contains("QDRANT_API_KEY=\"${QDRANT_API_KEY:?QDRANT_API_KEY is not set}\"\n"), "{env_file}");
    assert!(!env_file.contains("qk-export-5e1"));
    // `run` waits for the chunker's healthcheck (an HTTP probe, run in its container).
    let script = "import os, urllib.request; print(urllib.request.urlopen(os.environ['CHUNKER_URL'] + '/health').status, os.environ['QDRANT_API_KEY'])";
    let out = stack.compose(&["run", "--rm", "rag-api", "python3", "-c", script]);
    assert_eq!(out.trim(), "200 qk-from-compose");
    let health = crate::stack::docker(&[
        "inspect",
        "--format",
        "{{.State.Health.Status}}",
        stack.compose(&["ps", "-q", "chunker"]).trim(),
    ]);
    assert_eq!(health.trim(), "healthy");
}

#[test]
fn the_third_party_redis_exports_and_runs_with_its_grants() {
    let wasm = std::fs::read(built("examples/plugins/redis", "hsm-example-redis")).unwrap();
    let p = Project::new("export-redis");
    let registry = format!(
        "services:\n  cache:\n    kind: redis\n    params: {{ image: \"{}\" }}\npackages:\n  api:\n    implies:\n      - service: cache\n        params: {{ db: 1 }}\n",
        image("redis")
    );
    let digest = crate::third_party::sha256(&wasm);
    project_with_plugin(
        &p,
        "redis",
        &wasm,
        &registry,
        &format!("packages: [api]\nplugins:\n  redis:\n    sha256: {digest}\n    grant: [containers, exec]\n"),
    );
    let package = format!("api={}", image("redis"));
    let stack = Stack::up(&p, &["--package", &package], &[]);
    let pong = stack.compose(&["run", "--rm", "api", "sh", "-c", "redis-cli -u \"$REDIS_URL\" ping"]);
    assert_eq!(pong.trim(), "PONG");
    let health = crate::stack::docker(&[
        "inspect",
        "--format",
        "{{.State.Health.Status}}",
        stack.compose(&["ps", "-q", "cache"]).trim(),
    ]);
    assert_eq!(health.trim(), "healthy");

    // Without its grant, the export is refused as a sync is, and writes nothing.
    project_with_plugin(
        &p,
        "redis",
        &wasm,
        &registry,
        &format!("packages: [api]\nplugins:\n  redis:\n    sha256: {digest}\n    grant: [exec]\n"),
    );
    let other = p.path().join("other/compose.yaml").display().to_string();
    let run = p.hsm(&["export", "compose", "-o", &other]).expect(2);
    assert!(run.stderr.contains("containers"), "{}", run.stderr);
    assert!(!p.path().join("other").exists());
}

/// The zero-leak scenario: every secret is the user's, from the environment; the
/// export holds none of hsm's values, and the stack gets Compose's instead.
#[test]
fn zero_leak_export_holds_no_value_and_takes_the_users_variables() {
    let mut p = Project::new("export-zero");
    p.set_env("CORP_DB_PASSWORD", "hsm-side-c0rp");
    p.set_env("QDRANT_API_KEY", "hsm-side-qdr");
    p.setup(
        &["rag-api", "auth-service"],
        "services:\n  vector-db:\n    profile: external-prod\n  postgres:\n    profile: external-corp\n",
    );
    let package = format!("rag-api={}", image("chunker"));
    let stack = Stack::up(
        &p,
        &["--package", &package],
        &[
            ("QDRANT_API_KEY", "compose-qdr"),
            ("CORP_DB_PASSWORD", "c:p@w"),
            ("CORP_DB_PASSWORD_URLENCODED", "c%3Ap%40w"),
        ],
    );
    for entry in walk(&p.path().join("exported")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(!text.contains("hsm-side"), "a value hsm read leaked into {}", entry.display());
    }
    // External services add no container: only the chunker (and the package) run.
    let services = stack.compose(&["config", "--services"]);
    let mut services: Vec<&str> = services.lines().collect();
    services.sort();
    assert_eq!(services, ["chunker", "rag-api"]);
    let script = "import os; print(os.environ['QDRANT_API_KEY'], os.environ['CHUNKER_URL'])";
    let out = stack.compose(&["run", "--rm", "rag-api", "python3", "-c", script]);
    assert_eq!(out.trim(), "compose-qdr http://chunker:8000");
    let env = std::fs::read_to_string(p.path().join("exported/env/auth-service.env")).unwrap();
    assert!(
        env.contains("DATABASE_URL=\"postgresql://app:${CORP_DB_PASSWORD_URLENCODED:?CORP_DB_PASSWORD_URLENCODED is not set}@10.0.0.50:5432/auth\""),
        "{env}"
    );
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}
