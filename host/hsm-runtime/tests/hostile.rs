//! Hostile components, built from source, against the real runtime: every attack
//! is stopped within its limit with an error naming the plugin and the call, and
//! the host keeps working.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use hsm_model::text::Encoding;
use hsm_model::{Piece, SecretStore, Sensitive, Text, Value};
use hsm_plan::{Consumer, Mode};
use hsm_runtime::*;

fn fixture(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/plugins");
        ["hostile", "hostile-bytes", "kind-clash", "future-wit", "name-clash", "needs-import"]
            .iter()
            .map(|f| {
                let path = hsm_sdk::testing::build_plugin(format!("{dir}/{f}"), &format!("hsm-fixture-{f}"))
                    .unwrap_or_else(|e| panic!("{e}"));
                (f.to_string(), path)
            })
            .collect()
    });
    let path = &built.iter().find(|(n, _)| n == name).expect("a fixture of that name").1;
    std::fs::read(path).unwrap()
}

fn limits() -> Limits {
    Limits { call_timeout: Duration::from_millis(300), memory_bytes: 48 << 20, max_result_bytes: 1 << 20 }
}

fn hostile() -> Plugin {
    PluginHost::new(limits()).load_component(&fixture("hostile"), PluginSource::File("hostile.wasm".into())).unwrap()
}

fn merge(plugin: &Plugin, service: &str, params: &Value) -> Result<Value, MergeFailure> {
    plugin.merge(&MergeInput {
        service,
        kind: "hostile",
        defaults: params,
        contributions: vec![ContributionInput { from: Consumer::Project, origin: "hsm.yaml:1:1".into(), params }],
    })
}

fn call_error(plugin: &Plugin, service: &str) -> CallError {
    match merge(plugin, service, &Value::Null) {
        Err(MergeFailure::Call(e)) => e,
        other => panic!("`{service}` should fail the call, got {other:?}"),
    }
}

/// After any failure the same plugin still answers.
fn still_works(plugin: &Plugin) {
    assert_eq!(merge(plugin, "ok", &Value::Null).unwrap(), Value::Null);
}

#[test]
fn an_endless_loop_is_stopped_at_the_time_limit() {
    let plugin = hostile();
    let e = call_error(&plugin, "loop");
    assert_eq!(e.kind, CallErrorKind::Timeout(Duration::from_millis(300)));
    assert_eq!(
        e.to_string(),
        "plugin `hostile` failed in `merge`: it ran longer than the 300 ms limit and was stopped"
    );
    still_works(&plugin);
}

#[test]
fn a_memory_bomb_is_stopped_at_the_memory_limit() {
    let plugin = hostile();
    let e = call_error(&plugin, "bomb");
    assert_eq!(e.kind, CallErrorKind::OutOfMemory(48 << 20));
    assert_eq!(e.to_string(), "plugin `hostile` failed in `merge`: it tried to use more than the 48 MiB memory limit");
    still_works(&plugin);
}

#[test]
fn an_oversized_result_is_refused() {
    let plugin = hostile();
    let e = call_error(&plugin, "big");
    assert_eq!(e.kind, CallErrorKind::TooLarge(1 << 20));
    assert_eq!(e.to_string(), "plugin `hostile` failed in `merge`: it returned more than the 1024 KiB output limit");
    still_works(&plugin);
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let plugin = hostile();
    let e = call_error(&plugin, "trap");
    let CallErrorKind::Trap { message, stderr } = &e.kind else { panic!("expected a trap, got {e}") };
    assert!(message.contains("unreachable"), "{message}");
    assert!(stderr.contains("hostile plugin panics on purpose"), "{stderr}");
    assert!(e.to_string().starts_with("plugin `hostile` failed in `merge`: it crashed: "));
    still_works(&plugin);
}

#[test]
fn a_stack_overflow_is_a_trap_not_a_crash_of_the_host() {
    let plugin = hostile();
    let e = call_error(&plugin, "stack");
    let CallErrorKind::Trap { message, .. } = &e.kind else { panic!("expected a trap, got {e}") };
    assert!(message.contains("stack"), "{message}");
    still_works(&plugin);
}

