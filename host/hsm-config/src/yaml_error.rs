//! Turns serde-saphyr's errors into diagnostics: the message in hsm's style (literals
//! in backticks, no location in the text), the location as a span, and a hint where
//! one helps, such as the fields a map accepts and the one that was probably meant.

use hsm_model::{Diagnostic, FileId, Span};
use serde_saphyr::Error;

use crate::names::HINT_MARKER;

/// What kind of file failed, for hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Project,
    Registry,
}

/// The diagnostic for a YAML or shape error in `text` (the file `file`).
pub(crate) fn diagnostic(err: &Error, file: FileId, text: &str, kind: FileKind) -> Diagnostic {
    let err = err.without_snippet();
    let err = match err {
        Error::AliasError { error, .. } => error.as_ref(),
        other => other,
    };
    let span = err.location().map(|loc| span_at(file, text, &loc));
    let located = |d: Diagnostic, label: &str| match span {
        Some(s) => d.at(s, label),
        None => d,
    };
    match err {
        Error::SerdeUnknownField { field, expected, .. } => {
            let mut d = located(Diagnostic::new(format!("unknown field `{field}`")), "not expected here");
            if let Some(best) = did_you_mean(field, expected.iter().copied()) {
                d = d.hint(format!("did you mean `{best}`?"));
            }
            // A registry package takes its name from its key, so `name` is not offered.
            let offered = expected.iter().copied().filter(|f| !(kind == FileKind::Registry && *f == "name"));
            d.hint(format!("expected one of {}", list(offered)))
        }
        Error::SerdeMissingField { field, .. } => {
            let d = located(Diagnostic::new(format!("missing field `{field}`")), "in this map");
            match (*field, kind) {
                ("version", FileKind::Project) => d.hint("add `version: 1` at the top of the file"),
                ("project", FileKind::Project) => {
                    d.hint("add `project: NAME`; the name is used for the project's containers, networks and volumes")
                }
                ("name", _) => {
                    d.hint("a package given as a map needs `name`, such as `{ name: core, editable: ../core }`")
                }
                ("kind", _) => d.hint("`kind` names the plugin that handles the service, such as `kind: postgres`"),
                ("mode", _) => d.hint("write `mode: managed` or `mode: external`"),
                _ => d,
            }
        }
        Error::SerdeUnknownVariant { variant, expected, .. } => {
            let mut d = located(Diagnostic::new(format!("unknown value `{variant}`")), "not allowed here");
            if let Some(best) = did_you_mean(variant, expected.iter().copied()) {
                d = d.hint(format!("did you mean `{best}`?"));
            }
            d.hint(format!("expected one of {}", list(expected.iter().copied())))
        }
        Error::SerdeInvalidType { unexpected, expected, .. }
        | Error::SerdeInvalidValue { unexpected, expected, .. } => {
            located(Diagnostic::new(format!("expected {expected}, found {unexpected}")), "wrong type")
        }
        Error::DuplicateMappingKey { key, .. } => {
            let msg = match key {
                Some(k) => format!("duplicate key `{k}`"),
                None => "duplicate key".to_string(),
            };
            located(Diagnostic::new(msg), "already defined above in this map").hint("remove or rename one of them")
        }
        Error::NullIntoString { .. } => located(Diagnostic::new("expected a string, found nothing"), "empty value")
            .hint("write a value after the `:`, or quote an empty string: `\"\"`"),
        Error::Message { msg, .. } => {
            let (msg, hint) = match msg.split_once(HINT_MARKER) {
                Some((m, h)) => (m, Some(h)),
                None => (msg.as_str(), None),
            };
            let d = located(Diagnostic::new(msg), "");
            match hint {
                Some(h) => d.hint(h),
                None => d,
            }
        }
        Error::Unexpected { expected, .. } => {
            let expected = match *expected {
                "sequence start" => "a list",
                "mapping start" => "a map",
                other => other,
            };
            let found = span.map(|s| found_text(text, s)).unwrap_or_default();
            located(Diagnostic::new(format!("expected {expected}{found}")), "wrong type")
        }
        Error::Eof { .. } => Diagnostic::new("unexpected end of file").at_opt(span, ""),
        Error::InvalidUtf8Input => Diagnostic::new("the file is not valid UTF-8"),
        Error::UnknownAnchor { .. } => {
            located(Diagnostic::new("unknown YAML anchor"), "no `&anchor` of this name above")
        }
        Error::MultipleDocuments { .. } => {
            located(Diagnostic::new("more than one YAML document"), "a second document starts here")
                .hint("an hsm file holds one document: remove the `---` line or split the file")
        }
        other => syntax(other, file, text, span),
    }
}

