//! `hsm down`: removes what hsm created for the project in this folder (its
//! containers and network; its volumes with `--volumes`). Only objects labelled
//! with this folder are touched, so it works even when `hsm.yaml` no longer loads,
//! and never reaches another project. Host ports stay recorded, so the next
//! `hsm sync` publishes services where clients expect them.

use std::path::Path;

use hsm_exec::docker::Docker;
use hsm_exec::names::ProjectId;
use hsm_exec::state::{Lock, State, state_path};

use crate::Failure;
use crate::cli::{DownArgs, GlobalArgs};
use crate::engine;
use crate::output::{Output, Style, paint};
use crate::progress::Progress;

/// Runs `hsm down`.
pub(crate) fn run(global: &GlobalArgs, args: &DownArgs, out: &Output) -> Result<(), Failure> {
    if let Some(old) = &args.from_folder {
        return from_folder(old, args.volumes, out);
    }
    let dir = std::path::absolute(&global.project_dir).unwrap_or_else(|_| global.project_dir.clone());
    if !dir.join("hsm.yaml").is_file() && !dir.join(".hsm").is_dir() {
        out.error_with(
            &format!("no hsm project in `{}`", dir.display()),
            &[],
            Some("run `hsm down` in the folder that holds `hsm.yaml`, or pass it with `-C`"),
        );
        return Err(Failure::Exit(2));
    }
    let name = project_name(&dir);
    let project = ProjectId::new(name, &dir);
    let _lock = Lock::acquire(&project, "down").map_err(|e| engine::failure(out, &e))?;
    let progress = Progress::new(out);
    let runtime = engine::runtime()?;
    let removed = runtime.block_on(async {
        let docker = Docker::connect().await?;
        hsm_exec::sync::down(&docker, &project, args.volumes, &progress).await
    });
    progress.clear();
    let removed = removed.map_err(|e| engine::failure(out, &e))?;
    if state_path(&project).is_file() {
        let mut state = State::load(&project).map_err(|e| engine::failure(out, &e))?;
        for service in state.services.values_mut() {
            for c in service.containers.values_mut() {
                c.id = None;
                c.execs.clear();
                c.ready_at = None;
            }
        }
        // The data the tasks made (a migrated schema) went with the volumes: they
        // run again on the next sync.
        if args.volumes {
            state.tasks.clear();
        }
        state.save(&project).map_err(|e| engine::failure(out, &e))?;
    }
    let name = paint(out.color_err(), Style::Name, &project.name);
    if removed.is_empty() {
        out.status(&format!("nothing of {name} was running"));
    } else {
        let kept = if args.volumes { "" } else { "; volumes kept (`hsm down --volumes` removes them)" };
        let n = removed.len();
        let objects = if n == 1 { "Docker object" } else { "Docker objects" };
        out.status(&format!("removed {n} {objects} of {name}{kept}"));
    }
    Ok(())
}

/// `hsm down --from-folder OLD`: removes what is labelled with a folder that no
/// longer holds a project (moved or deleted), where `hsm down` can't be run. A
/// folder that still holds one is refused: its own `hsm down` is the way, under its
/// lock.
fn from_folder(old: &Path, volumes: bool, out: &Output) -> Result<(), Failure> {
    let dir = std::path::absolute(old).unwrap_or_else(|_| old.to_path_buf());
    if hsm_exec::error::OtherFolder::at(&dir) == hsm_exec::error::OtherFolder::Project {
        out.error_with(
            &format!("`{}` still holds an hsm project", dir.display()),
            &[],
            Some(&format!("run `hsm -C '{}' down` instead", dir.display())),
        );
        return Err(Failure::Exit(2));
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let project = ProjectId::new(name, &dir);
    let progress = Progress::new(out);
    let runtime = engine::runtime()?;
    let removed = runtime.block_on(async {
        let docker = Docker::connect().await?;
        hsm_exec::sync::down(&docker, &project, volumes, &progress).await
    });
    progress.clear();
    let removed = removed.map_err(|e| engine::failure(out, &e))?;
    let folder = paint(out.color_err(), Style::Name, &dir.display().to_string());
    if removed.is_empty() {
        out.status(&format!("nothing of a project in {folder} was on the engine"));
    } else {
        let kept = if volumes { "" } else { "; volumes kept (add `--volumes` to remove them)" };
        let n = removed.len();
        let objects = if n == 1 { "Docker object" } else { "Docker objects" };
        out.status(&format!("removed {n} {objects} left by {folder}{kept}"));
    }
    Ok(())
}

/// The project's name for messages: from `hsm.yaml`'s `project:` line, else the
/// state, else the folder's name. (Only the folder decides what is removed.)
fn project_name(dir: &Path) -> String {
    let from_yaml = std::fs::read_to_string(dir.join("hsm.yaml")).ok().and_then(|text| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix("project:")?;
            let v = rest.split('#').next()?.trim().trim_matches(['"', '\'']);
            (!v.is_empty()).then(|| v.to_string())
        })
    });
    from_yaml
        .or_else(|| {
            let text = std::fs::read_to_string(dir.join(".hsm/state.json")).ok()?;
            serde_json::from_str::<serde_json::Value>(&text).ok()?.get("project")?.as_str().map(str::to_string)
        })
        .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
}
