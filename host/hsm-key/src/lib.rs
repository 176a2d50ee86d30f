//! The user's secret key, from which hsm derives every generated secret (a managed
//! database's password, say) and the keyed fingerprints of secret values it
//! compares between runs. Deriving instead of storing means a generated password is
//! the same on every run, survives `hsm down --volumes` and a fresh clone, and is
//! written nowhere: neither in the project nor in hsm's state.
//!
//! The key is 32 random bytes in `secret.key` under hsm's data folder
//! (`$HSM_DATA_DIR`, else `$XDG_DATA_HOME/hsm`, else `~/.local/share/hsm`),
//! owned and readable by the user only. It never leaves that file, and only hashes of it do.
//!
//! Its own crate because both the plugin runtime (whose compile cache it
//! authenticates, through [`hsm_model::Authenticator`]) and execution (generated
//! secrets, fingerprints) use it. hsm's data and cache folders are found here too.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use hsm_model::Sensitive;
use sha2::Sha256;

/// The characters of a generated secret: letters and digits, safe in URLs,
/// shells and connection strings without quoting.
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The length of a generated secret (about 190 bits).
pub const GENERATED_LEN: usize = 32;

/// The user's secret key.
pub struct UserKey([u8; 32]);

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserKey(<redacted>)")
    }
}

/// hsm's cache folder: `$HSM_CACHE_DIR` (empty: no cache), else
/// `$XDG_CACHE_HOME/hsm`, else `$HOME/.cache/hsm`, else none; `env` looks a variable up.
pub fn cache_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    match env("HSM_CACHE_DIR") {
        Some(dir) if dir.is_empty() => None,
        Some(dir) => Some(PathBuf::from(dir)),
        None => set("XDG_CACHE_HOME").map(|d| d.join("hsm")).or_else(|| set("HOME").map(|h| h.join(".cache/hsm"))),
    }
}

/// hsm's data folder: `$HSM_DATA_DIR`, else `$XDG_DATA_HOME/hsm`, else
/// `~/.local/share/hsm`.
pub fn data_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("HSM_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("hsm"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "neither HSM_DATA_DIR nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".local/share/hsm"))
}

/// The user's key could not be read or created.
#[derive(Debug, thiserror::Error)]
#[error("cannot read hsm's key")]
pub struct KeyError(#[source] pub io::Error);

impl hsm_model::Explain for KeyError {
    fn hint(&self) -> Option<String> {
        match self.0.kind() {
            io::ErrorKind::NotFound => {
                Some("set `HSM_DATA_DIR` (or `HOME`) to a folder where hsm may keep its key".into())
            }
            io::ErrorKind::PermissionDenied => {
                Some("hsm keeps `secret.key` in its data folder (`HSM_DATA_DIR`, else `~/.local/share/hsm`), yours and readable by you alone".into())
            }
            _ => None,
        }
    }
}

impl hsm_model::Authenticator for UserKey {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        self.cache_tag(parts)
    }
}

impl UserKey {
    /// Reads the key at `path`, creating it (owner-only) when there is none.
    pub fn load_or_create(path: &Path) -> io::Result<Self> {
        match Self::read(path) {
            Ok(key) => return Ok(key),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no randomness from the OS: {e}")))?;
        // Written whole to a temporary file in the same folder, then linked into
        // place: the link is atomic and fails when the key exists, so a crash never
        // leaves a short key and two hsm processes racing here agree on one key.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| io::Error::other(format!("no randomness from the OS: {e}")))?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(suffix)));
        let written = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::hard_link(&temp, path)
        })();
        let _ = fs::remove_file(&temp);
        match written {
            Ok(()) => {
                // The link's folder entry, durable too.
                if let Ok(d) = fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                Ok(Self(bytes))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::read(path),
            Err(e) => Err(e),
        }
    }

    /// The key in the default place.
    pub fn load_default() -> io::Result<Self> {
        Self::load_or_create(&data_dir()?.join("secret.key"))
    }

    /// Reads the key in hsm's data folder, without creating one: for checking what
    /// was made with it, which can't exist if it doesn't.
    pub fn load_existing() -> io::Result<Self> {
        Self::read(&data_dir()?.join("secret.key"))
    }

