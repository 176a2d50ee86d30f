//! Loading the plugins compiled into hsm. Their native code is precompiled by the
//! build script and embedded in the binary; every command loads the ones it needs
//! first, so how it gets into memory is felt on every run.
//!
//! Copying it out of the binary (`Component::deserialize`) costs about a page
//! fault per 4 KiB page, twice (the binary's page read, a fresh page written):
//! over a millisecond for the four plugins. So hsm writes each plugin's code once to
//! a file of its own in hsm's cache folder and maps that file
//! (`Component::deserialize_file`), whose pages the kernel already holds: only the
//! pages a call runs are ever touched (the check below reads the embedded code,
//! whose pages the kernel maps in large pieces). The file is used only when it is
//! exactly this build's own output: a regular file, not a link, owned by the user
//! and writable by nobody else, byte for byte the embedded code — all checked
//! through one open descriptor, which is then what wasmtime maps
//! (`/proc/self/fd/N`), so nothing swapped in after the check is run. Anything else
//! — no cache folder, `--no-cache`, a file that differs, another owner — falls
//! back to the copy, which needs no file at all (and rewrites a file that differs;
//! a right file that can't be mapped, on a `noexec` mount say, is left alone).

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::component::Component;

use crate::host::{LoadError, PluginHost};
use crate::plugin::Plugin;
use hsm_check::PluginSource;

/// A bundled plugin: its component and the native code precompiled from it.
pub(crate) struct Bundled {
    pub(crate) name: &'static str,
    /// The kinds it serves, as the build script declares them (its `describe`
    /// must say the same).
    pub(crate) kinds: &'static [&'static str],
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

/// A plugin compiled into hsm, known without loading it: a project loads only
/// the ones serving the kinds it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundledPlugin {
    /// Its name.
    pub name: &'static str,
    /// The kinds it serves.
    pub kinds: &'static [&'static str],
}

/// The plugins compiled into hsm, in the order they are bundled in.
pub fn bundled_plugins() -> impl Iterator<Item = BundledPlugin> {
    BUNDLED.iter().map(|b| BundledPlugin { name: b.name, kinds: b.kinds })
}

impl PluginHost {
    /// Loads every plugin compiled into hsm from the native code embedded in the
    /// binary (see [`PluginHost::load_bundled_from`]).
    pub fn load_bundled(&self) -> Result<Vec<Plugin>, LoadError> {
        self.load_bundled_from(None, &|_| true)
    }

    /// Loads the plugins compiled into hsm that `wanted` picks (by name), in
    /// parallel (the calling thread and one more per further core take the next
    /// plugin in turn, so no more threads are started than there are cores to run
    /// them), in the order they are bundled in. With `code_dir` (a folder of hsm's
    /// cache), each plugin's native code is mapped from a file there, written on
    /// first use; without it, or when the file can't be trusted, it is copied out
    /// of the binary. A plugin's code is loaded once per process: the first call's
    /// `code_dir` is the one used.
    pub fn load_bundled_from(
        &self,
        code_dir: Option<&Path>,
        wanted: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Plugin>, LoadError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let picked: Vec<&'static Bundled> = BUNDLED.iter().filter(|b| wanted(b.name)).collect();
        let next = AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(b) = picked.get(i) else { return done };
                done.push((i, self.load_one_bundled(b, code_dir)));
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut loaded: Vec<(usize, Result<Plugin, LoadError>)> = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..cores.min(picked.len())).map(|_| scope.spawn(work)).collect();
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
        // hsm chose which plugins to load by the kinds the build declared.
        if plugin.info().kinds != b.kinds {
            return Err(LoadError::Invalid {
                source_name: b.name.to_string(),
                message: format!(
                    "it serves the kinds {:?}, but hsm was built to expect {:?} (fix `PLUGINS` in hsm-runtime's build script)",
                    plugin.info().kinds,
                    b.kinds
                ),
            });
        }
        if precompiled {
            plugin.set_precompiled();
        }
        Ok(plugin)
    }

    /// A bundled plugin's component, and whether it came precompiled.
    fn bundled_code(&self, b: &'static Bundled, code_dir: Option<&Path>) -> Result<(Component, bool), LoadError> {
        let file = code_dir.map(|dir| dir.join(format!("{}-{}.cwasm", b.name, b.code_digest)));
        if let Some(own) = file.as_deref().and_then(|path| open_own_code(path, b.cwasm)) {
            // SAFETY: `own` is an open file that holds exactly this build's own
            // output (compared byte for byte just now, through this descriptor,
            // with the code embedded in hsm's binary, which the build script
            // compiled with this engine's configuration), owned by this user and
            // writable by nobody else. wasmtime opens it again as
            // `/proc/self/fd/N`, which names this same open file: a link or a
            // folder swapped in after the check changes nothing. It maps it
            // read-only and checks that it was compiled for this engine.
            #[allow(unsafe_code)]
            let mapped =
                unsafe { Component::deserialize_file(self.engine(), format!("/proc/self/fd/{}", own.as_raw_fd())) };
            match mapped {
                Ok(component) => return Ok((component, true)),
                // The file is right but can't be mapped to run (a `noexec`
                // mount, no `/proc`): copy, and leave the file alone.
                Err(_) => return self.copied_code(b, None),
            }
        }
        self.copied_code(b, file.as_deref())
    }

    /// A bundled plugin's component from the code embedded in the binary, written
    /// to `file` for the next run when there is one.
    fn copied_code(&self, b: &'static Bundled, file: Option<&Path>) -> Result<(Component, bool), LoadError> {
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
                    let _ = write_own_code(path, b.cwasm);
                }
                Ok((component, true))
            }
            Err(_) => Ok((self.compile(b.wasm, b.name)?, false)),
        }
    }
}

/// The file at `path`, open, if it is a regular file (not a link) owned by this
/// user, writable by nobody else, holding exactly `code`. Everything is checked
/// through the one descriptor returned, so what is checked is what is used.
fn open_own_code(path: &Path, code: &[u8]) -> Option<fs::File> {
    let mut file =
        fs::OpenOptions::new().read(true).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32).open(path).ok()?;
    let meta = file.metadata().ok()?;
    let uid = rustix::process::geteuid().as_raw();
    let own = meta.is_file() && meta.uid() == uid && meta.mode() & 0o022 == 0 && meta.len() == code.len() as u64;
    (own && same_bytes(&mut file, code).unwrap_or(false)).then_some(file)
}

/// Whether `file`, read from where it stands, holds exactly `code`, a piece at a
/// time (no copy of the whole file is made).
fn same_bytes(file: &mut fs::File, code: &[u8]) -> io::Result<bool> {
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
/// name), creating the folder owner-only when it is missing.
fn write_own_code(path: &Path, code: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no folder"))?;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = path.file_name().unwrap_or_default().display();
    let temp: PathBuf = dir.join(format!(".{name}.{}-{nanos}.tmp", std::process::id()));
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
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn holds_own_code(path: &Path, code: &[u8]) -> bool {
        open_own_code(path, code).is_some()
    }

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
        // What is checked is what is used: the open file, even if the name is
        // then given to another.
        let checked = open_own_code(&path, &code).unwrap();
        fs::write(path.with_file_name("other"), &other).unwrap();
        fs::rename(path.with_file_name("other"), &path).unwrap();
        let mut through_proc = fs::File::open(format!("/proc/self/fd/{}", checked.as_raw_fd())).unwrap();
        assert!(same_bytes(&mut through_proc, &code).unwrap());
        assert!(!holds_own_code(&path, &code));
        write_own_code(&path, &code).unwrap();
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
