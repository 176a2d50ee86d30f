//! Fuzzes hsm-wire, the byte codec of the value trees plugins return (WIT 0.2.0
//! and later). The host's own decoder (`hsm-runtime`'s `convert::v0_2::decode_tree`)
//! is private to the runtime and reached only through a component's answer, so
//! this target drives hsm-wire's `Reader` the way that decoder does (tags, counts,
//! strings, pieces, depth, bytes after the value) and checks the codec's contract:
//! whatever the bytes, reading ends in a value or an error, never reserves more
//! than the bytes could hold, and a value read, written again with `Writer`, reads
//! back the same.
#![no_main]

use hsm_wire::{Encoding, Error, Reader, Writer, piece, tag};
use libfuzzer_sys::fuzz_target;

/// A tree as read, with floats kept as bits so that NaN compares equal.
#[derive(Debug, PartialEq)]
enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(String),
    Text(Vec<Piece>),
    List(Vec<Tree>),
    Map(Vec<(String, Tree)>),
}

#[derive(Debug, PartialEq)]
enum Piece {
    Lit(String),
    Secret(u32, Encoding),
    Generated(String, Encoding),
    HostPort(String, u16),
}

/// The most items a list or map reserves room for before they are read, as the
/// host's decoder does: a count is a claim.
const MAX_RESERVED: usize = 4096;

fn read(bytes: &[u8]) -> Result<Tree, Error> {
    let mut r = Reader::new(bytes);
    let tree = value(&mut r, 0)?;
    r.finish()?;
    Ok(tree)
}

fn value(r: &mut Reader<'_>, depth: u32) -> Result<Tree, Error> {
    hsm_wire::check_depth(depth)?;
    Ok(match r.byte()? {
        tag::NULL => Tree::Null,
        tag::FALSE => Tree::Bool(false),
        tag::TRUE => Tree::Bool(true),
        tag::INT => Tree::Int(r.int()?),
        tag::FLOAT => Tree::Float(r.float()?.to_bits()),
        tag::STR => Tree::Str(r.str()?.to_string()),
        tag::TEXT => {
            let before = r.remaining();
            let n = r.text_len()?;
            assert!(n <= before, "a count of {n} pieces passed with {before} bytes left");
            (0..n).map(|_| read_piece(r)).collect::<Result<_, _>>().map(Tree::Text)?
        }
        tag::LIST => {
            let n = r.list_len()?;
            assert!(n <= r.remaining(), "a count of {n} values passed with {} bytes left", r.remaining());
            let mut items = Vec::with_capacity(n.min(MAX_RESERVED));
            for _ in 0..n {
                items.push(value(r, depth + 1)?);
            }
            Tree::List(items)
        }
        tag::MAP => {
            let n = r.map_len()?;
            assert!(
                n.saturating_mul(2) <= r.remaining(),
                "a count of {n} entries passed with {} bytes left",
                r.remaining()
            );
            let mut entries = Vec::with_capacity(n.min(MAX_RESERVED));
            for _ in 0..n {
                let key = r.str()?.to_string();
                entries.push((key, value(r, depth + 1)?));
            }
            Tree::Map(entries)
        }
        other => return Err(Error::UnknownTag(other)),
    })
}

fn read_piece(r: &mut Reader<'_>) -> Result<Piece, Error> {
    Ok(match r.byte()? {
        piece::LIT => Piece::Lit(r.str()?.to_string()),
        piece::SECRET => {
            let handle = r.uleb()?;
            let handle = u32::try_from(handle).map_err(|_| Error::TooLarge)?;
            Piece::Secret(handle, r.encoding()?)
        }
        piece::GENERATED => Piece::Generated(r.str()?.to_string(), r.encoding()?),
        piece::HOST_PORT => Piece::HostPort(r.str()?.to_string(), r.port()?),
        other => return Err(Error::UnknownPieceTag(other)),
    })
}

fn write(t: &Tree, w: &mut Writer<'_>) {
    match t {
        Tree::Null => w.null(),
        Tree::Bool(b) => w.bool(*b),
        Tree::Int(i) => w.int(*i),
        Tree::Float(bits) => w.float(f64::from_bits(*bits)),
        Tree::Str(s) => w.str(s),
        Tree::Text(pieces) => {
            w.text(pieces.len());
            for p in pieces {
                match p {
                    Piece::Lit(s) => w.lit(s),
                    Piece::Secret(h, e) => w.secret(*h, *e),
                    Piece::Generated(n, e) => w.generated(n, *e),
                    Piece::HostPort(c, port) => w.host_port(c, *port),
                }
            }
        }
        Tree::List(items) => {
            w.list(items.len());
            items.iter().for_each(|i| write(i, w));
        }
        Tree::Map(entries) => {
            w.map(entries.len());
            for (k, v) in entries {
                w.key(k);
                write(v, w);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = read(data) else { return };
    let mut again = Vec::new();
    write(&tree, &mut Writer::new(&mut again));
    // The writer never pads, so its bytes are at most the ones read.
    assert!(again.len() <= data.len(), "{} bytes written for {} read", again.len(), data.len());
    assert_eq!(read(&again).as_ref(), Ok(&tree), "a tree written again reads back differently");
});
