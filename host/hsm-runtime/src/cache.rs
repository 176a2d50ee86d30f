//! The compile cache for third-party components: compiling a component takes
//! hundreds of milliseconds, loading its compiled code takes a few. Entries live in
//! the user's cache folder, one per component digest under a folder named after
//! hsm's version and the engine's compatibility hash, so an upgraded hsm or a
//! different engine never reads them.
//!
//! Deserializing compiled code means running it, so hsm only ever deserializes
//! what it wrote itself: every entry carries a MAC made with the user's secret key
//! (which lives outside the cache folder) over the component's digest, the engine's
//! hash and the code. An entry that doesn't verify — planted, truncated, from
//! another machine — is ignored and rewritten.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use hsm_model::Authenticator;

use crate::host::{LoadError, PluginHost};
use crate::plugin::Plugin;
use hsm_check::PluginSource;

const MAGIC: &[u8; 8] = b"HSMCWSM1";
const TAG_LEN: usize = 32;

/// How a component was loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Its compiled code came from the cache.
    Hit,
    /// It was compiled (and the result stored).
    Compiled,
    /// It was compiled, and a cache entry that failed verification was replaced.
    Replaced,
}

/// Part of the cache folder's name: builds of one version of hsm share the folder,
/// so what would make an entry of one build fail to verify in another (its format,
/// the MAC hsm keys it with) gets a new number (2: keyed BLAKE3 MACs).
const FOLDER_FORMAT: u32 = 2;

/// The compile cache.
pub struct CompileCache<'a> {
    dir: PathBuf,
    auth: &'a dyn Authenticator,
}

impl<'a> CompileCache<'a> {
    /// A cache under `root` (typically `~/.cache/hsm/plugins`), for `host`'s engine.
    pub fn new(root: &Path, host: &PluginHost, auth: &'a dyn Authenticator) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        host.engine().precompile_compatibility_hash().hash(&mut hasher);
        let folder = format!("{}-f{FOLDER_FORMAT}-{:016x}", env!("CARGO_PKG_VERSION"), hasher.finish());
        Self { dir: root.join(folder), auth }
    }

    /// The folder entries go in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads a component from its bytes, from cached code when a verified entry
    /// exists, compiling and storing it otherwise. A cache that can't be written
    /// is not an error: the component is still loaded.
    pub fn load(
        &self,
        host: &PluginHost,
        bytes: &[u8],
        source: PluginSource,
    ) -> Result<(Plugin, CacheOutcome), LoadError> {
        let digest = Sha256::digest(bytes);
        let sha256 = hex::encode(digest);
        let path = self.dir.join(format!("{sha256}.cwasm"));
        let mut outcome = CacheOutcome::Compiled;
        // Compiled plugins are a few MiB; anything much bigger was not written here.
        if let Some(entry) = hsm_model::cache::read_entry(&path, 256 << 20) {
            if let Some(code) = self.verified_code(&entry, &digest) {
                // SAFETY: the entry's MAC verified: hsm wrote this code itself, for
                // this component and this engine configuration.
                #[allow(unsafe_code)]
                if let Ok(component) = unsafe { Component::deserialize(host.engine(), code) } {
                    let mut plugin = host.load_compiled(component, source, sha256)?;
                    plugin.set_precompiled();
                    return Ok((plugin, CacheOutcome::Hit));
                }
            }
            outcome = CacheOutcome::Replaced;
        }
        let name = source.to_string();
        let code = host
            .engine()
            .precompile_component(bytes)
            .map_err(|e| LoadError::Invalid { source_name: name.clone(), message: e.root_cause().to_string() })?;
        let _ = self.store(&path, &digest, &code);
        // SAFETY: `code` was compiled just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(host.engine(), &code) }
            .map_err(|e| LoadError::Invalid { source_name: name, message: e.root_cause().to_string() })?;
        Ok((host.load_compiled(component, source, sha256)?, outcome))
    }

    fn tag(&self, digest: &[u8], code: &[u8]) -> [u8; 32] {
        self.auth.tag(&[b"hsm compile cache v1", digest, self.dir.as_os_str().as_encoded_bytes(), code])
    }

    fn verified_code<'e>(&self, entry: &'e [u8], digest: &[u8]) -> Option<&'e [u8]> {
        let rest = entry.strip_prefix(MAGIC)?;
        if rest.len() < TAG_LEN {
            return None;
        }
        let (tag, code) = rest.split_at(TAG_LEN);
        hsm_model::tags_equal(&self.tag(digest, code), tag).then_some(code)
    }

    fn store(&self, path: &Path, digest: &[u8], code: &[u8]) -> std::io::Result<()> {
        let mut entry = hsm_model::cache::EntryWriter::create(path)?;
        entry.write_all(MAGIC)?;
        entry.write_all(&self.tag(digest, code))?;
        entry.write_all(code)?;
        entry.commit()
    }
}
