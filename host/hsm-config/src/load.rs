//! Reads `hsm.yaml`, its `.env` files and its registries, checks them, and merges the
//! registries by precedence into one [`Config`]. Every independent problem is
//! reported in one run: a broken registry file does not hide a broken `.env`.
//!
//! Values are not interpolated here (see [`Config::interpolate`]): templates are only
//! parsed, so syntax errors show up everywhere while missing variables matter only
//! for what the project uses.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use hsm_model::{Diagnostic, Diagnostics, FileId, Sources, Span};
use indexmap::IndexMap;
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;

use crate::cache::{self, Cache};
use crate::config::{
    Config, Implies, NameRef, PackageDef, PackageRequest, ParamNode, Params, PluginDef, PluginGrant, ProfileDef,
    ProfileSettings, Project, ServiceDef, ServiceRequest, SourceDef, StrParam,
};
use crate::dotenv;
use crate::env::Environment;
use crate::file::{EnvFiles, PackageDecl, PackageEntry, ParamMap, ProjectFile, RawValue, RegistryFile, Version};
use crate::interp::Template;
use crate::quick_yaml;
use crate::spanned::Spanned;
use crate::yaml_error::{self, FileKind};

/// The registry compiled into hsm: `(file name, text)`, read in this order.
pub const BUNDLED: &[(&str, &str)] = &[
    ("services.yaml", include_str!("../../../registry/services.yaml")),
    ("profiles.yaml", include_str!("../../../registry/profiles.yaml")),
    ("packages.yaml", include_str!("../../../registry/packages.yaml")),
];

/// The name of the project file.
pub const PROJECT_FILE: &str = "hsm.yaml";

/// What a load saw of the file system besides the files it read (which are in
/// the run's [`Sources`]): which registry files each registry folder held, and
/// whether the project folder had a `.env` where none was named. Something made
/// from a load is only as current as these.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Each registry folder read, with the names of the registry files in it, as
    /// [`registry_files`] lists them.
    pub folders: Vec<(PathBuf, Vec<String>)>,
    /// Where a `.env` was looked for (when `hsm.yaml` names no `env_file`), and
    /// whether one was there.
    pub dotenv: Option<(PathBuf, bool)>,
}

/// The registry files in a registry folder, sorted: its `*.yaml` and `*.yml` files.
pub fn registry_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// What [`load`] needs.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The folder that holds `hsm.yaml`.
    pub project_dir: PathBuf,
    /// The process environment (the CLI passes `std::env::vars()`; tests pass what
    /// they need).
    pub env: HashMap<String, String>,
    /// Where checked registry files are cached between runs, and what authenticates
    /// the entries (keyed with the user's secret key); `None` for no cache.
    pub cache: Option<(PathBuf, Arc<dyn hsm_model::Authenticator>)>,
}

/// Loads the project in `options.project_dir`. Files read are added to `sources`, so
/// the caller can render the diagnostics.
pub fn load(options: &LoadOptions, sources: &mut Sources) -> Result<Config, Diagnostics> {
    match load_lenient(options, sources) {
        (Some(c), diags) if diags.is_empty() => Ok(c),
        (_, diags) => Err(diags),
    }
}

/// Loads the project like [`load`], but also returns the configuration when the only
/// problems found are local to one value (a template's syntax, a package with two
/// sources, …), so that resolving it can report the remaining problems in the same
/// run. The configuration is `None` when a file could not be read or parsed, since
/// resolving without it would only report the same problem again in other words.
pub fn load_lenient(options: &LoadOptions, sources: &mut Sources) -> (Option<Config>, Diagnostics) {
    let dir = normalize(&std::path::absolute(&options.project_dir).unwrap_or_else(|_| options.project_dir.clone()));
    let mut loader =
        Loader { sources, diags: Diagnostics::default(), dir, incomplete: false, observed: Observed::default() };
    let config = loader.run(options);
    let config = if loader.incomplete { None } else { config };
    (config, loader.diags)
}

struct Loader<'a> {
    sources: &'a mut Sources,
    diags: Diagnostics,
    dir: PathBuf,
    /// Set when a file is missing or could not be parsed: the configuration lacks
    /// what it said, so resolving it would report spurious problems.
    incomplete: bool,
    observed: Observed,
}

