//! Benchmark of `hsm plan` on generated registries (not a test).
//!
//! Writes projects whose registries hold 200 / 1,000 / 3,000 / 10,000 packages and
//! 20 / 100 / 300 / 1,000 services (every package implies two services with params
//! and one or two other packages, so resolution covers nearly every package), then
//! times `hsm plan --json` on each with hyperfine and measures peak memory with
//! `/usr/bin/time -v` (the largest of five runs). Every run reads every registry
//! file and asks every plugin.
//!
//! Run it with:
//!
//! ```text
//! cargo bench -p hsm --bench plan            # all sizes
//! cargo bench -p hsm --bench plan -- 10000   # only the registries of that many packages
//! HSM_BENCH_GENERATE=/tmp/big cargo bench -p hsm --bench plan -- 10000   # only write the project
//! ```
//!
//! The results go to stdout as a Markdown table (see BENCHMARKS.md).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// (packages, services) of each generated registry.
const SIZES: [(usize, usize); 4] = [(200, 20), (1_000, 100), (3_000, 300), (10_000, 1_000)];

/// How many packages each registry file holds.
const PER_FILE: usize = 1_000;

fn main() {
    let only: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    // `HSM_BENCH_GENERATE=DIR`: only write the largest selected project into DIR, for
    // profiling `hsm plan` on it by hand.
    if let Some(dir) = std::env::var_os("HSM_BENCH_GENERATE") {
        let (packages, services) =
            SIZES.iter().copied().rfind(|(p, _)| only.is_empty() || only.contains(p)).expect("a size");
        generate(Path::new(&dir), packages, services);
        return;
    }
    let hsm = env!("CARGO_BIN_EXE_hsm");
    let mut table = String::from(
        "| packages in registry | services | resolved packages | resolved services | registry size | mean ± σ | min … max | peak RSS |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (packages, services) in SIZES {
        if !only.is_empty() && !only.contains(&packages) {
            continue;
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let bytes = generate(dir.path(), packages, services);
        let (resolved_packages, resolved_services) = check(hsm, dir.path());
        let (mean, sd, min, max) = time(hsm, dir.path());
        let rss = peak_rss_kib(hsm, dir.path());
        let _ = writeln!(
            table,
            "| {packages} | {services} | {resolved_packages} | {resolved_services} | {:.1} MiB | {:.1} ms ± {:.1} | {:.1} … {:.1} ms | {:.1} MiB |",
            bytes as f64 / 1_048_576.0,
            mean * 1e3,
            sd * 1e3,
            min * 1e3,
            max * 1e3,
            rss as f64 / 1024.0
        );
    }
    #[allow(clippy::print_stdout)]
    {
        println!("\n{table}");
    }
}

/// Writes a project and its registry; returns the registry's size in bytes.
fn generate(dir: &Path, packages: usize, services: usize) -> usize {
    let reg = dir.join("registry");
    std::fs::create_dir_all(&reg).unwrap();
    let kinds = ["postgres", "qdrant", "chunker"];
    let mut total = 0;

    let mut s = String::from("version: 1\nservices:\n");
    for i in 0..services {
        let kind = kinds[i % kinds.len()];
        let _ = write!(
            s,
            "  svc-{i}:\n    kind: {kind}\n    profile: managed-dev\n    params:\n      image: \"example/{kind}:1.{i}\"\n      port: {}\n",
            5000 + i
        );
        if kind == "chunker" {
            let _ = writeln!(s, "      env: {{ TAG: \"${{BENCH_TAG:-1.{i}}}\" }}");
        }
    }
    total += write(&reg.join("services.yaml"), &s);

    let mut p = String::from(
        "version: 1\nprofiles:\n  managed-dev:\n    mode: managed\n  remote:\n    mode: external\n    services:\n",
    );
    for i in (0..services).step_by(10) {
        let settings = match kinds[i % kinds.len()] {
            "postgres" => format!("{{ host: \"svc-{i}.example\", user: app, password: \"${{BENCH_SECRET}}\" }}"),
            "qdrant" => format!("{{ url: \"https://svc-{i}.example\", api_key: \"${{BENCH_SECRET}}\" }}"),
            _ => format!("{{ url: \"https://svc-{i}.example/${{BENCH_PATH:-p}}\" }}"),
        };
        let _ = writeln!(p, "      svc-{i}: {settings}");
    }
    total += write(&reg.join("profiles.yaml"), &p);

    for chunk in 0..packages.div_ceil(PER_FILE) {
        let mut f = String::from("version: 1\npackages:\n");
        for i in chunk * PER_FILE..((chunk + 1) * PER_FILE).min(packages) {
            let (a, b) = (i % services, (i * 31 + 7) % services);
            let _ = write!(
                f,
                "  pkg-{i}:\n    description: Generated package {i}\n    pypi: \"pkg-{i}>=1.0\"\n    implies:\n      - service: svc-{a}\n        params: {}\n      - service: svc-{b}\n        params: {}\n",
                params(kinds[a % kinds.len()], i, ""),
                params(kinds[b % kinds.len()], i, if a == b { "" } else { "B_" }),
            );
            if i > 0 {
                let _ = writeln!(f, "      - package: pkg-{}", i / 2);
            }
            if i > 1 {
                let _ = writeln!(f, "      - package: pkg-{}", i - 1);
            }
        }
        total += write(&reg.join(format!("packages-{chunk:03}.yaml")), &f);
    }

    // The project asks for the top tenth of the packages (which imply all the others)
    // and reaches every tenth service through an external profile.
    let mut h = String::from(
        "version: 1\nproject: bench\nprofile: managed-dev\nregistries: [bundled, ./registry]\npackages:\n",
    );
    for i in (packages - packages / 10)..packages {
        let _ = writeln!(h, "  - pkg-{i}");
    }
    h.push_str("services:\n");
    for i in (0..services).step_by(10) {
        let _ = writeln!(h, "  svc-{i}: {{ profile: remote }}");
    }
    total + write(&dir.join("hsm.yaml"), &h)
}

/// What package `i` asks of a service of `kind`, as its plugin reads it; `prefix`
/// renames the variables it gets, so that two services of one kind don't give the
/// package the same ones.
fn params(kind: &str, i: usize, prefix: &str) -> String {
    let (own, vars): (String, &[&str]) = match kind {
        "postgres" => {
            (format!("db_name: pkg_{i}"), &["DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DB_PASSWORD", "DATABASE_URL"])
        }
        "qdrant" => (format!("collection: \"c-{i}\""), &["QDRANT_URL", "QDRANT_API_KEY", "QDRANT_COLLECTION"]),
        _ => (String::new(), &["CHUNKER_URL"]),
    };
    let mut out = vec![own].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>();
    if !prefix.is_empty() {
        let renames: Vec<String> = vars.iter().map(|v| format!("{v}: {prefix}{v}")).collect();
        out.push(format!("env_names: {{ {} }}", renames.join(", ")));
    }
    format!("{{ {} }}", out.join(", "))
}

fn write(path: &Path, text: &str) -> usize {
    std::fs::write(path, text).unwrap();
    text.len()
}

/// The arguments of the timed command.
fn args(dir: &Path) -> Vec<String> {
    vec!["-q".to_string(), "-C".to_string(), dir.display().to_string(), "plan".into(), "--json".into()]
}

/// The environment of every run: the secret, and folders of the run's own for
/// hsm's cache and its user key.
fn env(dir: &Path) -> [(&'static str, String); 3] {
    [
        ("BENCH_SECRET", "s3cret".to_string()),
        ("HSM_CACHE_DIR", dir.join("cache").display().to_string()),
        ("HSM_DATA_DIR", dir.join("data").display().to_string()),
    ]
}

fn command(hsm: &str, dir: &Path) -> Command {
    let mut c = Command::new(hsm);
    c.args(args(dir)).env_clear().envs(env(dir));
    c
}

/// Runs the plan once and returns how many packages and services it resolved.
fn check(hsm: &str, dir: &Path) -> (usize, usize) {
    let out = command(hsm, dir).output().expect("run hsm");
    assert!(out.status.success(), "hsm plan failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret"), "the secret leaked");
    (plan["packages"].as_array().unwrap().len(), plan["services"].as_array().unwrap().len())
}

/// Mean, standard deviation, min and max in seconds, from hyperfine.
fn time(hsm: &str, dir: &Path) -> (f64, f64, f64, f64) {
    let json = dir.join("hyperfine.json");
    let vars: Vec<String> = env(dir).iter().map(|(k, v)| format!("{k}={v}")).collect();
    let cmd = format!("env -i {} {hsm} {}", vars.join(" "), args(dir).join(" "));
    let mut hyperfine = Command::new("hyperfine");
    hyperfine.args(["--warmup", "3", "--min-runs", "20", "--style", "none", "--export-json"]).arg(&json);
    let status = hyperfine.arg(&cmd).status().expect("hyperfine (install it with `apt-get install hyperfine`)");
    assert!(status.success(), "hyperfine failed");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &v["results"][0];
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    (f("mean"), f("stddev"), f("min"), f("max"))
}

/// Peak resident memory of a run, in KiB, from `/usr/bin/time -v`: the largest of
/// five (it moves by a few MiB with how the threads' work interleaves).
fn peak_rss_kib(hsm: &str, dir: &Path) -> u64 {
    (0..5).map(|_| peak_rss_kib_once(hsm, dir)).max().unwrap_or(0)
}

/// Peak resident memory of one run, in KiB.
fn peak_rss_kib_once(hsm: &str, dir: &Path) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(hsm)
        .args(args(dir))
        .env_clear()
        .envs(env(dir))
        .output()
        .expect("/usr/bin/time (install it with `apt-get install time`)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .expect("peak memory in /usr/bin/time's output")
}
