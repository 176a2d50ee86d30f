//! `hsm:plugin@0.2.0`'s conversions, which 0.3.0 keeps: requests whose trees are
//! encoded into one buffer, and trees as one byte list each, written straight from
//! hsm's values and read straight back into them with the checks every plugin
//! answer gets. One copy each way replaces 0.1.0's lowering of every node, string
//! and list on its own. The format and its primitives are `hsm-wire`'s (documented
//! on `requests.tree` in `wit/0.2.0/plugin.wit`), shared with the SDK; what is
//! the host's own is its values (secrets by id, given to the plugin as handles) and
//! the budget and handle checks.

use std::ops::Range;

use hsm_model::text::Encoding;
use hsm_model::{Piece, Text, Value};
use hsm_wire::{Reader, Writer, piece, tag};
use indexmap::IndexMap;

use super::{Budget, Handles, OVERHEAD, container_name, is_name, malformed, mode_to_wit, requester_to_wit};
use crate::bindings::v0_2::hsm::plugin::requests as w2;
use crate::plugin::{CallErrorKind, MergeInput, PlanInput};

/// Builds a 0.2.0 merge request, every tree encoded into one buffer, and hands it
/// to `call`.
pub(crate) fn with_merge_request<R>(
    input: &MergeInput<'_>,
    handles: &mut Handles,
    call: impl FnOnce(w2::MergeRequest<'_>) -> R,
) -> R {
    let mut bytes = Vec::new();
    let defaults = encode(input.defaults, handles, &mut bytes);
    let params: Vec<_> = input.contributions.iter().map(|c| encode(c.params, handles, &mut bytes)).collect();
    let contributions: Vec<_> = (input.contributions.iter().zip(params))
        .map(|(c, range)| w2::Contribution {
            from: requester_to_wit(&c.from),
            origin: &c.origin,
            params: &bytes[range],
        })
        .collect();
    call(w2::MergeRequest {
        service: input.service,
        kind: input.kind,
        defaults: &bytes[defaults],
        contributions: &contributions,
    })
}

/// Builds a 0.2.0 plan request, every tree encoded into one buffer, and hands it
/// to `call`.
pub(crate) fn with_plan_request<R>(
    input: &PlanInput<'_>,
    handles: &mut Handles,
    call: impl FnOnce(w2::PlanRequest<'_>) -> R,
) -> R {
    let mut bytes = Vec::new();
    let config = encode(input.config, handles, &mut bytes);
    let settings = encode(input.profile.settings, handles, &mut bytes);
    let params: Vec<_> = input.consumers.iter().map(|c| encode(c.params, handles, &mut bytes)).collect();
    let consumers: Vec<_> = (input.consumers.iter().zip(params))
        .map(|(c, range)| w2::Consumer { package: c.consumer.package(), params: &bytes[range] })
        .collect();
    call(w2::PlanRequest {
        project: input.project,
        service: input.service,
        kind: input.kind,
        config: &bytes[config],
        profile: w2::Profile {
            name: input.profile.name,
            mode: mode_to_wit(input.profile.mode),
            settings: &bytes[settings],
        },
        consumers: &consumers,
        host_address: input.host_address,
    })
}

// ---- trees ----

/// The most items a list or map reserves room for before they are read: a count
/// is only a claim, and nested claims must not add up to a large allocation.
const MAX_RESERVED: usize = 4096;

/// Appends `v` to `out` as one tree; secrets become this call's handles. Returns
/// the tree's bytes in `out`, so that a request's trees share one buffer.
fn encode(v: &Value, handles: &mut Handles, out: &mut Vec<u8>) -> Range<usize> {
    let start = out.len();
    write_value(v, handles, &mut Writer::new(out));
    start..out.len()
}

fn write_value(v: &Value, handles: &mut Handles, w: &mut Writer<'_>) {
    match v {
        Value::Null => w.null(),
        Value::Bool(b) => w.bool(*b),
        Value::Int(i) => w.int(*i),
        Value::Float(f) => w.float(*f),
        Value::Text(t) => match t.pieces() {
            [Piece::Lit(s)] => w.str(s),
            pieces => {
                w.text(pieces.len());
                pieces.iter().for_each(|p| write_piece(p, handles, w));
            }
        },
        Value::List(items) => {
            w.list(items.len());
            items.iter().for_each(|item| write_value(item, handles, w));
        }
        Value::Map(m) => {
            w.map(m.len());
            for (key, item) in m {
                w.key(key);
                write_value(item, handles, w);
            }
        }
    }
}

fn write_piece(p: &Piece, handles: &mut Handles, w: &mut Writer<'_>) {
    match p {
        Piece::Lit(s) => w.lit(s),
        Piece::Secret { id, label, encoding } => w.secret(handles.handle(*id, label), encoding_to_wire(*encoding)),
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

/// Reads a tree a plugin returned, refusing what a well-behaved plugin never
/// sends: what the format forbids (a tag or encoding that doesn't exist, a count or
/// length past the end, text that isn't UTF-8, nesting deeper than 64, bytes after
/// the value), a handle it was not given, a key twice in one map, a name that is
/// not one. Everything counts against the output budget as 0.1.0's nodes, pieces
/// and strings do (a value as a node, each string its length and a node's worth, a
/// secret a node's worth).
pub(crate) fn decode_tree(bytes: &[u8], handles: &Handles, budget: &mut Budget) -> Result<Value, CallErrorKind> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let mut reader = TreeReader { wire: Reader::new(bytes), handles, budget };
    let v = reader.value(0)?;
    reader.wire.finish()?;
    Ok(v)
}

/// The format's reader, with what the host checks besides.
struct TreeReader<'a, 'b> {
    wire: Reader<'a>,
    handles: &'b Handles,
    budget: &'b mut Budget,
}

impl<'a> TreeReader<'a, '_> {
    /// Room for `n` items about to be read, within what the budget could still
    /// pay for and [`MAX_RESERVED`].
    fn reserve(&self, n: usize) -> usize {
        n.min(MAX_RESERVED).min(self.budget.limit.saturating_sub(self.budget.used) / OVERHEAD)
    }

    fn str(&mut self) -> Result<&'a str, CallErrorKind> {
        let s = self.wire.str()?;
        self.budget.take_str(s)?;
        Ok(s)
    }

    fn value(&mut self, depth: u32) -> Result<Value, CallErrorKind> {
        hsm_wire::check_depth(depth)?;
        self.budget.take(OVERHEAD)?;
        Ok(match self.wire.byte()? {
            tag::NULL => Value::Null,
            tag::FALSE => Value::Bool(false),
            tag::TRUE => Value::Bool(true),
            tag::INT => Value::Int(self.wire.int()?),
            tag::FLOAT => Value::Float(self.wire.float()?),
            tag::STR => Value::Text(Text::literal(self.str()?)),
            tag::TEXT => {
                let n = self.wire.text_len()?;
                let mut text = Text::default();
                for _ in 0..n {
                    text.push(self.piece()?);
                }
                Value::Text(text)
            }
            tag::LIST => {
                let n = self.wire.list_len()?;
                let mut items = Vec::with_capacity(self.reserve(n));
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                Value::List(items)
            }
            tag::MAP => {
                let n = self.wire.map_len()?;
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
            other => return Err(hsm_wire::Error::UnknownTag(other).into()),
        })
    }

    fn piece(&mut self) -> Result<Piece, CallErrorKind> {
        Ok(match self.wire.byte()? {
            piece::LIT => Piece::Lit(self.str()?.to_string()),
            piece::SECRET => {
                self.budget.take(OVERHEAD)?;
                let handle = self.wire.uleb()?;
                let (id, label) = u32::try_from(handle)
                    .ok()
                    .and_then(|h| self.handles.get(h))
                    .ok_or_else(|| malformed(format!("secret handle {handle} was not given to it in this call")))?;
                Piece::Secret { id: *id, label: label.clone(), encoding: encoding_from_wire(self.wire.encoding()?) }
            }
            piece::GENERATED => {
                let name = self.str()?;
                if !is_name(name, 64) {
                    return Err(malformed(format!(
                        "generated secret name `{}` is not lowercase letters, digits and `-`",
                        name.escape_debug()
                    )));
                }
                Piece::Generated { name: name.to_string(), encoding: encoding_from_wire(self.wire.encoding()?) }
            }
            piece::HOST_PORT => {
                let container = container_name(self.str()?.to_string())?;
                Piece::HostPort { container, port: self.wire.port()? }
            }
            other => return Err(hsm_wire::Error::UnknownPieceTag(other).into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use hsm_model::SecretId;
    use hsm_wire::{piece::*, tag::*};

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
        assert_eq!(decode_tree(bytes, &handles, &mut budget).unwrap(), sample());
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
        assert_eq!(decode_tree(&[], &Handles::default(), &mut Budget::new(100)).unwrap(), Value::Null);
    }

    #[test]
    fn what_the_format_allows_is_read() {
        let read = |bytes: &[u8]| decode_tree(bytes, &Handles::default(), &mut Budget::new(1 << 20)).unwrap();
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
        let error = decode_tree(&nested(65), &Handles::default(), &mut Budget::new(1 << 20)).unwrap_err();
        assert!(error.to_string().contains("deeper than 64 levels"), "{error}");
    }

    /// Counts are claims: 60 nested maps each claiming 400,000 entries (in a
    /// buffer that could hold them) reserve little before the claims fail.
    #[test]
    fn forged_counts_reserve_little() {
        let mut bytes = Vec::new();
        let mut w = Writer::new(&mut bytes);
        for _ in 0..60 {
            w.map(400_000);
            w.key("");
        }
        bytes.resize(bytes.len() + 800_000, NULL);
        let error = decode_tree(&bytes, &Handles::default(), &mut Budget::new(4 << 20)).unwrap_err();
        assert!(error.to_string().contains("key `` appears twice"), "{error}");
        let room =
            TreeReader { wire: Reader::new(&[]), handles: &Handles::default(), budget: &mut Budget::new(4 << 20) };
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
            let error = decode_tree(bytes, &handles, &mut Budget::new(1 << 20)).unwrap_err().to_string();
            assert!(error.contains(expected), "{bytes:x?}: {error}");
        }
    }

    /// The fuzzer's `wire_tree` target reaches this decoder only through a model
    /// of it (it links no wasmtime): its corpus, and 500,000 seeded mutations of
    /// it, go through the real one here. Whatever the bytes, a value or an error,
    /// within the budget; a value decoded is encoded and decoded to itself.
    #[test]
    fn the_fuzz_corpus_and_its_mutations_decode_to_a_value_or_an_error() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wire_tree");
        let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect();
        assert!(corpus.len() >= 50, "the committed corpus: {}", corpus.len());
        corpus.sort();
        let mut handles = Handles::default();
        handles.handle(SecretId(1), "${S}");
        let (mut values, mut errors, mut too_large) = (0, 0, 0);
        // Small enough that the larger trees of the corpus run out of it.
        let limit = 1024;
        // xorshift64: the same mutations on every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % (1 << 32)).unwrap()
        };
        for i in 0..500_000 {
            let mut bytes = corpus[i % corpus.len()].clone();
            for _ in 0..=next() % 4 {
                let at = next() % (bytes.len() + 1);
                match next() % 4 {
                    0 if at < bytes.len() => bytes[at] = u8::try_from(next() % 256).unwrap(),
                    1 => bytes.insert(at, u8::try_from(next() % 256).unwrap()),
                    2 if at < bytes.len() => drop(bytes.remove(at)),
                    _ => bytes.truncate(at),
                }
            }
            let mut budget = Budget::new(limit);
            match decode_tree(&bytes, &handles, &mut budget) {
                Ok(value) => {
                    values += 1;
                    // Compared as bytes: a NaN is not equal to itself.
                    let encoded = |value: &Value| {
                        let (mut handles, mut out) = (Handles::default(), Vec::new());
                        encode(value, &mut handles, &mut out);
                        (handles, out)
                    };
                    let (again, out) = encoded(&value);
                    let decoded = decode_tree(&out, &again, &mut Budget::new(1 << 20)).unwrap();
                    assert_eq!(encoded(&decoded).1, out, "{bytes:x?}");
                }
                Err(CallErrorKind::TooLarge(_)) => too_large += 1,
                Err(_) => errors += 1,
            }
            // Reading stops at the first charge past the limit: a string of the
            // input and its overhead at most.
            assert!(budget.used <= limit + bytes.len() + OVERHEAD, "{} of {limit}: {bytes:x?}", budget.used);
        }
        assert!(
            values > 1000 && errors > 1000 && too_large > 100,
            "every outcome is exercised: {values} values, {errors} errors, {too_large} over the budget"
        );
    }

    #[test]
    fn output_beyond_the_budget_is_refused() {
        let mut handles = Handles::default();
        let mut out = Vec::new();
        encode(&Value::List(vec![Value::Text(Text::literal("x".repeat(1000)))]), &mut handles, &mut out);
        let error = decode_tree(&out, &handles, &mut Budget::new(512)).unwrap_err();
        assert!(matches!(error, CallErrorKind::TooLarge(512)), "{error:?}");
    }
}