/// A registry file read but not parsed yet.
struct RegistryText {
    id: FileId,
    display: String,
    text: Arc<str>,
    /// The folder paths in the file are relative to (`None` for the bundled registry).
    base: Option<PathBuf>,
}

/// YAML 1.2's core schema: only `true` and `false` are booleans, so `country: NO` or
/// `debug: on` in params stay the strings they look like. We render snippets ourselves.
pub(crate) fn parse_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        with_snippet: false,
        strict_booleans: true,
        // serde-saphyr's default budget (250,000 nodes) refused a registry of 10,000
        // packages in one file (3.6 MB). Files are the user's own, so the limits are
        // a bound on work, not on size: about 150,000 packages in one file.
        budget: serde_saphyr::budget! { max_nodes: SAPHYR_MAX_NODES, max_events: 3 * SAPHYR_MAX_NODES },
    }
}

/// The most nodes (scalars, lists and maps) serde-saphyr reads in one file.
pub(crate) const SAPHYR_MAX_NODES: usize = 5_000_000;

/// Reads a file: with the quick reader when the file is plain YAML it knows (the
/// same result, several times faster), else with serde-saphyr, which also gives
/// every error.
fn parse_yaml<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    match quick_yaml::from_str(text) {
        Some(value) => Ok(value),
        None => serde_saphyr::from_str_with_options(text, parse_options()),
    }
}

/// What one registry file defines, checked, with the problems found in it.
struct FileDefs {
    packages: Vec<PackageDef>,
    services: Vec<ServiceDef>,
    profiles: Vec<ProfileDef>,
    plugins: Vec<PluginDef>,
    diags: Vec<Diagnostic>,
    incomplete: bool,
}

/// Parses and checks one registry file, or takes what it defines from the cache.
fn registry_defs(f: &RegistryText, cache: Option<&Cache>) -> FileDefs {
    let key = cache.map(|_| Cache::key(f.id, &f.display, f.base.as_deref(), &f.text));
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(e) = cache.get(key)
    {
        let (packages, services, profiles, plugins) = (e.packages, e.services, e.profiles, e.plugins);
        return FileDefs { packages, services, profiles, plugins, diags: Vec::new(), incomplete: false };
    }
    let mut cx = FileCtx::new(f.id, &f.text, f.base.as_deref());
    // A registry file with nothing in it (yet) defines nothing.
    if !has_content(&f.text) {
        return FileDefs {
            packages: Vec::new(),
            services: Vec::new(),
            profiles: Vec::new(),
            plugins: Vec::new(),
            diags: Vec::new(),
            incomplete: false,
        };
    }
    let defs = match parse_yaml::<RegistryFile>(&f.text) {
        Ok(reg) => cx.registry_file(reg, &f.display),
        Err(e) => {
            cx.diags.push(yaml_error::diagnostic(&e, f.id, &f.text, FileKind::Registry));
            cx.incomplete = true;
            (Vec::new(), Vec::new(), Vec::new(), Vec::new())
        }
    };
    let (packages, services, profiles, plugins) = defs;
    if let (Some(cache), Some(key)) = (cache, &key)
        && cx.diags.is_empty()
        && !cx.incomplete
    {
        let entry = cache::Entry { packages, services, profiles, plugins };
        cache.put(key, &entry);
        let cache::Entry { packages, services, profiles, plugins } = entry;
        return FileDefs { packages, services, profiles, plugins, diags: Vec::new(), incomplete: false };
    }
    FileDefs { packages, services, profiles, plugins, diags: cx.diags, incomplete: cx.incomplete }
}

/// Parses and checks registry files on as many threads as there are cores, keeping
/// their order. Each file's parse tree is dropped as soon as it is converted.
fn parse_all(texts: &[&RegistryText], cache: Option<&Cache>) -> Vec<FileDefs> {
    // Files are handed out one at a time, so a large file does not hold up the rest.
    hsm_model::parallel::map_in_order(texts, hsm_model::parallel::Spread::default(), |t| registry_defs(t, cache))
}

/// The definitions of one registry, before they are merged with the others.
#[derive(Default)]
struct RegistryDefs {
    packages: FxIndexMap<PackageDef>,
    services: FxIndexMap<ServiceDef>,
    profiles: FxIndexMap<ProfileDef>,
    plugins: FxIndexMap<PluginDef>,
}

