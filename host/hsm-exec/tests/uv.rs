//! The uv module against the real uv and real Python projects
//! (`tests/fixtures/python`), each test in a temporary copy of them. uv runs
//! through a wrapper script (`HSM_UV`) that records every invocation, so a test
//! can tell that a sync with nothing to do ran no uv at all. uv's default cache is
//! shared: the projects and the hatchling they build with are the same every time.

use hsm_model::Explain;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hsm_exec::uv::{
    self, InstallReason, PackageState, PythonChanges, PythonEnv, PythonState, UvError, VenvChange, VenvStatus,
};
use hsm_plan::{PackageSource, PythonPackage};
use tempfile::TempDir;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/python");

struct Sandbox {
    dir: TempDir,
    env: PythonEnv,
    real_uv: PathBuf,
    state: PythonState,
    reports: RefCell<Vec<String>>,
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

impl Sandbox {
    /// The fixtures under `src/` (in a folder whose name has a space, as users'
    /// folders sometimes do), an empty project under `project/`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(Path::new(FIXTURES), &dir.path().join("my src"));
        let project = dir.path().join("project");
        fs::create_dir(&project).unwrap();

        let real_uv = PythonEnv::new(&project, None).expect("uv is on PATH").uv().to_path_buf();
        let wrapper = dir.path().join("uv-wrapper");
        let log = dir.path().join("uv-calls.log");
        fs::write(
            &wrapper,
            format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n", log.display(), real_uv.display()),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::var_os("PATH");
        let env = PythonEnv::with_env(&project, None, &|key| match key {
            "HSM_UV" => Some(wrapper.clone().into_os_string()),
            "PATH" => path.clone(),
            _ => None,
        })
        .unwrap();
        assert_eq!(env.uv(), wrapper);
        Self { dir, env, real_uv, state: PythonState::default(), reports: RefCell::new(Vec::new()) }
    }

    fn src(&self, fixture: &str) -> PathBuf {
        self.dir.path().join("my src").join(fixture)
    }

    fn editable(&self, name: &str, fixture: &str) -> PythonPackage {
        PythonPackage { name: name.into(), source: PackageSource::Editable(self.src(fixture).display().to_string()) }
    }

    fn path(&self, name: &str, fixture: &str) -> PythonPackage {
        PythonPackage { name: name.into(), source: PackageSource::Path(self.src(fixture).display().to_string()) }
    }

    fn pypi(name: &str, requirement: &str) -> PythonPackage {
        PythonPackage { name: name.into(), source: PackageSource::Pypi(requirement.into()) }
    }

    fn sync(&mut self, desired: &[PythonPackage]) -> Result<PythonChanges, UvError> {
        let reports = &self.reports;
        uv::sync(&self.env, desired, &mut self.state, &|m| reports.borrow_mut().push(m.to_string()))
    }

    /// The uv command lines run since the last call.
    fn uv_calls(&self) -> Vec<String> {
        let log = self.dir.path().join("uv-calls.log");
        let calls = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        calls.lines().map(str::to_string).collect()
    }

    /// Runs `code` with the venv's interpreter; its stdout.
    fn python(&self, code: &str) -> String {
        let out = Command::new(self.env.python()).args(["-c", code]).output().unwrap();
        assert!(out.status.success(), "python -c {code:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn imports(&self, module: &str) -> bool {
        Command::new(self.env.python()).args(["-c", &format!("import {module}")]).status().unwrap().success()
    }

    fn site_packages(&self) -> PathBuf {
        let lib = self.env.venv().join("lib");
        let python = fs::read_dir(&lib).unwrap().next().unwrap().unwrap().path();
        python.join("site-packages")
    }

    /// Everything installed: the `.dist-info` folders and `.pth` files.
    fn installed(&self) -> BTreeSet<String> {
        fs::read_dir(self.site_packages())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".dist-info") || n.ends_with(".pth"))
            .collect()
    }

    fn has_dist(&self, prefix: &str) -> bool {
        self.installed().iter().any(|n| n.starts_with(prefix) && n.ends_with(".dist-info"))
    }

