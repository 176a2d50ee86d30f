//! Git registries with real git: bare repositories made here, reached over
//! `file://` and over a `git daemon` on 127.0.0.1; `hsm.lock`, the cache, and the
//! errors located on the `registries` line. No Docker: the registries' services are
//! bundled kinds, so `hsm plan` and `hsm lock` work without an engine.

#[path = "../support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A bare repository holding a registry, a working copy to change it, and a
/// project that uses it, with hsm's folders in the same temporary folder.
struct Fixture {
    tmp: tempfile::TempDir,
    work: PathBuf,
    bare: PathBuf,
    project: PathBuf,
}

/// A registry whose `auth-service` asks PostgreSQL for the database `db`.
fn registry(db: &str) -> String {
    format!(
        "version: 1
packages:
  auth-service:
    implies:
      - service: postgres
        params: {{ db_name: {db} }}
services:
  postgres:
    kind: postgres
    params: {{ image: \"postgres:16\" }}
profiles:
  managed-dev: {{ mode: managed }}
"
    )
}

/// Runs git in `dir` with a fixed identity and no user configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Fixture {
    /// The registry at `subdir` (or the root), committed and tagged `v1`, pushed to
    /// a bare repository.
    fn new(subdir: Option<&str>) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        let bare = tmp.path().join("repos/registry.git");
        let project = tmp.path().join("project");
        for d in [&work, &project, &bare] {
            std::fs::create_dir_all(d).unwrap();
        }
        let f = Self { tmp, work, bare, project };
        git(&f.work, &["init", "-q", "-b", "main"]);
        f.commit(subdir, "auth_v1");
        git(&f.work, &["tag", "v1"]);
        git(&f.bare, &["init", "-q", "--bare"]);
        f.push();
        f
    }

    /// Commits a registry asking for the database `db`.
    fn commit(&self, subdir: Option<&str>, db: &str) {
        let dir = subdir.map_or(self.work.clone(), |s| self.work.join(s));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("registry.yaml"), registry(db)).unwrap();
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", db]);
    }

    fn push(&self) {
        git(&self.work, &["push", "-q", "--force", self.bare.to_str().unwrap(), "main", "+refs/tags/*:refs/tags/*"]);
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes `hsm.yaml` with `registry` after `bundled`.
    fn use_registry(&self, registry: &str) {
        std::fs::write(
            self.project.join("hsm.yaml"),
            format!(
                "version: 1\nproject: demo\nregistries: [bundled, \"{registry}\"]\nprofile: managed-dev\npackages: [auth-service]\n"
            ),
        )
        .unwrap();
    }

    /// Runs hsm in the project with hermetic folders.
    fn hsm(&self, args: &[&str]) -> support::Run {
        let dir = self.project.to_str().unwrap();
        let home = self.tmp.path().join("home");
        let cache = self.tmp.path().join("cache");
        let data = self.tmp.path().join("data");
        let path = std::env::var("PATH").unwrap_or_default();
        let mut all = vec!["-C", dir];
        all.extend_from_slice(args);
        support::hsm(
            &all,
            &[
                ("HOME", home.to_str().unwrap()),
                ("HSM_CACHE_DIR", cache.to_str().unwrap()),
                ("HSM_DATA_DIR", data.to_str().unwrap()),
                ("PATH", &path),
                ("GIT_CONFIG_NOSYSTEM", "1"),
                // Never an engine: a sync must stop before it starts anything.
                ("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
            ],
        )
    }

    fn lock(&self) -> Option<String> {
        std::fs::read_to_string(self.project.join("hsm.lock")).ok()
    }

    fn commit_of(&self, reference: &str) -> String {
        git(&self.bare, &["rev-parse", &format!("{reference}^{{commit}}")])
    }
}

fn ok(run: &support::Run) {
    assert_eq!(run.code, 0, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

#[test]
fn lock_pins_the_commit_until_update() {
    let f = Fixture::new(None);
    f.use_registry(&format!("git+{}@v1", f.file_url()));
    let v1 = f.commit_of("v1");
    ok(&f.hsm(&["lock"]));
    let lock = f.lock().expect("hsm.lock written");
    assert!(lock.contains(&format!("commit: {v1}")), "{lock}");
    assert!(lock.contains("\"registry.yaml\": "), "{lock}");
    let plan = f.hsm(&["plan"]);
    ok(&plan);
    assert!(plan.stdout.contains("auth_v1"), "{}", plan.stdout);

    // The tag moves to a commit with another registry: nothing changes...
    f.commit(None, "auth_v2");
    git(&f.work, &["tag", "-f", "v1"]);
    f.push();
    let v2 = f.commit_of("v1");
    assert_ne!(v1, v2);
    let plan = f.hsm(&["plan"]);
    ok(&plan);
    assert!(plan.stdout.contains("auth_v1"), "{}", plan.stdout);
    ok(&f.hsm(&["lock"]));
    assert_eq!(f.lock().unwrap(), lock, "`hsm lock` alone keeps the locked commit");

    // ...until `hsm lock --update`.
    ok(&f.hsm(&["lock", "--update", &f.file_url()]));
    assert!(f.lock().unwrap().contains(&format!("commit: {v2}")));
    let plan = f.hsm(&["plan"]);
    ok(&plan);
    assert!(plan.stdout.contains("auth_v2"), "{}", plan.stdout);
}

#[test]
fn a_warm_cache_needs_no_remote() {
    let f = Fixture::new(None);
    f.use_registry(&format!("git+{}@v1", f.file_url()));
    ok(&f.hsm(&["lock"]));
    std::fs::remove_dir_all(&f.bare).unwrap();
    let plan = f.hsm(&["plan"]);
    ok(&plan);
    assert!(plan.stdout.contains("auth_v1"));
    ok(&f.hsm(&["validate"]));
    // Without the lock, the ref must be resolved, which needs the remote.
    std::fs::remove_file(f.project.join("hsm.lock")).unwrap();
    let run = f.hsm(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot fetch"), "{}", run.stderr);
}

#[test]
fn a_changed_cached_file_is_an_error_naming_it() {
    let f = Fixture::new(None);
    f.use_registry(&format!("git+{}@v1", f.file_url()));
    ok(&f.hsm(&["lock"]));
    let tree = f.tmp.path().join("cache/git/trees").join(f.commit_of("v1"));
    std::fs::write(tree.join("registry.yaml"), registry("auth_evil")).unwrap();
    let run = f.hsm(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`registry.yaml` of this git registry does not match hsm.lock"), "{}", run.stderr);
    assert!(run.stderr.contains("hsm.yaml:3:23"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    // A file added to the cached tree is not in the lock either.
    std::fs::write(tree.join("registry.yaml"), registry("auth_v1")).unwrap();
    std::fs::write(tree.join("more.yaml"), "version: 1\n").unwrap();
    let run = f.hsm(&["plan"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("`more.yaml` of this git registry is not in hsm.lock"), "{}", run.stderr);
}

#[test]
fn bad_refs_subdirs_and_urls_are_located_errors() {
    let f = Fixture::new(Some("registry"));
    let gone = f.tmp.path().join("repos/nothing-here.git");
    let cases = [
        (format!("git+{}@v9", f.file_url()), "has no tag, branch or commit `v9`"),
        (format!("git+{}@v1#elsewhere", f.file_url()), "has no folder `elsewhere`"),
        (format!("git+file://{}@v1", gone.display()), "cannot fetch"),
        ("git+https://127.0.0.1:9/registry.git@v1".to_string(), "cannot fetch"),
        (format!("git+{}@v1#../x", f.file_url()), "invalid git registry"),
    ];
    for (registry, message) in cases {
        f.use_registry(&registry);
        for command in ["plan", "lock", "sync"] {
            let run = f.hsm(&[command]);
            assert_eq!(run.code, 2, "{registry} ({command}): {}", run.stderr);
            assert!(run.stderr.contains(message), "{registry}: {}", run.stderr);
            assert!(run.stderr.contains(" --> hsm.yaml:3:23"), "{registry}: {}", run.stderr);
            assert!(!run.stderr.contains("Docker"), "nothing starts: {}", run.stderr);
            assert!(f.lock().is_none());
        }
    }
    // The subdir that exists works.
    f.use_registry(&format!("git+{}@v1#registry", f.file_url()));
    ok(&f.hsm(&["plan"]));
}

#[test]
fn read_only_commands_resolve_without_writing_the_lock_and_sync_writes_it() {
    let f = Fixture::new(None);
    f.use_registry(&format!("git+{}@main", f.file_url()));
    ok(&f.hsm(&["validate"]));
    ok(&f.hsm(&["plan"]));
    assert!(f.lock().is_none(), "plan and validate do not write hsm.lock");
    // `hsm sync` writes it once the registries resolve, before it needs Docker
    // (which this test does not have).
    let run = f.hsm(&["sync"]);
    assert_ne!(run.code, 2, "{}", run.stderr);
    let lock = f.lock().expect("sync wrote hsm.lock");
    assert!(lock.contains(&f.commit_of("main")));
    // A registry no longer listed leaves the lock at the next write.
    f.use_registry("./local");
    std::fs::create_dir_all(f.project.join("local")).unwrap();
    std::fs::write(f.project.join("local/registry.yaml"), registry("local")).unwrap();
    ok(&f.hsm(&["lock"]));
    assert!(!f.lock().unwrap().contains("git+"), "{}", f.lock().unwrap());
}

#[test]
fn a_git_registry_cannot_be_editable_or_escape_its_repository() {
    let f = Fixture::new(None);
    let fixed = registry("auth_v1").replace(
        "packages:\n",
        "packages:\n  local-tool:\n    editable: ./tool\n  outside:\n    path: ../../elsewhere\n",
    );
    std::fs::write(f.work.join("registry.yaml"), fixed).unwrap();
    std::fs::create_dir_all(f.work.join("tool")).unwrap();
    std::fs::write(f.work.join("tool/pyproject.toml"), "[project]\nname = \"local-tool\"\n").unwrap();
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-q", "-m", "paths"]);
    git(&f.work, &["tag", "v2"]);
    f.push();
    f.use_registry(&format!("git+{}@v2", f.file_url()));
    let run = f.hsm(&["lock"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("package `local-tool` of a git registry is `editable`"), "{}", run.stderr);
    assert!(run.stderr.contains("the folder of package `outside` is outside"), "{}", run.stderr);
    assert!(f.lock().is_none());
}

/// A `git daemon` serving the fixture's `repos/` folder on 127.0.0.1; killed when
/// dropped.
struct Daemon {
    child: Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(base: &Path) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // `git daemon` would run `git-daemon` as a child that killing `git` leaves
    // running: start it directly.
    let exec_path = git(base, &["--exec-path"]);
    let child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .arg("--export-all")
        .arg("--reuseaddr")
        .arg(format!("--base-path={}", base.display()))
        .arg(format!("--port={port}"))
        .arg("--listen=127.0.0.1")
        .arg(base)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start git daemon");
    let daemon = Daemon { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return daemon;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("git daemon did not listen on port {port}");
}

#[test]
fn a_registry_served_by_git_daemon() {
    let f = Fixture::new(Some("registry"));
    let served = daemon(&f.tmp.path().join("repos"));
    let url = format!("git://127.0.0.1:{}/registry.git", served.port);
    f.use_registry(&format!("git+{url}@v1#registry"));
    ok(&f.hsm(&["lock"]));
    assert!(f.lock().unwrap().contains(&f.commit_of("v1")));
    assert!(f.lock().unwrap().contains("\"registry/registry.yaml\": "));
    let plan = f.hsm(&["plan"]);
    ok(&plan);
    assert!(plan.stdout.contains("auth_v1"));

    // A moved tag is noticed by `--update` only, over the daemon too.
    f.commit(Some("registry"), "auth_v2");
    git(&f.work, &["tag", "-f", "v1"]);
    f.push();
    assert!(f.hsm(&["plan"]).stdout.contains("auth_v1"));
    ok(&f.hsm(&["lock", "--update"]));
    assert!(f.hsm(&["plan"]).stdout.contains("auth_v2"));

    // With the daemon gone, the warm cache and the lock are enough.
    drop(served);
    ok(&f.hsm(&["plan"]));
    let run = f.hsm(&["lock", "--update"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("cannot fetch") && run.stderr.contains("hsm.yaml:3:23"), "{}", run.stderr);
}

#[test]
fn update_names_a_registry_of_hsm_yaml() {
    let f = Fixture::new(None);
    f.use_registry(&format!("git+{}@v1", f.file_url()));
    let run = f.hsm(&["lock", "--update", "git+https://elsewhere.invalid/r.git"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is not a git registry of hsm.yaml"), "{}", run.stderr);
    assert!(f.lock().is_none(), "nothing is written");
}

#[test]
fn plugins_a_git_registry_ships_are_locked_pinned_and_granted() {
    let f = Fixture::new(None);
    let example = support::repo_root().join("examples/third-party-plugin");
    std::fs::create_dir_all(f.work.join("plugins")).unwrap();
    for file in ["cache.yaml", "plugins/redis.wasm"] {
        std::fs::copy(example.join("registry").join(file), f.work.join(file)).unwrap();
    }
    git(&f.work, &["add", "-A"]);
    git(&f.work, &["commit", "-q", "-m", "redis"]);
    git(&f.work, &["tag", "v2"]);
    f.push();
    let project = std::fs::read_to_string(example.join("hsm.yaml"))
        .unwrap()
        .replace("registries: [bundled, ./registry]", &format!("registries: [bundled, \"git+{}@v2\"]", f.file_url()));
    std::fs::write(f.project.join("hsm.yaml"), &project).unwrap();
    ok(&f.hsm(&["lock"]));
    let lock = f.lock().unwrap();
    let wasm = std::fs::read(example.join("registry/plugins/redis.wasm")).unwrap();
    let digest: String = sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&wasm))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(lock.contains(&format!("\"plugins/redis.wasm\": {digest}")), "{lock}");
    let plan = f.hsm(&["plan"]);
    ok(&plan);
    assert!(plan.stdout.contains("redis"), "{}", plan.stdout);

    // Without its grant, the plugin is refused as any registry's would be.
    let ungranted = project.replace("    grant: [containers, exec]\n", "");
    std::fs::write(f.project.join("hsm.yaml"), ungranted).unwrap();
    let run = f.hsm(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("grant"), "{}", run.stderr);

    // A changed cached plugin is caught by the lock.
    std::fs::write(f.project.join("hsm.yaml"), &project).unwrap();
    let tree = f.tmp.path().join("cache/git/trees").join(f.commit_of("v2"));
    std::fs::write(tree.join("plugins/redis.wasm"), b"\0asm not really").unwrap();
    let run = f.hsm(&["plan"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`plugins/redis.wasm` of this git registry does not match hsm.lock"), "{}", run.stderr);
}
