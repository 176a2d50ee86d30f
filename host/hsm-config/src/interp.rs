//! Interpolation with Docker Compose's syntax: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `${VAR:+replacement}`,
//! `${VAR+replacement}`, nesting in the default, replacement and message, and `$$`
//! for a literal `$`.
//!
//! Parsing and resolving are separate on purpose: every string is parsed when its file
//! is loaded, so a syntax error anywhere is reported at once, but it is resolved only
//! when the project uses the value, so a registry profile the project does not select
//! never needs its variables. Unlike Compose, a variable that is unset and has no
//! default is an error, not an empty string. As in Compose, a `$` that starts
//! nothing (not a name, `{` or `$`) is kept as it is, and braces inside a
//! default, message or replacement are counted (`${JSON:-{"a":1}}`).

use std::fmt;

use smallvec::{SmallVec, smallvec};

/// A parsed string: literal parts and `$` expressions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    /// Nearly every string of a registry is one literal part: kept inline, it
    /// costs no allocation besides its text (a large registry holds hundreds of
    /// thousands of them).
    parts: SmallVec<[Part; 1]>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Lit(String),
    /// Boxed, so that a part is no larger than a literal.
    Expr(Box<Expr>),
}

/// One `$VAR` or `${…}` expression.
#[derive(Clone, Debug, PartialEq)]
struct Expr {
    /// The expression exactly as written, such as `${DB_PORT:-5432}`.
    raw: String,
    /// Byte offset of the `$` in the parsed string.
    start: usize,
    name: String,
    op: Op,
    arg: Template,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    /// `$VAR`, `${VAR}`.
    Get,
    /// `${VAR:-x}` (`colon`), `${VAR-x}`.
    Default { colon: bool },
    /// `${VAR:?x}` (`colon`), `${VAR?x}`.
    Required { colon: bool },
    /// `${VAR:+x}` (`colon`), `${VAR+x}`.
    Alternative { colon: bool },
}

/// A syntax error in a template, located by byte offsets in the parsed string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset of the offending text.
    pub start: usize,
    /// Its length in bytes.
    pub len: usize,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// A resolved part of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Text written literally (with `$$` already turned into `$`).
    Lit(String),
    /// The value of one top-level expression.
    Expr {
        /// The expression exactly as written, which is what gets shown instead of the value.
        label: String,
        /// The value.
        value: String,
    },
}

/// Why a template could not be resolved.
#[derive(Debug)]
pub enum ResolveError<E> {
    /// A variable used without a default is not set.
    Unset {
        /// The variable.
        name: String,
        /// Byte offset of its expression in the template's string.
        start: usize,
        /// Length of the expression.
        len: usize,
    },
    /// `${VAR:?message}` or `${VAR?message}` with the variable unset (or empty).
    Required {
        /// The variable.
        name: String,
        /// The message the user wrote (resolved).
        message: String,
        /// Whether the variable was set but empty.
        empty: bool,
        /// Byte offset of its expression in the template's string.
        start: usize,
        /// Length of the expression.
        len: usize,
    },
    /// Looking the variable up failed (a `.env` value that could not be resolved).
    Lookup(E),
}

/// Where variables come from.
pub trait Lookup {
    /// Why a look-up can fail.
    type Error;
    /// The value of `name`, or `None` when it is not set.
    fn lookup(&self, name: &str) -> Result<Option<String>, Self::Error>;
}

impl<S: std::hash::BuildHasher> Lookup for std::collections::HashMap<String, String, S> {
    type Error = std::convert::Infallible;
    fn lookup(&self, name: &str) -> Result<Option<String>, Self::Error> {
        Ok(self.get(name).cloned())
    }
}

const SYNTAX_HINT: &str = "write `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `${VAR:+replacement}` or `${VAR+replacement}`, and `$$` for a literal `$`";

impl Template {
    /// Parses `s`.
    pub fn parse(s: &str) -> Result<Self, TemplateError> {
        let mut p = Parser { s, pos: 0, depth: 0 };
        let t = p.template(false)?;
        debug_assert_eq!(p.pos, s.len());
        Ok(t)
    }

