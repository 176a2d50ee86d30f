//! Loading, resolving and planning the project, shared by the subcommands that
//! need it.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use hsm_config::{Config, GitOptions, LoadOptions};
use hsm_key::UserKey;
use hsm_model::{Diagnostic, Diagnostics, Sources};
use hsm_plan::Plan;
use hsm_planner::{Catalog, PlanningError, Scope};
use hsm_resolve::{Resolution, ResolveOptions};
use hsm_runtime::{CompileCache, PluginHost};

use crate::Failure;
use crate::cli::GlobalArgs;
use crate::output::Output;

/// A project resolved and planned.
pub(crate) struct Planned {
    /// The resolution the plan came from.
    pub(crate) resolution: Resolution,
    /// The plan.
    pub(crate) plan: Plan,
    /// The configuration it was resolved from, no longer read: kept so that it is
    /// freed with the rest when the command is done, not while the plan is made
    /// (freeing a configuration of 10,000 packages takes ~22 ms).
    _config: Config,
}

/// The compile cache of third-party plugins (`<cache>/plugins`, which also holds
/// the bundled plugins' code, see [`load_bundled`]), and the user's key
/// that authenticates its entries, read at most once per run. The key is never
/// created to read entries (none can verify without it), only after a run that
/// planned a project with third-party plugins, so that the runs after it use the
/// cache.
pub(crate) struct PluginCache {
    /// `<cache>/plugins`; `None` with `--no-cache` or without a cache folder.
    dir: Option<PathBuf>,
    key: OnceCell<Option<UserKey>>,
}

impl PluginCache {
    /// The cache the global options allow: none with `--no-cache` or with an empty
    /// `HSM_CACHE_DIR`.
    pub(crate) fn new(global: &GlobalArgs) -> Self {
        let dir = if global.no_cache { None } else { cache_dir(&process_env()).map(|d| d.join("plugins")) };
        Self { dir, key: OnceCell::new() }
    }

    /// The cache, for `host`'s engine, if there is a folder and a user key.
    fn for_host<'a>(&'a self, host: &PluginHost) -> Option<CompileCache<'a>> {
        let dir = self.dir.as_ref()?;
        let key = self.key.get_or_init(|| UserKey::load_existing().ok()).as_ref()?;
        Some(CompileCache::new(dir, host, key))
    }

    /// Creates the user's key if there is none yet and the cache is used.
    fn create_key(&self) {
        if self.dir.is_some() && self.key.get().is_none_or(Option::is_none) {
            let _ = UserKey::load_default();
        }
    }
}

/// The process environment as the loaders take it.
fn process_env() -> HashMap<String, String> {
    std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
}

/// The plugins the project can use: the bundled ones (not loaded yet, see
/// [`load_bundled`]) and the third-party ones its files declare, loaded, with the
/// grants `hsm.yaml` gives them. Compiled third-party plugins are cached
/// (`<cache>/plugins`), authenticated with the user's key.
pub(crate) fn catalog(
    config: &Config,
    sources: Sources,
    out: &Output,
    plugin_cache: &PluginCache,
) -> Result<(Sources, PluginHost, Catalog), Failure> {
    // `main` started creating the engine (`PluginHost::prepare_in_background`).
    let host = PluginHost::default();
    // The key is not created here: the project may still turn out invalid (a run
    // that plans creates it, and the runs after it use the compile cache).
    let cache = if config.plugins.is_empty() { None } else { plugin_cache.for_host(&host) };
    let catalog = match Catalog::load(&host, config, cache.as_ref(), &|line| out.verbose(line)) {
        Ok(c) => c,
        Err(diags) => return Err(Failure::Input(sources, diags)),
    };
    out.warnings(&sources, catalog.warnings());
    // Only the third-party ones are loaded yet.
    catalog.plugins().iter().for_each(|p| say_loaded(p, out));
    Ok((sources, host, catalog))
}

