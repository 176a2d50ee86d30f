//! A fast reader for the plain YAML that registries are made of, because on a large
//! registry serde-saphyr's general parser was a third of a cold `hsm plan`'s CPU
//! time. It reads
//! block maps and lists, flow collections on one line, plain and quoted scalars on
//! one line, and comments; it gives exactly what serde-saphyr gives, locations
//! included (a differential test holds it to that), or it declines, and the caller
//! reads the file with serde-saphyr instead. So it is a shortcut, never a dialect:
//! anything else (anchors, tags, block scalars, multi-line scalars, documents,
//! tabs, every error) is serde-saphyr's to read and to report.

use std::borrow::Cow;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use crate::spanned::Loc;

/// The name under which [`crate::Spanned`] asks a deserializer for a node's
/// location; this reader answers with a sequence of the location's parts and the
/// value (see `Spanned`'s `Deserialize`), serde-saphyr with its own protocol.
pub(crate) const SPANNED: &str = "__hsm_spanned";

/// Limits under serde-saphyr's own (its `Budget`), past which the file is left to
/// it: what it refuses, the quick reader must not accept. Collections nested deeper
/// than this (its limit: 64 levels)...
const MAX_DEPTH: usize = 32;

/// ...more nodes than this (its limit, as hsm configures it: 5,000,000)...
const MAX_NODES: usize = crate::load::SAPHYR_MAX_NODES / 5 * 4;

/// ...a longer text than this (its limits: 64 MiB of scalars, 256 MiB of input)...
const MAX_TEXT: usize = 32 << 20;

/// ...or a key whose colon is further than this from its start (its scanner gives
/// up on a key after 1,024 characters).
const MAX_KEY: usize = 1000;

/// Reads `text` as a `T` when it is in the subset this reader knows and valid;
/// `None` when serde-saphyr must read it.
pub(crate) fn from_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    let root = Parser::new(text)?.document().ok()?;
    T::deserialize(NodeDe(&root)).ok()
}

/// The reader declined: the text is outside the subset, or invalid.
#[derive(Debug)]
pub(crate) struct Decline;

impl fmt::Display for Decline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to serde-saphyr")
    }
}

impl std::error::Error for Decline {}

impl de::Error for Decline {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Decline
    }
}

type Res<T> = Result<T, Decline>;

/// Declines; in tests, remembers where (see `tests::why`).
#[track_caller]
fn declined() -> Decline {
    #[cfg(test)]
    tests::WHERE.set(Some(std::panic::Location::caller().line()));
    Decline
}

#[track_caller]
fn no<T>() -> Res<T> {
    Err(declined())
}

/// A node of the file, with the location serde-saphyr gives it.
#[derive(Debug)]
struct Node<'t> {
    loc: Loc,
    kind: Kind<'t>,
}

#[derive(Debug)]
enum Kind<'t> {
    /// A map value with nothing after its colon.
    Empty,
    /// A plain scalar, as written (typed when read as any value).
    Plain(&'t str),
    /// A quoted scalar, unescaped.
    Quoted(Cow<'t, str>),
    Seq(Vec<Node<'t>>),
    Map(Vec<(Node<'t>, Node<'t>)>),
}

struct Parser<'t> {
    text: &'t str,
    b: &'t [u8],
    pos: usize,
    /// 1-based line of `line_start`.
    line: u32,
    line_start: usize,
    /// Whether columns are byte offsets (every line ASCII).
    ascii: bool,
    depth: usize,
    /// Nodes made so far (each takes its location once).
    nodes: usize,
}

/// Whether a plain scalar may start at `i`: not with a space or an indicator, except
/// a `-` before a letter or digit (`-7`, `-x`), which YAML reads as plain text.
fn plain_starts(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(b'-') => b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric),
        Some(&c) => c != b' ' && c != b'\n' && !is_indicator(c),
        None => false,
    }
}

/// Characters that may not start a plain scalar here: YAML's indicators (`-`, `?`
/// and `:` start plain scalars only when not followed by a space; this reader
/// leaves those to serde-saphyr) and the quotes and brackets read elsewhere.
fn is_indicator(c: u8) -> bool {
    matches!(
        c,
        b'-' | b'?'
            | b':'
            | b','
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'#'
            | b'&'
            | b'*'
            | b'!'
            | b'|'
            | b'>'
            | b'\''
            | b'"'
            | b'%'
            | b'@'
            | b'`'
    )
}

