//! `ringfs status -c CONF VOLUME`

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;
use ringfs_engine::config::Config;

use super::ConfigFileArg;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conf: ConfigFileArg,
    /// Volume name.
    pub volume: String,
}

pub fn run(cfg: Config, args: StatusArgs) -> Result<()> {
    let rt = super::runtime()?;
    rt.block_on(async move {
        let keys = ringfs_engine::setup::keys_for(&cfg, &args.volume)?;
        let kv = ringfs_engine::setup::connect_etcd(&cfg).await?;
        let rec = ringfs_engine::meta::Meta::load_volume(&kv, &keys)
            .await?
            .with_context(|| {
                format!(
                    "volume '{}' not found in etcd at {}",
                    args.volume,
                    cfg.etcd.endpoints.join(",")
                )
            })?;
        // Built first, printed once: a closed stdout (`| head`) is then one
        // error the caller treats as success, never a panic mid-print.
        let mut out = String::new();
        let _ = writeln!(out, "volume:        {}", rec.name);
        let _ = writeln!(out, "uuid:          {}", rec.uuid);
        let _ = writeln!(out, "format:        version {}", rec.format_version);
        let _ = writeln!(
            out,
            "block size:    {}",
            ringfs_engine::config::ByteSize(rec.block_size)
        );
        let _ = writeln!(
            out,
            "chunk size:    {}",
            ringfs_engine::config::ByteSize(rec.chunk_size)
        );
        let _ = writeln!(out, "container:     {}", rec.container);
        let (s, e) = keys.session_range();
        let (sessions, _) = kv
            .range(&s, &e, 0)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = writeln!(out, "sessions:      {}", sessions.len());
        for kv in &sessions {
            let _ = writeln!(out, "  - {}", String::from_utf8_lossy(&kv.value));
        }
        let (s, e) = keys.delfile_range();
        let (pending, _) = kv
            .range(&s, &e, 0)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let _ = writeln!(out, "pending deletions: {}", pending.len());
        let staging = cfg.cache.dir.join(&rec.uuid).join("staging");
        let (blocks, staged) = ringfs_engine::cache::staging::backlog_on_disk(&staging);
        let _ = writeln!(
            out,
            "write-back backlog on this machine: {blocks} blocks, {} ({})",
            ringfs_engine::config::ByteSize(staged),
            staging.display()
        );
        let (s, e) = {
            let mut s = keys.prefix().to_vec();
            s.push(ringfs_engine::meta::keys::tag::ATTR);
            let e = ringfs_engine::meta::keys::prefix_end(&s);
            (s, e)
        };
        let (mut inodes, mut bytes, mut start) = (0u64, 0u64, s.clone());
        loop {
            let (page, more) = kv
                .range(&start, &e, 5000)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            for kv in &page {
                inodes += 1;
                if let Some(ino) = keys.trailing_ino(&kv.key) {
                    if let Ok(a) = ringfs_engine::meta::Attr::decode(ino, &kv.value) {
                        if a.kind == ringfs_engine::meta::FileKind::File {
                            bytes += a.size;
                        }
                    }
                }
            }
            match (more, page.last()) {
                (true, Some(last)) => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        let _ = writeln!(out, "inodes:        {inodes}");
        let _ = writeln!(
            out,
            "file bytes:    {bytes} ({})",
            ringfs_engine::config::ByteSize(bytes)
        );
        super::print_stdout(&out)
    })
}
