//! `ringfs umount MOUNTPOINT [--lazy]`

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
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
    let pid = super::mount::read_pid_file(&args.mountpoint);
    ringfs_fuse::mount::unmount(&args.mountpoint, args.lazy)
        .with_context(|| format!("cannot unmount {}", args.mountpoint.display()))?;
    // The mount process flushes and ends its session after the kernel lets go: wait for
    // it, so that exit 0 means everything written is committed.
    if let Some(pid) = pid {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while super::mount::process_alive(pid) {
            if std::time::Instant::now() > deadline {
                bail!(
                    "unmounted {}, but the mount process {pid} is still flushing after 120s",
                    args.mountpoint.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(())
}
