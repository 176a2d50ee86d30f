//! The files hsm writes for a plugin, and the bind-mount sources it hands Docker,
//! all inside the plugin's folder `.hsm/<plugin>/`. Every access goes through a
//! capability-scoped directory (cap-std): a path that climbs out — by `..`, by being
//! absolute, or through a symlink anywhere on the way — fails, even when the host's
//! check of the plan was somehow passed.

use std::io;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use crate::names::ProjectId;

/// A plugin's folder, opened as a capability.
pub(crate) struct PluginDir {
    dir: Dir,
    root: PathBuf,
}

impl PluginDir {
    /// Opens (creating it if needed) `.hsm/<plugin>/`. The folder itself must be a
    /// real folder, not a symlink to somewhere else.
    pub(crate) fn open(project: &ProjectId, plugin: &str) -> io::Result<Self> {
        let valid = !plugin.is_empty()
            && plugin.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !plugin.starts_with('-');
        if !valid {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("`{plugin}` is not a plugin name")));
        }
        let hsm = crate::state::ensure_hsm_dir(project).map_err(|e| io::Error::other(e.to_string()))?;
        let hsm_dir = Dir::open_ambient_dir(&hsm, ambient_authority())?;
        match hsm_dir.symlink_metadata(plugin) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`.hsm/{plugin}` is not a folder (a symlink or a file is not allowed there)"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => hsm_dir.create_dir(plugin)?,
            Err(e) => return Err(e),
        }
        Ok(Self { dir: hsm_dir.open_dir(plugin)?, root: hsm.join(plugin) })
    }

    /// Checks, changing nothing, that `rel` in `.hsm/<plugin>/` does not lead out of
    /// it: the folder is a real folder (or absent), and no symlink on the way leads
    /// elsewhere. What is missing is fine: hsm creates it later, inside. With
    /// `followed` false (a file hsm writes, which replaces whatever is there), only
    /// the folders on the way count; with it true (a bind source Docker follows),
    /// `rel` itself does too.
    pub(crate) fn check_inside(project: &ProjectId, plugin: &str, rel: &str, followed: bool) -> io::Result<()> {
        let rel = rel.trim_start_matches('/');
        let rel = if followed { rel } else { Path::new(rel).parent().and_then(Path::to_str).unwrap_or("") };
        if rel.is_empty() {
            return Ok(());
        }
        let folder = project.hsm_dir().join(plugin);
        match folder.symlink_metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(m) if !m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`.hsm/{plugin}` is not a folder (a symlink or a file is not allowed there)"),
                ));
            }
            Ok(_) => {}
        }
        let files = Self { dir: Dir::open_ambient_dir(&folder, ambient_authority())?, root: folder };
        match files.dir.metadata(rel) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut on_the_way = PathBuf::new();
                for part in Path::new(rel).components() {
                    on_the_way.push(part);
                    let symlink = files.dir.symlink_metadata(&on_the_way).is_ok_and(|m| m.file_type().is_symlink());
                    if symlink && let Err(e) = files.dir.metadata(&on_the_way) {
                        return Err(files.explain(rel, e));
                    }
                }
                Ok(())
            }
            Err(e) => Err(files.explain(rel, e)),
        }
    }

    /// Writes `contents` to `rel` (creating folders on the way) unless the file
    /// already holds them; returns whether it wrote. The new file replaces the old
    /// one in one step, so readers never see half of it.
    pub(crate) fn write(&self, rel: &str, contents: &[u8]) -> io::Result<bool> {
        self.write_inside(rel, contents).map_err(|e| self.explain(rel, e))
    }

    fn write_inside(&self, rel: &str, contents: &[u8]) -> io::Result<bool> {
        let rel = Path::new(rel);
        if self.dir.read(rel).is_ok_and(|old| old == contents) {
            return Ok(false);
        }
        let name = rel.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if !parent.as_os_str().is_empty() {
            self.dir.create_dir_all(parent)?;
        }
        let tmp = parent.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
        let written = self.dir.write(&tmp, contents).and_then(|()| self.dir.rename(&tmp, &self.dir, rel));
        if written.is_err() {
            let _ = self.dir.remove_file(&tmp);
        }
        written.map(|()| true)
    }

    /// The host path of `rel`, for Docker to bind-mount, after checking through the
    /// capability that it stays inside the folder. A missing source is created as a
    /// folder (Docker would otherwise create it, owned by root).
    pub(crate) fn bind_source(&self, rel: &str) -> io::Result<PathBuf> {
        let rel = rel.trim_start_matches('/');
        match self.dir.metadata(rel) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.dir.create_dir_all(rel).map_err(|e| self.explain(rel, e))?;
            }
            Err(e) => return Err(self.explain(rel, e)),
        }
        // `metadata` follows symlinks only while they stay inside; a symlink that
        // resolves outside has failed above.
        Ok(self.root.join(rel))
    }

    /// Says what was refused and why when an access to `rel` failed: cap-std's
    /// own error for a symlink that leads out is a bare "File exists" or
    /// "Operation not permitted". A symlink on the way is named; other errors
    /// are kept, with the path.
    fn explain(&self, rel: &str, e: io::Error) -> io::Error {
        let folder = self.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut on_the_way = PathBuf::new();
        for part in Path::new(rel).components() {
            on_the_way.push(part);
            if self.dir.symlink_metadata(&on_the_way).is_ok_and(|m| m.file_type().is_symlink()) {
                return io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "refused to use `.hsm/{folder}/{rel}`: `.hsm/{folder}/{}` is a symlink, and hsm follows none out of a plugin's folder (remove it; `hsm sync` writes the plugin's files again)",
                        on_the_way.display()
                    ),
                );
            }
        }
        io::Error::new(e.kind(), format!("`.hsm/{folder}/{rel}`: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, ProjectId) {
        let dir = tempfile::tempdir().unwrap();
        let id = ProjectId::new("p", dir.path());
        (dir, id)
    }

    #[test]
    fn files_are_written_inside_the_plugin_folder_once() {
        let (_d, p) = project();
        let files = PluginDir::open(&p, "redis").unwrap();
        assert!(files.write("conf/redis.conf", b"maxmemory 1mb\n").unwrap());
        assert!(!files.write("conf/redis.conf", b"maxmemory 1mb\n").unwrap(), "same contents: no write");
        assert_eq!(std::fs::read(p.dir.join(".hsm/redis/conf/redis.conf")).unwrap(), b"maxmemory 1mb\n");
        assert_eq!(files.bind_source("conf").unwrap(), p.dir.join(".hsm/redis/conf"));
        assert!(files.bind_source("data").unwrap().is_dir(), "a missing source becomes a folder");
    }

    #[test]
    fn paths_that_climb_out_fail() {
        let (_d, p) = project();
        let outside = tempfile::tempdir().unwrap();
        let files = PluginDir::open(&p, "redis").unwrap();
        assert!(files.write("../state.json", b"x").is_err());
        assert!(files.write("/etc/passwd", b"x").is_err());
        // A symlink inside the folder that points outside it.
        std::os::unix::fs::symlink(outside.path(), p.dir.join(".hsm/redis/escape")).unwrap();
        let e = files.write("escape/owned", b"x").expect_err("through the symlink");
        assert!(e.to_string().contains("`.hsm/redis/escape` is a symlink, and hsm follows none out"), "{e}");
        assert!(!outside.path().join("owned").exists());
        let e = files.bind_source("escape").expect_err("a symlink out");
        assert!(e.to_string().contains("refused to use `.hsm/redis/escape`"), "{e}");
        // A symlink planted as the file itself is replaced, not followed.
        let planted = p.dir.join(".hsm/redis/conf.toml");
        std::os::unix::fs::symlink(outside.path().join("target"), &planted).unwrap();
        assert!(files.write("conf.toml", b"x").unwrap());
        assert!(!planted.symlink_metadata().unwrap().file_type().is_symlink());
        assert!(!outside.path().join("target").exists());
        assert!(files.bind_source("../..").is_err());
        // The check that runs before anything changes says the same, and creates nothing.
        let e = PluginDir::check_inside(&p, "redis", "escape/sub", false).expect_err("a symlink out");
        assert!(e.to_string().contains("`.hsm/redis/escape` is a symlink"), "{e}");
        PluginDir::check_inside(&p, "redis", "escape", true).expect_err("a bind source Docker would follow out");
        std::os::unix::fs::symlink(outside.path().join("target"), p.dir.join(".hsm/redis/late.toml")).unwrap();
        PluginDir::check_inside(&p, "redis", "late.toml", false).expect("a file hsm writes replaces a symlink");
        PluginDir::check_inside(&p, "redis", "late.toml", true).expect_err("a bind source Docker would follow");
        PluginDir::check_inside(&p, "redis", "not/yet/there", true).unwrap();
        assert!(!p.dir.join(".hsm/redis/not").exists());
        PluginDir::check_inside(&p, "other", "data", true).unwrap();
        assert!(!p.dir.join(".hsm/other").exists());
    }

    #[test]
    fn a_plugin_folder_that_is_a_symlink_is_refused() {
        let (_d, p) = project();
        let outside = tempfile::tempdir().unwrap();
        crate::state::ensure_hsm_dir(&p).unwrap();
        std::os::unix::fs::symlink(outside.path(), p.dir.join(".hsm/evil")).unwrap();
        let err = PluginDir::open(&p, "evil").err().expect("refused");
        assert!(err.to_string().contains("is not a folder"), "{err}");
        assert!(PluginDir::open(&p, "../x").is_err());
    }
}
