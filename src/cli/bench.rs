//! `ringfs bench [DIR]`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory to benchmark in (default: the current directory).
    pub dir: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let _ = args;
    bail!("not implemented yet")
}
