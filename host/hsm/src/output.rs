//! Everything the CLI writes: data on stdout, diagnostics and status on stderr, with
//! colours when the stream is a terminal (or `--color always`) and `NO_COLOR` is not
//! set. Library crates never print; they return values this module renders.

use std::io::{IsTerminal, Write};

use hsm_model::{Diagnostics, Sources};

use crate::Failure;
use crate::cli::{ColorChoice, GlobalArgs};

/// The CLI's writer.
pub(crate) struct Output {
    color_out: bool,
    color_err: bool,
    quiet: bool,
    verbosity: u8,
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[1;31m";
const BLUE: &str = "\x1b[1;34m";
const CYAN: &str = "\x1b[1;36m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[1;33m";

impl Output {
    pub(crate) fn new(global: &GlobalArgs) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let decide = |is_tty: bool| match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => is_tty && !no_color,
        };
        Self {
            color_out: decide(std::io::stdout().is_terminal()),
            color_err: decide(std::io::stderr().is_terminal()),
            quiet: global.quiet,
            verbosity: global.verbose,
        }
    }

    /// Whether stdout gets colours.
    pub(crate) fn color_out(&self) -> bool {
        self.color_out
    }

    /// Whether stderr gets colours.
    pub(crate) fn color_err(&self) -> bool {
        self.color_err
    }

    /// Whether `--quiet` was given.
    pub(crate) fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// How many `-v` were given.
    pub(crate) fn verbosity(&self) -> u8 {
        self.verbosity
    }

