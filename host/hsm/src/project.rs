//! Loading, resolving and planning the project, shared by the subcommands that
//! need it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hsm_config::{Config, LoadOptions};
use hsm_model::{Diagnostic, Diagnostics, Sources};
use hsm_plan::Plan;
use hsm_planner::{Catalog, Memo, PlanningError};
use hsm_resolve::{Resolution, ResolveOptions};
use hsm_runtime::{Authenticator, CompileCache, LoadError, Plugin, PluginHost};

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::printed::MadeFrom;

/// A project resolved and planned.
pub(crate) struct Planned {
    /// The resolution the plan came from.
    pub(crate) resolution: Resolution,
    /// The plan.
    pub(crate) plan: Plan,
    /// What it was made from.
    pub(crate) made_from: MadeFrom,
}

/// The user's key, lent to the caches to authenticate their entries.
pub(crate) struct KeyAuth(hsm_exec::keys::UserKey);

impl KeyAuth {
    /// The user's key (created if there is none), unless `--no-cache` says not to
    /// use caches; `None` also when it can't be read.
    pub(crate) fn for_caches(global: &GlobalArgs) -> Option<Self> {
        if global.no_cache {
            return None;
        }
        hsm_exec::keys::UserKey::load_default().ok().map(Self)
    }

    /// The user's key if there is one (none is created), unless `--no-cache`.
    pub(crate) fn existing(global: &GlobalArgs) -> Option<Self> {
        if global.no_cache {
            return None;
        }
        hsm_exec::keys::UserKey::load_existing().ok().map(Self)
    }
}

impl Authenticator for KeyAuth {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.0.mac(parts)
    }
}

/// The process environment as the loaders take it.
pub(crate) fn process_env() -> HashMap<String, String> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// The plugin engine and the bundled plugins, made ready on a thread of their own
/// while the project's files are read: creating the engine and loading the plugins
/// take milliseconds that need not wait for the YAML. If the files turn out to be
/// invalid the result is dropped unused (loading has no side effects).
pub(crate) struct Preload(std::thread::JoinHandle<(PluginHost, Result<Vec<Plugin>, LoadError>)>);

impl Preload {
    /// Starts loading.
    pub(crate) fn start() -> Self {
        Self(std::thread::spawn(|| {
            let host = PluginHost::default();
            let bundled = host.load_bundled();
            (host, bundled)
        }))
    }

