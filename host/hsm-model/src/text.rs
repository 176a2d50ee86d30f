//! Text that may hold secrets. From interpolation on, every value that came from the
//! environment or a `.env` file is a [`Piece::Secret`]: a reference that prints as the
//! expression the user wrote (`${QDRANT_API_KEY}`), never as its value. Values live
//! only in a [`SecretStore`] and come out, as [`Sensitive`], at the moment the host
//! hands them to a container or a process.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

/// Index of a secret in a [`SecretStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SecretId(pub u32);

/// How a secret's value is written where it is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Encoding {
    /// As it is.
    #[default]
    Raw,
    /// Percent-encoded for a URL's user-info, path or query (RFC 3986 unreserved
    /// characters stay, every other byte is `%XX`).
    Url,
}

impl Encoding {
    /// Every encoding a value can be written in, so that whoever hides values
    /// (redaction) can hide each form of them.
    pub const ALL: [Self; 2] = [Self::Raw, Self::Url];

    /// `value` as this encoding writes it.
    pub fn apply(self, value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        encode_into(&mut out, value, self);
        out
    }
}

/// One part of a [`Text`]. Serialized, a secret is its id and label, never a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Piece {
    /// Text written literally in a file or by a plugin.
    Lit(String),
    /// A value from the environment or `.env`, known only to the host.
    Secret {
        /// Which secret.
        id: SecretId,
        /// The expression the user wrote, such as `${QDRANT_API_KEY}`; what is shown.
        label: String,
        /// How the value is written.
        encoding: Encoding,
    },
    /// A secret the host generates and derives again on every run (a database
    /// password, say), scoped to one service instance; never stored.
    Generated {
        /// The secret's name within the service.
        name: String,
        /// How the value is written.
        encoding: Encoding,
    },
    /// The host port that a container port of this service is published on; known
    /// only once the host has chosen it.
    HostPort {
        /// The container's name within the service.
        container: String,
        /// The port inside the container.
        port: u16,
    },
}

/// A string made of literal parts and references.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Text {
    /// Most texts are one literal: kept inline, they cost no allocation of their
    /// own (plans hold hundreds of thousands of texts).
    pieces: SmallVec<[Piece; 1]>,
}

impl Text {
    /// A text with no references.
    pub fn literal(s: impl Into<String>) -> Self {
        let s = s.into();
        if s.is_empty() { Self::default() } else { Self { pieces: smallvec::smallvec![Piece::Lit(s)] } }
    }

    /// A text made of these pieces (adjacent literals are joined).
    pub fn from_pieces(pieces: impl IntoIterator<Item = Piece>) -> Self {
        let mut t = Self::default();
        for p in pieces {
            t.push(p);
        }
        t
    }

    /// Appends a piece.
    pub fn push(&mut self, piece: Piece) {
        match (self.pieces.last_mut(), piece) {
            (_, Piece::Lit(s)) if s.is_empty() => {}
            (Some(Piece::Lit(last)), Piece::Lit(s)) => last.push_str(&s),
            (_, p) => self.pieces.push(p),
        }
    }

