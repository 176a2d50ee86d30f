//! The example projects, resolved: `hsm plan --json` and the text plan of each,
//! snapshot-tested, with fake secret values that must appear nowhere in the output.

#[path = "../support/mod.rs"]
mod support;

/// The values the examples' variables get; none may appear in any output.
const SECRETS: [(&str, &str); 3] = [
    ("CORP_DB_PASSWORD", "corp-db-s3cret-value"),
    ("QDRANT_API_KEY", "qdrant-api-s3cret-value"),
    ("REPORTS_DB_PASSWORD", "reports-s3cret-value"),
];

fn plan(example: &str, json: bool) -> String {
    let dir = support::repo_root().join("examples").join(example);
    let dir_s = dir.display().to_string();
    let mut args = vec!["--color", "never", "-C", &dir_s, "plan"];
    if json {
        args.push("--json");
    }
    let run = support::hsm(&args, &SECRETS);
    assert_eq!(run.code, 0, "hsm plan failed for {example}:\n{}", run.stderr);
    assert_eq!(run.stderr, "", "{example} wrote to stderr");
    for (name, value) in SECRETS {
        assert!(!run.stdout.contains(value), "the value of {name} leaked into the plan of {example}");
    }
    if json {
        serde_json::from_str::<serde_json::Value>(&run.stdout).expect("plan --json prints JSON");
    }
    support::filter_paths(&run.stdout, &dir)
}

fn check(example: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(support::repo_root().join("tests/cli/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        insta::assert_snapshot!(format!("{example}.json"), plan(example, true));
        insta::assert_snapshot!(format!("{example}.txt"), plan(example, false));
    });
}

#[test]
fn shared_managed() {
    check("shared-managed");
}

#[test]
fn shared_external() {
    check("shared-external");
}

#[test]
fn hybrid() {
    check("hybrid");
}

#[test]
fn editable_stack() {
    check("editable-stack");
}

#[test]
fn zero_leak_secrets() {
    check("zero-leak-secrets");
}

#[test]
fn every_example_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(support::repo_root().join("examples"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("hsm.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["editable-stack", "hybrid", "shared-external", "shared-managed", "third-party-plugin", "zero-leak-secrets"]
    );
}

/// A project that does not select a profile never needs that profile's variables.
#[test]
fn unused_profiles_need_no_variables() {
    let dir = support::repo_root().join("examples/shared-managed");
    let run = support::hsm(&["-C", &dir.display().to_string(), "validate"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn third_party_plugin() {
    check("third-party-plugin");
}
