//! A hostile plugin (`tests/plugins/hostile-env`, built for WIT 0.3.0 without the
//! SDK) tries to reach the user's machine through the environment hsm gives a
//! package, and the user's terminal through what hsm prints. Each attempt is
//! refused before anything runs, or shown escaped; `hsm run`, `hsm env` and
//! `hsm sync` agree, since they share one checked plan.

use crate::stack::Project;
use crate::third_party::{built, project_with_plugin, sha256};

fn hostile_env() -> Vec<u8> {
    std::fs::read(built("tests/plugins/hostile-env", "hsm-fixture-hostile-env")).unwrap()
}

/// A project whose package `app` implies `service` of the hostile plugin, which is
/// granted everything it declares.
fn project(service: &str) -> Project {
    let wasm = hostile_env();
    let p = Project::new("escape");
    let digest = sha256(&wasm);
    project_with_plugin(
        &p,
        "hostile-env",
        &wasm,
        &format!(
            "services:\n  {service}: {{ kind: hostile-env }}\npackages:\n  app:\n    implies: [{{ service: {service} }}]\n"
        ),
        &format!("packages: [app]\nplugins:\n  hostile-env:\n    sha256: {digest}\n    grant: [containers, files]\n"),
    );
    p
}

#[test]
fn a_plugin_cannot_reach_the_host_through_a_packages_environment() {
    let cases = [
        (
            "git-config",
            "may not set `XDG_CONFIG_HOME` in package `app`'s environment for service `git-config`: `XDG_CONFIG_HOME` points programs at configuration",
        ),
        (
            "undeclared",
            "may not set `INNOCENT_LOOKING` in package `app`'s environment for service `undeclared`: it does not declare that variable (it declares `APP_URL`, `APP_SETTINGS`, `APP_NOTE`)",
        ),
        ("into-hsm", "its value `.hsm/hostile-env/settings.toml` points into `.hsm/`, where plugins write files"),
        (
            "newline",
            "may not set `APP_URL` in package `app`'s environment for service `newline`: its value holds the control or invisible character '\\n'",
        ),
        ("terminal", "its value holds the control or invisible character '\\u{1b}'"),
        ("long-name", "it is not a variable name hsm accepts"),
        ("bidi", "its value holds the control or invisible character '\\u{202e}'"),
        ("invisible-hsm", "its value holds the control or invisible character '\\u{200c}'"),
        ("at-hsm", "its value `@.hsm/hostile-env/args` points into `.hsm/`"),
        // One name of each family no plugin may set, whatever it declares.
        ("var-ld-preload", "`LD_PRELOAD` makes programs load or run code"),
        ("var-ps1", "`PS1` makes programs load or run code"),
        ("var-git-ssh-command", "`GIT_SSH_COMMAND` names a program that other programs run"),
        ("var-kubeconfig", "`KUBECONFIG` points programs at configuration"),
        ("var-google-application-credentials", "tells programs where to find or fetch credentials"),
        ("var-requests-ca-bundle", "changes which certificates programs trust"),
        ("var-https-proxy", "sends programs' connections through a proxy"),
        ("var-uv-index-url", "chooses where package managers and model hubs download from"),
    ];
    for (service, message) in cases {
        let p = project(service);
        for args in [&["validate"][..], &["plan"], &["sync"], &["env", "app"], &["run", "app", "--", "touch", "RAN"]] {
            let run = p.hsm(args).expect(2);
            assert!(run.stderr.contains("plugin `hostile-env` "), "{service} {args:?}: {}", run.stderr);
            assert!(run.stderr.contains(message), "{service} {args:?}: {}", run.stderr);
            assert!(!run.stderr.contains('\u{1b}'), "{service} {args:?}: a raw ESC reached the terminal");
        }
        assert!(!p.dir.path().join("RAN").exists(), "{service}: the command ran");
        assert!(!p.dir.path().join(".hsm/hostile-env").exists(), "{service}: the plugin's files were written");
        assert!(p.containers().is_empty(), "{service}: a container was created");
    }

    // A declared variable with a plain value is the plugin's to set, and a
    // container's multi-line variable (a certificate, say) is the container's.
    let p = project("ok");
    let run = p.hsm(&["env", "app"]).expect(0);
    assert_eq!(run.stdout, "APP_URL=http://127.0.0.1:1/\n");
    let p = project("container-env");
    assert!(p.hsm(&["plan"]).expect(0).stdout.contains("env MODE=a\\nLD_PRELOAD=/x.so"));

    // Pinned by its registry but not reviewed in hsm.yaml: no environment at all.
    let wasm = hostile_env();
    let p = Project::new("unreviewed");
    project_with_plugin(
        &p,
        "hostile-env",
        &wasm,
        "services:\n  ok: { kind: hostile-env }\npackages:\n  app:\n    implies: [{ service: ok }]\n",
        "packages: [app]\n",
    );
    let run = p.hsm(&["env", "app"]).expect(2);
    assert!(run.stderr.contains("no entry of hsm.yaml reviews this plugin"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("`plugins.hostile-env.sha256: {}`", sha256(&wasm))), "{}", run.stderr);
    assert!(run.stderr.contains("sets the variables `APP_URL`, `APP_SETTINGS`, `APP_NOTE`"), "{}", run.stderr);
}

