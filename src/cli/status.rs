//! `ringfs status -c CONF VOLUME`

use anyhow::{bail, Result};
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
    let _ = (cfg, args);
    bail!("not implemented yet")
}