    /// The pieces.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The string, when the text holds no reference of any kind.
    pub fn as_plain(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Whether any part of the text is a secret (from the environment or generated).
    pub fn has_secret(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Secret { .. } | Piece::Generated { .. }))
    }

    /// The secrets this text refers to.
    pub fn secret_ids(&self) -> impl Iterator<Item = SecretId> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Secret { id, .. } => Some(*id),
            _ => None,
        })
    }

    /// The text as shown to people and in `--json`: literal `$` doubled, control
    /// and bidirectional-formatting characters escaped (see [`printable`]), secrets
    /// as the expression the user wrote, generated secrets as
    /// `${hsm:generated:NAME}` and host ports as `${hsm:port:CONTAINER:PORT}`.
    /// Never a secret's value, and nothing a terminal would act on.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(&printable(s).replace('$', "$$")),
                Piece::Secret { label, .. } => out.push_str(&printable(label)),
                Piece::Generated { name, .. } => {
                    out.push_str("${hsm:generated:");
                    out.push_str(&printable(name));
                    out.push('}');
                }
                Piece::HostPort { container, port } => {
                    out.push_str(&format!("${{hsm:port:{}:{port}}}", printable(container)));
                }
            }
        }
        out
    }

    /// The text up to its first line break (a script's first line, say), and
    /// whether anything was cut.
    pub fn first_line(&self) -> (Text, bool) {
        let mut out = Text::default();
        for p in &self.pieces {
            if let Piece::Lit(l) = p
                && let Some(i) = l.find('\n')
            {
                out.push(Piece::Lit(l[..i].to_string()));
                return (out, true);
            }
            out.push(p.clone());
        }
        (out, false)
    }

    /// The text with every reference replaced by its value. Only the host calls this,
    /// at the moment it hands the value to a container or a process.
    pub fn expose(&self, secrets: &SecretStore, refs: &dyn ResolveRefs) -> Result<Sensitive, String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Secret { id, encoding, label } => {
                    let value = secrets.get(*id).ok_or_else(|| format!("secret `{label}` is not known to this run"))?;
                    encode_into(&mut out, &value.0, *encoding);
                }
                Piece::Generated { name, encoding } => {
                    let value = refs.generated(name)?;
                    encode_into(&mut out, &value.0, *encoding);
                }
                Piece::HostPort { container, port } => {
                    out.push_str(&refs.host_port(container, *port)?.to_string());
                }
            }
        }
        Ok(Sensitive(out))
    }
}

/// `s` safe to print on a terminal and to quote in any output: control characters
/// (C0, DEL, C1: line breaks, NUL, ESC, BEL, ...) and the characters that reorder
/// text on screen (bidirectional overrides, isolates and marks) are written as
/// escapes (`\n`, `\u{1b}`, `\u{202e}`); everything else is as it is. What a
/// plugin, a container or a file says goes through this before it is shown, so it
/// can't move the cursor, rewrite a line the user reviews or hide text.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !needs_escape(s) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether [`printable`] would change `s`.
pub fn needs_escape(s: &str) -> bool {
    s.chars().any(is_hidden)
}

/// A character a terminal acts on, or that is invisible or reorders what is shown:
/// control characters (C0, DEL, C1), bidirectional marks, embeddings, overrides and
/// isolates, zero-width characters and other invisible format characters (which a
/// file system may ignore in a name: `.h\u{200c}sm`).
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{034f}'
                | '\u{061c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff0}'..='\u{fff8}'
        )
}

fn encode_into(out: &mut String, value: &str, encoding: Encoding) {
    match encoding {
        Encoding::Raw => out.push_str(value),
        Encoding::Url => {
            for b in value.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self::literal(s)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// The string [`Text::display`] gives: secrets as their labels, never values.
impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_plain() {
            // Most texts are plain, and shown as they are (plans show hundreds of
            // thousands of them): no need to build the display string.
            Some(plain) if !plain.contains('$') && !needs_escape(plain) => s.serialize_str(plain),
            _ => s.serialize_str(&self.display()),
        }
    }
}

/// Reads a text's pieces (secrets as ids and labels). Nothing hsm prints reads back
/// (a display string can't tell a reference from literal text); this is what the
/// plan's types need to derive `Deserialize`.
impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_pieces(SmallVec::<[Piece; 1]>::deserialize(d)?))
    }
}

/// What [`Text::expose`] needs besides the environment's secrets: the values only the
/// executing host knows.
pub trait ResolveRefs {
    /// The value of a generated secret of the service being executed.
    fn generated(&self, name: &str) -> Result<Sensitive, String>;
    /// The host port a container port of the service is published on.
    fn host_port(&self, container: &str, port: u16) -> Result<u16, String>;
}

/// A [`ResolveRefs`] for texts that may only hold environment secrets.
pub struct NoRefs;

impl ResolveRefs for NoRefs {
    fn generated(&self, name: &str) -> Result<Sensitive, String> {
        Err(format!("generated secret `{name}` is not available here"))
    }
    fn host_port(&self, container: &str, port: u16) -> Result<u16, String> {
        Err(format!("the host port of `{container}:{port}` is not available here"))
    }
}

/// A secret value. It has no `Display`, its `Debug` is redacted, and it is not
/// `Serialize`: the only way out is [`Sensitive::expose`], which says so at the call site.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that hands it over (a container's env, a
    /// process's env).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Consumes the wrapper and returns the value.
    pub fn into_exposed(self) -> String {
        self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(<redacted>)")
    }
}

