//! Value trees as `hsm:plugin@0.2.0` carries them: one byte list per tree (the
//! format is documented on `requests.tree` in `wit/0.2.0/plugin.wit`), written
//! straight from hsm's values and read straight back into them, with the checks
//! every plugin answer gets. One copy each way replaces 0.1.0's lowering of every
//! node, string and list on its own.

use std::ops::Range;

use hsm_model::text::Encoding;
use hsm_model::{Piece, Text, Value};
use indexmap::IndexMap;

use super::{Budget, Handles, OVERHEAD, is_name, malformed};
use crate::host::CallErrorKind;

/// Value tags.
const NULL: u8 = 0x00;
const FALSE: u8 = 0x01;
const TRUE: u8 = 0x02;
const INT: u8 = 0x03;
const FLOAT: u8 = 0x04;
const STR: u8 = 0x05;
const TEXT: u8 = 0x06;
const LIST: u8 = 0x07;
const MAP: u8 = 0x08;

/// Piece tags.
const LIT: u8 = 0x00;
const SECRET: u8 = 0x01;
const GENERATED: u8 = 0x02;
const HOST_PORT: u8 = 0x03;

/// How deep values may nest, as in 0.1.0.
const MAX_DEPTH: u32 = 64;

/// The most items a list or map reserves room for before they are read: a count
/// is only a claim, and nested claims must not add up to a large allocation.
const MAX_RESERVED: usize = 4096;

/// Appends `v` to `out` as one tree; secrets become this call's handles. Returns
/// the tree's bytes in `out`, so that a request's trees share one buffer.
pub(crate) fn encode(v: &Value, handles: &mut Handles, out: &mut Vec<u8>) -> Range<usize> {
    let start = out.len();
    value(v, handles, out);
    start..out.len()
}

fn value(v: &Value, handles: &mut Handles, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
        Value::Int(i) => {
            out.push(INT);
            uleb(out, ((*i << 1) ^ (*i >> 63)) as u64);
        }
        Value::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Text(t) => match t.pieces() {
            [Piece::Lit(s)] => {
                out.push(STR);
                string(out, s);
            }
            pieces => {
                out.push(TEXT);
                uleb(out, pieces.len() as u64);
                for p in pieces {
                    piece(p, handles, out);
                }
            }
        },
        Value::List(items) => {
            out.push(LIST);
            uleb(out, items.len() as u64);
            for item in items {
                value(item, handles, out);
            }
        }
        Value::Map(m) => {
            out.push(MAP);
            uleb(out, m.len() as u64);
            for (key, item) in m {
                string(out, key);
                value(item, handles, out);
            }
        }
    }
}

fn piece(p: &Piece, handles: &mut Handles, out: &mut Vec<u8>) {
    match p {
        Piece::Lit(s) => {
            out.push(LIT);
            string(out, s);
        }
        Piece::Secret { id, label, encoding: e } => {
            out.push(SECRET);
            uleb(out, u64::from(handles.handle(*id, label)));
            out.push(encoding(*e));
        }
        Piece::Generated { name, encoding: e } => {
            out.push(GENERATED);
            string(out, name);
            out.push(encoding(*e));
        }
        Piece::HostPort { container, port } => {
            out.push(HOST_PORT);
            string(out, container);
            uleb(out, u64::from(*port));
        }
    }
}

