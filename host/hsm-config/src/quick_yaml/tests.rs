//! The quick reader against serde-saphyr: whatever it accepts it must read exactly as
//! serde-saphyr does, locations included; it must accept the YAML that registries
//! and projects are made of (or it saves nothing); and random edits of such files
//! must find no difference.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::from_str;
use crate::Spanned;
use crate::file::{ProjectFile, RawValue, RegistryFile};

thread_local! {
    /// The line of `quick_yaml.rs` where the reader last declined.
    pub(super) static WHERE: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Where the quick reader declined `text` as a `T`, for messages.
fn why<T: DeserializeOwned>(text: &str) -> String {
    WHERE.set(None);
    match from_str::<T>(text) {
        Some(_) => "it did not".into(),
        None => format!("at quick_yaml.rs:{}", WHERE.get().map_or("?".into(), |l| l.to_string())),
    }
}

fn saphyr<T: DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, crate::load::parse_options())
}

/// Whether the quick reader read `text` as a `T`; panics if serde-saphyr reads it
/// differently or not at all.
fn agrees<T: DeserializeOwned + Debug>(text: &str) -> bool {
    let Some(quick) = from_str::<T>(text) else { return false };
    match saphyr::<T>(text) {
        Ok(slow) => {
            let (quick, slow) = (format!("{quick:#?}"), format!("{slow:#?}"));
            assert!(quick == slow, "read differently:\n{text}\n--- quick:\n{quick}\n--- serde-saphyr:\n{slow}");
        }
        Err(e) => panic!("the quick reader accepted what serde-saphyr rejects ({e}):\n{text}"),
    }
    true
}

/// Checks `text` as any value, as a registry file and as a project file; returns
/// whether it was read as any value.
fn check(text: &str) -> bool {
    agrees::<RegistryFile>(text);
    agrees::<ProjectFile>(text);
    agrees::<Spanned<RawValue>>(text)
}

/// A registry file shaped as the benchmark's and users' are.
const REGISTRY: &str = r#"version: 1
# Services first.
services:
  svc-0:
    kind: postgres
    profile: managed-dev
    params:
      image: "example/postgres:1.0"
      port: 5000
  svc-2:
    description: A chunker, with an env map.
    kind: chunker
    params:
      image: ghcr.io/example/chunker:latest
      env: { TAG: "${BENCH_TAG:-1.2}", EMPTY: '' }

profiles:
  managed-dev:
    mode: managed
  remote:
    mode: external
    services:
      svc-0: { host: "svc-0.example", user: app, password: "${BENCH_SECRET}" }

packages:
  pkg-1:
    description: Generated package 1, with a comma
    pypi: "pkg-1>=1.0"
    implies:
      - service: svc-0
        params: { db_name: pkg_1, env_names: { DB_HOST: B_DB_HOST, DB_PORT: B_DB_PORT } }
      - service: svc-2
        params: {}
      - package: pkg-0
  pkg-0:
    editable: ../src/pkg-0   # a comment after a value
    implies:
    - service: svc-0
      params:
        db_name: 'pkg''s'
        extensions: [vector, "pg_trgm"]
        replicas: -2
        flags: [true, False, null, ~, 0, 17]
  "quoted-name" :
    pypi: quoted-name==2.0
"#;

const PROJECT: &str = r#"version: 1
project: my-app
profile: managed-dev
registries: [bundled, "./registry"]
env_file: [.env, ".env.local"]
packages:
  - auth-service
  - name: local-tool
    editable: ./tools/local
    implies:
      - service: postgres
services:
  postgres: { profile: remote }
  qdrant:
    params:
      collection: "docs-é"
  chunker:
plugins:
  redis:
    path: plugins/redis.wasm
    sha256: "0123abcd"
    grant: [containers]
"#;

#[test]
fn reads_registries_and_projects_as_serde_saphyr_does() {
    assert!(agrees::<RegistryFile>(REGISTRY), "declined {}", why::<RegistryFile>(REGISTRY));
    assert!(agrees::<Spanned<RawValue>>(REGISTRY), "declined {}", why::<Spanned<RawValue>>(REGISTRY));
    assert!(agrees::<ProjectFile>(PROJECT), "declined {}", why::<ProjectFile>(PROJECT));
    assert!(agrees::<Spanned<RawValue>>(PROJECT), "declined {}", why::<Spanned<RawValue>>(PROJECT));
}

