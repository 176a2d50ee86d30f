//! Why hsm could not make the venv hold the asked-for packages, with what the
//! user can do about it and whether hsm.yaml was at fault.

use std::io;
use std::path::PathBuf;

#[cfg(doc)]
use super::PythonEnv;

/// Why hsm could not make the venv hold the asked-for packages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UvError {
    /// No uv anywhere.
    #[error(
        "`uv` was not found on `PATH`; install it with `pip install uv` or the official installer \
         (https://docs.astral.sh/uv/getting-started/installation/), or point `HSM_UV` at it"
    )]
    UvNotFound,
    /// uv was not found and hsm could not install it into its cache.
    #[error("`uv` was not found, and installing uv {version} from PyPI failed: {message}")]
    Bootstrap {
        /// The version hsm installs.
        version: String,
        /// Why it failed.
        message: String,
    },
    /// The uv hsm was pointed at isn't an executable.
    #[error("`{}` (from {origin}) is not an executable uv", path.display())]
    UvNotExecutable {
        /// The path or name given.
        path: PathBuf,
        /// Where it came from.
        origin: &'static str,
    },
    /// uv could not be started.
    #[error("could not run `{}`", program.display())]
    Spawn {
        /// The uv binary.
        program: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `.venv` exists and is not a virtual environment.
    #[error("`{}` exists but is not a virtual environment (it has no `pyvenv.cfg`)", path.display())]
    NotAVenv {
        /// The folder.
        path: PathBuf,
    },
    /// `uv venv` failed.
    #[error("uv could not create the virtual environment `{}`:\n{}", path.display(), indent(message))]
    CreateVenv {
        /// The venv folder.
        path: PathBuf,
        /// uv's message.
        message: String,
    },
    /// A `path` or `editable` source that is no folder.
    #[error("package `{package}`: the folder `{}` does not exist", path.display())]
    PathNotFound {
        /// The package's name in hsm.yaml.
        package: String,
        /// The folder.
        path: PathBuf,
    },
    /// A `path` or `editable` source that is no Python project.
    #[error(
        "package `{package}`: `{}` is not a Python project (it has no `pyproject.toml`, `setup.py` or `setup.cfg`)",
        path.display()
    )]
    NotAPythonProject {
        /// The package's name in hsm.yaml.
        package: String,
        /// The folder.
        path: PathBuf,
    },
    /// A local project whose build files can't be read.
    #[error("package `{package}`: cannot read `{}`: {message}", path.display())]
    UnreadableProject {
        /// The package's name in hsm.yaml.
        package: String,
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `pypi` source that does not start with a package name.
    #[error("package `{package}`: `{requirement}` is not a valid requirement: {reason}")]
    InvalidRequirement {
        /// The package's name in hsm.yaml.
        package: String,
        /// The requirement (credentials redacted).
        requirement: String,
        /// Why.
        reason: &'static str,
    },
    /// Two packages of hsm.yaml that are one distribution.
    #[error("packages `{first}` and `{second}` are both the distribution `{distribution}`")]
    SameDistribution {
        /// The first package's name.
        first: String,
        /// The second package's name.
        second: String,
        /// The distribution.
        distribution: String,
    },
    /// `uv pip install` failed; the venv is as it was.
    #[error("uv could not install {}:\n{}", backticked(packages), indent(message))]
    Install {
        /// The packages uv's message is about (all of the transaction when it names none).
        packages: Vec<String>,
        /// uv's message.
        message: String,
    },
    /// `uv pip uninstall` failed.
    #[error("uv could not uninstall {}:\n{}", backticked(packages), indent(message))]
    Uninstall {
        /// The packages.
        packages: Vec<String>,
        /// uv's message.
        message: String,
    },
    /// The run was abandoned (Ctrl-C, SIGTERM) and uv stopped: see
    /// [`PythonEnv::stop_on_drop`].
    #[error("uv was stopped: hsm was interrupted")]
    Stopped,
    /// The venv's files could not be read.
    #[error("cannot read the virtual environment at `{}`", path.display())]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl hsm_model::Explain for UvError {
    /// hsm.yaml (or a registry) asks for something that can't be installed as
    /// written, found before uv ran: the CLI's exit code 2, not 1.
    fn is_input(&self) -> bool {
        matches!(
            self,
            UvError::PathNotFound { .. }
                | UvError::NotAPythonProject { .. }
                | UvError::UnreadableProject { .. }
                | UvError::InvalidRequirement { .. }
                | UvError::SameDistribution { .. }
        )
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            UvError::UvNotFound | UvError::UvNotExecutable { .. } | UvError::Bootstrap { .. } => {
                "install uv with `pip install uv` (or `curl -LsSf https://astral.sh/uv/install.sh | sh`), \
                 or set `HSM_UV` to its path"
                    .into()
            }
            UvError::NotAVenv { path } => format!(
                "hsm keeps the project's packages in `{}`; move that folder away (or delete it if it holds nothing you need) and sync again",
                path.display()
            ),
            UvError::PathNotFound { .. } => {
                "check the package's `path` or `editable` in hsm.yaml or the registry".into()
            }
            UvError::NotAPythonProject { .. } => {
                "point the package at the folder that holds its `pyproject.toml`".into()
            }
            UvError::InvalidRequirement { .. } => {
                "write a PEP 508 requirement such as `requests>=2`, or use `path`/`editable` for a local folder".into()
            }
            UvError::SameDistribution { .. } => "keep one of them in hsm.yaml".into(),
            UvError::Install { .. } => "the environment was left as it was; fix the package and sync again".into(),
            _ => return None,
        })
    }
}

pub(crate) fn backticked(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn indent(message: &str) -> String {
    message.lines().map(|l| if l.is_empty() { String::new() } else { format!("  {l}") }).collect::<Vec<_>>().join("\n")
}
