//! `hsm env [PKG]`: the environment a package gets from its services, as dotenv,
//! shell or JSON. Secrets are shown as references (`${CORP_DB_PASSWORD}`) unless
//! `--reveal` asks for the values; host ports are filled in from the last sync.

use std::fmt::Write as _;

use hsm_exec::env::{EnvContext, shown, unsynced_services, values};
use hsm_exec::state::State;
use hsm_model::Diagnostic;
use hsm_plan::Consumer;

use crate::Failure;
use crate::cli::{EnvArgs, EnvFormat, GlobalArgs};
use crate::engine::{self, state_failure};
use crate::output::Output;
use crate::project::{self, Planned};

/// The consumer a package argument names, or an input error with a suggestion.
pub(crate) fn consumer(planned: &Planned, package: Option<&str>) -> Result<Consumer, Failure> {
    let Some(package) = package else { return Ok(Consumer::Project) };
    if planned.resolution.packages.iter().any(|p| p.name == package) {
        return Ok(Consumer::Package(package.to_string()));
    }
    let names: Vec<&str> = planned.resolution.packages.iter().map(|p| p.name.as_str()).collect();
    let mut d = Diagnostic::new(format!("`{package}` is not a package of project `{}`", planned.plan.project));
    d = match hsm_config::did_you_mean(package, names.iter().copied()) {
        Some(best) => d.hint(format!("did you mean `{best}`?")),
        None if names.is_empty() => d.hint("the project has no packages"),
        None => d.hint(format!(
            "its packages are {}",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        )),
    };
    // The message has no location in a file: no source is needed to render it.
    Err(Failure::Input(hsm_model::Sources::new(), d.into()))
}

/// Runs `hsm env`.
pub(crate) fn run(global: &GlobalArgs, args: &EnvArgs, out: &Output) -> Result<(), Failure> {
    let planned = project::plan(global, out)?;
    let consumer = consumer(&planned, args.package.as_deref())?;
    let project = engine::project_id(&planned.resolution);
    let state = State::load(&project).map_err(|e| state_failure(out, &e))?;
    let key = engine::key()?;
    let cx = EnvContext { project: &project, key: &key, secrets: &planned.resolution.secrets, state: &state };
    let unsynced = unsynced_services(&planned.plan, &consumer, &cx);
    let vars: Vec<(String, String)> = if args.reveal {
        if let Some(service) = unsynced.first() {
            out.error_with(
                &format!("service `{service}` has not been synced yet, so its host port is unknown"),
                &[],
                Some("run `hsm sync` first"),
            );
            return Err(Failure::Exit(1));
        }
        values(&planned.plan, &consumer, &cx)
            .map_err(|e| Failure::Job(e.to_string()))?
            .into_iter()
            .map(|(k, v)| (k, v.into_exposed()))
            .collect()
    } else {
        for service in &unsynced {
            out.warning(&format!("service `{service}` has not been synced yet; its host port is shown as a reference"));
        }
        shown(&planned.plan, &consumer, &cx)
    };
    let text = match args.format {
        EnvFormat::Dotenv => dotenv(&vars, args.reveal),
        EnvFormat::Shell => shell(&vars),
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                vars.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            return out.json(&map);
        }
    };
    out.data(&text)
}

/// `KEY=value` lines. References stay as written (`${VAR}` is what dotenv readers
/// expand); values are single-quoted when they need quoting, so nothing in them is
/// expanded.
fn dotenv(vars: &[(String, String)], reveal: bool) -> String {
    let mut out = String::new();
    for (k, v) in vars {
        let plain = v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c));
        if plain || (!reveal && !v.contains(['\'', '\n', ' ', '"', '#'])) {
            let _ = writeln!(out, "{k}={v}");
        } else if !v.contains('\'') {
            let _ = writeln!(out, "{k}='{v}'");
        } else {
            let escaped = v.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('\n', "\\n");
            let _ = writeln!(out, "{k}=\"{escaped}\"");
        }
    }
    out
}

/// `export KEY='value'` lines for `eval`; single quotes keep everything literal.
fn shell(vars: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in vars {
        let _ = writeln!(out, "export {k}='{}'", v.replace('\'', r"'\''"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_quotes_only_what_needs_it() {
        let vars = vec![
            ("A".to_string(), "127.0.0.1".to_string()),
            ("B".to_string(), "${CORP_DB_PASSWORD}".to_string()),
            ("C".to_string(), "a b".to_string()),
            ("D".to_string(), "it's $x".to_string()),
        ];
        assert_eq!(dotenv(&vars, false), "A=127.0.0.1\nB=${CORP_DB_PASSWORD}\nC='a b'\nD=\"it's \\$x\"\n");
        assert_eq!(dotenv(&vars[1..2], true), "B='${CORP_DB_PASSWORD}'\n");
    }

    #[test]
    fn shell_quoting_survives_single_quotes() {
        let vars = vec![("A".to_string(), "it's".to_string())];
        assert_eq!(shell(&vars), "export A='it'\\''s'\n");
    }
}
