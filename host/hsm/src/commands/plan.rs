//! `hsm plan`: print what `hsm sync` would do, as text for people or `--json` for
//! tools: each service with who asks for it, its profile, the configuration its
//! plugin merged, the actions it planned and the environment each package gets; and
//! each package with its source. Secrets are shown as the references written in the
//! files, never as values.

use std::fmt::Write as _;

use hsm_model::{Text, Value};
use hsm_plan::{Action, Consumer, Endpoint, Mount, PackageSource as Source, Plan, Probe, ServicePlan};
use hsm_resolve::{ChosenProfile, Contribution, PackageSource, ProjectInfo, Requester, Resolution, ResolvedPackage};
use indexmap::IndexMap;
use serde::Serialize;

use crate::Failure;
use crate::cli::{GlobalArgs, PlanArgs};
use crate::output::{Output, Style, paint};
use crate::project;

/// Runs `hsm plan`.
pub(crate) fn run(global: &GlobalArgs, args: &PlanArgs, out: &Output) -> Result<(), Failure> {
    // What the plugins would do is shown even before the project grants them what
    // they need; what is missing follows, and the exit code is 2.
    let (planned, needs) = project::review(global, out, hsm_planner::Reach::Local, hsm_planner::Scope::All)?;
    let shown = show(&planned, args, out);
    // The process ends once this returns, and the system takes its memory back
    // at once: freeing the plan, its resolution and configuration one allocation
    // at a time would take 45-70 ms more for 10,000 packages (docs/decisions.md).
    std::mem::forget(planned);
    match needs {
        Some((sources, diags)) => {
            shown?;
            Err(Failure::Input(sources, diags))
        }
        None => shown,
    }
}

fn show(planned: &project::Planned, args: &PlanArgs, out: &Output) -> Result<(), Failure> {
    let (r, plan) = (&planned.resolution, &planned.plan);
    if args.json {
        out.json(&JsonPlan {
            project: &r.project,
            services: json_services(r, plan),
            packages: &r.packages,
            tasks: &plan.tasks,
        })
    } else {
        out.data(&text(r, plan, out.color_out()))
    }
}

/// The JSON plan: the resolution's project and packages, and its services next to
/// what their plugins made of them.
#[derive(Serialize)]
struct JsonPlan<'a> {
    project: &'a ProjectInfo,
    services: Vec<JsonService<'a>>,
    packages: &'a [ResolvedPackage],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tasks: &'a [hsm_plan::Task],
}

/// One service in the JSON plan: the resolution's view of it next to its plugin's.
#[derive(Serialize)]
struct JsonService<'a> {
    name: &'a str,
    kind: &'a str,
    plugin: &'a str,
    profile: Option<&'a ChosenProfile>,
    defaults: Option<&'a Value>,
    contributions: &'a [Contribution],
    merged: &'a Value,
    actions: &'a [Action],
    env: Vec<JsonEnv<'a>>,
}

#[derive(Serialize)]
struct JsonEnv<'a> {
    consumer: &'a Consumer,
    vars: JsonVars<'a>,
}

/// A consumer's variables as an object; a name given twice keeps its first place
/// and its last value.
struct JsonVars<'a>(&'a [(String, Text)]);

impl Serialize for JsonVars<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let vars = self.0;
        let unique = vars.iter().enumerate().all(|(i, (name, _))| vars[..i].iter().all(|(n, _)| n != name));
        if unique {
            s.collect_map(vars.iter().map(|(k, v)| (k, v)))
        } else {
            s.collect_map(vars.iter().map(|(k, v)| (k.as_str(), v)).collect::<IndexMap<&str, &Text>>())
        }
    }
}

fn json_services<'a>(r: &'a Resolution, plan: &'a Plan) -> Vec<JsonService<'a>> {
    let resolved: std::collections::HashMap<&str, &hsm_resolve::ServiceInstance> =
        r.services.iter().map(|s| (s.name.as_str(), s)).collect();
    plan.services
        .iter()
        .map(|s| {
            let resolved = resolved.get(s.name.as_str());
            JsonService {
                name: &s.name,
                kind: &s.kind,
                plugin: &s.plugin,
                profile: resolved.map(|x| &x.profile),
                defaults: resolved.map(|x| &x.defaults),
                contributions: resolved.map_or(&[], |x| &x.contributions),
                merged: &s.merged,
                actions: &s.actions,
                env: s.env.iter().map(|e| JsonEnv { consumer: &e.consumer, vars: JsonVars(&e.vars) }).collect(),
            }
        })
        .collect()
}

