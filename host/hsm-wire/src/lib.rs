//! The byte format of `hsm:plugin`'s value trees, in one place for both ends of the
//! wire: the host writes the trees it sends and reads (and checks) what plugins
//! return; the SDK reads requests and writes answers. Each side keeps its own value
//! types (the host's secrets are ids it never sends, the SDK's are handles), so this
//! crate holds the format's primitives, not a value type: tags, numbers, strings,
//! the encoding byte, and the limits a reader enforces.
//!
//! The format is documented next to `type tree` in `wit/0.2.0/plugin.wit` (0.3.0
//! uses the same), and the tests below check this crate against that text and its
//! bytes. In short, a tree is one value written depth first:
//!
//! - a value is a tag ([`tag`]) and what the tag says follows;
//! - a `uleb` is an unsigned LEB128 number of at most [`MAX_ULEB_LEN`] bytes that
//!   fits 64 bits; padded encodings are read, [`Writer`] never pads;
//! - an integer is the zigzag encoding of an `i64` ([`zigzag`]) as a `uleb`; a float
//!   is 8 bytes of IEEE 754 binary64, little-endian;
//! - a string is a `uleb` byte length and that many bytes of UTF-8;
//! - a text is one string (tag `STR`) or a count and that many pieces ([`piece`]);
//!   a list is a count and that many values; a map a count and that many entries,
//!   each a key (a string) and a value;
//! - an encoding is one byte ([`Encoding`]);
//! - a value sits inside at most [`MAX_DEPTH`] lists and maps; empty bytes are null;
//!   nothing follows the value.
//!
//! No dependencies, and `no_std`: every plugin builds this crate for
//! `wasm32-wasip2` through the SDK.

#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

/// The tag that starts every value.
pub mod tag {
    /// Null; nothing follows.
    pub const NULL: u8 = 0x00;
    /// False; nothing follows.
    pub const FALSE: u8 = 0x01;
    /// True; nothing follows.
    pub const TRUE: u8 = 0x02;
    /// An integer: its zigzag encoding as a `uleb` follows.
    pub const INT: u8 = 0x03;
    /// A float: 8 bytes of IEEE 754 binary64, little-endian, follow.
    pub const FLOAT: u8 = 0x04;
    /// A text that is one literal: a string follows. Writers use it for every such
    /// text.
    pub const STR: u8 = 0x05;
    /// A text of pieces: a `uleb` count and that many pieces follow.
    pub const TEXT: u8 = 0x06;
    /// A list: a `uleb` count and that many values follow.
    pub const LIST: u8 = 0x07;
    /// A map: a `uleb` count and that many entries follow, each a key (a string)
    /// and its value; keys are distinct, and entries keep the map's order.
    pub const MAP: u8 = 0x08;
}

/// The tag that starts every piece of a text (tag [`tag::TEXT`]); the pieces are
/// those of the `piece` variant of WIT's `types`.
pub mod piece {
    /// Literal text: a string follows.
    pub const LIT: u8 = 0x00;
    /// A secret: its handle (a `uleb` that fits 32 bits) and an encoding follow.
    pub const SECRET: u8 = 0x01;
    /// A generated secret: its name (a string of lowercase letters, digits and
    /// `-`, at most 64 bytes) and an encoding follow.
    pub const GENERATED: u8 = 0x02;
    /// A host port: the container (a string) and the port (a `uleb`, at most
    /// 65535) follow.
    pub const HOST_PORT: u8 = 0x03;
}

/// How many lists and maps a value may sit inside: the root is at depth 0, and a
/// value at depth 65 makes the tree invalid.
pub const MAX_DEPTH: u32 = 64;

/// The longest a `uleb` may be: ten bytes hold 70 bits, of which the tenth byte may
/// use only the lowest (64 bits in all).
pub const MAX_ULEB_LEN: usize = 10;

/// The fewest bytes a value takes (its tag): what a list's count claims, at least.
const MIN_VALUE_LEN: u64 = 1;
/// The fewest bytes a piece takes: its tag, and a string's length or a handle.
const MIN_PIECE_LEN: u64 = 2;
/// The fewest bytes a map entry takes: its key's length and its value's tag.
const MIN_ENTRY_LEN: u64 = 2;
/// The fewest bytes a string's byte takes.
const MIN_BYTE_LEN: u64 = 1;

/// How a secret's value is written where it is placed: one byte on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// As it is (0x00).
    Raw,
    /// Percent-encoded (0x01).
    Url,
}