/// Says (with `-v`) which plugin serves which kinds.
fn say_loaded(p: &hsm_planner::LoadedPlugin, out: &Output) {
    out.verbose(&format!(
        "plugin {}@{} ({}) serves {}",
        p.plugin.name(),
        p.plugin.info().version,
        p.plugin.source(),
        p.plugin.info().kinds.join(", ")
    ));
}

/// Loads the bundled plugins serving the kinds `wanted` picks, mapping their code
/// from files in the cache (`<cache>/plugins/bundled`) when there is one, and says
/// which plugins serve the project.
pub(crate) fn load_bundled(
    host: &PluginHost,
    catalog: &mut Catalog,
    plugin_cache: &PluginCache,
    wanted: &dyn Fn(&str) -> bool,
    out: &Output,
) -> Result<(), Failure> {
    let code_dir = plugin_cache.dir.as_ref().map(|d| d.join("bundled"));
    catalog
        .load_bundled(host, code_dir.as_deref(), wanted)
        .map_err(|e| Failure::Job(format!("cannot load the bundled plugins: {e}")))?;
    let bundled = catalog.plugins().iter().filter(|p| *p.plugin.source() == hsm_runtime::PluginSource::Bundled);
    bundled.for_each(|p| say_loaded(p, out));
    Ok(())
}

/// Loads, resolves and plans the project named by the global options: the plugin of
/// every service merges and plans it, and the host checks what they return.
pub(crate) fn plan(global: &GlobalArgs, out: &Output) -> Result<Planned, Failure> {
    plan_for(global, out, hsm_planner::Reach::Local)
}

/// [`plan`], its consumers reaching the services as `reach` says.
pub(crate) fn plan_for(global: &GlobalArgs, out: &Output, reach: hsm_planner::Reach) -> Result<Planned, Failure> {
    plan_scoped(global, out, reach, Scope::All)
}

/// [`plan_for`], of the services `scope` covers only.
pub(crate) fn plan_scoped(
    global: &GlobalArgs,
    out: &Output,
    reach: hsm_planner::Reach,
    scope: Scope<'_>,
) -> Result<Planned, Failure> {
    match review(global, out, reach, scope)? {
        (planned, None) => Ok(planned),
        (_, Some((sources, diags))) => Err(Failure::Input(sources, diags)),
    }
}

/// [`plan_scoped`], but when plugins plan what the project has not granted or
/// reviewed yet, the plan is returned too, with every grant or review missing:
/// what `hsm plan` shows before the user grants anything.
pub(crate) fn review(
    global: &GlobalArgs,
    out: &Output,
    reach: hsm_planner::Reach,
    scope: Scope<'_>,
) -> Result<(Planned, Option<(Sources, Diagnostics)>), Failure> {
    let cache = PluginCache::new(global);
    let (sources, config) = load(global, out)?;
    let (sources, host, mut catalog) = catalog(&config, sources, out, &cache)?;
    let third_party = !config.plugins.is_empty();
    let (sources, config, resolution) = resolve(config, sources, &catalog)?;
    let kinds = hsm_planner::kinds_used(&resolution, scope);
    load_bundled(&host, &mut catalog, &cache, &|kind| kinds.contains(kind), out)?;
    match hsm_planner::plan_scoped(&resolution, &catalog, &sources, reach, scope) {
        Ok(plan) => {
            out.verbose(&format!("plugins planned {} service(s)", plan.services.len()));
            // The project's input was valid: a key is worth creating for the
            // compile cache.
            if third_party {
                cache.create_key();
            }
            Ok((Planned { resolution, plan, _config: config }, None))
        }
        Err(PlanningError::NeedsReview { plan, refusals }) => {
            let mut diags = Diagnostics::default();
            for r in &refusals {
                diags.push(refusal(r, &catalog));
            }
            Ok((Planned { resolution, plan: *plan, _config: config }, Some((sources, diags))))
        }
        Err(PlanningError::Input(diags)) => Err(Failure::Input(sources, diags)),
        Err(PlanningError::Plugin(e)) => Err(crate::engine::failure(out, &e)),
        Err(PlanningError::Refused(r)) => Err(Failure::Input(sources, refusal(&r, &catalog).into())),
    }
}

