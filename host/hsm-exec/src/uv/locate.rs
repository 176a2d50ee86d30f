//! Finding the uv binary hsm runs: a path it was given, else `HSM_UV`, else
//! `PATH`. Kept apart from running uv so the search depends on nothing but the
//! environment it is handed (and is tested that way).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use super::UvError;

/// The environment variable that points hsm at a uv binary (a path, or a name
/// looked up on `PATH`), ahead of `PATH`.
pub const UV_ENV_VAR: &str = "HSM_UV";

/// Finds uv: `explicit`, else `HSM_UV`, else `PATH`.
pub(crate) fn find_uv(explicit: Option<PathBuf>, env: &dyn Fn(&str) -> Option<OsString>) -> Result<PathBuf, UvError> {
    let path_var = env("PATH");
    let (given, origin) = match explicit {
        Some(p) => (p, "the given path"),
        None => match env(UV_ENV_VAR).filter(|v| !v.is_empty()) {
            Some(p) => (PathBuf::from(p), "`HSM_UV`"),
            None => {
                let name = format!("uv{}", std::env::consts::EXE_SUFFIX);
                return search_path(OsStr::new(&name), path_var.as_deref()).ok_or(UvError::UvNotFound);
            }
        },
    };
    // A bare name is a command, looked up on `PATH`; anything else is a path.
    let found = if given.components().count() == 1 && !given.is_absolute() {
        search_path(given.as_os_str(), path_var.as_deref())
    } else {
        Some(std::path::absolute(&given).unwrap_or_else(|_| given.clone())).filter(|p| is_executable(p))
    };
    found.ok_or(UvError::UvNotExecutable { path: given, origin })
}

/// The first executable `name` in the folders of `path_var`.
fn search_path(name: &OsStr, path_var: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use hsm_model::Explain;

    use super::*;
    use crate::uv::PythonEnv;

    /// A process environment holding only `vars`.
    pub(crate) fn env_of(vars: &[(&str, &Path)]) -> impl Fn(&str) -> Option<OsString> + use<> {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().into())).collect();
        move |key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    /// An executable script standing in for uv.
    pub(crate) fn fake_uv(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn uv_is_found_explicit_then_hsm_uv_then_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let on_path = fake_uv(&bin, "uv");
        let pointed = fake_uv(dir.path(), "my-uv");
        let explicit = fake_uv(dir.path(), "other-uv");

        let env = env_of(&[("PATH", &bin)]);
        assert_eq!(PythonEnv::with_env(dir.path(), None, &env).unwrap().uv(), on_path);
        let env = env_of(&[("PATH", &bin), ("HSM_UV", &pointed)]);
        assert_eq!(PythonEnv::with_env(dir.path(), None, &env).unwrap().uv(), pointed);
        assert_eq!(PythonEnv::with_env(dir.path(), Some(explicit.clone()), &env).unwrap().uv(), explicit);
        // A bare name is looked up on PATH.
        let env = env_of(&[("PATH", &bin), ("HSM_UV", Path::new("uv"))]);
        assert_eq!(PythonEnv::with_env(dir.path(), None, &env).unwrap().uv(), on_path);
    }

    #[test]
    fn missing_uv_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = PythonEnv::with_env(dir.path(), None, &env_of(&[("PATH", dir.path())])).unwrap_err();
        assert!(matches!(err, UvError::UvNotFound));
        assert!(err.to_string().contains("`pip install uv`"), "{err}");
        assert!(err.hint().unwrap().contains("HSM_UV"));

        let not_exec = dir.path().join("uv-data");
        fs::write(&not_exec, "").unwrap();
        let err = PythonEnv::with_env(dir.path(), None, &env_of(&[("HSM_UV", &not_exec)])).unwrap_err();
        assert!(matches!(err, UvError::UvNotExecutable { origin: "`HSM_UV`", .. }), "{err}");
    }
}
