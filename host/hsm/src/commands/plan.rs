//! `hsm plan`: print the resolved project, as text for people or `--json` for tools.
//! Secrets are shown as the references written in the files, never as values.

use std::fmt::Write as _;

use hsm_model::Value;
use hsm_resolve::{PackageSource, Requester, Resolution};

use crate::Failure;
use crate::cli::{GlobalArgs, PlanArgs};
use crate::output::{Output, Style, paint};
use crate::project;

/// Runs `hsm plan`.
pub(crate) fn run(global: &GlobalArgs, args: &PlanArgs, out: &Output) -> Result<(), Failure> {
    let (_, resolution) = project::resolve(global, out)?;
    if args.json {
        let result = out.json(&resolution);
        // The process ends right after; see `project::resolve`.
        std::mem::forget(resolution);
        return result;
    }
    let result = out.data(&text(&resolution, out.color_out()));
    // The process ends right after; see `project::resolve`.
    std::mem::forget(resolution);
    result
}

/// The plan as text.
pub(crate) fn text(r: &Resolution, color: bool) -> String {
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
    out
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
            format!("{{{}}}", m.iter().map(|(k, v)| format!("{k}: {}", inline(v))).collect::<Vec<_>>().join(", "))
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