    /// Runs the real uv on the venv, as a user would by hand.
    fn uv_by_hand(&self, args: &[&str]) {
        let out = Command::new(&self.real_uv)
            .args(args)
            .arg("--python")
            .arg(self.env.python())
            .current_dir(self.env.project_dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "uv {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

fn names(changes: &[hsm_exec::uv::PackageChange]) -> Vec<&str> {
    changes.iter().map(|c| c.name.as_str()).collect()
}

/// Scenario 3: two editable packages, one depending on the other. One sync, one
/// uv transaction; an edit to the lower one shows through the upper one at once.
#[test]
fn editable_stack_sees_edits_without_a_new_sync() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core"), s.editable("api", "api")];
    let changes = s.sync(&desired).unwrap();
    assert_eq!(changes.venv, Some(VenvChange::Created));
    assert_eq!(names(&changes.installed), ["core", "api"]);
    assert_eq!(changes.installed[0].distribution, "hsm-fixture-core");
    assert_eq!(changes.installed[0].version.as_deref(), Some("0.1.0"));

    let calls = s.uv_calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(calls[0].starts_with("venv "), "{calls:#?}");
    assert!(calls[1].starts_with("pip install "), "{calls:#?}");
    assert_eq!(calls[1].matches("--editable").count(), 2, "both editables in one transaction: {calls:#?}");

    assert_eq!(s.python("import hsm_fixture_api; print(hsm_fixture_api.greet())"), "hello from core");
    let init = s.src("core").join("src/hsm_fixture_core/__init__.py");
    let code = fs::read_to_string(&init).unwrap().replace("return \"core\"", "return \"core, edited\"");
    fs::write(&init, code).unwrap();
    assert_eq!(s.python("import hsm_fixture_api; print(hsm_fixture_api.greet())"), "hello from core, edited");
    assert!(s.uv_calls().is_empty());
}

/// A second sync with nothing changed runs no uv and takes next to no time.
#[test]
fn a_sync_with_nothing_to_do_runs_no_uv() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core"), s.editable("api", "api"), s.path("handmade", "handmade")];
    s.sync(&desired).unwrap();
    s.uv_calls();
    let state = s.state.clone();

    let start = Instant::now();
    let changes = s.sync(&desired).unwrap();
    let took = start.elapsed();
    assert!(changes.is_empty(), "{changes:#?}");
    assert!(s.uv_calls().is_empty());
    assert_eq!(s.state, state);
    assert!(took < Duration::from_millis(50), "the no-op sync took {took:?}");

    // Editing a source file changes nothing either: editables see it, and a
    // path package is rebuilt only when its build configuration changes (as uv does).
    fs::write(s.src("handmade").join("src/hsm_fixture_handmade/extra.py"), "X = 1\n").unwrap();
    fs::write(s.src("core").join("src/hsm_fixture_core/extra.py"), "X = 1\n").unwrap();
    assert!(s.sync(&desired).unwrap().is_empty());
    assert!(s.uv_calls().is_empty());
}

/// A package removed from hsm.yaml is uninstalled; what the user installed by hand
/// stays, and so does a removed package that another one still requires.
#[test]
fn removal_uninstalls_only_what_hsm_installed() {
    let mut s = Sandbox::new();
    let core = s.editable("core", "core");
    let api = s.editable("api", "api");
    s.sync(std::slice::from_ref(&core)).unwrap();
    let handmade = s.src("handmade").display().to_string();
    s.uv_by_hand(&["pip", "install", &handmade]);
    assert!(s.has_dist("hsm_fixture_handmade-"));

    s.sync(&[core.clone(), api.clone()]).unwrap();
    assert!(s.has_dist("hsm_fixture_api-"));

    // `core` leaves hsm.yaml but `api` requires it: it stays, no longer hsm's.
    let changes = s.sync(std::slice::from_ref(&api)).unwrap();
    assert!(changes.uninstalled.is_empty(), "{changes:#?}");
    assert_eq!(changes.kept.len(), 1);
    assert_eq!(changes.kept[0].name, "core");
    assert_eq!(changes.kept[0].required_by, ["hsm-fixture-api"]);
    assert!(!s.state.packages.contains_key("core"));
    assert_eq!(s.python("import hsm_fixture_api; print(hsm_fixture_api.greet())"), "hello from core");

    // `api` leaves too: it goes; `core` is no longer hsm's and stays, like the
    // hand-installed package.
    s.uv_calls();
    let changes = s.sync(&[]).unwrap();
    assert_eq!(changes.uninstalled.len(), 1, "{changes:#?}");
    assert_eq!(changes.uninstalled[0].distribution, "hsm-fixture-api");
    let calls = s.uv_calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].starts_with("pip uninstall ") && calls[0].ends_with(" hsm-fixture-api"), "{calls:#?}");
    assert!(!s.imports("hsm_fixture_api"));
    assert!(!s.has_dist("hsm_fixture_api-"));
    assert!(s.imports("hsm_fixture_core"));
    assert!(s.imports("hsm_fixture_handmade"));
    assert!(s.state.packages.is_empty());
}

