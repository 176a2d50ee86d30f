//! What the fuzz targets share: a scratch folder, and a way to rewrite a file in
//! it quickly, for the targets that go through hsm's real file reading (the
//! project, its state, its lock).

use std::path::{Path, PathBuf};

/// A new folder for one fuzzing process, kept until the machine cleans its
/// temporary files.
pub fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("a temporary folder");
    dir.keep()
}

/// Writes `data` to `path` as a new file. Truncating or renaming over a file that
/// has data makes ext4 flush it to disk on close (`auto_da_alloc`), which made
/// those targets a hundred times slower; a file removed first is not flushed.
pub fn rewrite(path: &Path, data: impl AsRef<[u8]>) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