    /// A template holding only literal text (no `$` processing).
    pub fn literal(s: impl Into<String>) -> Self {
        let s = s.into();
        if s.is_empty() { Self::default() } else { Self { parts: smallvec![Part::Lit(s)] } }
    }

    /// Whether the template has no expression.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// The names of the variables the template may read, in order.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<&'a str>) {
        for p in &self.parts {
            if let Part::Expr(e) = p {
                out.push(&e.name);
                e.arg.collect_vars(out);
            }
        }
    }

    /// Resolves every expression against `env`.
    pub fn resolve<L: Lookup>(&self, env: &L) -> Result<Vec<Resolved>, ResolveError<L::Error>> {
        let mut out = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push(Resolved::Lit(s.clone())),
                Part::Expr(e) => out.push(Resolved::Expr { label: e.raw.clone(), value: e.eval(env)? }),
            }
        }
        Ok(out)
    }

    /// Resolves to one string.
    pub fn resolve_string<L: Lookup>(&self, env: &L) -> Result<String, ResolveError<L::Error>> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Expr(e) => out.push_str(&e.eval(env)?),
            }
        }
        Ok(out)
    }
}

impl Expr {
    fn eval<L: Lookup>(&self, env: &L) -> Result<String, ResolveError<L::Error>> {
        let value = env.lookup(&self.name).map_err(ResolveError::Lookup)?;
        let present = |colon: bool| match &value {
            Some(v) => !colon || !v.is_empty(),
            None => false,
        };
        match self.op {
            Op::Get => value.ok_or_else(|| ResolveError::Unset {
                name: self.name.clone(),
                start: self.start,
                len: self.raw.len(),
            }),
            Op::Default { colon } => {
                if present(colon) {
                    Ok(value.unwrap_or_default())
                } else {
                    self.arg.resolve_string(env)
                }
            }
            Op::Required { colon } => {
                if present(colon) {
                    Ok(value.unwrap_or_default())
                } else {
                    Err(ResolveError::Required {
                        name: self.name.clone(),
                        message: self.arg.resolve_string(env)?,
                        empty: value.is_some(),
                        start: self.start,
                        len: self.raw.len(),
                    })
                }
            }
            Op::Alternative { colon } => {
                if present(colon) {
                    self.arg.resolve_string(env)
                } else {
                    Ok(String::new())
                }
            }
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// How many `${…}` the parser is inside.
    depth: usize,
}

/// The deepest `${…}` may nest in a default, message or replacement. Real
/// templates nest two or three deep; the parser and the resolver recurse once per
/// level, so without a bound a long enough file overflows the stack.
const MAX_NESTING: usize = 64;

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl Parser<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.s.as_bytes().get(self.pos + ahead).copied()
    }