/// Definitions by name, in the order read.
type FxIndexMap<T> = IndexMap<String, T, rustc_hash::FxBuildHasher>;

impl Loader<'_> {
    fn run(&mut self, options: &LoadOptions) -> Option<Config> {
        let path = self.dir.join(PROJECT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.diags.push(
                    Diagnostic::new(format!("no `{PROJECT_FILE}` in `{}`", self.dir.display()))
                        .hint("run hsm in a project folder, or name one with `-C <folder>`"),
                );
                return None;
            }
            Err(e) => {
                self.diags.push(Diagnostic::new(format!("cannot read `{}`: {e}", path.display())));
                return None;
            }
        };
        let (file, text) = self.add_file(PROJECT_FILE.to_string(), Some(&path), text);
        if !has_content(&text) {
            self.diags.push(
                Diagnostic::new(format!("`{PROJECT_FILE}` is empty"))
                    .at(Span::from_range(file, &text, 0, 0), "")
                    .hint("start it with `version: 1` and `project: NAME`; see `hsm schema project`"),
            );
            return None;
        }
        let project: ProjectFile = self.parse(file, &text, FileKind::Project)?;
        let dir = self.dir.clone();
        let mut cx = FileCtx::new(file, &text, Some(&dir));
        cx.check_version(Some(&project.version), true);
        let project = project;

        let mut env = Environment::new(options.env.clone());
        self.env_files(&project, file, &mut env);

        let mut registries = Vec::new();
        let mut packages = FxHashMap::default();
        let mut services = FxHashMap::default();
        let mut profiles = FxHashMap::default();
        let mut plugins: IndexMap<String, PluginDef> = IndexMap::new();
        let default = vec![Spanned::new("bundled".to_string(), Default::default())];
        let explicit = project.registries.is_some();
        // Read every registry's files first, parse them all in parallel (parsing is
        // most of the time a large registry takes), then check and merge them in
        // precedence order, so diagnostics come out in the same order every run.
        let mut read = Vec::new();
        for entry in project.registries.as_ref().unwrap_or(&default) {
            let span = explicit.then(|| entry.span(file));
            if let Some(r) = self.registry(&entry.value, span) {
                read.push(r);
            }
        }
        let texts: Vec<&RegistryText> = read.iter().flat_map(|(_, files)| files.iter()).collect();
        let cache = options.cache.as_ref().map(|(dir, auth)| Cache::new(dir, auth.clone()));
        let parsed = parse_all(&texts, cache.as_ref());
        // Sized up front: a large registry's definitions are big, and moving them
        // while the maps grow was most of the merging.
        packages.reserve(parsed.iter().map(|f| f.packages.len()).sum());
        let mut parsed = parsed.into_iter();
        for (name, files) in &read {
            let mut defs = RegistryDefs::default();
            let mine: Vec<FileDefs> = files.iter().map(|_| parsed.next().expect("one result per file")).collect();
            defs.packages.reserve(mine.iter().map(|f| f.packages.len()).sum());
            for f in mine {
                self.diags.0.extend(f.diags);
                self.incomplete |= f.incomplete;
                for d in f.packages {
                    self.define(&mut defs.packages, "package", d);
                }
                for d in f.services {
                    self.define(&mut defs.services, "service", d);
                }
                for d in f.profiles {
                    self.define(&mut defs.profiles, "profile", d);
                }
                for d in f.plugins {
                    self.define(&mut defs.plugins, "plugin", d);
                }
            }
            registries.push(name.clone());
            packages.extend(defs.packages);
            services.extend(defs.services);
            profiles.extend(defs.profiles);
            plugins.extend(defs.plugins);
        }

        let mut requests = Vec::new();
        let mut seen: HashMap<String, Span> = HashMap::new();
        let project_services = project.services;
        for entry in project.packages {
            let span = entry.span(file);
            let (name, inline, source_given) = match entry.value {
                PackageEntry::Name(n) => (NameRef { name: n.into(), span }, None, false),
                PackageEntry::Inline(decl) => {
                    let n = decl.name.as_ref().expect("checked while parsing");
                    let name = NameRef { name: n.value.to_string(), span: n.span(file) };
                    let source_given = decl.pypi.is_some() || decl.path.is_some() || decl.editable.is_some();
                    let def = cx.package(name.clone(), *decl);
                    (name, Some(def), source_given)
                }
            };
            if let Some(first) = seen.insert(name.name.clone(), name.span) {
                self.diags.push(
                    Diagnostic::new(format!("package `{}` is listed twice", name.name))
                        .at(name.span, "listed again here")
                        .also(first, "first listed here")
                        .hint("keep one entry; a map entry can both override the source and add implications"),
                );
                continue;
            }
            requests.push(PackageRequest { name, inline, source_given });
        }

        let mut service_requests = Vec::new();
        for (name, settings) in project_services {
            let span = settings.span(file);
            let (profile, params) = match settings.value {
                Some(s) => (
                    s.profile.as_ref().map(|p| NameRef { name: p.value.to_string(), span: p.span(file) }),
                    cx.params(s.params, Some(span)),
                ),
                None => (None, Params::default()),
            };
            service_requests.push(ServiceRequest {
                name: NameRef { name: name.value.to_string(), span: name.span(file) },
                profile,
                params,
            });
        }

        let mut grants = Vec::new();
        for (name, decl) in project.plugins {
            let name = NameRef { name: name.value.to_string(), span: name.span(file) };
            let decl = decl.value;
            let Some(sha256) = cx.sha256(&decl.sha256) else { continue };
            if let Some(path) = &decl.path
                && let Some(def) = cx.plugin(name.clone(), path, &decl.sha256, PROJECT_FILE)
            {
                plugins.insert(name.name.clone(), def);
            }
            grants.push(PluginGrant {
                name,
                sha256,
                sha256_span: decl.sha256.span(file),
                capabilities: decl.grant.iter().map(|c| (c.value, c.span(file))).collect(),
                publish_on: decl.publish_on.iter().map(|h| (h.value.clone(), h.span(file))).collect(),
                env: decl.env.iter().map(|v| (v.value.clone(), v.span(file))).collect(),
            });
        }

        self.diags.0.extend(cx.diags);
        self.incomplete |= cx.incomplete;
        let project = Project {
            name: NameRef { name: project.project.value.to_string(), span: project.project.span(file) },
            dir: self.dir.clone(),
            display: PROJECT_FILE.to_string(),
            profile: project.profile.as_ref().map(|p| NameRef { name: p.value.to_string(), span: p.span(file) }),
            packages: requests,
            services: service_requests,
            grants,
        };
        let plugins = plugins.into_values().collect();
        let observed = std::mem::take(&mut self.observed);
        Some(Config { project, registries, packages, services, profiles, plugins, env, observed })
    }

    fn add_file(&mut self, display: String, path: Option<&Path>, text: String) -> (FileId, Arc<str>) {
        let text: Arc<str> = text.into();
        let id = self.sources.add(display, path, text.clone());
        (id, text)
    }

    fn parse<T: DeserializeOwned>(&mut self, file: FileId, text: &str, kind: FileKind) -> Option<T> {
        match parse_yaml::<T>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.diags.push(yaml_error::diagnostic(&e, file, text, kind));
                self.incomplete = true;
                None
            }
        }
    }

    fn env_files(&mut self, project: &ProjectFile, file: FileId, env: &mut Environment) {
        let named: Vec<(String, Option<Span>)> = match &project.env_file {
            None => {
                let path = self.dir.join(".env");
                let exists = path.is_file();
                self.observed.dotenv = Some((path, exists));
                if exists { vec![(".env".to_string(), None)] } else { Vec::new() }
            }
            Some(s) => match &s.value {
                EnvFiles::One(p) => vec![(p.clone(), Some(s.span(file)))],
                EnvFiles::Many(list) => list.iter().map(|p| (p.value.clone(), Some(p.span(file)))).collect(),
            },
        };
        for (written, span) in named {
            let path = normalize(&self.dir.join(&written));
            let display = self.display(&path);
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    let (msg, hint) = if e.kind() == std::io::ErrorKind::NotFound {
                        (format!("env file `{written}` does not exist"), "create it, or remove it from `env_file`")
                    } else {
                        (format!("cannot read env file `{written}`: {e}"), "check the file's permissions")
                    };
                    self.diags.push(Diagnostic::new(msg).at_opt(span, "named here").hint(hint));
                    self.incomplete = true;
                    continue;
                }
            };
            let (id, text) = self.add_file(display.clone(), Some(&path), text);
            match dotenv::parse(&text) {
                Ok(entries) => env.add_dotenv(id, &display, text, entries),
                Err(e) => {
                    let mut d = Diagnostic::new(e.message).at(Span::from_range(id, &text, e.start, e.len), "");
                    if let Some(h) = e.hint {
                        d = d.hint(h);
                    }
                    self.diags.push(d);
                    self.incomplete = true;
                }
            }
        }
    }

    /// Reads one registry; `span` is where `hsm.yaml` names it.
    /// Reads one registry's files (without parsing them); `span` is where `hsm.yaml`
    /// names it.
    fn registry(&mut self, written: &str, span: Option<Span>) -> Option<(String, Vec<RegistryText>)> {
        let mut files: Vec<(String, Option<PathBuf>, String)> = Vec::new();
        let name;
        if written == "bundled" {
            name = "bundled".to_string();
            for (file, text) in BUNDLED {
                files.push((format!("<bundled>/{file}"), None, (*text).to_string()));
            }
        } else {
            let path = normalize(&self.dir.join(written));
            name = self.display(&path);
            if path.is_dir() {
                let paths = match registry_files(&path) {
                    Ok(paths) => paths,
                    Err(e) => {
                        self.diags.push(
                            Diagnostic::new(format!("cannot read registry folder `{written}`: {e}")).at_opt(span, ""),
                        );
                        self.incomplete = true;
                        return None;
                    }
                };
                let names = paths.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
                self.observed.folders.push((path.clone(), names.collect()));
                if paths.is_empty() {
                    self.diags.push(
                        Diagnostic::new(format!("registry folder `{written}` has no `*.yaml` files"))
                            .at_opt(span, "named here")
                            .hint("add registry files to the folder, or remove it from `registries`"),
                    );
                    self.incomplete = true;
                    return None;
                }
                for p in paths {
                    match std::fs::read_to_string(&p) {
                        Ok(t) => files.push((self.display(&p), Some(p), t)),
                        Err(e) => {
                            self.diags.push(Diagnostic::new(format!("cannot read `{}`: {e}", self.display(&p))));
                            self.incomplete = true;
                        }
                    }
                }
            } else if path.is_file() {
                match std::fs::read_to_string(&path) {
                    Ok(t) => files.push((self.display(&path), Some(path.clone()), t)),
                    Err(e) => {
                        self.diags
                            .push(Diagnostic::new(format!("cannot read registry `{written}`: {e}")).at_opt(span, ""));
                        self.incomplete = true;
                        return None;
                    }
                }
            } else {
                let mut d = Diagnostic::new(format!("registry `{written}` does not exist"))
                    .at_opt(span, "no such file or folder")
                    .hint("a registry is `bundled`, or a path relative to hsm.yaml to a folder of `*.yaml` files or to one file");
                if let Some(best) = yaml_error::did_you_mean(written, ["bundled"]) {
                    d = d.hint(format!("did you mean `{best}`?"));
                }
                self.diags.push(d);
                self.incomplete = true;
                return None;
            }
        }
        let texts = files
            .into_iter()
            .map(|(display, path, text)| {
                let base = path.as_ref().and_then(|p| p.parent().map(Path::to_path_buf));
                let (id, text) = self.add_file(display.clone(), path.as_deref(), text);
                RegistryText { id, display, text, base }
            })
            .collect();
        Some((name, texts))
    }

    /// Adds a definition to one registry, rejecting a second one of the same name.
    fn define<T: HasName>(&mut self, map: &mut FxIndexMap<T>, what: &str, def: T) {
        let name = def.name();
        if let Some(first) = map.get(&name.name) {
            self.diags.push(
                Diagnostic::new(format!("{what} `{}` is defined twice in the same registry", name.name))
                    .at(name.span, "defined again here")
                    .also(first.name().span, "first defined here")
                    .hint(
                        "a registry later in `registries` may override an entry; within one registry, define it once",
                    ),
            );
            return;
        }
        map.insert(name.name.clone(), def);
    }

    /// A path as shown to the user: relative to the project folder where possible.
    fn display(&self, path: &Path) -> String {
        display_path(&self.dir, path)
    }
}

