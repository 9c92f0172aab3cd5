//! `ringfs umount MOUNTPOINT [--lazy]`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The ringfs mount point.
    pub mountpoint: PathBuf,
    /// Detach now, clean up when no longer busy (like `umount -l`).
    #[arg(short = 'l', long)]
    pub lazy: bool,
}

pub fn run(args: UmountArgs) -> Result<()> {
    let _ = args;
    bail!("not implemented yet")
}