/// The epoch stops a plugin's own code, not the host blocking for it: a plugin that
/// sleeps must not hang hsm.
#[test]
fn a_plugin_that_sleeps_is_stopped_not_waited_for() {
    let plugin = hostile();
    let started = std::time::Instant::now();
    let e = call_error(&plugin, "sleep");
    assert!(started.elapsed() < Duration::from_secs(2), "it waited {:?}", started.elapsed());
    let CallErrorKind::Trap { message, .. } = &e.kind else { panic!("expected a trap, got {e}") };
    assert!(message.contains("plugins may not wait"), "{message}");
    still_works(&plugin);
}

/// It prints more than the 256 KiB hsm keeps: the end, its panic, is what is kept.
#[test]
fn a_plugin_that_prints_a_lot_still_gets_its_panic_reported() {
    // 20,000 writes through WASI take longer than 300 ms in a debug build on a busy
    // machine: this is about what is kept of the output, not about time.
    let limits = Limits { call_timeout: Duration::from_secs(20), ..limits() };
    let plugin =
        PluginHost::new(limits).load_component(&fixture("hostile"), PluginSource::File("hostile.wasm".into())).unwrap();
    let e = call_error(&plugin, "chatty");
    let CallErrorKind::Trap { stderr, .. } = &e.kind else { panic!("expected a trap, got {e}") };
    assert!(stderr.contains("the chatty plugin's last words"), "{stderr}");
    assert!(stderr.lines().count() <= 12, "only the end is kept");
    // Quoted under hsm's line, so none of it can pass for a line of hsm's.
    let shown = e.to_string();
    let mut lines = shown.lines();
    assert!(lines.next().unwrap().ends_with("the end of what it printed:"), "{shown}");
    assert!(lines.all(|l| l.starts_with("  | ")), "{shown}");
}

#[test]
fn garbage_results_are_refused() {
    let plugin = hostile();
    assert_eq!(
        call_error(&plugin, "forged-handle").kind,
        CallErrorKind::Malformed("secret handle 99 was not given to it in this call".into())
    );
    assert_eq!(
        call_error(&plugin, "cycle").kind,
        CallErrorKind::Malformed("tree node 0 comes before its parent".into())
    );
    still_works(&plugin);
}

/// A plugin built for 0.2.0, where a tree is bytes: the host reads back its own
/// encoding (secrets by handle included), and refuses bytes that break the format.
#[test]
fn encoded_trees_from_a_plugin_are_checked() {
    let plugin = PluginHost::new(limits())
        .load_component(&fixture("hostile-bytes"), PluginSource::File("hostile-bytes.wasm".into()))
        .unwrap();
    assert_eq!(plugin.wit_version(), "0.2.0");
    let mut store = SecretStore::new();
    let params = Value::Map(
        [
            ("password".to_string(), secret(&mut store, "pw-TOP-SECRET", "${DB_PASSWORD}")),
            ("list".to_string(), Value::List(vec![Value::Int(-7), Value::Float(0.5), Value::Bool(true)])),
        ]
        .into_iter()
        .collect(),
    );
    assert_eq!(merge(&plugin, "echo", &params).unwrap(), params, "a tree comes back as it went");
    let seen = merge(&plugin, "spy", &params).unwrap();
    let seen = seen.as_plain_str().unwrap();
    assert!(seen.contains("password") && seen.contains("hsm.yaml:1:1"), "the spy sees the trees: {seen}");
    assert!(!seen.contains("TOP-SECRET") && !seen.contains("DB_PASSWORD"), "{seen}");
    for (service, expected) in [
        ("forged-handle", "secret handle 99 was not given to it in this call"),
        ("unknown-tag", "a tree holds an unknown tag 0x42"),
        ("trailing", "a tree has bytes after its value (1)"),
        ("truncated", "a tree ends in the middle of a value"),
        ("not-utf8", "a tree holds a string that is not UTF-8"),
        ("twice", "key `k` appears twice in a map"),
    ] {
        let error = call_error(&plugin, service);
        assert_eq!((error.plugin.as_str(), error.call), ("hostile-bytes", "merge"));
        assert_eq!(error.kind, CallErrorKind::Malformed(expected.into()), "{service}");
    }
    assert_eq!(call_error(&plugin, "big").kind, CallErrorKind::TooLarge(limits().max_result_bytes));
    assert_eq!(merge(&plugin, "ok", &Value::Null).unwrap(), Value::Null);
}

