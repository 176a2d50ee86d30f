//! Scenario 4, zero-leak secrets, end to end: a secret from `.env` reaches the
//! container that needs it and `hsm run`'s environment, and nothing else — no file
//! hsm writes, no output of any command at any verbosity, not the plan.

use std::path::Path;

use crate::stack::{Project, Run, docker};

/// Every file under `dir` (recursively), with its path.
fn files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files(&path, out);
        } else if kind.is_file() {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_secret_reaches_the_container_and_hsm_run_and_nothing_else() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let secret = format!("Zl3ak{nanos:x}q");
    let p = Project::new("leak");
    p.write(".env", &format!("# the user's file, not hsm's\nQDRANT_API_KEY={secret}\nLEAK_TOKEN={secret}\n"));
    p.setup(
        &["rag-api"],
        "services:\n  vector-db:\n    profile: external-prod\n  chunker:\n    params:\n      env: { CHUNKER_TOKEN: \"${LEAK_TOKEN}\" }\n",
    );

    let mut runs: Vec<(String, Run)> = Vec::new();
    let mut run = |args: &[&str]| {
        let r = p.hsm(args);
        assert!(r.code == 0, "{args:?} failed: {r:?}");
        runs.push((args.join(" "), r));
    };
    // Every verbosity sees a full run: created, waited for, ready.
    for flags in [&["-vv"][..], &["-v"], &[], &["-q"], &["--json"]] {
        run(&["down", "-q"]);
        let mut args = vec!["sync"];
        args.extend_from_slice(flags);
        run(&args);
    }
    for flags in [&["-vv"][..], &["-v"], &[], &["-q"], &["--json"]] {
        let mut args = vec!["sync"];
        args.extend_from_slice(flags);
        run(&args);
    }
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["status", "-vv"],
        &["env", "rag-api"],
        &["env", "rag-api", "--format", "shell"],
        &["env", "rag-api", "--format", "json"],
        &["env", "-vv"],
        &["plan"],
        &["plan", "--json"],
        &["plan", "-vv"],
        &["validate", "-vv"],
    ] {
        run(args);
    }

    // The secret is where it must be.
    let chunker = p.container("chunker", "server");
    let env = docker(&["inspect", "--format", "{{json .Config.Env}}", &chunker]);
    assert!(env.contains(&format!("CHUNKER_TOKEN={secret}")), "{env}");
    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &chunker]);
    assert!(!labels.contains(&secret), "{labels}");
    let in_run = p.hsm(&["run", "rag-api", "--", "env"]).expect(0);
    assert!(in_run.stdout.contains(&format!("QDRANT_API_KEY={secret}\n")), "{}", in_run.stdout);
    assert!(!in_run.stderr.contains(&secret));
    let revealed = p.hsm(&["env", "rag-api", "--reveal"]).expect(0);
    assert!(revealed.stdout.contains(&format!("QDRANT_API_KEY={secret}")), "--reveal prints values");
    assert!(!revealed.stderr.contains(&secret));

    // And nowhere else.
    for (args, r) in &runs {
        assert!(!r.stdout.contains(&secret), "`hsm {args}` printed the secret on stdout:\n{}", r.stdout);
        assert!(!r.stderr.contains(&secret), "`hsm {args}` printed the secret on stderr:\n{}", r.stderr);
    }
    let mut written = Vec::new();
    files(p.dir.path(), &mut written);
    files(p.data.path(), &mut written);
    files(p.cache.path(), &mut written);
    let env_file = p.dir.path().join(".env").display().to_string();
    assert!(written.iter().any(|(path, _)| path.ends_with(".hsm/state.json")), "the state was searched");
    for (path, bytes) in &written {
        if *path != env_file {
            assert!(!contains(bytes, secret.as_bytes()), "{path} holds the secret");
        }
    }
    // The verbose runs did show what hsm did (so the search above means something).
    let vv = &runs.iter().find(|(a, _)| a == "sync -vv").unwrap().1;
    assert!(vv.stderr.contains("docker: create container"), "{}", vv.stderr);
    assert!(vv.stderr.contains("chunker is ready"), "{}", vv.stderr);
}
