//! `hsm logs`: the logs of a project's containers, from the Docker engine, as
//! lines that know their service, container and time. A snapshot is merged in
//! time order; following streams every container and picks up those created
//! meanwhile (a sync that recreated one), until the caller stops.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bollard::query_parameters::LogsOptionsBuilder;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::docker::Docker;
use crate::error::ExecError;
use crate::names::{LABEL_CONTAINER, LABEL_SERVICE, ProjectId};

/// How often `follow` looks for containers created meanwhile.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// One line a container logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When, as the engine wrote it (RFC 3339, nanoseconds): sorts in time order.
    pub time: String,
    /// The service.
    pub service: String,
    /// The container's short name within the service.
    pub container: String,
    /// The text (unredacted: the caller redacts).
    pub text: String,
}

/// What to read.
#[derive(Clone, Debug, Default)]
pub struct LogsQuery {
    /// Only these services (all when empty).
    pub services: Vec<String>,
    /// Only lines since this Unix time.
    pub since: Option<i64>,
    /// Only each container's last N lines.
    pub tail: Option<u64>,
}

/// A container to read, by id.
#[derive(Clone, Debug)]
struct Source {
    id: String,
    service: String,
    container: String,
}

/// The project's containers the query names. A service the query names that has
/// no container is an error that lists those that have.
async fn sources(
    docker: &Docker,
    project: &ProjectId,
    query: &LogsQuery,
    strict: bool,
) -> Result<Vec<Source>, ExecError> {
    let (mine, _) = docker.project_containers(project).await?;
    let mut all: Vec<Source> = mine
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels?;
            Some(Source {
                id: c.id?,
                service: labels.get(LABEL_SERVICE)?.clone(),
                container: labels.get(LABEL_CONTAINER)?.clone(),
            })
        })
        .collect();
    all.sort_by(|a, b| (&a.service, &a.container).cmp(&(&b.service, &b.container)));
    let known: BTreeSet<&str> = all.iter().map(|s| s.service.as_str()).collect();
    if let Some(missing) = query.services.iter().find(|s| strict && !known.contains(s.as_str())) {
        return Err(ExecError::NoContainer {
            service: missing.clone(),
            known: known.iter().map(|s| s.to_string()).collect(),
        });
    }
    Ok(all.into_iter().filter(|s| query.services.is_empty() || query.services.contains(&s.service)).collect())
}

fn options(query: &LogsQuery, follow: bool) -> bollard::query_parameters::LogsOptions {
    let mut b = LogsOptionsBuilder::default().stdout(true).stderr(true).timestamps(true).follow(follow);
    // Before the epoch (a huge `--since`): everything.
    if let Some(since) = query.since.filter(|s| *s > 0) {
        b = b.since(i32::try_from(since).unwrap_or(i32::MAX));
    }
    b = b.tail(&query.tail.map_or_else(|| "all".to_string(), |n| n.to_string()));
    b.build()
}

/// Splits what the engine sends into lines (a chunk may hold several, or part of
/// one), each with its time.
#[derive(Default)]
struct Lines(Vec<u8>);

impl Lines {
    fn push(&mut self, bytes: &[u8], source: &Source, out: &mut dyn FnMut(LogLine)) {
        self.0.extend_from_slice(bytes);
        while let Some(end) = self.0.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.0.drain(..=end).collect();
            out(parse(&line[..line.len() - 1], source));
        }
    }

    fn finish(&mut self, source: &Source, out: &mut dyn FnMut(LogLine)) {
        if !self.0.is_empty() {
            let line = std::mem::take(&mut self.0);
            out(parse(&line, source));
        }
    }
}

fn parse(line: &[u8], source: &Source) -> LogLine {
    let text = String::from_utf8_lossy(line);
    let text = text.strip_suffix('\r').unwrap_or(&text);
    let (time, text) = text.split_once(' ').unwrap_or(("", text));
    LogLine {
        time: sortable(time),
        service: source.service.clone(),
        container: source.container.clone(),
        text: text.to_string(),
    }
}

/// A time as the engine writes it (RFC 3339, its fraction's trailing zeros
/// dropped) with the fraction padded to nanoseconds, so that times compare as
/// strings: `…:07.1Z` and `…:07.12Z` become `…:07.100000000Z` and `…:07.120000000Z`.
fn sortable(time: &str) -> String {
    let Some(body) = time.strip_suffix('Z') else { return time.to_string() };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    format!("{whole}.{fraction:0<9}Z")
}

