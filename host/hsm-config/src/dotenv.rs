//! `.env` files, read with the rules Docker Compose documents: `KEY=value` lines,
//! `#` comment lines, an optional `export ` prefix, single-quoted values taken
//! literally, double-quoted values with escapes and line breaks, ` #` comments after
//! unquoted values, and interpolation in unquoted and double-quoted values (which may
//! refer to keys defined earlier in the files or to the environment).
//!
//! Values are parsed here but resolved only when a variable is used, like every
//! other template.

use crate::interp::{Template, TemplateError};

/// One `KEY=value` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Byte offset of the key in the file.
    pub key_start: usize,
    /// The value; `None` for a bare `KEY` line, which takes the value from the
    /// environment (and so adds nothing, since the environment wins anyway).
    pub value: Option<Template>,
    /// Byte offset of the value's first character (after the opening quote, if any).
    pub value_start: usize,
    /// Whether byte offsets inside the value map one to one onto the file (true for
    /// unquoted values and for quoted values without escapes).
    pub exact: bool,
}

/// A syntax error in a `.env` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Byte offset of the offending text.
    pub start: usize,
    /// Its length in bytes.
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Error {
    fn new(start: usize, len: usize, message: impl Into<String>) -> Self {
        Self { start, len, message: message.into(), hint: None }
    }

    fn from_template(e: TemplateError, value_start: usize, exact: bool, value_len: usize) -> Self {
        let (start, len) = if exact { (value_start + e.start, e.len) } else { (value_start, value_len) };
        Self { start, len, message: e.message, hint: Some(e.hint) }
    }
}

/// Parses a whole `.env` file.
pub fn parse(text: &str) -> Result<Vec<Entry>, Error> {
    let b = text.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    let is_blank = |c: u8| c == b' ' || c == b'\t' || c == b'\r';
    loop {
        while pos < b.len() && (is_blank(b[pos]) || b[pos] == b'\n') {
            pos += 1;
        }
        if pos >= b.len() {
            break;
        }
        if b[pos] == b'#' {
            pos = line_end(b, pos);
            continue;
        }
        if text[pos..].starts_with("export") && b.get(pos + 6).is_some_and(|&c| c == b' ' || c == b'\t') {
            pos += 6;
            while pos < b.len() && is_blank(b[pos]) {
                pos += 1;
            }
        }
        let key_start = pos;
        while pos < b.len() && !matches!(b[pos], b'=' | b':' | b'\n' | b' ' | b'\t' | b'\r' | b'#') {
            pos += 1;
        }
        let key = &text[key_start..pos];
        if !valid_key(key) {
            let len = if key.is_empty() { text[pos..].chars().next().map_or(1, char::len_utf8) } else { key.len() };
            return Err(Error {
                start: key_start,
                len,
                message: if key.is_empty() {
                    "expected a variable name".into()
                } else {
                    format!("invalid variable name `{key}`")
                },
                hint: Some("names use letters, digits, `_`, `.` and `-`, and do not start with a digit".into()),
            });
        }
        while pos < b.len() && is_blank(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() || b[pos] == b'\n' || b[pos] == b'#' {
            // `KEY` alone: inherited from the environment.
            out.push(Entry { key: key.to_string(), key_start, value: None, value_start: pos, exact: true });
            pos = line_end(b, pos);
            continue;
        }
        if b[pos] != b'=' && b[pos] != b':' {
            return Err(Error {
                start: pos,
                len: 1,
                message: format!("expected `=` after `{key}`"),
                hint: Some("write `KEY=value`; quote values that contain spaces".into()),
            });
        }
        pos += 1;
        while pos < b.len() && (b[pos] == b' ' || b[pos] == b'\t') {
            pos += 1;
        }
        let (value, value_start, exact, next) = match b.get(pos) {
            Some(&q @ (b'\'' | b'"')) => {
                let open = pos;
                let (raw, close) = quoted(text, pos + 1, q).ok_or_else(|| Error {
                    start: open,
                    len: line_end(b, open) - open,
                    message: format!(
                        "unterminated {} value",
                        if q == b'"' { "double-quoted" } else { "single-quoted" }
                    ),
                    hint: Some(format!("close the value with `{}`", q as char)),
                })?;
                let after = close + 1;
                let value_start = open + 1;
                let (value, exact) = if q == b'\'' {
                    let unescaped = raw.replace("\\'", "'");
                    let exact = unescaped.len() == raw.len();
                    (Template::literal(unescaped), exact)
                } else {
                    let unescaped = unescape_double(raw);
                    let exact = unescaped == raw;
                    let t = Template::parse(&unescaped)
                        .map_err(|e| Error::from_template(e, value_start, exact, raw.len()))?;
                    (t, exact)
                };
                // After the closing quote: blanks and an optional comment only.
                let mut p = after;
                while p < b.len() && is_blank(b[p]) {
                    p += 1;
                }
                if p < b.len() && b[p] != b'\n' && b[p] != b'#' {
                    return Err(Error::new(p, line_end(b, p) - p, "unexpected text after the closing quote")
                        .with_hint("put comments after a space and `#`, or quote the whole value"));
                }
                (value, value_start, exact, line_end(b, p))
            }
            _ => {
                let end = line_end(b, pos);
                let mut raw = &text[pos..end];
                // An inline comment starts at a `#` preceded by a blank.
                if let Some(i) = raw.as_bytes().windows(2).position(|w| (w[0] == b' ' || w[0] == b'\t') && w[1] == b'#')
                {
                    raw = &raw[..i];
                }
                let raw = raw.trim_end();
                let t = Template::parse(raw).map_err(|e| Error::from_template(e, pos, true, raw.len()))?;
                (t, pos, true, end)
            }
        };
        out.push(Entry { key: key.to_string(), key_start, value: Some(value), value_start, exact });
        pos = next;
    }
    Ok(out)
}

impl Error {
    fn with_hint(mut self, hint: &str) -> Self {
        self.hint = Some(hint.to_string());
        self
    }
}

fn line_end(b: &[u8], from: usize) -> usize {
    b[from..].iter().position(|&c| c == b'\n').map_or(b.len(), |i| from + i)
}

fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The raw text between quotes starting at `from`, and the offset of the closing
/// quote. A backslash escapes the next character (so `\"` and `\'` do not close).
fn quoted(text: &str, from: usize, q: u8) -> Option<(&str, usize)> {
    let b = text.as_bytes();
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'\\' if q == b'"' || b.get(i + 1) == Some(&b'\'') => i += 2,
            c if c == q => return Some((&text[from..i], i)),
            _ => i += 1,
        }
    }
    None
}

