//! `hsm.lock`: the commit each git registry resolved to and the sha256 of every file
//! hsm read from it. YAML, written by hsm with every key sorted and one entry per
//! registry, so that it diffs well and can be committed (format: docs/config.md).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::yaml_out::quote;

/// The name of the lock file, next to `hsm.yaml`.
pub const LOCK_FILE: &str = "hsm.lock";

/// What `hsm.lock` holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// The format's version: 1.
    pub version: u32,
    /// Per git registry, by the entry of `registries` as written.
    #[serde(default)]
    pub registries: BTreeMap<String, LockEntry>,
}

/// One git registry, locked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// The commit (full hex id) the ref resolved to.
    pub commit: String,
    /// The sha256 (hex) of every file read, by its path in the repository.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

impl LockFile {
    /// Reads and checks the lock file at `path`; `None` if it is missing or invalid
    /// (a load reports why).
    pub fn read(path: &Path) -> Option<Self> {
        let lock: Self = serde_saphyr::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
        lock.check().is_ok().then_some(lock)
    }

    /// The lock's text: a header comment, then the entries, keys sorted.
    pub fn render(&self) -> String {
        let mut s = String::from(
            "# hsm.lock: the commits and file digests of hsm.yaml's git registries.\n\
             # Written by hsm (`hsm lock`, `hsm sync`); commit it. Format: hsm's docs/config.md.\n",
        );
        s.push_str("version: 1\n");
        if self.registries.is_empty() {
            s.push_str("registries: {}\n");
            return s;
        }
        s.push_str("registries:\n");
        for (name, entry) in &self.registries {
            s.push_str(&format!("{}\n    commit: {}\n", key(name, "  "), entry.commit));
            if entry.files.is_empty() {
                s.push_str("    files: {}\n");
                continue;
            }
            s.push_str("    files:\n");
            for (path, digest) in &entry.files {
                s.push_str(&format!("{} {digest}\n", key(path, "      ")));
            }
        }
        s
    }

    /// Checks what parsing can't: the version, and that commits and digests are hex.
    pub fn check(&self) -> Result<(), String> {
        if self.version != 1 {
            return Err(format!("unsupported `hsm.lock` version `{}`: this hsm reads 1", self.version));
        }
        for (name, entry) in &self.registries {
            if !is_hex(&entry.commit, &[40, 64]) {
                return Err(format!("the commit of `{name}` is not a commit id: `{}`", entry.commit));
            }
            if let Some((path, _)) = entry.files.iter().find(|(_, d)| !is_hex(d, &[64])) {
                return Err(format!("the digest of `{path}` in `{name}` is not a sha256"));
            }
        }
        Ok(())
    }
}

/// Writes `text` to `path` through a temporary file renamed into place, unless the
/// file already holds it.
pub fn write_if_changed(path: &Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let tmp = path.with_file_name(format!(".{LOCK_FILE}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(true)
}

fn is_hex(s: &str, lens: &[usize]) -> bool {
    lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `name` as a mapping key at `indent`, up to its `:`. YAML allows an implicit key
/// (`"…":`) 1,024 characters at most: a longer one (a long name, or one its escapes
/// made long) is written as an explicit key, `? "…"` with the `:` on the next line
/// (found by fuzzing the `lock` target: such a lock did not read back).
fn key(name: &str, indent: &str) -> String {
    let quoted = quote(name);
    // Bytes, so at least the characters: a margin under the limit.
    if quoted.len() <= 1000 { format!("{indent}{quoted}:") } else { format!("{indent}? {quoted}\n{indent}:") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names with characters YAML can't hold raw (a tab, C1 controls, a BOM) and
    /// with quotes and backslashes read back as they were written.
    #[test]
    fn any_name_reads_back() {
        let mut lock = LockFile { version: 1, registries: BTreeMap::new() };
        let name = "git.$\t+https://exam\u{82}ple.com\u{85}\u{7f}\u{feff}\u{fffe}\"q\"\\ \u{1b}[31m\u{a0}é";
        let files = BTreeMap::from([("a\nb\u{9f}.yaml".to_string(), "a".repeat(64))]);
        lock.registries.insert(name.into(), LockEntry { commit: "c".repeat(40), files });
        let text = lock.render();
        assert!(!text.contains('\u{82}') && !text.contains('\u{1b}'), "{text}");
        let back: LockFile = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, lock);
    }

    #[test]
    fn renders_sorted_and_reads_back() {
        let mut lock = LockFile { version: 1, registries: BTreeMap::new() };
        let files = BTreeMap::from([("b.yaml".to_string(), "a".repeat(64)), ("a.yaml".to_string(), "b".repeat(64))]);
        lock.registries.insert("git+file:///r.git@v1".into(), LockEntry { commit: "c".repeat(40), files });
        lock.registries
            .insert("git+file:///a.git".into(), LockEntry { commit: "d".repeat(40), files: BTreeMap::new() });
        let text = lock.render();
        assert!(text.find("a.git").unwrap() < text.find("r.git").unwrap());
        assert!(text.find("a.yaml").unwrap() < text.find("b.yaml").unwrap());
        let back: LockFile = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.check(), Ok(()));
    }

    /// Names whose quoted form passes YAML's 1,024 characters for an implicit key
    /// (long, or made long by escapes) read back too, beside short ones.
    #[test]
    fn long_names_read_back() {
        let long = |n: usize| "\u{feff}".repeat(n / 6) + &"l".repeat(n);
        let mut lock = LockFile { version: 1, registries: BTreeMap::new() };
        for n in [10, 990, 1030, 5000] {
            let files = BTreeMap::from([(long(n), "b".repeat(64)), ("short.yaml".to_string(), "c".repeat(64))]);
            lock.registries.insert(long(n), LockEntry { commit: "a".repeat(40), files });
        }
        let text = lock.render();
        assert!(text.contains("  ? \"\\uFEFF"), "{text}");
        let back: LockFile = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, lock);
    }
}