/// A package removed from hsm.yaml that nothing requires is uninstalled, while
/// the others are left alone.
#[test]
fn a_removed_leaf_package_is_uninstalled() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core"), s.path("handmade", "handmade")];
    s.sync(&desired).unwrap();
    assert!(s.imports("hsm_fixture_handmade"));
    s.uv_calls();

    let changes = s.sync(&desired[..1]).unwrap();
    assert_eq!(changes.installed, []);
    assert_eq!(changes.uninstalled.len(), 1);
    assert_eq!(changes.uninstalled[0].name, "handmade");
    assert!(!s.imports("hsm_fixture_handmade"));
    assert!(s.imports("hsm_fixture_core"));
    assert_eq!(s.uv_calls().len(), 1, "one uninstall, no install");
}

/// PyPI requirements, copies of local folders and editable links in one sync; a
/// changed requirement or source reinstalls just that package.
#[test]
fn every_kind_of_source_installs_and_a_changed_source_reinstalls() {
    let mut s = Sandbox::new();
    let desired = [Sandbox::pypi("ini", "iniconfig==2.0.0"), s.path("core", "core"), s.editable("api", "api")];
    s.sync(&desired).unwrap();
    assert_eq!(s.python("import iniconfig, importlib.metadata as m; print(m.version('iniconfig'))"), "2.0.0");
    assert_eq!(s.python("import hsm_fixture_api; print(hsm_fixture_api.greet())"), "hello from core");

    // `core` is a copy: an edit shows only after a reinstall.
    let init = s.src("core").join("src/hsm_fixture_core/__init__.py");
    fs::write(&init, "def name():\n    return \"core 2\"\n").unwrap();
    assert_eq!(s.python("import hsm_fixture_api; print(hsm_fixture_api.greet())"), "hello from core");

    // A new requirement, and `core` switches to editable: both reinstalled, in one
    // transaction; `api` is untouched.
    s.uv_calls();
    let desired = [Sandbox::pypi("ini", "iniconfig>=2.1"), s.editable("core", "core"), s.editable("api", "api")];
    let changes = s.sync(&desired).unwrap();
    assert_eq!(names(&changes.installed), ["ini", "core"]);
    assert!(changes.installed.iter().all(|c| c.reason == InstallReason::SourceChanged), "{changes:#?}");
    let calls = s.uv_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    assert!(!calls[0].contains("my src/api"), "api is up to date: {calls:#?}");
    let version = s.python("import importlib.metadata as m; print(m.version('iniconfig'))");
    assert_ne!(version, "2.0.0");
    assert_eq!(s.python("import hsm_fixture_api; print(hsm_fixture_api.greet())"), "hello from core 2");

    // Editable back to the index is a reinstall too (uv alone would keep the link).
    let changes = s.sync(&[Sandbox::pypi("ini", "iniconfig>=2.1"), s.path("core", "core")]).unwrap();
    assert_eq!(names(&changes.installed), ["core"]);
    assert_eq!(names_of_removed(&changes), ["api"]);
    fs::write(&init, "def name():\n    return \"core 3\"\n").unwrap();
    assert_eq!(s.python("import hsm_fixture_core; print(hsm_fixture_core.name())"), "core 2", "a copy again");
}

fn names_of_removed(changes: &PythonChanges) -> Vec<&str> {
    changes.uninstalled.iter().map(|c| c.name.as_str()).collect()
}