/// Checks and converts what one file says. Independent of the loader so that
/// registry files can be converted on the threads that parse them.
struct FileCtx<'t> {
    file: FileId,
    text: &'t str,
    /// The folder relative paths in the file start from (`None`: the bundled registry).
    base: Option<&'t Path>,
    diags: Vec<Diagnostic>,
    incomplete: bool,
}

type Defs = (Vec<PackageDef>, Vec<ServiceDef>, Vec<ProfileDef>, Vec<PluginDef>);

impl<'t> FileCtx<'t> {
    fn new(file: FileId, text: &'t str, base: Option<&'t Path>) -> Self {
        Self { file, text, base, diags: Vec::new(), incomplete: false }
    }

    fn check_version(&mut self, version: Option<&Spanned<Version>>, project: bool) {
        let Some(v) = version else { return };
        if v.value.number == Some(1) {
            return;
        }
        self.incomplete = true;
        let what = if project { "`hsm.yaml`" } else { "this registry file" };
        self.diags.push(
            Diagnostic::new(format!("unsupported version `{}`", v.value.written))
                .at(v.span(self.file), "this version of hsm reads version 1")
                .hint(format!("write `version: 1`; if {what} was written for a newer hsm, update hsm")),
        );
    }

    fn registry_file(&mut self, reg: RegistryFile, display: &str) -> Defs {
        let file = self.file;
        self.check_version(reg.version.as_ref(), false);
        let mut packages = Vec::with_capacity(reg.packages.len());
        for (name, decl) in reg.packages {
            let name_ref = NameRef { name: name.value.to_string(), span: name.span(file) };
            if let Some(n) = &decl.value.name {
                self.diags.push(
                    Diagnostic::new("`name` is not a field of a registry package")
                        .at(n.span(file), "")
                        .hint(format!("the package's name is its key, `{}`", name.value)),
                );
            }
            packages.push(self.package(name_ref, decl.value));
        }
        let mut services = Vec::with_capacity(reg.services.len());
        for (name, decl) in reg.services {
            let span = decl.span(file);
            let decl = decl.value;
            services.push(ServiceDef {
                name: NameRef { name: name.value.into(), span: name.loc.span(file) },
                kind: NameRef { name: decl.kind.value.into(), span: decl.kind.loc.span(file) },
                description: decl.description,
                params: self.params(decl.params, Some(span)),
                profile: decl.profile.map(|p| NameRef { name: p.value.into(), span: p.loc.span(file) }),
            });
        }
        let mut profiles = Vec::with_capacity(reg.profiles.len());
        for (name, decl) in reg.profiles {
            let decl = decl.value;
            let mut services = IndexMap::new();
            for (svc, settings) in decl.services {
                let svc_ref = NameRef { name: svc.value.into(), span: svc.loc.span(file) };
                let span = settings.span(file);
                let params = self.params(settings.value, Some(span));
                services.insert(svc_ref.name.clone(), ProfileSettings { name: svc_ref, params });
            }
            profiles.push(ProfileDef {
                name: NameRef { name: name.value.into(), span: name.loc.span(file) },
                mode: decl.mode.value,
                description: decl.description,
                services,
            });
        }
        let mut plugins = Vec::with_capacity(reg.plugins.len());
        for (name, decl) in reg.plugins {
            let name = NameRef { name: name.value.to_string(), span: name.span(file) };
            if self.base.is_none() {
                self.diags.push(
                    Diagnostic::new("the bundled registry cannot ship plugins")
                        .at(name.span, "")
                        .note("bundled plugins are compiled into hsm"),
                );
                continue;
            }
            if self.sha256(&decl.value.sha256).is_some()
                && let Some(def) = self.plugin(name, &decl.value.path, &decl.value.sha256, display)
            {
                plugins.push(def);
            }
        }
        (packages, services, profiles, plugins)
    }