/// Escapes in double-quoted values: `\n`, `\r`, `\t`, `\\`, `\"`, `\'`, and `\$` for a
/// literal `$` (kept as `$$` for the template parser). Other sequences stay as written.
fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Parses and resolves every value in order, the way a lookup would: the
    /// environment first, then keys defined earlier.
    fn load(text: &str, env: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut known: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let mut out = Vec::new();
        for e in parse(text).unwrap() {
            let Some(t) = e.value else { continue };
            let v = t.resolve_string(&known).unwrap();
            known.entry(e.key.clone()).or_insert_with(|| v.clone());
            out.push((e.key, v));
        }
        out
    }

    fn one(text: &str) -> String {
        load(text, &[]).pop().unwrap().1
    }

    // Cases from Compose's documentation of the `.env` syntax.
    #[test]
    fn compose_documented_cases() {
        assert_eq!(one("VAR=VAL"), "VAL");
        assert_eq!(one("VAR=\"VAL\""), "VAL");
        assert_eq!(one("VAR='VAL'"), "VAL");
        assert_eq!(one("VAR=VAL # comment"), "VAL");
        assert_eq!(one("VAR=VAL# not a comment"), "VAL# not a comment");
        assert_eq!(one("VAR=\"VAL # not a comment\""), "VAL # not a comment");
        assert_eq!(one("VAR=\"VAL\" # comment"), "VAL");
        assert_eq!(one("VAR='$OTHER'"), "$OTHER");
        assert_eq!(one("VAR='${OTHER}'"), "${OTHER}");
        assert_eq!(one("VAR='Let\\'s go!'"), "Let's go!");
        assert_eq!(one("VAR=\"{\\\"hello\\\": \\\"json\\\"}\""), "{\"hello\": \"json\"}");
        assert_eq!(one("VAR=\"some\\tvalue\""), "some\tvalue");
        assert_eq!(one("VAR='some\\tvalue'"), "some\\tvalue");
        assert_eq!(one("VAR=some\\tvalue"), "some\\tvalue");
    }

    #[test]
    fn comments_blank_lines_and_export() {
        let text = "# a comment\n\n  export A=1\nexport\tB=2\nC = 3 \r\n   # indented comment\nD=\n";
        assert_eq!(
            load(text, &[]),
            vec![("A".into(), "1".into()), ("B".into(), "2".into()), ("C".into(), "3".into()), ("D".into(), "".into())]
        );
        // `export` alone as a key is a key.
        assert_eq!(one("export=1"), "1");
        // YAML-style `KEY: value`, which Compose also reads.
        assert_eq!(one("KEY: value"), "value");
    }

    #[test]
    fn multi_line_values() {
        assert_eq!(one("KEY=\"line one\nline two\""), "line one\nline two");
        assert_eq!(one("KEY='a\nb'"), "a\nb");
        assert_eq!(one("KEY=\"a\\nb\""), "a\nb");
        let e = load("A=\"x\ny\"\nB=2\n", &[]);
        assert_eq!(e[1], ("B".into(), "2".into()));
    }

    #[test]
    fn interpolation_in_unquoted_and_double_quoted_values() {
        let e = load("HOST=db\nURL=http://${HOST}:${PORT:-80}/\nQ=\"$HOST\"\nS='$HOST'\n", &[]);
        assert_eq!(e[1].1, "http://db:80/");
        assert_eq!(e[2].1, "db");
        assert_eq!(e[3].1, "$HOST");
        // The environment wins over earlier keys.
        let e = load("HOST=db\nURL=${HOST}\n", &[("HOST", "env")]);
        assert_eq!(e[1].1, "env");
        assert_eq!(one("P=\"cost \\$5 and $$6\""), "cost $5 and $6");
    }

    #[test]
    fn bare_key_inherits() {
        let entries = parse("KEY\nOTHER=1").unwrap();
        assert_eq!(entries[0].value, None);
        assert_eq!(entries[1].key, "OTHER");
    }

    #[test]
    fn errors_are_located() {
        let e = parse("A=1\nB=\"open\nC=2\n").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (6, "unterminated double-quoted value"));
        let e = parse("1A=x").unwrap_err();
        assert_eq!((e.start, e.len, e.message.as_str()), (0, 2, "invalid variable name `1A`"));
        let e = parse("A B=x").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (2, "expected `=` after `A`"));
        let e = parse("A=\"x\" y").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (6, "unexpected text after the closing quote"));
        let e = parse("A=${B").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (2, "unclosed `${`: no matching `}`"));
        let e = parse("A=x $ y").unwrap_err();
        assert_eq!(e.start, 4);
    }
}
