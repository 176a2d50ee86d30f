//! `hsm status`: what runs, whether it is ready, and how it differs from the plan
//! (`missing`, `stopped`, `outdated`), without changing anything. External services
//! are shown as such; they are not probed.

use hsm_model::text::printable;
use std::fmt::Write as _;

use hsm_exec::docker::Docker;
use hsm_exec::report::Silent;
use hsm_exec::state::State;
use hsm_exec::sync::{Context, Health, PythonReport, StatusReport, SyncOptions, Syncer};
use hsm_exec::uv::{PackageState, VenvStatus};

use crate::Failure;
use crate::cli::{GlobalArgs, StatusArgs};
use crate::engine;
use crate::output::{Output, Style, paint};
use crate::project;

/// Runs `hsm status`.
pub(crate) fn run(global: &GlobalArgs, args: &StatusArgs, out: &Output) -> Result<(), Failure> {
    let planned = project::plan(global, out)?;
    let project = engine::project_id(&planned.resolution);
    let state = State::load(&project).map_err(|e| engine::failure(out, &e))?;
    let key = engine::key(out)?;
    let runtime = engine::runtime()?;
    let report = runtime.block_on(async {
        let docker = Docker::connect().await?;
        let cx =
            Context { project: project.clone(), key: &key, secrets: &planned.resolution.secrets, reporter: &Silent };
        Syncer::new(docker, &planned.plan, cx, state, SyncOptions::default()).status().await
    });
    let report = report.map_err(|e| engine::failure(out, &e))?;
    if args.json {
        out.json(&report)?;
    } else {
        out.data(&text(&report, out.color_out()))?;
    }
    if args.exit_code && !report.in_sync {
        return Err(Failure::Exit(OUT_OF_SYNC));
    }
    Ok(())
}

/// The exit code of `hsm status --exit-code` when the project is out of sync: apart
/// from 1 (a failure) and 2 (bad input).
const OUT_OF_SYNC: u8 = 3;

/// How long ago a Unix time was, in words.
fn ago(secs: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match now.saturating_sub(secs) {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

fn text(r: &StatusReport, color: bool) -> String {
    let n = |s: &str| paint(color, Style::Name, s);
    let d = |s: &str| paint(color, Style::Dim, s);
    let h = |s: &str| paint(color, Style::Heading, s);
    let mut out = String::new();
    let verdict = if r.in_sync { "in sync" } else { "out of sync: run `hsm sync`" };
    let _ = writeln!(out, "{} {} {}", h("project"), n(&r.project), d(&format!("({verdict})")));
    if r.services.is_empty() {
        let _ = writeln!(out, "\n  no services");
    }
    for s in &r.services {
        let health = match &s.health {
            Health::Ready => "ready".to_string(),
            Health::NotReady(why) => format!("not ready: {}", printable(why)),
            Health::Down => "down".to_string(),
            Health::External => "external (not probed)".to_string(),
        };
        let _ = writeln!(out, "\n{} {} {}", n(&s.name), d(&format!("{} · profile {}", s.kind, s.profile)), health);
        for c in &s.containers {
            let drift = match (c.drift, &c.reason) {
                (Some(drift), Some(reason)) => format!("  {drift}: {}", printable(reason)),
                (Some(drift), None) => format!("  {drift}"),
                _ => String::new(),
            };
            let ports = if c.ports.is_empty() { String::new() } else { format!("  {}", c.ports.join(", ")) };
            let _ = writeln!(out, "  {}  {}{}{}", c.name, c.state, d(&ports), drift);
        }
    }
    match &r.python {
        None => {}
        Some(PythonReport::Unknown { message }) => {
            let _ = writeln!(out, "\n{} {}", n("python"), d(&format!("unknown: {}", printable(message))));
        }
        Some(PythonReport::Checked(py)) => {
            let venv = match py.venv {
                VenvStatus::Ready => ".venv ready",
                VenvStatus::Missing => ".venv missing",
                VenvStatus::Broken => ".venv broken: the next sync recreates it",
                VenvStatus::NotAVenv => ".venv is not a virtual environment: sync refuses to touch it",
            };
            let _ = writeln!(out, "\n{} {}", n("python"), d(venv));
            for p in &py.packages {
                let state = match &p.state {
                    PackageState::Installed => {
                        format!("installed{}", p.version.as_deref().map(|v| format!(" {v}")).unwrap_or_default())
                    }
                    PackageState::Missing => "missing".to_string(),
                    PackageState::Stale { reason } => format!("outdated: {reason}"),
                    PackageState::Invalid { message } => format!("invalid: {}", printable(message)),
                };
                let _ = writeln!(out, "  {}  {state}", p.name);
            }
            for name in &py.removed {
                let _ = writeln!(out, "  {name}  no longer in hsm.yaml (the next sync uninstalls it)");
            }
        }
    }
    if !r.tasks.is_empty() {
        let _ = writeln!(out, "\n{}", h("tasks"));
        for t in &r.tasks {
            let last = match &t.last {
                None => "never ran".to_string(),
                Some(l) if l.ok => format!("succeeded {}", ago(l.finished_at)),
                Some(l) => {
                    let code = l.code.map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"));
                    format!("failed ({code}) {}", ago(l.finished_at))
                }
            };
            let next = match (&t.due, t.on) {
                (Some(why), _) => format!("; the next sync runs it: {why}"),
                (None, hsm_plan::TaskOn::Sync) => "; up to date".to_string(),
                (None, hsm_plan::TaskOn::Demand) => "; on demand (`hsm task`)".to_string(),
            };
            let _ = writeln!(out, "  {}  {last}{}", n(&t.task), d(&next));
        }
    }
    if !r.orphans.is_empty() {
        let _ = writeln!(out, "\n{} {}", h("not in the plan"), d("(the next `hsm sync` removes them)"));
        for o in &r.orphans {
            let _ = writeln!(out, "  {o}");
        }
    }
    out
}
