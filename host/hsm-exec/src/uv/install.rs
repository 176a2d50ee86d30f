//! Making the venv hold exactly the asked-for packages: one `uv pip install` for
//! what is missing or changed, then `uv pip uninstall` for what hsm installed
//! earlier and hsm.yaml no longer asks for (unless something still requires it).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::Path;

use hsm_plan::PythonPackage;

use super::error::backticked;
use super::names::normalize;
use super::process::uv_message;
use super::site::{self, Health, Site};
use super::wanted::{Wanted, check, inspect_all};
use super::{
    InstallReason, InstalledPackage, KeptPackage, PackageChange, PythonChanges, PythonEnv, PythonState, RemovedPackage,
    UvError, VENV_DIR, VenvChange,
};

/// Makes the venv hold exactly the packages of `desired`, as far as hsm installed
/// them: creates `.venv` with `uv venv` when there is none (or recreates it when
/// its interpreter is gone), installs what is missing or changed in ONE
/// `uv pip install`, then uninstalls what `state` says hsm installed earlier and
/// `desired` no longer holds — unless another installed distribution still
/// requires it. Touches nothing else. With nothing to do, runs no process at all.
///
/// Every entry is checked before uv runs; when uv fails, the venv is left as it
/// was (and a venv this call created is removed). `state` is updated as changes
/// are made, so save it even when this fails.
pub fn sync(
    env: &PythonEnv,
    desired: &[PythonPackage],
    state: &mut PythonState,
    report: &dyn Fn(&str),
) -> Result<PythonChanges, UvError> {
    let wanted = inspect_all(desired, &env.project_dir)?;
    let mut changes = PythonChanges::default();
    let venv_io = |source| UvError::Io { path: env.venv.clone(), source };

    let health = site::health(&env.venv);
    match health {
        Health::NotAVenv => return Err(UvError::NotAVenv { path: env.venv.clone() }),
        Health::Missing | Health::Broken if wanted.is_empty() => {
            // Nothing asked for, no usable venv: what hsm installed is gone with it.
            state.packages.clear();
            return Ok(changes);
        }
        Health::Missing => {
            report(&format!("creating the virtual environment `{VENV_DIR}`"));
            env.create_venv(false)?;
            changes.venv = Some(VenvChange::Created);
        }
        Health::Broken => {
            report(&format!("recreating `{VENV_DIR}`: its interpreter `{}` is gone", env.python().display()));
            env.create_venv(true)?;
            changes.venv = Some(VenvChange::Recreated);
        }
        Health::Ready => {}
    }
    let created = changes.venv == Some(VenvChange::Created);
    let site_dir = site::site_packages(&env.venv).map_err(venv_io)?;

    let mut to_install: Vec<(&Wanted<'_>, InstallReason)> = Vec::new();
    for w in &wanted {
        let verdict = match changes.venv {
            // A new venv holds nothing.
            Some(_) => Err(if state.packages.contains_key(w.name) { InstallReason::Gone } else { InstallReason::New }),
            None => check(w, state.packages.get(w.name), site_dir.as_deref()),
        };
        if let Err(reason) = verdict {
            to_install.push((w, reason));
        }
    }

    // Distributions hsm installed that may have to go: (name in hsm.yaml, entry).
    let mut leaving: Vec<(String, InstalledPackage)> = Vec::new();

    if !to_install.is_empty() {
        let result = install(env, &to_install, site_dir.as_deref(), report);
        let site = match result {
            Ok(site) => site,
            Err(e) => {
                if created {
                    // Leave things as they were: there was no venv.
                    let _ = fs::remove_dir_all(&env.venv);
                }
                return Err(e);
            }
        };
        for (w, reason) in to_install {
            let found = match (&w.distribution, w.local()) {
                (Some(dist), _) => site.find(dist),
                (None, Some((path, editable))) => site.find_by_path(path, editable),
                (None, None) => None,
            };
            let distribution =
                found.map(|d| d.name.clone()).or_else(|| w.distribution.clone()).unwrap_or_else(|| normalize(w.name));
            let entry = InstalledPackage {
                source: w.source.clone(),
                distribution: distribution.clone(),
                version: found.map(|d| d.version.clone()),
                dist_info: found.map(|d| d.dist_info.clone()),
                build_stamp: w.stamp.clone(),
            };
            changes.installed.push(PackageChange {
                name: w.name.into(),
                distribution,
                version: entry.version.clone(),
                reason,
            });
            if let Some(previous) = state.packages.insert(w.name.to_string(), entry)
                && previous.distribution != state.packages[w.name].distribution
            {
                // The project was renamed: the old distribution is hsm's to remove.
                leaving.push((w.name.to_string(), previous));
            }
        }
    }

    let wanted_names: BTreeSet<&str> = wanted.iter().map(|w| w.name).collect();
    let gone: Vec<String> = state.packages.keys().filter(|n| !wanted_names.contains(n.as_str())).cloned().collect();
    for name in gone {
        if let Some(entry) = state.packages.remove(&name) {
            leaving.push((name, entry));
        }
    }
    if !leaving.is_empty() {
        remove(env, leaving, state, &mut changes, report)?;
    }
    Ok(changes)
}

/// Runs the one `uv pip install` for `to_install`, returning site-packages after.
fn install(
    env: &PythonEnv,
    to_install: &[(&Wanted<'_>, InstallReason)],
    site_dir: Option<&Path>,
    report: &dyn Fn(&str),
) -> Result<Site, UvError> {
    let site_io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| UvError::Io { path, source }
    };
    let mut args: Vec<OsString> =
        vec!["pip".into(), "install".into(), "--python".into(), env.python().into(), "--color".into(), "never".into()];
    // uv keeps an installed distribution that satisfies a plain requirement, even
    // one installed from a folder: a package that moves from a local source to the
    // index has to be reinstalled explicitly. (Local sources are always rebuilt.)
    if let Some(dir) = site_dir {
        let before = Site::read(dir).map_err(site_io(dir))?;
        for (w, _) in to_install {
            if w.local().is_none()
                && let Some(dist) = w.distribution.as_deref().and_then(|d| before.find(d))
                && matches!(site::direct_url(&dir.join(&dist.dist_info)), Ok(Some(_)))
            {
                args.extend(["--reinstall-package".into(), dist.name.clone().into()]);
            }
        }
    }
    for (w, _) in to_install {
        args.extend(w.args.iter().cloned());
    }
    let list: Vec<String> = to_install.iter().map(|(w, _)| format!("`{}` ({})", w.name, w.source)).collect();
    report(&format!("installing {}", list.join(", ")));
    let out = env.run_uv(&args)?;
    if !out.status.success() {
        let message = uv_message(&out);
        return Err(UvError::Install { packages: blame(to_install, &message), message });
    }
    let dir = site::site_packages(&env.venv)
        .map_err(site_io(&env.venv))?
        .ok_or_else(|| UvError::Io { path: env.venv.clone(), source: io::Error::other("no site-packages folder") })?;
    Site::read(&dir).map_err(site_io(&dir))
}

/// The packages of a failed install that uv's message names (by distribution
/// name in any spelling, or by folder); all of them when it names none.
fn blame(to_install: &[(&Wanted<'_>, InstallReason)], message: &str) -> Vec<String> {
    let words: BTreeSet<String> = message
        .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter(|w| !w.is_empty())
        .map(|w| normalize(w.trim_matches('.')))
        .collect();
    let named: Vec<String> = to_install
        .iter()
        .filter(|(w, _)| {
            w.distribution.as_ref().is_some_and(|d| words.contains(d))
                || w.local().is_some_and(|(p, _)| {
                    let p = p.display().to_string();
                    message.contains(&p) || message.contains(&p.replace(' ', "%20"))
                })
        })
        .map(|(w, _)| w.name.to_string())
        .collect();
    if named.is_empty() { to_install.iter().map(|(w, _)| w.name.to_string()).collect() } else { named }
}

/// Uninstalls the distributions of `leaving` that nothing needs any more.
fn remove(
    env: &PythonEnv,
    leaving: Vec<(String, InstalledPackage)>,
    state: &mut PythonState,
    changes: &mut PythonChanges,
    report: &dyn Fn(&str),
) -> Result<(), UvError> {
    let still_wanted: BTreeSet<&str> = state.packages.values().map(|e| e.distribution.as_str()).collect();
    let Some(dir) = site::site_packages(&env.venv).map_err(|source| UvError::Io { path: env.venv.clone(), source })?
    else {
        return Ok(());
    };
    let site = Site::read(&dir).map_err(|source| UvError::Io { path: dir.clone(), source })?;
    // Another entry of hsm.yaml is the same distribution, or it's gone already:
    // only the record goes.
    let leaving: Vec<_> = leaving
        .into_iter()
        .filter(|(_, e)| !still_wanted.contains(e.distribution.as_str()) && site.find(&e.distribution).is_some())
        .collect();
    let dists: Vec<String> = leaving.iter().map(|(_, e)| e.distribution.clone()).collect();
    let needed = site.requirers(&dists).map_err(|source| UvError::Io { path: dir.clone(), source })?;

    let mut uninstall = Vec::new();
    for (name, entry) in leaving {
        match needed.get(&entry.distribution) {
            Some(by) => {
                report(&format!("keeping `{name}`, no longer in hsm.yaml: {} still requires it", backticked(by)));
                changes.kept.push(KeptPackage { name, distribution: entry.distribution, required_by: by.clone() });
            }
            None => uninstall.push((name, entry)),
        }
    }
    if uninstall.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = uninstall.iter().map(|(n, _)| n.clone()).collect();
    report(&format!("uninstalling {}", backticked(&names)));
    let mut args: Vec<OsString> = vec![
        "pip".into(),
        "uninstall".into(),
        "--python".into(),
        env.python().into(),
        "--color".into(),
        "never".into(),
    ];
    args.extend(uninstall.iter().map(|(_, e)| OsString::from(&e.distribution)));
    let failed = match env.run_uv(&args) {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(UvError::Uninstall { packages: names, message: uv_message(&out) }),
        Err(e) => Some(e),
    };
    if let Some(e) = failed {
        // Still hsm's: the next sync tries again.
        for (name, entry) in uninstall {
            state.packages.insert(name, entry);
        }
        return Err(e);
    }
    changes.uninstalled.extend(uninstall.into_iter().map(|(name, e)| RemovedPackage {
        name,
        distribution: e.distribution,
        version: e.version,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uv::InstalledSource;

    #[test]
    fn blame_names_the_packages_uv_mentions() {
        let a = Wanted {
            name: "a",
            source: InstalledSource::Pypi("zz-nope".into()),
            args: vec![],
            distribution: Some("zz-nope".into()),
            stamp: None,
        };
        let b = Wanted {
            name: "b",
            source: InstalledSource::Editable("/tmp/with space/b".into()),
            args: vec![],
            distribution: None,
            stamp: None,
        };
        let both = [(&a, InstallReason::New), (&b, InstallReason::New)];
        assert_eq!(blame(&both, "Because zz_nope was not found in the package registry"), ["a"]);
        assert_eq!(blame(&both, "Failed to build `b @ file:///tmp/with%20space/b`"), ["b"]);
        assert_eq!(blame(&both, "network is down"), ["a", "b"]);
    }
}
