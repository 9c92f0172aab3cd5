//! `ringfs mount -c CONF VOLUME MOUNTPOINT [--background] [-o opts]`

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
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
    let mp = args.mountpoint.clone();
    let meta = std::fs::metadata(&mp).with_context(|| format!("mount point {}", mp.display()))?;
    if !meta.is_dir() {
        bail!("mount point {} is not a directory", mp.display());
    }
    // As root, mount(2) would stack a second mount on top: refuse a busy mount point.
    if is_mounted(&mp) {
        bail!("mount point {} is busy: already mounted", mp.display());
    }
    if args.background {
        return run_background(&args);
    }
    run_foreground(cfg, args)
}

fn run_foreground(cfg: Config, args: MountArgs) -> Result<()> {
    // Signals are taken by a dedicated thread (blocked everywhere else), which unmounts.
    let signals = block_signals();
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ringfs-bg")
        .enable_all()
        .build()
        .context("cannot start the background runtime")?;
    let (meta, store) = background
        .block_on(ringfs_engine::setup::open_volume(&cfg, &args.volume))
        .with_context(|| format!("cannot mount volume '{}'", args.volume))?;
    let engine = ringfs_engine::vfs::Engine::start(&cfg, &args.volume, meta, store, background)
        .context("cannot start the engine workers")?;
    let handle = match ringfs_fuse::mount::mount_with_options(
        engine.clone(),
        &args.mountpoint,
        &args.options,
    ) {
        Ok(h) => h,
        Err(e) => {
            engine.shutdown();
            return Err(e).with_context(|| format!("cannot mount volume '{}'", args.volume));
        }
    };
    write_pid_file(&args.mountpoint);
    tracing::info!(volume = %args.volume, mountpoint = %args.mountpoint.display(), io = ?engine.io_mode(), "mounted");
    let unmounter = handle.unmounter();
    if let Some(set) = signals {
        std::thread::Builder::new()
            .name("ringfs-signals".into())
            .spawn(move || {
                let mut sig: libc::c_int = 0;
                // SAFETY: `set` is a valid, initialised signal set blocked in this process.
                if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
                    tracing::info!(signal = sig, "unmounting on signal");
                    if unmounter.unmount().is_err() {
                        let _ = unmounter.unmount_lazy();
                    }
                }
            })
            .ok();
    }
    let joined = handle.join();
    engine.shutdown();
    remove_pid_file(&args.mountpoint);
    joined.context("the FUSE session ended with an error")?;
    Ok(())
}

/// Blocks SIGINT/SIGTERM/SIGHUP in this thread (and the threads it starts later).
fn block_signals() -> Option<libc::sigset_t> {
    // SAFETY: plain libc signal-set manipulation on a zeroed, then initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        (libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0).then_some(set)
    }
}

/// Re-runs this command in the foreground as a detached child (own session, output to a
/// log file) and returns once the mount is live, or with the child's error.
fn run_background(args: &MountArgs) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the ringfs executable")?;
    let log_path = std::env::temp_dir().join(format!("ringfs-{}.log", sanitize(&args.mountpoint)));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("mount")
        .arg("-c")
        .arg(&args.conf.config)
        .arg(&args.volume)
        .arg(&args.mountpoint);
    for o in &args.options {
        cmd.arg("-o").arg(o);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; called in the child between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the mount process")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if is_mounted(&args.mountpoint) {
            return super::print_stdout(&format!(
                "mounted volume '{}' at {} (pid {}, log {})\n",
                args.volume,
                args.mountpoint.display(),
                child.id(),
                log_path.display()
            ));
        }
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| l.starts_with("ringfs:"))
                .or_else(|| text.lines().last())
                .unwrap_or("");
            bail!(
                "{} (mount process exited with {status}; log {})",
                last.trim_start_matches("ringfs: "),
                log_path.display()
            );
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the mount did not become ready within 60s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether `mp` is a mount point now (per /proc/self/mountinfo).
pub fn is_mounted(mp: &std::path::Path) -> bool {
    let canon = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines().any(|l| {
        l.split(' ').nth(4).map(|p| p.replace("\\040", " ")) == Some(canon.display().to_string())
    })
}

fn sanitize(mp: &std::path::Path) -> String {
    let canon = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    canon
        .display()
        .to_string()
        .trim_start_matches('/')
        .replace(['/', ' '], "_")
}

fn pid_file(mp: &std::path::Path) -> PathBuf {
    PathBuf::from("/run/ringfs").join(format!("{}.pid", sanitize(mp)))
}

fn write_pid_file(mp: &std::path::Path) {
    let p = pid_file(mp);
    if let Some(dir) = p.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&p, std::process::id().to_string());
}

fn remove_pid_file(mp: &std::path::Path) {
    let _ = std::fs::remove_file(pid_file(mp));
}

/// The pid of the process serving `mp`, if it recorded one.
pub fn read_pid_file(mp: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(pid_file(mp))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is still running (a zombie has finished: it only awaits its parent).
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|rest| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}
