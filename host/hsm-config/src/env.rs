//! The variables interpolation reads: the process environment (handed in, never read
//! from `std::env` here, so tests are hermetic) over the `.env` files. `.env` values
//! are templates too; they are resolved when a variable is looked up, against the
//! environment and the keys defined before them.
//!
//! Each `.env` value is resolved once and remembered, and what lookups hand out is
//! counted against [`MAX_HANDED_OUT`]: a value may use earlier ones several times
//! (`B=${A}${A}`, `C=${B}${B}`, …), which would otherwise take time and memory
//! exponential in the number of lines.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use hsm_model::{Diagnostic, FileId, Span};

use crate::dotenv;
use crate::interp::{Lookup, ResolveError};

/// Where variables come from during one run.
#[derive(Debug, Default)]
pub struct Environment {
    process: HashMap<String, String>,
    files: Vec<String>,
    entries: Vec<DotEntry>,
    last: HashMap<String, usize>,
    /// The bytes of the values lookups have returned so far.
    handed_out: AtomicUsize,
}

/// The most bytes of values the lookups of one run may return, all together: far
/// beyond what a project's variables hold, and a bound on what interpolation
/// builds from them.
pub const MAX_HANDED_OUT: usize = 64 << 20;

#[derive(Debug)]
struct DotEntry {
    file: FileId,
    text: Arc<str>,
    entry: dotenv::Entry,
    /// Its value, once resolved (it depends only on the entries before it).
    resolved: OnceLock<Result<Option<String>, Box<Diagnostic>>>,
}

impl Environment {
    /// An environment with these process variables and no `.env` file.
    pub fn new(process: HashMap<String, String>) -> Self {
        Self { process, ..Self::default() }
    }

    /// Adds the entries of a `.env` file read from `file` (whose text is `text`).
    pub fn add_dotenv(&mut self, file: FileId, display: &str, text: Arc<str>, entries: Vec<dotenv::Entry>) {
        self.files.push(display.to_string());
        for entry in entries {
            self.last.insert(entry.key.clone(), self.entries.len());
            self.entries.push(DotEntry { file, text: text.clone(), entry, resolved: OnceLock::new() });
        }
    }

    /// The `.env` files read, as shown to the user.
    pub fn dotenv_files(&self) -> &[String] {
        &self.files
    }

    /// Where a variable is defined in a `.env` file, if it is.
    pub fn dotenv_definition(&self, name: &str) -> Option<Span> {
        let e = &self.entries[*self.last.get(name)?];
        Some(Span::from_range(e.file, &e.text, e.entry.key_start, e.entry.key.len()))
    }