/// Whether YAML reads `c` as it is: printable, and no line break other than `\n`
/// (not even Unicode's). Tabs, carriage returns and byte-order marks are left to
/// serde-saphyr too.
fn is_plain_char(c: char) -> bool {
    matches!(
        c,
        '\n' | ' '..='~' | '\u{A0}'..='\u{2027}' | '\u{202A}'..='\u{D7FF}' | '\u{E000}'..='\u{FEFE}' | '\u{FF00}'..='\u{FFFD}'
    ) || c >= '\u{10000}'
}

impl<'t> Parser<'t> {
    fn new(text: &'t str) -> Option<Self> {
        let ascii = text.is_ascii();
        let readable = if ascii {
            text.bytes().all(|b| b == b'\n' || (b' '..=b'~').contains(&b))
        } else {
            text.chars().all(is_plain_char)
        };
        (readable && text.len() <= MAX_TEXT).then_some(Self {
            text,
            b: text.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
            ascii,
            depth: 0,
            nodes: 0,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.b.get(i).copied()
    }

    /// The location of `len` bytes at `start`, on the current line.
    fn loc(&mut self, start: usize, len: usize) -> Loc {
        self.nodes += 1;
        let column =
            if self.ascii { start - self.line_start } else { self.text[self.line_start..start].chars().count() };
        Loc { line: self.line, column: u32::try_from(column + 1).unwrap_or(u32::MAX), start, len }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// Whether the cursor is at the end of the line's content (a line break, the
    /// end of the text, or a comment after a space).
    fn at_line_end(&self) -> bool {
        match self.peek() {
            None | Some(b'\n') => true,
            Some(b'#') => self.pos == self.line_start || self.b[self.pos - 1] == b' ',
            _ => false,
        }
    }

    /// Skips spaces and a comment to the end of the line and over its line break;
    /// declines when anything else is left on it.
    fn end_line(&mut self) -> Res<()> {
        self.skip_spaces();
        if !self.at_line_end() {
            return no();
        }
        match self.b[self.pos..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                self.line += 1;
                self.line_start = self.pos;
            }
            None => {
                self.pos = self.b.len();
                self.line_start = self.pos;
            }
        }
        Ok(())
    }

    /// From the start of a line: skips blank and comment lines, and returns the
    /// indentation of the next line with content (the cursor stays at its start),
    /// or `None` at the end of the text. Declines at document markers.
    fn next_content_line(&mut self) -> Res<Option<usize>> {
        loop {
            debug_assert_eq!(self.pos, self.line_start);
            let mut i = self.pos;
            while self.peek_at(i) == Some(b' ') {
                i += 1;
            }
            match self.peek_at(i) {
                None => {
                    self.pos = self.b.len();
                    self.line_start = self.pos;
                    return Ok(None);
                }
                Some(b'\n' | b'#') => {
                    self.pos = i;
                    self.end_line()?;
                }
                Some(_) => {
                    let indent = i - self.pos;
                    let rest = &self.b[i..];
                    if indent == 0 && (rest.starts_with(b"---") || rest.starts_with(b"...")) {
                        return no();
                    }
                    return Ok(Some(indent));
                }
            }
        }
    }

    /// Whether the cursor is at a block sequence's `- ` (or `-` ending the line).
    fn at_dash(&self) -> bool {
        self.dash_at(self.pos)
    }

    /// Whether a block sequence's `- ` (or `-` ending the line) is at `i`.
    fn dash_at(&self, i: usize) -> bool {
        self.peek_at(i) == Some(b'-') && matches!(self.peek_at(i + 1), None | Some(b' ' | b'\n'))
    }

    fn document(mut self) -> Res<Node<'t>> {
        match self.next_content_line()? {
            Some(0) => {}
            _ => return no(),
        }
        if self.at_dash() {
            return no();
        }
        let root = self.block_map(0)?;
        match self.next_content_line()? {
            None if self.nodes <= MAX_NODES => Ok(root),
            _ => no(),
        }
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { no() } else { Ok(()) }
    }

    /// A block map whose keys are at column offset `indent`, the cursor at its first
    /// key. Returns with the cursor at the start of the first line after it.
    fn block_map(&mut self, indent: usize) -> Res<Node<'t>> {
        self.enter()?;
        let loc = self.loc(self.pos, 0);
        let mut entries = Vec::new();
        loop {
            let key = self.block_key()?;
            let colon = self.pos;
            self.pos += 1;
            let value = self.map_value(indent, colon)?;
            entries.push((key, value));
            match self.next_content_line()? {
                Some(i) if i == indent => {
                    self.pos += i;
                    if self.at_dash() {
                        return no();
                    }
                }
                Some(i) if i < indent => break,
                None => break,
                Some(_) => return no(),
            }
        }
        check_unique(&entries)?;
        self.depth -= 1;
        Ok(Node { loc, kind: Kind::Map(entries) })
    }

