//! The bundled plugins as compiled components in the real runtime: all four
//! scenarios of the design, end to end through WIT, secrets as handles.

use hsm_model::text::Encoding;
use hsm_model::{Piece, SecretStore, Sensitive, Text, Value};
use hsm_plan::{Action, Consumer, Mode};
use hsm_runtime::*;
use indexmap::IndexMap;

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<IndexMap<_, _>>())
}

fn plugins() -> Vec<Plugin> {
    PluginHost::default().load_bundled().expect("bundled plugins load")
}

fn plugin<'a>(plugins: &'a [Plugin], kind: &str) -> &'a Plugin {
    plugins.iter().find(|p| p.info().kinds.iter().any(|k| k == kind)).expect("a plugin serves the kind")
}

fn contribution<'a>(pkg: &str, params: &'a Value) -> ContributionInput<'a> {
    ContributionInput { from: Consumer::Package(pkg.into()), origin: format!("registry/{pkg}.yaml:3:9"), params }
}

#[test]
fn bundled_plugins_load_precompiled_and_describe_themselves() {
    let plugins = plugins();
    let names: Vec<_> = plugins.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["postgres", "qdrant", "chunker", "uv-package"]);
    for p in &plugins {
        assert!(p.precompiled(), "{} was compiled at load time", p.name());
        assert_eq!(p.wit_version(), "0.4.0");
        assert_eq!(p.sha256().len(), 64);
        assert!(p.info().variables.is_some(), "{} declares its variables", p.name());
    }
    let pg = plugin(&plugins, "postgres").info();
    assert!(pg.capabilities.contains(&Capability::Containers) && pg.capabilities.contains(&Capability::Exec));
    let names: Vec<&str> = pg.variables.iter().flatten().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DATABASE_URL"]);
    let uv = plugin(&plugins, "uv-package").info();
    assert_eq!(uv.variables, Some(vec![]), "installing packages gives no environment");
}

/// Scenario 1.1: two packages, one postgres service, one container, both databases.
#[test]
fn shared_managed_postgres_is_one_container_with_both_databases() {
    let plugins = plugins();
    let pg = plugin(&plugins, "postgres");
    let defaults = map(&[("version", Value::from("16")), ("image", Value::from("postgres"))]);
    let auth = map(&[("db_name", Value::from("auth"))]);
    let billing = map(&[("db_name", Value::from("billing"))]);
    let merged = pg
        .merge(&MergeInput {
            service: "postgres",
            kind: "postgres",
            defaults: &defaults,
            contributions: vec![contribution("auth-service", &auth), contribution("billing-service", &billing)],
        })
        .unwrap();
    assert_eq!(merged.get("db_list").and_then(Value::as_plain_str), Some("auth,billing"));

    let consumers = vec![
        ConsumerInput { consumer: Consumer::Package("auth-service".into()), params: &auth },
        ConsumerInput { consumer: Consumer::Package("billing-service".into()), params: &billing },
    ];
    let settings = Value::Null;
    let planned = pg
        .plan(&PlanInput {
            project: "rag-app",
            service: "postgres",
            kind: "postgres",
            config: &merged,
            profile: ProfileInput { name: "managed-dev", mode: Mode::Managed, settings: &settings },
            consumers,
            host_address: "127.0.0.1",
        })
        .unwrap();
    let containers = planned.actions.iter().filter(|a| matches!(a, Action::EnsureContainer(_))).count();
    assert_eq!(containers, 1);
    let who = [Consumer::Package("auth-service".into()), Consumer::Package("billing-service".into())];
    check_plan(
        pg.info(),
        &Grants::declared(pg.info()),
        &CheckContext { service: "postgres", consumers: &who, packages: &[], renames: &[] },
        &planned,
    )
    .unwrap();
    let db_name = |i: usize| planned.env[i].vars.iter().find(|(k, _)| k == "DB_NAME").unwrap().1.display();
    assert_eq!((db_name(0), db_name(1)), ("auth".to_string(), "billing".to_string()));
}

/// Scenarios 1.2 and 4: external postgres; the password is a secret the plugin
/// only ever sees as a handle, and it comes back as the same secret.
#[test]
fn external_postgres_gets_secrets_back_as_references() {
    let plugins = plugins();
    let pg = plugin(&plugins, "postgres");
    let mut store = SecretStore::new();
    let id = store.insert(Sensitive::new("s3cr3t-P@ss".into()));
    let password =
        Text::from_pieces([Piece::Secret { id, label: "${CORP_DB_PASSWORD}".into(), encoding: Encoding::Raw }]);
    let settings = map(&[
        ("host", Value::from("10.0.0.50")),
        ("port", Value::Int(5432)),
        ("user", Value::from("app")),
        ("password", Value::Text(password.clone())),
    ]);
    let auth = map(&[("db_name", Value::from("auth"))]);
    let merged = map(&[("db_list", Value::from("auth"))]);
    let planned = pg
        .plan(&PlanInput {
            project: "rag-app",
            service: "postgres",
            kind: "postgres",
            config: &merged,
            profile: ProfileInput { name: "external-corp", mode: Mode::External, settings: &settings },
            consumers: vec![ConsumerInput { consumer: Consumer::Package("auth-service".into()), params: &auth }],
            host_address: "127.0.0.1",
        })
        .unwrap();
    assert!(planned.actions.is_empty());
    let vars = &planned.env[0].vars;
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("DB_HOST").display(), "10.0.0.50");
    assert_eq!(get("DB_PASSWORD"), password);
    assert_eq!(get("DATABASE_URL").display(), "postgresql://app:${CORP_DB_PASSWORD}@10.0.0.50:5432/auth");
    let url = get("DATABASE_URL").expose(&store, &hsm_model::NoRefs).unwrap();
    assert_eq!(url.expose(), "postgresql://app:s3cr3t-P%40ss@10.0.0.50:5432/auth");
}

