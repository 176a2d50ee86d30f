//! Writing YAML for the files hsm writes (`hsm.lock`, the `hsm.yaml` of `hsm init`):
//! strings quoted so that any value reads back as it was.

/// `s` as a YAML double-quoted scalar, for the files hsm writes. Every character
/// YAML may not hold as it is (the controls, C1 ones included, and U+FEFF, U+FFFE,
/// U+FFFF) is written as a `\u` escape: JSON's quoting left C1 controls raw, and
/// the file did not read back (found by fuzzing the `lock` target).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}') => {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quotes, backslashes, controls (C1 ones too), a BOM and non-characters read
    /// back as they were; printable text stays readable.
    #[test]
    fn any_string_reads_back() {
        for s in [
            "plain",
            "",
            "a \"b\" \\c",
            "tab\there\nnew",
            "\u{82}\u{85}\u{9f}\u{7f}\u{1b}[31m",
            "\u{feff}\u{fffe}\u{ffff}",
            "é ü 日本",
        ] {
            let quoted = quote(s);
            assert!(!quoted.chars().any(|c| c.is_control()), "{quoted:?}");
            let back: String = serde_saphyr::from_str(&quoted).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(quote("é ü"), "\"é ü\"");
    }
}
