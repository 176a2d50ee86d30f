//! Loading, resolving and planning the project, shared by the subcommands that
//! need it.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
#[derive(Debug)]
pub(crate) struct KeyAuth(hsm_exec::keys::UserKey);

/// This build's part of hsm's cache folder, and the user's key that authenticates
/// what is kept there, read at most once per run. The key is never created to read
/// entries (none can verify without it), only to write them after a run whose input
/// was valid.
pub(crate) struct Caches {
    /// hsm's cache folder (whatever `--no-cache` says: compiled plugins are kept
    /// there for every build).
    root: Option<PathBuf>,
    /// This build's folder in it; `None` with `--no-cache`.
    dir: Option<PathBuf>,
    key: RefCell<Option<Option<Arc<KeyAuth>>>>,
    /// Whether creating the key was tried (and failed, if `key` holds none).
    create_tried: std::cell::Cell<bool>,
}

impl Caches {
    /// The caches the global options allow: none with `--no-cache`, with an empty
    /// `HSM_CACHE_DIR`, or when this build can't be told apart from others.
    /// The first run of a new build also removes other builds' folders that have
    /// not been written to for [`UNUSED_BUILD_DAYS`] days.
    pub(crate) fn new(global: &GlobalArgs) -> Self {
        let root = cache_dir(&process_env());
        let dir = if global.no_cache { None } else { root.as_ref().zip(build_tag()).map(|(d, t)| d.join(t)) };
        if let Some(dir) = dir.as_deref().filter(|d| !d.exists()) {
            prune_builds(dir, std::time::Duration::from_secs(UNUSED_BUILD_DAYS * 24 * 3600));
        }
        Self { root, dir, key: RefCell::new(None), create_tried: std::cell::Cell::new(false) }
    }

    /// `<cache>/<build>`, if caches are used.
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The user's key for reading entries: `None` if there is none yet (it is not
    /// created here) or there is no cache folder.
    pub(crate) fn existing_key(&self) -> Option<Arc<KeyAuth>> {
        self.root.as_ref()?;
        self.key
            .borrow_mut()
            .get_or_insert_with(|| hsm_exec::keys::UserKey::load_existing().ok().map(|k| Arc::new(KeyAuth(k))))
            .clone()
    }

    /// The user's key for writing entries, created if there is none yet.
    pub(crate) fn key_for_writing(&self) -> Option<Arc<KeyAuth>> {
        if let Some(key) = self.existing_key() {
            return Some(key);
        }
        if self.dir.is_none() || self.create_tried.replace(true) {
            return None;
        }
        let key = hsm_exec::keys::UserKey::load_default().ok().map(|k| Arc::new(KeyAuth(k)));
        *self.key.borrow_mut() = Some(key.clone());
        key
    }
}

impl Authenticator for KeyAuth {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.0.cache_tag(parts)
    }
}

/// The process environment as the loaders take it.
fn process_env() -> HashMap<String, String> {
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
    caches: &Caches,
) -> Result<(Sources, Catalog), Failure> {
    let (host, bundled) = preload.finish();
    // The key is not created here: the project may still turn out invalid (a run
    // that plans creates it, and the runs after it use the compile cache).
    let key = if config.plugins.is_empty() { None } else { caches.existing_key() };
    let cache_root = caches.root.as_ref().map(|d| d.join("plugins"));
    let cache = match (&key, &cache_root) {
        (Some(key), Some(root)) => Some(CompileCache::new(root, &host, key.as_ref())),
        _ => None,
    };
    let catalog = match Catalog::load_with_bundled(&host, bundled, config, cache.as_ref(), &|line| out.verbose(line)) {
        Ok(c) => c,
        Err(diags) => return Err(Failure::Input(sources, diags)),
    };
    out.warnings(&sources, catalog.warnings());
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
    plan_with(global, out, &Caches::new(global))
}

