//! What plugins answered in earlier runs, so that a run whose services are as they
//! were makes no plugin call. A plugin is a pure function of its code and its input:
//! it has no clock, no randomness, no files and no network, and it sees secrets only
//! as references. So a service's merged config, actions and environment are kept,
//! per project, keyed by a digest of everything the two calls receive (the
//! plugin's digest, the limits, the service with its contributions, profile and
//! consumers, in their stored form: secret ids and labels, never values). What a
//! stored answer says is still checked against the plugin's capabilities and grants
//! on every run, as a fresh one is.
//!
//! The store is one file per project, read once and rewritten only when a run
//! planned something new or no longer needed an entry. A missing, unreadable or
//! corrupt file, or an entry that doesn't decode, is a miss: the store is only a
//! shortcut.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hsm_model::{Value, stored_form};
use hsm_plan::{Action, ConsumerEnv};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies the file format and the stored form of entries; bumped when either
/// changes.
const MAGIC: &[u8; 8] = b"HSMMEMO1";

/// The digest of what a service's plugin calls receive.
pub(crate) type Key = [u8; 32];

/// What the plugin answered for a service: the merged config and the plan.
#[derive(Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) merged: Value,
    pub(crate) actions: Vec<Action>,
    pub(crate) env: Vec<ConsumerEnv>,
}

/// Plugin answers from earlier runs, and those of this run.
pub struct Memo {
    /// Where it is kept; `None` when it is not (then nothing is remembered).
    path: Option<PathBuf>,
    /// The file as read.
    bytes: Vec<u8>,
    /// Where each entry of the file is in `bytes`.
    index: HashMap<Key, std::ops::Range<usize>>,
    /// The entries this run used or made, to write back.
    this_run: Mutex<Vec<(Key, Entry)>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

enum Entry {
    /// Read from the file: its place in `bytes`.
    Old(std::ops::Range<usize>),
    /// Made in this run.
    New(Vec<u8>),
}

impl Memo {
    /// A memo that remembers nothing (for `--no-cache`, or where there is no cache
    /// folder).
    pub fn disabled() -> Self {
        Self {
            path: None,
            bytes: Vec::new(),
            index: HashMap::new(),
            this_run: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    /// The memo kept in `path`, read now.
    pub fn open(path: PathBuf) -> Self {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let index = parse_index(&bytes).unwrap_or_default();
        Self { path: Some(path), bytes, index, ..Self::disabled() }
    }

    /// The file a project's memo is kept in, under the cache folder `dir`. One file
    /// per project folder, so that projects don't push each other's entries out.
    pub fn path_for(dir: &Path, project_dir: &Path, project: &str) -> PathBuf {
        let digest = Sha256::digest(project_dir.as_os_str().as_encoded_bytes());
        dir.join("plans").join(format!("{project}-{}.memo", hex::encode(&digest[..8])))
    }

    /// How many services were planned by their plugins rather than from the memo.
    pub fn misses(&self) -> usize {
        self.misses.load(Ordering::Relaxed)
    }

    /// How many services were planned from the memo.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// The digest of `parts`, each in its stored form; `None` when this memo
    /// remembers nothing (no need to hash then).
    pub(crate) fn key_for(&self, parts: &impl Serialize) -> Option<Key> {
        self.path.as_ref().and_then(|_| Self::key(parts))
    }

    /// The digest of `parts`, each in its stored form.
    pub(crate) fn key(parts: &impl Serialize) -> Option<Key> {
        let bytes = stored_form(|| rmp_serde::to_vec(parts)).ok()?;
        Some(Sha256::digest(&bytes).into())
    }

    /// The answer stored under `key`, if any (and it decodes).
    pub(crate) fn get(&self, key: &Key) -> Option<Answer> {
        let range = self.index.get(key)?;
        let answer = rmp_serde::from_slice(&self.bytes[range.clone()]).ok()?;
        self.this_run.lock().expect("the memo's lock is never poisoned").push((*key, Entry::Old(range.clone())));
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// Counts an answer the plugin just gave, and stores it under `key` if any.
    pub(crate) fn put(&self, key: Option<Key>, answer: &Answer) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let Some(key) = key else { return };
        if let Ok(bytes) = stored_form(|| rmp_serde::to_vec(answer)) {
            self.this_run.lock().expect("the memo's lock is never poisoned").push((key, Entry::New(bytes)));
        }
    }

    /// Writes the entries this run used or made, unless they are exactly those read.
    /// Failing to write is not an error (the memo is only a shortcut).
    pub fn save(self) {
        let Some(path) = self.path else { return };
        let mut entries = self.this_run.into_inner().expect("the memo's lock is never poisoned");
        entries.sort_by_key(|e| e.0);
        entries.dedup_by(|a, b| a.0 == b.0);
        let unchanged = self.misses.load(Ordering::Relaxed) == 0 && entries.len() == self.index.len();
        if unchanged {
            return;
        }
        let mut out = Vec::with_capacity(self.bytes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
        for (key, entry) in &entries {
            let body = match entry {
                Entry::Old(range) => &self.bytes[range.clone()],
                Entry::New(bytes) => bytes,
            };
            out.extend_from_slice(key);
            out.extend_from_slice(&(body.len() as u64).to_le_bytes());
            out.extend_from_slice(body);
        }
        let _ = write_atomically(&path, &out);
    }
}

/// The entries of a memo file: key, then length and bytes, after the magic and a count.
fn parse_index(bytes: &[u8]) -> Option<HashMap<Key, std::ops::Range<usize>>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (count, mut rest) = split_u64(rest)?;
    let mut index = HashMap::with_capacity(usize::try_from(count).ok()?.min(1 << 20));
    for _ in 0..count {
        let (key, after_key) = rest.split_first_chunk::<32>()?;
        let (len, body) = split_u64(after_key)?;
        let len = usize::try_from(len).ok()?;
        if body.len() < len {
            return None;
        }
        let start = bytes.len() - body.len();
        index.insert(*key, start..start + len);
        rest = &body[len..];
    }
    rest.is_empty().then_some(index)
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*n), rest))
}

