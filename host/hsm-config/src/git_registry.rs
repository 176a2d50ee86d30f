//! Git registries while a project loads: each `git+…` entry of `registries` becomes
//! a folder of hsm's cache (the files of the commit `hsm.lock` pins, or of the one
//! its ref resolves to), which the loader then reads like any registry folder. The
//! files read are checked against `hsm.lock`, and the lock is written when the
//! options allow it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hsm_model::{Diagnostic, Sources, Span};

use crate::config::{PackageDef, PluginDef, SourceDef};
use crate::git::{GitCache, GitSpec, sha256_hex};
use crate::lock::{LOCK_FILE, LockEntry, LockFile, write_if_changed};
use crate::yaml_error::{self, FileKind};

/// How a load treats git registries and `hsm.lock`.
#[derive(Clone, Debug, Default)]
pub struct GitOptions {
    /// hsm's cache folder; git registries are kept in its `git/` folder. Without
    /// one, a git registry is an error.
    pub cache_dir: Option<PathBuf>,
    /// Write `hsm.lock` when it lacks a registry (or has one no longer listed).
    /// Otherwise an unlocked registry is resolved for this run only.
    pub write_lock: bool,
    /// Resolve these registries' refs again, ignoring the lock (`Some(empty)`: all
    /// of them); each is an entry of `registries` as written or its URL.
    pub update: Option<Vec<String>>,
    /// Never reach a remote: a registry must be locked and in the cache.
    pub offline: bool,
}

/// Whether `name` (from `hsm lock --update NAME`) designates the registry `written`:
/// the entry as written, or its URL with or without `git+`.
pub fn designates(name: &str, written: &str) -> bool {
    name == written
        || GitSpec::parse(written).is_ok_and(|s| name == s.url || name.strip_prefix("git+") == Some(s.url.as_str()))
}

/// A git registry made into a folder.
#[derive(Clone, Debug)]
pub(crate) struct Checkout {
    /// The files of the commit.
    pub(crate) tree: PathBuf,
    /// The registry itself: the tree, or its `#subdir`.
    pub(crate) folder: PathBuf,
    commit: String,
    locked: Option<LockEntry>,
    span: Option<Span>,
}

/// The git registries of one load, and `hsm.lock`.
pub(crate) struct GitRegistries {
    options: GitOptions,
    cache: Option<GitCache>,
    lock_path: PathBuf,
    old: LockFile,
    /// Whether the lock could be read (a broken lock is never overwritten).
    lock_read: bool,
    new: BTreeMap<String, LockEntry>,
    checkouts: HashMap<String, Checkout>,
    urls: HashMap<String, String>,
    failed: bool,
}

impl GitRegistries {
    /// Reads `hsm.lock` in `dir`, if there is one.
    pub(crate) fn open(dir: &Path, options: &GitOptions, sources: &mut Sources) -> (Self, Option<Diagnostic>) {
        let lock_path = dir.join(LOCK_FILE);
        let mut this = Self {
            options: options.clone(),
            cache: options.cache_dir.as_deref().map(GitCache::new),
            lock_path: lock_path.clone(),
            old: LockFile { version: 1, registries: BTreeMap::new() },
            lock_read: true,
            new: BTreeMap::new(),
            checkouts: HashMap::new(),
            urls: HashMap::new(),
            failed: false,
        };
        let Ok(text) = std::fs::read_to_string(&lock_path) else { return (this, None) };
        let id = sources.add(LOCK_FILE, Some(&lock_path), text.clone());
        let problem = match serde_saphyr::from_str::<LockFile>(&text) {
            Err(e) => Some(yaml_error::diagnostic(&e, id, &text, FileKind::Registry)),
            Ok(lock) => match lock.check() {
                Ok(()) => {
                    this.old = lock;
                    None
                }
                Err(m) => Some(Diagnostic::new(m).at(Span::from_range(id, &text, 0, 0), "")),
            },
        };
        match problem {
            None => (this, None),
            Some(d) => {
                this.lock_read = false;
                this.failed = true;
                let d = d.hint("restore it from version control, or delete it and run `hsm lock` to write it again");
                (this, Some(d))
            }
        }
    }

