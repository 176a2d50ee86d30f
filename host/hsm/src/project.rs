//! Loading, resolving and planning the project, shared by the subcommands that
//! need it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hsm_config::LoadOptions;
use hsm_model::{Diagnostic, Sources};
use hsm_plan::Plan;
use hsm_planner::{Catalog, PlanningError};
use hsm_resolve::{Resolution, ResolveOptions};
use hsm_runtime::PluginHost;

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;

/// A project resolved and planned.
pub(crate) struct Planned {
    /// The resolution the plan came from.
    pub(crate) resolution: Resolution,
    /// The plan.
    pub(crate) plan: Plan,
}

/// Loads the plugins this project can use: the bundled ones.
pub(crate) fn catalog(out: &Output) -> Result<Catalog, Failure> {
    let host = PluginHost::default();
    let catalog = Catalog::bundled(&host).map_err(|e| Failure::Job(format!("cannot load the bundled plugins: {e}")))?;
    for p in catalog.plugins() {
        out.verbose(&format!(
            "plugin {}@{} ({}) serves {}",
            p.plugin.name(),
            p.plugin.info().version,
            p.plugin.source(),
            p.plugin.info().kinds.join(", ")
        ));
    }
    Ok(catalog)
}

/// Loads, resolves and plans the project named by the global options: the plugin of
/// every service merges and plans it, and the host checks what they return.
pub(crate) fn plan(global: &GlobalArgs, out: &Output) -> Result<Planned, Failure> {
    let catalog = catalog(out)?;
    let (sources, resolution) = resolve(global, out, &catalog)?;
    match hsm_planner::plan(&resolution, &catalog, &sources) {
        Ok(plan) => Ok(Planned { resolution, plan }),
        Err(PlanningError::Input(diags)) => Err(Failure::Input(sources, diags)),
        Err(PlanningError::Plugin(e)) => Err(Failure::Job(e.to_string())),
        Err(PlanningError::Refused(r)) => {
            let mut d = Diagnostic::new(r.to_string());
            if let Some(capability) = r.missing {
                d = d.hint(format!(
                    "if you trust `{}` to do this, grant it `{capability}` in hsm.yaml under `plugins.{}.grant`",
                    r.plugin, r.plugin
                ));
            }
            Err(Failure::Input(sources, d.into()))
        }
    }
}

/// Loads and resolves the project, with the kinds `catalog` serves.
fn resolve(global: &GlobalArgs, out: &Output, catalog: &Catalog) -> Result<(Sources, Resolution), Failure> {
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
    let mut known_kinds: BTreeSet<String> = catalog.kinds();
    known_kinds.remove(hsm_planner::PYTHON_KIND);
    let resolve_options = ResolveOptions { known_kinds };
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
