//! Each package hsm.yaml asks for, looked at before uv runs (a requirement must
//! start with a name, a folder must be a Python project), and the no-op check:
//! whether it is installed as asked, from hsm's state and the venv's files only.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use hsm_plan::{PackageSource, PythonPackage};

use super::names::{normalize, redact_credentials, requirement_name};
use super::project::{self, ProjectError};
use super::{InstallReason, InstalledPackage, InstalledSource, UvError, site};

/// An asked-for package, looked at before uv runs.
pub(crate) struct Wanted<'a> {
    pub(crate) name: &'a str,
    pub(crate) source: InstalledSource,
    /// Its arguments to `uv pip install`.
    pub(crate) args: Vec<OsString>,
    /// Its distribution name, when known before installing.
    pub(crate) distribution: Option<String>,
    /// For local sources, the digest of its build configuration.
    pub(crate) stamp: Option<String>,
}

impl Wanted<'_> {
    pub(crate) fn local(&self) -> Option<(&Path, bool)> {
        match &self.source {
            InstalledSource::Pypi(_) => None,
            InstalledSource::Path(p) => Some((p, false)),
            InstalledSource::Editable(p) => Some((p, true)),
        }
    }
}

/// Checks one asked-for package: a requirement must start with a name, a folder
/// must be a Python project. Reads its name and build configuration.
pub(crate) fn inspect<'a>(package: &'a PythonPackage, project_dir: &Path) -> Result<Wanted<'a>, UvError> {
    let name = package.name.as_str();
    let (path, editable) = match &package.source {
        PackageSource::Pypi(requirement) => {
            let dist = requirement_name(requirement).map_err(|reason| UvError::InvalidRequirement {
                package: name.into(),
                requirement: redact_credentials(requirement),
                reason,
            })?;
            return Ok(Wanted {
                name,
                source: InstalledSource::Pypi(redact_credentials(requirement)),
                args: vec![requirement.trim().into()],
                distribution: Some(normalize(dist)),
                stamp: None,
            });
        }
        PackageSource::Path(p) => (p, false),
        PackageSource::Editable(p) => (p, true),
    };
    // The planner hands absolute paths; a relative one is taken from the project.
    let path = project_dir.join(path);
    let local = project::inspect(&path).map_err(|e| match e {
        ProjectError::Missing => UvError::PathNotFound { package: name.into(), path: path.clone() },
        ProjectError::NotAProject => UvError::NotAPythonProject { package: name.into(), path: path.clone() },
        ProjectError::Unreadable { file, message } => {
            UvError::UnreadableProject { package: name.into(), path: path.join(file), message }
        }
    })?;
    let mut args: Vec<OsString> = Vec::new();
    if editable {
        args.push("--editable".into());
    }
    args.push(path.clone().into_os_string());
    Ok(Wanted {
        name,
        source: if editable { InstalledSource::Editable(path) } else { InstalledSource::Path(path) },
        args,
        distribution: local.name,
        stamp: Some(local.stamp),
    })
}

/// Inspects every asked-for package, refusing two that are one distribution.
pub(crate) fn inspect_all<'a>(desired: &'a [PythonPackage], project_dir: &Path) -> Result<Vec<Wanted<'a>>, UvError> {
    let wanted = desired.iter().map(|p| inspect(p, project_dir)).collect::<Result<Vec<_>, _>>()?;
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for w in &wanted {
        if let Some(dist) = &w.distribution
            && let Some(first) = seen.insert(dist, w.name)
        {
            return Err(UvError::SameDistribution {
                first: first.into(),
                second: w.name.into(),
                distribution: dist.clone(),
            });
        }
    }
    Ok(wanted)
}

/// The no-op check: whether `w` is installed as asked, from hsm's state and the
/// venv's files only. `Err` says why it must be (re)installed.
pub(crate) fn check(
    w: &Wanted<'_>,
    entry: Option<&InstalledPackage>,
    site: Option<&Path>,
) -> Result<(), InstallReason> {
    let entry = entry.ok_or(InstallReason::New)?;
    if entry.source != w.source {
        return Err(InstallReason::SourceChanged);
    }
    if entry.build_stamp != w.stamp || w.distribution.as_ref().is_some_and(|d| *d != entry.distribution) {
        return Err(InstallReason::BuildChanged);
    }
    let site = site.ok_or(InstallReason::Gone)?;
    let Some(dist_info) = &entry.dist_info else {
        // uv installed nothing for it: a requirement whose markers exclude this
        // environment. A local project always installs something.
        return if w.local().is_none() { Ok(()) } else { Err(InstallReason::Gone) };
    };
    let dir = site.join(dist_info);
    if !dir.is_dir() {
        return Err(InstallReason::Gone);
    }
    let changed = |what: String| InstallReason::ChangedOutsideHsm(what);
    match w.local() {
        None => match site::direct_url(&dir) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(changed(format!("`{}` was reinstalled from a URL or folder", entry.distribution))),
            Err(e) => Err(changed(format!("cannot read `{dist_info}/direct_url.json`: {e}"))),
        },
        Some((path, editable)) => {
            match site::installed_from(&dir, path, editable) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(changed(format!(
                        "`{}` is no longer installed from `{}`",
                        entry.distribution,
                        path.display()
                    )));
                }
                Err(e) => return Err(changed(format!("cannot read `{dist_info}/direct_url.json`: {e}"))),
            }
            if editable {
                match site::missing_pth(site, dist_info) {
                    Ok(None) => {}
                    Ok(Some(pth)) => return Err(changed(format!("`{pth}` is gone"))),
                    Err(e) => return Err(changed(format!("cannot read `{dist_info}/RECORD`: {e}"))),
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::Explain;

    use super::*;

    fn pkg(name: &str, source: PackageSource) -> PythonPackage {
        PythonPackage { name: name.into(), source }
    }

    #[test]
    fn requirements_are_checked_and_redacted() {
        let err = inspect(&pkg("evil", PackageSource::Pypi("--index-url=https://u:p@x/".into())), Path::new("/"))
            .err()
            .unwrap();
        assert!(matches!(err, UvError::InvalidRequirement { .. }));
        assert!(!err.to_string().contains("u:p"), "{err}");

        let lib = pkg("lib", PackageSource::Pypi("Lib_X @ https://u:tok@host/x.whl".into()));
        let w = inspect(&lib, Path::new("/")).unwrap();
        assert_eq!(w.distribution.as_deref(), Some("lib-x"));
        assert_eq!(w.source, InstalledSource::Pypi("Lib_X @ https://***@host/x.whl".into()));
        assert_eq!(w.args, [OsString::from("Lib_X @ https://u:tok@host/x.whl")]);
    }

    #[test]
    fn one_distribution_twice_is_refused() {
        let desired = [pkg("a", PackageSource::Pypi("Foo>=1".into())), pkg("b", PackageSource::Pypi("foo".into()))];
        let err = inspect_all(&desired, Path::new("/")).err().unwrap();
        assert_eq!(err.to_string(), "packages `a` and `b` are both the distribution `foo`");
        assert!(err.is_input());
        assert!(!UvError::UvNotFound.is_input());
    }
}
