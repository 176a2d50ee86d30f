//! Invalid inputs, as data: each folder under `tests/invalid/` holds a project that
//! `hsm validate` must reject, and next to it (`expected.snap`) the exact exit code
//! and stderr it must produce. One test per folder.
//!
//! A case may add `args` (the arguments, one per line, instead of `validate`) and
//! `env` (`KEY=value` lines: the process environment; nothing else is inherited).
//! To accept new or changed output: `INSTA_UPDATE=always cargo nextest run -p hsm
//! --test invalid`, then review the diff of the `.snap` files.

#[path = "../support/mod.rs"]
mod support;

use std::path::Path;

use libtest_mimic::{Arguments, Failed, Trial};

fn main() {
    let args = Arguments::from_args();
    let root = support::repo_root().join("tests/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("tests/invalid")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    let trials = cases
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            Trial::test(name, move || check(&dir))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

fn check(dir: &Path) -> Result<(), Failed> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let mut args: Vec<String> = vec!["--color".into(), "never".into(), "-C".into(), dir.display().to_string()];
    match read("args") {
        Some(a) => args.extend(a.lines().filter(|l| !l.trim().is_empty()).map(str::to_string)),
        None => args.push("validate".into()),
    }
    let env: Vec<(String, String)> = read("env")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = support::hsm(&arg_refs, &env_refs);
    if run.code == 0 {
        return Err(format!("`hsm {}` accepted an invalid project", args.join(" ")).into());
    }
    let report = run.report(dir);
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_description(format!("hsm validate in tests/invalid/{}", dir.file_name().unwrap().to_string_lossy()));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!("expected", report))
    }))
    .map_err(|e| Failed::from(e.downcast_ref::<String>().cloned().unwrap_or_else(|| "snapshot mismatch".into())))
}