/// The values of the secrets read during one run, by [`SecretId`].
#[derive(Clone, Debug, Default)]
pub struct SecretStore {
    values: Vec<Sensitive>,
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a value and returns its id.
    pub fn insert(&mut self, value: Sensitive) -> SecretId {
        self.values.push(value);
        SecretId(u32::try_from(self.values.len() - 1).expect("fewer than 2^32 secrets"))
    }

    /// Whether the store holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The value of a secret.
    pub fn get(&self, id: SecretId) -> Option<&Sensitive> {
        self.values.get(id.0 as usize)
    }

    /// Every value, for tests that search outputs for leaks.
    pub fn values(&self) -> impl Iterator<Item = &Sensitive> {
        self.values.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shows_references_never_values() {
        let mut store = SecretStore::new();
        let id = store.insert(Sensitive::new("s3cr3t".into()));
        let t = Text::from_pieces([
            Piece::Lit("https://user:".into()),
            Piece::Secret { id, label: "${PASS}".into(), encoding: Encoding::Url },
            Piece::Lit("@host/$x".into()),
        ]);
        assert_eq!(t.display(), "https://user:${PASS}@host/$$x");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"https://user:${PASS}@host/$$x\"");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert_eq!(t.expose(&store, &NoRefs).unwrap().expose(), "https://user:s3cr3t@host/$x");
    }

    #[test]
    fn url_encoding_escapes_reserved_bytes() {
        let mut store = SecretStore::new();
        let id = store.insert(Sensitive::new("p@ss:w/rd é".into()));
        let t = Text::from_pieces([Piece::Secret { id, label: "${P}".into(), encoding: Encoding::Url }]);
        assert_eq!(t.expose(&store, &NoRefs).unwrap().expose(), "p%40ss%3Aw%2Frd%20%C3%A9");
        assert_eq!(format!("{:?}", store.get(id).unwrap()), "Sensitive(<redacted>)");
    }

    #[test]
    fn terminal_controls_are_shown_escaped_in_text_and_json() {
        let t = Text::literal("\u{1b}]0;owned\u{7}\u{1b}[2J\r all good\nPATH=/x \u{202e}gpj.exe");
        let shown = t.display();
        assert_eq!(shown, "\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\r all good\\nPATH=/x \\u{202e}gpj.exe");
        // References a plugin named show escaped too.
        let port = Text::from_pieces([Piece::HostPort { container: "\u{1b}[2Jx".into(), port: 1 }]);
        assert_eq!(port.display(), "${hsm:port:\\u{1b}[2Jx:1}");
        assert_eq!(printable(".h\u{200c}sm"), ".h\\u{200c}sm", "zero-width characters are shown");
        assert!(!shown.chars().any(|c| c.is_control()));
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, serde_json::to_string(&shown).unwrap(), "JSON shows the same escapes");
        assert_eq!(printable("plain é ✓"), "plain é ✓");
        assert!(matches!(printable("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn adjacent_literals_join() {
        let t = Text::from_pieces([Piece::Lit("a".into()), Piece::Lit(String::new()), Piece::Lit("b".into())]);
        assert_eq!(t.as_plain(), Some("ab"));
    }

    #[test]
    fn plain_texts_print_as_written_with_dollars_doubled() {
        assert_eq!(serde_json::to_string(&Text::literal("plain")).unwrap(), r#""plain""#);
        assert_eq!(serde_json::to_string(&Text::literal("a$b")).unwrap(), r#""a$$b""#);
        assert_eq!(serde_json::to_string(&Text::default()).unwrap(), r#""""#);
    }

    #[test]
    fn pieces_read_back_joined() {
        let read = |json: &str| serde_json::from_str::<Text>(json).unwrap();
        assert_eq!(read(r#"[{"Lit":"a"},{"Lit":""},{"Lit":"b"}]"#).pieces(), [Piece::Lit("ab".into())]);
        assert_eq!(read(r#"[{"Lit":""}]"#).pieces(), []);
        let t = Text::from_pieces([
            Piece::Lit("x".into()),
            Piece::Secret { id: SecretId(2), label: "${S}".into(), encoding: Encoding::Raw },
            Piece::Lit("y".into()),
        ]);
        assert_eq!(read(&serde_json::to_string(t.pieces()).unwrap()), t);
    }
}
