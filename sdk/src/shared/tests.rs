//! Tests of the shared-service helpers: values and defaults, clashes, settings, plan helpers.

use super::*;
use crate::testing::*;

fn info() -> PluginInfo {
    PluginInfo::new("files", "0.1.0", ["files"])
        .param("path", "prefix", true)
        .param("db", "database", false)
        .param("version", "version", false)
        .setting("url", "where", true)
}

fn merge() -> SharedMerge<'static> {
    SharedMerge::new(&info()).unique("path").per_consumer("db").check("path", |v: &Value| match v.as_str() {
        Some(p) if !p.contains("..") => Ok(Value::from(format!("/{}/", p.trim_matches('/')))),
        _ => Err("`path` must be a plain prefix"),
    })
}

fn params<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::map(pairs)
}

#[test]
fn settings_agree_and_each_consumer_keeps_its_own() {
    let req = merge_request("files", "files")
        .defaults(params([("version", "3".into()), ("db", "shared".into())]))
        .contribution("api", params([("path", "api".into()), ("version", "3".into())]))
        .contribution("worker", params([("path", "/jobs/".into()), ("db", "jobs".into())]))
        .contribution("api", params([("path", "/api".into())]))
        .build();
    let merged = merge().merge(&req).unwrap();
    let config: Map = [("version", Value::from("3")), ("db", "shared".into())].into_iter().collect();
    assert_eq!(merged.config, config, "the defaults, own parameters' too, and what all agree on");
    assert_eq!(merged.values("path"), [Value::from("/api/"), Value::from("/jobs/")]);
    assert_eq!(merged.values("db"), [Value::from("jobs")], "what consumers asked, not the default");
    let value = merged.into_value();
    assert_eq!(value.get(CONSUMERS).and_then(|c| c.get("worker")).and_then(|w| w.get_str("path")), Some("/jobs/"));

    let plan = plan_request("files", "files", value)
        .consumer("api", Value::Null)
        .consumer("stranger", Value::Null)
        .project_consumer(Value::Null)
        .build();
    assert_eq!(plan.merged_for(&plan.consumers[0]).get_str("path"), Some("/api/"));
    assert_eq!(plan.merged_for(&plan.consumers[1]), &Value::Null);
    // Without a per-consumer map, the consumer's own parameters.
    let raw = plan_request("files", "files", Value::Null).consumer("api", params([("path", "/x".into())])).build();
    assert_eq!(raw.merged_for(&raw.consumers[0]).get_str("path"), Some("/x"));
}

#[test]
fn the_projects_own_parameters_have_a_key_no_package_can_have() {
    let req = merge_request("files", "files").project_contribution(params([("path", "site".into())])).build();
    let value = merge().merge(&req).unwrap().into_value();
    assert_eq!(value.get(CONSUMERS).and_then(|c| c.get(PROJECT_KEY)).and_then(|p| p.get_str("path")), Some("/site/"));
    let plan = plan_request("files", "files", value).project_consumer(Value::Null).build();
    assert_eq!(plan.merged_for(&plan.consumers[0]).get_str("path"), Some("/site/"));
    assert_eq!(consumer_key(None), PROJECT_KEY);
}

#[test]
fn a_unique_value_asked_twice_names_both_with_its_own_hint() {
    let req = merge_request("files", "files")
        .contribution("api", params([("path", "/docs".into())]))
        .contribution("web", params([("db", "x".into())]))
        .contribution("worker", params([("path", "docs/".into())]))
        .build();
    let err = merge().merge(&req).unwrap_err();
    assert_eq!(
        err,
        MergeError::conflict("`api` and `worker` both ask for `path` `/docs/`", "path", [0, 2])
            .hint("give each package its own `path`")
    );
    // Shareable values may coincide.
    let req = merge_request("files", "files")
        .contribution("api", params([("db", "x".into())]))
        .contribution("web", params([("db", "x".into())]))
        .build();
    assert_eq!(merge().merge(&req).unwrap().values("db"), [Value::from("x")]);
}

#[test]
fn a_consumer_that_asks_for_nothing_gets_its_default_and_it_is_unique_too() {
    let merge = || merge().default_for("path", |package: Option<&str>| Value::from(package.unwrap_or("project")));
    let req = merge_request("files", "files")
        .contribution("api", params([("path", "/docs".into())]))
        .contribution("web", Value::Null)
        .build();
    let merged = merge().merge(&req).unwrap();
    assert_eq!(merged.values("path"), [Value::from("/docs/"), Value::from("/web/")]);
    // One that asks for another's default clashes with it.
    let req = merge_request("files", "files")
        .contribution("api", params([("path", "web".into())]))
        .contribution("web", Value::Null)
        .build();
    let err = merge().merge(&req).unwrap_err();
    assert!(
        matches!(&err, MergeError::Conflict { key, contributions, .. } if key == "path" && contributions == &[0, 1]),
        "{err:?}"
    );
}

