//! What `hsm plan` printed, kept with a record of everything it was made from, so
//! that a run whose inputs are all as they were prints it again without loading,
//! resolving or planning anything (on a registry of thousands of packages that is
//! the difference between a fraction of a second and a few milliseconds).
//!
//! A plan is a pure function of: hsm's build (each build has its own cache folder),
//! the command line, the files read (`hsm.yaml`, `.env` files, registry files,
//! plugin components), the folders they were found in (a registry folder gaining a
//! file, or a `.env` appearing, changes the plan), the folders of packages' path
//! sources (which must exist), and the process variables interpolation looked up,
//! set or not. The record keeps each file's SHA-256, each folder's `*.yaml` files,
//! the variables' names and a MAC of their values keyed with the user's secret key
//! (so a changed secret is noticed, and nothing about it is written down). Any
//! difference is a miss, and the run does the work and records it again.
//!
//! Each entry carries a MAC over the record and the output, keyed with the user's
//! key: only hsm can have written it. A missing, unreadable, corrupt or forged
//! entry is a miss; failing to write one is not an error. What is printed holds
//! secret references, never values (as every output of hsm).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hsm_model::Sources;
use hsm_runtime::Authenticator;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies the file format; bumped when it or the record changes.
const MAGIC: &[u8; 8] = b"HSMOUT01";

/// What the entry's MAC covers besides the record and the output.
const DOMAIN: &[u8] = b"hsm printed plan";

/// What a printed plan was made from.
#[derive(Serialize, Deserialize, Debug, Default, PartialEq)]
pub(crate) struct Inputs {
    /// The command line as it bears on what is printed.
    args: String,
    /// Each file read: its path, the SHA-256 of its bytes, and how it is shown.
    files: Vec<(PathBuf, [u8; 32], String)>,
    /// Each folder those files are in: its `*.yaml` and `*.yml` files, and whether
    /// it holds a `.env` file.
    folders: Vec<(PathBuf, Vec<String>, bool)>,
    /// Folders that must still be folders: the packages' path sources.
    package_dirs: Vec<PathBuf>,
    /// The process variables interpolation looked up, set or not.
    variables: Vec<String>,
    /// A MAC of those variables' values (or that they are unset).
    values: [u8; 32],
}

/// A project's printed plans (one per way of printing it), authenticated with the
/// user's key.
pub(crate) struct Printed<'k> {
    path: PathBuf,
    auth: &'k dyn Authenticator,
    args: String,
}

/// A printed plan whose inputs are all as they were.
pub(crate) struct Hit {
    /// What to print on stdout: `stdout[start..]`.
    stdout: Vec<u8>,
    start: usize,
    /// How the files read are shown, for `-v`.
    pub(crate) files: Vec<String>,
}

impl Hit {
    /// What to print on stdout.
    pub(crate) fn stdout(&self) -> &[u8] {
        &self.stdout[self.start..]
    }
}

impl<'k> Printed<'k> {
    /// The entry for the project in `project_dir` printed as `variant` (`json`,
    /// `text`, `text-color`), under the cache folder `dir`.
    pub(crate) fn new(dir: &Path, project_dir: &Path, variant: &str, auth: &'k dyn Authenticator) -> Self {
        let canonical = project_dir.canonicalize().unwrap_or_else(|_| project_dir.to_path_buf());
        let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        let path = dir.join("plans").join(format!("{}.{variant}.out", hex::encode(&digest[..12])));
        // The folder as written too: paths are shown relative to it.
        let args = format!("{variant}\0{}", project_dir.display());
        Self { path, auth, args }
    }

    /// What was printed last time, if nothing it was made from has changed since.
    /// `env` is the process environment.
    pub(crate) fn lookup(&self, env: &dyn Fn(&str) -> Option<String>) -> Option<Hit> {
        let mut bytes = std::fs::read(&self.path).ok()?;
        let rest = bytes.strip_prefix(MAGIC)?;
        let (record, rest) = split_framed(rest)?;
        let (stdout, rest) = split_framed(rest)?;
        let (tag, rest) = split_framed(rest)?;
        if !rest.is_empty() || !same(&self.auth.tag(&[DOMAIN, record, stdout]), tag) {
            return None;
        }
        let inputs: Inputs = rmp_serde::from_slice(record).ok()?;
        let unchanged = inputs.args == self.args
            && inputs.values == values_mac(self.auth, &inputs.variables, env)
            && inputs.package_dirs.iter().all(|d| d.is_dir())
            && inputs.folders.iter().all(|(dir, yaml, dotenv)| folder_state(dir) == (yaml.clone(), *dotenv))
            && inputs
                .files
                .iter()
                .all(|(path, digest, _)| std::fs::read(path).is_ok_and(|b| Sha256::digest(&b)[..] == digest[..]));
        if !unchanged {
            return None;
        }
        // The output is the second part: keep only it, without copying it.
        let end = bytes.len() - tag.len() - 8;
        let start = end - stdout.len();
        bytes.truncate(end);
        let files = inputs.files.into_iter().map(|(_, _, shown)| shown).collect();
        Some(Hit { stdout: bytes, start, files })
    }

