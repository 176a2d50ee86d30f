//! Benchmark (not a test): how long the plugin runtime takes to load the bundled
//! plugins, to instantiate one plugin and call it, and to load a third-party
//! component the first time (compile) and from the compile cache. Prints figures;
//! `BENCHMARKS.md` records them. Run with `cargo bench -p hsm-runtime --bench plugins`
//! (`-- calls` for the bundled plugins only). Besides wall-clock times it prints the
//! process's page faults per run, which a busy machine disturbs less.

#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use hsm_model::Value;
use hsm_plan::Consumer;
use hsm_runtime::*;
use indexmap::IndexMap;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Minor page faults of the process so far (`minflt`, the tenth field of
/// `/proc/self/stat`, counted over every thread).
fn page_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) is in parentheses and may hold spaces.
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    after_name.split(' ').nth(7).and_then(|f| f.parse().ok()).expect("minflt")
}

struct Timing {
    median: Duration,
    min: Duration,
    faults: f64,
}

/// Wall-clock median and minimum, and mean page faults, of `n` runs of `f`.
fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Timing {
    let mut samples = Vec::with_capacity(n);
    let faults_start = page_faults();
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(f());
        samples.push(start.elapsed());
    }
    let faults = (page_faults() - faults_start) as f64 / n as f64;
    let min = *samples.iter().min().unwrap();
    Timing { median: median(samples), min, faults }
}

fn show(what: &str, t: Timing) {
    println!(
        "{what:<58} median {:>9.1} µs   min {:>9.1} µs   page faults {:>6.1}",
        t.median.as_secs_f64() * 1e6,
        t.min.as_secs_f64() * 1e6,
        t.faults
    );
}

#[derive(Debug)]
struct Key;

impl Authenticator for Key {
    fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        h.finalize().into()
    }
}

/// The child process of `first_loads`: creates the engine, loads the bundled
/// plugins once, and prints the wall-clock time (ns) and page faults of the load.
fn load_once() {
    let host = PluginHost::default();
    let (faults, start) = (page_faults(), Instant::now());
    let plugins = host.load_bundled().unwrap();
    let wall = start.elapsed();
    let faults = page_faults() - faults;
    assert!(plugins.iter().all(Plugin::precompiled), "the bundled plugins must load precompiled");
    println!("{} {faults}", wall.as_nanos());
}

/// Loading the bundled plugins as a run of hsm does: once, in a fresh process
/// (later loads in the same process share the code). `n` processes.
fn first_loads(n: usize) -> Timing {
    let mut samples = Vec::with_capacity(n);
    let mut faults = 0u64;
    for _ in 0..n {
        let out = std::process::Command::new(std::env::current_exe().unwrap()).arg("load-once").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8(out.stdout).unwrap();
        let f: Vec<u64> = line.split_whitespace().map(|w| w.parse().unwrap()).collect();
        samples.push(Duration::from_nanos(f[0]));
        faults += f[1];
    }
    let min = *samples.iter().min().unwrap();
    Timing { median: median(samples), min, faults: faults as f64 / n as f64 }
}

fn main() {
    if std::env::args().any(|a| a == "load-once") {
        return load_once();
    }
    let started = Instant::now();
    let host = PluginHost::default();
    println!("engine created (once per process): {:.1} ms", started.elapsed().as_secs_f64() * 1e3);

    show("load the 4 bundled plugins, first in a process", first_loads(40));
    let bundled = host.load_bundled().unwrap();
    show("load them again in the same process (code shared)", time(200, || host.load_bundled().unwrap()));

    let pg = bundled.iter().find(|p| p.name() == "postgres").unwrap();
    show("one instantiate + `describe`-free call: postgres merge", {
        let params = Value::Map(IndexMap::from([("db_name".to_string(), Value::from("auth"))]));
        let input = MergeInput {
            service: "postgres",
            kind: "postgres",
            defaults: &Value::Null,
            contributions: vec![ContributionInput {
                from: Consumer::Package("auth".into()),
                origin: "r.yaml:1:1".into(),
                params: &params,
            }],
        };
        time(5000, || pg.merge(&input).unwrap())
    });
    show("one instantiate + plan: postgres, managed, 2 consumers", {
        let a = Value::Map(IndexMap::from([("db_name".to_string(), Value::from("auth"))]));
        let b = Value::Map(IndexMap::from([("db_name".to_string(), Value::from("billing"))]));
        let config = Value::Map(IndexMap::from([
            ("version".to_string(), Value::from("16")),
            ("db_list".to_string(), Value::from("auth,billing")),
        ]));
        let input = PlanInput {
            project: "bench",
            service: "postgres",
            kind: "postgres",
            config: &config,
            profile: ProfileInput { name: "managed-dev", mode: hsm_plan::Mode::Managed, settings: &Value::Null },
            consumers: vec![
                ConsumerInput { consumer: Consumer::Package("auth".into()), params: &a },
                ConsumerInput { consumer: Consumer::Package("billing".into()), params: &b },
            ],
            host_address: "127.0.0.1",
        };
        time(5000, || pg.plan(&input).unwrap())
    });

    // `-- calls`: only the bundled plugins (skips the slow compile below).
    if std::env::args().any(|a| a == "calls") {
        return;
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/third-party-plugin/registry/plugins/redis.wasm");
    let bytes = std::fs::read(path).unwrap();
    println!(
        "third-party component: examples/third-party-plugin/registry/plugins/redis.wasm ({} KiB)",
        bytes.len() / 1024
    );
    show(
        "first load: compile + describe",
        time(5, || host.load_component(&bytes, PluginSource::File(path.into())).unwrap()),
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = CompileCache::new(dir.path(), &host, &Key);
    assert_eq!(cache.load(&host, &bytes, PluginSource::File(path.into())).unwrap().1, CacheOutcome::Compiled);
    show(
        "cached load: read + verify MAC + deserialize + describe",
        time(200, || {
            let (p, outcome) = cache.load(&host, &bytes, PluginSource::File(path.into())).unwrap();
            assert_eq!(outcome, CacheOutcome::Hit);
            p
        }),
    );
}
