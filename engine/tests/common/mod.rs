//! Shared test harness: real services started once per test run by scripts/services.sh.
#![allow(dead_code)]

use ringfs_engine::config::Config;
use ringfs_engine::meta::kv::KvStore;
use ringfs_engine::meta::runner::RunnerOptions;
use ringfs_engine::meta::volume::{VolumeRecord, FORMAT_VERSION};
use ringfs_engine::meta::{Keys, Meta};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// The services' config file: `RINGFS_TEST_CONF`, or the default services dir, started
/// (idempotently) through the project's script.
pub fn test_conf() -> PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        if let Ok(p) = std::env::var("RINGFS_TEST_CONF") {
            return PathBuf::from(p);
        }
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = std::process::Command::new("bash")
            .arg(repo.join("scripts/services.sh"))
            .args(["up", "--dir"])
            .arg(repo.join(".services"))
            .output()
            .expect("run scripts/services.sh");
        assert!(
            out.status.success(),
            "services.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("services.sh printed the config path")
                .trim(),
        )
    })
    .clone()
}

pub fn config() -> Config {
    Config::load(&test_conf()).expect("test config loads")
}

pub fn unique(tag: &str) -> String {
    format!(
        "t-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub async fn kv() -> Arc<dyn KvStore> {
    ringfs_engine::setup::connect_etcd(&config())
        .await
        .expect("etcd reachable")
}

pub fn record(name: &str) -> VolumeRecord {
    VolumeRecord {
        name: name.into(),
        uuid: uuid::Uuid::new_v4().to_string(),
        format_version: FORMAT_VERSION,
        block_size: 4 << 20,
        chunk_size: 64 << 20,
        container: format!("ringfs-{name}"),
        features: vec![],
        created: 0,
    }
}

/// A freshly formatted volume's metadata on the real etcd (no Swift needed).
pub async fn fresh_meta_with(tag: &str, kv: Arc<dyn KvStore>, opts: RunnerOptions) -> Meta {
    let name = unique(tag);
    let keys = Keys::new("ringfs-test", &name);
    Meta::format(kv.clone(), &keys, &record(&name), false)
        .await
        .expect("format");
    Meta::open(kv, keys, opts, "test").await.expect("open")
}

pub async fn fresh_meta(tag: &str) -> Meta {
    fresh_meta_with(tag, kv().await, RunnerOptions::default()).await
}
