//! Benchmark of installing Python packages with hsm's uv layer (not a test).
//!
//! Generates N editable hatchling projects, each depending on the one before (a
//! stack, as in scenario 3), and times, in fresh project folders:
//!
//! - **uv alone**: `uv venv` then `uv pip install -e p1 … -e pN`, what a user would
//!   type;
//! - **`hsm sync`**: the CLI on an `hsm.yaml` listing the same N editable packages
//!   (no services), from no venv: load, plan, then the same two uv commands;
//! - **uv layer**: `hsm_exec::uv::sync` called as a library, the CLI's uv part;
//! - **no-op**: both again with nothing changed (the uv layer runs no process).
//!
//! The CLI is `HSM_BIN`, else the `hsm` next to this benchmark's build
//! (`target/release/hsm`: build it first with `cargo build --release -p hsm`); when
//! there is none its columns say so. Run it with:
//!
//! ```text
//! cargo build --release -p hsm
//! cargo bench -p hsm-exec --bench uv_sync            # N = 1, 5, 20
//! cargo bench -p hsm-exec --bench uv_sync -- 10      # one N
//! ```
//!
//! uv's shared cache is used as is (it holds hatchling after the warm-up run;
//! editable builds are not cached, so every run builds every package). The results
//! go to stdout as a Markdown table (see BENCHMARKS.md).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hsm_exec::uv::{self, PythonEnv, PythonState};
use hsm_plan::{PackageSource, PythonPackage};

/// Package counts measured by default.
const SIZES: [usize; 3] = [1, 5, 20];

/// Timed runs of each install (after one warm-up run of each).
const RUNS: usize = 5;

/// Timed no-op syncs through the library, and through the CLI.
const NOOP_RUNS: usize = 200;
const NOOP_CLI_RUNS: usize = 30;

fn main() {
    let only: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes: Vec<usize> = if only.is_empty() { SIZES.to_vec() } else { only };
    let uv_bin = PythonEnv::new(Path::new("."), None).expect("uv on PATH or HSM_UV").uv().to_path_buf();
    let hsm_bin = hsm_binary();
    let version = Command::new(&uv_bin).arg("--version").output().expect("uv --version");
    let mut table = format!(
        "{}; hsm: {}\n\
         | editable packages | uv alone | `hsm sync` | `hsm sync` / uv | uv layer | uv layer / uv | no-op `hsm sync` (mean, max) | no-op uv layer (mean, max) |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        String::from_utf8_lossy(&version.stdout).trim(),
        hsm_bin.as_ref().map_or("not built".to_string(), |p| p.display().to_string()),
    );
    for n in sizes {
        let dir = tempfile::tempdir().expect("temporary folder");
        let packages = generate(dir.path(), n);
        let (mut plain, mut cli, mut lib, mut cli_noop, mut lib_noop) = (vec![], vec![], vec![], vec![], vec![]);
        for run in 0..=RUNS {
            // Alternate, so that a busy moment of the machine hits all alike; run 0
            // is the warm-up.
            let t_plain = time_plain_uv(&uv_bin, dir.path(), &packages, run);
            let t_cli = hsm_bin.as_ref().map(|hsm| time_cli(hsm, dir.path(), &packages, run));
            let (t_lib, t_lib_noop) = time_library(&uv_bin, dir.path(), &packages, run);
            if run > 0 {
                plain.push(t_plain);
                lib.push(t_lib);
                lib_noop.extend(t_lib_noop);
                if let Some((t, noop)) = t_cli {
                    cli.push(t);
                    cli_noop.extend(noop);
                }
            }
        }
        let (pm, ps) = mean_sd(&plain);
        let (lm, ls) = mean_sd(&lib);
        let cli_cols = if cli.is_empty() {
            "n/a | n/a".to_string()
        } else {
            let (cm, cs) = mean_sd(&cli);
            format!("{cm:.0} ms ± {cs:.0} | {:.2}×", cm / pm)
        };
        table.push_str(&format!(
            "| {n} | {pm:.0} ms ± {ps:.0} | {cli_cols} | {lm:.0} ms ± {ls:.0} | {:.2}× | {} | {} |\n",
            lm / pm,
            mean_max(&cli_noop),
            mean_max(&lib_noop),
        ));
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{table}");
    }
}