/// A local package whose build configuration changes is reinstalled: a new
/// version or dependency reaches the venv.
#[test]
fn a_changed_pyproject_reinstalls_the_package() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core")];
    s.sync(&desired).unwrap();
    let pyproject = s.src("core").join("pyproject.toml");
    let text = fs::read_to_string(&pyproject).unwrap().replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    fs::write(&pyproject, text).unwrap();

    let changes = s.sync(&desired).unwrap();
    assert_eq!(changes.installed.len(), 1);
    assert_eq!(changes.installed[0].reason, InstallReason::BuildChanged);
    assert_eq!(changes.installed[0].version.as_deref(), Some("0.2.0"));
    assert_eq!(s.python("import importlib.metadata as m; print(m.version('hsm-fixture-core'))"), "0.2.0");
    assert!(s.sync(&desired).unwrap().is_empty());
}

/// What the user does to hsm's packages by hand is undone by the next sync.
#[test]
fn a_package_changed_by_hand_is_put_back() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core"), s.editable("api", "api")];
    s.sync(&desired).unwrap();

    s.uv_by_hand(&["pip", "uninstall", "hsm-fixture-api"]);
    let changes = s.sync(&desired).unwrap();
    assert_eq!(names(&changes.installed), ["api"]);
    assert_eq!(changes.installed[0].reason, InstallReason::Gone);
    assert!(s.imports("hsm_fixture_api"));

    // Replaced by a copy of the same folder: no longer the asked-for editable link.
    let core = s.src("core").display().to_string();
    s.uv_by_hand(&["pip", "install", &core]);
    let uv::PythonStatus { packages, .. } = uv::status(&s.env, &desired, &s.state);
    assert!(matches!(packages[0].state, PackageState::Stale { reason: InstallReason::ChangedOutsideHsm(_) }));
    let changes = s.sync(&desired).unwrap();
    assert_eq!(names(&changes.installed), ["core"]);
    assert!(s.sync(&desired).unwrap().is_empty());
}

/// A folder that isn't a Python project is refused before uv runs.
#[test]
fn a_folder_that_is_not_a_python_project_is_refused_before_uv_runs() {
    let mut s = Sandbox::new();
    s.sync(&[s.editable("core", "core")]).unwrap();
    let before = s.installed();
    let state = s.state.clone();
    s.uv_calls();

    let err = s.sync(&[s.editable("core", "core"), s.editable("docs", "not-python")]).unwrap_err();
    assert!(matches!(err, UvError::NotAPythonProject { ref package, .. } if package == "docs"), "{err}");
    let message = err.to_string();
    assert!(message.contains("package `docs`") && message.contains("`pyproject.toml`"), "{message}");
    assert!(err.hint().is_some());
    assert!(s.uv_calls().is_empty());
    assert_eq!(s.installed(), before);
    assert_eq!(s.state, state);
}

/// A requirement uv can't resolve: reported with the package's name and uv's
/// message; nothing installed, nothing removed.
#[test]
fn an_unresolvable_requirement_leaves_the_environment_as_it_was() {
    let mut s = Sandbox::new();
    let core = s.editable("core", "core");
    let handmade = s.path("handmade", "handmade");
    s.sync(&[core.clone(), handmade]).unwrap();
    let before = s.installed();
    let state = s.state.clone();

    // `handmade` leaves hsm.yaml in the same sync: it must not go either.
    let desired = [core, s.editable("api", "api"), Sandbox::pypi("nope", "hsm-fixture-no-such-package==1.0")];
    let err = s.sync(&desired).unwrap_err();
    let UvError::Install { packages, message } = &err else { panic!("{err}") };
    assert_eq!(packages, &["nope"]);
    assert!(message.contains("hsm-fixture-no-such-package"), "{message}");
    assert!(err.to_string().starts_with("uv could not install `nope`:\n"), "{err}");
    assert_eq!(s.installed(), before);
    assert_eq!(s.state, state);
}