fn secret(store: &mut SecretStore, value: &str, label: &str) -> Value {
    let id = store.insert(Sensitive::new(value.into()));
    Value::Text(Text::from_pieces([Piece::Secret { id, label: label.into(), encoding: Encoding::Raw }]))
}

/// A plugin that reports everything it received sees references, never values,
/// and WASI gives it nothing: no files, no environment, no network, no clock.
#[test]
fn a_spy_sees_no_secret_and_no_ambient_authority() {
    let plugin = hostile();
    let mut store = SecretStore::new();
    let params = Value::Map(
        [
            ("api_key".to_string(), secret(&mut store, "qk-TOP-SECRET-1", "${QDRANT_API_KEY}")),
            ("password".to_string(), secret(&mut store, "pw-TOP-SECRET-2", "${DB_PASSWORD:-x}")),
        ]
        .into_iter()
        .collect(),
    );
    let report = merge(&plugin, "spy", &params).unwrap();
    let field = |k: &str| {
        report.get(k).and_then(Value::as_plain_str).unwrap_or_else(|| panic!("no `{k}` in {report:?}")).to_string()
    };
    let received = field("received");
    assert!(received.contains("Secret(SecretUse { handle: 0"), "{received}");
    for value in store.values() {
        assert!(!received.contains(value.expose()), "the plugin saw a secret value");
        assert!(!format!("{report:?}").contains(value.expose()));
    }
    assert!(!received.contains("QDRANT_API_KEY"), "not even the variable's name reaches the plugin");
    for key in ["read_file", "read_dir_root", "read_dir_cwd", "write_file", "connect_local", "connect_remote", "udp"] {
        assert!(field(key).starts_with("error: "), "{key}: {}", field(key));
    }
    assert_eq!(field("env"), "0 variables");
    assert_eq!(field("args"), "0 arguments");
    assert_eq!(field("clock"), "0");

    let settings = params.clone();
    let planned = plugin
        .plan(&PlanInput {
            project: "p",
            service: "spy",
            kind: "hostile",
            config: &params,
            profile: ProfileInput { name: "external", mode: Mode::External, settings: &settings },
            consumers: vec![ConsumerInput { consumer: Consumer::Project, params: &params }],
            host_address: "127.0.0.1",
        })
        .unwrap();
    let seen = planned.env[0].vars[0].1.display();
    assert!(seen.contains("handle"), "{seen}");
    for value in store.values() {
        assert!(!seen.contains(value.expose()));
    }
}

fn plan_of(plugin: &Plugin, service: &str) -> PlannedService {
    plugin
        .plan(&PlanInput {
            project: "p",
            service,
            kind: "hostile",
            config: &Value::Null,
            profile: ProfileInput { name: "managed", mode: Mode::Managed, settings: &Value::Null },
            consumers: vec![],
            host_address: "127.0.0.1",
        })
        .unwrap()
}

fn refusal(plugin: &Plugin, service: &str, grants: &Grants) -> Refusal {
    let planned = plan_of(plugin, service);
    let ctx = CheckContext { service, consumers: &[], packages: &[], renames: &[] };
    check_plan(plugin.info(), grants, &ctx, &planned).expect_err("the plan must be refused")
}

