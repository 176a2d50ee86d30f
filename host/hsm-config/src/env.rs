//! The variables interpolation reads: the process environment (handed in, never read
//! from `std::env` here, so tests are hermetic) over the `.env` files. `.env` values
//! are templates too; they are resolved when a variable is looked up, against the
//! environment and the keys defined before them.

use std::collections::HashMap;
use std::sync::Arc;

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
}

#[derive(Debug)]
struct DotEntry {
    file: FileId,
    text: Arc<str>,
    entry: dotenv::Entry,
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
            self.entries.push(DotEntry { file, text: text.clone(), entry });
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
        if let Some(v) = self.process.get(name) {
            return Ok(Some(v.clone()));
        }
        let idx = if before == self.entries.len() {
            self.last.get(name).copied()
        } else {
            self.entries[..before].iter().rposition(|e| e.entry.key == name)
        };
        let Some(idx) = idx else { return Ok(None) };
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

    #[test]
    fn bare_keys_are_unset_unless_in_the_environment() {
        let (env, _) = env_with(&[("X", "x")], "X\nY\n");
        assert_eq!(env.lookup("X").unwrap().as_deref(), Some("x"));
        assert_eq!(env.lookup("Y").unwrap(), None);
    }
}