    /// A key in a block map, the cursor left at its colon.
    fn block_key(&mut self) -> Res<Node<'t>> {
        let key = match self.peek() {
            Some(b'"' | b'\'') => {
                let key = self.quoted()?;
                self.skip_spaces();
                key
            }
            _ => {
                let (key, colon) = self.block_plain()?;
                if !colon {
                    return no();
                }
                key
            }
        };
        if self.peek() == Some(b':') && matches!(self.peek_at(self.pos + 1), None | Some(b' ' | b'\n')) {
            check_key(&key, self.pos)?;
            Ok(key)
        } else {
            no()
        }
    }

    /// What follows a block map key's colon at `colon`: a value on the same line, a
    /// block collection on the lines below, or nothing.
    fn map_value(&mut self, indent: usize, colon: usize) -> Res<Node<'t>> {
        self.skip_spaces();
        if !self.at_line_end() {
            let value = self.inline_value()?;
            self.end_line()?;
            return Ok(value);
        }
        let empty = Node { loc: self.loc(colon, 0), kind: Kind::Empty };
        self.end_line()?;
        match self.next_content_line()? {
            Some(i) if i > indent => {
                self.pos += i;
                if self.at_dash() { self.block_seq(i, false) } else { self.block_map(i) }
            }
            Some(i) if i == indent => {
                // A list may sit at its key's own indentation.
                if self.dash_at(self.pos + i) {
                    self.pos += i;
                    self.block_seq(i, true)
                } else {
                    Ok(empty)
                }
            }
            _ => Ok(empty),
        }
    }

    /// A block sequence whose dashes are at column offset `indent`, the cursor at
    /// the first. `indentless` when it sits at its key's indentation: serde-saphyr
    /// then places it at its first item rather than its first dash.
    fn block_seq(&mut self, indent: usize, indentless: bool) -> Res<Node<'t>> {
        self.enter()?;
        let mut loc = None;
        let mut items = Vec::new();
        loop {
            let dash = self.pos;
            self.pos += 1;
            self.skip_spaces();
            if self.at_line_end() || self.at_dash() {
                return no();
            }
            loc.get_or_insert_with(|| if indentless { self.loc(self.pos, 0) } else { self.loc(dash, 0) });
            let column = self.pos - self.line_start;
            if self.looks_like_key()? {
                items.push(self.block_map(column)?);
            } else {
                items.push(self.inline_value()?);
                self.end_line()?;
            }
            match self.next_content_line()? {
                Some(i) if i == indent => {
                    if self.dash_at(self.pos + i) {
                        self.pos += i;
                    } else if indentless {
                        break;
                    } else {
                        return no();
                    }
                }
                Some(i) if i < indent => break,
                None => break,
                Some(_) => return no(),
            }
        }
        self.depth -= 1;
        Ok(Node { loc: loc.ok_or_else(declined)?, kind: Kind::Seq(items) })
    }

    /// Whether a block key (a scalar and a colon) starts at the cursor; the cursor
    /// does not move.
    fn looks_like_key(&mut self) -> Res<bool> {
        let (pos, nodes) = (self.pos, self.nodes);
        let is_key = match self.peek() {
            Some(b'[' | b'{') => false,
            Some(b'"' | b'\'') => {
                self.quoted()?;
                self.skip_spaces();
                self.peek() == Some(b':')
            }
            _ => self.block_plain()?.1,
        };
        (self.pos, self.nodes) = (pos, nodes);
        Ok(is_key)
    }

    /// A value that starts and ends on this line: a flow collection or a scalar.
    fn inline_value(&mut self) -> Res<Node<'t>> {
        match self.peek() {
            Some(b'[' | b'{') => self.flow_node(),
            Some(b'"' | b'\'') => self.quoted(),
            _ => match self.block_plain()? {
                (value, false) => Ok(value),
                (_, true) => no(),
            },
        }
    }

    /// A plain scalar in block context; the flag says whether it ended at a
    /// colon and a space (a key), where the cursor is then left.
    fn block_plain(&mut self) -> Res<(Node<'t>, bool)> {
        let start = self.pos;
        if !plain_starts(self.b, start) {
            return no();
        }
        let mut end = start;
        let mut colon = false;
        while let Some(c) = self.peek() {
            match c {
                b'\n' => break,
                b':' if matches!(self.peek_at(self.pos + 1), None | Some(b' ' | b'\n')) => {
                    colon = true;
                    break;
                }
                b'#' if self.b[self.pos - 1] == b' ' => break,
                b' ' => {}
                _ => end = self.pos + 1,
            }
            self.pos += 1;
        }
        // A key's cursor stays at its colon (spaces before it are not part of the
        // key); a value's goes to its end.
        if !colon {
            self.pos = end;
        }
        let node = Node { loc: self.loc(start, end - start), kind: Kind::Plain(&self.text[start..end]) };
        Ok((node, colon))
    }

    /// A quoted scalar that closes on this line.
    fn quoted(&mut self) -> Res<Node<'t>> {
        let start = self.pos;
        let quote = self.b[start];
        let mut out: Option<String> = None;
        let mut run = start + 1;
        let mut i = start + 1;
        loop {
            let c = self.peek_at(i).ok_or_else(declined)?;
            match c {
                b'\n' => return no(),
                b'\'' if quote == b'\'' => {
                    if self.peek_at(i + 1) == Some(b'\'') {
                        let s = out.get_or_insert_with(String::new);
                        s.push_str(&self.text[run..=i]);
                        i += 2;
                        run = i;
                        continue;
                    }
                    break;
                }
                b'"' if quote == b'"' => break,
                b'\\' if quote == b'"' => {
                    let unescaped = match self.peek_at(i + 1).ok_or_else(declined)? {
                        b'\\' => '\\',
                        b'"' => '"',
                        b'/' => '/',
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'0' => '\0',
                        _ => return no(),
                    };
                    let s = out.get_or_insert_with(String::new);
                    s.push_str(&self.text[run..i]);
                    s.push(unescaped);
                    i += 2;
                    run = i;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        let value = match out {
            None => Cow::Borrowed(&self.text[start + 1..i]),
            Some(mut s) => {
                s.push_str(&self.text[run..i]);
                Cow::Owned(s)
            }
        };
        self.pos = i + 1;
        Ok(Node { loc: self.loc(start, self.pos - start), kind: Kind::Quoted(value) })
    }

    /// A flow collection or scalar that ends on this line.
    fn flow_node(&mut self) -> Res<Node<'t>> {
        match self.peek() {
            Some(b'[') => self.flow_collection(b']'),
            Some(b'{') => self.flow_collection(b'}'),
            Some(b'"' | b'\'') => self.quoted(),
            _ => self.flow_plain(),
        }
    }

    /// `[a, b]` (`close` is `]`) or `{k: v, …}` (`close` is `}`), on one line,
    /// without a trailing comma or entries lacking a value.
    fn flow_collection(&mut self, close: u8) -> Res<Node<'t>> {
        self.enter()?;
        let loc = self.loc(self.pos, 1);
        self.pos += 1;
        let mut items = Vec::new();
        let mut entries = Vec::new();
        self.skip_spaces();
        if self.peek() == Some(close) {
            self.pos += 1;
        } else {
            loop {
                self.skip_spaces();
                let node = self.flow_node()?;
                self.skip_spaces();
                if close == b'}' {
                    if self.peek() != Some(b':') || self.peek_at(self.pos + 1) != Some(b' ') {
                        return no();
                    }
                    check_key(&node, self.pos)?;
                    self.pos += 2;
                    self.skip_spaces();
                    let value = self.flow_node()?;
                    self.skip_spaces();
                    entries.push((node, value));
                } else {
                    items.push(node);
                }
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(c) if c == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return no(),
                }
            }
        }
        self.depth -= 1;
        if close == b'}' {
            check_unique(&entries)?;
            Ok(Node { loc, kind: Kind::Map(entries) })
        } else {
            Ok(Node { loc, kind: Kind::Seq(items) })
        }
    }

    /// A plain scalar inside a flow collection: up to a comma, a bracket or a
    /// colon; declines at a colon anywhere else and at comments.
    fn flow_plain(&mut self) -> Res<Node<'t>> {
        let start = self.pos;
        if !plain_starts(self.b, start) {
            return no();
        }
        let mut end = start;
        while let Some(c) = self.peek() {
            match c {
                b',' | b']' | b'}' => break,
                b':' => {
                    if self.peek_at(self.pos + 1) == Some(b' ') {
                        break;
                    }
                    return no();
                }
                b'\n' | b'[' | b'{' => return no(),
                b'#' if self.b[self.pos - 1] == b' ' => return no(),
                b' ' => {}
                _ => end = self.pos + 1,
            }
            self.pos += 1;
        }
        self.pos = end;
        Ok(Node { loc: self.loc(start, end - start), kind: Kind::Plain(&self.text[start..end]) })
    }
}

