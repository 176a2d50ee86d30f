//! What `hsm plan` printed, kept with a record of everything it was made from, so
//! that a run whose inputs are all as they were prints it again without loading,
//! resolving or planning anything (on a registry of thousands of packages that is
//! the difference between a fraction of a second and a few milliseconds).
//!
//! A plan is a pure function of: hsm's build (each build has its own cache folder,
//! and the folder is under the entries' MAC), the project folder as the loader
//! sees it and how the plan is printed (in the entry's name and under its MAC), the
//! files read (`hsm.yaml`, `.env` files, registry files) and the third-party plugin
//! components, what the load saw of the file system besides them (which registry
//! files each registry folder held, whether a `.env` was there), the folders of
//! packages' path sources (which must exist), and the process variables
//! interpolation looked up, set or not. The record keeps each file's SHA-256 as
//! read (a plugin's as pinned and verified), the folders' listings as the load made
//! them, and the variables' names with a MAC of their values keyed with the user's
//! secret key (a changed secret is noticed; nothing about it is written down). Any
//! difference is a miss, and the run does the work and records it again.
//!
//! The output is written to the entry as it is printed (a large plan is tens of
//! MiB; it is never held whole in memory), then the record, then a MAC over the
//! entry's place, the record and the output's BLAKE3 digest, keyed with the user's key:
//! only hsm can have written it, for this project and build. A
//! missing, unreadable, corrupt or forged entry is a miss; failing to write one is
//! not an error. What is printed holds secret references, never values (as every
//! output of hsm).

use std::io::Write;
use std::path::{Path, PathBuf};

