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

use crate::check::FileCtx;
use crate::config::{
    Config, NameRef, PackageDef, PackageRequest, Params, PluginDef, PluginGrant, ProfileDef, Project, ServiceDef,
    ServiceRequest,
};
use crate::dotenv;
use crate::env::Environment;
use crate::file::{EnvFiles, PackageEntry, ProjectFile};
use crate::git::GitSpec;
use crate::git_registry::{GitOptions, GitRegistries};
use crate::spanned::Spanned;
use crate::yaml_error::{self, FileKind};

mod parse;

use parse::{RegistryText, has_content, parse_all, parse_yaml};

/// The registry compiled into hsm: `(file name, text)`, read in this order.
pub const BUNDLED: &[(&str, &str)] = &[
    ("services.yaml", include_str!("../../../registry/services.yaml")),
    ("profiles.yaml", include_str!("../../../registry/profiles.yaml")),
    ("packages.yaml", include_str!("../../../registry/packages.yaml")),
];

/// The name of the project file.
pub const PROJECT_FILE: &str = "hsm.yaml";

/// The registry files in a registry folder, sorted: its `*.yaml` and `*.yml` files.
fn registry_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
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
    /// Where git registries are cached and how `hsm.lock` is used.
    pub git: GitOptions,
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
    let mut loader = Loader { sources, diags: Diagnostics::default(), dir, incomplete: false, git: None };
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
    /// The git registries and `hsm.lock`, when a git registry is listed or the
    /// lock may be written.
    git: Option<GitRegistries>,
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
        // Read every registry's files first (so problems reading them come first),
        // then parse, check and merge them in precedence order.
        let mut read = Vec::new();
        let listed = project.registries.as_ref().unwrap_or(&default);
        // `hsm.lock` matters with a git registry, or to a run that writes it (which
        // drops the registries no longer listed).
        if options.git.write_lock || listed.iter().any(|r| GitSpec::is_git(&r.value)) {
            let (git, diag) = GitRegistries::open(&self.dir, &options.git, self.sources);
            self.git = Some(git);
            if let Some(d) = diag {
                self.diags.push(d);
                self.incomplete = true;
            }
        }
        for entry in listed {
            let span = explicit.then(|| entry.span(file));
            if let Some(r) = self.registry(&entry.value, span) {
                read.push(r);
            }
        }
        for (name, files) in &read {
            let mut defs = RegistryDefs::default();
            for f in parse_all(files) {
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
            if let Some(git) = &mut self.git
                && git.get(name).is_some()
            {
                let read: Vec<(PathBuf, &[u8])> =
                    files.iter().filter_map(|f| Some((f.path.clone()?, f.text.as_bytes()))).collect();
                let diags = git.record(
                    name,
                    &read,
                    &defs.packages.values().collect::<Vec<_>>(),
                    &defs.plugins.values().collect::<Vec<_>>(),
                );
                self.incomplete |= !diags.is_empty();
                self.diags.0.extend(diags);
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
        if let Some(d) = self.git.take().and_then(|git| git.finish(!self.incomplete)) {
            self.diags.push(d);
        }
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
        Some(Config { project, registries, packages, services, profiles, plugins, env })
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
            None if self.dir.join(".env").is_file() => vec![(".env".to_string(), None)],
            None => Vec::new(),
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
            let path = if GitSpec::is_git(written) {
                let git = self.git.as_mut().expect("opened for each git registry");
                match git.checkout(written, span) {
                    Ok(checkout) => checkout.folder,
                    Err(d) => {
                        self.diags.push(*d);
                        self.incomplete = true;
                        return None;
                    }
                }
            } else {
                normalize(&self.dir.join(written))
            };
            name = if GitSpec::is_git(written) { written.to_string() } else { self.display(&path) };
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
                RegistryText { id, display, text, path, base }
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
        if let Some(shown) = self.git.as_ref().and_then(|g| g.display(path)) {
            return shown;
        }
        display_path(&self.dir, path)
    }
}

/// Definitions that carry their name (for the duplicate check).
trait HasName {
    fn name(&self) -> &NameRef;
}

macro_rules! has_name {
    ($($ty:ty),*) => {
        $(impl HasName for $ty {
            fn name(&self) -> &NameRef {
                &self.name
            }
        })*
    };
}

has_name!(PackageDef, ServiceDef, ProfileDef, PluginDef);

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
}