    /// The registry `written` as a folder: fetched, resolved and checked out as
    /// needed. Errors are located at `span`, the entry of `registries`.
    pub(crate) fn checkout(&mut self, written: &str, span: Option<Span>) -> Result<Checkout, Box<Diagnostic>> {
        let result = self.try_checkout(written, span);
        self.failed |= result.is_err();
        result.map_err(|d| Box::new(d.at_opt(span, "this registry")))
    }

    fn try_checkout(&mut self, written: &str, span: Option<Span>) -> Result<Checkout, Box<Diagnostic>> {
        let spec = GitSpec::parse(written).map_err(|m| {
            Diagnostic::new(format!("invalid git registry: {m}"))
                .hint("write `git+URL@REF#SUBDIR`, such as `git+https://git.example.com/team/registry.git@v3`")
        })?;
        let cache = self.cache.clone().ok_or_else(|| {
            Diagnostic::new("git registries need hsm's cache folder, and there is none")
                .hint("set `HSM_CACHE_DIR` to a folder (empty, it means no cache), or `XDG_CACHE_HOME` or `HOME`")
        })?;
        let updating = match &self.options.update {
            None => false,
            Some(names) => names.is_empty() || names.iter().any(|n| designates(n, written)),
        };
        let locked = if updating { None } else { self.old.registries.get(written).cloned() };
        let mirror = cache.mirror_dir(&spec.url);
        let offline = self.options.offline;
        let (commit, tree) = match &locked {
            Some(entry) => {
                let tree = cache.tree_dir(&entry.commit);
                if !tree.is_dir() && !cache.has_commit(&mirror, &entry.commit) {
                    if offline {
                        return Err(Diagnostic::new("this registry is not in hsm's cache").into());
                    }
                    cache.fetch(&spec.url)?;
                    if !cache.has_commit(&mirror, &entry.commit) {
                        return Err(Diagnostic::new(format!(
                            "`{}` has no commit `{}`, which hsm.lock pins",
                            spec.url, entry.commit
                        ))
                        .hint(format!("if its history was rewritten, run `hsm lock --update {written}`"))
                        .into());
                    }
                }
                (entry.commit.clone(), cache.checkout(&mirror, &entry.commit, false)?)
            }
            None if offline => return Err(Diagnostic::new(format!("`{LOCK_FILE}` does not pin this registry")).into()),
            None => {
                cache.fetch(&spec.url)?;
                let commit = cache.resolve(&mirror, &spec.url, spec.reference.as_deref())?;
                // A fresh resolution never trusts files already in the cache.
                let tree = cache.checkout(&mirror, &commit, true)?;
                (commit, tree)
            }
        };
        let folder = match &spec.subdir {
            Some(sub) => tree.join(sub),
            None => tree.clone(),
        };
        if !folder.exists() {
            let sub = spec.subdir.as_deref().unwrap_or_default();
            return Err(Diagnostic::new(format!("`{}` has no folder `{sub}` at commit `{commit}`", spec.url))
                .hint("check the name after `#`: a folder of the repository, relative to its root")
                .into());
        }
        self.urls.insert(commit.clone(), spec.url.clone());
        let checkout = Checkout { tree, folder, commit, locked, span };
        self.checkouts.insert(written.to_string(), checkout.clone());
        Ok(checkout)
    }

    /// The checkout of `written`, if it is a git registry read in this load.
    pub(crate) fn get(&self, written: &str) -> Option<&Checkout> {
        self.checkouts.get(written)
    }

    /// How a file of a checkout is shown: `URL@COMMIT:PATH`, as git names it.
    pub(crate) fn display(&self, path: &Path) -> Option<String> {
        let trees = self.cache.as_ref()?.tree_dir("");
        let rest = path.strip_prefix(&trees).ok()?;
        let mut parts = rest.components();
        let commit = parts.next()?.as_os_str().to_string_lossy().into_owned();
        let url = self.urls.get(&commit)?;
        let short = &commit[..commit.len().min(12)];
        Some(format!("{url}@{short}:{}", slashed(parts.as_path())))
    }

