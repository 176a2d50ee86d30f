//! Diagnostics: every error caused by input names the file, line and column, shows
//! the offending text and, where one helps, a hint. Library crates build
//! [`Diagnostic`]s; only the CLI renders them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// Index of a file in a [`Sources`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// One loaded input file, kept so diagnostics can quote it.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as shown to the user (relative to the project where possible).
    pub display: String,
    /// The path on disk, when the file came from disk.
    pub path: Option<PathBuf>,
    /// The file's text.
    pub text: Arc<str>,
}

/// The table of every input file read during one run.
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file and returns its id.
    pub fn add(&mut self, display: impl Into<String>, path: Option<&Path>, text: impl Into<Arc<str>>) -> FileId {
        let id = FileId(u32::try_from(self.files.len()).expect("fewer than 2^32 files"));
        self.files.push(SourceFile { display: display.into(), path: path.map(Path::to_path_buf), text: text.into() });
        id
    }

    /// The file with this id.
    ///
    /// # Panics
    /// When the id was not returned by this table's [`Sources::add`].
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// Every file, in the order added.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files.iter().enumerate().map(|(i, f)| (FileId(i as u32), f))
    }
}

/// A range of bytes in one source file, with the 1-based line and column of its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Length in bytes (0 for a point).
    pub len: usize,
    /// 1-based line of `start`.
    pub line: u32,
    /// 1-based column (in characters) of `start`.
    pub column: u32,
}

impl Span {
    /// A span computed from a byte range of a file's text.
    pub fn from_range(file: FileId, text: &str, start: usize, len: usize) -> Self {
        let start = start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() as u32 + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() as u32 + 1;
        Self { file, start, len: len.min(text.len() - start), line, column }
    }

    /// A sub-range of this span, `offset` bytes in and `len` long, when the span's text
    /// is known to be the literal source (no escapes between).
    pub fn sub(&self, text: &str, offset: usize, len: usize) -> Self {
        Self::from_range(self.file, text, self.start + offset, len)
    }

    /// Where this span starts, in a form that can be serialized.
    pub fn origin(&self, sources: &Sources) -> Origin {
        Origin { file: sources.get(self.file).display.clone(), line: self.line, column: self.column }
    }
}

/// Where something was written, for people to read and for `--json` consumers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub struct Origin {
    /// The file, as shown to the user.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A label pointing at a span, with a short message.
#[derive(Clone, Debug)]
pub struct Label {
    /// The span.
    pub span: Span,
    /// What the span shows (may be empty).
    pub message: String,
}

/// An error (or warning) about the user's input.
#[derive(Clone, Debug)]
pub struct Diagnostic {
    /// One line saying what is wrong; literals in backticks, no trailing period.
    pub message: String,
    /// The main location, if the problem has one.
    pub primary: Option<Label>,
    /// Other locations that explain the problem (the other side of a conflict, say).
    pub secondary: Vec<Label>,
    /// Suggestions for fixing it.
    pub hints: Vec<String>,
    /// Extra facts that are not suggestions.
    pub notes: Vec<String>,
    /// A warning: worth saying, but nothing stops because of it.
    pub warning: bool,
}

