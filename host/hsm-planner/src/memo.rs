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
//! planned something new or no longer needed an entry. Each entry carries a MAC
//! made with the user's secret key, so only hsm, after checking a plugin's answer
//! through the WIT conversion (secret handles the plugin was given, the plugin
//! named in its files), can have written it: anyone else who can write the cache
//! folder can delete entries, not plant them. A missing, unreadable or corrupt
//! file, or an entry whose MAC is wrong or that doesn't decode, is a miss: the
//! store is only a shortcut.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hsm_model::{Authenticator, Value, stored_form, tags_equal};
use hsm_plan::{Action, ConsumerEnv};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Identifies the file format and the stored form of entries; bumped when either
/// changes.
const MAGIC: &[u8; 8] = b"HSMMEMO3";

/// What an entry's MAC covers besides the file it is in, the key and the answer:
/// it says what the bytes are, so a MAC made for something else never verifies.
const DOMAIN: &[u8] = b"hsm plan memo entry";

/// Memo files are a few MiB for the largest projects we know (5 MiB for 10,000
/// packages); anything much bigger was not written here.
const MAX_FILE: u64 = 512 << 20;

/// The digest of what a service's plugin calls receive.
pub(crate) type Key = [u8; 32];

/// An entry's MAC.
type Tag = [u8; 32];

/// What the plugin answered for a service: the merged config and the plan.
#[derive(Serialize, Deserialize)]
pub(crate) struct Answer {
    pub(crate) merged: Value,
    pub(crate) actions: Vec<Action>,
    pub(crate) env: Vec<ConsumerEnv>,
}

/// Plugin answers from earlier runs, and those of this run.
pub struct Memo<'a> {
    /// Where it is kept; `None` when it is not (then nothing is remembered).
    path: Option<PathBuf>,
    /// What verifies the entries read; `None` when there is no user key yet (then
    /// nothing is read, but this run's answers are kept if a key is given to
    /// [`Memo::save`]).
    auth: Option<&'a dyn Authenticator>,
    /// The file as read.
    bytes: Vec<u8>,
    /// Where each entry's answer is in `bytes`, and its MAC (not yet verified).
    index: HashMap<Key, (std::ops::Range<usize>, Tag)>,
    /// The entries this run used or made, to write back.
    this_run: Mutex<Vec<(Key, Entry)>>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

enum Entry {
    /// Read from the file (and verified): its place in `bytes`, and its MAC.
    Old(std::ops::Range<usize>, Tag),
    /// Made in this run.
    New(Vec<u8>),
}

impl<'a> Memo<'a> {
    /// A memo that remembers nothing (for `--no-cache`, or where there is no cache
    /// folder or no user key).
    pub fn disabled() -> Self {
        Self {
            path: None,
            auth: None,
            bytes: Vec::new(),
            index: HashMap::new(),
            this_run: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    /// The memo kept in `path`, read now if there is a user key: `auth`, keyed with
    /// it, checks the entries' MACs.
    pub fn open(path: PathBuf, auth: Option<&'a dyn Authenticator>) -> Self {
        let bytes = match auth {
            Some(_) => hsm_model::cache::read_entry(&path, MAX_FILE).unwrap_or_default(),
            None => Vec::new(),
        };
        let index = parse_index(&bytes).unwrap_or_default();
        Self { path: Some(path), auth, bytes, index, ..Self::disabled() }
    }

    /// An entry's MAC: over the file it is in too, so an entry copied into another
    /// project's memo, or another build's, never verifies.
    fn tag(path: &Path, auth: &dyn Authenticator, key: &Key, body: &[u8]) -> Tag {
        auth.tag(&[DOMAIN, path.as_os_str().as_encoded_bytes(), key, body])
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
        // The stored form is digested as it is made (a hasher is a writer).
        // Buffered: the encoder writes a few bytes at a time, and BLAKE3 is fastest
        // on many KiB at once.
        let mut out = std::io::BufWriter::with_capacity(16 << 10, blake3::Hasher::new());
        stored_form(|| rmp_serde::encode::write(&mut out, parts)).ok()?;
        Some(out.into_inner().ok()?.finalize().into())
    }

    /// The answer stored under `key`, if any, its MAC verifies and it decodes.
    pub(crate) fn get(&self, key: &Key) -> Option<Answer> {
        let (path, auth) = (self.path.as_ref()?, self.auth?);
        let (range, tag) = self.index.get(key)?;
        let body = &self.bytes[range.clone()];
        if !tags_equal(&Self::tag(path, auth, key, body), tag) {
            return None;
        }
        let answer = rmp_serde::from_slice(body).ok()?;
        self.this_run.lock().expect("the memo's lock is never poisoned").push((*key, Entry::Old(range.clone(), *tag)));
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// Counts an answer the plugin just gave, and stores it under `key` if any.
    /// Only answers that passed the WIT conversion's checks may be put here: a hit
    /// skips them.
    pub(crate) fn put(&self, key: Option<Key>, answer: &Answer) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let Some(key) = key else { return };
        if let Ok(bytes) = stored_form(|| rmp_serde::to_vec(answer)) {
            self.this_run.lock().expect("the memo's lock is never poisoned").push((key, Entry::New(bytes)));
        }
    }

    /// Writes the entries this run used or made, unless they are exactly those read,
    /// with MACs made by `auth` (keyed with the user's key; without one nothing is
    /// written). Failing to write is not an error (the memo is only a shortcut).
    pub fn save(self, auth: Option<&dyn Authenticator>) {
        let (Some(path), Some(auth)) = (self.path, auth) else { return };
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
            let (body, tag) = match entry {
                Entry::Old(range, tag) => (&self.bytes[range.clone()], *tag),
                Entry::New(bytes) => (bytes.as_slice(), Self::tag(&path, auth, key, bytes)),
            };
            out.extend_from_slice(key);
            out.extend_from_slice(&(body.len() as u64).to_le_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(&tag);
        }
        let _ = hsm_model::cache::write_entry(&path, &out);
    }
}

/// The entries of a memo file, after the magic and a count: key, the answer's length
/// and bytes, then the MAC.
fn parse_index(bytes: &[u8]) -> Option<HashMap<Key, (std::ops::Range<usize>, Tag)>> {
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
        let (tag, after) = body[len..].split_first_chunk::<32>()?;
        index.insert(*key, (start..start + len, *tag));
        rest = after;
    }
    rest.is_empty().then_some(index)
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*n), rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_model::cache::testing::TestKey;
    use hsm_model::{Encoding, Piece, SecretId, Text};
    use hsm_plan::Consumer;
    use indexmap::IndexMap;

