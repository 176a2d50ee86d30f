//! What hsm's compile cache of third-party plugins (in `hsm-runtime`) relies on to
//! trust its folder: entries carry a MAC keyed with the user's secret key, so an
//! entry only counts if hsm wrote it; and entries are read and written so that
//! someone else who can write the folder can't redirect hsm elsewhere (no symbolic
//! links followed, no unbounded reads, no predictable temporary file opened if it
//! exists). The key lives in `hsm-key`; the cache only sees [`Authenticator`].

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Reads a cache entry: a regular file (a symbolic link is not followed, a FIFO
/// never waited on) of at most `max` bytes, read whole as its size said. `None`
/// for anything else, or on any error: an entry that can't be read is a miss.
pub fn read_entry(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let len = meta.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).ok()?);
    // One byte more than its size: a file that grew meanwhile is not an entry.
    file.take(len + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 == len).then_some(bytes)
}

/// A cache entry being written: into a new temporary file next to it (never one
/// that exists, so never through a planted link), owner-only, renamed into place by
/// [`EntryWriter::commit`] (which replaces a link, not its target). Dropped without
/// committing, the temporary file is removed and the entry is left as it was.
pub struct EntryWriter {
    tmp: PathBuf,
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    committed: bool,
}

impl EntryWriter {
    /// Starts writing the entry at `path`, creating its folder if needed.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent folder"))?;
        std::fs::create_dir_all(dir)?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for _ in 0..16 {
            // Unique among this process's writers (threads included); `create_new`
            // settles the rest.
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp) {
                Ok(file) => {
                    let file = std::io::BufWriter::with_capacity(1 << 16, file);
                    return Ok(Self { tmp, path: path.to_path_buf(), file, committed: false });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temporary name in the cache folder"))
    }

    /// Finishes the entry: it replaces what was at its path.
    ///
    /// What was there is removed first. Renaming over an existing file makes ext4
    /// (`auto_da_alloc`) start writing the new file's data out at once, which for an
    /// entry of tens of MiB holds the rename up for milliseconds; a cache entry
    /// needs no such care, and a reader in between finds no entry, which is a miss.
    pub fn commit(mut self) -> std::io::Result<()> {
        self.file.flush()?;
        let _ = std::fs::remove_file(&self.path);
        std::fs::rename(&self.tmp, &self.path)?;
        self.committed = true;
        Ok(())
    }
}

impl std::io::Write for EntryWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for EntryWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// Writes an entry whole, as the compile cache does.
    fn write_entry(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut entry = EntryWriter::create(path)?;
        entry.write_all(bytes)?;
        entry.commit()
    }

    #[test]
    fn entries_are_written_whole_owner_only_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/e");
        write_entry(&path, b"hello").unwrap();
        assert_eq!(read_entry(&path, 100).unwrap(), b"hello");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temporary file is left");
        assert!(read_entry(&path, 4).is_none(), "an entry over the limit is not read");
        write_entry(&path, b"hello again").unwrap();
        assert_eq!(read_entry(&path, 100).unwrap(), b"hello again", "a new entry replaces the old");
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1);
    }

    #[test]
    fn an_entry_dropped_before_it_is_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        write_entry(&path, b"old").unwrap();
        let mut entry = EntryWriter::create(&path).unwrap();
        entry.write_all(b"half of a new one").unwrap();
        drop(entry);
        assert_eq!(read_entry(&path, 100).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
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
        // A FIFO is not waited on (opening one to read blocks until a writer comes).
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo (coreutils)");
        assert!(made.success(), "mkfifo");
        assert!(read_entry(&fifo, 100).is_none());
        // Links planted where temporary files would go are not written through.
        for n in 0..4 {
            let tmp = dir.path().join(format!(".e.{}-{n}.tmp", std::process::id()));
            std::os::unix::fs::symlink(&target, &tmp).unwrap();
        }
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
