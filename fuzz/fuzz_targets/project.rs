//! Fuzzes loading a project as `hsm validate` and `hsm plan` do: `hsm.yaml`, a
//! registry file and a `.env` file (the input split at NUL bytes, in that order),
//! written into a temporary folder, then loaded, resolved (which interpolates every
//! value the project uses) and every diagnostic rendered with its source lines.
//! Whatever the files say, the answer is a configuration or diagnostics: never a
//! panic, a hang or unbounded memory.
//!
//! The registry text is written both as `registry.yaml` and as `registry/main.yaml`,
//! so `registries: [registry.yaml]` and `registries: [registry]` both find it. Git
//! registries fail without a cache folder (no network). An input that could make
//! the loader read a device or `/proc` (`env_file: /dev/zero`) is skipped: that
//! would fuzz the machine, not hsm.
#![no_main]

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use hsm_config::{GitOptions, LoadOptions};
use hsm_model::Sources;
use hsm_resolve::ResolveOptions;
use libfuzzer_sys::fuzz_target;

/// The folder the files are written to, the same for every run.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let path = hsm_fuzz::scratch_dir("hsm-fuzz-project-");
        std::fs::create_dir_all(path.join("registry")).expect("the registry folder");
        path
    })
}

/// Paths that lead out of the temporary folder to files that never end or are
/// not files (escaped slashes included, as YAML's double quotes allow them).
fn names_special_files(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["/dev", "/proc", "/sys", "\\/", "\\x2f", "\\u002f", "\\u0000002f"].iter().any(|s| lower.contains(s))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let project = parts.next().unwrap_or_default();
    let registry = parts.next();
    let dotenv = parts.next();
    if names_special_files(project) {
        return;
    }
    let dir = dir();
    hsm_fuzz::rewrite(&dir.join("hsm.yaml"), project);
    for path in [dir.join("registry.yaml"), dir.join("registry/main.yaml")] {
        match registry {
            Some(r) => hsm_fuzz::rewrite(&path, r),
            None => drop(std::fs::remove_file(&path)),
        }
    }
    match dotenv {
        Some(e) => hsm_fuzz::rewrite(&dir.join(".env"), e),
        None => drop(std::fs::remove_file(dir.join(".env"))),
    }

    let env = HashMap::from([
        ("HOME".to_string(), "/home/fuzz".to_string()),
        ("DB_PASSWORD".to_string(), "s3cret".to_string()),
        ("EMPTY".to_string(), String::new()),
    ]);
    let options = LoadOptions {
        project_dir: dir.clone(),
        env,
        git: GitOptions { cache_dir: None, write_lock: false, update: None, offline: true },
    };
    let mut sources = Sources::new();
    let (config, diags) = hsm_config::load_lenient(&options, &mut sources);
    let _ = diags.render(&sources);
    let Some(config) = config else { return };
    let known_kinds: BTreeSet<String> = ["postgres", "qdrant", "chunker", "redis"].map(String::from).into();
    match hsm_resolve::resolve(&config, &sources, &ResolveOptions { known_kinds }) {
        Ok(resolution) => drop(serde_json::to_string(&resolution).expect("a resolution serializes")),
        Err(diags) => drop(diags.render(&sources)),
    }
});
