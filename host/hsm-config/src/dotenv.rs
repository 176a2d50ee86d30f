//! `.env` files, read with the rules Docker Compose documents and implements:
//! `KEY=value` lines (or `KEY: value`), `#` comment lines, an optional `export `
//! prefix, a UTF-8 byte-order mark ignored, keys of letters and digits (any
//! script) and `_ . - [ ]`, single-quoted values taken literally, double-quoted
//! values with escapes (`\n \r \t \a \b \f \v \\ \" \$`, octal `\0NNN`) and
//! line breaks, ` #` comments after unquoted values, and interpolation in unquoted
//! and double-quoted values (which may refer to keys defined earlier in the files or
//! to the environment). A key that is not a valid `${…}` name (`a.b`, `456`) is
//! read, and an error only where a reference uses it.
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
    // Windows editors start a UTF-8 file with a byte-order mark; Compose ignores it.
    let mut pos = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
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
            pos += text[pos..].chars().next().map_or(1, char::len_utf8);
        }
        let key = &text[key_start..pos];
        if let Some(bad) = key.chars().find(|&c| !is_key_char(c)).or(key.is_empty().then_some(' ')) {
            let len = if key.is_empty() { text[pos..].chars().next().map_or(1, char::len_utf8) } else { key.len() };
            return Err(Error {
                start: key_start,
                len,
                message: if key.is_empty() {
                    "expected a variable name".into()
                } else {
                    format!("invalid variable name `{key}`: {bad:?} can't be in a name")
                },
                hint: Some("names use letters, digits, `_`, `.`, `-`, `[` and `]`".into()),
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

/// A character Compose takes in a key: a letter or digit of any script, `_`, `.`,
/// `-`, `[` or `]`.
fn is_key_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '[' | ']')
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

/// Escapes in double-quoted values, as Compose decodes them: `\a \b \f \n \r \t
/// \v`, `\\`, `\"`, octal `\0NNN` (three octal digits, at most `\0377`: the
/// character of that code), and `\$` for a literal `$` (kept as `$$` for the
/// template parser). Every other sequence (`\'`, `\x41`, `\01`) stays as written.
fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let simple = match after.chars().next() {
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            Some('v') => Some('\u{b}'),
            Some(c @ ('\\' | '"')) => Some(c),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            rest = &after[1..];
        } else if let Some(dollar) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = dollar;
        } else if let Some(code) = octal(after) {
            out.push(char::from(code));
            rest = &after[4..];
        } else {
            out.push('\\');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `0NNN` at the start of `s` with `NNN` three octal digits of at most 0377: the
/// code they write.
fn octal(s: &str) -> Option<u8> {
    let digits = s.strip_prefix('0')?.get(..3)?;
    if !digits.bytes().all(|d| (b'0'..=b'7').contains(&d)) {
        return None;
    }
    u8::from_str_radix(digits, 8).ok()
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
        assert_eq!(one("VAR=\"don\\'t\""), "don\\'t", "`\\'` is not an escape in double quotes");
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
        let e = parse("a$b=x").unwrap_err();
        assert_eq!((e.start, e.len, e.message.as_str()), (0, 3, "invalid variable name `a$b`: '$' can't be in a name"));
        let e = parse("A B=x").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (2, "expected `=` after `A`"));
        let e = parse("A=\"x\" y").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (6, "unexpected text after the closing quote"));
        let e = parse("A=${B").unwrap_err();
        assert_eq!((e.start, e.message.as_str()), (2, "unclosed `${`: no matching `}`"));
        let e = parse("A=${B:-{x}").unwrap_err();
        assert_eq!(e.start, 2, "the brace inside the default is counted");
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let entries = parse("\u{feff}A=1\nB=2\n").unwrap();
        assert_eq!(entries[0].key, "A");
        assert_eq!(entries[0].key_start, 3, "offsets stay those of the file");
        assert_eq!(load("\u{feff}A=1", &[]), vec![("A".into(), "1".into())]);
    }

    /// Keys Compose reads though `${…}` can't name them: read, not refused.
    #[test]
    fn keys_compose_accepts_are_read() {
        let e = load("456 = ABC\na[1]=c\na.b=c\nclé=v\nキー=w\nA-B=x\nOK=1\n", &[]);
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["456", "a[1]", "a.b", "clé", "キー", "A-B", "OK"]);
        assert_eq!(e[0].1, "ABC");
        assert_eq!(e[6].1, "1");
    }

    #[test]
    fn double_quoted_escapes_are_compose_s() {
        assert_eq!(one("V=\"\\a\\b\\f\\v\""), "\u{7}\u{8}\u{c}\u{b}");
        assert_eq!(one("V=\"\\0101\\0102\""), "AB");
        assert_eq!(one("V=\"\\0377\""), "\u{ff}");
        // Not three octal digits, or over 0377: as written.
        assert_eq!(one("V=\"\\01 \\0400 \\089\""), "\\01 \\0400 \\089");
        assert_eq!(one("V=\"\\x41 \\q\""), "\\x41 \\q");
        assert_eq!(one("V=\"a\\\\n\""), "a\\n", "an escaped backslash, then n");
        assert_eq!(one("V=\"say \\\"hi\\\"\""), "say \"hi\"");
    }

    #[test]
    fn a_dollar_that_starts_nothing_is_text() {
        assert_eq!(one("A=x $ y"), "x $ y");
        assert_eq!(one("RE=\"^[a-z]+$\""), "^[a-z]+$");
        assert_eq!(one("J=${NOPE:-{\"a\":1}}"), "{\"a\":1}");
    }
}
