//! Parameter trees: what a package asks of a service, a service's defaults, a
//! profile's connection settings. Strings are [`Text`], so a tree can carry secret
//! references anywhere without ever holding a value.

use indexmap::IndexMap;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::text::Text;

/// A YAML-like value whose strings may hold secret references.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// `null` or absent.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Text(Text),
    /// A sequence.
    List(Vec<Value>),
    /// A mapping with string keys, in the order written.
    Map(IndexMap<String, Value>),
}

impl Value {
    /// An empty map.
    pub fn map() -> Self {
        Self::Map(IndexMap::new())
    }

    /// The entry `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Self::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// The map's entries, when this is a map.
    pub fn as_map(&self) -> Option<&IndexMap<String, Value>> {
        match self {
            Self::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The text, when this is a string.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The string, when this is a string without references.
    pub fn as_plain_str(&self) -> Option<&str> {
        self.as_text().and_then(Text::as_plain)
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "boolean",
            Self::Int(_) => "integer",
            Self::Float(_) => "number",
            Self::Text(_) => "string",
            Self::List(_) => "list",
            Self::Map(_) => "map",
        }
    }

    /// Whether any string in the tree holds a secret.
    pub fn has_secret(&self) -> bool {
        match self {
            Self::Text(t) => t.has_secret(),
            Self::List(items) => items.iter().any(Self::has_secret),
            Self::Map(m) => m.values().any(Self::has_secret),
            _ => false,
        }
    }

    /// Overlays `other` on `self`: maps merge key by key (recursively), anything else
    /// is replaced. Used for "defaults, then what a profile or project says".
    pub fn overlay(&mut self, other: &Value) {
        match (self, other) {
            (Self::Map(base), Self::Map(over)) => {
                for (k, v) in over {
                    match base.get_mut(k) {
                        Some(existing) => existing.overlay(v),
                        None => {
                            base.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            (slot, other) => *slot = other.clone(),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(Text::literal(s))
    }
}

/// What a [`Value`] reads back from: each node tagged with its variant, since a
/// text's pieces would otherwise read as a list.
#[derive(Deserialize)]
enum Owned {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Text),
    List(Vec<Value>),
    Map(IndexMap<String, Value>),
}

/// As YAML or JSON would write it, texts as [`Text`] shows them.
impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => s.serialize_unit(),
            Self::Bool(b) => s.serialize_bool(*b),
            Self::Int(i) => s.serialize_i64(*i),
            Self::Float(f) => s.serialize_f64(*f),
            Self::Text(t) => t.serialize(s),
            Self::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    // Keys a plugin returned are shown as safely as texts.
                    map.serialize_entry(&*crate::text::printable(k), v)?;
                }
                map.end()
            }
        }
    }
}

/// Reads each node tagged with its variant (see `Owned`): what the plan's types
/// need to derive `Deserialize`. Nothing hsm prints reads back.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Owned::deserialize(d)? {
            Owned::Null => Self::Null,
            Owned::Bool(b) => Self::Bool(b),
            Owned::Int(i) => Self::Int(i),
            Owned::Float(f) => Self::Float(f),
            Owned::Text(t) => Self::Text(t),
            Owned::List(items) => Self::List(items),
            Owned::Map(m) => Self::Map(m),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_merges_maps_and_replaces_leaves() {
        let mut base = Value::Map(IndexMap::from([
            ("version".to_string(), Value::from("16")),
            ("opts".to_string(), Value::Map(IndexMap::from([("a".to_string(), Value::Int(1))]))),
        ]));
        let over = Value::Map(IndexMap::from([
            ("version".to_string(), Value::from("15")),
            ("opts".to_string(), Value::Map(IndexMap::from([("b".to_string(), Value::Int(2))]))),
        ]));
        base.overlay(&over);
        assert_eq!(serde_json::to_string(&base).unwrap(), r#"{"version":"15","opts":{"a":1,"b":2}}"#);
    }
}
