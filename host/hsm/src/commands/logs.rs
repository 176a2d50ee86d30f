//! `hsm logs [SERVICE…] [-f] [--since DURATION] [-n N]`: the logs of the project's
//! containers, each line prefixed with its service and container (a colour per
//! service on a terminal), merged in time order; `-f` follows until Ctrl-C. Every
//! line is redacted like everything else hsm prints.

use hsm_exec::docker::Docker;
use hsm_exec::logs::{self, LogLine, LogsQuery};
use hsm_exec::sync::Redactor;
use hsm_model::{Diagnostic, Sources};

use crate::Failure;
use crate::cli::{GlobalArgs, LogsArgs};
use crate::engine;
use crate::output::Output;
use crate::project;

/// Colours for services' prefixes (cyan, yellow, magenta, blue, green, red).
const COLOURS: [&str; 6] = ["36", "33", "35", "34", "32", "31"];

/// Runs `hsm logs`.
pub(crate) fn run(global: &GlobalArgs, args: &LogsArgs, out: &Output) -> Result<(), Failure> {
    let since = match &args.since {
        Some(s) => Some(since(s)?),
        None => None,
    };
    let planned = project::plan(global, out)?;
    let project = engine::project_id(&planned.resolution);
    let key = engine::key(out)?;
    let redactor = Redactor::new(&planned.plan, &project, &key, &planned.resolution.secrets);
    let query = LogsQuery { services: args.services.clone(), since, tail: args.tail };
    // Prefixes line up on the widest, and each service keeps its colour.
    let mut names: Vec<String> = planned
        .plan
        .services
        .iter()
        .flat_map(|s| hsm_exec::sync::containers_of(s).map(move |c| format!("{}/{}", s.name, c.name)))
        .collect();
    names.sort();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let services: Vec<&str> = planned.plan.services.iter().map(|s| s.name.as_str()).collect();
    let color = out.color_out();
    // Written straight to stdout: a reader that went away (`| head`) ends it.
    let mut stdout = std::io::stdout().lock();
    // The last time shown per container: following starts at a whole second, so
    // what the snapshot showed of that second comes again and is skipped.
    let mut shown: std::collections::HashMap<(String, String), String> = std::collections::HashMap::new();
    let mut print = |line: LogLine| {
        use std::io::Write as _;
        let last = shown.entry((line.service.clone(), line.container.clone())).or_default();
        if !line.time.is_empty() && line.time <= *last {
            return true;
        }
        last.clone_from(&line.time);
        let who = format!("{}/{}", line.service, line.container);
        let prefix = format!("{who:<width$} |");
        let prefix = match services.iter().position(|s| *s == line.service) {
            Some(i) if color => format!("\x1b[{}m{prefix}\x1b[0m", COLOURS[i % COLOURS.len()]),
            _ => hsm_model::text::printable(&prefix).into_owned(),
        };
        let text = hsm_model::text::printable(&redactor.apply(&line.text)).into_owned();
        writeln!(stdout, "{prefix} {text}").and_then(|()| stdout.flush()).is_ok()
    };
    let runtime = engine::runtime()?;
    let result = runtime.block_on(async {
        let docker = Docker::connect().await?;
        // What is there now, merged in time order; then, with -f, what comes.
        let from = logs::unix_now();
        for line in logs::snapshot(&docker, &project, &query).await? {
            if !print(line) {
                return Ok(());
            }
        }
        if args.follow {
            tokio::select! {
                r = logs::follow(&docker, &project, &query, from, &mut print) => r,
                () = crate::commands::sync::interrupted() => Ok(()),
            }
        } else {
            Ok(())
        }
    });
    result.map_err(|e| engine::failure(out, &e))
}

/// A duration as `--since` takes it (`90s`, `15m`, `2h`, `1d`, or seconds), as
/// the Unix time that long ago.
fn since(text: &str) -> Result<i64, Failure> {
    let (number, unit) = text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |i| text.split_at(i));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let n: i64 = number.parse().unwrap_or(-1);
    if seconds == 0 || n < 0 {
        let d = Diagnostic::new(format!("`--since {text}` is not a duration"))
            .hint("write a number and a unit: `90s`, `15m`, `2h`, `1d`");
        return Err(Failure::Input(Sources::new(), d.into()));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Ok(i64::try_from(now).unwrap_or(i64::MAX) - n.saturating_mul(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_unit() {
        let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
            .unwrap();
        let near = |t: i64, ago: i64| (now - ago - t).abs() <= 2;
        assert!(near(since("90s").ok().unwrap(), 90));
        assert!(near(since("15m").ok().unwrap(), 900));
        assert!(near(since("2h").ok().unwrap(), 7200));
        assert!(near(since("1d").ok().unwrap(), 86_400));
        assert!(near(since("30").ok().unwrap(), 30));
        assert!(since("2 weeks").is_err());
        assert!(since("h").is_err());
        assert!(since("-5m").is_err());
    }
}
