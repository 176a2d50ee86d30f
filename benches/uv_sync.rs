//! Benchmark of installing Python packages with hsm's uv layer (not a test).
//!
//! Generates N editable hatchling projects, each depending on the one before (a
//! stack, as in scenario 3), and times, in fresh project folders:
//!
//! - **uv alone**: `uv venv` then `uv pip install -e p1 … -e pN`, what a user would
//!   type;
//! - **hsm**: `hsm_exec::uv::sync` of the same N editable packages, from no venv
//!   (it runs the same two uv commands, plus its checks before and after);
//! - **no-op**: `hsm_exec::uv::sync` again with nothing changed (no process runs).
//!
//! Run it with:
//!
//! ```text
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

/// Timed no-op syncs.
const NOOP_RUNS: usize = 200;

fn main() {
    let only: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes: Vec<usize> = if only.is_empty() { SIZES.to_vec() } else { only };
    let uv_bin = PythonEnv::new(Path::new("."), None).expect("uv on PATH or HSM_UV").uv().to_path_buf();
    let version = Command::new(&uv_bin).arg("--version").output().expect("uv --version");
    let mut table = format!(
        "{}\n| editable packages | uv alone (mean ± σ) | hsm (mean ± σ) | hsm / uv | no-op sync (mean, max) |\n|---:|---:|---:|---:|---:|\n",
        String::from_utf8_lossy(&version.stdout).trim()
    );
    for n in sizes {
        let dir = tempfile::tempdir().expect("temporary folder");
        let packages = generate(dir.path(), n);
        let mut plain = Vec::new();
        let mut hsm = Vec::new();
        let mut noop = Vec::new();
        for run in 0..=RUNS {
            // Alternate, so that a busy moment of the machine hits both alike.
            let t_plain = time_plain_uv(&uv_bin, dir.path(), &packages, run);
            let (t_hsm, t_noop) = time_hsm(&uv_bin, dir.path(), &packages, run);
            if run > 0 {
                plain.push(t_plain);
                hsm.push(t_hsm);
                noop.extend(t_noop);
            }
        }
        let (pm, ps) = mean_sd(&plain);
        let (hm, hs) = mean_sd(&hsm);
        let (nm, _) = mean_sd(&noop);
        let nmax = noop.iter().copied().fold(0.0, f64::max);
        table.push_str(&format!(
            "| {n} | {pm:.0} ms ± {ps:.0} | {hm:.0} ms ± {hs:.0} | {:.2}× | {nm:.2} ms, {nmax:.2} ms |\n",
            hm / pm
        ));
    }
    #[allow(clippy::print_stdout)]
    {
        print!("{table}");
    }
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

fn time_hsm(uv_bin: &Path, dir: &Path, packages: &[PathBuf], run: usize) -> (f64, Vec<f64>) {
    let project = project(dir, "hsm", run);
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