/// [`plan`], with the caches given.
pub(crate) fn plan_with(global: &GlobalArgs, out: &Output, caches: &Caches) -> Result<Planned, Failure> {
    let preload = Preload::start();
    let (sources, config) = load(global, out, caches)?;
    let (sources, catalog) = catalog(preload, &config, sources, out, caches)?;
    let plugins = config.plugins.iter().map(|p| (p.path.clone(), p.sha256.clone())).collect();
    let observed = config.observed.clone();
    // The memo (a file of a few MB) is read while the project resolves.
    let key = caches.existing_key();
    let (cache_dir, project_dir, name) = (caches.dir(), config.project.dir.clone(), config.project.name.name.clone());
    let (resolved, memo) = std::thread::scope(|scope| {
        let memo = scope.spawn(|| memo(cache_dir, &project_dir, &name, key.as_deref()));
        let resolved = resolve(config, sources, &catalog);
        (resolved, memo.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let (sources, resolution, variables) = resolved?;
    let planned = hsm_planner::plan(&resolution, &catalog, &sources, &memo);
    out.verbose(&format!("plugins planned {} service(s); {} came from earlier runs", memo.misses(), memo.hits()));
    // A key is created only for a plan that succeeded (its input was valid).
    let writer = if planned.is_ok() { caches.key_for_writing() } else { key.clone() };
    memo.save(writer.as_deref().map(|k| k as &dyn Authenticator));
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
            let made_from = MadeFrom {
                project_dir: resolution.project.dir.clone(),
                sources,
                observed,
                plugins,
                package_dirs,
                variables,
            };
            Ok(Planned { resolution, plan, made_from })
        }
        Err(PlanningError::Input(diags)) => Err(Failure::Input(sources, diags)),
        Err(PlanningError::Plugin(e)) => Err(Failure::Job(e.to_string())),
        Err(PlanningError::Refused(r)) => {
            let mut d = Diagnostic::new(r.to_string());
            if r.unreviewed
                && let Some(p) = catalog.plugins().iter().find(|p| p.plugin.name() == r.plugin)
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
                if let Some(p) = catalog.plugins().iter().find(|p| p.plugin.name() == r.plugin) {
                    d = d.note(declarations(p.plugin.info()));
                }
                d = d.hint(format!(
                    "if you trust `{}` to do this, grant it `{capability}` in hsm.yaml under `plugins.{}.grant`",
                    r.plugin, r.plugin
                ));
            }
            Err(Failure::Input(sources, d.into()))
        }
    }
}

/// What a plugin declares, in one line: the capabilities it may be granted and the
/// variables it sets in packages' environments.
fn declarations(info: &hsm_runtime::PluginInfo) -> String {
    let quoted = |names: Vec<&str>| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        }
    };
    let capabilities = quoted(info.capabilities.iter().map(|c| c.as_str()).collect());
    let variables = match &info.variables {
        Some(v) => format!("sets the variables {}", quoted(v.iter().map(|v| v.name.as_str()).collect())),
        None => "can't declare the variables it sets (built for an older WIT)".to_string(),
    };
    format!("`{}` declares the capabilities {capabilities} and {variables}", info.name)
}

/// The plugin answers remembered for this project (`<cache>/<build>/plans`),
/// authenticated with the user's key (read only if it exists); none with
/// `--no-cache`.
fn memo<'k>(cache_dir: Option<&Path>, project_dir: &Path, project: &str, key: Option<&'k KeyAuth>) -> Memo<'k> {
    let Some(dir) = cache_dir else { return Memo::disabled() };
    let project_dir = project_dir.canonicalize().unwrap_or_else(|_| project_dir.to_path_buf());
    Memo::open(Memo::path_for(dir, &project_dir, project), key.map(|k| k as &dyn Authenticator))
}