/// The plan as text.
pub(crate) fn text(r: &Resolution, plan: &Plan, color: bool) -> String {
    let h = |s: &str| paint(color, Style::Heading, s);
    let n = |s: &str| paint(color, Style::Name, s);
    let d = |s: &str| paint(color, Style::Dim, s);
    let mut out = String::new();
    let _ = writeln!(out, "{} {} {}", h("project"), n(&r.project.name), d(&format!("({})", r.project.file)));

    let _ = writeln!(out, "\n{}", h(&format!("services ({})", r.services.len())));
    if r.services.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for s in &r.services {
        let _ = writeln!(out, "  {} {}", n(&s.name), d(&format!("kind {}", s.kind)));
        let _ = writeln!(
            out,
            "    profile   {} ({}) {}",
            n(&s.profile.name),
            s.profile.mode,
            d(&format!("chosen at {}", s.profile.chosen_by))
        );
        if !is_empty(&s.profile.settings) {
            let _ = writeln!(out, "    settings  {}", inline(&s.profile.settings));
        }
        if !is_empty(&s.defaults) {
            let _ = writeln!(out, "    defaults  {}", inline(&s.defaults));
        }
        let _ = writeln!(out, "    asked by");
        let width = s.contributions.iter().map(|c| requester(&c.from).len()).max().unwrap_or(0);
        for c in &s.contributions {
            let who = requester(&c.from);
            let params = if is_empty(&c.params) { "{}".to_string() } else { inline(&c.params) };
            let _ = writeln!(out, "      {who:<width$}  {params}  {}", d(&c.origin.to_string()));
        }
        if let Some(planned) = plan.services.iter().find(|p| p.name == s.name) {
            planned_service(&mut out, planned, color);
        }
    }

    let _ = writeln!(out, "\n{}", h(&format!("packages ({})", r.packages.len())));
    if r.packages.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let width = r.packages.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in &r.packages {
        let source = match &p.source {
            Some(PackageSource::Pypi { requirement }) => format!("pypi {requirement}"),
            Some(PackageSource::Path { display, editable: true, .. }) => format!("editable {display}"),
            Some(PackageSource::Path { display, editable: false, .. }) => format!("path {display}"),
            None => "no source (implies others only)".to_string(),
        };
        let by: Vec<String> = p.requested_by.iter().map(requester).collect();
        let pad = " ".repeat(width.saturating_sub(p.name.len()));
        let _ = writeln!(out, "  {}{pad}  {source}  {}", n(&p.name), d(&format!("asked by {}", by.join(", "))));
    }
    if let Some(python) = plan.services.iter().find(|p| p.name == hsm_planner::PYTHON_SERVICE) {
        let _ = writeln!(out, "  {}", d(&format!("installed by {}", python.plugin)));
        actions(&mut out, &python.actions, color);
    }
    if !plan.tasks.is_empty() {
        let _ = writeln!(out, "\n{}", h(&format!("tasks ({}), in the order they run", plan.tasks.len())));
        for t in &plan.tasks {
            let on = match t.on {
                hsm_plan::TaskOn::Sync => "on sync",
                hsm_plan::TaskOn::Demand => "on demand",
            };
            let _ = writeln!(out, "  {} {}", n(&t.id()), d(&format!("{on}, in {}", t.dir)));
            let words: Vec<String> = t.run.iter().map(|w| hsm_model::text::printable(w).into_owned()).collect();
            let _ = writeln!(out, "    run {}", words.join(" "));
            if !t.services.is_empty() {
                let _ = writeln!(out, "    {}", d(&format!("once ready: {}", t.services.join(", "))));
            }
            if !t.after.is_empty() {
                let _ = writeln!(out, "    {}", d(&format!("after {}", t.after.join(", "))));
            }
        }
    }
    out
}

/// What the plugin made of a service: merged configuration, actions, environment.
fn planned_service(out: &mut String, s: &ServicePlan, color: bool) {
    let d = |t: &str| paint(color, Style::Dim, t);
    let _ = writeln!(out, "    plugin    {}", s.plugin);
    if !is_empty(&s.merged) {
        let _ = writeln!(out, "    merged    {}", inline(&s.merged));
    }
    if s.actions.is_empty() {
        let _ = writeln!(out, "    actions   {}", d("none: nothing runs locally"));
    } else {
        actions(out, &s.actions, color);
    }
    for env in &s.env {
        let who = match &env.consumer {
            Consumer::Project => "the project".to_string(),
            Consumer::Package(p) => p.clone(),
        };
        let _ = writeln!(out, "    env of {}", paint(color, Style::Name, &who));
        for (name, value) in &env.vars {
            let _ = writeln!(out, "      {name}={}", value.display());
        }
    }
}

fn actions(out: &mut String, actions: &[Action], color: bool) {
    let d = |t: &str| paint(color, Style::Dim, t);
    let _ = writeln!(out, "    actions");
    for (i, action) in actions.iter().enumerate() {
        let mut lines = describe(action).into_iter();
        let _ = writeln!(out, "      {}. {}", i + 1, lines.next().unwrap_or_default());
        for line in lines {
            let _ = writeln!(out, "         {}", d(&line));
        }
    }
}

