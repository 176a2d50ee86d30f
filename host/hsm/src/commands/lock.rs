//! `hsm lock`: resolve the git registries of `hsm.yaml` and write `hsm.lock` (the
//! loader writes it, as it does for `hsm sync`); `--update` resolves refs again.

use hsm_config::git_registry::designates;
use hsm_config::lock::{LOCK_FILE, LockFile};
use hsm_model::{Diagnostic, Diagnostics};

use crate::Failure;
use crate::cli::{GlobalArgs, LockArgs};
use crate::output::Output;
use crate::project;

/// Runs `hsm lock`.
pub(crate) fn run(global: &GlobalArgs, args: &LockArgs, out: &Output) -> Result<(), Failure> {
    let (sources, loaded) = project::load(global, out)?;
    let git: Vec<&String> = loaded.registries.iter().filter(|r| r.starts_with("git+")).collect();
    let mut diags = Diagnostics::default();
    for name in &args.registries {
        if !git.iter().any(|r| designates(name, r)) {
            let listed = hsm_model::names_or_none(git.iter().map(|r| r.as_str()));
            diags.push(
                Diagnostic::new(format!("`{name}` is not a git registry of hsm.yaml"))
                    .hint(format!("name one of its git registries, as written in `registries`: {listed}")),
            );
        }
    }
    diags.0.extend(loaded.diags().0.iter().cloned());
    if !diags.is_empty() {
        return Err(Failure::Input(sources, diags));
    }
    if git.is_empty() {
        out.status("hsm.yaml names no git registry: nothing to lock");
        return Ok(());
    }
    let path = loaded.project.dir.join(LOCK_FILE);
    let lock = LockFile::read(&path).ok_or_else(|| Failure::Job(format!("`{}` was not written", path.display())))?;
    for name in git {
        if let Some(entry) = lock.registries.get(name) {
            let short = &entry.commit[..entry.commit.len().min(12)];
            out.status(&format!("{name}: commit {short}, {} file(s)", entry.files.len()));
        }
    }
    Ok(())
}
