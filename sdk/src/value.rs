//! Parameter trees: what packages ask of a service, its defaults, a profile's
//! settings, the merged configuration. Strings are [`Text`], so secrets can sit
//! anywhere in a tree as references.

use crate::text::Text;

/// A YAML-like value.
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
    /// A mapping, in the order written.
    Map(Map),
}

/// A mapping with string keys that keeps the order keys were inserted in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    entries: Vec<(String, Value)>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// A map of entries whose keys are known to be distinct (the host's).
    pub(crate) fn from_distinct(entries: Vec<(String, Value)>) -> Self {
        Self { entries }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing a value already there (which keeps its place).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut m = Map::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl Value {
    /// A map from pairs.
    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Self {
        Self::Map(entries.into_iter().collect())
    }

    /// The map, when this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Self::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The entry `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().and_then(|m| m.get(key))
    }

    /// The text, when this is a string.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Self::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The string, when this is a string without references.
    pub fn as_str(&self) -> Option<&str> {
        self.as_text().and_then(Text::as_plain)
    }

    /// The integer, when this is one (or a plain string holding one).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Text(t) => t.as_plain().and_then(|s| s.trim().parse().ok()),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items, when this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Self::List(items) => Some(items),
            _ => None,
        }
    }

    /// `get(key)` as a plain string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// `get(key)` as a text.
    pub fn get_text(&self, key: &str) -> Option<&Text> {
        self.get(key).and_then(Value::as_text)
    }

    /// A scalar written as a text: strings as they are (references included),
    /// numbers and booleans in their usual form. `version: 16` and `version: "16"`
    /// both give `16`.
    pub fn to_text(&self) -> Option<Text> {
        match self {
            Self::Text(t) => Some(t.clone()),
            Self::Int(i) => Some(Text::lit(i.to_string())),
            Self::Float(f) => Some(Text::lit(f.to_string())),
            Self::Bool(b) => Some(Text::lit(b.to_string())),
            _ => None,
        }
    }

    /// The keys of a map that are not in `known` (nor the universal
    /// [`crate::ENV_NAMES`]), for rejecting parameters a plugin doesn't read.
    pub fn unknown_keys<'a>(&'a self, known: &[&str]) -> Vec<&'a str> {
        self.as_map()
            .map(|m| m.keys().filter(|k| *k != crate::ENV_NAMES && !known.contains(k)).collect())
            .unwrap_or_default()
    }

    /// A short name of the value's type, for messages.
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
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(Text::lit(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(Text::lit(s))
    }
}

impl From<Text> for Value {
    fn from(t: Text) -> Self {
        Self::Text(t)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Self::List(items.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_order_and_replaces_in_place() {
        let mut m = Map::new();
        m.insert("b", 1.into());
        m.insert("a", 2.into());
        m.insert("b", 3.into());
        assert_eq!(m.keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(m.get("b"), Some(&Value::Int(3)));
    }

    #[test]
    fn scalars_read_as_text_and_int() {
        assert_eq!(Value::Int(16).to_text().unwrap().as_plain(), Some("16"));
        assert_eq!(Value::from("16").as_int(), Some(16));
        assert_eq!(Value::from("x").as_int(), None);
    }
}