/// Keys are names: a plain key that YAML might read as something other than a
/// string (a number, a boolean, null) is left to serde-saphyr, which compares such
/// keys by value when it looks for duplicates; so is `<<`, which it reads as a
/// merge key, and a key whose colon (at `colon`) is too far for its scanner.
fn check_key(key: &Node<'_>, colon: usize) -> Res<()> {
    if colon - key.loc.start > MAX_KEY {
        return no();
    }
    match &key.kind {
        Kind::Plain("<<") => no(),
        Kind::Plain(s) => match scalar(s) {
            Scalar::Str => Ok(()),
            _ => no(),
        },
        Kind::Quoted(_) => Ok(()),
        _ => no(),
    }
}

/// Declines a map with a key given twice (serde-saphyr reports it).
fn check_unique(entries: &[(Node<'_>, Node<'_>)]) -> Res<()> {
    fn text<'a>(n: &'a Node<'_>) -> &'a str {
        match &n.kind {
            Kind::Plain(s) => s,
            Kind::Quoted(s) => s,
            _ => "",
        }
    }
    if entries.len() <= 8 {
        for (i, (k, _)) in entries.iter().enumerate() {
            if entries[..i].iter().any(|(other, _)| text(other) == text(k)) {
                return no();
            }
        }
        return Ok(());
    }
    let mut seen = rustc_hash::FxHashSet::with_capacity_and_hasher(entries.len(), Default::default());
    if entries.iter().all(|(k, _)| seen.insert(text(k))) { Ok(()) } else { no() }
}