    /// A pinned digest: 64 hex digits.
    fn sha256(&mut self, written: &Spanned<String>) -> Option<String> {
        let s = written.value.trim();
        if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            return Some(s.to_ascii_lowercase());
        }
        self.diags.push(
            Diagnostic::new(format!("`{}` is not a sha256 digest", written.value))
                .at(written.span(self.file), "expected 64 hexadecimal digits")
                .hint("`hsm plugin check FILE` prints a component's sha256"),
        );
        None
    }

    /// A plugin's declaration, its path joined to this file's folder.
    fn plugin(
        &mut self,
        name: NameRef,
        path: &Spanned<String>,
        sha256: &Spanned<String>,
        declared_in: &str,
    ) -> Option<PluginDef> {
        let file = self.file;
        if path.value.trim().is_empty() {
            self.diags.push(
                Diagnostic::new(format!("plugin `{}` has an empty `path`", name.name))
                    .at(path.span(file), "")
                    .hint("write the component's file, relative to this file"),
            );
            return None;
        }
        let base = self.base.unwrap_or(Path::new("."));
        Some(PluginDef {
            name,
            path: normalize(&base.join(&path.value)),
            written: path.value.clone(),
            path_span: path.span(file),
            sha256: sha256.value.trim().to_ascii_lowercase(),
            sha256_span: sha256.span(file),
            declared_in: declared_in.to_string(),
        })
    }

    fn package(&mut self, name: NameRef, decl: PackageDecl) -> PackageDef {
        let file = self.file;
        let mut sources: Vec<(&str, Spanned<String>)> = Vec::new();
        for (field, value) in [("pypi", decl.pypi), ("path", decl.path), ("editable", decl.editable)] {
            if let Some(v) = value {
                sources.push((field, v));
            }
        }
        if sources.len() > 1 {
            let (first_field, first) = &sources[0];
            let (second_field, second) = &sources[1];
            self.diags.push(
                Diagnostic::new(format!("package `{}` has more than one source", name.name))
                    .at(second.span(file), format!("`{second_field}` here"))
                    .also(first.span(file), format!("`{first_field}` here"))
                    .hint("keep one of `pypi`, `path` and `editable`"),
            );
        }
        let source = sources.into_iter().next().and_then(|(field, v)| {
            let span = v.span(file);
            if v.value.trim().is_empty() {
                self.diags.push(Diagnostic::new(format!("empty `{field}`")).at(span, "").hint(match field {
                    "pypi" => "write a requirement, such as `auth-service>=1.2`",
                    _ => "write a folder, relative to this file",
                }));
                return None;
            }
            if field == "pypi" {
                let requirement = v.value.trim().to_string();
                return Some(SourceDef::Pypi { requirement, span });
            }
            let Some(base) = self.base else {
                self.diags.push(
                    Diagnostic::new("the bundled registry cannot use local paths")
                        .at(span, "")
                        .note("this is a bug in hsm"),
                );
                return None;
            };
            let path = normalize(&base.join(&v.value));
            Some(SourceDef::Path { path, written: v.value, editable: field == "editable", span })
        });
        let mut implies = Vec::with_capacity(decl.implies.len());
        for imp in decl.implies {
            let span = imp.span(file);
            let imp = imp.value;
            match (imp.service, imp.package) {
                (Some(s), None) => {
                    let params = match imp.params {
                        Some(p) => {
                            let pspan = p.span(file);
                            self.params(p.value, Some(pspan))
                        }
                        None => Params::default(),
                    };
                    implies.push(Implies::Service {
                        name: NameRef { name: s.value.into(), span: s.loc.span(file) },
                        params,
                        span,
                    });
                }
                (None, Some(p)) => {
                    if let Some(params) = &imp.params {
                        self.diags.push(
                            Diagnostic::new("`params` apply to services, not packages")
                                .at(params.span(file), "")
                                .also(p.span(file), "this implies a package")
                                .hint("remove `params`, or imply a `service` instead"),
                        );
                    }
                    let pspan = p.loc.span(file);
                    implies.push(Implies::Package { name: NameRef { name: p.value.into(), span: pspan }, span });
                }
                (Some(s), Some(p)) => self.diags.push(
                    Diagnostic::new("an implication names a `service` or a `package`, not both")
                        .at(p.span(file), "")
                        .also(s.span(file), "")
                        .hint("split it into two entries: `- service: NAME` and `- package: NAME`"),
                ),
                (None, None) => self.diags.push(
                    Diagnostic::new("an implication needs `service` or `package`")
                        .at(span, "")
                        .hint("write `- service: postgres` (with optional `params`) or `- package: NAME`"),
                ),
            }
        }
        PackageDef { name, description: decl.description, source, implies }
    }

    fn params(&mut self, map: ParamMap, span: Option<Span>) -> Params {
        if map.is_empty() {
            return Params { root: ParamNode::Null, span };
        }
        let root = ParamNode::Map(map.into_iter().map(|(k, v)| (k.value, self.node(v))).collect());
        Params { root, span }
    }

    fn node(&mut self, v: Spanned<RawValue>) -> ParamNode {
        let loc = v.loc;
        match v.value {
            RawValue::Null => ParamNode::Null,
            RawValue::Bool(b) => ParamNode::Bool(b),
            RawValue::Int(i) => ParamNode::Int(i),
            RawValue::Float(f) => ParamNode::Float(f),
            RawValue::List(items) => ParamNode::List(items.into_iter().map(|i| self.node(i)).collect()),
            RawValue::Map(m) => ParamNode::Map(m.into_iter().map(|(k, v)| (k.value, self.node(v))).collect()),
            RawValue::Str(s) => {
                let span = loc.span(self.file);
                let exact_start = exact_start(self.text, loc.start, loc.len, &s);
                match Template::parse(&s) {
                    Ok(template) => ParamNode::Str(StrParam { template, span, exact_start }),
                    Err(e) => {
                        let at = match exact_start {
                            Some(start) => Span::from_range(self.file, self.text, start + e.start, e.len),
                            None => span,
                        };
                        self.diags.push(Diagnostic::new(e.message).at(at, "").hint(e.hint));
                        ParamNode::Null
                    }
                }
            }
        }
    }
}