#[test]
fn what_a_plugin_says_reaches_the_terminal_escaped_and_attributed() {
    // Its error messages, in every command that reports them.
    for (service, said, code) in [
        (
            "terminal-invalid",
            "plugin `hostile-env` says: \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{1b}[1A\\r all good\\nerror: hsm itself says",
            2,
        ),
        ("terminal-conflict", "plugin `hostile-env` says: \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{1b}[1A\\r all good", 2),
        // A malformed answer is the plugin's failure, not bad input.
        ("terminal-port", "host-port reference to container `\\u{1b}]0;owned\\u{7}", 1),
    ] {
        let p = project(service);
        for args in [&["validate"][..], &["plan"], &["plan", "--json"], &["-vv", "sync"]] {
            let run = p.hsm(args).expect(code);
            assert!(run.stderr.contains(said), "{service} {args:?}: {}", run.stderr);
            assert!(!run.stderr.contains(['\u{1b}', '\u{7}', '\r']), "{service} {args:?}: {:?}", run.stderr);
            // Its words stay on the line hsm gave them: no line of its own starts with `error:`.
            assert!(!run.stderr.lines().any(|l| l.starts_with("error: hsm itself")), "{service} {args:?}");
        }
    }

    // Its merged configuration and its containers' commands, in text and JSON, at
    // every verbosity.
    for service in ["terminal-merged", "terminal-command"] {
        let p = project(service);
        for args in [&["plan"][..], &["-v", "plan"], &["-vv", "plan"], &["plan", "--json"], &["-vv", "plan", "--json"]]
        {
            let run = p.hsm(args).expect(0);
            let all = format!("{}{}", run.stdout, run.stderr);
            assert!(!all.contains(['\u{1b}', '\u{7}', '\r']), "{service} {args:?}: {all:?}");
            assert!(!all.contains("\\u001b"), "{service} {args:?}: JSON hides a raw ESC: {all}");
            assert!(run.stdout.contains("\\u{1b}]0;owned"), "{service} {args:?}: {}", run.stdout);
        }
    }
}

#[test]
fn grants_that_give_nothing_are_warned_about_and_impossible_ones_refused() {
    let wasm = hostile_env();
    let digest = sha256(&wasm);
    let p = Project::new("grants");
    let write = |grant: &str| {
        project_with_plugin(
            &p,
            "hostile-env",
            &wasm,
            "services:\n  ok: { kind: hostile-env }\npackages:\n  app:\n    implies: [{ service: ok }]\n",
            &format!("packages: [app]\nplugins:\n  hostile-env:\n    sha256: {digest}\n{grant}"),
        );
    };

    // A capability it does not declare, and a variable it does not declare.
    write("    grant: [containers, exec]\n    env: [APP_URL, OTHER]\n");
    let run = p.hsm(&["validate"]).expect(0);
    assert!(
        run.stderr.contains("warning: plugin `hostile-env` does not declare `exec`, so this grant gives it nothing"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--> hsm.yaml:9:25"), "located: {}", run.stderr);
    assert!(run.stderr.contains("and `OTHER` is not one of them: this grant gives it nothing"), "{}", run.stderr);
    assert!(!run.stderr.contains("`APP_URL` is not one of them"), "{}", run.stderr);
    assert!(p.hsm(&["-q", "validate"]).expect(0).stderr.is_empty(), "--quiet silences warnings");

    // A variable no plugin may set can't be granted: bad input, located.
    write("    grant: [containers]\n    env: [LD_PRELOAD]\n");
    let run = p.hsm(&["plan"]).expect(2);
    assert!(run.stderr.contains("error: `LD_PRELOAD` makes programs load or run code"), "{}", run.stderr);
    assert!(run.stderr.contains("--> hsm.yaml:10:11"), "located: {}", run.stderr);
}