/// Loads the project's files. Problems local to one value do not stop here, so that
/// one run reports them together with what resolving finds.
pub(crate) fn load(global: &GlobalArgs, out: &Output, caches: &Caches) -> Result<(Sources, Loaded), Failure> {
    let env = process_env();
    let cache =
        caches.dir().zip(caches.existing_key()).map(|(dir, key)| (dir.to_path_buf(), key as Arc<dyn Authenticator>));
    let options = LoadOptions { project_dir: global.project_dir.clone(), env, cache };
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
    let resolve_options = ResolveOptions { known_kinds, threads: 0 };
    let resolved = hsm_resolve::resolve(&config, &sources, &resolve_options);
    let variables = config.env.process_names_used();
    // Nothing refers to the configuration any more. A large registry's tree is
    // tens of MB: freed now, the plan and its output reuse that memory instead of
    // growing the process (freeing it later, on a thread of its own while planning
    // goes on, let planning grow the process first).
    drop(config);
    match resolved {
        Ok(r) if diags.is_empty() => Ok((sources, r, variables)),
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

/// How long another build's cache folder may go unwritten before the first run of
/// a new build removes it.
const UNUSED_BUILD_DAYS: u64 = 30;

/// Removes the folders of other builds of hsm next to `ours` that nothing has
/// written to for `unused`: each rebuild of hsm starts a folder of its own, and
/// those of builds no longer run would otherwise stay forever. A build folder is
/// recognised by its name (a version first) and its content (only the caches'
/// subfolders); its age is the newest modification of it and its subfolders
/// (every entry written renames a file into one). Failures are ignored: this is
/// housekeeping.
fn prune_builds(ours: &Path, unused: std::time::Duration) {
    let (Some(root), Some(now)) = (ours.parent(), std::time::SystemTime::now().checked_sub(unused)) else { return };
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path == ours || !is_build_tag(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(children) = std::fs::read_dir(&path) else { continue };
        let mut newest = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let mut only_caches = true;
        for child in children.filter_map(Result::ok) {
            let child_name = child.file_name().to_string_lossy().into_owned();
            only_caches &= child_name == "plans" || child_name.starts_with("registry-v");
            let modified = child.metadata().and_then(|m| m.modified()).ok();
            newest = newest.max(modified);
        }
        if only_caches && newest.is_some_and(|t| t < now) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Whether `name` is shaped like what [`build_tag`] makes: a version, a 16-digit hex
/// digest, then three hex numbers.
fn is_build_tag(name: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = name.rsplitn(5, '-');
    let numbers = parts.by_ref().take(3).filter(|p| hex(p)).count();
    let digest = parts.next().is_some_and(|d| d.len() == 16 && hex(d));
    let version = parts.next().is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()) && v.contains('.'));
    numbers == 3 && digest && version
}

/// Names this build of hsm, so that a rebuilt hsm (whose checks may differ) never
/// reads entries an earlier build wrote: the version, a digest of the bundled
/// registry and plugins, and the executable's size, modification time (to the
/// nanosecond) and inode. Builds that set a fixed
/// modification time (reproducible builds, Nix) are still new files, with inodes of
/// their own. (Not the change time: cargo relinks `target/*/hsm` on every build, which
/// changes it and would make every `cargo run` start with empty caches.) `None`, and
/// then nothing is cached, when the executable can't be examined: a tag that can't
/// tell builds apart would let one read another's entries. The whole cache folder
/// can be deleted at any time.
fn build_tag() -> Option<String> {
    use std::hash::{Hash as _, Hasher as _};
    use std::os::unix::fs::MetadataExt as _;
    let exe = std::env::current_exe().and_then(std::fs::metadata).ok()?;
    let mtime = exe.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    let mut bundled = std::hash::DefaultHasher::new();
    for (name, text) in hsm_config::BUNDLED {
        (name, text).hash(&mut bundled);
    }
    hsm_runtime::bundled_sha256s().for_each(|sha256| sha256.hash(&mut bundled));
    Some(format!(
        "{}-{:016x}-{:x}-{:x}-{:x}",
        env!("CARGO_PKG_VERSION"),
        bundled.finish(),
        exe.len(),
        mtime.as_nanos(),
        exe.ino()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_tags_are_recognised_and_nothing_else() {
        let ours = build_tag().expect("the test binary can be examined");
        assert!(is_build_tag(&ours), "{ours}");
        assert!(is_build_tag("0.1.0-0123456789abcdef-10-20-30"));
        assert!(is_build_tag("1.2.0-rc.1-0123456789abcdef-a-b-c"), "a pre-release version");
        for other in ["plugins", "2024-01-02-backup-x", "0.1.0-xyz-10-20-30", "0.1.0-0123456789abcdef-10-20", "notes"] {
            assert!(!is_build_tag(other), "{other}");
        }
    }
}
