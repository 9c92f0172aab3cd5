//! Shared by the benches: the services' config file, short criterion settings, and a
//! small collector of our own measurements so each bench can print a summary (ratios)
//! after criterion's output.
#![allow(dead_code)]

use criterion::Criterion;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The services' `ringfs.toml`: `RINGFS_TEST_CONF` if set, otherwise the path printed (last
/// line of stdout) by `scripts/services.sh up` on the default services dir. `up` is
/// idempotent: on running, healthy services it only prints the path.
pub fn conf_path() -> PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        if let Some(p) = std::env::var_os("RINGFS_TEST_CONF") {
            return PathBuf::from(p);
        }
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        eprintln!("RINGFS_TEST_CONF is not set: running scripts/services.sh up");
        let out = std::process::Command::new("bash")
            .arg(repo.join("scripts/services.sh"))
            .arg("up")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run scripts/services.sh");
        assert!(out.status.success(), "scripts/services.sh up failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout
            .lines()
            .last()
            .expect("services.sh printed the config path")
            .trim();
        PathBuf::from(path)
    })
    .clone()
}

pub fn config() -> ringfs_engine::config::Config {
    let path = conf_path();
    ringfs_engine::config::Config::load(&path)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

/// A name no other run uses (volumes, containers).
pub fn unique(tag: &str) -> String {
    format!(
        "bench-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Short settings for benches against live services: 10 samples (criterion's minimum),
/// a few seconds of measurement. `--measurement-time`, `--warm-up-time`,
/// `--sample-size` and `--quick` on the command line still override these.
pub fn short_criterion(measurement: Duration) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(measurement)
        .configure_from_args()
}

/// Work done and time spent in each timed call of `iter_custom` (one criterion sample,
/// or a warm-up run), per bench id: what the printed summaries are computed from.
#[derive(Default)]
pub struct Tally {
    runs: Mutex<BTreeMap<String, Vec<(f64, Duration)>>>,
}

impl Tally {
    pub fn add(&self, id: &str, units: f64, took: Duration) {
        let mut m = self.runs.lock().unwrap();
        m.entry(id.to_string()).or_default().push((units, took));
    }

    /// Median over the recorded calls of units per second (robust against the odd call
    /// slowed down by other load on the machine), if anything was recorded for `id`.
    pub fn rate(&self, id: &str) -> Option<f64> {
        let m = self.runs.lock().unwrap();
        let mut rates: Vec<f64> = m
            .get(id)?
            .iter()
            .filter(|(_, t)| !t.is_zero())
            .map(|(u, t)| u / t.as_secs_f64())
            .collect();
        if rates.is_empty() {
            return None;
        }
        rates.sort_by(f64::total_cmp);
        let n = rates.len();
        Some(if n % 2 == 1 {
            rates[n / 2]
        } else {
            (rates[n / 2 - 1] + rates[n / 2]) / 2.0
        })
    }
}

/// `a / b` as "1.23x", or "n/a" when either side did not run.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    }
}

pub fn fmt_rate(r: Option<f64>, scale: f64, unit: &str) -> String {
    match r {
        Some(r) => format!("{:.1} {unit}", r / scale),
        None => "not run".into(),
    }
}

pub const MIB: f64 = (1u64 << 20) as f64;
