//! What every cache in hsm's cache folder shares: entries that could change what
//! hsm does (compiled plugins, checked registry files, plugin answers, printed
//! plans) carry a MAC keyed with the user's secret key, so an entry only counts if
//! hsm wrote it; and entries are read and written so that someone else who can
//! write the folder can't redirect hsm elsewhere (no symbolic links followed, no
//! unbounded reads, no predictable temporary file opened if it exists). The key
//! lives in `hsm-exec`; the caches only see [`Authenticator`].

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Makes the MACs of cache entries; hsm passes one keyed with the user's secret key.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// A MAC over the parts, each length-prefixed (so no two lists of parts share
    /// one).
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32];
}

/// Whether `found` is the 32-byte MAC `expected`, compared in time that doesn't
/// depend on where they differ.
pub fn tags_equal(expected: &[u8; 32], found: &[u8]) -> bool {
    found.len() == expected.len() && expected.iter().zip(found).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a cache entry: a regular file (a symbolic link is not followed) of at
/// most `max` bytes. `None` for anything else, or on any error: an entry that
/// can't be read is a miss.
pub fn read_entry(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
    file.take(max).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Writes a cache entry whole or not at all, readable by its owner only: into a
/// new temporary file next to it (never one that exists, so never through a
/// planted link), then renamed into place (which replaces a link, not its target).
pub fn write_entry(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for attempt in 0..16u32 {
        let tmp = dir.join(format!(".{name}.{}-{attempt}.tmp", std::process::id()));
        let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file
            .write_all(bytes)
            .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(0o600)))
            .and_then(|()| std::fs::rename(&tmp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        return written;
    }
    Err(std::io::Error::other("no free temporary name in the cache folder"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_written_whole_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/e");
        write_entry(&path, b"hello").unwrap();
        assert_eq!(read_entry(&path, 100).unwrap(), b"hello");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temporary file is left");
        assert!(read_entry(&path, 4).is_none(), "an entry over the limit is not read");
    }

    #[test]
    fn links_are_neither_followed_when_reading_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"precious").unwrap();
        let path = dir.path().join("e");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(read_entry(&path, 100).is_none());
        assert!(read_entry(Path::new("/dev/zero"), 100).is_none(), "only regular files");
        // A link planted where the temporary file would go is not written through.
        let tmp = dir.path().join(format!(".e.{}-0.tmp", std::process::id()));
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        write_entry(&path, b"entry").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(read_entry(&path, 100).unwrap(), b"entry", "the link itself was replaced");
    }

    #[test]
    fn tags_are_equal_only_when_every_byte_and_the_length_agree() {
        let a = [7u8; 32];
        assert!(tags_equal(&a, &a));
        let mut b = a;
        b[31] ^= 1;
        assert!(!tags_equal(&a, &b));
        assert!(!tags_equal(&a, &a[..31]));
        assert!(!tags_equal(&a, &[7u8; 33]));
    }
}