/// A refusal as a diagnostic, with what would lift it when a review or a grant can.
fn refusal(r: &hsm_runtime::Refusal, catalog: &Catalog) -> Diagnostic {
    let mut d = Diagnostic::new(r.to_string());
    let plugin = catalog.plugins().iter().find(|p| p.plugin.name() == r.plugin);
    if r.unreviewed
        && let Some(p) = plugin
    {
        d = d.note(declarations(p.plugin.info())).hint(format!(
            "review `{}` (`hsm plugin check` shows what it declares), then pin it in hsm.yaml: `plugins.{}.sha256: {}`",
            r.plugin,
            r.plugin,
            p.plugin.sha256()
        ));
    }
    if let Some(name) = &r.missing_variable {
        d = d.hint(format!(
            "if you trust `{}` to set `{name}` in your programs' environment, grant it in hsm.yaml: `plugins.{}.env: [{name}]`",
            r.plugin, r.plugin
        ));
    }
    if let Some(capability) = r.missing {
        // What a grant would let it do, for the user who reviews it.
        if let Some(p) = plugin {
            d = d.note(declarations(p.plugin.info()));
        }
        d = d.hint(format!(
            "if you trust `{}` to do this, grant it `{capability}` in hsm.yaml under `plugins.{}.grant`",
            r.plugin, r.plugin
        ));
    }
    d
}

/// What a plugin declares, in one line: the capabilities it may be granted and the
/// variables it sets in packages' environments.
fn declarations(info: &hsm_runtime::PluginInfo) -> String {
    let capabilities = hsm_model::names_or_none(info.capabilities.iter().map(|c| c.as_str()));
    let variables = match &info.variables {
        Some(v) => format!("sets the variables {}", hsm_model::names_or_none(v.iter().map(|v| v.name.as_str()))),
        None => "can't declare the variables it sets (built for an older WIT)".to_string(),
    };
    format!("`{}` declares the capabilities {capabilities} and {variables}", info.name)
}

/// Loads the project's files. Problems local to one value do not stop here, so that
/// one run reports them together with what resolving finds.
pub(crate) fn load(global: &GlobalArgs, out: &Output) -> Result<(Sources, Loaded), Failure> {
    let env = process_env();
    let git = GitOptions {
        cache_dir: cache_dir(&env),
        write_lock: global.lock.write,
        update: global.lock.update.clone(),
        offline: false,
    };
    let options = LoadOptions { project_dir: global.project_dir.clone(), env, git };
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

impl Loaded {
    /// The problems found while loading that did not stop it.
    pub(crate) fn diags(&self) -> &Diagnostics {
        &self.diags
    }
}

impl std::ops::Deref for Loaded {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
}

/// Resolves the project, with the kinds `catalog` serves; the configuration comes
/// back with the resolution.
fn resolve(loaded: Loaded, sources: Sources, catalog: &Catalog) -> Result<(Sources, Config, Resolution), Failure> {
    let Loaded { config, mut diags } = loaded;
    let mut known_kinds: BTreeSet<String> = catalog.kinds();
    known_kinds.remove(hsm_planner::PYTHON_KIND);
    let resolved = hsm_resolve::resolve(&config, &sources, &ResolveOptions { known_kinds });
    match resolved {
        Ok(r) if diags.is_empty() => Ok((sources, config, r)),
        Ok(_) => Err(Failure::Input(sources, diags)),
        Err(more) => {
            diags.0.extend(more.0);
            Err(Failure::Input(sources, diags))
        }
    }
}

/// Git registries for a load that must not reach the network (completions): locked
/// and cached ones only, and `hsm.lock` is not written.
pub(crate) fn offline_git(env: &HashMap<String, String>) -> GitOptions {
    GitOptions { cache_dir: cache_dir(env), offline: true, ..GitOptions::default() }
}

/// hsm's cache folder (see [`hsm_key::cache_dir`]).
fn cache_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    hsm_key::cache_dir(&|k| env.get(k).cloned())
}
