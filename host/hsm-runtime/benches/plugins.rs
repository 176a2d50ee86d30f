//! Benchmark (not a test): how long the plugin runtime takes to load the bundled
//! plugins, to instantiate one plugin and call it, and to load a third-party
//! component the first time (compile) and from the compile cache. Prints figures;
//! `BENCHMARKS.md` records them. Run with `cargo bench -p hsm-runtime --bench plugins`.

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

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        std::hint::black_box(f());
        samples.push(start.elapsed());
    }
    let min = *samples.iter().min().unwrap();
    (median(samples), min)
}

fn show(what: &str, (median, min): (Duration, Duration)) {
    println!("{what:<58} median {:>10.1} µs   min {:>10.1} µs", median.as_secs_f64() * 1e6, min.as_secs_f64() * 1e6);
}

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

fn main() {
    let started = Instant::now();
    let host = PluginHost::default();
    println!("engine created (once per process): {:.1} ms", started.elapsed().as_secs_f64() * 1e3);

    let bundled = host.load_bundled().unwrap();
    assert!(bundled.iter().all(Plugin::precompiled), "the bundled plugins must load precompiled");
    show("load the 4 bundled plugins (deserialize + describe)", time(200, || host.load_bundled().unwrap()));

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
