//! The project's virtual environment: where it is, which uv manages it, how a
//! command is run inside it, and creating it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::locate::find_uv;
use super::process::uv_message;
use super::{UvError, site};

/// The folder of the project's virtual environment, relative to the project.
pub const VENV_DIR: &str = ".venv";

/// Variables a command run inside the venv must not inherit (as `activate` does):
/// a `PYTHONHOME` from outside would point the venv's interpreter elsewhere.
pub const ACTIVATION_UNSET: &[&str] = &["PYTHONHOME"];

/// Makes `cmd` run inside the project's venv, when it has one, as `activate`
/// would: `.venv/bin` first on `PATH`, `VIRTUAL_ENV` set, [`ACTIVATION_UNSET`]
/// removed. Set after the plan's variables, so the venv's own win.
pub fn activate(cmd: &mut std::process::Command, project_dir: &Path) {
    let venv = project_dir.join(VENV_DIR);
    if !venv_exists(&venv) {
        return;
    }
    cmd.envs(activation_env(&venv, std::env::var_os("PATH").as_deref()));
    for name in ACTIVATION_UNSET {
        cmd.env_remove(name);
    }
}

/// The project's Python environment: where it is and which uv manages it.
#[derive(Clone, Debug)]
pub struct PythonEnv {
    pub(crate) project_dir: PathBuf,
    pub(crate) venv: PathBuf,
    pub(crate) uv: PathBuf,
    /// Set when the run using this environment is abandoned (see
    /// [`PythonEnv::stop_on_drop`]); shared by clones.
    pub(crate) stop: Arc<AtomicBool>,
}

impl PythonEnv {
    /// The environment of the project in `project_dir` (its `.venv`), managed by
    /// the uv at `uv` if given, else the one `HSM_UV` names, else the first `uv` on
    /// `PATH`. Fails, saying how to install uv, when there is none. Runs nothing.
    pub fn new(project_dir: &Path, uv: Option<PathBuf>) -> Result<Self, UvError> {
        Self::with_env(project_dir, uv, &|key| std::env::var_os(key))
    }

    /// [`PythonEnv::new`] with the process environment given as a lookup, so the
    /// search for uv depends on nothing else.
    pub fn with_env(
        project_dir: &Path,
        uv: Option<PathBuf>,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, UvError> {
        let uv = find_uv(uv, env)?;
        let project_dir = std::path::absolute(project_dir).unwrap_or_else(|_| project_dir.to_path_buf());
        let venv = project_dir.join(VENV_DIR);
        Ok(Self { project_dir, venv, uv, stop: Arc::default() })
    }

    /// The project folder.
    pub fn project_dir(&self) -> &Path {
        &self.project_dir
    }

    /// The virtual environment's folder (`.venv` in the project).
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// The uv binary hsm runs.
    pub fn uv(&self) -> &Path {
        &self.uv
    }

    /// The venv's interpreter.
    pub fn python(&self) -> PathBuf {
        site::python(&self.venv)
    }

    /// What `hsm run` adds to a command's environment, as the venv's `activate`
    /// script would: `VIRTUAL_ENV`, and `PATH` with the venv's executables first
    /// (then `inherited_path`). Remove [`ACTIVATION_UNSET`] as well.
    pub fn activation_env(&self, inherited_path: Option<&OsStr>) -> Vec<(OsString, OsString)> {
        activation_env(&self.venv, inherited_path)
    }

    /// `uv venv`, replacing a broken venv when `clear`.
    pub(crate) fn create_venv(&self, clear: bool) -> Result<(), UvError> {
        let mut args: Vec<OsString> = vec!["venv".into(), "--color".into(), "never".into()];
        if clear {
            args.push("--clear".into());
        }
        args.push(self.venv.clone().into_os_string());
        let out = self.run_uv(&args)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(UvError::CreateVenv { path: self.venv.clone(), message: uv_message(&out) })
        }
    }
}

/// [`PythonEnv::activation_env`] for the venv at `venv`, without looking for uv:
/// running a command in the venv needs no uv. Whether there is a venv to
/// activate is [`venv_exists`].
pub fn activation_env(venv: &Path, inherited_path: Option<&OsStr>) -> Vec<(OsString, OsString)> {
    let mut path = site::bin_dir(venv).into_os_string();
    if let Some(inherited) = inherited_path.filter(|p| !p.is_empty()) {
        path.push(if cfg!(windows) { ";" } else { ":" });
        path.push(inherited);
    }
    vec![("VIRTUAL_ENV".into(), venv.as_os_str().to_owned()), ("PATH".into(), path)]
}

/// Whether `venv` is a virtual environment (it has a `pyvenv.cfg`), usable or not.
pub fn venv_exists(venv: &Path) -> bool {
    venv.join("pyvenv.cfg").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uv::locate::tests::{env_of, fake_uv};

    #[test]
    fn activation_puts_the_venv_first() {
        let dir = tempfile::tempdir().unwrap();
        let uv = fake_uv(dir.path(), "uv");
        let env = PythonEnv::with_env(dir.path(), Some(uv), &env_of(&[])).unwrap();
        let vars = env.activation_env(Some(OsStr::new("/usr/bin:/bin")));
        let venv = dir.path().join(".venv");
        assert_eq!(
            vars,
            [
                (OsString::from("VIRTUAL_ENV"), venv.clone().into_os_string()),
                (OsString::from("PATH"), OsString::from(format!("{}/bin:/usr/bin:/bin", venv.display()))),
            ]
        );
        assert_eq!(env.activation_env(None)[1].1, venv.join("bin").into_os_string());
        // The same without a uv, for `hsm run`.
        assert_eq!(activation_env(&venv, Some(OsStr::new("/usr/bin:/bin"))), vars);
        assert!(!venv_exists(&venv));
    }
}
