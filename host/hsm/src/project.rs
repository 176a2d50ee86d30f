//! Loading and resolving the project, shared by the subcommands that need it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hsm_config::LoadOptions;
use hsm_model::Sources;
use hsm_resolve::{Resolution, ResolveOptions};

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;

/// The service kinds this build of hsm has plugins for.
pub(crate) const KNOWN_KINDS: [&str; 3] = ["chunker", "postgres", "qdrant"];

/// Loads and resolves the project named by the global options.
pub(crate) fn resolve(global: &GlobalArgs, out: &Output) -> Result<(Sources, Resolution), Failure> {
    let env: HashMap<String, String> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let cache_dir = if global.no_cache { None } else { cache_dir(&env).map(|d| d.join(build_tag())) };
    let options = LoadOptions { project_dir: global.project_dir.clone(), env, cache_dir };
    let mut sources = Sources::new();
    // Problems local to one value do not stop resolution, so one run reports them
    // together with what resolving finds.
    let (config, mut diags) = hsm_config::load_lenient(&options, &mut sources);
    let Some(config) = config else { return Err(Failure::Input(sources, diags)) };
    for (_, file) in sources.iter() {
        out.verbose(&format!("read {}", file.display));
    }
    let resolve_options =
        ResolveOptions { known_kinds: KNOWN_KINDS.iter().map(|k| (*k).to_string()).collect::<BTreeSet<_>>() };
    let resolved = hsm_resolve::resolve(&config, &sources, &resolve_options);
    // The process ends soon after: freeing a large registry's tree would only cost time.
    std::mem::forget(config);
    match resolved {
        Ok(r) if diags.is_empty() => Ok((sources, r)),
        Ok(_) => Err(Failure::Input(sources, diags)),
        Err(more) => {
            diags.0.extend(more.0);
            Err(Failure::Input(sources, diags))
        }
    }
}

/// Where checked registry files are cached: `$HSM_CACHE_DIR` (empty: no cache), else
/// `$XDG_CACHE_HOME/hsm`, else `$HOME/.cache/hsm`, else nowhere.
fn cache_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    let set = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    match env.get("HSM_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => set("XDG_CACHE_HOME").map(|d| d.join("hsm")).or_else(|| set("HOME").map(|h| h.join(".cache/hsm"))),
    }
}

/// Names this build of hsm, so that a rebuilt hsm (whose checks may differ) never
/// reads entries an earlier build wrote: the version, and the executable's size and
/// modification time. The whole cache folder can be deleted at any time.
fn build_tag() -> String {
    let exe = std::env::current_exe().and_then(std::fs::metadata);
    let (size, mtime) = match exe {
        Ok(m) => {
            let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            (m.len(), mtime.map_or(0, |d| d.as_secs()))
        }
        Err(_) => (0, 0),
    };
    format!("{}-{size:x}-{mtime:x}", env!("CARGO_PKG_VERSION"))
}