use hsm_config::Observed;
use hsm_model::cache::EntryWriter;
use hsm_model::{Authenticator, Sources, tags_equal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies the file format; bumped when it or the record changes.
const MAGIC: &[u8; 8] = b"HSMOUT05";

/// The end of an entry: the output's and the record's lengths, the output's
/// BLAKE3 digest (tens of MB hashed on every write and every hit: a third of
/// SHA-256's time), then the MAC (over the record and that digest). A lookup checks the
/// small record first and reads the large output only when the record matches.
const TRAILER: usize = 8 + 8 + 32 + 32;

/// What the entry's MAC covers besides its place, the record and the output.
const DOMAIN: &[u8] = b"hsm printed plan";

/// What the MAC of the variables' values covers besides them.
const VALUES_DOMAIN: &[u8] = b"hsm printed plan: variables";

/// Printed plans are tens of MiB for the largest projects we know (22 MiB of JSON
/// for 10,000 packages); anything much bigger was not written here.
const MAX_ENTRY: u64 = 512 << 20;

/// What a printed plan was made from.
#[derive(Serialize, Deserialize)]
struct Inputs {
    /// Each file read: its path, the SHA-256 of its bytes, and how it is shown.
    files: Vec<(PathBuf, [u8; 32], String)>,
    /// Each registry folder read, with its registry files.
    folders: Vec<(PathBuf, Vec<String>)>,
    /// Where a `.env` was looked for, and whether it was there.
    dotenv: Option<(PathBuf, bool)>,
    /// Folders that must still be folders: the packages' path sources.
    package_dirs: Vec<PathBuf>,
    /// The process variables interpolation looked up, set or not.
    variables: Vec<String>,
    /// A MAC of those variables' values (or that they are unset).
    values: [u8; 32],
}

/// A project's printed plan, for one way of printing it.
pub(crate) struct Printed {
    path: PathBuf,
}

/// A printed plan whose inputs are all as they were.
pub(crate) struct Hit {
    /// What to print on stdout.
    stdout: Vec<u8>,
    /// How the files read are shown, for `-v`.
    pub(crate) files: Vec<String>,
}

impl Hit {
    /// What to print on stdout.
    pub(crate) fn stdout(&self) -> &[u8] {
        &self.stdout
    }
}

/// What a plan was made from, as the run that made it knows it.
pub(crate) struct MadeFrom {
    /// The project folder, as the loader saw it.
    pub(crate) project_dir: PathBuf,
    /// Every file read.
    pub(crate) sources: Sources,
    /// What the load saw of the file system besides those files.
    pub(crate) observed: Observed,
    /// The third-party plugin components, with the SHA-256 (hex) they are pinned to
    /// and were checked against when loaded.
    pub(crate) plugins: Vec<(PathBuf, String)>,
    /// The packages' path sources.
    pub(crate) package_dirs: Vec<PathBuf>,
    /// The process variables interpolation looked up.
    pub(crate) variables: Vec<String>,
}

impl Printed {
    /// The entry, under the cache folder `dir`, for the project in `project_dir`
    /// (as given on the command line) printed as `variant` (`json`, `text`,
    /// `text-color`).
    pub(crate) fn new(dir: &Path, project_dir: &Path, variant: &str) -> Self {
        // The folder exactly as the loader will see it (absolute, without `.` and
        // `..`, links not resolved): shown paths, and paths relative to it, depend
        // on it.
        let seen = std::path::absolute(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
        let seen = hsm_config::load::normalize(&seen);
        let digest = Sha256::digest(seen.as_os_str().as_encoded_bytes());
        Self { path: dir.join("plans").join(format!("{}.{variant}.out", hex::encode(&digest[..16]))) }
    }

    /// The entry's MAC: over its place too (the build's folder, the project, the
    /// way of printing), so that an entry copied anywhere else never verifies.
    fn tag(&self, auth: &dyn Authenticator, record: &[u8], stdout_digest: &[u8; 32]) -> [u8; 32] {
        auth.tag(&[DOMAIN, self.path.as_os_str().as_encoded_bytes(), record, stdout_digest])
    }

    /// What was printed last time, if nothing it was made from has changed since.
    /// `env` is the process environment.
    pub(crate) fn lookup(&self, auth: &dyn Authenticator, env: &dyn Fn(&str) -> Option<String>) -> Option<Hit> {
        use std::os::unix::fs::FileExt as _;
        // MAGIC, the output, the record, then the trailer.
        let (file, len) = hsm_model::cache::open_entry(&self.path, MAX_ENTRY)?;
        let at = |offset: u64, n: usize| -> Option<Vec<u8>> {
            let mut bytes = vec![0; n];
            file.read_exact_at(&mut bytes, offset).ok()?;
            Some(bytes)
        };
        let head = (MAGIC.len() + TRAILER) as u64;
        if len < head || at(0, MAGIC.len())? != MAGIC {
            return None;
        }
        let trailer = at(len - TRAILER as u64, TRAILER)?;
        let (stdout_len, rest) = split_u64(&trailer)?;
        let (record_len, rest) = split_u64(rest)?;
        let (digest, tag) = rest.split_first_chunk::<32>()?;
        if (stdout_len as u64).checked_add(record_len as u64)?.checked_add(head)? != len {
            return None;
        }
        let record = at(MAGIC.len() as u64 + stdout_len as u64, record_len)?;
        if !tags_equal(&self.tag(auth, &record, digest), tag) {
            return None;
        }
        let inputs: Inputs = rmp_serde::from_slice(&record).ok()?;
        let unchanged = tags_equal(&values_mac(auth, &inputs.variables, env), &inputs.values)
            && inputs.package_dirs.iter().all(|d| d.is_dir())
            && inputs.dotenv.iter().all(|(path, was)| path.is_file() == *was)
            && inputs.folders.iter().all(|(dir, names)| names_in(dir).as_ref() == Some(names))
            && inputs.files.iter().all(|(path, digest, _)| std::fs::read(path).is_ok_and(|b| *digest == sha256(&b)));
        if !unchanged {
            return None;
        }
        // Only now the output, checked against the digest the MAC covers (read
        // into fresh capacity: tens of MB need not be zeroed first).
        let mut stdout = Vec::with_capacity(stdout_len);
        let mut reader = &file;
        std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(MAGIC.len() as u64)).ok()?;
        std::io::Read::read_to_end(&mut std::io::Read::take(reader, stdout_len as u64), &mut stdout).ok()?;
        if stdout.len() != stdout_len {
            return None;
        }
        if blake3::hash(&stdout).as_bytes() != digest {
            return None;
        }
        let files = inputs.files.into_iter().map(|(_, _, shown)| shown).collect();
        Some(Hit { stdout, files })
    }

    /// Starts keeping what is about to be printed; `None` if the entry can't be
    /// written (then nothing is kept).
    pub(crate) fn begin(&self) -> Option<Recording> {
        let mut entry = EntryWriter::create(&self.path).ok()?;
        entry.write_all(MAGIC).ok()?;
        Some(Recording { entry, digest: blake3::Hasher::new(), len: 0, failed: false })
    }

    /// Finishes keeping what was printed through `recording`, with a record of what
    /// it was made from. Failing to write is not an error (this is only a shortcut).
    pub(crate) fn finish(
        &self,
        recording: Recording,
        auth: &dyn Authenticator,
        made_from: &MadeFrom,
        env: &dyn Fn(&str) -> Option<String>,
    ) {
        let Recording { mut entry, digest, len, failed } = recording;
        if failed {
            return;
        }
        let Some(inputs) = made_from.record(auth, env) else { return };
        let Ok(record) = rmp_serde::to_vec(&inputs) else { return };
        let digest: [u8; 32] = digest.finalize().into();
        let tag = self.tag(auth, &record, &digest);
        let written = entry
            .write_all(&record)
            .and_then(|()| entry.write_all(&len.to_le_bytes()))
            .and_then(|()| entry.write_all(&(record.len() as u64).to_le_bytes()))
            .and_then(|()| entry.write_all(&digest))
            .and_then(|()| entry.write_all(&tag));
        if written.is_ok() {
            let _ = entry.commit();
        }
    }
}

/// What is being printed, on its way into an entry as well.
pub(crate) struct Recording {
    entry: EntryWriter,
    digest: blake3::Hasher,
    len: u64,
    /// Set when writing the entry failed: it is then dropped, not committed.
    failed: bool,
}

/// Writes to `out` and, when there is a recording, into it too: what is printed is
/// kept as it is printed.
pub(crate) struct Tee<'a, W> {
    /// Where the output goes.
    pub(crate) out: W,
    /// The entry it also goes into.
    pub(crate) recording: Option<&'a mut Recording>,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(r) = self.recording.as_deref_mut() {
            r.failed |= r.entry.write_all(&buf[..n]).is_err();
            r.digest.update(&buf[..n]);
            r.len += n as u64;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl MadeFrom {
    fn record(&self, auth: &dyn Authenticator, env: &dyn Fn(&str) -> Option<String>) -> Option<Inputs> {
        let mut files = Vec::new();
        for (_, f) in self.sources.iter() {
            // Files without a path are compiled into hsm (the bundled registry).
            if let Some(path) = &f.path {
                files.push((path.clone(), sha256(f.text.as_bytes()), f.display.clone()));
            }
        }
        for (path, pinned) in &self.plugins {
            let digest: [u8; 32] = hex::decode(pinned).ok()?.try_into().ok()?;
            files.push((path.clone(), digest, hsm_config::load::display_path(&self.project_dir, path)));
        }
        Some(Inputs {
            files,
            folders: self.observed.folders.clone(),
            dotenv: self.observed.dotenv.clone(),
            package_dirs: self.package_dirs.clone(),
            values: values_mac(auth, &self.variables, env),
            variables: self.variables.clone(),
        })
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The names of the registry files in `dir`, as the loader lists them.
fn names_in(dir: &Path) -> Option<Vec<String>> {
    let paths = hsm_config::registry_files(dir).ok()?;
    Some(paths.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect())
}

/// A MAC of the variables' values, each marked set or unset.
fn values_mac(auth: &dyn Authenticator, names: &[String], env: &dyn Fn(&str) -> Option<String>) -> [u8; 32] {
    let values: Vec<Option<String>> = names.iter().map(|n| env(n)).collect();
    let mut parts: Vec<&[u8]> = vec![VALUES_DOMAIN];
    for (name, value) in names.iter().zip(&values) {
        parts.push(name.as_bytes());
        match value {
            Some(v) => parts.extend([&b"set"[..], v.as_bytes()]),
            None => parts.push(b"unset"),
        }
    }
    auth.tag(&parts)
}

/// A little-endian `u64` as a length, and what follows it.
fn split_u64(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<8>()?;
    Some((usize::try_from(u64::from_le_bytes(*n)).ok()?, rest))
}

#[cfg(test)]
mod tests {
    use hsm_model::cache::testing::TestKey;

    use super::*;

    const KEY: TestKey = TestKey(1);

    /// A project folder with `hsm.yaml`, a registry folder and a package folder, and
    /// what a run that read them would record.
    fn project() -> (tempfile::TempDir, MadeFrom) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("reg")).unwrap();
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("hsm.yaml"), "project: p\n").unwrap();
        std::fs::write(root.join("reg/a.yaml"), "packages: {}\n").unwrap();
        let mut sources = Sources::new();
        for name in ["hsm.yaml", "reg/a.yaml"] {
            let path = root.join(name);
            sources.add(name, Some(&path), std::fs::read_to_string(&path).unwrap());
        }
        let made_from = MadeFrom {
            project_dir: root.to_path_buf(),
            sources,
            observed: Observed {
                folders: vec![(root.join("reg"), vec!["a.yaml".into()])],
                dotenv: Some((root.join(".env"), false)),
            },
            plugins: Vec::new(),
            package_dirs: vec![root.join("pkg")],
            variables: vec!["SET".into(), "UNSET".into()],
        };
        (dir, made_from)
    }

    fn env(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_string())
    }

    fn stored(dir: &Path, made_from: &MadeFrom) -> Printed {
        let printed = Printed::new(&dir.join("cache"), dir, "json");
        let mut recording = printed.begin().unwrap();
        let mut printed_out = Vec::new();
        let mut tee = Tee { out: &mut printed_out, recording: Some(&mut recording) };
        tee.write_all(b"{\"plan\": ").unwrap();
        tee.write_all(b"1}\n").unwrap();
        printed.finish(recording, &KEY, made_from, &env);
        assert_eq!(printed_out, b"{\"plan\": 1}\n", "printed as it is kept");
        printed
    }

    #[test]
    fn a_plan_is_printed_again_while_nothing_changed() {
        let (dir, made_from) = project();
        let printed = stored(dir.path(), &made_from);
        let hit = printed.lookup(&KEY, &env).expect("unchanged");
        assert_eq!(hit.stdout(), b"{\"plan\": 1}\n");
        assert_eq!(hit.files, ["hsm.yaml", "reg/a.yaml"]);
        // Other ways of printing are other entries.
        assert!(Printed::new(&dir.path().join("cache"), dir.path(), "text").lookup(&KEY, &env).is_none());
    }

    #[test]
    fn any_change_to_what_it_was_made_from_is_a_miss() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 6] = [
            ("a file read changes", |d| std::fs::write(d.join("reg/a.yaml"), "packages: { x: {} }\n").unwrap()),
            ("a registry file appears", |d| std::fs::write(d.join("reg/b.yml"), "").unwrap()),
            ("a .env appears", |d| std::fs::write(d.join(".env"), "A=1\n").unwrap()),
            ("a package folder goes", |d| std::fs::remove_dir(d.join("pkg")).unwrap()),
            ("a file read goes", |d| std::fs::remove_file(d.join("hsm.yaml")).unwrap()),
            ("a registry file becomes a folder", |d| {
                std::fs::remove_file(d.join("reg/a.yaml")).unwrap();
                std::fs::create_dir(d.join("reg/a.yaml")).unwrap();
            }),
        ];
        for (what, change) in changes {
            let (dir, made_from) = project();
            let printed = stored(dir.path(), &made_from);
            assert!(printed.lookup(&KEY, &env).is_some(), "{what}: before");
            change(dir.path());
            assert!(printed.lookup(&KEY, &env).is_none(), "{what}: still reused");
        }
    }

    #[test]
    fn a_plugin_counts_by_the_digest_it_was_pinned_to() {
        let (dir, mut made_from) = project();
        let plugin = dir.path().join("plugins/x.wasm");
        std::fs::create_dir_all(plugin.parent().unwrap()).unwrap();
        std::fs::write(&plugin, b"\0asm component").unwrap();
        made_from.plugins = vec![(plugin.clone(), hex::encode(sha256(b"\0asm component")))];
        let printed = stored(dir.path(), &made_from);
        let hit = printed.lookup(&KEY, &env).expect("unchanged");
        assert_eq!(hit.files, ["hsm.yaml", "reg/a.yaml", "plugins/x.wasm"]);
        std::fs::write(&plugin, b"\0asm another one").unwrap();
        assert!(printed.lookup(&KEY, &env).is_none(), "the component changed");

        // A pin that is not a SHA-256 (the load would have refused it): nothing kept.
        made_from.plugins = vec![(plugin, "not hex".into())];
        let printed = Printed::new(&dir.path().join("cache2"), dir.path(), "json");
        let recording = printed.begin().unwrap();
        printed.finish(recording, &KEY, &made_from, &env);
        assert!(printed.lookup(&KEY, &env).is_none());
    }

    #[test]
    fn a_printout_that_did_not_finish_is_not_kept() {
        let (dir, made_from) = project();
        let printed = stored(dir.path(), &made_from);
        // Printing stops halfway (a closed pipe, Ctrl-C): the recording is dropped.
        let mut recording = printed.begin().unwrap();
        Tee { out: Vec::new(), recording: Some(&mut recording) }.write_all(b"{\"pl").unwrap();
        drop(recording);
        assert_eq!(printed.lookup(&KEY, &env).unwrap().stdout(), b"{\"plan\": 1}\n", "the last whole one stays");
        let files: Vec<_> = std::fs::read_dir(printed.path.parent().unwrap()).unwrap().collect();
        assert_eq!(files.len(), 1, "no temporary file is left");
    }

    #[test]
    fn variables_count_by_value_and_by_being_set() {
        let (dir, made_from) = project();
        let printed = stored(dir.path(), &made_from);
        assert!(printed.lookup(&KEY, &|n| (n == "SET").then(|| "other".into())).is_none(), "a value changed");
        assert!(printed.lookup(&KEY, &|n| (n == "SET" || n == "UNSET").then(|| "value".into())).is_none(), "set");
        assert!(printed.lookup(&KEY, &|_| None).is_none(), "unset");
        assert!(printed.lookup(&KEY, &|n| (n != "UNSET").then(|| "value".into())).is_some(), "others don't count");
        // The value is not in the entry.
        let bytes = std::fs::read(&printed.path).unwrap();
        assert!(!bytes.windows(5).any(|w| w == b"value"));
    }

    #[test]
    fn entries_made_elsewhere_or_changed_are_misses() {
        let (dir, made_from) = project();
        let printed = stored(dir.path(), &made_from);
        assert!(printed.lookup(&TestKey(2), &env).is_none(), "another user's key");

        // The output changed in place, same length: its MAC fails.
        let mut bytes = std::fs::read(&printed.path).unwrap();
        let at = bytes.windows(4).position(|w| w == b"plan").unwrap();
        bytes[at..at + 4].copy_from_slice(b"evil");
        std::fs::write(&printed.path, &bytes).unwrap();
        assert!(printed.lookup(&KEY, &env).is_none());

        // The output's digest in the trailer changed: the MAC covers it.
        let printed = stored(dir.path(), &made_from);
        let mut bytes = std::fs::read(&printed.path).unwrap();
        let digest_at = bytes.len() - 64;
        bytes[digest_at] ^= 1;
        std::fs::write(&printed.path, &bytes).unwrap();
        assert!(printed.lookup(&KEY, &env).is_none());

        // A valid entry copied to another project's place.
        let printed = stored(dir.path(), &made_from);
        let other = Printed::new(&dir.path().join("cache"), &dir.path().join("pkg"), "json");
        std::fs::copy(&printed.path, &other.path).unwrap();
        assert!(other.lookup(&KEY, &env).is_none());
        // Truncated.
        let bytes = std::fs::read(&printed.path).unwrap();
        std::fs::write(&printed.path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(printed.lookup(&KEY, &env).is_none());
    }

    #[test]
    fn the_project_folder_counts_as_the_loader_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let a = Printed::new(&cache, &dir.path().join("x/../p"), "json");
        assert_eq!(a.path, Printed::new(&cache, &dir.path().join("p"), "json").path);
        // Through a link is another folder to the loader (relative paths go elsewhere).
        std::fs::create_dir(dir.path().join("p")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("p"), dir.path().join("link")).unwrap();
        assert_ne!(a.path, Printed::new(&cache, &dir.path().join("link"), "json").path);
    }
}