/// A package whose build fails: reported with its name and the build's own error;
/// the venv is unchanged.
#[test]
fn a_failing_build_leaves_the_environment_as_it_was() {
    let mut s = Sandbox::new();
    s.sync(&[s.editable("core", "core")]).unwrap();
    let before = s.installed();
    let state = s.state.clone();

    let desired = [s.editable("core", "core"), s.editable("api", "api"), s.path("broken", "broken")];
    let err = s.sync(&desired).unwrap_err();
    let UvError::Install { packages, message } = &err else { panic!("{err}") };
    assert_eq!(packages, &["broken"]);
    assert!(message.contains("the broken fixture cannot be built (on purpose)"), "{message}");
    assert_eq!(s.installed(), before);
    assert_eq!(s.state, state);
    assert!(!s.imports("hsm_fixture_api"));
}

/// When the first sync fails, the venv it created goes too.
#[test]
fn a_failed_first_sync_leaves_no_venv() {
    let mut s = Sandbox::new();
    let err = s.sync(&[s.editable("broken", "broken")]).unwrap_err();
    assert!(matches!(err, UvError::Install { .. }), "{err}");
    assert!(!s.env.venv().exists());
    assert_eq!(s.state, PythonState::default());
}

/// A venv whose interpreter is gone is recreated and refilled; a `.venv` that
/// isn't a venv is never touched.
#[test]
fn a_broken_venv_is_recreated_and_a_foreign_folder_refused() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core")];
    s.sync(&desired).unwrap();
    fs::remove_file(s.env.python()).unwrap();
    assert_eq!(uv::status(&s.env, &desired, &s.state).venv, VenvStatus::Broken);

    let changes = s.sync(&desired).unwrap();
    assert_eq!(changes.venv, Some(VenvChange::Recreated));
    assert_eq!(changes.installed[0].reason, InstallReason::Gone);
    assert!(s.imports("hsm_fixture_core"));

    fs::remove_dir_all(s.env.venv()).unwrap();
    fs::create_dir(s.env.venv()).unwrap();
    fs::write(s.env.venv().join("notes.txt"), "mine").unwrap();
    let err = s.sync(&desired).unwrap_err();
    assert!(matches!(err, UvError::NotAVenv { .. }), "{err}");
    assert_eq!(fs::read_to_string(s.env.venv().join("notes.txt")).unwrap(), "mine");
}

/// `status` tells installed, missing and stale packages apart without running uv.
#[test]
fn status_reports_installed_missing_and_stale() {
    let mut s = Sandbox::new();
    let desired = [s.editable("core", "core"), s.editable("api", "api")];
    let status = uv::status(&s.env, &desired, &s.state);
    assert_eq!(status.venv, VenvStatus::Missing);
    assert!(status.packages.iter().all(|p| p.state == PackageState::Missing));

    s.sync(&desired[..1]).unwrap();
    s.uv_calls();
    let status = uv::status(&s.env, &desired, &s.state);
    assert_eq!(status.venv, VenvStatus::Ready);
    assert_eq!(status.packages[0].state, PackageState::Installed);
    assert_eq!(status.packages[0].distribution.as_deref(), Some("hsm-fixture-core"));
    assert_eq!(status.packages[0].version.as_deref(), Some("0.1.0"));
    assert_eq!(status.packages[1].state, PackageState::Missing);

    let moved = [s.path("core", "core")];
    let status = uv::status(&s.env, &moved, &s.state);
    assert_eq!(status.packages[0].state, PackageState::Stale { reason: InstallReason::SourceChanged });
    let status = uv::status(&s.env, &[], &s.state);
    assert_eq!(status.removed, ["core"]);
    let status = uv::status(&s.env, &[s.editable("x", "not-python")], &s.state);
    assert!(matches!(status.packages[0].state, PackageState::Invalid { .. }));
    assert!(s.uv_calls().is_empty());
}

/// Progress goes through the callback, never to the terminal.
#[test]
fn progress_is_reported_through_the_callback() {
    let mut s = Sandbox::new();
    s.sync(&[s.editable("core", "core")]).unwrap();
    let reports = s.reports.borrow().clone();
    assert_eq!(reports.len(), 2, "{reports:#?}");
    assert!(reports[0].contains("creating the virtual environment `.venv`"), "{reports:#?}");
    assert!(reports[1].starts_with("installing `core` (editable `"), "{reports:#?}");
}