impl Diagnostic {
    /// A diagnostic with a message and nothing else.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            hints: Vec::new(),
            notes: Vec::new(),
            warning: false,
        }
    }

    /// A warning with a message and nothing else.
    pub fn warning(message: impl Into<String>) -> Self {
        Self { warning: true, ..Self::new(message) }
    }

    /// Points the diagnostic at `span`.
    #[must_use]
    pub fn at(mut self, span: Span, label: impl Into<String>) -> Self {
        self.primary = Some(Label { span, message: label.into() });
        self
    }

    /// Points the diagnostic at `span` when there is one.
    #[must_use]
    pub fn at_opt(self, span: Option<Span>, label: impl Into<String>) -> Self {
        match span {
            Some(span) => self.at(span, label),
            None => self,
        }
    }

    /// Adds a secondary location.
    #[must_use]
    pub fn also(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push(Label { span, message: label.into() });
        self
    }

    /// Adds a hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Renders the diagnostic the way rustc and cargo do, without colour.
    ///
    /// ```text
    /// error: unknown package `auth-servce`
    ///   --> hsm.yaml:7:5
    ///    |
    ///  7 |   - auth-servce
    ///    |     ^^^^^^^^^^^ not in any registry
    ///    |
    ///    = hint: did you mean `auth-service`?
    /// ```
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = String::new();
        // Messages may quote what a plugin or a container said (escaped where it
        // was received); escaping again here keeps any that was not from acting on
        // the terminal.
        let head = if self.warning { "warning" } else { "error" };
        let _ = writeln!(out, "{head}: {}", printable(&self.message));
        let labels: Vec<&Label> = self.primary.iter().chain(self.secondary.iter()).collect();
        let gutter = labels.iter().map(|l| digits(l.span.line)).max().unwrap_or(1);
        let pad = " ".repeat(gutter);
        for (i, label) in labels.iter().enumerate() {
            let file = sources.get(label.span.file);
            let arrow = if i == 0 { "-->" } else { ":::" };
            let _ = writeln!(out, "{pad}{arrow} {}:{}:{}", file.display, label.span.line, label.span.column);
            let _ = writeln!(out, "{pad} |");
            let line_text = nth_line(&file.text, label.span.line);
            let _ = writeln!(out, "{:>gutter$} | {}", label.span.line, line_text.trim_end());
            let col = label.span.column.saturating_sub(1) as usize;
            let rest: String = line_text.chars().skip(col).collect();
            let span_text = file.text.get(label.span.start..label.span.start + label.span.len).unwrap_or("");
            let width =
                span_text.lines().next().unwrap_or("").chars().count().min(rest.trim_end().chars().count()).max(1);
            let marker = if i == 0 { "^" } else { "-" };
            let lead: String = line_text.chars().take(col).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
            let _ = writeln!(
                out,
                "{pad} | {lead}{}{}{}",
                marker.repeat(width),
                if label.message.is_empty() { "" } else { " " },
                printable(&label.message)
            );
        }
        if !labels.is_empty() && (!self.hints.is_empty() || !self.notes.is_empty()) {
            let _ = writeln!(out, "{pad} |");
        }
        for note in &self.notes {
            let _ = writeln!(out, "{pad} = note: {}", printable(note));
        }
        for hint in &self.hints {
            let _ = writeln!(out, "{pad} = hint: {}", printable(hint));
        }
        out
    }
}

/// Like [`crate::text::printable`], but a message's own line breaks (hsm writes
/// some, such as a plugin's last output lines) stay line breaks.
fn printable(s: &str) -> String {
    s.split('\n').map(crate::text::printable).collect::<Vec<_>>().join("\n")
}

/// Names in backticks, separated by commas (`` `a`, `b` ``), or `none`: how
/// messages list what a plugin declares or is granted.
pub fn names_or_none<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}

fn digits(n: u32) -> usize {
    n.max(1).ilog10() as usize + 1
}

fn nth_line(text: &str, line: u32) -> &str {
    text.split('\n').nth(line.saturating_sub(1) as usize).unwrap_or("").trim_end_matches('\r')
}

/// Several diagnostics found in one pass: hsm reports every independent problem at
/// once rather than one per run.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when there are none, otherwise the diagnostics.
    pub fn into_result<T>(self, value: T) -> Result<T, Self> {
        if self.0.is_empty() { Ok(value) } else { Err(self) }
    }

    /// Renders every diagnostic, separated by blank lines.
    pub fn render(&self, sources: &Sources) -> String {
        self.0.iter().map(|d| d.render(sources)).collect::<Vec<_>>().join("\n")
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_snippet_and_hint() {
        let mut sources = Sources::new();
        let text = "project: app\npackages:\n  - auth-servce\n";
        let file = sources.add("hsm.yaml", None, text);
        let start = text.find("auth-servce").unwrap();
        let span = Span::from_range(file, text, start, "auth-servce".len());
        assert_eq!((span.line, span.column), (3, 5));
        let d = Diagnostic::new("unknown package `auth-servce`")
            .at(span, "not in any registry")
            .hint("did you mean `auth-service`?");
        assert_eq!(
            d.render(&sources),
            "error: unknown package `auth-servce`\n --> hsm.yaml:3:5\n  |\n3 |   - auth-servce\n  |     ^^^^^^^^^^^ not in any registry\n  |\n  = hint: did you mean `auth-service`?\n"
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "a: \"é\" x\n";
        let span = Span::from_range(FileId(0), text, text.find('x').unwrap(), 1);
        assert_eq!(span.column, 8);
    }
}