    /// Parses until the end, or (inside `${…}`) until the closing `}`, which it
    /// leaves. Inside braces, a `{` opens a pair whose `}` is text, as Compose counts
    /// them: `${JSON:-{"a":1}}` has the default `{"a":1}`.
    fn template(&mut self, in_braces: bool) -> Result<Template, TemplateError> {
        let mut parts = SmallVec::new();
        let mut lit = String::new();
        let mut open = 0usize;
        while self.pos < self.s.len() {
            let c = self.s.as_bytes()[self.pos];
            if c == b'}' && in_braces {
                if open == 0 {
                    break;
                }
                open -= 1;
            } else if c == b'{' && in_braces {
                open += 1;
            }
            if c != b'$' {
                let ch = self.s[self.pos..].chars().next().expect("not at end");
                lit.push(ch);
                self.pos += ch.len_utf8();
                continue;
            }
            match self.peek(1) {
                Some(b'$') => {
                    lit.push('$');
                    self.pos += 2;
                }
                Some(b'{') => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Expr(Box::new(self.braced()?)));
                }
                Some(c) if is_name_start(c) => {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    let start = self.pos;
                    self.pos += 1;
                    while self.peek(0).is_some_and(is_name_char) {
                        self.pos += 1;
                    }
                    let raw = self.s[start..self.pos].to_string();
                    parts.push(Part::Expr(Box::new(Expr {
                        name: raw[1..].to_string(),
                        raw,
                        start,
                        op: Op::Get,
                        arg: Template::default(),
                    })));
                }
                // A `$` that starts nothing (`a $ b`, `^[a-z]+$`) is text, as in
                // Compose.
                _ => {
                    lit.push('$');
                    self.pos += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// Parses `${…}` starting at the `$`.
    fn braced(&mut self) -> Result<Expr, TemplateError> {
        let start = self.pos;
        self.pos += 2;
        let name_start = self.pos;
        if let Some(err) = self.unreferenceable(start) {
            return Err(err);
        }
        if !self.peek(0).is_some_and(is_name_start) {
            let (len, message) = match self.peek(0) {
                Some(b'}') => (3, "empty variable name in `${}`".to_string()),
                None => (2, "unclosed `${`".to_string()),
                Some(_) => (self.pos + 1 - start, "expected a variable name after `${`".to_string()),
            };
            return Err(TemplateError { start, len, message, hint: SYNTAX_HINT.into() });
        }
        while self.peek(0).is_some_and(is_name_char) {
            self.pos += 1;
        }
        let name = self.s[name_start..self.pos].to_string();
        let colon = self.peek(0) == Some(b':');
        let op_at = self.pos + usize::from(colon);
        let op = match self.s.as_bytes().get(op_at) {
            Some(b'}') if !colon => Op::Get,
            Some(b'-') => Op::Default { colon },
            Some(b'?') => Op::Required { colon },
            Some(b'+') => Op::Alternative { colon },
            None => return Err(self.unclosed(start)),
            Some(_) => {
                let end = self.s[op_at..].find('}').map_or(self.s.len(), |i| op_at + i + 1);
                let what = &self.s[start..end];
                return Err(TemplateError {
                    start,
                    len: end - start,
                    message: format!("unsupported interpolation `{what}`"),
                    hint: SYNTAX_HINT.into(),
                });
            }
        };
        let arg = if op == Op::Get {
            Template::default()
        } else {
            if self.depth == MAX_NESTING {
                return Err(TemplateError {
                    start,
                    len: 2,
                    message: format!("`${{…}}` nested more than {MAX_NESTING} deep"),
                    hint: "nest fewer defaults, messages or replacements inside each other".into(),
                });
            }
            self.pos = op_at + 1;
            self.depth += 1;
            let arg = self.template(true);
            self.depth -= 1;
            arg?
        };
        if self.pos >= self.s.len() || (op == Op::Get && self.peek(0) != Some(b'}')) {
            return Err(self.unclosed(start));
        }
        self.pos += 1;
        Ok(Expr { raw: self.s[start..self.pos].to_string(), start, name, op, arg })
    }

    /// `${a.b}`, `${456}`, `${a[1]}`: a name a `.env` file can define (Compose
    /// reads such keys) but no `${…}` can use. Said as such, rather than as bad
    /// syntax.
    fn unreferenceable(&self, start: usize) -> Option<TemplateError> {
        // The name runs to the first `}` or operator (`-` is one: `${A-x}`).
        let inside = &self.s[start + 2..];
        let end = inside.find(['}', ':', '-', '?', '+'])?;
        let name = &inside[..end];
        let key_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']');
        let referenceable =
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && name.bytes().all(is_name_char);
        if name.is_empty() || referenceable || !name.chars().all(key_char) {
            return None;
        }
        let len = if inside.as_bytes()[end] == b'}' { end + 3 } else { end + 2 };
        let suggestion: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        Some(TemplateError {
            start,
            len,
            message: format!(
                "`{name}` can't be referenced: a name in `${{…}}` is ASCII letters, digits and `_`, not starting with a digit"
            ),
            hint: format!(
                "a `.env` file may define `{name}` (Compose reads such keys), but no reference can use it; name the variable `{}` instead",
                if suggestion.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("_{suggestion}")
                } else {
                    suggestion
                }
            ),
        })
    }

    fn unclosed(&self, start: usize) -> TemplateError {
        let end = self.s.len();
        TemplateError {
            start,
            len: end - start,
            message: "unclosed `${`: no matching `}`".into(),
            hint: "close the reference with `}`, or write `$$` for a literal `$`".into(),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.start)
    }
}

#[cfg(test)]
mod tests;