    /// Says where a variable was looked for, for "not set" messages.
    pub fn searched(&self) -> String {
        match self.files.as_slice() {
            [] => "not set in the environment (no `.env` file was read)".to_string(),
            [one] => format!("not set in the environment or in `{one}`"),
            many => format!(
                "not set in the environment or in {}",
                many.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn lookup_before(&self, name: &str, before: usize) -> Result<Option<String>, Box<Diagnostic>> {
        let (value, entry) = match self.process.get(name) {
            Some(v) => (Some(v.clone()), None),
            None => {
                let idx = if before == self.entries.len() {
                    self.last.get(name).copied()
                } else {
                    self.entries[..before].iter().rposition(|e| e.entry.key == name)
                };
                let Some(idx) = idx else { return Ok(None) };
                let e = &self.entries[idx];
                (e.resolved.get_or_init(|| self.resolve_entry(idx)).clone()?, Some(e))
            }
        };
        let len = value.as_ref().map_or(0, String::len);
        if self.handed_out.fetch_add(len, Ordering::Relaxed).saturating_add(len) > MAX_HANDED_OUT {
            let mut d = Diagnostic::new(format!(
                "the values of the variables used add up to more than {} MiB",
                MAX_HANDED_OUT >> 20
            ))
            .hint("a `.env` value that uses another twice is twice as long: `B=${A}${A}` doubles `A`");
            if let Some(e) = entry {
                d = d.at(Span::from_range(e.file, &e.text, e.entry.key_start, e.entry.key.len()), "one of them");
            }
            return Err(Box::new(d));
        }
        Ok(value)
    }

    /// Resolves the `.env` entry `idx` against the environment and the entries
    /// before it.
    fn resolve_entry(&self, idx: usize) -> Result<Option<String>, Box<Diagnostic>> {
        let e = &self.entries[idx];
        let Some(template) = &e.entry.value else { return Ok(None) };
        let scoped = Scoped { env: self, before: idx };
        template.resolve_string(&scoped).map(Some).map_err(|err| match err {
            ResolveError::Lookup(d) => d,
            ResolveError::Unset { name: var, start, len } => Box::new(
                Diagnostic::new(format!("variable `{var}` is not set"))
                    .at(self.value_span(e, start, len), format!("needed by `{}` in this file", e.entry.key))
                    .hint(format!(
                        "set `{var}` in the environment or earlier in this file, or give a default: `${{{var}:-value}}`"
                    )),
            ),
            ResolveError::Required { name: var, message, empty, start, len } => Box::new(
                Diagnostic::new(required_message(&var, &message, empty))
                    .at(self.value_span(e, start, len), format!("needed by `{}` in this file", e.entry.key)),
            ),
        })
    }

    fn value_span(&self, e: &DotEntry, start: usize, len: usize) -> Span {
        if e.entry.exact {
            Span::from_range(e.file, &e.text, e.entry.value_start + start, len)
        } else {
            Span::from_range(e.file, &e.text, e.entry.value_start, 0)
        }
    }
}

/// The message for a `${VAR:?message}` whose variable is missing.
pub(crate) fn required_message(var: &str, message: &str, empty: bool) -> String {
    let state = if empty { "is empty" } else { "is not set" };
    if message.is_empty() {
        format!("variable `{var}` {state}")
    } else {
        format!("variable `{var}` {state}: {message}")
    }
}

struct Scoped<'a> {
    env: &'a Environment,
    before: usize,
}

impl Lookup for Scoped<'_> {
    type Error = Box<Diagnostic>;
    fn lookup(&self, name: &str) -> Result<Option<String>, Self::Error> {
        self.env.lookup_before(name, self.before)
    }
}

impl Lookup for Environment {
    type Error = Box<Diagnostic>;
    fn lookup(&self, name: &str) -> Result<Option<String>, Self::Error> {
        self.lookup_before(name, self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::Sources;

    use super::*;

    fn env_with(process: &[(&str, &str)], dotenv_text: &str) -> (Environment, Sources) {
        let mut sources = Sources::new();
        let file = sources.add(".env", None, dotenv_text);
        let mut env = Environment::new(process.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect());
        env.add_dotenv(file, ".env", dotenv_text.into(), dotenv::parse(dotenv_text).unwrap());
        (env, sources)
    }

    #[test]
    fn process_environment_wins_over_dotenv() {
        let (env, _) = env_with(&[("A", "process")], "A=file\nB=file\n");
        assert_eq!(env.lookup("A").unwrap().as_deref(), Some("process"));
        assert_eq!(env.lookup("B").unwrap().as_deref(), Some("file"));
        assert_eq!(env.lookup("C").unwrap(), None);
    }

    #[test]
    fn later_keys_override_earlier_ones_and_refer_back() {
        let (env, _) = env_with(&[], "A=1\nB=${A}2\nA=3\nC=${A}\n");
        assert_eq!(env.lookup("A").unwrap().as_deref(), Some("3"));
        assert_eq!(env.lookup("B").unwrap().as_deref(), Some("12"));
        assert_eq!(env.lookup("C").unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn a_key_cannot_see_later_keys() {
        let (env, sources) = env_with(&[], "B=${A}\nA=1\n");
        let d = env.lookup("B").unwrap_err();
        assert_eq!(d.message, "variable `A` is not set");
        let rendered = d.render(&sources);
        assert!(rendered.contains(".env:1:3"), "{rendered}");
    }

    #[test]
    fn unused_broken_values_do_not_matter() {
        let (env, _) = env_with(&[], "BROKEN=${NOPE}\nOK=1\n");
        assert_eq!(env.lookup("OK").unwrap().as_deref(), Some("1"));
    }

    /// Found writing the fuzz targets: each line using the one before twice made a lookup take
    /// time (and its value memory) exponential in the number of lines.
    #[test]
    fn values_that_use_earlier_ones_twice_stay_bounded() {
        // Fifty lines, each looking the one before up twice: 2^50 lookups unless
        // each value is resolved once.
        let mut text = String::from("A=x\n");
        text.push_str(&"A=${A:+${A}}${A:+}\n".repeat(50));
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (env, _) = env_with(&[], &text);
            let _ = done.send(env.lookup("A").unwrap());
        });
        let value = wait.recv_timeout(std::time::Duration::from_secs(30)).expect("the lookup ends");
        assert_eq!(value.as_deref(), Some("x"));
        // Fifty lines, each doubling the one before: 2^50 bytes unless bounded.
        let mut text = String::from("A=xxxxxxxx\n");
        text.push_str(&"A=${A}${A}\n".repeat(50));
        let (env, sources) = env_with(&[], &text);
        let d = env.lookup("A").unwrap_err();
        assert_eq!(d.message, "the values of the variables used add up to more than 64 MiB");
        assert!(d.render(&sources).contains(".env:"), "{}", d.render(&sources));
    }

    #[test]
    fn bare_keys_are_unset_unless_in_the_environment() {
        let (env, _) = env_with(&[("X", "x")], "X\nY\n");
        assert_eq!(env.lookup("X").unwrap().as_deref(), Some("x"));
        assert_eq!(env.lookup("Y").unwrap(), None);
    }
}
