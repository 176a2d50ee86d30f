//! What WIT 0.4.0 added, against the real runtime: a merge error's hint is
//! escaped and bounded as every word of a plugin's, a container's stop signal is
//! one of the allow-list, and an older plugin's answers come out as 0.4.0's (no
//! hint, no init, the image's stop signal).

use std::path::PathBuf;
use std::sync::OnceLock;

use hsm_model::Value;
use hsm_plan::{Action, Consumer, Mode};
use hsm_runtime::*;

fn fixture(name: &str) -> Plugin {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/plugins");
        ["hostile-words", "hostile"]
            .iter()
            .map(|f| {
                let path = hsm_sdk::testing::build_plugin(format!("{dir}/{f}"), &format!("hsm-fixture-{f}"))
                    .unwrap_or_else(|e| panic!("{e}"));
                (f.to_string(), path)
            })
            .collect()
    });
    let path = &built.iter().find(|(n, _)| n == name).expect("a fixture of that name").1;
    PluginHost::default().load_component(&std::fs::read(path).unwrap(), PluginSource::File(path.clone())).unwrap()
}

fn merge(plugin: &Plugin, service: &str) -> MergeFailure {
    let params = Value::Null;
    let input = MergeInput {
        service,
        kind: "hostile-words",
        defaults: &Value::Null,
        contributions: vec![ContributionInput {
            from: Consumer::Project,
            origin: "hsm.yaml:1:1".into(),
            params: &params,
        }],
    };
    plugin.merge(&input).expect_err("the merge fails")
}

fn plan(plugin: &Plugin, service: &str) -> PlannedService {
    let input = PlanInput {
        project: "p",
        service,
        kind: "hostile-words",
        config: &Value::Null,
        profile: ProfileInput { name: "managed", mode: Mode::Managed, settings: &Value::Null },
        consumers: vec![],
        host_address: "127.0.0.1",
    };
    plugin.plan(&input).unwrap()
}

fn check(plugin: &Plugin, service: &str) -> Result<(), Refusal> {
    let planned = plan(plugin, service);
    let ctx = CheckContext { service, consumers: &[], packages: &[], renames: &[] };
    check_plan(plugin.info(), &Grants::declared(plugin.info()), &ctx, &planned)
}

#[test]
fn a_hint_comes_through_escaped_and_bounded() {
    let plugin = fixture("hostile-words");
    assert_eq!(plugin.wit_version(), "0.4.0");
    let MergeFailure::Conflict { hint, contributions, .. } = merge(&plugin, "hint-ok") else { panic!() };
    assert_eq!(hint.as_deref(), Some("give each package its own `db`"));
    assert_eq!(contributions, [0]);
    let MergeFailure::Conflict { hint, .. } = merge(&plugin, "hint-escape") else { panic!() };
    assert_eq!(hint.as_deref(), Some("\\u{1b}[2Jgive\\nerror: fake"), "one line, no escape acted on");
    let MergeFailure::Invalid { hint, contribution, .. } = merge(&plugin, "hint-long") else { panic!() };
    assert_eq!(contribution, Some(0));
    let hint = hint.unwrap();
    assert_eq!(hint.chars().count(), 1001, "cut at 1,000 characters, with an ellipsis");
    assert!(hint.ends_with('…'));
}

#[test]
fn a_stop_signal_must_be_one_hsm_passes_on() {
    let plugin = fixture("hostile-words");
    let ok = plan(&plugin, "stop-ok");
    let Action::EnsureContainer(c) = &ok.actions[0] else { panic!() };
    assert!(c.init);
    assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
    check(&plugin, "stop-ok").expect("SIGINT and an init are fine");

    let r = check(&plugin, "stop-bad").unwrap_err();
    assert_eq!(
        r.to_string(),
        "plugin `hostile-words` may not run container `server` for service `stop-bad`: `SIGSTOP` is not a stop signal hsm passes on (one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL)"
    );
    let r = check(&plugin, "stop-inject").unwrap_err();
    assert!(r.reason.starts_with("`SIGTERM\\nLD_PRELOAD=/x.so` is not a stop signal"), "{}", r.reason);
}

/// A plugin built for 0.1.0 (its types shared by 0.2.0 and 0.3.0) says nothing of
/// hints or init: its answers read as 0.4.0's without them.
#[test]
fn an_older_plugins_answers_are_upgraded() {
    let plugin = fixture("hostile");
    assert_eq!(plugin.wit_version(), "0.1.0");
    let planned = plan(&plugin, "container");
    let Action::EnsureContainer(c) = &planned.actions[0] else { panic!("{:?}", planned.actions) };
    assert!(!c.init);
    assert_eq!(c.stop_signal, None);
}
