//! Value trees as `hsm:plugin@0.2.0` and later carry them: one byte list per tree,
//! read straight into the SDK's values and written straight from them. The format
//! and its primitives are `hsm-wire`'s, shared with the host.

use hsm_wire::{Reader, Writer, piece, tag};

use crate::text::{Encoding, Piece, SecretRef, Text};
use crate::value::{Map, Value};

/// Encodes a value, moving nothing: the bytes are the one copy the host reads.
pub(crate) fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(v, &mut Writer::new(&mut out));
    out
}

fn write_value(v: &Value, w: &mut Writer<'_>) {
    match v {
        Value::Null => w.null(),
        Value::Bool(b) => w.bool(*b),
        Value::Int(i) => w.int(*i),
        Value::Float(f) => w.float(*f),
        Value::Text(t) => match t.pieces() {
            [Piece::Lit(s)] => w.str(s),
            pieces => {
                w.text(pieces.len());
                pieces.iter().for_each(|p| write_piece(p, w));
            }
        },
        Value::List(items) => {
            w.list(items.len());
            items.iter().for_each(|item| write_value(item, w));
        }
        Value::Map(m) => {
            w.map(m.len());
            for (key, item) in m.iter() {
                w.key(key);
                write_value(item, w);
            }
        }
    }
}

fn write_piece(p: &Piece, w: &mut Writer<'_>) {
    match p {
        Piece::Lit(s) => w.lit(s),
        Piece::Secret(s) => w.secret(s.handle, encoding_to_wire(s.encoding)),
        Piece::Generated { name, encoding } => w.generated(name, encoding_to_wire(*encoding)),
        Piece::HostPort { container, port } => w.host_port(container, *port),
    }
}

fn encoding_to_wire(e: Encoding) -> hsm_wire::Encoding {
    match e {
        Encoding::Raw => hsm_wire::Encoding::Raw,
        Encoding::Url => hsm_wire::Encoding::Url,
    }
}

fn encoding_from_wire(e: hsm_wire::Encoding) -> Encoding {
    match e {
        hsm_wire::Encoding::Raw => Encoding::Raw,
        hsm_wire::Encoding::Url => Encoding::Url,
    }
}

/// Decodes a tree from the host. The host is trusted (it writes with the same
/// `hsm-wire`), but a malformed tree still yields `Null`, the whole tree, rather
/// than a panic; empty bytes are `Null` too.
pub(crate) fn decode(bytes: &[u8]) -> Value {
    let mut reader = Reader::new(bytes);
    match read_value(&mut reader, 0) {
        Some(v) if reader.finish().is_ok() => v,
        _ => Value::Null,
    }
}

fn read_value(r: &mut Reader<'_>, depth: u32) -> Option<Value> {
    hsm_wire::check_depth(depth).ok()?;
    Some(match r.byte().ok()? {
        tag::NULL => Value::Null,
        tag::FALSE => Value::Bool(false),
        tag::TRUE => Value::Bool(true),
        tag::INT => Value::Int(r.int().ok()?),
        tag::FLOAT => Value::Float(r.float().ok()?),
        tag::STR => Value::Text(Text::lit(r.str().ok()?)),
        tag::TEXT => {
            let mut text = Text::new();
            for _ in 0..r.text_len().ok()? {
                text.push(read_piece(r)?);
            }
            Value::Text(text)
        }
        tag::LIST => {
            // The count is at most the bytes left: reserving it is safe.
            let n = r.list_len().ok()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_value(r, depth + 1)?);
            }
            Value::List(items)
        }
        tag::MAP => {
            let n = r.map_len().ok()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let key = r.str().ok()?.to_string();
                entries.push((key, read_value(r, depth + 1)?));
            }
            // The host's maps have one entry per key already: no need to look
            // each key up again (which made large maps quadratic).
            Value::Map(Map::from_distinct(entries))
        }
        _ => return None,
    })
}

fn read_piece(r: &mut Reader<'_>) -> Option<Piece> {
    Some(match r.byte().ok()? {
        piece::LIT => Piece::Lit(r.str().ok()?.to_string()),
        piece::SECRET => {
            let handle = u32::try_from(r.uleb().ok()?).ok()?;
            Piece::Secret(SecretRef { handle, encoding: encoding_from_wire(r.encoding().ok()?) })
        }
        piece::GENERATED => {
            let name = r.str().ok()?.to_string();
            Piece::Generated { name, encoding: encoding_from_wire(r.encoding().ok()?) }
        }
        piece::HOST_PORT => Piece::HostPort { container: r.str().ok()?.to_string(), port: r.port().ok()? },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use hsm_wire::{piece::*, tag::*};

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
        // The same bytes as hsm-wire's and the host's own codec tests.
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
        let deep: Vec<u8> = std::iter::repeat_n([LIST, 1], 65).flatten().chain([NULL]).collect();
        for bytes in
            [&[0x09][..], &[LIST, 2, NULL], &[STR, 5, b'a'], &[NULL, NULL], &[TEXT, 1, SECRET, 0, 9], &too_big, &deep]
        {
            assert_eq!(decode(bytes), Value::Null, "{bytes:x?}");
        }
        assert_eq!(decode(&[]), Value::Null);
        let nested: Vec<u8> = std::iter::repeat_n([LIST, 1], 64).flatten().chain([NULL]).collect();
        assert_ne!(decode(&nested), Value::Null, "a value inside 64 lists is read");
    }
}
