//! Getting uv when the machine has none (nothing on `PATH`, no `HSM_UV`): a pinned
//! uv from PyPI, installed once into hsm's cache folder with the Python on `PATH`
//! (`python3 -m pip install --target`), so that a first `hsm sync` works on a
//! machine with only Python and Docker.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::UvError;

/// The uv version hsm installs for itself.
pub const UV_VERSION: &str = "0.13.9";

/// Where the pinned uv lives in the cache folder.
fn home(cache: &Path) -> PathBuf {
    cache.join("uv").join(UV_VERSION)
}

/// The uv an earlier run installed into `cache`, if it is there.
pub(super) fn cached(cache: &Path) -> Option<PathBuf> {
    let uv = home(cache).join("bin/uv");
    uv.is_file().then_some(uv)
}

/// Installs the pinned uv into `cache` with the first `python3` on `PATH`, and
/// returns its path. Installed into a folder of its own, then renamed into place:
/// an interrupted install leaves nothing a later run would take for uv.
pub(super) fn install(cache: &Path) -> Result<PathBuf, UvError> {
    let fail = |message: String| UvError::Bootstrap { version: UV_VERSION.to_string(), message };
    let target = home(cache);
    let parent = target.parent().expect("a version folder has a parent");
    std::fs::create_dir_all(parent).map_err(|e| fail(format!("can't create `{}`: {e}", parent.display())))?;
    let partial = parent.join(format!(".{UV_VERSION}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet", "--target"])
        .arg(&partial)
        .arg(format!("uv=={UV_VERSION}"))
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| fail(format!("can't run `python3 -m pip`: {e}")))?;
    let uv = partial.join("bin/uv");
    if !out.status.success() || !uv.is_file() {
        let _ = std::fs::remove_dir_all(&partial);
        let said = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = said.lines().rev().take(3).collect();
        let said = last.into_iter().rev().collect::<Vec<_>>().join(" / ");
        return Err(fail(format!("`python3 -m pip install uv=={UV_VERSION}` failed: {}", said.trim())));
    }
    match std::fs::rename(&partial, &target) {
        Ok(()) => {}
        // Another run installed it meanwhile: theirs is as good.
        Err(_) if cached(cache).is_some() => {
            let _ = std::fs::remove_dir_all(&partial);
        }
        Err(e) => return Err(fail(format!("can't move uv into `{}`: {e}", target.display()))),
    }
    cached(cache).ok_or_else(|| fail(format!("uv is not in `{}` after installing it", target.display())))
}