    /// Writes data to stdout. A closed pipe (`hsm plan | head`) is not an error.
    pub(crate) fn data(&self, text: &str) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Failure::Job(format!("cannot write to stdout: {e}"))),
        }
    }

    /// Writes a value to stdout as pretty JSON, streaming rather than building the
    /// whole text first (a large plan is megabytes). A closed pipe is not an error.
    pub(crate) fn json<T: serde::Serialize>(&self, value: &T) -> Result<(), Failure> {
        let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        let written = serde_json::to_writer_pretty(&mut stdout, value)
            .map_err(std::io::Error::from)
            .and_then(|()| stdout.write_all(b"\n"))
            .and_then(|()| stdout.flush());
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(Failure::Job(format!("cannot write to stdout: {e}"))),
        }
    }

    /// A status line on stderr, unless `--quiet`.
    pub(crate) fn status(&self, text: &str) {
        let text = &*lines_printable(text);
        if !self.quiet {
            let line = if self.color_err { format!("{GREEN}{text}{RESET}") } else { text.to_string() };
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }

    /// A line on stderr with `--verbose` only.
    pub(crate) fn verbose(&self, text: &str) {
        let text = &*lines_printable(text);
        if self.verbosity > 0 && !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    /// An error without a location.
    pub(crate) fn error(&self, message: &str) {
        let message = &*lines_printable(message);
        let head = if self.color_err { format!("{RED}error{RESET}{BOLD}:") } else { "error:".to_string() };
        let tail = if self.color_err { RESET } else { "" };
        let _ = writeln!(std::io::stderr().lock(), "{head} {message}{tail}");
    }

    /// A warning on stderr, unless `--quiet`.
    pub(crate) fn warning(&self, message: &str) {
        let message = &*lines_printable(message);
        if !self.quiet {
            let head = if self.color_err { format!("{YELLOW}warning{RESET}") } else { "warning".to_string() };
            let _ = writeln!(std::io::stderr().lock(), "{head}: {message}");
        }
    }

    /// An error with lines to show below it (indented) and a hint.
    pub(crate) fn error_with(&self, message: &str, details: &[String], hint: Option<&str>) {
        self.error_details(message, None, details, hint);
    }

    /// An error, a title for the lines below it, the lines, and a hint.
    pub(crate) fn error_details(&self, message: &str, title: Option<&str>, details: &[String], hint: Option<&str>) {
        self.error(message);
        let mut err = std::io::stderr().lock();
        if let Some(title) = title {
            let _ = writeln!(err, "  {}", lines_printable(title));
        }
        for line in details {
            let _ = writeln!(err, "  | {}", lines_printable(line));
        }
        if let Some(hint) = hint {
            let hint = lines_printable(hint);
            let head = if self.color_err { format!("{CYAN}hint{RESET}:") } else { "hint:".to_string() };
            let _ = writeln!(err, "{head} {hint}");
        }
    }

    /// Warnings about the input, rendered as diagnostics are, unless `--quiet`.
    pub(crate) fn warnings(&self, sources: &Sources, warnings: &[hsm_model::Diagnostic]) {
        if self.quiet {
            return;
        }
        for w in warnings {
            let mut text = w.render(sources);
            if self.color_err {
                text = colorize(&text);
            }
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }

    /// Diagnostics, rendered as rustc does, separated by blank lines.
    pub(crate) fn diagnostics(&self, sources: &Sources, diags: &Diagnostics) {
        let mut text = diags.render(sources);
        if diags.0.len() > 1 {
            text.push_str(&format!("\nerror: {} problems found; nothing was run\n", diags.0.len()));
        }
        if self.color_err {
            text = colorize(&text);
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// `text` with control characters escaped but its own line breaks kept: errors
/// and status lines quote what containers, registries and plugins said, which must
/// not act on the terminal. (Colours are added after this.)
fn lines_printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.split('\n').any(hsm_model::text::needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(text.split('\n').map(hsm_model::text::printable).collect::<Vec<_>>().join("\n"))
}

/// Colours a rendered diagnostic line by line: the `error:` head, the location
/// arrows and gutters, the markers and the hint/note labels.
fn colorize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        let trimmed = body.trim_start();
        let indent = &body[..body.len() - trimmed.len()];
        if let Some(msg) = body.strip_prefix("error: ") {
            out.push_str(&format!("{RED}error{RESET}{BOLD}: {msg}{RESET}"));
        } else if let Some(msg) = body.strip_prefix("warning: ") {
            out.push_str(&format!("{YELLOW}warning{RESET}{BOLD}: {msg}{RESET}"));
        } else if let Some(rest) = trimmed.strip_prefix("--> ").or_else(|| trimmed.strip_prefix("::: ")) {
            let arrow = &trimmed[..3];
            out.push_str(&format!("{indent}{BLUE}{arrow}{RESET} {rest}"));
        } else if let Some(rest) = trimmed.strip_prefix("= hint:") {
            out.push_str(&format!("{indent}{BLUE}={RESET} {CYAN}hint{RESET}:{rest}"));
        } else if let Some(rest) = trimmed.strip_prefix("= note:") {
            out.push_str(&format!("{indent}{BLUE}={RESET} {BOLD}note{RESET}:{rest}"));
        } else if let Some(bar) = body.find(" |") {
            let (gutter, rest) = body.split_at(bar + 2);
            let is_marker = gutter.trim().starts_with('|')
                && rest.trim_start().starts_with(['^', '-'])
                && rest.trim().chars().next().is_some_and(|c| c == '^' || c == '-');
            if is_marker {
                out.push_str(&format!("{BLUE}{gutter}{RESET}{RED}{rest}{RESET}"));
            } else {
                out.push_str(&format!("{BLUE}{gutter}{RESET}{rest}"));
            }
        } else {
            out.push_str(body);
        }
        out.push_str(nl);
    }
    out
}

/// Wraps `text` in a style when colours are on.
pub(crate) fn paint(on: bool, style: Style, text: &str) -> String {
    if !on {
        return text.to_string();
    }
    let code = match style {
        Style::Heading => BOLD,
        Style::Name => GREEN,
        Style::Dim => "\x1b[2m",
    };
    format!("{code}{text}{RESET}")
}

/// Styles for data output.
#[derive(Clone, Copy)]
pub(crate) enum Style {
    /// Section headings.
    Heading,
    /// Names of packages, services and profiles.
    Name,
    /// Locations and other secondary text.
    Dim,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colorize_marks_the_parts_of_a_diagnostic() {
        let text = "error: bad\n --> hsm.yaml:1:1\n  |\n1 | x\n  | ^ here\n  |\n  = hint: fix it\n";
        let c = colorize(text);
        assert!(c.starts_with("\x1b[1;31merror\x1b[0m\x1b[1m: bad"));
        assert!(c.contains("\x1b[1;36mhint\x1b[0m: fix it"));
        assert!(c.contains("\x1b[1;31m ^ here"));
        let plain: String = strip_ansi(&c);
        assert_eq!(plain, text);
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for d in chars.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
