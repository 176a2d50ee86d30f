//! Loading the plugins compiled into hsm. Their native code is precompiled by the
//! build script and embedded in the binary; every command loads the ones it needs
//! first, so how it gets into memory is felt on every run.
//!
//! Copying it out of the binary (`Component::deserialize`) costs about a page
//! fault per 4 KiB page, twice (the binary's page read, a fresh page written):
//! over a millisecond for the four plugins. So hsm writes each plugin's code once to
//! a file of its own in hsm's cache folder and maps that file
//! (`Component::deserialize_file`), whose pages the kernel already holds: only the
//! pages a call runs are ever touched. The file is used only when it is exactly
//! this build's own output: a regular file, in an owner-only folder, owned by the
//! user and writable by nobody else, byte for byte the embedded code (compared
//! before every use). Anything else — no cache folder, `--no-cache`, a file that
//! differs, another owner — falls back to the copy, which needs no file at all.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::component::Component;

use crate::host::{LoadError, PluginHost};
use crate::info::PluginSource;
use crate::plugin::Plugin;

/// A bundled plugin: its component and the native code precompiled from it.
pub(crate) struct Bundled {
    pub(crate) name: &'static str,
    pub(crate) wasm: &'static [u8],
    pub(crate) cwasm: &'static [u8],
    /// The sha256 of `wasm`, hex.
    pub(crate) sha256: &'static str,
    /// The start of the sha256 of `cwasm`, hex: names its file, so builds never
    /// share one.
    pub(crate) code_digest: &'static str,
    /// Its component once loaded (with whether it came precompiled), shared by
    /// every host of the process.
    pub(crate) code: OnceLock<Result<(Component, bool), LoadError>>,
}

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

impl PluginHost {
    /// Loads the plugins compiled into hsm from the native code embedded in the
    /// binary (see [`PluginHost::load_bundled_from`]).
    pub fn load_bundled(&self) -> Result<Vec<Plugin>, LoadError> {
        self.load_bundled_from(None)
    }

    /// Loads the plugins compiled into hsm, in parallel (the calling thread and one
    /// more per further core take the next plugin in turn, so no more threads are
    /// started than there are cores to run them). With `code_dir` (a folder of
    /// hsm's cache), each plugin's native code is mapped from a file there, written
    /// on first use; without it, or when the file can't be trusted, it is copied
    /// out of the binary.
    pub fn load_bundled_from(&self, code_dir: Option<&Path>) -> Result<Vec<Plugin>, LoadError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let all = &BUNDLED;
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = all.get(i) else { return done };
                done.push((i, self.load_one_bundled(b, code_dir)));
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut loaded: Vec<(usize, Result<Plugin, LoadError>)> = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..cores.min(all.len())).map(|_| scope.spawn(work)).collect();
            let mut loaded = work();
            for helper in helpers {
                loaded.extend(helper.join().expect("loading a bundled plugin panicked"));
            }
            loaded
        });
        // In the order they are bundled in, whichever thread loaded them.
        loaded.sort_by_key(|(i, _)| *i);
        loaded.into_iter().map(|(_, plugin)| plugin).collect()
    }

    fn load_one_bundled(&self, b: &'static Bundled, code_dir: Option<&Path>) -> Result<Plugin, LoadError> {
        // Once per process: every host shares the one engine, so the code loaded
        // for the first serves every later load.
        let (component, precompiled) = b.code.get_or_init(|| self.bundled_code(b, code_dir)).clone()?;
        let mut plugin = self.finish_load(component, PluginSource::Bundled, b.sha256.to_string(), b.name)?;
        if precompiled {
            plugin.set_precompiled();
        }
        Ok(plugin)
    }

    /// A bundled plugin's component, and whether it came precompiled.
    fn bundled_code(&self, b: &'static Bundled, code_dir: Option<&Path>) -> Result<(Component, bool), LoadError> {
        let file = code_dir.map(|dir| dir.join(format!("{}-{}.cwasm", b.name, b.code_digest)));
        if let Some(path) = file.as_deref().filter(|path| holds_own_code(path, b.cwasm)) {
            // SAFETY: the file holds exactly this build's own output (compared
            // byte for byte just now with the code embedded in hsm's binary, which
            // the build script compiled with this engine's configuration), and
            // only its owner, this user, can change it or its folder (checked
            // too). wasmtime maps it read-only and checks that it was compiled for
            // this engine.
            #[allow(unsafe_code)]
            if let Ok(component) = unsafe { Component::deserialize_file(self.engine(), path) } {
                return Ok((component, true));
            }
        }
        // SAFETY: `cwasm` is this build's own output: the build script compiled it
        // from `wasm` with this engine's configuration (`engine_config`), and it is
        // embedded in hsm's binary, which nothing else writes. wasmtime copies it
        // into memory of its own. If the machine differs from the build machine
        // (other CPU features), wasmtime refuses it and we compile the embedded
        // component instead.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize(self.engine(), b.cwasm) } {
            Ok(component) => {
                if let Some(path) = file {
                    // For the next run; a cache that can't be written is no error.
                    let _ = write_own_code(&path, b.cwasm);
                }
                Ok((component, true))
            }
            Err(_) => Ok((self.compile(b.wasm, b.name)?, false)),
        }
    }
}