/// The lines the query names, every container's, merged in time order.
pub async fn snapshot(docker: &Docker, project: &ProjectId, query: &LogsQuery) -> Result<Vec<LogLine>, ExecError> {
    let mut lines = Vec::new();
    for source in sources(docker, project, query, true).await? {
        let mut stream = docker.api().logs(&source.id, Some(options(query, false)));
        let mut buf = Lines::default();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| docker.error(format!("read the logs of `{}`", source.id), e))?;
            buf.push(chunk.as_ref(), &source, &mut |l| lines.push(l));
        }
        buf.finish(&source, &mut |l| lines.push(l));
    }
    // Stable: lines of one container with the same time keep their order.
    lines.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(lines)
}

/// Follows the logs the query names from Unix time `from` on (the caller shows
/// what came before, merged, and skips what it showed already: the engine's
/// `since` is in whole seconds), giving each line to `out` as it comes, until the
/// future is dropped or `out` says stop. A container that appears meanwhile (a
/// sync recreated it) is followed from its first line; one that stopped and
/// started again (same id) from where its stream ended; a named service briefly
/// without a container (being recreated) is waited for.
pub async fn follow(
    docker: &Docker,
    project: &ProjectId,
    query: &LogsQuery,
    from: i64,
    out: &mut dyn FnMut(LogLine) -> bool,
) -> Result<(), ExecError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<LogLine>();
    let mut followed = Followed::default();
    let mut known_at_start: Option<BTreeSet<String>> = None;
    loop {
        let current = sources(docker, project, query, known_at_start.is_none()).await?;
        let start = known_at_start.get_or_insert_with(|| current.iter().map(|s| s.id.clone()).collect());
        // A stream that ended (its container stopped) is followed again if the
        // container is still there.
        followed.0.retain(|_, reader| !reader.is_finished());
        // Those still open were open a moment ago: a stream that ends before the
        // next look is followed again from here (lines seen twice are the
        // caller's to skip; lines missed would be lost).
        let checkpoint = unix_now() - 1;
        for id in followed.0.keys() {
            followed.1.insert(id.clone(), checkpoint);
        }
        for source in current {
            if followed.0.contains_key(&source.id) {
                continue;
            }
            let since = match followed.1.get(&source.id) {
                Some(ended) => *ended,
                None if start.contains(&source.id) => from,
                None => 0,
            };
            let options = options(&LogsQuery { since: Some(since), tail: None, ..LogsQuery::default() }, true);
            let api = docker.api().clone();
            let tx = tx.clone();
            let key = source.id.clone();
            let id = source.id.clone();
            let reader = tokio::spawn(async move {
                let mut stream = api.logs(&id, Some(options));
                let mut buf = Lines::default();
                while let Some(Ok(chunk)) = stream.next().await {
                    buf.push(chunk.as_ref(), &source, &mut |l| {
                        let _ = tx.send(l);
                    });
                }
                buf.finish(&source, &mut |l| {
                    let _ = tx.send(l);
                });
            });
            followed.1.insert(key.clone(), since.max(1));
            followed.0.insert(key, reader);
        }
        let tick = tokio::time::sleep(FOLLOW_POLL);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                Some(line) = rx.recv() => if !out(line) { return Ok(()) },
                () = &mut tick => break,
            }
        }
    }
}

/// Now, as Unix time.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The readers of the containers followed (stopped when following stops), and
/// when each container's stream was last known to be open.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_compare_as_strings_once_padded() {
        assert_eq!(sortable("2026-12-07T08:00:07.1Z"), "2026-12-07T08:00:07.100000000Z");
        assert!(sortable("2026-12-07T08:00:07.1Z") < sortable("2026-12-07T08:00:07.12Z"));
        assert!(sortable("2026-12-07T08:00:07Z") < sortable("2026-12-07T08:00:07.000000001Z"));
    }
}

#[derive(Default)]
struct Followed(HashMap<String, tokio::task::JoinHandle<()>>, HashMap<String, i64>);

impl Drop for Followed {
    fn drop(&mut self) {
        for reader in self.0.values() {
            reader.abort();
        }
    }
}