/// Listing a service that packages imply only configures it: the project is
/// no consumer then and gets no default to clash with theirs (found by
/// scripts/soak: a redis `profile` in hsm.yaml clashed on `db` 0). Alone, it
/// is the consumer and gets one.
#[test]
fn the_project_gets_a_default_only_where_it_is_the_consumer() {
    let merge = || merge().default_for("path", |package: Option<&str>| Value::from(package.unwrap_or("web")));
    let req = merge_request("files", "files")
        .project_contribution(params([("db", "x".into())]))
        .contribution("web", Value::Null)
        .build();
    let merged = merge().merge(&req).unwrap();
    assert_eq!(merged.values("path"), [Value::from("/web/")]);
    let req = merge_request("files", "files").project_contribution(params([("db", "x".into())])).build();
    assert_eq!(merge().merge(&req).unwrap().values("path"), [Value::from("/web/")]);
    // A unique value of its own, beside packages, would serve nobody: refused
    // at the project's contribution, not compared with the packages' values.
    let req = merge_request("files", "files")
        .project_contribution(params([("path", "/web".into())]))
        .contribution("web", Value::Null)
        .build();
    assert_eq!(
        merge().merge(&req).unwrap_err(),
        MergeError::invalid(
            "`path` is each package's own, and packages use `files`: the project's would serve nobody",
            "path",
            Some(0)
        )
        .hint("set `path` where a package implies `files`, or remove it here")
    );
}

#[test]
fn int_in_keeps_whole_numbers_in_range() {
    let check = int_in(0..=15, "0 to 15");
    assert_eq!(check(&Value::Int(15)), Ok(Value::Int(15)));
    assert_eq!(check(&Value::Int(16)), Err("0 to 15"));
    assert_eq!(check(&Value::from("3")), Ok(Value::Int(3)));
    assert_eq!(check(&Value::from("three")), Err("0 to 15"));
}

#[test]
fn one_consumer_may_ask_two_shareable_values_and_both_are_kept() {
    let req = merge_request("files", "files")
        .contribution("api", params([("db", "app".into())]))
        .contribution("api", params([("db", "app_test".into())]))
        .contribution("web", params([("db", "web".into())]))
        .build();
    let merged = merge().merge(&req).unwrap();
    assert_eq!(merged.values("db"), [Value::from("app"), Value::from("app_test"), Value::from("web")]);
    // Its environment names the first.
    assert_eq!(merged.consumers[0].1.get("db"), Some(&Value::from("app")));
}

#[test]
fn one_consumer_asking_two_values_of_its_own_clashes() {
    let req = merge_request("files", "files")
        .contribution("api", params([("path", "/a".into())]))
        .contribution("api", params([("path", "/b".into())]))
        .build();
    assert_eq!(
        merge().merge(&req).unwrap_err(),
        MergeError::conflict("`api` asks for `path` `/a/` and `/b/`", "path", [0, 1])
            .hint("make `api`'s requests agree on `path`")
    );
}

#[test]
fn a_setting_that_differs_names_both_values() {
    let req = merge_request("files", "files")
        .contribution("a", params([("version", "16".into())]))
        .contribution("b", params([("version", 15.into())]))
        .build();
    assert_eq!(
        merge().merge(&req).unwrap_err(),
        MergeError::conflict("`version` differs: `a` asks `16`, `b` asks `15`", "version", [0, 1])
    );
    let req = merge_request("files", "files")
        .contribution("a", params([("version", Value::List(vec![]))]))
        .project_contribution(params([("version", "1".into())]))
        .build();
    assert_eq!(merge().merge(&req).unwrap_err().message(), "`version` differs between `a` and the project");
}

#[test]
fn unknown_and_bad_parameters_are_invalid_where_they_are_given() {
    let req = merge_request("files", "files").contribution("a", params([("pth", "x".into())])).build();
    assert_eq!(
        merge().merge(&req).unwrap_err(),
        MergeError::invalid("unknown parameter `pth`; files reads `path`, `db`, `version`", "pth", Some(0))
    );
    let req = merge_request("files", "files").defaults(params([("path", "../etc".into())])).build();
    assert_eq!(merge().merge(&req).unwrap_err(), MergeError::invalid("`path` must be a plain prefix", "path", None));
    let req = merge_request("files", "files").contribution("a", Value::from("x")).build();
    assert_eq!(merge().merge(&req).unwrap_err(), MergeError::invalid("params must be a map", "", Some(0)));
    // `env_names` is every consumer's, never the plugin's to refuse or keep.
    let renames = params([(ENV_NAMES, params([("X", "Y".into())]))]);
    let req = merge_request("files", "files").contribution("a", renames).build();
    assert_eq!(merge().merge(&req).unwrap().consumers[0].1, Map::new());
}

#[test]
fn plan_helpers_read_settings_and_addresses() {
    let external =
        plan_request("files", "files", Value::Null).external("remote", params([("uri", "https://x".into())])).build();
    assert_eq!(external.check_settings(&info()), Err(PlanError::at("uri", "unknown setting `uri`; files reads `url`")));
    assert_eq!(
        external.url_setting("url"),
        Err(PlanError::at("url", "profile `remote` gives no `url` for this files service"))
    );
    let url = crate::text!("https://u:", secret(1), "@files.example");
    let external =
        plan_request("files", "files", Value::Null).external("remote", params([("url", url.into())])).build();
    assert_eq!(external.check_settings(&info()), Ok(()));
    assert_eq!(external.url_setting("url").unwrap().pieces()[1], secret(1).url_encoded().pieces()[0]);

    let mut managed = plan_request("files", "files", Value::Null).build();
    assert_eq!(managed.published("server", 80).url("http").to_string(), "http://127.0.0.1:${hsm:port:server:80}");
    managed.host_address = "::1".into();
    assert_eq!(managed.published("server", 80).url("http").to_string(), "http://[::1]:${hsm:port:server:80}");
}
