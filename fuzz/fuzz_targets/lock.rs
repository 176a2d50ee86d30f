//! Fuzzes reading `hsm.lock` (hsm-config's `lock`), the file that pins git
//! registries and that users commit, merge and sometimes edit by hand. The input is
//! written as a lock file and read as hsm reads it; whatever it holds, reading ends
//! in a lock or in `None` (the load then reports why), and a lock that reads is
//! rendered (as `hsm lock` writes it) to text that reads back the same.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hsm_config::lock::{LOCK_FILE, LockFile};
use libfuzzer_sys::fuzz_target;

/// The lock file each run writes, the same for every run.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| hsm_fuzz::scratch_dir("hsm-fuzz-lock-").join(LOCK_FILE))
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    hsm_fuzz::rewrite(path, data);
    let Some(lock) = LockFile::read(path) else { return };
    hsm_fuzz::rewrite(path, lock.render());
    assert_eq!(LockFile::read(path).as_ref(), Some(&lock), "a lock rendered reads back differently");
});
