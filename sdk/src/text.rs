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

    /// The same text with secrets (and generated secrets) percent-encoded, for use
    /// inside a URL. Literal parts are left as they are: encode those yourself.
    #[must_use]
    pub fn url_encoded(mut self) -> Self {
        for p in &mut self.pieces {
            match p {
                Piece::Secret(s) => s.encoding = Encoding::Url,
                Piece::Generated { encoding, .. } => *encoding = Encoding::Url,
                Piece::Lit(_) | Piece::HostPort { .. } => {}
            }
        }
        self
    }
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
}
