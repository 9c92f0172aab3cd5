//! `ringfs mount -c CONF VOLUME MOUNTPOINT [--background] [-o opts]`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{ArgAction, Args};
use ringfs_engine::config::Config;

use super::ConfigFileArg;

#[derive(Debug, Args)]
pub struct MountArgs {
    #[command(flatten)]
    pub conf: ConfigFileArg,
    /// Volume name.
    pub volume: String,
    /// Directory to mount on.
    pub mountpoint: PathBuf,
    /// Detach from the terminal once the volume is mounted.
    #[arg(long)]
    pub background: bool,
    /// Mount options, comma-separated and/or repeated (`-o ro,noatime`).
    #[arg(short = 'o', value_name = "OPTS", value_delimiter = ',', action = ArgAction::Append)]
    pub options: Vec<String>,
}

pub fn run(cfg: Config, args: MountArgs) -> Result<()> {
    let _ = (cfg, args);
    bail!("not implemented yet")
}
