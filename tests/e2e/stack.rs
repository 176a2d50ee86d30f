//! Helpers for the end-to-end tests: a throwaway project with a unique name that
//! runs the real `hsm` binary against the real Docker engine, and always cleans up
//! after itself (`hsm down --volumes`, then anything still labelled with its folder).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::TempDir;

/// A test image's tag, from `HSM_TEST_IMAGE_*` (exported by `scripts/test`) or
/// `tests/images/images.env`. Fails the test, saying how to build it, when the
/// image is not on the engine: no test silently skips.
pub fn image(which: &str) -> String {
    let var = format!("HSM_TEST_IMAGE_{}", which.to_uppercase());
    let tag = std::env::var(&var).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
        let env_file = repo_root().join("tests/images/images.env");
        let text = std::fs::read_to_string(&env_file).expect("tests/images/images.env");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")).map(str::to_string))
            .unwrap_or_else(|| panic!("{var} is not in {}", env_file.display()))
    });
    static CHECKED: OnceLock<std::sync::Mutex<Vec<String>>> = OnceLock::new();
    let checked = CHECKED.get_or_init(Default::default);
    if !checked.lock().unwrap().contains(&tag) {
        let ok = Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", &tag])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the end-to-end test image `{tag}` is not on the Docker engine: build it with `tests/images/build.sh` (`scripts/test` does it first)"
        );
        checked.lock().unwrap().push(tag.clone());
    }
    tag
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// Runs the docker CLI and returns its stdout; panics when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the docker CLI; returns whether it succeeded.
pub fn docker_ok(args: &[&str]) -> bool {
    Command::new("docker").args(args).output().is_ok_and(|o| o.status.success())
}

