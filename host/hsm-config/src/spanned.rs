//! Where a value was written. serde-saphyr reports the location of every node it
//! deserializes through its `Spanned<T>`; this wrapper keeps that location in a form
//! that does not depend on the YAML crate, and gives the JSON Schema of the value it
//! wraps so the schema is derived from the same types that parse the files.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use hsm_model::{FileId, Span};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// A position in a YAML file as the parser saw it: 1-based line and column, byte
/// offset and length when known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Loc {
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column in characters (0 when unknown).
    pub column: u32,
    /// Byte offset of the node's first byte (for quoted scalars, the opening quote).
    pub start: usize,
    /// Length in bytes of the node's text (0 when unknown).
    pub len: usize,
}

impl Loc {
    /// The location as a [`Span`] in `file`.
    pub fn span(&self, file: FileId) -> Span {
        Span { file, start: self.start, len: self.len, line: self.line.max(1), column: self.column.max(1) }
    }

    fn from_saphyr(loc: serde_saphyr::Location) -> Self {
        let span = loc.span();
        Self {
            line: u32::try_from(loc.line()).unwrap_or(u32::MAX),
            column: u32::try_from(loc.column()).unwrap_or(u32::MAX),
            start: span.byte_offset().and_then(|o| usize::try_from(o).ok()).unwrap_or(0),
            len: span.byte_len().and_then(|o| usize::try_from(o).ok()).unwrap_or(0),
        }
    }
}

/// A value and where it was written.
///
/// Equality, ordering and hashing look at the value only, so a `Spanned` name can key
/// a map and be looked up by any other spelling of the same name.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub loc: Loc,
}

impl<T> Spanned<T> {
    /// A value with a location.
    pub fn new(value: T, loc: Loc) -> Self {
        Self { value, loc }
    }

    /// The location as a [`Span`] in `file`.
    pub fn span(&self, file: FileId) -> Span {
        self.loc.span(file)
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Spanned<T> {}

impl<T: Hash> Hash for Spanned<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Self { value: s.value, loc: Loc::from_saphyr(s.referenced) })
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
