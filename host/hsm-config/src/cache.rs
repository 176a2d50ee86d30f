//! A cache of checked registry files. Parsing YAML is most of what loading a large
//! registry costs, and registries rarely change between runs, so each registry file
//! that loads without a problem is stored in its checked form, keyed by everything
//! that form depends on: hsm's version, the file's text, name, folder and place in
//! the run's file table. Any change is a miss; a missing, unreadable or corrupt entry
//! is a miss too, and a file with problems is never stored, so diagnostics always
//! come from a fresh parse. Entries hold what the files say (secret references,
//! never values).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use hsm_model::FileId;
use serde::{Deserialize, Serialize};

use crate::config::{PackageDef, PluginDef, ProfileDef, ServiceDef};

/// Bumped whenever the stored form, or how a file is parsed and checked, changes
/// (2: YAML 1.2 booleans; 3: plugins), since development builds share hsm's version
/// number.
const FORMAT: u32 = 3;

/// What one registry file defines, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) packages: Vec<PackageDef>,
    pub(crate) services: Vec<ServiceDef>,
    pub(crate) profiles: Vec<ProfileDef>,
    pub(crate) plugins: Vec<PluginDef>,
}

/// A folder of entries.
#[derive(Clone, Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub(crate) fn new(dir: &Path) -> Self {
        Self { dir: dir.join(format!("registry-v{FORMAT}")) }
    }

    /// The key of a file's entry.
    pub(crate) fn key(id: FileId, display: &str, base: Option<&Path>, text: &str) -> String {
        let hash = |seed: u64| {
            let mut h = std::hash::DefaultHasher::new();
            (seed, FORMAT, env!("CARGO_PKG_VERSION"), id.0, display, base, text).hash(&mut h);
            h.finish()
        };
        format!("{:016x}{:016x}", hash(1), hash(2))
    }

    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        let bytes = std::fs::read(self.dir.join(key)).ok()?;
        postcard::from_bytes(&bytes).ok()
    }

    /// Stores an entry; failing to is not an error (the cache is only a shortcut).
    pub(crate) fn put(&self, key: &str, entry: &Entry) {
        let Ok(bytes) = postcard::to_stdvec(entry) else { return };
        if std::fs::create_dir_all(&self.dir).is_err() {
            return;
        }
        // Write then rename, so a concurrent run never reads half an entry.
        let tmp = self.dir.join(format!("{key}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, self.dir.join(key)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_change_with_everything_the_entry_depends_on() {
        let base = Path::new("/p/registry");
        let k = Cache::key(FileId(3), "registry/a.yaml", Some(base), "packages: {}\n");
        assert_eq!(k, Cache::key(FileId(3), "registry/a.yaml", Some(base), "packages: {}\n"));
        assert_eq!(k.len(), 32);
        assert_ne!(k, Cache::key(FileId(4), "registry/a.yaml", Some(base), "packages: {}\n"));
        assert_ne!(k, Cache::key(FileId(3), "registry/b.yaml", Some(base), "packages: {}\n"));
        assert_ne!(k, Cache::key(FileId(3), "registry/a.yaml", None, "packages: {}\n"));
        assert_ne!(k, Cache::key(FileId(3), "registry/a.yaml", Some(base), "packages: {} \n"));
    }

    #[test]
    fn entries_round_trip_and_corrupt_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert!(cache.get("k").is_none());
        cache
            .put("k", &Entry { packages: Vec::new(), services: Vec::new(), profiles: Vec::new(), plugins: Vec::new() });
        assert!(cache.get("k").is_some());
        std::fs::write(dir.path().join(format!("registry-v{FORMAT}/k")), [0xff, 0xff, 0xff]).unwrap();
        assert!(cache.get("k").is_none());
    }
}