/// Whether `path` is a file only this user can change, in a folder only this user
/// can change, holding exactly `code`.
fn holds_own_code(path: &Path, code: &[u8]) -> bool {
    let uid = rustix::process::geteuid().as_raw();
    let private = |m: &fs::Metadata| m.uid() == uid && m.mode() & 0o022 == 0;
    let Some(dir) = path.parent() else { return false };
    let folder_ok = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && private(&m));
    // `symlink_metadata` and no following: a link there is not hsm's file.
    let file_ok = fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && private(&m) && m.len() == code.len() as u64);
    folder_ok && file_ok && same_bytes(path, code).unwrap_or(false)
}

/// Whether the file at `path` holds exactly `code`, read a piece at a time (no
/// copy of the whole file is made).
fn same_bytes(path: &Path, code: &[u8]) -> io::Result<bool> {
    let mut file =
        fs::OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(path)?;
    let mut buf = vec![0u8; 64 << 10];
    let mut at = 0;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(at == code.len());
        }
        if code.get(at..at + n) != Some(&buf[..n]) {
            return Ok(false);
        }
        at += n;
    }
}

/// Writes `code` to `path` for later runs: through an owner-only temporary file
/// renamed into place (a run that stops halfway leaves no partial file under the
/// name), in a folder made owner-only.
fn write_own_code(path: &Path, code: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no folder"))?;
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    let temp: PathBuf =
        dir.join(format!(".{}.{}.tmp", path.file_name().unwrap_or_default().display(), std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(code)?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code() -> Vec<u8> {
        (0..200_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn a_file_hsm_wrote_is_trusted_and_anything_else_is_not() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("bundled/postgres-0123.cwasm");
        let code = code();
        write_own_code(&path, &code).unwrap();
        assert!(holds_own_code(&path, &code));
        let folder_mode = fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777;
        assert_eq!(folder_mode, 0o700);
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1, "no temporary file left");

        // One byte changed, in the middle of a later piece.
        let mut other = code.clone();
        other[150_000] ^= 1;
        assert!(!holds_own_code(&path, &other));
        // Shorter or longer.
        assert!(!holds_own_code(&path, &code[..code.len() - 1]));
        // Writable by others.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o622)).unwrap();
        assert!(!holds_own_code(&path, &code));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(holds_own_code(&path, &code));
        // In a folder others can write to.
        fs::set_permissions(path.parent().unwrap(), fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!holds_own_code(&path, &code));
        fs::set_permissions(path.parent().unwrap(), fs::Permissions::from_mode(0o700)).unwrap();
        // A link to a file with the right bytes.
        let elsewhere = root.path().join("elsewhere.cwasm");
        fs::write(&elsewhere, &code).unwrap();
        let link = path.with_file_name("link.cwasm");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(!holds_own_code(&link, &code));
        // Missing.
        assert!(!holds_own_code(&path.with_file_name("missing.cwasm"), &code));
    }

    #[test]
    fn a_bundled_plugins_file_is_written_on_first_use_mapped_after_and_repaired_when_changed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("bundled");
        let host = PluginHost::default();
        let b = &BUNDLED[0];
        let path = dir.join(format!("{}-{}.cwasm", b.name, b.code_digest));
        let load = || {
            let (component, precompiled) = host.bundled_code(b, Some(&dir)).unwrap();
            assert!(precompiled);
            host.finish_load(component, PluginSource::Bundled, b.sha256.to_string(), b.name).unwrap()
        };
        assert!(!path.exists());
        assert_eq!(load().name(), b.name, "copied from the binary");
        assert!(holds_own_code(&path, b.cwasm), "and written for the next run");
        assert_eq!(load().name(), b.name, "mapped from the file");
        // A file that no longer holds the code is not run, and is rewritten.
        let mut changed = fs::read(&path).unwrap();
        let middle = changed.len() / 2;
        changed[middle] ^= 0xff;
        fs::write(&path, &changed).unwrap();
        assert_eq!(load().name(), b.name);
        assert!(holds_own_code(&path, b.cwasm));
        // Without a folder nothing is written.
        assert!(host.bundled_code(b, None).is_ok());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }
}