    fn finish(self) -> (PluginHost, Result<Vec<Plugin>, LoadError>) {
        self.0.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// Loads the plugins the project can use: the bundled ones and the third-party ones
/// its files declare, with the grants `hsm.yaml` gives them. Compiled third-party
/// plugins are cached (`<cache>/plugins`), authenticated with the user's key.
pub(crate) fn catalog(
    preload: Preload,
    config: &Config,
    sources: Sources,
    out: &Output,
) -> Result<(Sources, Catalog), Failure> {
    let (host, bundled) = preload.finish();
    let env = process_env();
    let key = if config.plugins.is_empty() { None } else { hsm_exec::keys::UserKey::load_default().ok().map(KeyAuth) };
    let cache_root = cache_dir(&env).map(|d| d.join("plugins"));
    let cache = match (&key, &cache_root) {
        (Some(key), Some(root)) => Some(CompileCache::new(root, &host, key)),
        _ => None,
    };
    let catalog = match Catalog::load_with_bundled(&host, bundled, config, cache.as_ref(), &|line| out.verbose(line)) {
        Ok(c) => c,
        Err(diags) => return Err(Failure::Input(sources, diags)),
    };
    for p in catalog.plugins() {
        out.verbose(&format!(
            "plugin {}@{} ({}) serves {}",
            p.plugin.name(),
            p.plugin.info().version,
            p.plugin.source(),
            p.plugin.info().kinds.join(", ")
        ));
    }
    Ok((sources, catalog))
}

/// Loads, resolves and plans the project named by the global options: the plugin of
/// every service merges and plans it, and the host checks what they return.
pub(crate) fn plan(global: &GlobalArgs, out: &Output) -> Result<Planned, Failure> {
    let preload = Preload::start();
    let (sources, config) = load(global, out)?;
    let (sources, catalog) = catalog(preload, &config, sources, out)?;
    let plugin_files = config.plugins.iter().map(|p| p.path.clone()).collect();
    let (sources, resolution, variables) = resolve(config, sources, &catalog)?;
    let key = KeyAuth::for_caches(global);
    let memo = memo(global, &resolution, key.as_ref());
    let planned = hsm_planner::plan(&resolution, &catalog, &sources, &memo);
    out.verbose(&format!("plugins planned {} service(s); {} came from earlier runs", memo.misses(), memo.hits()));
    memo.save();
    match planned {
        Ok(plan) => {
            let package_dirs = resolution
                .packages
                .iter()
                .filter_map(|p| match &p.source {
                    Some(hsm_resolve::PackageSource::Path { path, .. }) => Some(path.clone()),
                    _ => None,
                })
                .collect();
            let made_from = MadeFrom { sources, plugin_files, package_dirs, variables };
            Ok(Planned { resolution, plan, made_from })
        }
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

/// The plugin answers remembered for this project (`<cache>/<build>/plans`),
/// authenticated with the user's key; none with `--no-cache` or without a key.
fn memo<'k>(global: &GlobalArgs, resolution: &Resolution, key: Option<&'k KeyAuth>) -> Memo<'k> {
    let (Some(key), Some(dir)) = (key, build_cache_dir(global)) else { return Memo::disabled() };
    let project_dir = resolution.project.dir.canonicalize().unwrap_or_else(|_| resolution.project.dir.clone());
    Memo::open(Memo::path_for(&dir, &project_dir, &resolution.project.name), key)
}

/// Loads the project's files. Problems local to one value do not stop here, so that
/// one run reports them together with what resolving finds.
pub(crate) fn load(global: &GlobalArgs, out: &Output) -> Result<(Sources, Loaded), Failure> {
    let env = process_env();
    let cache_dir = build_cache_dir(global);
    let options = LoadOptions { project_dir: global.project_dir.clone(), env, cache_dir };
    let mut sources = Sources::new();
    let (config, diags) = hsm_config::load_lenient(&options, &mut sources);
    let Some(config) = config else { return Err(Failure::Input(sources, diags)) };
    for (_, file) in sources.iter() {
        out.verbose(&format!("read {}", file.display));
    }
    Ok((sources, Loaded { config, diags }))
}

/// A loaded configuration, with the problems found while loading it that did not
/// stop it.
pub(crate) struct Loaded {
    config: Config,
    diags: Diagnostics,
}

impl std::ops::Deref for Loaded {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

/// Resolves the project, with the kinds `catalog` serves; also says which process
/// variables interpolation looked up.
fn resolve(loaded: Loaded, sources: Sources, catalog: &Catalog) -> Result<(Sources, Resolution, Vec<String>), Failure> {
    let Loaded { config, mut diags } = loaded;
    let mut known_kinds: BTreeSet<String> = catalog.kinds();
    known_kinds.remove(hsm_planner::PYTHON_KIND);
    let resolve_options = ResolveOptions { known_kinds };
    let resolved = hsm_resolve::resolve(&config, &sources, &resolve_options);
    let variables = config.env.process_names_used();
    // The process ends soon after: freeing a large registry's tree would only cost time.
    std::mem::forget(config);
    match resolved {
        Ok(r) if diags.is_empty() => Ok((sources, r, variables)),
        Ok(_) => Err(Failure::Input(sources, diags)),
        Err(more) => {
            diags.0.extend(more.0);
            Err(Failure::Input(sources, diags))
        }
    }
}

/// This build's folder in the cache folder; `None` with `--no-cache`.
pub(crate) fn build_cache_dir(global: &GlobalArgs) -> Option<PathBuf> {
    if global.no_cache {
        return None;
    }
    cache_dir(&process_env()).zip(build_tag()).map(|(d, tag)| d.join(tag))
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
/// modification time (to the nanosecond). `None`, and then nothing is cached, when
/// the executable can't be examined: a tag that can't tell builds apart would let
/// one read another's entries. The whole cache folder can be deleted at any time.
fn build_tag() -> Option<String> {
    let exe = std::env::current_exe().and_then(std::fs::metadata).ok()?;
    let mtime = exe.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}-{:x}-{:x}", env!("CARGO_PKG_VERSION"), exe.len(), mtime.as_nanos()))
}