/// Scenario 2: a managed chunker next to an external vector DB.
#[test]
fn hybrid_chunker_managed_vector_db_external() {
    let plugins = plugins();
    let chunker = plugin(&plugins, "chunker");
    let qdrant = plugin(&plugins, "qdrant");
    let rag = Value::Null;
    let chunker_config = map(&[("image", Value::from("example/chunker:1.4")), ("port", Value::Int(8000))]);
    let chunker_plan = chunker
        .plan(&PlanInput {
            project: "rag-app",
            service: "chunker",
            kind: "chunker",
            config: &chunker_config,
            profile: ProfileInput { name: "managed-dev", mode: Mode::Managed, settings: &Value::Null },
            consumers: vec![ConsumerInput { consumer: Consumer::Package("rag-api".into()), params: &rag }],
            host_address: "127.0.0.1",
        })
        .unwrap();
    assert!(matches!(chunker_plan.actions[0], Action::EnsureContainer(_)));
    assert_eq!(chunker_plan.env[0].vars[0].1.display(), "http://127.0.0.1:${hsm:port:server:8000}");

    let mut store = SecretStore::new();
    let key = store.insert(Sensitive::new("qk-123".into()));
    let settings = map(&[
        ("url", Value::from("https://xyz.cloud.example:6333")),
        (
            "api_key",
            Value::Text(Text::from_pieces([Piece::Secret {
                id: key,
                label: "${QDRANT_API_KEY}".into(),
                encoding: Encoding::Raw,
            }])),
        ),
    ]);
    let docs = map(&[("collection", Value::from("docs"))]);
    let merged = qdrant
        .merge(&MergeInput {
            service: "vector-db",
            kind: "qdrant",
            defaults: &Value::Null,
            contributions: vec![contribution("rag-api", &docs)],
        })
        .unwrap();
    let q = qdrant
        .plan(&PlanInput {
            project: "rag-app",
            service: "vector-db",
            kind: "qdrant",
            config: &merged,
            profile: ProfileInput { name: "external-prod", mode: Mode::External, settings: &settings },
            consumers: vec![ConsumerInput { consumer: Consumer::Package("rag-api".into()), params: &docs }],
            host_address: "127.0.0.1",
        })
        .unwrap();
    assert!(q.actions.is_empty());
    let shown: Vec<_> = q.env[0].vars.iter().map(|(k, v)| format!("{k}={}", v.display())).collect();
    assert_eq!(
        shown,
        ["QDRANT_URL=https://xyz.cloud.example:6333", "QDRANT_API_KEY=${QDRANT_API_KEY}", "QDRANT_COLLECTION=docs"]
    );
}

/// Scenario 3: the editable stack becomes one uv install of exactly the packages asked for.
#[test]
fn editable_packages_become_one_checked_uv_install() {
    let plugins = plugins();
    let uv = plugin(&plugins, "uv-package");
    let core = map(&[("name", Value::from("core")), ("editable", Value::from("/src/core"))]);
    let api = map(&[("name", Value::from("api")), ("editable", Value::from("/src/api"))]);
    let merged = uv
        .merge(&MergeInput {
            service: "python",
            kind: "uv-package",
            defaults: &Value::Null,
            contributions: vec![contribution("core", &core), contribution("api", &api)],
        })
        .unwrap();
    let planned = uv
        .plan(&PlanInput {
            project: "stack",
            service: "python",
            kind: "uv-package",
            config: &merged,
            profile: ProfileInput { name: "managed", mode: Mode::Managed, settings: &Value::Null },
            consumers: vec![],
            host_address: "127.0.0.1",
        })
        .unwrap();
    let asked = [
        hsm_plan::PythonPackage { name: "core".into(), source: hsm_plan::PackageSource::Editable("/src/core".into()) },
        hsm_plan::PythonPackage { name: "api".into(), source: hsm_plan::PackageSource::Editable("/src/api".into()) },
    ];
    let ctx = CheckContext { service: "python", consumers: &[], packages: &asked, renames: &[] };
    check_plan(uv.info(), &Grants::declared(uv.info()), &ctx, &planned).unwrap();
    let only_core = CheckContext { service: "python", consumers: &[], packages: &asked[..1], renames: &[] };
    let refusal = check_plan(uv.info(), &Grants::declared(uv.info()), &only_core, &planned).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "plugin `uv-package` may not install `api` from `/src/api` for service `python`: the project does not ask for that package from that source"
    );
}

#[test]
fn conflicting_versions_name_both_contributions() {
    let plugins = plugins();
    let pg = plugin(&plugins, "postgres");
    let a = map(&[("version", Value::from("16"))]);
    let b = map(&[("version", Value::from("15"))]);
    let err = pg
        .merge(&MergeInput {
            service: "postgres",
            kind: "postgres",
            defaults: &Value::Null,
            contributions: vec![contribution("a", &a), contribution("b", &b)],
        })
        .unwrap_err();
    assert_eq!(
        err,
        MergeFailure::Conflict {
            message: "`version` differs: `a` asks `16`, `b` asks `15`".into(),
            key: "version".into(),
            contributions: vec![0, 1],
            hint: None,
        }
    );
}
