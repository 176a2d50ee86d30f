//! Local Python projects (the `path` and `editable` sources), looked at before uv
//! runs: is the folder a Python project at all, what is its distribution called,
//! and has its build configuration changed since hsm installed it.

use std::fs;
use std::io;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::names::normalize;

/// The files whose presence makes a folder a Python project, and whose contents
/// decide how it is built. uv rebuilds a local package when one of them changes
/// (its default `cache-keys`), and so does hsm.
const BUILD_FILES: [&str; 3] = ["pyproject.toml", "setup.py", "setup.cfg"];

/// What hsm knows about a local project before installing it.
#[derive(Debug)]
pub(crate) struct LocalProject {
    /// Its distribution name, PEP 503-normalized, when its files declare one
    /// (`[project].name` in `pyproject.toml`, else `[metadata] name` in
    /// `setup.cfg`); a project that only has `setup.py` is named after uv built it.
    pub(crate) name: Option<String>,
    /// A digest of its build configuration: the contents of `pyproject.toml`,
    /// `setup.py` and `setup.cfg`, and whether it has a `src` folder.
    pub(crate) stamp: String,
}

/// Why a folder can't be installed as a Python project.
#[derive(Debug)]
pub(crate) enum ProjectError {
    /// The folder does not exist (or is not a folder).
    Missing,
    /// It has none of `pyproject.toml`, `setup.py`, `setup.cfg`.
    NotAProject,
    /// One of its build files can't be read or parsed.
    Unreadable { file: &'static str, message: String },
}

#[derive(Deserialize)]
struct Pyproject {
    project: Option<ProjectTable>,
}

#[derive(Deserialize)]
struct ProjectTable {
    name: Option<String>,
}

/// Looks at the project in `dir`.
pub(crate) fn inspect(dir: &Path) -> Result<LocalProject, ProjectError> {
    if !dir.is_dir() {
        return Err(ProjectError::Missing);
    }
    let mut contents: [Option<String>; 3] = Default::default();
    for (slot, file) in contents.iter_mut().zip(BUILD_FILES) {
        *slot = match fs::read_to_string(dir.join(file)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(ProjectError::Unreadable { file, message: e.to_string() }),
        };
    }
    if contents.iter().all(Option::is_none) {
        return Err(ProjectError::NotAProject);
    }
    let [pyproject, _, setup_cfg] = &contents;
    let mut name = None;
    if let Some(text) = pyproject {
        let parsed: Pyproject = toml::from_str(text)
            .map_err(|e| ProjectError::Unreadable { file: "pyproject.toml", message: e.message().to_string() })?;
        name = parsed.project.and_then(|p| p.name);
    }
    if name.is_none() {
        name = setup_cfg.as_deref().and_then(setup_cfg_name);
    }

    let mut digest = Sha256::new();
    for (file, text) in BUILD_FILES.iter().zip(&contents) {
        digest.update(file.as_bytes());
        match text {
            Some(text) => {
                digest.update([1]);
                digest.update((text.len() as u64).to_le_bytes());
                digest.update(text.as_bytes());
            }
            None => digest.update([0]),
        }
    }
    digest.update([u8::from(dir.join("src").is_dir())]);
    let stamp = hex::encode(&digest.finalize()[..12]);

    Ok(LocalProject { name: name.map(|n| normalize(&n)), stamp })
}

/// The distribution name the Python project in `dir` declares, PEP 503-normalized
/// (as `inspect` reads it), for `hsm init`; `None` when it declares none or its
/// files can't be read.
pub fn distribution_name(dir: &Path) -> Option<String> {
    inspect(dir).ok()?.name
}

/// `name` under `[metadata]` in a `setup.cfg`.
fn setup_cfg_name(text: &str) -> Option<String> {
    let mut in_metadata = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_metadata = line == "[metadata]";
        } else if in_metadata
            && let Some((key, value)) = line.split_once(['=', ':'])
            && key.trim() == "name"
            && !value.trim().is_empty()
        {
            return Some(value.trim().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    #[test]
    fn the_name_comes_from_pyproject_then_setup_cfg() {
        let p = project(&[("pyproject.toml", "[project]\nname = \"My_Package\"\nversion = \"1\"\n")]);
        assert_eq!(inspect(p.path()).unwrap().name.as_deref(), Some("my-package"));

        let p = project(&[
            ("pyproject.toml", "[build-system]\nrequires = [\"setuptools\"]\n"),
            ("setup.cfg", "[options]\nname = wrong\n[metadata]\nversion = 1\nname = Legacy.Pkg\n"),
        ]);
        assert_eq!(inspect(p.path()).unwrap().name.as_deref(), Some("legacy-pkg"));

        let p = project(&[("setup.py", "from setuptools import setup\nsetup()\n")]);
        assert_eq!(inspect(p.path()).unwrap().name, None);
    }

    #[test]
    fn a_folder_without_build_files_is_not_a_project() {
        let p = project(&[("README.md", "hi")]);
        assert!(matches!(inspect(p.path()), Err(ProjectError::NotAProject)));
        assert!(matches!(inspect(&p.path().join("nope")), Err(ProjectError::Missing)));
    }

    #[test]
    fn a_broken_pyproject_is_reported() {
        let p = project(&[("pyproject.toml", "[project\nname = 1")]);
        assert!(matches!(inspect(p.path()), Err(ProjectError::Unreadable { file: "pyproject.toml", .. })));
    }

    #[test]
    fn the_stamp_follows_the_build_configuration_only() {
        let p = project(&[("pyproject.toml", "[project]\nname = \"a\"\n"), ("a.py", "x = 1")]);
        let first = inspect(p.path()).unwrap().stamp;
        fs::write(p.path().join("a.py"), "x = 2").unwrap();
        assert_eq!(inspect(p.path()).unwrap().stamp, first, "source edits don't change the stamp");
        fs::write(p.path().join("pyproject.toml"), "[project]\nname = \"a\"\ndependencies = [\"b\"]\n").unwrap();
        let second = inspect(p.path()).unwrap().stamp;
        assert_ne!(second, first);
        fs::create_dir(p.path().join("src")).unwrap();
        assert_ne!(inspect(p.path()).unwrap().stamp, second, "a new `src` folder changes the layout");
    }
}
