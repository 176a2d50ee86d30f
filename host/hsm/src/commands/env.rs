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
use crate::engine;
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
    // A package's environment needs only the services it uses planned.
    let scope = args.package.as_deref().map_or(hsm_planner::Scope::All, hsm_planner::Scope::UsedBy);
    let planned = project::plan_scoped(global, out, hsm_planner::Reach::Local, scope)?;
    let consumer = consumer(&planned, args.package.as_deref())?;
    let project = engine::project_id(&planned.resolution);
    let state = State::load(&project).map_err(|e| engine::failure(out, &e))?;
    let key = engine::key(out)?;
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
            .map_err(|e| engine::failure(out, &e))?
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
        EnvFormat::Dotenv => dotenv(&vars, args.reveal).map_err(Failure::Job)?,
        EnvFormat::Shell => shell(&vars).map_err(Failure::Job)?,
        EnvFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> =
                vars.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            return out.json(&map);
        }
    };
    out.data(&text)
}

/// `KEY=value` lines, as Compose and hsm read `.env` files. References stay as
/// written (`${VAR}` is what dotenv readers expand); values that need quoting are
/// single-quoted (nothing in them is expanded), or double-quoted with escapes when
/// they hold a `'` or a line break. Every value reads back exactly, or is refused:
/// a control character other than a line break or a tab has no escape there.
pub(crate) fn dotenv(vars: &[(String, String)], reveal: bool) -> Result<String, String> {
    let mut out = String::new();
    for (k, v) in vars {
        unprintable(k, v, &['\n', '\r', '\t'], "an env file")?;
        let plain = v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,=".contains(c));
        let controls = v.contains(['\n', '\r', '\t']);
        if plain || (!reveal && !controls && !v.contains(['\'', ' ', '"', '#'])) {
            let _ = writeln!(out, "{k}={v}");
        } else if !v.contains(['\'', '\\']) && !controls {
            let _ = writeln!(out, "{k}='{v}'");
        } else {
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('$', "\\$")
                .replace('\n', "\\n")
                .replace('\r', "\\r")
                .replace('\t', "\\t");
            let _ = writeln!(out, "{k}=\"{escaped}\"");
        }
    }
    Ok(out)
}

/// `export KEY='value'` lines for `eval`; single quotes keep everything literal,
/// line breaks included. A value with another control character is refused: it
/// would act on the terminal that shows it.
fn shell(vars: &[(String, String)]) -> Result<String, String> {
    let mut out = String::new();
    for (k, v) in vars {
        unprintable(k, v, &['\n', '\t'], "a shell script")?;
        let _ = writeln!(out, "export {k}='{}'", v.replace('\'', r"'\''"));
    }
    Ok(out)
}

/// Refuses a value holding a control character other than `allowed`.
fn unprintable(name: &str, value: &str, allowed: &[char], format: &str) -> Result<(), String> {
    match value.chars().find(|c| c.is_control() && !allowed.contains(c)) {
        Some(c) => Err(format!(
            "the value of `{name}` holds the control character {c:?}, which {format} can't carry exactly; use `--format json`"
        )),
        None => Ok(()),
    }
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
        assert_eq!(dotenv(&vars, false).unwrap(), "A=127.0.0.1\nB=${CORP_DB_PASSWORD}\nC='a b'\nD=\"it's \\$x\"\n");
        assert_eq!(dotenv(&vars[1..2], true).unwrap(), "B='${CORP_DB_PASSWORD}'\n");
    }

    #[test]
    fn every_format_keeps_a_value_whole_or_refuses_it() {
        // A line break can't start a line of its own: it is escaped, or quoted.
        let smuggle = vec![("A".to_string(), "a\nLD_PRELOAD=/x.so\nPATH=/nonexistent".to_string())];
        let text = dotenv(&smuggle, true).unwrap();
        assert_eq!(text, "A=\"a\\nLD_PRELOAD=/x.so\\nPATH=/nonexistent\"\n");
        assert_eq!(text.lines().count(), 1);
        assert_eq!(dotenv(&smuggle, false).unwrap(), text);
        assert_eq!(shell(&smuggle).unwrap(), "export A='a\nLD_PRELOAD=/x.so\nPATH=/nonexistent'\n");
        let esc = vec![("A".to_string(), "ok\u{1b}[2J".to_string())];
        assert!(dotenv(&esc, true).unwrap_err().contains("`--format json`"));
        assert!(shell(&esc).unwrap_err().contains("`A`"));
        // A backslash before a closing single quote would escape it: double quotes.
        let backslash = vec![("A".to_string(), "a b\\".to_string())];
        assert_eq!(dotenv(&backslash, true).unwrap(), "A=\"a b\\\\\"\n");
    }

    /// What `hsm env` writes, hsm's own `.env` reader reads back as it was.
    #[test]
    fn dotenv_output_reads_back_exactly() {
        let values = [
            "plain",
            "a b",
            "it's",
            "a b\\",
            "back\\slash 'and' quote",
            "line\nbreak",
            "tab\there",
            "dollar $5 and ${X}",
            "# not a comment",
            "quote \" inside",
            "crlf\r\n",
        ];
        for v in values {
            let text = dotenv(&[("K".to_string(), v.to_string())], true).unwrap();
            let entries = hsm_config::dotenv::parse(&text).unwrap_or_else(|e| panic!("{v:?}: {text:?}: {e:?}"));
            assert_eq!(entries.len(), 1, "{text:?}");
            let t = entries[0].value.as_ref().expect("a value");
            let read = t.resolve_string(&std::collections::HashMap::<String, String>::new()).unwrap();
            assert_eq!(read, v, "{text:?}");
        }
    }

    #[test]
    fn shell_quoting_survives_single_quotes() {
        let vars = vec![("A".to_string(), "it's".to_string())];
        assert_eq!(shell(&vars).unwrap(), "export A='it'\\''s'\n");
    }
}