#[test]
fn reads_the_bundled_registry() {
    for (name, text) in crate::BUNDLED {
        assert!(agrees::<RegistryFile>(text), "declined the bundled `{name}` {}", why::<RegistryFile>(text));
    }
}

/// Every YAML file in the repository: what the quick reader reads, it reads as
/// serde-saphyr does (most of the invalid inputs are declined, which is checked
/// by their own snapshots through the loader).
#[test]
fn agrees_on_every_yaml_file_in_the_repository() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "target" && name != ".git" {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["registry", "examples", "tests"] {
        walk(&root.join(dir), &mut files);
    }
    assert!(files.len() > 40, "found only {} YAML files", files.len());
    let mut read = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        read += usize::from(check(&text));
    }
    assert!(read * 2 > files.len(), "the quick reader read only {read} of {} files", files.len());
}

/// Texts at the edges of what the quick reader takes, each with whether it must
/// read it (else it must decline; either way, never differ).
const CASES: &[(&str, bool)] = &[
    ("a: 1\n", true),
    ("a: 1", true),
    ("# c\n\na:   # c\nb: ~\nc: null\nd:    x y z   # t\n", true),
    ("a:\n- x\n-   y\nb: 1\n", true),
    ("a:\n  - k: 1\n    j: [1, 2]\n  -  \"x\"\n", true),
    ("a:\n- k: 1\n  j: 2\n- k: 3\n", true),
    ("a:\n  # only a comment\n\n  deep: 1\n", true),
    ("a: { }\nb: []\nc: [ {x: 1}, [y] ]\n", true),
    ("\"j k\": -7\né: \"ü\"\nk:  'it''s'\nl: \"q\\\"u\\n\\t\\\\\"\n", true),
    ("a: true\nb: True\nc: FALSE\n", true),
    ("c: yes\nd: on\nn: NO\n", true),
    ("e: 0\n", true),
    ("f: -0\n", true),
    ("g: 0x1F\n", false),
    ("g: 0o17\n", false),
    ("h: 1_000\n", false),
    ("a:\n  <<: {b: 1}\n  c: 2\n", false),
    ("a: {<<: {b: 1}}\n", false),
    ("a:\n  \"<<\": 1\n", true),
    ("a: 1.5\n", false),
    ("a: 007\n", false),
    ("a: 99999999999999999999\n", false),
    ("a: .inf\n", false),
    ("a: inf\n", false),
    ("a: &x 1\nb: *x\n", false),
    ("a: !!str 1\n", false),
    ("a: |\n  text\n", false),
    ("a: >\n  text\n", false),
    ("a: multi\n  line\n", false),
    ("a: \"multi\n  line\"\n", false),
    ("a: [1,\n  2]\n", false),
    ("---\na: 1\n", false),
    ("a: 1\n...\n", false),
    ("a:\tb\n", false),
    ("a: 1\r\nb: 2\r\n", false),
    ("a: 1\na: 2\n", false),
    ("a: {x: 1, x: 2}\n", false),
    ("? a\n: 1\n", false),
    ("- a\n- b\n", false),
    ("a: b: c\n", false),
    ("a: [x, ]\n", false),
    ("a: {x}\n", false),
    ("a: {x: }\n", false),
    ("a:\n  b: 1\n   c: 2\n", false),
    ("a:\n    b: 1\n  c: 2\n", false),
    ("a:\n-\n- x\n", false),
    ("a:\n - - x\n", false),
    ("a:\n  value\n", false),
    ("a: 'x'y\n", false),
    ("a: \"\\e\"\n", false),
    ("1: x\n", false),
    ("null: x\n", false),
    ("a: b #c\nd: e#f\n", true),
    ("a: [b #c]\n", false),
    ("a: x:y\nb: {c: d:e}\n", false),
    ("a: {\"k\": v, 'l': \"w\"}\n", true),
    ("a: {k:v}\n", false),
    ("a  : 1\n", true),
    ("a:\n- k: 1\nb: 2\n", true),
    ("- a:\n  - x\n", false),
    ("a:\n  - a:\n    - x\n    b: {c: [d]}\n", true),
    ("a:\n  - {k: 1}\n  - [x, 'y']\n", true),
    ("a: ...x\nb: .env\nc: ./p\nd: 10.0.0.1\ne: 1.2.3-rc\n", true),
    ("a: .5\n", false),
    ("a: +1\n", false),
    ("a: \u{2028}\n", false),
    ("a: \u{85}\n", false),
    ("a: \u{feff}\n", false),
    ("version: 1\nprofiles:\n  p:\n    mode: managed\n    services:\n      s: {image: \"x:1\"}\n", true),
];

