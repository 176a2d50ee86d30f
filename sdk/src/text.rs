//! Text that may hold references the host fills in when it executes: secrets (by an
//! opaque handle; the plugin never sees the value), generated secrets, and host ports.

use std::fmt;
use std::ops::{Add, AddAssign};

/// How a secret's value is written where it is placed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// As it is.
    #[default]
    Raw,
    /// Percent-encoded, for a URL's user-info, path or query.
    Url,
}

/// A secret, by the handle the host gave the plugin in this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SecretRef {
    pub(crate) handle: u32,
    pub(crate) encoding: Encoding,
}

/// One part of a [`Text`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Piece {
    /// Literal text.
    Lit(String),
    /// A secret from the environment or `.env`.
    Secret(SecretRef),
    /// A secret the host generates for this service and derives again on every run.
    Generated {
        /// Its name within the service.
        name: String,
        /// How it is written.
        encoding: Encoding,
    },
    /// The host port a container port of this service is published on.
    HostPort {
        /// The container's short name.
        container: String,
        /// The port inside the container.
        port: u16,
    },
}

/// A string made of literal parts and references.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Text {
    pieces: Vec<Piece>,
}

impl Text {
    /// An empty text.
    pub fn new() -> Self {
        Self::default()
    }

    /// A literal text.
    pub fn lit(s: impl Into<String>) -> Self {
        let mut t = Self::new();
        t.push(Piece::Lit(s.into()));
        t
    }

    /// A secret that the host generates for this service (letters and digits, 32
    /// characters) and derives again on every run, so it is stable without being
    /// stored. `name` scopes it within the service.
    pub fn generated(name: impl Into<String>) -> Self {
        Self { pieces: vec![Piece::Generated { name: name.into(), encoding: Encoding::Raw }] }
    }

    /// The host port that `port` of this service's container `container` is
    /// published on.
    pub fn host_port(container: impl Into<String>, port: u16) -> Self {
        Self { pieces: vec![Piece::HostPort { container: container.into(), port }] }
    }

    /// Joins texts.
    pub fn concat(parts: impl IntoIterator<Item = Text>) -> Self {
        let mut out = Self::new();
        for part in parts {
            out += part;
        }
        out
    }

    /// Appends a piece (joining adjacent literals).
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

    /// The pieces, taken.
    pub(crate) fn into_pieces(self) -> Vec<Piece> {
        self.pieces
    }

    /// The string, when the text has no references.
    pub fn as_plain(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The same text percent-encoded as a whole, for one component of a URL (a
    /// user, a password, a path segment, a query value): literal parts are encoded
    /// here, secrets (and generated secrets) by the host when it fills them in, so
    /// `a@b`, `${PASS}` holding `p:w/d` and `x${PASS}y` all come out right. Every
    /// byte but ASCII letters, digits and `-._~` is encoded.
    #[must_use]
    pub fn url_encoded(self) -> Self {
        let mut out = Text::new();
        for p in self.pieces {
            out.push(match p {
                Piece::Lit(s) => Piece::Lit(percent_encode(&s)),
                Piece::Secret(s) => Piece::Secret(SecretRef { encoding: Encoding::Url, ..s }),
                Piece::Generated { name, .. } => Piece::Generated { name, encoding: Encoding::Url },
                port @ Piece::HostPort { .. } => port,
            });
        }
        out
    }

    /// A whole URL a user wrote (an external profile's `url`), with the secrets in
    /// its user-info (`redis://:${PASS}@cache:6379`) percent-encoded when the host
    /// fills them in, so a password holding `@`, `:` or `/` can't break the URL.
    /// Literal parts are the user's and are kept as written, as are secrets
    /// elsewhere in the URL.
    #[must_use]
    pub fn url_userinfo_encoded(self) -> Self {
        // The user-info runs from the end of `scheme://` to the last `@` before the
        // authority ends (at `/`, `?` or `#`); only literal parts say where.
        let mut state = 0; // 0: before `://`, 1: in the authority, 2: after it
        let mut pending: Vec<usize> = Vec::new(); // secrets seen in the authority
        let mut encode: Vec<usize> = Vec::new();
        for (i, p) in self.pieces.iter().enumerate() {
            match p {
                Piece::Lit(l) => {
                    let mut rest = l.as_str();
                    if state == 0 {
                        match rest.find("://") {
                            Some(at) => {
                                state = 1;
                                rest = &rest[at + 3..];
                            }
                            None => continue,
                        }
                    }
                    if state == 1 {
                        let end = rest.find(['/', '?', '#']);
                        let authority = &rest[..end.unwrap_or(rest.len())];
                        if authority.contains('@') {
                            encode.append(&mut pending);
                        }
                        if end.is_some() {
                            state = 2;
                        }
                    }
                }
                Piece::Secret(_) | Piece::Generated { .. } if state == 1 => pending.push(i),
                _ => {}
            }
        }
        let mut out = self;
        for i in encode {
            match &mut out.pieces[i] {
                Piece::Secret(s) => s.encoding = Encoding::Url,
                Piece::Generated { encoding, .. } => *encoding = Encoding::Url,
                _ => {}
            }
        }
        out
    }

    /// The same text as the host part of a URL: an IPv6 address written plainly
    /// (`::1`, `fd00::5`) is put in brackets; names and IPv4 addresses are as
    /// they are. (A host that is a secret is filled in as it is.)
    #[must_use]
    pub fn url_host(self) -> Self {
        match self.as_plain() {
            Some(h) if h.contains(':') && !h.starts_with('[') => Text::lit(format!("[{h}]")),
            _ => self,
        }
    }
}

/// `s` with every byte but ASCII letters, digits and `-._~` percent-encoded (RFC
/// 3986's unreserved characters), as the host encodes secrets.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Shows the text the way hsm's plan does: literal `$` doubled, references as
/// `${hsm:secret:N}`, `${hsm:generated:NAME}` and `${hsm:port:CONTAINER:PORT}`.
impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => f.write_str(&s.replace('$', "$$"))?,
                Piece::Secret(s) => write!(f, "${{hsm:secret:{}}}", s.handle)?,
                Piece::Generated { name, .. } => write!(f, "${{hsm:generated:{name}}}")?,
                Piece::HostPort { container, port } => write!(f, "${{hsm:port:{container}:{port}}}")?,
            }
        }
        Ok(())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Self::lit(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self::lit(s)
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Self {
        Self::lit(s.as_str())
    }
}