/// An action in words: a first line, then details.
fn describe(action: &Action) -> Vec<String> {
    match action {
        Action::EnsureContainer(c) => {
            let mut lines = vec![format!("run container `{}` from `{}`", c.name, c.image)];
            if let Some(command) = &c.command {
                lines.push(format!("command {}", words(command)));
            }
            for p in &c.ports {
                let host = p.host_port.map_or_else(|| "a port hsm chooses".to_string(), |h| h.to_string());
                lines.push(format!("port {} on {}:{host}", p.container_port, p.host_ip));
            }
            for m in &c.mounts {
                lines.push(match m {
                    Mount::Volume { volume, target, read_only } => {
                        format!("volume `{volume}` at {target}{}", if *read_only { " (read-only)" } else { "" })
                    }
                    Mount::Bind { source, target, read_only } => {
                        format!("file `{source}` at {target}{}", if *read_only { " (read-only)" } else { "" })
                    }
                });
            }
            for (k, v) in &c.env {
                lines.push(format!("env {k}={}", v.display()));
            }
            lines
        }
        Action::Exec(e) => {
            let mut lines = vec![format!("run in `{}`: {}", e.container, words(&e.command))];
            lines.extend(e.env.iter().map(|(k, v)| format!("env {k}={}", v.display())));
            lines
        }
        Action::Wait(w) => {
            let what = match &w.probe {
                Probe::Tcp { endpoint } => format!("a TCP connection to {}", endpoint_text(endpoint)),
                Probe::Http { endpoint, path, tls, .. } => {
                    format!("{}://{}{path} answers", if *tls { "https" } else { "http" }, endpoint_text(endpoint))
                }
                Probe::Exec(e) => format!("`{}` succeeds in `{}`", words(&e.command), e.container),
            };
            vec![format!("wait until {what} (at most {} s)", w.timeout_ms.div_ceil(1000))]
        }
        Action::UvInstall { packages } => {
            let mut lines = vec![format!("install {} Python package(s) with uv", packages.len())];
            for p in packages {
                lines.push(match &p.source {
                    Source::Pypi(r) => format!("{} from the index: {r}", p.name),
                    Source::Path(path) => format!("{} from {path}", p.name),
                    Source::Editable(path) => format!("{} editable from {path}", p.name),
                });
            }
            lines
        }
        Action::WriteFile(f) => vec![format!("write `.hsm/{}/{}`", f.plugin, f.path)],
    }
}

fn endpoint_text(e: &Endpoint) -> String {
    match e {
        Endpoint::ContainerPort { container, port } => format!("`{container}`:{port}"),
        Endpoint::Address { host, port } => format!("{}:{}", host.display(), port.display()),
    }
}

/// A command line, shortened to its first line (a script's first line, say);
/// what is shown is escaped ([`Text::display`]).
fn words(command: &[Text]) -> String {
    let mut shown = Vec::new();
    for arg in command {
        let (first, more) = arg.first_line();
        shown.push(first.display());
        if more {
            shown.push("…".to_string());
            break;
        }
    }
    shown.join(" ")
}

fn requester(r: &Requester) -> String {
    match r {
        Requester::Project => "hsm.yaml".to_string(),
        Requester::Package(p) => p.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Map(m) => m.is_empty(),
        _ => false,
    }
}

/// A value on one line, in YAML's flow style.
fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => {
            let s = t.display();
            let plain = !s.is_empty()
                && !s.contains([',', '{', '}', '[', ']', '#', '"', '\''])
                && !s.contains(": ")
                && s.trim() == s
                && s.parse::<f64>().is_err()
                && !matches!(s.as_str(), "true" | "false" | "null" | "~");
            if plain { s } else { serde_json::to_string(&s).unwrap_or(s) }
        }
        Value::List(items) => format!("[{}]", items.iter().map(inline).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => {
            let entry = |(k, v): (&String, &Value)| format!("{}: {}", hsm_model::text::printable(k), inline(v));
            format!("{{{}}}", m.iter().map(entry).collect::<Vec<_>>().join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::Text;

    use super::*;

    #[test]
    fn inline_quotes_only_what_yaml_would_misread() {
        let v = Value::Map(
            [
                ("version".to_string(), Value::from("16")),
                ("image".to_string(), Value::from("postgres:16")),
                ("note".to_string(), Value::from("a, b")),
                ("port".to_string(), Value::Int(5432)),
                ("cost".to_string(), Value::Text(Text::literal("$5"))),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(inline(&v), r#"{version: "16", image: postgres:16, note: "a, b", port: 5432, cost: $$5}"#);
    }
}
