//! The format's primitives against the bytes `wit/0.2.0/plugin.wit` documents.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::*;

/// The documentation of `type tree`, in each WIT version that has it.
const WIT: [&str; 2] = [include_str!("../../../wit/0.2.0/plugin.wit"), include_str!("../../../wit/0.3.0/plugin.wit")];

/// The doc comment above `type tree`.
fn tree_doc(wit: &str) -> Vec<&str> {
    let lines: Vec<&str> = wit.lines().map(str::trim).collect();
    let end = lines.iter().position(|l| *l == "type tree = list<u8>;").expect("the WIT has `type tree`");
    let start = lines[..end].iter().rposition(|l| !l.starts_with("///")).expect("something precedes the doc") + 1;
    lines[start..end].iter().map(|l| l.trim_start_matches("///").trim()).collect()
}

/// The `| 0xNN | name |` rows of the doc's tables, in order.
fn documented_tags(doc: &[&str]) -> Vec<(u8, String)> {
    doc.iter()
        .filter_map(|row| {
            let mut cells = row.strip_prefix('|')?.split('|').map(str::trim);
            let tag = u8::from_str_radix(cells.next()?.strip_prefix("0x")?, 16).ok()?;
            Some((tag, cells.next()?.to_string()))
        })
        .collect()
}

#[test]
fn the_tags_are_the_documented_ones() {
    let values = [
        (tag::NULL, "null"),
        (tag::FALSE, "false"),
        (tag::TRUE, "true"),
        (tag::INT, "integer"),
        (tag::FLOAT, "float"),
        (tag::STR, "text"),
        (tag::TEXT, "text"),
        (tag::LIST, "list"),
        (tag::MAP, "map"),
    ];
    let pieces = [
        (piece::LIT, "lit"),
        (piece::SECRET, "secret"),
        (piece::GENERATED, "generated"),
        (piece::HOST_PORT, "host-port"),
    ];
    let expected: Vec<(u8, String)> = values.iter().chain(&pieces).map(|(t, name)| (*t, name.to_string())).collect();
    for wit in WIT {
        let doc = tree_doc(wit);
        assert_eq!(documented_tags(&doc), expected);
        assert!(doc.contains(&"An encoding is one byte: 0x00 for `raw`, 0x01 for `url`."), "{doc:#?}");
        assert!(doc.iter().any(|l| l.contains("at most 64 lists and maps")), "{doc:#?}");
        assert!(doc.iter().any(|l| l.contains("number of at most 10 bytes that fits 64 bits")), "{doc:#?}");
    }
    assert_eq!(tree_doc(WIT[0]), tree_doc(WIT[1]), "0.3.0's trees are 0.2.0's");
    assert_eq!((Encoding::Raw.byte(), Encoding::Url.byte()), (0x00, 0x01));
    assert_eq!((MAX_DEPTH, MAX_ULEB_LEN), (64, 10));
}

fn written(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut Writer::new(&mut out));
    out
}

#[test]
fn ulebs_are_written_unpadded() {
    let cases: [(u64, &[u8]); 7] = [
        (0, &[0x00]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (300, &[0xac, 0x02]),
        (1 << 63, &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
        (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
    ];
    for (n, bytes) in cases {
        assert_eq!(written(|w| w.uleb(n)), bytes, "{n}");
        let mut reader = Reader::new(bytes);
        assert_eq!(reader.uleb(), Ok(n));
        assert_eq!(reader.finish(), Ok(()));
    }
}

#[test]
fn ulebs_are_read_padded_up_to_ten_bytes_and_64_bits() {
    let read = |bytes: &[u8]| Reader::new(bytes).uleb();
    assert_eq!(read(&[0x82, 0x80, 0x00]), Ok(2));
    assert_eq!(read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), Ok(0));
    // An eleventh byte, a tenth byte with more than bit 63, or one that continues.
    assert_eq!(read(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), Err(Error::TooLarge));
    assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]), Err(Error::TooLarge));
    assert_eq!(read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81]), Err(Error::TooLarge));
    assert_eq!(read(&[0x80]), Err(Error::Truncated));
    assert_eq!(read(&[]), Err(Error::Truncated));
}

#[test]
fn integers_are_zigzagged() {
    let cases = [(0, 0), (-1, 1), (1, 2), (-2, 3), (2, 4), (i64::MAX, u64::MAX - 1), (i64::MIN, u64::MAX)];
    for (n, z) in cases {
        assert_eq!(zigzag(n), z, "{n}");
        assert_eq!(unzigzag(z), n, "{z}");
    }
    assert_eq!(written(|w| w.int(-2)), [tag::INT, 3]);
    assert_eq!(written(|w| w.int(150)), [tag::INT, 0xac, 0x02]);
    assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).int(), Ok(i64::MIN));
}

#[test]
fn floats_are_any_binary64_little_endian() {
    assert_eq!(written(|w| w.float(1.5)), [tag::FLOAT, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]);
    for f in [0.0, -0.0, f64::INFINITY, f64::NAN, f64::from_bits(0x7ff0_0000_0000_0001), -1.5e300] {
        let bytes = written(|w| w.float(f));
        let mut reader = Reader::new(&bytes[1..]);
        assert_eq!(reader.float().map(f64::to_bits), Ok(f.to_bits()));
    }
    assert_eq!(Reader::new(&[0; 7]).float(), Err(Error::Truncated));
}