/// What serde-saphyr refuses for its limits, the quick reader must not accept:
/// keys its scanner gives up on, and more nodes than it allows (checked here on
/// the quick reader alone, as serde-saphyr is slow on them in a debug build).
#[test]
fn declines_past_serde_saphyrs_limits() {
    let long = "k".repeat(1025);
    for text in [
        format!("{long}: 1\n"),
        format!("\"{long}\": 1\n"),
        format!("a:\n- {long}: 1\n"),
        format!("a: {{{long}: 1}}\n"),
    ] {
        assert!(from_str::<Spanned<RawValue>>(&text).is_none(), "a key of 1,025 characters was read");
    }
    let short = "k".repeat(900);
    assert!(check(&format!("{short}: 1\n")), "a key of 900 characters was declined");
    let too_many = format!("a: [{}]\n", vec!["1"; super::MAX_NODES].join(","));
    assert!(from_str::<Spanned<RawValue>>(&too_many).is_none(), "more than MAX_NODES nodes were read");
}

/// A registry of 10,000 packages in one file is about 300,000 nodes: more than
/// serde-saphyr's default budget, within hsm's, read by both readers.
#[test]
fn a_file_of_300_000_nodes_is_read() {
    let many = format!("a: [{}]\n", vec!["1"; 300_000].join(","));
    assert!(from_str::<Spanned<RawValue>>(&many).is_some());
    assert!(saphyr::<Spanned<RawValue>>(&many).is_ok());
}

#[test]
fn reads_what_it_should_and_declines_the_rest() {
    for (text, read) in CASES {
        assert_eq!(check(text), *read, "{text:?}: declined {}", why::<Spanned<RawValue>>(text));
    }
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Edits that move text across the quick reader's boundaries: YAML's indicators,
/// spaces and line breaks, indentation, and lines moved or doubled.
fn mutate(text: &str, rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        " ", "  ", "\n", ":", ": ", "- ", "-", "#", " #", "\"", "'", "{", "}", "[", "]", ",", ", ", "a", "1", "-1",
        "~", "null", "true", ".", "é", "<<: ", "\\", "\\n", "&a ", "*a", "!", "|", ">", "?", "\t", "0", "x: y", "\n  ",
    ];
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    match rng.below(6) {
        0 | 1 => {
            let at = rng.below(chars.len() + 1);
            let piece = PIECES[rng.below(PIECES.len())];
            chars.splice(at..at, piece.chars());
            chars.into_iter().collect()
        }
        2 => {
            let at = rng.below(chars.len());
            let end = (at + 1 + rng.below(3)).min(chars.len());
            chars.drain(at..end);
            chars.into_iter().collect()
        }
        3 => {
            let i = rng.below(lines.len());
            let line = lines[i].clone();
            lines.insert(rng.below(lines.len() + 1), line);
            lines.join("\n")
        }
        4 => {
            let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(i, j);
            lines.join("\n")
        }
        _ => {
            let i = rng.below(lines.len());
            match rng.below(3) {
                0 => lines[i].insert(0, ' '),
                1 => lines[i].insert_str(0, "  "),
                _ => {
                    if lines[i].starts_with(' ') {
                        lines[i].remove(0);
                    }
                }
            }
            lines.join("\n")
        }
    }
}

/// `HSM_QUICK_YAML_ROUNDS=N` multiplies the edits tried, and `HSM_QUICK_YAML_SEED`
/// changes them, for a longer search by hand.
#[test]
fn random_edits_find_no_difference() {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let times = var("HSM_QUICK_YAML_ROUNDS").unwrap_or(1) as usize;
    let mut rng = Rng(var("HSM_QUICK_YAML_SEED").unwrap_or(0x9E37_79B9_7F4A_7C15) | 1);
    let small = CASES.iter().filter(|(_, read)| *read).map(|(t, _)| (*t, 300));
    let mut read = 0;
    let mut total = 0;
    for (base, rounds) in [(REGISTRY, 4000), (PROJECT, 3000)].into_iter().chain(small) {
        for _ in 0..rounds * times {
            // One to three edits of the base.
            let mut text = mutate(base, &mut rng);
            for _ in 0..rng.below(3) {
                text = mutate(&text, &mut rng);
            }
            total += 1;
            read += usize::from(check(&text));
        }
    }
    // The edits must leave much of the text readable, or they test little.
    assert!(read * 4 > total, "the quick reader read only {read} of {total} edited texts");
}