    /// Records what a run printed and what it was made from. Failing to write is not
    /// an error (this is only a shortcut).
    pub(crate) fn store(&self, made_from: &MadeFrom, env: &dyn Fn(&str) -> Option<String>, stdout: &[u8]) {
        let Some(inputs) = made_from.record(self, env) else { return };
        let Ok(record) = rmp_serde::to_vec(&inputs) else { return };
        let tag = self.auth.tag(&[DOMAIN, &record, stdout]);
        let mut out = Vec::with_capacity(8 + 16 + record.len() + stdout.len() + 32);
        out.extend_from_slice(MAGIC);
        for part in [&record[..], stdout, &tag[..]] {
            out.extend_from_slice(&(part.len() as u64).to_le_bytes());
            out.extend_from_slice(part);
        }
        let _ = write_atomically(&self.path, &out);
    }
}

/// What a plan was made from, as the run that made it knows it.
pub(crate) struct MadeFrom {
    /// Every file read.
    pub(crate) sources: Sources,
    /// The plugin components the project's files declare.
    pub(crate) plugin_files: Vec<PathBuf>,
    /// The packages' path sources.
    pub(crate) package_dirs: Vec<PathBuf>,
    /// The process variables interpolation looked up.
    pub(crate) variables: Vec<String>,
}

impl MadeFrom {
    fn record(&self, printed: &Printed<'_>, env: &dyn Fn(&str) -> Option<String>) -> Option<Inputs> {
        let mut files = Vec::new();
        for (_, f) in self.sources.iter() {
            // Files without a path are compiled into hsm (the bundled registry).
            if let Some(path) = &f.path {
                files.push((path.clone(), Sha256::digest(f.text.as_bytes()).into(), f.display.clone()));
            }
        }
        for path in &self.plugin_files {
            let bytes = std::fs::read(path).ok()?;
            files.push((path.clone(), Sha256::digest(&bytes).into(), path.display().to_string()));
        }
        let mut folders: Vec<PathBuf> =
            files.iter().filter_map(|(p, _, _)| p.parent().map(Path::to_path_buf)).collect();
        folders.sort();
        folders.dedup();
        let folders = folders
            .into_iter()
            .map(|dir| {
                let (yaml, dotenv) = folder_state(&dir);
                (dir, yaml, dotenv)
            })
            .collect();
        Some(Inputs {
            args: printed.args.clone(),
            files,
            folders,
            package_dirs: self.package_dirs.clone(),
            values: values_mac(printed.auth, &self.variables, env),
            variables: self.variables.clone(),
        })
    }
}

/// The `*.yaml` and `*.yml` files in `dir`, sorted, and whether it holds a `.env`
/// file: what decides which files a run reads from it.
fn folder_state(dir: &Path) -> (Vec<String>, bool) {
    let mut yaml: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml") && p.is_file())
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    yaml.sort();
    (yaml, dir.join(".env").is_file())
}

/// A MAC of the variables' values, each marked set or unset.
fn values_mac(auth: &dyn Authenticator, names: &[String], env: &dyn Fn(&str) -> Option<String>) -> [u8; 32] {
    let values: Vec<Option<String>> = names.iter().map(|n| env(n)).collect();
    let mut parts: Vec<&[u8]> = vec![b"variables"];
    for (name, value) in names.iter().zip(&values) {
        parts.push(name.as_bytes());
        match value {
            Some(v) => parts.extend([&b"set"[..], v.as_bytes()]),
            None => parts.push(b"unset"),
        }
    }
    auth.tag(&parts)
}

/// A length-prefixed part, and what follows it.
fn split_framed(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<8>()?;
    let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Compares two MACs in time that doesn't depend on where they differ.
fn same(a: &[u8; 32], b: &[u8]) -> bool {
    b.len() == 32 && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a file whole or not at all, readable by its owner only.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-out-{}", std::process::id()));
    let write = || {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        drop(file);
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