/// Writes a file whole or not at all: a reader never sees half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no parent folder"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let write = || {
        // Only the user: entries hold secret labels, which may carry inline defaults.
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        drop(file);
        std::fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_model::{Encoding, Piece, SecretId, Text};
    use hsm_plan::Consumer;
    use indexmap::IndexMap;

    fn answer() -> Answer {
        let secret = Text::from_pieces([
            Piece::Lit("postgres://app:".into()),
            Piece::Secret { id: SecretId(3), label: "${PG_PASSWORD}".into(), encoding: Encoding::Url },
            Piece::Lit("@db".into()),
        ]);
        Answer {
            merged: Value::Map(IndexMap::from([
                ("version".to_string(), Value::from("16")),
                (
                    "list".to_string(),
                    Value::List(vec![Value::Int(1), Value::Float(0.5), Value::Bool(true), Value::Null]),
                ),
                ("url".to_string(), Value::Text(secret.clone())),
            ])),
            actions: vec![Action::UvInstall {
                packages: vec![hsm_plan::PythonPackage {
                    name: "auth".into(),
                    source: hsm_plan::PackageSource::Pypi("auth>=1".into()),
                }],
            }],
            env: vec![ConsumerEnv {
                consumer: Consumer::Package("auth".into()),
                vars: vec![("DATABASE_URL".into(), secret)],
            }],
        }
    }

    #[test]
    fn answers_read_back_as_they_were_written_with_secret_references_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans/p.memo");
        let memo = Memo::open(path.clone());
        let key = Memo::key(&("postgres", 1)).unwrap();
        assert!(memo.get(&key).is_none());
        memo.put(Some(key), &answer());
        assert_eq!(memo.misses(), 1);
        memo.save();

        let memo = Memo::open(path.clone());
        let got = memo.get(&key).expect("stored");
        let want = answer();
        assert_eq!(got.merged, want.merged);
        assert_eq!(got.actions, want.actions);
        assert_eq!(got.env, want.env);
        assert_eq!(memo.misses(), 0);
        // The file holds the reference, never anything else about the secret.
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.windows(14).any(|w| w == b"${PG_PASSWORD}"));
    }

    #[test]
    fn a_run_with_nothing_new_does_not_rewrite_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memo");
        let memo = Memo::open(path.clone());
        let key = Memo::key(&"k").unwrap();
        memo.put(Some(key), &answer());
        memo.save();
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let memo = Memo::open(path.clone());
        assert!(memo.get(&key).is_some());
        memo.save();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), written);
    }

    #[test]
    fn entries_no_longer_used_are_dropped_when_the_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memo");
        let (a, b, c) = (Memo::key(&"a").unwrap(), Memo::key(&"b").unwrap(), Memo::key(&"c").unwrap());
        let memo = Memo::open(path.clone());
        memo.put(Some(a), &answer());
        memo.put(Some(b), &answer());
        memo.save();
        let memo = Memo::open(path.clone());
        assert!(memo.get(&a).is_some());
        memo.put(Some(c), &answer());
        memo.save();
        let memo = Memo::open(path);
        assert!(memo.get(&a).is_some() && memo.get(&c).is_some());
        assert!(memo.get(&b).is_none(), "b was not used by the last run");
    }

    #[test]
    fn a_corrupt_or_truncated_file_is_a_miss_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memo");
        let key = Memo::key(&"k").unwrap();
        let memo = Memo::open(path.clone());
        memo.put(Some(key), &answer());
        memo.save();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Memo::open(path.clone()).get(&key).is_none());
        let mut garbled = bytes.clone();
        let last = garbled.len() - 10;
        garbled[last..].fill(0xff);
        std::fs::write(&path, &garbled).unwrap();
        assert!(Memo::open(path.clone()).get(&key).is_none());
        std::fs::write(&path, b"not a memo").unwrap();
        assert!(Memo::open(path).get(&key).is_none());
    }

    #[test]
    fn keys_tell_secret_references_apart() {
        let text = |id, label: &str| {
            Value::Text(Text::from_pieces([Piece::Secret {
                id: SecretId(id),
                label: label.into(),
                encoding: Encoding::Raw,
            }]))
        };
        assert_ne!(Memo::key(&text(1, "${A}")), Memo::key(&text(2, "${A}")));
        assert_ne!(Memo::key(&text(1, "${A}")), Memo::key(&text(1, "${B}")));
        assert_ne!(Memo::key(&text(1, "${A}")), Memo::key(&Value::from("${A}")));
        assert_eq!(Memo::key(&text(1, "${A}")), Memo::key(&text(1, "${A}")));
    }
}
