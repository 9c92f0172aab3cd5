//! `ringfs format -c CONF VOLUME [--block-size 4MiB] [--chunk-size 64MiB] [--force]`

use anyhow::{Context, Result};
use clap::Args;
use ringfs_engine::config::{ByteSize, Config};

use super::ConfigFileArg;

#[derive(Debug, Args)]
pub struct FormatArgs {
    #[command(flatten)]
    pub conf: ConfigFileArg,
    /// Volume name (its container is `<swift.container_prefix><VOLUME>`).
    pub volume: String,
    /// Size of the objects files are stored in. Fixed for the life of the
    /// volume (stored in the volume record).
    #[arg(long, value_name = "SIZE", default_value = "4MiB")]
    pub block_size: ByteSize,
    /// Size of the file ranges metadata is grouped by. Fixed for the life of
    /// the volume (stored in the volume record).
    #[arg(long, value_name = "SIZE", default_value = "64MiB")]
    pub chunk_size: ByteSize,
    /// Do not refuse when the volume already exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cfg: Config, args: FormatArgs) -> Result<()> {
    let rt = super::runtime()?;
    let rec = rt
        .block_on(ringfs_engine::setup::format_volume(
            &cfg,
            &args.volume,
            args.block_size.bytes(),
            args.chunk_size.bytes(),
            args.force,
        ))
        .with_context(|| format!("cannot format volume '{}'", args.volume))?;
    super::print_stdout(&format!(
        "formatted volume '{}' (uuid {}, block size {}, chunk size {}, Swift container '{}', etcd prefix '{}/{}/')\n",
        rec.name,
        rec.uuid,
        ByteSize(rec.block_size),
        ByteSize(rec.chunk_size),
        rec.container,
        cfg.etcd.prefix,
        rec.name
    ))
}