#[test]
fn actions_outside_what_any_grant_allows_are_refused() {
    let plugin = hostile();
    let all = Grants::declared(plugin.info());
    let cases = [
        (
            "bind-root",
            "plugin `hostile` may not bind-mount `/` at `/host` for service `bind-root`: `/` must stay inside `.hsm/hostile/` (a relative path without `..`)",
        ),
        (
            "foreign-exec",
            "plugin `hostile` may not exec in container `other-project-postgres-server` for service `foreign-exec`: `other-project-postgres-server` is not one of this service's containers",
        ),
        (
            "wide-port",
            "plugin `hostile` may not publish port 80 on 0.0.0.0 for service `wide-port`: ports bind to 127.0.0.1 unless hsm.yaml allows `0.0.0.0` for this service",
        ),
        (
            "uv-outside",
            "plugin `hostile` may not install `passwd` from `/etc` for service `uv-outside`: the project does not ask for that package from that source",
        ),
        (
            "file-outside",
            "plugin `hostile` may not write `../../etc/cron.d/evil` for service `file-outside`: `../../etc/cron.d/evil` must stay inside `.hsm/hostile/` (a relative path without `..`)",
        ),
    ];
    for (service, message) in cases {
        assert_eq!(refusal(&plugin, service, &all).to_string(), message);
    }
    let more = [
        ("bind-rw", "bind mounts are read-only; keep data the container writes in a named volume"),
        ("uv-empty", "a uv install must hold every package the project asks for, once"),
        ("probe-inject", "an HTTP probe's path starts with `/` and holds no spaces or control characters"),
        ("long-wait", "a wait lasts at most 10 minutes, and tries again within that time"),
    ];
    let one_package =
        [hsm_plan::PythonPackage { name: "api".into(), source: hsm_plan::PackageSource::Pypi("api".into()) }];
    for (service, reason) in more {
        let planned = plan_of(&plugin, service);
        let ctx = CheckContext { service, consumers: &[], packages: &one_package, renames: &[] };
        let r = check_plan(plugin.info(), &all, &ctx, &planned).expect_err("refused");
        assert_eq!(r.reason, reason, "{service}: {r}");
    }
    // A variable that steers how programs start, through the environment `hsm run` sets.
    let planned = plugin
        .plan(&PlanInput {
            project: "p",
            service: "env-bash",
            kind: "hostile",
            config: &Value::Null,
            profile: ProfileInput { name: "managed", mode: Mode::Managed, settings: &Value::Null },
            consumers: vec![ConsumerInput { consumer: Consumer::Project, params: &Value::Null }],
            host_address: "127.0.0.1",
        })
        .unwrap();
    let ctx = CheckContext { service: "env-bash", consumers: &[Consumer::Project], packages: &[], renames: &[] };
    let r = check_plan(plugin.info(), &Grants::default(), &ctx, &planned).expect_err("refused");
    assert_eq!(
        r.to_string(),
        "plugin `hostile` may not set `BASH_ENV` in the project's environment for service `env-bash`: `BASH_ENV` makes programs load or run code (a loader, a shell's or an interpreter's startup, a search path, compiler flags), so no plugin may set it (whatever it declares)"
    );
    let mut open = all.clone();
    open.host_ips.insert("0.0.0.0".into());
    let planned = plan_of(&plugin, "wide-port");
    check_plan(
        plugin.info(),
        &open,
        &CheckContext { service: "wide-port", consumers: &[], packages: &[], renames: &[] },
        &planned,
    )
    .expect("0.0.0.0 is fine once the user allows it");
}

#[test]
fn an_action_needs_its_capability_granted() {
    let plugin = hostile();
    let only_containers = Grants { capabilities: BTreeSet::from([Capability::Containers]), ..Grants::default() };
    for (service, capability) in
        [("exec", Capability::Exec), ("files", Capability::Files), ("probe", Capability::NetworkProbe)]
    {
        let r = refusal(&plugin, service, &only_containers);
        assert_eq!(r.missing, Some(capability), "{r}");
        assert!(r.reason.contains("is not granted to it (grant it in hsm.yaml under `plugins.hostile.grant`)"), "{r}");
    }
    let nothing = Grants::default();
    assert_eq!(refusal(&plugin, "container", &nothing).missing, Some(Capability::Containers));
}