#[test]
fn strings_are_a_length_and_utf8() {
    assert_eq!(written(|w| w.str("héllo")), [tag::STR, 6, b'h', 0xc3, 0xa9, b'l', b'l', b'o']);
    assert_eq!(written(|w| w.key("")), [0]);
    assert_eq!(Reader::new(&[6, b'h', 0xc3, 0xa9, b'l', b'l', b'o']).str(), Ok("héllo"));
    assert_eq!(Reader::new(&[2, 0xc3, 0x28]).str(), Err(Error::NotUtf8));
    assert_eq!(Reader::new(&[5, b'a']).str(), Err(Error::Truncated));
}

#[test]
fn pieces_and_encodings_are_the_documented_bytes() {
    assert_eq!(written(|w| w.lit("a")), [piece::LIT, 1, b'a']);
    assert_eq!(written(|w| w.secret(300, Encoding::Url)), [piece::SECRET, 0xac, 0x02, 0x01]);
    assert_eq!(written(|w| w.generated("pw", Encoding::Raw)), [piece::GENERATED, 2, b'p', b'w', 0x00]);
    assert_eq!(written(|w| w.host_port("s", 65535)), [piece::HOST_PORT, 1, b's', 0xff, 0xff, 0x03]);
    assert_eq!(Reader::new(&[0x01]).encoding(), Ok(Encoding::Url));
    assert_eq!(Reader::new(&[0x02]).encoding(), Err(Error::UnknownEncoding(2)));
    assert_eq!(Reader::new(&[0xff, 0xff, 0x03]).port(), Ok(65535));
    assert_eq!(Reader::new(&[0x80, 0x80, 0x04]).port(), Err(Error::NotAPort(65536)));
}

/// The example both ends' codecs are tested against.
#[test]
fn a_tree_is_its_tokens_depth_first() {
    let bytes = written(|w| {
        w.map(3);
        w.key("a");
        w.int(-2);
        w.key("b");
        w.list(2);
        w.str("x");
        w.null();
        w.key("c");
        w.text(2);
        w.secret(0, Encoding::Url);
        w.host_port("s", 300);
    });
    #[rustfmt::skip]
    let expected = [
        tag::MAP, 3,
        1, b'a', tag::INT, 3,
        1, b'b', tag::LIST, 2, tag::STR, 1, b'x', tag::NULL,
        1, b'c', tag::TEXT, 2, piece::SECRET, 0, 1, piece::HOST_PORT, 1, b's', 0xac, 0x02,
    ];
    assert_eq!(bytes, expected);

    let mut r = Reader::new(&bytes);
    assert_eq!((r.byte(), r.map_len()), (Ok(tag::MAP), Ok(3)));
    assert_eq!((r.str(), r.byte(), r.int()), (Ok("a"), Ok(tag::INT), Ok(-2)));
    assert_eq!((r.str(), r.byte(), r.list_len()), (Ok("b"), Ok(tag::LIST), Ok(2)));
    assert_eq!((r.byte(), r.str(), r.byte()), (Ok(tag::STR), Ok("x"), Ok(tag::NULL)));
    assert_eq!((r.str(), r.byte(), r.text_len()), (Ok("c"), Ok(tag::TEXT), Ok(2)));
    assert_eq!((r.byte(), r.uleb(), r.encoding()), (Ok(piece::SECRET), Ok(0), Ok(Encoding::Url)));
    assert_eq!((r.byte(), r.str(), r.port()), (Ok(piece::HOST_PORT), Ok("s"), Ok(300)));
    assert_eq!(r.finish(), Ok(()));
}

/// A count is refused unless what is left could hold its items at their smallest.
#[test]
fn counts_need_the_bytes_their_items_take() {
    // Three values take at least three bytes.
    assert_eq!(Reader::new(&[3, 0, 0, 0]).list_len(), Ok(3));
    assert_eq!(Reader::new(&[3, 0, 0]).list_len(), Err(Error::Truncated));
    // Two pieces, or two map entries, take at least four.
    assert_eq!(Reader::new(&[2, 0, 0, 0, 0]).text_len(), Ok(2));
    assert_eq!(Reader::new(&[2, 0, 0, 0]).text_len(), Err(Error::Truncated));
    assert_eq!(Reader::new(&[2, 0, 0, 0, 0]).map_len(), Ok(2));
    assert_eq!(Reader::new(&[2, 0, 0, 0]).map_len(), Err(Error::Truncated));
    // A claim that overflows any multiplication is still just too large.
    let huge = written(|w| w.uleb(u64::MAX));
    assert_eq!(Reader::new(&huge).map_len(), Err(Error::Truncated));
    assert_eq!(Reader::new(&[0]).list_len(), Ok(0));
}

#[test]
fn depth_and_the_end_are_checked() {
    assert_eq!(check_depth(0), Ok(()));
    assert_eq!(check_depth(MAX_DEPTH), Ok(()));
    assert_eq!(check_depth(MAX_DEPTH + 1), Err(Error::TooDeep));
    let mut r = Reader::new(&[tag::NULL, tag::NULL]);
    assert_eq!(r.byte(), Ok(tag::NULL));
    assert_eq!(r.finish(), Err(Error::Trailing(1)));
}

#[test]
fn errors_read_as_the_host_reports_them() {
    let cases = [
        (Error::Truncated, "a tree ends in the middle of a value"),
        (Error::TooLarge, "a tree holds a number larger than 64 bits"),
        (Error::NotUtf8, "a tree holds a string that is not UTF-8"),
        (Error::UnknownTag(0x42), "a tree holds an unknown tag 0x42"),
        (Error::UnknownPieceTag(4), "a tree holds an unknown piece tag 0x04"),
        (Error::UnknownEncoding(2), "a tree holds an unknown encoding 0x02"),
        (Error::NotAPort(65536), "port 65536 is not a port"),
        (Error::TooDeep, "a value is nested deeper than 64 levels"),
        (Error::Trailing(1), "a tree has bytes after its value (1)"),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}