impl Encoding {
    /// Its byte.
    pub const fn byte(self) -> u8 {
        match self {
            Self::Raw => 0x00,
            Self::Url => 0x01,
        }
    }

    /// The encoding a byte stands for, if any.
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x00 => Some(Self::Raw),
            0x01 => Some(Self::Url),
            _ => None,
        }
    }
}

/// The zigzag encoding of `n`, `(n << 1) ^ (n >> 63)`: small magnitudes of either
/// sign become small numbers, so their `uleb` is short.
pub const fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The integer whose [`zigzag`] encoding is `z`.
pub const fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// Whether a value at `depth` (the number of lists and maps around it) may be
/// read: at most [`MAX_DEPTH`].
pub const fn check_depth(depth: u32) -> Result<(), Error> {
    if depth > MAX_DEPTH { Err(Error::TooDeep) } else { Ok(()) }
}

/// Why bytes are not a valid tree. The messages are those the host reports to a
/// plugin's author.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes end in the middle of a value, or a count or length claims more
    /// than the bytes left could hold.
    Truncated,
    /// A `uleb` does not fit 64 bits (or is longer than [`MAX_ULEB_LEN`]).
    TooLarge,
    /// A string is not UTF-8.
    NotUtf8,
    /// A value's tag is not one of [`tag`]'s.
    UnknownTag(u8),
    /// A piece's tag is not one of [`piece`]'s.
    UnknownPieceTag(u8),
    /// An encoding byte is not one of [`Encoding`]'s.
    UnknownEncoding(u8),
    /// A host port's port is larger than 65535.
    NotAPort(u64),
    /// A value sits inside more than [`MAX_DEPTH`] lists and maps.
    TooDeep,
    /// Bytes follow the value (how many).
    Trailing(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("a tree ends in the middle of a value"),
            Self::TooLarge => f.write_str("a tree holds a number larger than 64 bits"),
            Self::NotUtf8 => f.write_str("a tree holds a string that is not UTF-8"),
            Self::UnknownTag(tag) => write!(f, "a tree holds an unknown tag {tag:#04x}"),
            Self::UnknownPieceTag(tag) => write!(f, "a tree holds an unknown piece tag {tag:#04x}"),
            Self::UnknownEncoding(byte) => write!(f, "a tree holds an unknown encoding {byte:#04x}"),
            Self::NotAPort(port) => write!(f, "port {port} is not a port"),
            Self::TooDeep => write!(f, "a value is nested deeper than {MAX_DEPTH} levels"),
            Self::Trailing(n) => write!(f, "a tree has bytes after its value ({n})"),
        }
    }
}

impl core::error::Error for Error {}

/// Writes a tree, token by token, at the end of a buffer (so that several trees can
/// share one). The caller writes a value's items right after its count.
#[derive(Debug)]
pub struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer that appends to `out`.
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Null.
    pub fn null(&mut self) {
        self.out.push(tag::NULL);
    }

    /// A boolean.
    pub fn bool(&mut self, b: bool) {
        self.out.push(if b { tag::TRUE } else { tag::FALSE });
    }

    /// An integer.
    pub fn int(&mut self, n: i64) {
        self.out.push(tag::INT);
        self.uleb(zigzag(n));
    }

    /// A float.
    pub fn float(&mut self, f: f64) {
        self.out.push(tag::FLOAT);
        self.out.extend_from_slice(&f.to_le_bytes());
    }

    /// A text that is one literal.
    pub fn str(&mut self, s: &str) {
        self.out.push(tag::STR);
        self.string(s);
    }

    /// The start of a text of `pieces` pieces, which the caller writes next.
    pub fn text(&mut self, pieces: usize) {
        self.out.push(tag::TEXT);
        self.uleb(pieces as u64);
    }

    /// The start of a list of `items` values, which the caller writes next.
    pub fn list(&mut self, items: usize) {
        self.out.push(tag::LIST);
        self.uleb(items as u64);
    }

    /// The start of a map of `entries` entries, which the caller writes next, each
    /// a [`Writer::key`] and a value.
    pub fn map(&mut self, entries: usize) {
        self.out.push(tag::MAP);
        self.uleb(entries as u64);
    }

    /// A map entry's key.
    pub fn key(&mut self, key: &str) {
        self.string(key);
    }

    /// A literal piece.
    pub fn lit(&mut self, s: &str) {
        self.out.push(piece::LIT);
        self.string(s);
    }

    /// A secret piece, by its handle.
    pub fn secret(&mut self, handle: u32, encoding: Encoding) {
        self.out.push(piece::SECRET);
        self.uleb(u64::from(handle));
        self.out.push(encoding.byte());
    }

    /// A generated secret piece.
    pub fn generated(&mut self, name: &str, encoding: Encoding) {
        self.out.push(piece::GENERATED);
        self.string(name);
        self.out.push(encoding.byte());
    }

    /// A host port piece.
    pub fn host_port(&mut self, container: &str, port: u16) {
        self.out.push(piece::HOST_PORT);
        self.string(container);
        self.uleb(u64::from(port));
    }

    /// A string: its byte length and its bytes.
    pub fn string(&mut self, s: &str) {
        self.uleb(s.len() as u64);
        self.out.extend_from_slice(s.as_bytes());
    }

    /// An unsigned LEB128 number, unpadded: seven bits a byte, lowest first, the
    /// high bit set on every byte but the last.
    pub fn uleb(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.out.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.out.push(n as u8);
    }
}