#[test]
fn a_plugin_for_an_unknown_wit_version_is_refused() {
    let err = PluginHost::new(limits())
        .load_component(&fixture("future-wit"), PluginSource::File("future.wasm".into()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`future.wasm` was built for `hsm:plugin@9.0.0`, which this hsm does not support (it loads `0.1.0`, `0.2.0`, `0.3.0`, `0.4.0`)"
    );
}

#[test]
fn a_malformed_component_is_refused() {
    let err = PluginHost::new(limits())
        .load_component(b"\0asm this is not a component", PluginSource::File("junk.wasm".into()))
        .unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
    assert!(err.to_string().starts_with("`junk.wasm` is not a valid WebAssembly component: "), "{err}");
}

#[test]
fn a_second_plugin_may_describe_a_kind_already_served() {
    // Loading works; refusing the clash is the catalogue's job (hsm-cli), tested there.
    let clash = PluginHost::new(limits())
        .load_component(&fixture("kind-clash"), PluginSource::File("clash.wasm".into()))
        .unwrap();
    assert_eq!(clash.info().kinds, ["postgres"]);
}

/// A stand-in for the user's key: a MAC over the parts with a fixed secret.
#[derive(Debug)]
struct TestKey(&'static [u8]);

impl Authenticator for TestKey {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(self.0);
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize().into()
    }
}

#[test]
fn the_compile_cache_serves_only_entries_hsm_wrote() {
    let host = PluginHost::new(limits());
    let dir = tempfile::tempdir().unwrap();
    let bytes = fixture("kind-clash");
    let key = TestKey(b"user key one");
    let cache = CompileCache::new(dir.path(), &host, &key);
    let source = || PluginSource::File("clash.wasm".into());

    let (first, outcome) = cache.load(&host, &bytes, source()).unwrap();
    assert_eq!(outcome, CacheOutcome::Compiled);
    assert!(!first.precompiled());
    let (second, outcome) = cache.load(&host, &bytes, source()).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
    assert!(second.precompiled());
    assert_eq!(second.info(), first.info());

    // Another user's key (or a planted entry) does not verify: compiled afresh.
    let other = TestKey(b"someone else");
    let (_, outcome) = CompileCache::new(dir.path(), &host, &other).load(&host, &bytes, source()).unwrap();
    assert_eq!(outcome, CacheOutcome::Replaced);

    // Another component's compiled code, planted under this component's digest
    // with a tag made by another key: never deserialized.
    let hostile_bytes = fixture("hostile");
    let (planted, _) = CompileCache::new(dir.path(), &host, &other).load(&host, &hostile_bytes, source()).unwrap();
    let entry = cache.dir().join(format!("{}.cwasm", first.sha256()));
    std::fs::copy(cache.dir().join(format!("{}.cwasm", planted.sha256())), &entry).unwrap();
    let (plugin, outcome) = cache.load(&host, &bytes, source()).unwrap();
    assert_eq!(outcome, CacheOutcome::Replaced);
    assert_eq!(plugin.info().name, "pg-impostor", "the planted code did not run");

    // A tampered entry is never deserialized.
    let (_, outcome) = cache.load(&host, &bytes, source()).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit, "the planted entry was replaced by a good one");
    let mut data = std::fs::read(&entry).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&entry, &data).unwrap();
    let (plugin, outcome) = cache.load(&host, &bytes, source()).unwrap();
    assert_eq!(outcome, CacheOutcome::Replaced);
    assert_eq!(plugin.info().name, "pg-impostor");
    assert_eq!(cache.load(&host, &bytes, source()).unwrap().1, CacheOutcome::Hit);
}

/// A plugin built for a WIT version that can't declare its variables (this one is
/// 0.1.0) may set only the variables hsm.yaml grants it by name; a consumer may
/// rename one, but not to a name no plugin may set.
#[test]
fn a_plugin_that_cannot_declare_its_variables_sets_only_those_granted() {
    let plugin = hostile();
    assert_eq!(plugin.info().variables, None);
    let planned = |vars: &[(&str, &str)]| PlannedService {
        actions: vec![],
        env: vec![hsm_plan::ConsumerEnv {
            consumer: Consumer::Project,
            vars: vars.iter().map(|(k, v)| (k.to_string(), Text::literal(*v))).collect(),
        }],
    };
    let check = |grants: &Grants, renames: &[Rename], vars: &[(&str, &str)]| {
        let ctx = CheckContext { service: "spy", consumers: &[Consumer::Project], packages: &[], renames };
        check_plan(plugin.info(), grants, &ctx, &planned(vars))
    };
    let declared = Grants::declared(plugin.info());
    let r = check(&declared, &[], &[("SPY", "x")]).expect_err("not granted");
    assert_eq!(r.missing_variable.as_deref(), Some("SPY"));
    assert!(r.reason.starts_with("the variable is not granted to it"), "{r}");
    let mut granted = declared.clone();
    granted.variables.insert("SPY".into());
    check(&granted, &[], &[("SPY", "x")]).expect("granted by name");

    // Renamed by the consumer: the new name stands for the granted one.
    let rename = |to: &str| Rename { consumer: Consumer::Project, from: "SPY".into(), to: to.into() };
    check(&granted, &[rename("MY_SPY")], &[("MY_SPY", "x")]).expect("a rename of a granted variable");
    check(&granted, &[], &[("MY_SPY", "x")]).expect_err("no rename, no grant");
    let r = check(&granted, &[rename("LD_PRELOAD")], &[("LD_PRELOAD", "/x.so")]).expect_err("never LD_PRELOAD");
    assert!(r.reason.contains("no plugin may set it"), "{r}");

    // Granting a name no plugin may set does not help either.
    let mut reckless = granted.clone();
    reckless.variables.insert("PYTHONSTARTUP".into());
    let r = check(&reckless, &[], &[("PYTHONSTARTUP", "/tmp/x.py")]).expect_err("never PYTHONSTARTUP");
    assert!(r.reason.starts_with("`PYTHONSTARTUP` makes programs load or run code"), "{r}");
}