/// What one run of `hsm` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything it printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Panics with its output unless it exited with `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Its stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The changes a `sync --json` reports, as `action subject`.
    pub fn changes(&self) -> Vec<String> {
        self.json()["changes"]
            .as_array()
            .expect("a sync's JSON summary has `changes`")
            .iter()
            .map(|c| format!("{} {}", c["action"].as_str().unwrap(), c["subject"].as_str().unwrap()))
            .collect()
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A project in a temporary folder.
pub struct Project {
    pub dir: TempDir,
    pub name: String,
    pub data: TempDir,
    pub cache: TempDir,
    pub env: Vec<(String, String)>,
}

impl Project {
    /// A project whose name starts with `tag` and is unique on this engine.
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("e2e-{tag}-{:x}{n}", (std::process::id() ^ nanos) & 0xfffff);
        let dir = tempfile::Builder::new().prefix("hsm-e2e-").tempdir().unwrap();
        Self { dir, name, data: tempfile::tempdir().unwrap(), cache: tempfile::tempdir().unwrap(), env: Vec::new() }
    }

    /// The project's folder (canonical, as hsm labels it).
    pub fn path(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    /// Writes a file in the project.
    pub fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Writes `hsm.yaml` (project name filled in) and the test registry.
    pub fn setup(&self, packages: &[&str], rest: &str) {
        let mut yaml = format!("version: 1\nproject: {}\nprofile: managed-dev\nregistries: [./registry]\n", self.name);
        if packages.is_empty() {
            yaml.push_str("packages: []\n");
        } else {
            yaml.push_str("packages:\n");
        }
        for p in packages {
            yaml.push_str(&format!("  - {p}\n"));
        }
        yaml.push_str(rest);
        self.write("hsm.yaml", &yaml);
        self.write("registry/registry.yaml", &registry());
    }

    /// Adds an environment variable for every hsm run.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm"));
        cmd.arg("-C").arg(self.dir.path()).args(args).env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.data.path())
            .env("HSM_DATA_DIR", self.data.path())
            .env("HSM_CACHE_DIR", self.cache.path())
            .env("NO_COLOR", "1");
        // What reaching the engine and package indexes needs (uv reads these), nothing else.
        for (key, value) in std::env::vars_os() {
            let k = key.to_string_lossy().to_ascii_uppercase();
            let wanted = k == "DOCKER_HOST"
                || k == "HSM_UV"
                || k.starts_with("UV_")
                || k.starts_with("SSL_CERT_")
                || k.ends_with("_PROXY")
                || k == "REQUESTS_CA_BUNDLE";
            if wanted {
                cmd.env(key, value);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs hsm in the project.
    pub fn hsm(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run hsm");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs hsm with one more environment variable.
    pub fn hsm_with(&self, args: &[&str], key: &str, value: &str) -> Run {
        let out = self.command(args).env(key, value).output().expect("run hsm");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts hsm without waiting, stderr piped.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start hsm")
    }

    /// `hsm sync`, which must succeed.
    #[track_caller]
    pub fn sync(&self) -> Run {
        self.hsm(&["sync"]).expect(0)
    }

    /// The project's containers (by its folder label): name → (id, state, started at).
    pub fn containers(&self) -> BTreeMap<String, (String, String, String)> {
        let label = format!("label=dev.hsm.project-dir={}", self.path().display());
        let ids = docker(&["ps", "-aq", "--no-trunc", "--filter", &label]);
        let mut out = BTreeMap::new();
        for id in ids.split_whitespace() {
            let line = docker(&["inspect", "--format", "{{.Name}} {{.Id}} {{.State.Status}} {{.State.StartedAt}}", id]);
            let mut parts = line.split_whitespace();
            let name = parts.next().unwrap().trim_start_matches('/').to_string();
            let id = parts.next().unwrap().to_string();
            let state = parts.next().unwrap().to_string();
            let started = parts.next().unwrap_or_default().to_string();
            out.insert(name, (id, state, started));
        }
        out
    }

    /// The project's volumes (by its folder label).
    pub fn volumes(&self) -> Vec<String> {
        let label = format!("label=dev.hsm.project-dir={}", self.path().display());
        docker(&["volume", "ls", "-q", "--filter", &label]).split_whitespace().map(str::to_string).collect()
    }

    /// A container's full name.
    pub fn container(&self, service: &str, container: &str) -> String {
        format!("{}-{service}-{container}", self.name)
    }

    /// `hsm env PKG --reveal --format json` as a map (the project's own env for "").
    pub fn env_values(&self, package: &str) -> BTreeMap<String, String> {
        let mut args = vec!["env", "--reveal", "--format", "json"];
        if !package.is_empty() {
            args.push(package);
        }
        let run = self.hsm(&args).expect(0);
        serde_json::from_str(&run.stdout).unwrap()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.hsm(&["down", "--volumes", "-q"]);
        // Whatever is left (a test that failed half-way, a broken hsm): by label only.
        let label =
            format!("label=dev.hsm.project-dir={}", self.dir.path().canonicalize().unwrap_or_default().display());
        let ids = Command::new("docker").args(["ps", "-aq", "--filter", &label]).output();
        if let Ok(out) = ids {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker_ok(&["rm", "-f", "-v", id]);
            }
        }
        for kind in ["volume", "network"] {
            if let Ok(out) = Command::new("docker").args([kind, "ls", "-q", "--filter", &label]).output() {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = docker_ok(&[kind, "rm", id]);
                }
            }
        }
    }
}

/// The test registry: the bundled registry's shape, pointed at the test images.
/// Packages have no Python source, so no uv runs here (uv has its own tests).
pub fn registry() -> String {
    format!(
        r#"version: 1
packages:
  auth-service:
    implies:
      - service: postgres
        params: {{ db_name: auth }}
  billing-service:
    implies:
      - service: postgres
        params: {{ db_name: billing }}
      - package: auth-service
  reporting:
    implies:
      - service: postgres
        params: {{ db_name: reporting }}
  rag-api:
    implies:
      - service: vector-db
        params: {{ collection: documents }}
      - service: chunker
services:
  postgres:
    kind: postgres
    params: {{ image: "{postgres}" }}
  vector-db:
    kind: qdrant
    params: {{ image: "{qdrant}" }}
  chunker:
    kind: chunker
    params: {{ image: "{chunker}", port: 8000 }}
profiles:
  managed-dev: {{ mode: managed }}
  external-corp:
    mode: external
    services:
      postgres: {{ host: 10.0.0.50, port: 5432, user: app, password: "${{CORP_DB_PASSWORD}}" }}
  external-prod:
    mode: external
    services:
      vector-db: {{ url: "https://qdrant.example.invalid:6333", api_key: "${{QDRANT_API_KEY}}" }}
"#,
        postgres = image("postgres"),
        qdrant = image("qdrant"),
        chunker = image("chunker"),
    )
}

/// A minimal HTTP request to `url` (`http://host:port/path`); returns status and body.
pub fn http(method: &str, url: &str, body: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Runs `psql` (the host's client) with a connection URL and a query; returns the
/// trimmed output.
pub fn psql(url: &str, query: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAc", query])
        .output()
        .expect("run psql (postgresql-client)");
    assert!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