/// Reads a tree, token by token, refusing what the format does not allow. The
/// caller reads a tag with [`Reader::byte`], what it says follows with the other
/// methods, checks the depth ([`check_depth`]) and ends with [`Reader::finish`].
///
/// Counts are claims, checked against the bytes left before anything is read or
/// reserved: a count of items is refused when the items could not fit, at the
/// fewest bytes each takes (a value its tag, a piece its tag and a length or handle,
/// a map entry its key's length and its value's tag). So a reader never allocates
/// more items than the tree has bytes, whatever a writer claims.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// One byte: a value's or a piece's tag.
    pub fn byte(&mut self) -> Result<u8, Error> {
        let b = *self.bytes.get(self.pos).ok_or(Error::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 number: at most [`MAX_ULEB_LEN`] bytes, padded or not,
    /// that fits 64 bits.
    pub fn uleb(&mut self) -> Result<u64, Error> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            // The tenth byte holds bit 63 alone.
            if shift == 63 && bits > 1 {
                break;
            }
            n |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(Error::TooLarge)
    }

    /// An integer (after [`tag::INT`]).
    pub fn int(&mut self) -> Result<i64, Error> {
        Ok(unzigzag(self.uleb()?))
    }

    /// A float (after [`tag::FLOAT`]).
    pub fn float(&mut self) -> Result<f64, Error> {
        let bytes = self.bytes.get(self.pos..self.pos + 8).ok_or(Error::Truncated)?;
        self.pos += 8;
        Ok(f64::from_le_bytes(bytes.try_into().expect("eight bytes")))
    }

    /// A string (a literal, a key, a name or a container), borrowed from the bytes.
    pub fn str(&mut self) -> Result<&'a str, Error> {
        let len = self.count(MIN_BYTE_LEN)?;
        let bytes = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        core::str::from_utf8(bytes).map_err(|_| Error::NotUtf8)
    }

    /// An encoding byte.
    pub fn encoding(&mut self) -> Result<Encoding, Error> {
        let byte = self.byte()?;
        Encoding::from_byte(byte).ok_or(Error::UnknownEncoding(byte))
    }

    /// A host port's port.
    pub fn port(&mut self) -> Result<u16, Error> {
        let port = self.uleb()?;
        u16::try_from(port).map_err(|_| Error::NotAPort(port))
    }

    /// A text's count of pieces (after [`tag::TEXT`]).
    pub fn text_len(&mut self) -> Result<usize, Error> {
        self.count(MIN_PIECE_LEN)
    }

    /// A list's count of values (after [`tag::LIST`]).
    pub fn list_len(&mut self) -> Result<usize, Error> {
        self.count(MIN_VALUE_LEN)
    }

    /// A map's count of entries (after [`tag::MAP`]).
    pub fn map_len(&mut self) -> Result<usize, Error> {
        self.count(MIN_ENTRY_LEN)
    }

    /// A count of items that each take at least `min_len` bytes: never more than
    /// the bytes left can hold.
    fn count(&mut self, min_len: u64) -> Result<usize, Error> {
        let n = self.uleb()?;
        if n.saturating_mul(min_len) > self.remaining() as u64 {
            return Err(Error::Truncated);
        }
        // At most the bytes left, so it fits.
        Ok(n as usize)
    }

    /// The end of the tree: nothing may follow the value.
    pub fn finish(&self) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(Error::Trailing(n)),
        }
    }
}

#[cfg(test)]
mod tests;