trait HasName {
    fn name(&self) -> &NameRef;
}

impl HasName for PackageDef {
    fn name(&self) -> &NameRef {
        &self.name
    }
}

impl HasName for ServiceDef {
    fn name(&self) -> &NameRef {
        &self.name
    }
}

impl HasName for ProfileDef {
    fn name(&self) -> &NameRef {
        &self.name
    }
}

impl HasName for PluginDef {
    fn name(&self) -> &NameRef {
        &self.name
    }
}

/// Whether a YAML text holds anything but blank lines, comments and `---`.
fn has_content(text: &str) -> bool {
    text.lines().map(str::trim).any(|l| !l.is_empty() && !l.starts_with('#') && l != "---")
}

/// Where a scalar's text starts in the file, when its bytes are the string's bytes.
fn exact_start(text: &str, start: usize, len: usize, value: &str) -> Option<usize> {
    let slice = text.get(start..start + len)?;
    if slice == value {
        return Some(start);
    }
    let inner = slice.strip_prefix(['"', '\''])?;
    let inner = &inner[..inner.len().checked_sub(1)?];
    (inner == value).then_some(start + 1)
}

/// Removes `.` and resolves `..` without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `path` relative to `base` (both absolute and normalized), with `/` separators.
pub fn display_path(base: &Path, path: &Path) -> String {
    let b: Vec<_> = base.components().collect();
    let p: Vec<_> = path.components().collect();
    let common = b.iter().zip(&p).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return path.display().to_string();
    }
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(p[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    if parts.is_empty() { ".".to_string() } else { parts.join("/") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_relative_to_the_project() {
        let base = Path::new("/w/app");
        assert_eq!(display_path(base, Path::new("/w/app/registry/a.yaml")), "registry/a.yaml");
        assert_eq!(display_path(base, Path::new("/w/core")), "../core");
        assert_eq!(display_path(base, Path::new("/w/app")), ".");
        assert_eq!(normalize(Path::new("/w/app/./x/../y")), PathBuf::from("/w/app/y"));
    }

    #[test]
    fn exact_start_maps_plain_and_quoted_scalars() {
        let text = "a: ${X}\nb: \"${Y}\"\nc: \"a\\tb\"\n";
        assert_eq!(exact_start(text, 3, 4, "${X}"), Some(3));
        assert_eq!(exact_start(text, 11, 6, "${Y}"), Some(12));
        assert_eq!(exact_start(text, 21, 6, "a\tb"), None);
    }
}