fn encoding(e: Encoding) -> u8 {
    match e {
        Encoding::Raw => 0,
        Encoding::Url => 1,
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    uleb(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn uleb(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a tree a plugin returned, refusing what a well-behaved plugin never
/// sends: a tag or encoding that doesn't exist, a count or length past the end,
/// text that isn't UTF-8, a handle it was not given, a key twice in one map,
/// nesting deeper than 64, bytes after the value. Everything counts against the
/// output budget as 0.1.0's nodes, pieces and strings do (a value as a node, each
/// string its length and a node's worth, a secret a node's worth).
pub(crate) fn decode(bytes: &[u8], handles: &Handles, budget: &mut Budget) -> Result<Value, CallErrorKind> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mut reader = Reader { bytes, pos: 0, handles, budget };
    let v = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(malformed(format!("a tree has bytes after its value ({})", bytes.len() - reader.pos)));
    }
    Ok(v)
}

struct Reader<'a, 'b> {
    bytes: &'a [u8],
    pos: usize,
    handles: &'b Handles,
    budget: &'b mut Budget,
}

fn truncated() -> CallErrorKind {
    malformed("a tree ends in the middle of a value")
}

impl<'a> Reader<'a, '_> {
    fn byte(&mut self) -> Result<u8, CallErrorKind> {
        let b = *self.bytes.get(self.pos).ok_or_else(truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn uleb(&mut self) -> Result<u64, CallErrorKind> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                break;
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(malformed("a tree holds a number larger than 64 bits"))
    }

    /// A count of items that each take at least `min_bytes`: never more than what
    /// is left can hold.
    fn count(&mut self, min_bytes: u64) -> Result<usize, CallErrorKind> {
        let n = self.uleb()?;
        if n.saturating_mul(min_bytes) > (self.bytes.len() - self.pos) as u64 {
            return Err(truncated());
        }
        Ok(n as usize)
    }

    /// Room for `n` items about to be read, within what the budget could still
    /// pay for and [`MAX_RESERVED`].
    fn reserve(&self, n: usize) -> usize {
        n.min(MAX_RESERVED).min(self.budget.limit.saturating_sub(self.budget.used) / OVERHEAD)
    }

    fn str(&mut self) -> Result<&'a str, CallErrorKind> {
        let len = self.count(1)?;
        let bytes = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        let s = std::str::from_utf8(bytes).map_err(|_| malformed("a tree holds a string that is not UTF-8"))?;
        self.budget.take_str(s)?;
        Ok(s)
    }

    fn encoding(&mut self) -> Result<Encoding, CallErrorKind> {
        match self.byte()? {
            0 => Ok(Encoding::Raw),
            1 => Ok(Encoding::Url),
            other => Err(malformed(format!("a tree holds an unknown encoding {other:#04x}"))),
        }
    }

    fn value(&mut self, depth: u32) -> Result<Value, CallErrorKind> {
        if depth > MAX_DEPTH {
            return Err(malformed("a value is nested deeper than 64 levels"));
        }
        self.budget.take(OVERHEAD)?;
        Ok(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => {
                let z = self.uleb()?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FLOAT => {
                let end = self.pos + 8;
                let bytes = self.bytes.get(self.pos..end).ok_or_else(truncated)?;
                self.pos = end;
                Value::Float(f64::from_le_bytes(bytes.try_into().expect("eight bytes")))
            }
            STR => Value::Text(Text::literal(self.str()?)),
            TEXT => {
                // A piece takes at least two bytes: a tag and a length or handle.
                let n = self.count(2)?;
                let mut text = Text::default();
                for _ in 0..n {
                    text.push(self.piece()?);
                }
                Value::Text(text)
            }
            LIST => {
                let n = self.count(1)?;
                let mut items = Vec::with_capacity(self.reserve(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::List(items)
            }
            MAP => {
                // An entry takes at least two bytes: a key's length and a tag.
                let n = self.count(2)?;
                let mut map = IndexMap::with_capacity(self.reserve(n));
                for _ in 0..n {
                    let key = self.str()?;
                    let item = self.value(depth + 1)?;
                    if map.insert(key.to_string(), item).is_some() {
                        return Err(malformed(format!("key `{}` appears twice in a map", key.escape_debug())));
                    }
                }
                Value::Map(map)
            }
            other => return Err(malformed(format!("a tree holds an unknown tag {other:#04x}"))),
        })
    }

    fn piece(&mut self) -> Result<Piece, CallErrorKind> {
        Ok(match self.byte()? {
            LIT => Piece::Lit(self.str()?.to_string()),
            SECRET => {
                self.budget.take(OVERHEAD)?;
                let handle = self.uleb()?;
                let (id, label) = u32::try_from(handle)
                    .ok()
                    .and_then(|h| self.handles.get(h))
                    .ok_or_else(|| malformed(format!("secret handle {handle} was not given to it in this call")))?;
                Piece::Secret { id: *id, label: label.clone(), encoding: self.encoding()? }
            }
            GENERATED => {
                let name = self.str()?;
                if !is_name(name, 64) {
                    return Err(malformed(format!(
                        "generated secret name `{}` is not lowercase letters, digits and `-`",
                        name.escape_debug()
                    )));
                }
                Piece::Generated { name: name.to_string(), encoding: self.encoding()? }
            }
            HOST_PORT => {
                let container = super::container_name(self.str()?.to_string())?;
                let port = self.uleb()?;
                let port = u16::try_from(port).map_err(|_| malformed(format!("port {port} is not a port")))?;
                Piece::HostPort { container, port }
            }
            other => return Err(malformed(format!("a tree holds an unknown piece tag {other:#04x}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::SecretId;

    use super::*;

    fn secret(id: u32, label: &str) -> Piece {
        Piece::Secret { id: SecretId(id), label: label.into(), encoding: Encoding::Url }
    }

    fn sample() -> Value {
        let mut map = IndexMap::new();
        map.insert("null".to_string(), Value::Null);
        map.insert("yes".to_string(), Value::Bool(true));
        map.insert("no".to_string(), Value::Bool(false));
        map.insert(
            "ints".to_string(),
            Value::List(vec![
                Value::Int(0),
                Value::Int(-1),
                Value::Int(300),
                Value::Int(i64::MIN),
                Value::Int(i64::MAX),
            ]),
        );
        map.insert("float".to_string(), Value::Float(-1.5e300));
        map.insert("plain".to_string(), Value::Text(Text::literal("héllo")));
        map.insert("empty".to_string(), Value::Text(Text::default()));
        map.insert(
            "mixed".to_string(),
            Value::Text(Text::from_pieces([
                Piece::Lit("postgres://app:".into()),
                secret(7, "${DB_PASSWORD}"),
                Piece::Lit("@127.0.0.1:".into()),
                Piece::HostPort { container: "server".into(), port: 5432 },
                Piece::Generated { name: "admin-password".into(), encoding: Encoding::Raw },
            ])),
        );
        let mut inner = IndexMap::new();
        inner.insert("again".to_string(), Value::Text(Text::from_pieces([secret(7, "${DB_PASSWORD}")])));
        map.insert("nested".to_string(), Value::List(vec![Value::Map(inner), Value::List(vec![])]));
        Value::Map(map)
    }

    #[test]
    fn values_survive_the_round_trip_with_secrets_as_handles() {
        let mut handles = Handles::default();
        let mut out = vec![0xff];
        let range = encode(&sample(), &mut handles, &mut out);
        assert_eq!(range.start, 1, "a tree is appended to what the buffer holds");
        let bytes = &out[range];
        // The value never crosses: the secret is handle 0, its one use per call.
        assert_eq!(handles.secrets.len(), 1);
        assert!(!bytes.windows(4).any(|w| w == b"DB_P"), "labels stay with the host");
        let mut budget = Budget::new(1 << 20);
        assert_eq!(decode(bytes, &handles, &mut budget).unwrap(), sample());
        assert!(budget.used > bytes.len(), "everything read is counted");
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let mut map = IndexMap::new();
        map.insert("a".to_string(), Value::Int(-2));
        map.insert("b".to_string(), Value::List(vec![Value::Text(Text::literal("x")), Value::Null]));
        map.insert(
            "c".to_string(),
            Value::Text(Text::from_pieces([secret(3, "${S}"), Piece::HostPort { container: "s".into(), port: 300 }])),
        );
        let mut handles = Handles::default();
        let mut out = Vec::new();
        encode(&Value::Map(map), &mut handles, &mut out);
        #[rustfmt::skip]
        let expected = [
            MAP, 3,
            1, b'a', INT, 3,
            1, b'b', LIST, 2, STR, 1, b'x', NULL,
            1, b'c', TEXT, 2, SECRET, 0, 1, HOST_PORT, 1, b's', 0xac, 0x02,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn empty_bytes_are_null() {
        assert_eq!(decode(&[], &Handles::default(), &mut Budget::new(100)).unwrap(), Value::Null);
    }

    #[test]
    fn what_the_format_allows_is_read() {
        let read = |bytes: &[u8]| decode(bytes, &Handles::default(), &mut Budget::new(1 << 20)).unwrap();
        // A one-literal text may be empty, and reads as the empty text.
        assert_eq!(read(&[STR, 0]), Value::Text(Text::default()));
        // Adjacent literals are joined, empty ones dropped.
        assert_eq!(read(&[TEXT, 3, LIT, 1, b'a', LIT, 0, LIT, 1, b'b']), Value::Text(Text::literal("ab")));
        // LEB128 may be padded (here 1 in three bytes), up to ten bytes.
        assert_eq!(read(&[INT, 0x82, 0x80, 0x00]), Value::Int(1));
        assert_eq!(read(&[INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Value::Int(i64::MIN));
        // A value inside 64 lists is fine; inside 65 it is refused.
        let nested =
            |levels: usize| -> Vec<u8> { std::iter::repeat_n([LIST, 1], levels).flatten().chain([NULL]).collect() };
        read(&nested(64));
        let error = decode(&nested(65), &Handles::default(), &mut Budget::new(1 << 20)).unwrap_err();
        assert!(error.to_string().contains("deeper than 64 levels"), "{error}");
    }

    /// Counts are claims: 60 nested maps each claiming 400,000 entries (in a
    /// buffer that could hold them) reserve little before the claims fail.
    #[test]
    fn forged_counts_reserve_little() {
        let mut bytes = Vec::new();
        for _ in 0..60 {
            bytes.push(MAP);
            uleb(&mut bytes, 400_000);
            bytes.push(0); // the empty key
        }
        bytes.resize(bytes.len() + 800_000, NULL);
        let error = decode(&bytes, &Handles::default(), &mut Budget::new(4 << 20)).unwrap_err();
        assert!(error.to_string().contains("key `` appears twice"), "{error}");
        let room = Reader { bytes: &[], pos: 0, handles: &Handles::default(), budget: &mut Budget::new(4 << 20) };
        assert_eq!(room.reserve(400_000), MAX_RESERVED);
        room.budget.used = (4 << 20) - 10 * OVERHEAD;
        assert_eq!(room.reserve(400_000), 10, "no more than the budget could pay for");
    }

    #[test]
    fn malformed_trees_are_refused() {
        let handles = Handles::default();
        let deep: Vec<u8> = std::iter::repeat_n([LIST, 1], 66).flatten().chain([NULL]).collect();
        let cases: &[(&[u8], &str)] = &[
            (&[0x09], "unknown tag 0x09"),
            (&[LIST, 2, NULL], "ends in the middle"),
            (&[LIST, 0xff, 0xff, 0xff, 0xff, 0x0f], "ends in the middle"),
            (&[STR, 5, b'a'], "ends in the middle"),
            (&[STR, 2, 0xc3, 0x28], "not UTF-8"),
            (&[FLOAT, 0, 0], "ends in the middle"),
            (&[INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], "larger than 64 bits"),
            (&[NULL, NULL], "bytes after its value (1)"),
            (&[MAP, 2, 1, b'k', NULL], "ends in the middle"),
            (&[TEXT, 2, SECRET, 0], "ends in the middle"),
            (&[MAP, 2, 1, b'k', NULL, 1, b'k', TRUE], "key `k` appears twice"),
            (&[TEXT, 1, SECRET, 0, 0], "secret handle 0 was not given"),
            (&[TEXT, 1, SECRET, 0xff, 0xff, 0xff, 0xff, 0x7f, 0], "was not given"),
            (&[TEXT, 1, GENERATED, 1, b'A', 0], "generated secret name `A`"),
            (&[TEXT, 1, GENERATED, 1, b'a', 2], "unknown encoding 0x02"),
            (&[TEXT, 1, HOST_PORT, 1, b's', 0x80, 0x80, 0x04], "is not a port"),
            (&[TEXT, 1, 0x04, 0], "unknown piece tag 0x04"),
            (&deep, "deeper than 64 levels"),
        ];
        for (bytes, expected) in cases {
            let error = decode(bytes, &handles, &mut Budget::new(1 << 20)).unwrap_err().to_string();
            assert!(error.contains(expected), "{bytes:x?}: {error}");
        }
    }

    #[test]
    fn output_beyond_the_budget_is_refused() {
        let mut handles = Handles::default();
        let mut out = Vec::new();
        encode(&Value::List(vec![Value::Text(Text::literal("x".repeat(1000)))]), &mut handles, &mut out);
        let error = decode(&out, &handles, &mut Budget::new(512)).unwrap_err();
        assert!(matches!(error, CallErrorKind::TooLarge(512)), "{error:?}");
    }
}