/// What a plain scalar is under YAML 1.2's core schema, as far as this reader
/// decides it: numbers other than plain decimal integers are left to serde-saphyr.
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Str,
    Unsure,
}

fn scalar(s: &str) -> Scalar {
    if is_nullish(s) {
        return Scalar::Null;
    }
    match s {
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        _ => {}
    }
    let b = s.as_bytes();
    match b.first() {
        // Two dots make no number in any schema (an address, a version).
        Some(b'0'..=b'9' | b'.') if !s.contains(':') && s.bytes().filter(|&c| c == b'.').count() >= 2 => Scalar::Str,
        // `.env`, `./path`: no number starts with a dot and a letter.
        Some(b'.') if !b.get(1).is_some_and(u8::is_ascii_digit) && !is_special_float(s) => Scalar::Str,
        Some(b'0'..=b'9' | b'+' | b'-' | b'.') => {
            let digits = s.strip_prefix('-').unwrap_or(s);
            let decimal = !digits.is_empty()
                && digits.len() <= 18
                && digits.bytes().all(|c| c.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'));
            match s.parse::<i64>() {
                Ok(i) if decimal => Scalar::Int(i),
                _ => Scalar::Unsure,
            }
        }
        _ if ["inf", "infinity", "nan"].iter().any(|w| s.eq_ignore_ascii_case(w)) => Scalar::Unsure,
        _ => Scalar::Str,
    }
}

/// `.inf`, `.NaN` and their kin, in any case (serde-saphyr's spellings are a subset).
fn is_special_float(s: &str) -> bool {
    let s = s.trim_start_matches(['+', '-']);
    [".inf", ".nan"].iter().any(|w| s.eq_ignore_ascii_case(w))
}

fn is_nullish(s: &str) -> bool {
    matches!(s, "~" | "null" | "Null" | "NULL")
}

/// Deserializes one node.
struct NodeDe<'a>(&'a Node<'a>);

impl<'de> NodeDe<'de> {
    /// Visits the node as a string: a scalar, not null.
    fn visit_text<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Plain(s) if !is_nullish(s) => visitor.visit_borrowed_str(s),
            Kind::Quoted(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Kind::Quoted(Cow::Owned(s)) => visitor.visit_str(s),
            _ => no(),
        }
    }
}