/// Syntax errors and everything else: the parser's own words, minus the location, and
/// a note about tabs when a tab is the likely cause.
fn syntax(err: &Error, file: FileId, text: &str, span: Option<Span>) -> Diagnostic {
    let rendered = err.render();
    let msg = strip_location(&rendered);
    if let Some(tab) = tab_in_indentation(text, span) {
        return Diagnostic::new("tab character in indentation")
            .at(Span::from_range(file, text, tab, 1), "tab")
            .hint("YAML indentation must use spaces; replace the tab with spaces")
            .note(format!("the YAML parser said: {msg}"));
    }
    let mut d = Diagnostic::new(format!("invalid YAML: {msg}")).at_opt(span, "");
    if let Some(open) = unclosed_bracket(text, span.map_or(text.len(), |s| s.start)) {
        let b = &text[open..=open];
        d = d
            .also(Span::from_range(file, text, open, 1), format!("this `{b}` is never closed"))
            .hint(format!("close the list or map with `{}`", if b == "[" { "]" } else { "}" }));
    }
    d
}

/// The offset of a `[` or `{` before `until` that is still open there, outside quotes
/// and comments.
fn unclosed_bracket(text: &str, until: usize) -> Option<usize> {
    let mut stack = Vec::new();
    let mut quote: Option<u8> = None;
    let b = text.as_bytes();
    let mut i = 0;
    while i < until.min(b.len()) {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(b'"') if c == b'\\' => i += 1,
            Some(_) => {}
            None => match c {
                b'"' | b'\'' if i == 0 || matches!(b[i - 1], b' ' | b'[' | b'{' | b',' | b':') => quote = Some(c),
                b'#' if i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\n' => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'[' | b'{' => stack.push(i),
                b']' | b'}' => {
                    stack.pop();
                }
                _ => {}
            },
        }
        i += 1;
    }
    stack.first().copied()
}

/// The first tab used for indentation, on the error's line or before it.
fn tab_in_indentation(text: &str, span: Option<Span>) -> Option<usize> {
    let limit_line = span.map_or(u32::MAX, |s| s.line + 1);
    let mut offset = 0;
    for (i, line) in text.split('\n').enumerate() {
        if i as u32 + 1 > limit_line {
            break;
        }
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if let Some(t) = line[..indent].find('\t') {
            return Some(offset + t);
        }
        offset += line.len() + 1;
    }
    None
}

fn strip_location(s: &str) -> &str {
    match s.rfind(" at line ") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// What the text at `span` is, for "expected …, found …".
fn found_text(text: &str, span: Span) -> String {
    let rest = text.get(span.start..).unwrap_or("");
    let line = rest.split('\n').next().unwrap_or("");
    if line.starts_with('[') || line.starts_with("- ") || line == "-" {
        return ", found a list".into();
    }
    if line.starts_with('{') {
        return ", found a map".into();
    }
    let token: String =
        line.chars().take_while(|c| !c.is_whitespace() && *c != ',' && *c != '}' && *c != ']').collect();
    if token.ends_with(':') || line.contains(": ") {
        return ", found a map".into();
    }
    if token.is_empty() { String::new() } else { format!(", found `{token}`") }
}

/// A span for a serde-saphyr location: exact bytes when the parser knows them,
/// otherwise computed from the line and column.
pub(crate) fn span_at(file: FileId, text: &str, loc: &serde_saphyr::Location) -> Span {
    let s = loc.span();
    if let (Some(start), Some(len)) = (s.byte_offset(), s.byte_len()) {
        let (start, len) = (start as usize, len as usize);
        if start <= text.len() {
            return Span::from_range(file, text, start, len);
        }
    }
    let line = loc.line().max(1) as usize;
    let column = loc.column().max(1) as usize;
    let line_start: usize = text.split('\n').take(line - 1).map(|l| l.len() + 1).sum();
    let line_start = line_start.min(text.len());
    let line_text = text[line_start..].split('\n').next().unwrap_or("");
    let col_byte = line_text.char_indices().nth(column - 1).map_or(line_text.len(), |(i, _)| i);
    let start = line_start + col_byte;
    let len = text[start..].chars().take_while(|c| !c.is_whitespace()).map(char::len_utf8).sum::<usize>();
    Span::from_range(file, text, start, len)
}

/// The candidate closest to `word`, when it is close enough (a few edits, counting a
/// swap of two neighbours as one) to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = word.chars().count();
    let limit = match len {
        0..=3 => 1,
        4..=8 => 2,
        _ => len / 3,
    };
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), -strsim::jaro_winkler(word, c), c))
        .filter(|(d, _, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(b.2)))
        .map(|(_, _, c)| c)
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(did_you_mean("pipy", ["pypi", "path", "editable"]), Some("pypi"));
        assert_eq!(did_you_mean("auth-servce", ["auth-service", "billing-service"]), Some("auth-service"));
        assert_eq!(did_you_mean("zzz", ["pypi", "path"]), None);
    }

    #[test]
    fn unclosed_brackets_are_found() {
        let text = "a: [x, y\nb: {c: 1}\n";
        assert_eq!(unclosed_bracket(text, text.len()), Some(3));
        assert_eq!(unclosed_bracket("a: [x] # [\nb: \"[\"\n", 20), None);
    }

    #[test]
    fn tabs_in_indentation_are_found() {
        let text = "version: 1\n\tproject: x\n";
        assert_eq!(tab_in_indentation(text, None), Some(11));
        assert_eq!(tab_in_indentation("a: \"\tb\"\n", None), None);
    }
}