    const KEY: TestKey = TestKey(1);

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
        let memo = Memo::open(path.clone(), Some(&KEY));
        let key = Memo::key(&("postgres", 1)).unwrap();
        assert!(memo.get(&key).is_none());
        memo.put(Some(key), &answer());
        assert_eq!(memo.misses(), 1);
        memo.save(Some(&KEY));

        let memo = Memo::open(path.clone(), Some(&KEY));
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
        let memo = Memo::open(path.clone(), Some(&KEY));
        let key = Memo::key(&"k").unwrap();
        memo.put(Some(key), &answer());
        memo.save(Some(&KEY));
        let written = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let memo = Memo::open(path.clone(), Some(&KEY));
        assert!(memo.get(&key).is_some());
        memo.save(Some(&KEY));
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), written);
    }

    #[test]
    fn entries_no_longer_used_are_dropped_when_the_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memo");
        let (a, b, c) = (Memo::key(&"a").unwrap(), Memo::key(&"b").unwrap(), Memo::key(&"c").unwrap());
        let memo = Memo::open(path.clone(), Some(&KEY));
        memo.put(Some(a), &answer());
        memo.put(Some(b), &answer());
        memo.save(Some(&KEY));
        let memo = Memo::open(path.clone(), Some(&KEY));
        assert!(memo.get(&a).is_some());
        memo.put(Some(c), &answer());
        memo.save(Some(&KEY));
        let memo = Memo::open(path, Some(&KEY));
        assert!(memo.get(&a).is_some() && memo.get(&c).is_some());
        assert!(memo.get(&b).is_none(), "b was not used by the last run");
    }

    #[test]
    fn a_corrupt_or_truncated_file_is_a_miss_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memo");
        let key = Memo::key(&"k").unwrap();
        let memo = Memo::open(path.clone(), Some(&KEY));
        memo.put(Some(key), &answer());
        memo.save(Some(&KEY));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(Memo::open(path.clone(), Some(&KEY)).get(&key).is_none());
        let mut garbled = bytes.clone();
        let last = garbled.len() - 10;
        garbled[last..].fill(0xff);
        std::fs::write(&path, &garbled).unwrap();
        assert!(Memo::open(path.clone(), Some(&KEY)).get(&key).is_none());
        std::fs::write(&path, b"not a memo").unwrap();
        assert!(Memo::open(path, Some(&KEY)).get(&key).is_none());
    }

    #[test]
    fn entries_not_made_with_the_users_key_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.memo");
        let key = Memo::key(&"k").unwrap();
        let memo = Memo::open(path.clone(), Some(&TestKey(2)));
        memo.put(Some(key), &answer());
        memo.save(Some(&TestKey(2)));
        assert!(Memo::open(path.clone(), Some(&TestKey(2))).get(&key).is_some());
        // Another user's key (or someone who planted the file) verifies nothing.
        assert!(Memo::open(path.clone(), Some(&KEY)).get(&key).is_none());
        // Nor does the file copied to another project's (or build's) place.
        let elsewhere = dir.path().join("other.memo");
        std::fs::copy(&path, &elsewhere).unwrap();
        assert!(Memo::open(elsewhere, Some(&TestKey(2))).get(&key).is_none());
        // Without a key nothing is read, and nothing written unless one is given.
        assert!(Memo::open(path.clone(), None).get(&key).is_none());
        let keyless = dir.path().join("keyless.memo");
        let memo = Memo::open(keyless.clone(), None);
        memo.put(Some(key), &answer());
        memo.save(None);
        assert!(!keyless.exists());
        let memo = Memo::open(keyless.clone(), None);
        memo.put(Some(key), &answer());
        memo.save(Some(&TestKey(2)));
        assert!(Memo::open(keyless, Some(&TestKey(2))).get(&key).is_some(), "the key came with the save");

        // An entry whose answer was changed after it was written: its MAC fails.
        let memo = Memo::open(path.clone(), Some(&KEY));
        memo.put(Some(key), &answer());
        memo.save(Some(&KEY));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.windows(4).position(|w| w == b"auth").expect("the package name is in the entry");
        bytes[at..at + 4].copy_from_slice(b"evil");
        std::fs::write(&path, &bytes).unwrap();
        assert!(Memo::open(path, Some(&KEY)).get(&key).is_none());
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