macro_rules! decline {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, _: V) -> Res<V::Value> { no() })*
    };
}

impl<'de> Deserializer<'de> for NodeDe<'de> {
    type Error = Decline;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Empty => visitor.visit_unit(),
            Kind::Plain(s) => match scalar(s) {
                Scalar::Null => visitor.visit_unit(),
                Scalar::Bool(b) => visitor.visit_bool(b),
                Scalar::Int(i) => visitor.visit_i64(i),
                Scalar::Str => visitor.visit_borrowed_str(s),
                Scalar::Unsure => no(),
            },
            Kind::Quoted(_) => self.visit_text(visitor),
            Kind::Seq(items) => visitor.visit_seq(Items(items.iter())),
            Kind::Map(entries) => visitor.visit_map(Entries { entries: entries.iter(), value: None }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Empty => visitor.visit_none(),
            Kind::Plain(s) if is_nullish(s) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.visit_text(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.visit_text(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        self.visit_text(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Res<V::Value> {
        if name == SPANNED {
            visitor.visit_seq(SpannedParts { node: self.0, next: 0 })
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Map(entries) => visitor.visit_map(Entries { entries: entries.iter(), value: None }),
            _ => no(),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Seq(items) => visitor.visit_seq(Items(items.iter())),
            _ => no(),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Plain(s) if !is_nullish(s) => visitor.visit_enum((*s).into_deserializer()),
            Kind::Quoted(s) => visitor.visit_enum(s.as_ref().into_deserializer()),
            _ => no(),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Res<V::Value> {
        match &self.0.kind {
            Kind::Empty => visitor.visit_unit(),
            Kind::Plain(s) if is_nullish(s) => visitor.visit_unit(),
            _ => no(),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Res<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Res<V::Value> {
        no()
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, _: V) -> Res<V::Value> {
        no()
    }

    decline! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8
        deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_bytes deserialize_byte_buf deserialize_ignored_any
    }
}

struct Items<'a>(std::slice::Iter<'a, Node<'a>>);

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Decline;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Res<Option<T::Value>> {
        self.0.next().map(|n| seed.deserialize(NodeDe(n))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (Node<'a>, Node<'a>)>,
    value: Option<&'a Node<'a>>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Decline;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Res<Option<K::Value>> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(NodeDe(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Res<V::Value> {
        seed.deserialize(NodeDe(self.value.take().ok_or_else(declined)?))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// A node's location and value, as [`crate::Spanned`] reads them: the line and
/// column in one `u64` (line in the high half), the start, the length, the value.
struct SpannedParts<'a> {
    node: &'a Node<'a>,
    next: u8,
}

impl<'de> SeqAccess<'de> for SpannedParts<'de> {
    type Error = Decline;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Res<Option<T::Value>> {
        let loc = &self.node.loc;
        self.next += 1;
        let number = match self.next {
            1 => (u64::from(loc.line) << 32) | u64::from(loc.column),
            2 => loc.start as u64,
            3 => loc.len as u64,
            4 => return seed.deserialize(NodeDe(self.node)).map(Some),
            _ => return Ok(None),
        };
        seed.deserialize(number.into_deserializer()).map(Some)
    }
}

#[cfg(test)]
mod tests;
