//! `hsm completions` and the hidden `hsm man`, run through the real binary: the
//! scripts and the manual page are generated from the command line's definition,
//! and dynamic completion offers the project's package and service names.

#[path = "../support/mod.rs"]
mod support;

const SUBCOMMANDS: [&str; 6] = ["init", "validate", "sync", "env", "logs", "completions"];

#[test]
fn completion_scripts_cover_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = support::hsm(&["completions", shell], &[]);
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{shell}");
        assert!(run.stdout.len() > 1000, "{shell}: {}", run.stdout);
        assert!(run.stdout.contains("hsm"), "{shell}");
        for sub in SUBCOMMANDS {
            assert!(run.stdout.contains(sub), "{shell} script lacks `{sub}`");
        }
    }
    let bash = support::hsm(&["completions", "bash"], &[]).stdout;
    assert!(bash.contains("complete -F _hsm"), "{bash}");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let run = support::hsm(&["completions", "tcsh"], &[]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""));
    assert!(run.stderr.contains("invalid value 'tcsh'"), "{}", run.stderr);
    assert_eq!(support::hsm(&["completions"], &[]).code, 2);
}

#[test]
fn the_dynamic_script_calls_back_into_hsm() {
    let run = support::hsm(&["completions", "bash", "--dynamic"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("HSM_COMPLETE=\"bash\""), "{}", run.stdout);
    assert!(run.stdout.contains("_clap_complete_hsm hsm"), "{}", run.stdout);
    for shell in ["zsh", "fish", "powershell"] {
        let run = support::hsm(&["completions", shell, "--dynamic"], &[]);
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stdout.contains("HSM_COMPLETE"), "{shell}: {}", run.stdout);
    }
}

/// What hsm offers for the last word of `words` (after `hsm -C DIR`), as the bash
/// script asks for it.
fn complete(dir: &std::path::Path, words: &[&str]) -> Vec<String> {
    let d = dir.display().to_string();
    let mut args = vec!["--", "hsm", "-C", d.as_str()];
    args.extend_from_slice(words);
    let index = (args.len() - 2).to_string();
    let run = support::hsm(&args, &[("HSM_COMPLETE", "bash"), ("_CLAP_COMPLETE_INDEX", &index), ("_CLAP_IFS", "\n")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout.lines().map(str::to_string).collect()
}

#[test]
fn dynamic_completion_offers_the_projects_packages_and_services() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("core")).unwrap();
    std::fs::write(
        dir.path().join("hsm.yaml"),
        "version: 1\nproject: app\npackages:\n  - billing-service\n  - { name: core, editable: ./core }\nservices:\n  chunker: {}\n",
    )
    .unwrap();
    let packages = complete(dir.path(), &["env", ""]);
    let names: Vec<&str> = packages.iter().map(String::as_str).filter(|w| !w.starts_with('-')).collect();
    // billing-service implies auth-service.
    assert_eq!(names, ["auth-service", "billing-service", "core"]);
    assert_eq!(complete(dir.path(), &["run", "bi"]), ["billing-service"]);
    let services = complete(dir.path(), &["logs", ""]);
    let names: Vec<&str> = services.iter().map(String::as_str).filter(|w| !w.starts_with('-')).collect();
    assert_eq!(names, ["chunker", "postgres"]);
}

#[test]
fn the_man_page_is_roff_and_hidden_from_help() {
    let run = support::hsm(&["man"], &[]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    let th = run.stdout.lines().find(|l| l.starts_with(".TH")).expect("a .TH line");
    assert!(th.starts_with(".TH hsm 1 "), "{th}");
    assert!(run.stdout.contains(".SH NAME\nhsm \\- Sets up"), "{}", run.stdout);
    assert!(run.stdout.contains("sync"), "{}", run.stdout);
    assert!(run.stdout.contains("completions"), "{}", run.stdout);
    let help = support::hsm(&["--help"], &[]);
    assert!(help.stdout.contains("  completions "), "{}", help.stdout);
    assert!(!help.stdout.contains("  man "), "{}", help.stdout);
}