    fn read(path: &Path) -> io::Result<Self> {
        let mut file = fs::File::open(path)?;
        let meta = file.metadata()?;
        owned_by_me(path, meta.uid(), rustix::process::geteuid().as_raw())?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is readable by others (mode {:o}); run `chmod 600` on it", path.display(), mode & 0o777),
            ));
        }
        let mut bytes = [0u8; 32];
        let mut extra = [0u8; 1];
        let whole = file.read_exact(&mut bytes).is_ok() && matches!(file.read(&mut extra), Ok(0));
        if !whole {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a 32-byte hsm key (an older hsm may have been stopped while creating it); move it away and hsm creates a new one, but the generated passwords change with it: managed databases whose data volumes were set up with the old ones need `hsm down --volumes`",
                    path.display()
                ),
            ));
        }
        Ok(Self(bytes))
    }

    /// A MAC with the key over the parts, each length-prefixed: what generated
    /// secrets and fingerprints are made with (HMAC-SHA256; changing it would
    /// change every generated password).
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            // Length-prefixed, so ("ab","c") and ("a","bc") differ.
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A MAC with a key derived from this one over the parts, each
    /// length-prefixed: what caches authenticate their entries with (keyed
    /// BLAKE3: caches MAC tens of MB a run). It may change between builds: each
    /// build has caches of its own, and the compiled-plugin cache, which builds of
    /// one version share, names its format in its folder.
    pub fn cache_tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let key = blake3::derive_key("hsm cache entry MAC v1", &self.0);
        let mut mac = blake3::Hasher::new_keyed(&key);
        for part in parts {
            mac.update(&(part.len() as u64).to_le_bytes());
            mac.update(part);
        }
        *mac.finalize().as_bytes()
    }

    /// The generated secret `name` of a service of a project: the same on every run
    /// for the same user, project folder, service and name.
    pub fn generated(&self, project_dir: &Path, project: &str, service: &str, name: &str) -> Sensitive {
        let dir = project_dir.as_os_str().as_encoded_bytes();
        let mut out = String::with_capacity(GENERATED_LEN);
        let mut counter = 0u32;
        while out.len() < GENERATED_LEN {
            let block = self.mac(&[
                b"hsm generated secret v1",
                dir,
                project.as_bytes(),
                service.as_bytes(),
                name.as_bytes(),
                &counter.to_le_bytes(),
            ]);
            // Rejection sampling keeps every character equally likely.
            for b in block {
                if (b as usize) < 256 - 256 % ALPHABET.len() && out.len() < GENERATED_LEN {
                    out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
                }
            }
            counter += 1;
        }
        Sensitive::new(out)
    }

    /// A keyed fingerprint of secret material, for noticing that a value changed
    /// without storing anything from which it could be recovered.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        hex::encode(&self.mac(&[b"hsm fingerprint v1", data])[..16])
    }
}

/// Refuses someone else's key: whoever has it can derive every generated password,
/// and root, who can read any file, would otherwise use the key of the user whose
/// `HOME` it was given (`sudo -E hsm`), as ssh refuses someone else's private key.
fn owned_by_me(path: &Path, owner: u32, me: u32) -> io::Result<()> {
    if owner == me {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} belongs to user {owner}, not to you (user {me}); hsm reads only a key of your own: run hsm as its owner (to reach Docker without sudo, join the `docker` group) rather than giving it another key, since generated passwords change with the key",
            path.display()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_owner_only_and_derives_stable_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/secret.key");
        let key = UserKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = UserKey::load_or_create(&path).unwrap();
        let project = Path::new("/work/app");
        let a = key.generated(project, "app", "postgres", "password");
        assert_eq!(a, again.generated(project, "app", "postgres", "password"));
        assert_eq!(a.expose().len(), GENERATED_LEN);
        assert!(a.expose().bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(a, key.generated(project, "app", "postgres", "other"));
        assert_ne!(a, key.generated(Path::new("/work/other"), "app", "postgres", "password"));
        assert!(!format!("{key:?}").contains(|c: char| c.is_ascii_digit()));
    }

    #[test]
    fn generated_secrets_never_change_between_versions_of_hsm() {
        // A managed database keeps the password it was created with: a change in
        // how secrets are derived would lock users out of their own volumes.
        let key = UserKey([7; 32]);
        let project = Path::new("/work/app");
        assert_eq!(key.generated(project, "app", "postgres", "password").expose(), "U0icyetWhE3vhjXHbmyXWY3Pm1HJLqbd");
        assert_eq!(key.fingerprint(b"value"), "557386761df8c7c87092952e3b46f8aa");
    }

    #[test]
    fn cache_tags_depend_on_the_key_and_on_where_parts_split() {
        let (a, b) = (UserKey([7; 32]), UserKey([8; 32]));
        let tag = a.cache_tag(&[b"ab", b"c"]);
        assert_eq!(tag, a.cache_tag(&[b"ab", b"c"]));
        assert_ne!(tag, a.cache_tag(&[b"a", b"bc"]));
        assert_ne!(tag, b.cache_tag(&[b"ab", b"c"]));
        // Not the MAC that secrets are derived with.
        assert_ne!(tag, a.mac(&[b"ab", b"c"]));
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        UserKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = UserKey::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("run `chmod 600`"), "{err}");
    }

    #[test]
    fn someone_elses_key_is_refused() {
        let path = Path::new("/data/secret.key");
        assert!(owned_by_me(path, 1000, 1000).is_ok());
        let err = owned_by_me(path, 1000, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("belongs to user 1000, not to you (user 0)"), "{err}");

        // And through a real file, where the user may give it away (root can).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        UserKey::load_or_create(&path).unwrap();
        let me = rustix::process::geteuid().as_raw();
        if std::os::unix::fs::chown(&path, Some(me.wrapping_add(1)), None).is_ok() {
            let err = UserKey::load_or_create(&path).unwrap_err();
            assert!(err.to_string().contains("not to you"), "{err}");
        }
    }

    #[test]
    fn a_short_key_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        fs::write(&path, b"short").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = UserKey::load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("is not a 32-byte hsm key"), "{err}");
        assert!(err.to_string().contains("move it away"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"short", "never overwritten");
    }

    #[test]
    fn racing_first_runs_agree_on_one_whole_key_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let keys: Vec<UserKey> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| UserKey::load_or_create(&path).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| k.0 == keys[0].0));
        assert_eq!(fs::read(&path).unwrap(), keys[0].0);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret.key"]);
    }

    #[test]
    fn fingerprints_depend_on_the_key_and_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = UserKey::load_or_create(&dir.path().join("a")).unwrap();
        let k2 = UserKey::load_or_create(&dir.path().join("b")).unwrap();
        assert_eq!(k1.fingerprint(b"x"), k1.fingerprint(b"x"));
        assert_ne!(k1.fingerprint(b"x"), k1.fingerprint(b"y"));
        assert_ne!(k1.fingerprint(b"x"), k2.fingerprint(b"x"));
    }
}
