//! Resolution tests on small projects written to a temporary folder.

use std::collections::{BTreeSet, HashMap};

use hsm_config::{LoadOptions, Mode};
use hsm_model::{NoRefs, Piece, Sources, Value};

use crate::{PackageSource, Requester, Resolution, ResolveOptions, resolve};

const REGISTRY: &str = "
packages:
  web:
    pypi: web>=1
    implies:
      - service: db
        params: { db_name: web }
      - package: lib
  worker:
    pypi: worker
    implies:
      - service: db
        params: { db_name: jobs, pool: 4 }
      - package: lib
  lib:
    pypi: lib
    implies:
      - service: cache
  unused:
    pypi: unused
    implies:
      - service: db
        params: { password: \"${UNUSED_PASSWORD}\" }
services:
  db: { kind: postgres, profile: local, params: { image: \"postgres:${PG_VERSION:-16}\" } }
  cache: { kind: qdrant, profile: local }
profiles:
  local: { mode: managed, services: { db: { image: \"postgres:16-alpine\" } } }
  remote:
    mode: external
    services:
      db: { host: db.example, password: \"${DB_PASSWORD}\" }
  unused-remote:
    mode: external
    services:
      db: { password: \"${NEVER_NEEDED}\" }
";

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(project: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hsm.yaml"), project).unwrap();
        std::fs::write(dir.path().join("registry.yaml"), REGISTRY).unwrap();
        Self { dir }
    }

    fn resolve(&self, env: &[(&str, &str)]) -> Result<Resolution, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let mut sources = Sources::new();
        let options = LoadOptions { project_dir: self.dir.path().to_path_buf(), env, ..Default::default() };
        let config = hsm_config::load(&options, &mut sources).map_err(|d| d.render(&sources))?;
        let kinds: BTreeSet<String> = ["postgres", "qdrant"].iter().map(|k| (*k).to_string()).collect();
        resolve(&config, &sources, &ResolveOptions { known_kinds: kinds }).map_err(|d| d.render(&sources))
    }
}

fn project(body: &str) -> String {
    format!("version: 1\nproject: app\nregistries: [./registry.yaml]\n{body}")
}

#[test]
fn implications_are_transitive_and_ordered_by_first_sight() {
    let f = Fixture::new(&project("packages: [web, worker]\n"));
    let r = f.resolve(&[]).unwrap();
    let names: Vec<&str> = r.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "lib", "worker"]);
    let lib = &r.packages[1];
    assert_eq!(lib.requested_by, [Requester::Package("web".into()), Requester::Package("worker".into())]);
    assert_eq!(r.packages[0].requested_by, [Requester::Project]);
    assert_eq!(r.packages[0].source, Some(PackageSource::Pypi { requirement: "web>=1".into() }));
    let services: Vec<&str> = r.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(services, ["cache", "db"], "services are sorted by name");
}

#[test]
fn contributions_stay_separate() {
    let f = Fixture::new(&project("packages: [web, worker]\nservices:\n  db:\n    params: { extensions: [vector] }\n"));
    let r = f.resolve(&[]).unwrap();
    let db = r.services.iter().find(|s| s.name == "db").unwrap();
    assert_eq!(db.consumers, ["web", "worker"]);
    let json: Vec<String> = db.contributions.iter().map(|c| serde_json::to_string(&c.params).unwrap()).collect();
    assert_eq!(json, [r#"{"db_name":"web"}"#, r#"{"db_name":"jobs","pool":4}"#, r#"{"extensions":["vector"]}"#]);
    assert_eq!(db.contributions[2].from, Requester::Project);
    assert_eq!(db.contributions[0].origin.file, "registry.yaml");
    assert_eq!((db.contributions[0].origin.line, db.contributions[0].origin.column), (6, 9));
}

#[test]
fn profile_precedence_is_service_then_project_then_registry() {
    let f = Fixture::new(&project("packages: [web]\n"));
    let r = f.resolve(&[]).unwrap();
    let db = r.services.iter().find(|s| s.name == "db").unwrap();
    assert_eq!((db.profile.name.as_str(), db.profile.mode), ("local", Mode::Managed));
    assert_eq!(db.profile.chosen_by.file, "registry.yaml");
    assert_eq!(serde_json::to_string(&db.profile.settings).unwrap(), r#"{"image":"postgres:16-alpine"}"#);

    let f = Fixture::new(&project("profile: remote\npackages: [web]\nservices:\n  cache: { profile: local }\n"));
    let r = f.resolve(&[("DB_PASSWORD", "pw")]).unwrap();
    let db = r.services.iter().find(|s| s.name == "db").unwrap();
    assert_eq!((db.profile.name.as_str(), db.profile.mode), ("remote", Mode::External));
    assert_eq!((db.profile.chosen_by.file.as_str(), db.profile.chosen_by.line), ("hsm.yaml", 4));
    let cache = r.services.iter().find(|s| s.name == "cache").unwrap();
    assert_eq!((cache.profile.name.as_str(), cache.profile.chosen_by.line), ("local", 7));
}

#[test]
fn secrets_are_references_with_values_only_in_the_store() {
    let f = Fixture::new(&project("profile: remote\npackages: [web]\nservices:\n  cache: { profile: local }\n"));
    let r = f.resolve(&[("DB_PASSWORD", "hunter2"), ("PG_VERSION", "17")]).unwrap();
    let db = r.services.iter().find(|s| s.name == "db").unwrap();
    let Some(Value::Text(pw)) = db.profile.settings.get("password") else { panic!("{:?}", db.profile.settings) };
    let [Piece::Secret { id, label, .. }] = pw.pieces() else { panic!("{pw:?}") };
    assert_eq!(label, "${DB_PASSWORD}");
    assert_eq!(r.secrets.get(*id).unwrap().expose(), "hunter2");
    // A default that was used is a secret too, labelled as written.
    let Some(Value::Text(image)) = db.defaults.get("image") else { panic!() };
    assert_eq!(image.display(), "postgres:${PG_VERSION:-16}");
    assert_eq!(image.expose(&r.secrets, &NoRefs).unwrap().expose(), "postgres:17");
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains("hunter2") && !json.contains("postgres:17"), "{json}");
    assert!(!format!("{r:?}").contains("hunter2"));
}

#[test]
fn only_used_templates_need_variables() {
    // `unused` and `unused-remote` refer to variables that are not set.
    let f = Fixture::new(&project("packages: [web]\n"));
    assert!(f.resolve(&[]).is_ok());
    let f = Fixture::new(&project("packages: [web, unused]\n"));
    let err = f.resolve(&[]).unwrap_err();
    assert!(err.contains("error: variable `UNUSED_PASSWORD` is not set"), "{err}");
    assert!(err.contains("needed because package `unused` is used by this project"), "{err}");
}

#[test]
fn an_inline_entry_overrides_the_source_and_keeps_implications() {
    let f =
        Fixture::new(&project("packages:\n  - name: web\n    editable: ./web\n    implies: [{ package: worker }]\n"));
    std::fs::create_dir(f.dir.path().join("web")).unwrap();
    let r = f.resolve(&[]).unwrap();
    let names: Vec<&str> = r.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web", "lib", "worker"]);
    match &r.packages[0].source {
        Some(PackageSource::Path { display, editable: true, path }) => {
            assert_eq!(display, "./web");
            assert!(path.is_absolute() && path.ends_with("web"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_inline_package_is_defined_by_the_project() {
    let f =
        Fixture::new(&project("packages:\n  - name: tool\n    pypi: tool==2.0\n    implies: [{ service: cache }]\n"));
    let r = f.resolve(&[]).unwrap();
    assert_eq!(r.packages[0].origin.file, "hsm.yaml");
    assert_eq!(r.services[0].consumers, ["tool"]);
}

#[test]
fn independent_problems_are_all_reported() {
    let f = Fixture::new(&project(
        "profile: nope\npackages: [web, wbe]\nservices:\n  dbb: {}\n  db: { profile: unused-remote }\n",
    ));
    let err = f.resolve(&[]).unwrap_err();
    for expected in [
        "unknown profile `nope`",
        "unknown package `wbe`",
        "did you mean `web`?",
        "unknown service `dbb`",
        "variable `NEVER_NEEDED` is not set",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in\n{err}");
    }
}

#[test]
fn a_cycle_is_reported_once_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hsm.yaml"), project("packages: [a, b]\n")).unwrap();
    std::fs::write(
        dir.path().join("registry.yaml"),
        "packages:\n  a: { implies: [{ package: b }] }\n  b: { implies: [{ package: a }] }\n",
    )
    .unwrap();
    let f = Fixture { dir };
    let mut sources = Sources::new();
    let options = LoadOptions { project_dir: f.dir.path().to_path_buf(), env: HashMap::new(), ..Default::default() };
    let config = hsm_config::load(&options, &mut sources).unwrap();
    let err = resolve(&config, &sources, &ResolveOptions::default()).unwrap_err();
    assert_eq!(err.0.len(), 1, "{}", err.render(&sources));
    assert_eq!(err.0[0].message, "package cycle: a → b → a");
}

/// A project with 300 services, each with secrets in its profile's settings, its
/// defaults and its contributions.
fn many_services() -> tempfile::TempDir {
    use std::fmt::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut reg = String::from("packages:\n");
    for i in 0..300 {
        let _ = write!(
            reg,
            "  p{i}:\n    pypi: p{i}\n    implies:\n      - service: s{i}\n        params: {{ name: \"n-${{A{i}:-a{i}}}\" }}\n      - service: s{}\n",
            (i * 7) % 300
        );
    }
    reg.push_str("services:\n");
    for i in 0..300 {
        let _ = writeln!(reg, "  s{i}: {{ kind: postgres, profile: p, params: {{ d: \"${{D{i}:-d{i}}}\" }} }}");
    }
    reg.push_str("profiles:\n  p:\n    mode: managed\n    services:\n");
    for i in 0..300 {
        let _ = writeln!(reg, "      s{i}: {{ token: \"${{T{i}:-t{i}}}\" }}");
    }
    let packages: Vec<String> = (0..300).map(|i| format!("p{i}")).collect();
    std::fs::write(dir.path().join("registry.yaml"), reg).unwrap();
    std::fs::write(dir.path().join("hsm.yaml"), project(&format!("packages: [{}]\n", packages.join(", ")))).unwrap();
    dir
}

#[test]
fn every_reference_leads_to_its_own_value() {
    let dir = many_services();
    let mut sources = Sources::new();
    let options = LoadOptions { project_dir: dir.path().to_path_buf(), env: HashMap::new(), ..Default::default() };
    let config = hsm_config::load(&options, &mut sources).unwrap();
    let known_kinds: BTreeSet<String> = ["postgres".to_string()].into();
    let r = resolve(&config, &sources, &ResolveOptions { known_kinds }).unwrap();
    // Each default is unique, so each reference's value says whether its id is right.
    fn check(v: &Value, store: &hsm_model::SecretStore) {
        match v {
            Value::Text(t) => {
                for p in t.pieces() {
                    if let Piece::Secret { id, label, .. } = p {
                        let default = label.split_once(":-").unwrap().1.trim_end_matches('}');
                        assert_eq!(store.get(*id).unwrap().expose(), default, "{label}");
                    }
                }
            }
            Value::Map(m) => m.values().for_each(|v| check(v, store)),
            Value::List(l) => l.iter().for_each(|v| check(v, store)),
            _ => {}
        }
    }
    for s in &r.services {
        check(&s.defaults, &r.secrets);
        check(&s.profile.settings, &r.secrets);
        s.contributions.iter().for_each(|c| check(&c.params, &r.secrets));
    }
    assert_eq!(r.secrets.values().count(), 300 * 3, "a secret per contribution, default and profile setting");
}