/// `HSM_BIN`, else `hsm` in the folder above this benchmark's executable.
fn hsm_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("HSM_BIN") {
        return Some(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("hsm");
    bin.is_file().then_some(bin)
}

fn mean_max(xs: &[f64]) -> String {
    if xs.is_empty() {
        return "n/a".into();
    }
    let (mean, _) = mean_sd(xs);
    let max = xs.iter().copied().fold(0.0, f64::max);
    format!("{mean:.2} ms, {max:.2} ms")
}

/// Writes `n` editable projects under `dir/src`, `pkg_i` depending on `pkg_{i-1}`.
fn generate(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let root = dir.join("src").join(format!("pkg{i}"));
            let module = root.join("src").join(format!("hsm_bench_pkg{i}"));
            fs::create_dir_all(&module).unwrap();
            let deps = if i == 0 { String::new() } else { format!("\"hsm-bench-pkg{}\"", i - 1) };
            fs::write(
                root.join("pyproject.toml"),
                format!(
                    "[project]\nname = \"hsm-bench-pkg{i}\"\nversion = \"0.1.0\"\ndependencies = [{deps}]\n\n\
                     [build-system]\nrequires = [\"hatchling\"]\nbuild-backend = \"hatchling.build\"\n"
                ),
            )
            .unwrap();
            fs::write(module.join("__init__.py"), format!("VALUE = {i}\n")).unwrap();
            root
        })
        .collect()
}

/// A fresh, empty project folder for one run.
fn project(dir: &Path, label: &str, run: usize) -> PathBuf {
    let project = dir.join(format!("{label}-{run}"));
    fs::create_dir_all(&project).unwrap();
    project
}

fn time_plain_uv(uv_bin: &Path, dir: &Path, packages: &[PathBuf], run: usize) -> f64 {
    let project = project(dir, "uv", run);
    let start = Instant::now();
    let status = Command::new(uv_bin).args(["venv", "-q", ".venv"]).current_dir(&project).status().unwrap();
    assert!(status.success());
    let mut install = Command::new(uv_bin);
    install.args(["pip", "install", "-q", "--python", ".venv/bin/python"]).current_dir(&project);
    for p in packages {
        install.arg("-e").arg(p);
    }
    assert!(install.status().unwrap().success());
    ms(start.elapsed())
}

/// `hsm sync` on a fresh project listing the packages; then its no-op runs.
fn time_cli(hsm: &Path, dir: &Path, packages: &[PathBuf], run: usize) -> (f64, Vec<f64>) {
    let project = project(dir, "cli", run);
    let mut yaml = String::from("version: 1\nproject: uv-bench\npackages:\n");
    for (i, p) in packages.iter().enumerate() {
        yaml.push_str(&format!("  - name: pkg{i}\n    editable: \"{}\"\n", p.display()));
    }
    fs::write(project.join("hsm.yaml"), yaml).unwrap();
    let sync = || {
        let start = Instant::now();
        let out = Command::new(hsm).arg("-q").arg("-C").arg(&project).arg("sync").output().unwrap();
        let t = ms(start.elapsed());
        assert!(out.status.success(), "hsm sync: {}", String::from_utf8_lossy(&out.stderr));
        t
    };
    let install = sync();
    let noop = if run == 0 { 0 } else { NOOP_CLI_RUNS };
    (install, (0..noop).map(|_| sync()).collect())
}

/// `hsm_exec::uv::sync` on a fresh project; then its no-op runs.
fn time_library(uv_bin: &Path, dir: &Path, packages: &[PathBuf], run: usize) -> (f64, Vec<f64>) {
    let project = project(dir, "lib", run);
    let desired: Vec<PythonPackage> = packages
        .iter()
        .enumerate()
        .map(|(i, p)| PythonPackage {
            name: format!("pkg{i}"),
            source: PackageSource::Editable(p.display().to_string()),
        })
        .collect();
    let start = Instant::now();
    let env = PythonEnv::new(&project, Some(uv_bin.to_path_buf())).unwrap();
    let mut state = PythonState::default();
    let changes = uv::sync(&env, &desired, &mut state, &|_| {}).expect("hsm sync");
    let install = ms(start.elapsed());
    assert_eq!(changes.installed.len(), packages.len());

    let noop = if run == 0 { 0 } else { NOOP_RUNS };
    let times = (0..noop)
        .map(|_| {
            let start = Instant::now();
            let env = PythonEnv::new(&project, Some(uv_bin.to_path_buf())).unwrap();
            let changes = uv::sync(&env, &desired, &mut state, &|_| {}).unwrap();
            let t = ms(start.elapsed());
            assert!(changes.is_empty());
            t
        })
        .collect();
    (install, times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}
