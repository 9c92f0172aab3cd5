//! Wiring from the config file to live clients: etcd (`meta::etcd::EtcdKv`), Swift
//! (`ringfs_swift::SwiftClient` / `SwiftStore`) and the volume's metadata (`Meta`).
//! Used by the CLI (format, mount, status) and by the integration tests.

use crate::config::{Config, SwiftAuth};
use crate::meta::etcd::{EtcdKv, EtcdOptions};
use crate::meta::kv::KvStore;
use crate::meta::runner::RunnerOptions;
use crate::meta::txn::TxnLimits;
use crate::meta::volume::{check_volume_name, VolumeRecord, FORMAT_VERSION};
use crate::meta::{Keys, Meta, MetaError};
use ringfs_swift::{AuthConfig, SwiftClient, SwiftConfig, SwiftStore};
use std::sync::Arc;

/// Failures of wiring, each naming what was tried.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("etcd: {0}")]
    Etcd(String),
    #[error("swift: {0}")]
    Swift(String),
    #[error("{0}")]
    Volume(String),
    #[error("{0}")]
    Meta(#[from] MetaError),
}

pub fn etcd_options(cfg: &Config) -> EtcdOptions {
    let e = &cfg.etcd;
    let mut o = EtcdOptions::new(e.endpoints.clone());
    if !e.username.is_empty() {
        o.username = Some(e.username.clone());
        o.password = Some(e.password.expose().to_string());
    }
    o.ca_file = e.ca_file.clone();
    o.cert_file = e.cert_file.clone();
    o.key_file = e.key_file.clone();
    o.dial_timeout = e.dial_timeout.0;
    o.request_timeout = e.request_timeout.0;
    o
}

pub fn runner_options(cfg: &Config) -> RunnerOptions {
    let e = &cfg.etcd;
    RunnerOptions {
        group_commit: true,
        batch_window: e.batch_window.0,
        limits: TxnLimits {
            max_ops: e.batch_max_ops as usize,
            max_bytes: e.batch_max_bytes.0 as usize,
        },
        max_retries: e.max_retries,
        op_timeout: e.op_timeout.0,
        ..Default::default()
    }
}

pub fn swift_config(cfg: &Config) -> SwiftConfig {
    let s = &cfg.swift;
    let auth = match s.auth {
        SwiftAuth::TempAuth => AuthConfig::TempAuth {
            url: s.auth_url.clone(),
            user: s.user.clone(),
            key: s.key.expose().to_string(),
        },
        SwiftAuth::Keystone => AuthConfig::Keystone {
            auth_url: s.auth_url.clone(),
            user: s.user.clone(),
            password: s.key.expose().to_string(),
            user_domain: s.user_domain.clone(),
            project: s.project.clone(),
            project_domain: s.project_domain.clone(),
            region: (!s.region.is_empty()).then(|| s.region.clone()),
            interface: s.interface.as_str().to_string(),
            application_credential: s.uses_application_credential().then(|| {
                (
                    s.application_credential_id.clone(),
                    s.application_credential_secret.expose().to_string(),
                )
            }),
        },
    };
    let mut c = SwiftConfig::new(auth);
    c.storage_url_override = (!s.storage_url.is_empty()).then(|| s.storage_url.clone());
    c.max_connections = s.max_connections;
    c.max_in_flight = s.max_in_flight;
    c.retries = s.retries;
    c.connect_timeout = s.connect_timeout.0;
    c.request_timeout = s.request_timeout.0;
    c
}

pub async fn connect_etcd(cfg: &Config) -> Result<Arc<dyn KvStore>, SetupError> {
    let kv = EtcdKv::connect(&etcd_options(cfg))
        .await
        .map_err(|e| SetupError::Etcd(e.to_string()))?;
    Ok(Arc::new(kv))
}

/// A Swift client that has authenticated once (so bad credentials fail here, clearly).
pub async fn connect_swift(cfg: &Config) -> Result<SwiftClient, SetupError> {
    let client =
        SwiftClient::new(swift_config(cfg)).map_err(|e| SetupError::Swift(e.to_string()))?;
    // A proxy or Keystone that is briefly overloaded (5xx) gets a few more tries; wrong
    // credentials (401/403) fail at once.
    let mut attempt = 0;
    loop {
        match client.authenticate().await {
            Ok(()) => return Ok(client),
            Err(e) => {
                let msg = e.to_string();
                let credentials = msg.contains("401") || msg.contains("403");
                attempt += 1;
                if credentials || attempt >= 5 {
                    return Err(SetupError::Swift(msg));
                }
                tracing::warn!(error = %msg, attempt, "Swift authentication failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500 * attempt)).await;
            }
        }
    }
}

pub fn keys_for(cfg: &Config, volume: &str) -> Result<Keys, SetupError> {
    check_volume_name(volume).map_err(SetupError::Volume)?;
    Ok(Keys::new(&cfg.etcd.prefix, volume))
}

/// Creates the container and the volume record. `block_size`/`chunk_size` in bytes.
pub async fn format_volume(
    cfg: &Config,
    volume: &str,
    block_size: u64,
    chunk_size: u64,
    force: bool,
) -> Result<VolumeRecord, SetupError> {
    let keys = keys_for(cfg, volume)?;
    crate::layout::Geometry::new(chunk_size, block_size.min(u32::MAX as u64) as u32)
        .map_err(|e| SetupError::Volume(format!("invalid block/chunk size: {e}")))?;
    let kv = connect_etcd(cfg).await?;
    if !force {
        if let Some(existing) = Meta::load_volume(&kv, &keys).await? {
            return Err(SetupError::Volume(format!(
                "volume '{}' already exists (created {}); use --force to format it again",
                existing.name, existing.created
            )));
        }
    }
    let swift = connect_swift(cfg).await?;
    let container = cfg.swift.container_for(volume);
    swift
        .create_container(&container)
        .await
        .map_err(|e| SetupError::Swift(e.to_string()))?;
    let record = VolumeRecord {
        name: volume.to_string(),
        uuid: uuid::Uuid::new_v4().to_string(),
        format_version: FORMAT_VERSION,
        block_size,
        chunk_size,
        container,
        features: vec![],
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    Meta::format(kv, &keys, &record, force).await?;
    Ok(record)
}

/// Opens a formatted volume: metadata session and the block store.
pub async fn open_volume(
    cfg: &Config,
    volume: &str,
) -> Result<(Arc<Meta>, Arc<SwiftStore>), SetupError> {
    let keys = keys_for(cfg, volume)?;
    let kv = connect_etcd(cfg).await?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let info = format!(
        "{{\"host\":\"{}\",\"pid\":{}}}",
        host.trim(),
        std::process::id()
    );
    let meta = Meta::open(kv, keys, runner_options(cfg), &info).await?;
    let swift = connect_swift(cfg).await?;
    let store = SwiftStore::new(swift, meta.volume().container.clone());
    Ok((Arc::new(meta), Arc::new(store)))
}