/// One refusal per family of variables no plugin may set, whatever it declares or
/// is granted: code, programs, configuration, credentials, certificates, proxies,
/// package indexes.
#[test]
fn no_grant_lets_a_plugin_set_a_variable_that_steers_programs() {
    let plugin = hostile();
    let families = [
        ("LD_PRELOAD", "makes programs load or run code"),
        ("GIT_SSH_COMMAND", "names a program that other programs run"),
        ("XDG_CONFIG_HOME", "points programs at configuration"),
        ("AWS_SHARED_CREDENTIALS_FILE", "points programs at configuration"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "tells programs where to find or fetch credentials"),
        ("REQUESTS_CA_BUNDLE", "changes which certificates programs trust"),
        ("HTTPS_PROXY", "sends programs' connections through a proxy"),
        ("PIP_INDEX_URL", "chooses where package managers and model hubs download from"),
        ("UV_INDEX_URL", "chooses where package managers and model hubs download from"),
    ];
    for (name, reason) in families {
        let mut grants = Grants::declared(plugin.info());
        grants.variables.insert(name.into());
        let planned = PlannedService {
            actions: vec![],
            env: vec![hsm_plan::ConsumerEnv {
                consumer: Consumer::Project,
                vars: vec![(name.to_string(), Text::literal("/tmp/anything"))],
            }],
        };
        let ctx = CheckContext { service: "spy", consumers: &[Consumer::Project], packages: &[], renames: &[] };
        let r = check_plan(plugin.info(), &grants, &ctx, &planned).expect_err(name);
        assert!(r.reason.contains(reason), "{name}: {r}");
    }
}

/// A line break, NUL or terminal control in any environment a plugin gives is
/// refused when the plan is checked, naming the plugin.
#[test]
fn control_characters_in_values_are_refused() {
    let plugin = hostile();
    let mut grants = Grants::declared(plugin.info());
    grants.variables.insert("SPY".into());
    for value in ["a\nLD_PRELOAD=/x.so\nPATH=/nonexistent", "nul\0", "\u{1b}[2Jall good", "tab\there"] {
        let planned = PlannedService {
            actions: vec![],
            env: vec![hsm_plan::ConsumerEnv {
                consumer: Consumer::Project,
                vars: vec![("SPY".to_string(), Text::literal(value))],
            }],
        };
        let ctx = CheckContext { service: "spy", consumers: &[Consumer::Project], packages: &[], renames: &[] };
        let r = check_plan(plugin.info(), &grants, &ctx, &planned).expect_err(value);
        assert_eq!(r.plugin, "hostile");
        assert!(r.reason.contains("control or invisible character"), "{value:?}: {r}");
        assert!(!r.to_string().contains(|c: char| c.is_control()), "the refusal itself prints safely");
    }
}

/// A component that imports what hsm does not provide (here, a way to send data
/// out) is refused at load, naming the import and what hsm does provide.
#[test]
fn a_plugin_importing_what_hsm_does_not_provide_is_named_and_refused() {
    let host = PluginHost::new(limits());
    let e = host
        .load_component(&fixture("needs-import"), PluginSource::File("needy.wasm".into()))
        .expect_err("it can't be linked");
    let LoadError::Link { message, .. } = &e else { panic!("a link error, got {e}") };
    assert!(message.starts_with("it imports `example:exfil/send`, which hsm does not provide"), "{message}");
    assert!(message.contains("WASI 0.2's interfaces"), "{message}");
}