impl From<&Text> for Text {
    fn from(t: &Text) -> Self {
        t.clone()
    }
}

macro_rules! text_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Text {
            fn from(n: $t) -> Self {
                Self::lit(n.to_string())
            }
        }
    )*};
}
text_from_int!(u16, u32, u64, i32, i64, usize);

impl AddAssign<Text> for Text {
    fn add_assign(&mut self, rhs: Text) {
        for p in rhs.pieces {
            self.push(p);
        }
    }
}

impl AddAssign<&str> for Text {
    fn add_assign(&mut self, rhs: &str) {
        self.push(Piece::Lit(rhs.to_string()));
    }
}

impl<T: Into<Text>> Add<T> for Text {
    type Output = Text;
    fn add(mut self, rhs: T) -> Text {
        self += rhs.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenation_joins_literals_and_keeps_references() {
        let secret = Text { pieces: vec![Piece::Secret(SecretRef { handle: 3, encoding: Encoding::Raw })] };
        let t = crate::text!("a", "b$", secret.clone().url_encoded(), ":", 5432u16);
        assert_eq!(t.pieces().len(), 3);
        assert_eq!(t.to_string(), "ab$$${hsm:secret:3}:5432");
        assert_eq!(t.pieces()[1], Piece::Secret(SecretRef { handle: 3, encoding: Encoding::Url }));
        assert_eq!(Text::lit("x").as_plain(), Some("x"));
        assert_eq!(secret.as_plain(), None);
    }

    #[test]
    fn a_url_component_is_encoded_as_a_whole() {
        let secret = Text { pieces: vec![Piece::Secret(SecretRef { handle: 1, encoding: Encoding::Raw })] };
        let t = crate::text!("a@b:", secret, " é/?#%").url_encoded();
        assert_eq!(t.to_string(), "a%40b%3A${hsm:secret:1}%20%C3%A9%2F%3F%23%25");
        assert_eq!(t.pieces()[1], Piece::Secret(SecretRef { handle: 1, encoding: Encoding::Url }));
        assert_eq!(Text::lit("ok-._~1").url_encoded().as_plain(), Some("ok-._~1"));
    }

    #[test]
    fn secrets_in_a_urls_user_info_are_encoded_and_nowhere_else() {
        let secret = |handle| Text { pieces: vec![Piece::Secret(SecretRef { handle, encoding: Encoding::Raw })] };
        let encoded = |t: &Text| -> Vec<u32> {
            t.pieces()
                .iter()
                .filter_map(|p| match p {
                    Piece::Secret(s) if s.encoding == Encoding::Url => Some(s.handle),
                    _ => None,
                })
                .collect()
        };
        let url = crate::text!("redis://", secret(1), ":", secret(2), "@cache:6379/", secret(3), "?k=", secret(4));
        assert_eq!(encoded(&url.url_userinfo_encoded()), [1, 2]);
        // No user-info: nothing is encoded (the host may be a secret).
        let url = crate::text!("https://", secret(1), ":6333/x");
        assert_eq!(encoded(&url.url_userinfo_encoded()), Vec::<u32>::new());
        // A secret that is the whole URL is the user's to write.
        assert_eq!(encoded(&secret(1).url_userinfo_encoded()), Vec::<u32>::new());
        let url = crate::text!("http://u:", secret(1), "@h");
        assert_eq!(encoded(&url.url_userinfo_encoded()), [1]);
    }

    #[test]
    fn ipv6_hosts_get_brackets() {
        assert_eq!(Text::lit("::1").url_host().as_plain(), Some("[::1]"));
        assert_eq!(Text::lit("[::1]").url_host().as_plain(), Some("[::1]"));
        assert_eq!(Text::lit("db.example").url_host().as_plain(), Some("db.example"));
        assert_eq!(Text::lit("10.0.0.5").url_host().as_plain(), Some("10.0.0.5"));
    }
}
