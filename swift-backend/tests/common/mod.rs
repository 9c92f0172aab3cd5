//! Shared setup of the integration tests: find (or start) the local services, build
//! clients from `ringfs.toml`, name containers uniquely.
//!
//! `RINGFS_TEST_CONF` points at a `ringfs.toml` written by `scripts/services.sh up`. When
//! it is unset, the first test to need it runs `scripts/services.sh up --dir
//! <repo>/.services` (under a process-wide `OnceLock` and a file lock, so that parallel
//! test binaries do not start two sets of services) and uses the path the script prints as
//! its last stdout line.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ringfs_swift::{AuthConfig, SwiftClient, SwiftConfig};

/// The `[swift]` section of `ringfs.toml`.
#[derive(Debug, Clone)]
pub struct TestConf {
    pub path: PathBuf,
    pub auth: String,
    pub auth_url: String,
    pub user: String,
    pub key: String,
    pub project: String,
    pub project_domain: String,
    pub user_domain: String,
    pub region: Option<String>,
    pub interface: String,
}

impl TestConf {
    pub fn is_keystone(&self) -> bool {
        self.auth == "keystone"
    }

    /// The services directory (where `ringfs.toml`, `keystone.env` live).
    pub fn dir(&self) -> &Path {
        self.path.parent().expect("ringfs.toml has a parent dir")
    }

    /// Auth config for the configured user, with `key` replaced when given.
    pub fn auth_config(&self, key: Option<&str>) -> AuthConfig {
        let key = key.unwrap_or(&self.key).to_string();
        if self.is_keystone() {
            AuthConfig::Keystone {
                auth_url: self.auth_url.clone(),
                user: self.user.clone(),
                password: key,
                user_domain: self.user_domain.clone(),
                project: self.project.clone(),
                project_domain: self.project_domain.clone(),
                region: self.region.clone(),
                interface: self.interface.clone(),
                application_credential: None,
            }
        } else {
            AuthConfig::TempAuth {
                url: self.auth_url.clone(),
                user: self.user.clone(),
                key,
            }
        }
    }

    /// `KEY=value` pairs of `DIR/keystone.env` (keystone mode only).
    pub fn keystone_env(&self) -> HashMap<String, String> {
        let text = std::fs::read_to_string(self.dir().join("keystone.env")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let l = l.trim().strip_prefix("export ").unwrap_or(l.trim());
                let (k, v) = l.split_once('=')?;
                if k.starts_with('#') {
                    return None;
                }
                Some((
                    k.to_string(),
                    v.trim_matches(|c| c == '\'' || c == '"').to_string(),
                ))
            })
            .collect()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate lives in the workspace")
        .to_path_buf()
}

fn services_up() -> PathBuf {
    let repo = repo_root();
    let dir = repo.join(".services");
    // A file lock across test binaries (cargo runs them one after another, but `cargo test`
    // invocations from several engineers may overlap); the script itself is idempotent.
    let lock_path = std::env::temp_dir().join("ringfs-services-up.lock");
    let lock: File = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .expect("open lock file");
    lock.lock().expect("lock services-up lock file");
    let out = Command::new(repo.join("scripts/services.sh"))
        .args(["up", "--dir"])
        .arg(&dir)
        .output()
        .expect("run scripts/services.sh up");
    drop(lock);
    assert!(
        out.status.success(),
        "scripts/services.sh up failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("services.sh printed nothing");
    PathBuf::from(last.trim())
}

/// Path of the `ringfs.toml` to test against.
pub fn conf_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| match std::env::var_os("RINGFS_TEST_CONF") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => services_up(),
    })
}

/// The parsed test configuration.
pub fn conf() -> &'static TestConf {
    static CONF: OnceLock<TestConf> = OnceLock::new();
    CONF.get_or_init(|| {
        let path = conf_path().to_path_buf();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let doc: toml::Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        let swift = doc
            .get("swift")
            .and_then(|v| v.as_table())
            .unwrap_or_else(|| panic!("{} has no [swift] section", path.display()));
        let s = |k: &str| swift.get(k).and_then(|v| v.as_str()).map(str::to_string);
        TestConf {
            auth: s("auth").unwrap_or_else(|| "tempauth".into()),
            auth_url: s("auth_url").expect("[swift] auth_url"),
            user: s("user").expect("[swift] user"),
            key: s("key").expect("[swift] key"),
            project: s("project").unwrap_or_default(),
            project_domain: s("project_domain").unwrap_or_else(|| "Default".into()),
            user_domain: s("user_domain").unwrap_or_else(|| "Default".into()),
            region: s("region").filter(|r| !r.is_empty()),
            interface: s("interface").unwrap_or_else(|| "public".into()),
            path,
        }
    })
}

/// Client configuration for the test services (short backoff so failures are quick).
pub fn config() -> SwiftConfig {
    let mut c = SwiftConfig::new(conf().auth_config(None));
    c.retry_base = Duration::from_millis(20);
    c.retry_max = Duration::from_millis(500);
    c
}

/// Logs to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=ringfs_swift=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A fresh client (each test runs on its own runtime, so each gets its own pool).
pub fn client() -> SwiftClient {
    init_tracing();
    SwiftClient::new(config()).expect("valid config")
}

/// A unique container name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a unique container for one test.
pub async fn new_container(client: &SwiftClient) -> String {
    let c = unique("test");
    client.create_container(&c).await.expect("create container");
    c
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn data(len: usize, seed: u64) -> bytes::Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v.into()
}

/// md5 hex, for comparing large bodies without printing them.
pub fn md5(b: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(b))
}
