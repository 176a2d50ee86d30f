//! Value trees as `hsm:plugin@0.2.0` carries them: one byte list per tree (the
//! format is documented on `requests.tree` in `wit/0.2.0/plugin.wit`), read
//! straight into the SDK's values and written straight from them.

use crate::text::{Encoding, Piece, SecretRef, Text};
use crate::value::{Map, Value};

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

/// Encodes a value, moving nothing: the bytes are the one copy the host reads.
pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    value(v, &mut out);
    out
}

fn value(v: &Value, out: &mut Vec<u8>) {
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
                    piece(p, out);
                }
            }
        },
        Value::List(items) => {
            out.push(LIST);
            uleb(out, items.len() as u64);
            for item in items {
                value(item, out);
            }
        }
        Value::Map(m) => {
            out.push(MAP);
            uleb(out, m.len() as u64);
            for (key, item) in m.iter() {
                string(out, key);
                value(item, out);
            }
        }
    }
}

fn piece(p: &Piece, out: &mut Vec<u8>) {
    match p {
        Piece::Lit(s) => {
            out.push(LIT);
            string(out, s);
        }
        Piece::Secret(s) => {
            out.push(SECRET);
            uleb(out, u64::from(s.handle));
            out.push(encoding(s.encoding));
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

/// Decodes a tree from the host. The host is trusted (its encoder is tested
/// against the same bytes as this one), but a malformed tree still yields `Null`,
/// the whole tree, rather than a panic; empty bytes are `Null` too.
pub(crate) fn decode(bytes: &[u8]) -> Value {
    let mut reader = Reader { bytes, pos: 0 };
    match reader.value(0) {
        Some(v) if reader.pos == bytes.len() => v,
        _ => Value::Null,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn uleb(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    /// A count of items of at least a byte each: never more than what is left.
    fn count(&mut self) -> Option<usize> {
        let n = usize::try_from(self.uleb()?).ok()?;
        (n <= self.bytes.len() - self.pos).then_some(n)
    }

    fn string(&mut self) -> Option<String> {
        let len = self.count()?;
        let s = std::str::from_utf8(&self.bytes[self.pos..self.pos + len]).ok()?;
        self.pos += len;
        Some(s.to_string())
    }

    fn encoding(&mut self) -> Option<Encoding> {
        match self.byte()? {
            0 => Some(Encoding::Raw),
            1 => Some(Encoding::Url),
            _ => None,
        }
    }

    fn value(&mut self, depth: u32) -> Option<Value> {
        if depth > 64 {
            return None;
        }
        Some(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => {
                let z = self.uleb()?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            FLOAT => {
                let bytes = self.bytes.get(self.pos..self.pos + 8)?;
                self.pos += 8;
                Value::Float(f64::from_le_bytes(bytes.try_into().ok()?))
            }
            STR => Value::Text(Text::lit(self.string()?)),
            TEXT => {
                let mut text = Text::new();
                for _ in 0..self.count()? {
                    text.push(self.piece()?);
                }
                Value::Text(text)
            }
            LIST => {
                let n = self.count()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::List(items)
            }
            MAP => {
                let n = self.count()?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.string()?;
                    entries.push((key, self.value(depth + 1)?));
                }
                // The host's maps have one entry per key already: no need to look
                // each key up again (which made large maps quadratic).
                Value::Map(Map::from_distinct(entries))
            }
            _ => return None,
        })
    }

    fn piece(&mut self) -> Option<Piece> {
        Some(match self.byte()? {
            LIT => Piece::Lit(self.string()?),
            SECRET => {
                let handle = u32::try_from(self.uleb()?).ok()?;
                Piece::Secret(SecretRef { handle, encoding: self.encoding()? })
            }
            GENERATED => Piece::Generated { name: self.string()?, encoding: self.encoding()? },
            HOST_PORT => Piece::HostPort { container: self.string()?, port: u16::try_from(self.uleb()?).ok()? },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_the_round_trip() {
        let mut mixed = Text::lit("postgres://app:");
        mixed.push(Piece::Secret(SecretRef { handle: 3, encoding: Encoding::Url }));
        mixed.push(Piece::Lit("@h:".into()));
        mixed.push(Piece::HostPort { container: "server".into(), port: 5432 });
        mixed.push(Piece::Generated { name: "pw".into(), encoding: Encoding::Raw });
        let value = Value::map([
            ("a", Value::List(vec![1.into(), (-300).into(), i64::MIN.into(), "x".into(), Value::Null])),
            ("b", Value::map([("c", true.into()), ("d", Value::Float(1.5)), ("e", false.into())])),
            ("mixed", Value::Text(mixed)),
            ("empty", Value::Text(Text::new())),
        ]);
        assert_eq!(decode(&encode(&value)), value);
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        // The same bytes the host's own codec test expects.
        let mut c = Text::new();
        c.push(Piece::Secret(SecretRef { handle: 0, encoding: Encoding::Url }));
        c.push(Piece::HostPort { container: "s".into(), port: 300 });
        let value =
            Value::map([("a", (-2).into()), ("b", Value::List(vec!["x".into(), Value::Null])), ("c", c.into())]);
        #[rustfmt::skip]
        let expected = [
            MAP, 3,
            1, b'a', INT, 3,
            1, b'b', LIST, 2, STR, 1, b'x', NULL,
            1, b'c', TEXT, 2, SECRET, 0, 1, HOST_PORT, 1, b's', 0xac, 0x02,
        ];
        assert_eq!(encode(&value), expected);
    }

    #[test]
    fn malformed_trees_are_null() {
        let too_big = [INT, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        for bytes in [&[0x09][..], &[LIST, 2, NULL], &[STR, 5, b'a'], &[NULL, NULL], &[TEXT, 1, SECRET, 0, 9], &too_big]
        {
            assert_eq!(decode(bytes), Value::Null, "{bytes:x?}");
        }
        assert_eq!(decode(&[]), Value::Null);
    }
}
