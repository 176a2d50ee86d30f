//! Helpers shared by the CLI tests: run the real `hsm` binary hermetically (empty
//! environment plus what the test passes) and format its outcome for snapshots.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// What one run of `hsm` did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `hsm` with `args` in a clean environment holding only `env`.
pub fn hsm(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm"));
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run hsm");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

impl Run {
    /// Exit code, stdout (when not empty) and stderr, with `dir` shown as `[DIR]`
    /// and the repository as `[REPO]`.
    pub fn report(&self, dir: &Path) -> String {
        let mut s = format!("exit code: {}\n", self.code);
        if !self.stdout.is_empty() {
            s.push_str("----- stdout -----\n");
            s.push_str(&self.stdout);
        }
        s.push_str("----- stderr -----\n");
        s.push_str(&self.stderr);
        filter_paths(&s, dir)
    }
}

/// Replaces machine-specific paths.
pub fn filter_paths(s: &str, dir: &Path) -> String {
    let dir = dir.display().to_string();
    let repo = repo_root().display().to_string();
    s.replace(&dir, "[DIR]").replace(&repo, "[REPO]")
}
