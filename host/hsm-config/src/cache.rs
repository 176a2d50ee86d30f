//! A cache of checked registry files. Parsing YAML is most of what loading a large
//! registry costs, and registries rarely change between runs, so each registry file
//! that loads without a problem is stored in its checked form, keyed by everything
//! that form depends on: hsm's version, the file's text, name, folder and place in
//! the run's file table. Any change is a miss; a missing, unreadable or corrupt entry
//! is a miss too, and a file with problems is never stored, so diagnostics always
//! come from a fresh parse. Entries hold what the files say (secret references,
//! never values), and a MAC keyed with the user's secret key: what hsm plans from
//! a registry must be what the registry says, so only entries hsm wrote count.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hsm_model::{Authenticator, FileId, tags_equal};
use serde::{Deserialize, Serialize};

use crate::config::{PackageDef, PluginDef, ProfileDef, ServiceDef};

/// Bumped whenever the stored form, or how a file is parsed and checked, changes
/// (2: YAML 1.2 booleans; 3: plugins; 4: MACs; 5: keys hashed with BLAKE3; 6:
/// params maps as lists, templates inline), since development builds share
/// hsm's version number.
const FORMAT: u32 = 6;

/// What an entry's MAC covers besides its key and bytes.
const DOMAIN: &[u8] = b"hsm registry cache";

/// Entries are a few MiB at most; anything much bigger was not written here.
const MAX_ENTRY: u64 = 64 << 20;

/// What one registry file defines, as stored.
#[derive(Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) packages: Vec<PackageDef>,
    pub(crate) services: Vec<ServiceDef>,
    pub(crate) profiles: Vec<ProfileDef>,
    pub(crate) plugins: Vec<PluginDef>,
}

/// A folder of entries, and what authenticates them.
#[derive(Clone, Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    auth: Arc<dyn Authenticator>,
}

impl Cache {
    pub(crate) fn new(dir: &Path, auth: Arc<dyn Authenticator>) -> Self {
        Self { dir: dir.join(format!("registry-v{FORMAT}")), auth }
    }

    /// The key of a file's entry.
    pub(crate) fn key(id: FileId, display: &str, base: Option<&Path>, text: &str) -> String {
        let mut h = blake3::Hasher::new();
        let base = base.map_or(&[][..], |b| b.as_os_str().as_encoded_bytes());
        let parts: [&[u8]; 6] = [
            &FORMAT.to_le_bytes(),
            env!("CARGO_PKG_VERSION").as_bytes(),
            &u64::from(id.0).to_le_bytes(),
            display.as_bytes(),
            base,
            text.as_bytes(),
        ];
        // Length-prefixed, so that no two lists of parts hash alike; a base of
        // none and an empty base are the same folder.
        for part in parts {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().to_hex()[..32].to_owned()
    }

    /// An entry's MAC: over its folder too (which names hsm's build), so that an
    /// entry copied from another build's folder never verifies.
    fn tag(&self, key: &str, body: &[u8]) -> [u8; 32] {
        self.auth.tag(&[DOMAIN, self.dir.as_os_str().as_encoded_bytes(), key.as_bytes(), body])
    }

    /// The entry stored under `key`, if its MAC verifies and it decodes.
    pub(crate) fn get(&self, key: &str) -> Option<Entry> {
        let bytes = hsm_model::cache::read_entry(&self.dir.join(key), MAX_ENTRY)?;
        let (body, tag) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
        if !tags_equal(&self.tag(key, body), tag) {
            return None;
        }
        postcard::from_bytes(body).ok()
    }

    /// Stores an entry; failing to is not an error (the cache is only a shortcut).
    pub(crate) fn put(&self, key: &str, entry: &Entry) {
        let Ok(mut bytes) = postcard::to_stdvec(entry) else { return };
        let tag = self.tag(key, &bytes);
        bytes.extend_from_slice(&tag);
        let _ = hsm_model::cache::write_entry(&self.dir.join(key), &bytes);
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::cache::testing::TestKey;

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

    fn empty() -> Entry {
        Entry { packages: Vec::new(), services: Vec::new(), profiles: Vec::new(), plugins: Vec::new() }
    }

    #[test]
    fn entries_round_trip_and_corrupt_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), Arc::new(TestKey(1)));
        assert!(cache.get("k").is_none());
        cache.put("k", &empty());
        assert!(cache.get("k").is_some());
        std::fs::write(dir.path().join(format!("registry-v{FORMAT}/k")), [0xff, 0xff, 0xff]).unwrap();
        assert!(cache.get("k").is_none());
    }

    #[test]
    fn entries_not_written_with_the_users_key_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        Cache::new(dir.path(), Arc::new(TestKey(1))).put("k", &empty());
        assert!(Cache::new(dir.path(), Arc::new(TestKey(2))).get("k").is_none(), "another key");
        // A planted entry (valid postcard, no valid MAC) is a miss.
        let planted = postcard::to_stdvec(&empty()).unwrap();
        let path = dir.path().join(format!("registry-v{FORMAT}/p"));
        std::fs::write(&path, [planted.as_slice(), &[0u8; 32]].concat()).unwrap();
        assert!(Cache::new(dir.path(), Arc::new(TestKey(1))).get("p").is_none());
        // An entry moved under another key is a miss too.
        std::fs::copy(dir.path().join(format!("registry-v{FORMAT}/k")), &path).unwrap();
        assert!(Cache::new(dir.path(), Arc::new(TestKey(1))).get("p").is_none());
        // And one copied from another build's folder.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(other.path().join(format!("registry-v{FORMAT}"))).unwrap();
        std::fs::copy(
            dir.path().join(format!("registry-v{FORMAT}/k")),
            other.path().join(format!("registry-v{FORMAT}/k")),
        )
        .unwrap();
        assert!(Cache::new(other.path(), Arc::new(TestKey(1))).get("k").is_none());
    }
}