    /// Checks what a git registry defines (no editable package, no path outside
    /// its repository), then checks the files read against `hsm.lock`, or records
    /// them for it. `files` are the registry files read.
    pub(crate) fn record(
        &mut self,
        written: &str,
        files: &[(PathBuf, &[u8])],
        packages: &[&PackageDef],
        plugins: &[&PluginDef],
    ) -> Vec<Diagnostic> {
        let Some(co) = self.checkouts.get(written).cloned() else { return Vec::new() };
        let mut diags = Vec::new();
        let mut digests = BTreeMap::new();
        for (path, bytes) in files {
            if let Ok(rel) = path.strip_prefix(&co.tree) {
                digests.insert(slashed(rel), sha256_hex(bytes));
            }
        }
        for p in packages {
            if let Some(SourceDef::Path { path, written: w, editable, span }) = &p.source {
                if *editable {
                    diags.push(
                        Diagnostic::new(format!("package `{}` of a git registry is `editable`", p.name.name))
                            .at(*span, "")
                            .note("a git registry's files are hsm's cached copy, not a checkout to edit")
                            .hint(format!("write `path: {w}`, or override the package in hsm.yaml with `editable: ../your-checkout`")),
                    );
                } else if !path.starts_with(&co.tree) {
                    diags.push(outside(&format!("the folder of package `{}`", p.name.name), *span));
                }
            }
        }
        for p in plugins {
            if !p.path.starts_with(&co.tree) {
                diags.push(outside(&format!("plugin `{}`", p.name.name), p.path_span));
            } else if let (Ok(bytes), Ok(rel)) = (std::fs::read(&p.path), p.path.strip_prefix(&co.tree)) {
                digests.insert(slashed(rel), sha256_hex(&bytes));
            }
        }
        if let Some(locked) = &co.locked
            && let Some(d) = mismatch(written, &co, locked, &digests)
        {
            diags.push(d.at_opt(co.span, "this registry"));
        }
        self.failed |= !diags.is_empty();
        self.new.insert(written.to_string(), LockEntry { commit: co.commit.clone(), files: digests });
        diags
    }

    /// Writes `hsm.lock` if the options allow it, every git registry loaded without
    /// a problem and the lock would change; the error if it can't be written.
    pub(crate) fn finish(self, project_ok: bool) -> Option<Diagnostic> {
        let lock_exists = self.lock_path.exists();
        if !self.options.write_lock || !self.lock_read || self.failed || !project_ok {
            return None;
        }
        // `hsm lock --update NAME` for a NAME that is no git registry here: an
        // error the command reports, and no change.
        if let Some(names) = &self.options.update
            && !names.iter().all(|n| self.checkouts.keys().any(|w| designates(n, w)))
        {
            return None;
        }
        if self.new.is_empty() && !lock_exists {
            return None;
        }
        let lock = LockFile { version: 1, registries: self.new };
        let written = write_if_changed(&self.lock_path, &lock.render());
        written.err().map(|e| Diagnostic::new(format!("cannot write `{}`: {e}", self.lock_path.display())))
    }
}

/// The first difference between the files read and those `hsm.lock` lists.
fn mismatch(written: &str, co: &Checkout, locked: &LockEntry, read: &BTreeMap<String, String>) -> Option<Diagnostic> {
    let hint_update = format!("if the registry is meant to change, run `hsm lock --update {written}`");
    let hint_cache = format!("if hsm's cache was changed, delete `{}` and run hsm again", co.tree.display());
    for (path, digest) in read {
        let d = match locked.files.get(path) {
            Some(want) if want == digest => continue,
            Some(want) => Diagnostic::new(format!("`{path}` of this git registry does not match hsm.lock"))
                .note(format!("commit {}: hsm.lock says sha256 {want}, the file read has {digest}", co.commit)),
            None => Diagnostic::new(format!("`{path}` of this git registry is not in hsm.lock"))
                .note(format!("hsm.lock lists the files read from commit {}", co.commit)),
        };
        return Some(d.hint(hint_cache).hint(hint_update));
    }
    let missing = locked.files.keys().find(|p| !read.contains_key(*p))?;
    Some(
        Diagnostic::new(format!("`{missing}` of this git registry is in hsm.lock but was not read"))
            .hint(hint_cache)
            .hint(hint_update),
    )
}

fn outside(what: &str, span: Span) -> Diagnostic {
    Diagnostic::new(format!("{what} is outside the git registry's repository"))
        .at(span, "")
        .hint("a git registry may only name files of its own repository")
}

/// A relative path with `/` separators.
fn slashed(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")
}
