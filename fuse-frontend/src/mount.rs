//! Mounting and unmounting: builds fuser's session from the engine's `FuseOptions` (plus
//! `-o` options), runs it on its own threads, tunes the mount's bdi, and hands back a
//! [`MountHandle`]. [`unmount`] unmounts a ringfs mount by path (`ringfs umount`).

use std::ffi::CString;
use std::fs;
use std::io;
use std::mem::discriminant;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;

use fuser::{Config, MountOption, Notifier, Session, SessionACL, SessionUnmounter};
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::fs::RingFs;
use crate::mountinfo::{fuse_mount_at, still_mounted, DevId};
use ringfs_engine::vfs::{Engine, FuseOptions};

/// Threads reading `/dev/fuse` (each with its own cloned fd). They only decode and queue,
/// so two are plenty and leave the cores to the engine workers.
const SESSION_THREADS: usize = 2;
/// Share of the dirty-page limit one FUSE mount may use (the kernel's default is 1%).
const BDI_MAX_RATIO: u32 = 40;
const FUSE_DEVICE: &str = "/dev/fuse";
const SUBTYPE: &str = "ringfs";

/// Why a mount or unmount failed; every message names the mountpoint.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount ringfs at {}: the directory does not exist", .mountpoint.display())]
    MissingMountpoint { mountpoint: PathBuf },
    #[error("cannot mount ringfs at {}: not a directory", .mountpoint.display())]
    NotADirectory { mountpoint: PathBuf },
    #[error("mountpoint {} is busy: {reason}", .mountpoint.display())]
    Busy { mountpoint: PathBuf, reason: String },
    #[error(
        "cannot mount ringfs at {}: {reason}; load the fuse module (`modprobe fuse`) or give the container {FUSE_DEVICE}",
        .mountpoint.display()
    )]
    NoFuseDevice { mountpoint: PathBuf, reason: String },
    #[error("cannot mount ringfs at {}: mount option `{option}`: {reason}", .mountpoint.display())]
    BadOption { mountpoint: PathBuf, option: String, reason: String },
    #[error("cannot mount ringfs at {}: {source}", .mountpoint.display())]
    Mount {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("FUSE session at {} failed: {source}", .mountpoint.display())]
    Session {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a FUSE mount", .mountpoint.display())]
    NotMounted { mountpoint: PathBuf },
    #[error("cannot unmount {}: {source}", .mountpoint.display())]
    Unmount {
        mountpoint: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl MountError {
    /// The mountpoint the error is about.
    pub fn mountpoint(&self) -> &Path {
        match self {
            MountError::MissingMountpoint { mountpoint }
            | MountError::NotADirectory { mountpoint }
            | MountError::Busy { mountpoint, .. }
            | MountError::NoFuseDevice { mountpoint, .. }
            | MountError::BadOption { mountpoint, .. }
            | MountError::Mount { mountpoint, .. }
            | MountError::Session { mountpoint, .. }
            | MountError::NotMounted { mountpoint }
            | MountError::Unmount { mountpoint, .. } => mountpoint,
        }
    }
}

/// A running mount. `join` waits for it to end; dropping the handle unmounts it (like
/// fuser's `BackgroundSession`) and waits for the session if the unmount succeeded.
pub struct MountHandle {
    session: Option<JoinHandle<io::Result<()>>>,
    unmounter: Unmounter,
    notifier: Notifier,
}

impl MountHandle {
    /// The canonical mountpoint.
    pub fn mountpoint(&self) -> &Path {
        &self.unmounter.inner.mountpoint
    }

    /// Kernel cache invalidation (`inval_inode`, `inval_entry`, `delete`, `store`); usable
    /// from any thread while the session runs. Never call it while holding a lock that a
    /// pending request needs.
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// A cloneable unmounter for other threads (e.g. a signal handler) while `join` blocks.
    pub fn unmounter(&self) -> Unmounter {
        self.unmounter.clone()
    }

    /// Unmounts (fails with [`MountError::Busy`] while files are open in the mount).
    pub fn unmount(&self) -> Result<(), MountError> {
        self.unmounter.unmount()
    }

    /// Blocks until the filesystem is unmounted (by `unmount`, an [`Unmounter`] or
    /// `umount(8)`) and the session has ended, which includes `Engine::shutdown`.
    pub fn join(mut self) -> Result<(), MountError> {
        match self.session.take() {
            Some(t) => self.wait(t),
            None => Ok(()),
        }
    }

    fn wait(&self, t: JoinHandle<io::Result<()>>) -> Result<(), MountError> {
        let source = match t.join() {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => io::Error::other("the FUSE session thread panicked"),
        };
        Err(MountError::Session { mountpoint: self.mountpoint().to_path_buf(), source })
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        let Some(t) = self.session.take() else { return };
        match self.unmount() {
            Ok(()) => {
                if let Err(e) = self.wait(t) {
                    warn!(error = %e, "FUSE session ended with an error");
                }
            }
            // Joining now would block until someone else unmounts.
            Err(e) => warn!(error = %e, "mount handle dropped but the filesystem stays mounted"),
        }
    }
}

/// Unmounts one mount; `Clone + Send + Sync`.
#[derive(Clone)]
pub struct Unmounter {
    inner: Arc<UnmounterInner>,
}

struct UnmounterInner {
    mountpoint: PathBuf,
    /// `maj:min` of our mount, so an unmount never hits another filesystem mounted on
    /// the same directory after ours went away.
    dev: Option<DevId>,
    /// fuser's unmounter, for the first strict unmount: fuser then knows the mount is
    /// gone and does not try (and warn about) unmounting it again when the session ends.
    fuser: Mutex<Option<SessionUnmounter>>,
}

impl Unmounter {
    /// Unmounts; [`MountError::Busy`] while files are open in the mount. Unmounting a
    /// mount that is already gone succeeds.
    pub fn unmount(&self) -> Result<(), MountError> {
        self.unmount_if_ours(false)
    }

    /// Detaches the mount now (`MNT_DETACH`); the session ends once the last open file
    /// in it is closed.
    pub fn unmount_lazy(&self) -> Result<(), MountError> {
        self.unmount_if_ours(true)
    }

    fn unmount_if_ours(&self, lazy: bool) -> Result<(), MountError> {
        let UnmounterInner { mountpoint, dev, fuser } = &*self.inner;
        if !still_mounted(mountpoint, *dev) {
            debug!(mountpoint = %mountpoint.display(), "already unmounted");
            return Ok(());
        }
        // fuser's unmounter is good for one attempt (it forgets the mount even when
        // umount fails); later attempts and lazy unmounts are ours.
        let first = if lazy { None } else { fuser.lock().take() };
        match first {
            Some(mut u) => u.unmount().map_err(|e| match e.raw_os_error() {
                Some(libc::EBUSY) => busy_unmount(mountpoint),
                _ => MountError::Unmount { mountpoint: mountpoint.clone(), source: e },
            }),
            None => unmount_at(mountpoint, lazy),
        }
    }
}

/// Unmounts the FUSE mount on `mountpoint` (`ringfs umount [--lazy]`): umount(2) as root,
/// `fusermount3 -u` otherwise. Fails with [`MountError::NotMounted`] when no FUSE
/// filesystem is mounted there, [`MountError::Busy`] while files are open in it.
pub fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    // A dead mount cannot be canonicalized (ENOTCONN): fall back to the absolute path.
    let canonical = mountpoint
        .canonicalize()
        .or_else(|_| std::path::absolute(mountpoint))
        .unwrap_or_else(|_| mountpoint.to_path_buf());
    if fuse_mount_at(&canonical).is_none() {
        return Err(MountError::NotMounted { mountpoint: canonical });
    }
    unmount_at(&canonical, lazy)
}

fn unmount_at(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    let unmount_error = |source| MountError::Unmount { mountpoint: mountpoint.to_path_buf(), source };
    let path = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|e| unmount_error(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let flags = if lazy { libc::MNT_DETACH } else { 0 };
    // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
        info!(mountpoint = %mountpoint.display(), lazy, "unmounted");
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM) => fusermount_unmount(mountpoint, lazy),
        Some(libc::EBUSY) => Err(busy_unmount(mountpoint)),
        _ => Err(unmount_error(err)),
    }
}

fn busy_unmount(mountpoint: &Path) -> MountError {
    MountError::Busy {
        mountpoint: mountpoint.to_path_buf(),
        reason: "files in it are open or a process works in it (unmount lazily to detach now)".into(),
    }
}

/// Unprivileged unmount through the setuid helper (fuse3's, else fuse2's).
fn fusermount_unmount(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
    let unmount_error = |source| MountError::Unmount { mountpoint: mountpoint.to_path_buf(), source };
    for helper in ["fusermount3", "fusermount"] {
        let mut cmd = Command::new(helper);
        cmd.arg("-u").arg("-q");
        if lazy {
            cmd.arg("-z");
        }
        let out = match cmd.arg("--").arg(mountpoint).output() {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(unmount_error(e)),
        };
        if out.status.success() {
            info!(mountpoint = %mountpoint.display(), lazy, helper, "unmounted");
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if msg.contains("busy") {
            return Err(busy_unmount(mountpoint));
        }
        return Err(unmount_error(io::Error::other(format!("{helper}: {msg}"))));
    }
    Err(unmount_error(io::Error::new(
        io::ErrorKind::PermissionDenied,
        "umount(2) is not permitted and no fusermount3 helper is installed",
    )))
}

/// Mounts `engine` at `mountpoint` with the engine's FUSE options and starts serving it
/// on background session threads. See [`mount_with_options`].
pub fn mount(engine: Arc<Engine>, mountpoint: &Path) -> Result<MountHandle, MountError> {
    mount_with_options(engine, mountpoint, &[])
}

/// Like [`mount`], with `-o` options on top of the engine's: `ro`/`rw`, `exec`/`noexec`,
/// `suid`/`nosuid`, `dev`/`nodev`, `atime`/`noatime`, `sync`/`async`, `dirsync`,
/// `default_permissions`, `allow_other`, `allow_root`, `auto_unmount` (needs
/// fusermount3 and `allow_other`/`allow_root`), `fsname=`, `subtype=`, `max_read=`.
/// Later options override earlier ones.
///
/// Fails with a [`MountError`] naming the mountpoint when it is missing, not a directory,
/// already carries a FUSE mount (or a dead one), when there is no FUSE device, or for an
/// unknown option. If the kernel handshake itself fails, the engine has been shut down.
pub fn mount_with_options(
    engine: Arc<Engine>,
    mountpoint: &Path,
    options: &[String],
) -> Result<MountHandle, MountError> {
    let mountpoint = check_mountpoint(mountpoint)?;
    check_fuse_device(&mountpoint)?;
    let mut config = session_config(engine.fuse_options());
    for option in options.iter().filter(|o| !o.is_empty()) {
        apply_option(&mut config, option).map_err(|reason| MountError::BadOption {
            mountpoint: mountpoint.clone(),
            option: option.clone(),
            reason,
        })?;
    }
    let read_ahead = engine.fuse_options().read_ahead;
    let volume = engine.volume_name().to_string();

    let mut session =
        Session::new(RingFs::new(engine), &mountpoint, &config).map_err(|e| classify_mount_error(&mountpoint, e))?;
    let notifier = session.notifier();
    let fuser_unmounter = session.unmount_callable();
    // From the mount table, before the session serves requests: a stat of the mountpoint
    // would wait for our own getattr.
    let dev = fuse_mount_at(&mountpoint).map(|m| m.dev);
    let thread = std::thread::Builder::new()
        .name("ringfs-fuse".into())
        .spawn(move || session.run())
        .map_err(|source| MountError::Session { mountpoint: mountpoint.clone(), source })?;
    let dev = dev.or_else(|| {
        let m = fs::metadata(&mountpoint).ok()?;
        Some(DevId::from_dev(m.dev()))
    });
    match dev {
        Some(dev) => tune_bdi(dev, read_ahead),
        None => debug!(mountpoint = %mountpoint.display(), "device of the mount unknown"),
    }
    info!(volume, mountpoint = %mountpoint.display(), "ringfs mounted");
    Ok(MountHandle {
        session: Some(thread),
        unmounter: Unmounter {
            inner: Arc::new(UnmounterInner { mountpoint, dev, fuser: Mutex::new(Some(fuser_unmounter)) }),
        },
        notifier,
    })
}

/// fuser's configuration for the engine's options. `AutoUnmount` stays off: it needs the
/// fusermount3 helper, while root mounts with mount(2) directly.
fn session_config(o: &FuseOptions) -> Config {
    let fsname = if o.fsname.is_empty() { SUBTYPE } else { o.fsname.as_str() };
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName(fsname.to_string()), MountOption::Subtype(SUBTYPE.to_string())];
    if o.default_permissions {
        config.mount_options.push(MountOption::DefaultPermissions);
    }
    config.acl = if o.allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(SESSION_THREADS);
    config.clone_fd = true;
    config
}

/// Applies one `-o` option; it replaces an earlier one of the same kind or its opposite.
fn apply_option(config: &mut Config, option: &str) -> Result<(), String> {
    use MountOption::*;
    let (opt, opposite) = match option {
        "ro" => (RO, RW),
        "rw" => (RW, RO),
        "exec" => (Exec, NoExec),
        "noexec" => (NoExec, Exec),
        "suid" => (Suid, NoSuid),
        "nosuid" => (NoSuid, Suid),
        "dev" => (Dev, NoDev),
        "nodev" => (NoDev, Dev),
        "atime" => (Atime, NoAtime),
        "noatime" => (NoAtime, Atime),
        "sync" => (Sync, Async),
        "async" => (Async, Sync),
        "dirsync" => (DirSync, DirSync),
        "default_permissions" => (DefaultPermissions, DefaultPermissions),
        "auto_unmount" => (AutoUnmount, AutoUnmount),
        "allow_other" | "allow_root" => {
            config.acl = if option == "allow_other" { SessionACL::All } else { SessionACL::RootAndOwner };
            return Ok(());
        }
        _ => match option.split_once('=') {
            Some(("fsname", v)) if !v.is_empty() => (FSName(v.into()), FSName(v.into())),
            Some(("subtype", v)) if !v.is_empty() => (Subtype(v.into()), Subtype(v.into())),
            Some(("max_read", v)) if v.parse::<u32>().is_ok_and(|n| n > 0) => {
                config.mount_options.retain(|m| !is_max_read(m));
                config.mount_options.push(CUSTOM(option.into()));
                return Ok(());
            }
            _ => return Err("unknown or malformed option".into()),
        },
    };
    config.mount_options.retain(|m| discriminant(m) != discriminant(&opt) && *m != opposite);
    config.mount_options.push(opt);
    Ok(())
}

fn is_max_read(m: &MountOption) -> bool {
    matches!(m, MountOption::CUSTOM(s) if s.starts_with("max_read="))
}

fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let mountpoint = || path.to_path_buf();
    let io_error = |source| MountError::Mount { mountpoint: mountpoint(), source };
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(MountError::NotADirectory { mountpoint: mountpoint() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::MissingMountpoint { mountpoint: mountpoint() })
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(MountError::Busy {
                mountpoint: mountpoint(),
                reason: "a dead FUSE mount is still attached (transport endpoint is not \
                         connected); unmount it first (`ringfs umount --lazy`)"
                    .into(),
            })
        }
        Err(e) => return Err(io_error(e)),
    }
    let canonical = path.canonicalize().map_err(io_error)?;
    if let Some(m) = fuse_mount_at(&canonical) {
        return Err(MountError::Busy {
            mountpoint: canonical,
            reason: format!("{} ({}) is already mounted there", m.source, m.fstype),
        });
    }
    Ok(canonical)
}

fn check_fuse_device(mountpoint: &Path) -> Result<(), MountError> {
    match fs::metadata(FUSE_DEVICE) {
        Ok(_) => Ok(()),
        Err(e) => Err(MountError::NoFuseDevice {
            mountpoint: mountpoint.to_path_buf(),
            reason: format!("{FUSE_DEVICE}: {e}"),
        }),
    }
}

/// Names the cause of a failed `Session::new` where it can be told from the error (fuser
/// reports a failed mount(2) as text, e.g. "... EBUSY: Device or resource busy").
fn classify_mount_error(mountpoint: &Path, e: io::Error) -> MountError {
    let mountpoint = mountpoint.to_path_buf();
    let text = e.to_string();
    if e.raw_os_error() == Some(libc::EBUSY) || text.contains("EBUSY") {
        return MountError::Busy { mountpoint, reason: text };
    }
    if e.kind() == io::ErrorKind::NotFound {
        if let Err(dev) = fs::metadata(FUSE_DEVICE) {
            return MountError::NoFuseDevice { mountpoint, reason: format!("{FUSE_DEVICE}: {dev}") };
        }
        return MountError::MissingMountpoint { mountpoint };
    }
    MountError::Mount { mountpoint, source: e }
}

/// Raises the mount's read-ahead (the kernel then sends reads that large instead of 128
/// KiB) and its share of dirty pages (1% by default for FUSE, which throttles the
/// writeback cache). Best effort: needs root and sysfs.
fn tune_bdi(dev: DevId, read_ahead: u32) {
    let dir = PathBuf::from(format!("/sys/class/bdi/{}:{}", dev.major, dev.minor));
    let settings = [("read_ahead_kb", read_ahead / 1024), ("max_ratio", BDI_MAX_RATIO)];
    for (name, value) in settings.into_iter().filter(|&(_, v)| v > 0) {
        let path = dir.join(name);
        match fs::write(&path, value.to_string()) {
            Ok(()) => debug!(path = %path.display(), value, "bdi tuned"),
            Err(e) => debug!(path = %path.display(), value, error = %e, "cannot tune bdi"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(config: &Config) -> Vec<MountOption> {
        config.mount_options.clone()
    }

    #[test]
    fn missing_and_non_directory_mountpoints() {
        let e = check_mountpoint(Path::new("/nonexistent/ringfs-test-mnt")).unwrap_err();
        assert!(matches!(e, MountError::MissingMountpoint { .. }));
        assert!(e.to_string().contains("/nonexistent/ringfs-test-mnt"), "{e}");

        let file = std::env::temp_dir().join(format!("ringfs-fuse-notdir-{}", std::process::id()));
        fs::write(&file, b"x").expect("temp file");
        let e = check_mountpoint(&file).unwrap_err();
        let _ = fs::remove_file(&file);
        assert!(matches!(e, MountError::NotADirectory { .. }));
        assert!(e.to_string().contains(&*file.to_string_lossy()), "{e}");
    }

    #[test]
    fn an_existing_directory_passes_the_checks() {
        let dir = std::env::temp_dir();
        let canonical = check_mountpoint(&dir).expect("temp dir is a fine mountpoint");
        assert_eq!(canonical, dir.canonicalize().expect("canonical"));
    }

    #[test]
    fn mount_failures_are_classified() {
        let mp = Path::new("/mnt/x");
        let busy = classify_mount_error(
            mp,
            io::Error::other("Error calling mount() at \"/mnt/x\": EBUSY: Device or resource busy"),
        );
        assert!(matches!(busy, MountError::Busy { .. }));
        assert!(busy.to_string().starts_with("mountpoint /mnt/x is busy"), "{busy}");
        let other = classify_mount_error(mp, io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(other, MountError::Mount { .. }));
        assert!(other.to_string().contains("/mnt/x"), "{other}");
        assert_eq!(other.mountpoint(), mp);
    }

    #[test]
    fn not_mounted_is_an_error_for_unmount() {
        let e = unmount(Path::new("/proc"), false).unwrap_err();
        assert!(matches!(e, MountError::NotMounted { .. }), "{e}");
        assert_eq!(e.to_string(), "/proc is not a FUSE mount");
    }

    fn engine_defaults() -> FuseOptions {
        FuseOptions {
            attr_ttl: std::time::Duration::from_secs(1),
            entry_ttl: std::time::Duration::from_secs(1),
            negative_ttl: std::time::Duration::ZERO,
            writeback_cache: true,
            max_write: 1 << 20,
            allow_other: false,
            default_permissions: true,
            fsname: "vol1".into(),
            read_ahead: 1 << 20,
            xattr: true,
        }
    }

    #[test]
    fn config_from_engine_options() {
        let c = session_config(&engine_defaults());
        assert_eq!(
            options(&c),
            vec![
                MountOption::FSName("vol1".into()),
                MountOption::Subtype("ringfs".into()),
                MountOption::DefaultPermissions
            ]
        );
        assert_eq!(c.acl, SessionACL::Owner);
        assert_eq!((c.n_threads, c.clone_fd), (Some(SESSION_THREADS), true));
        assert!(!options(&c).contains(&MountOption::AutoUnmount));

        let mut o = engine_defaults();
        o.allow_other = true;
        o.default_permissions = false;
        o.fsname.clear();
        let c = session_config(&o);
        assert_eq!(c.acl, SessionACL::All);
        assert_eq!(options(&c)[0], MountOption::FSName("ringfs".into()));
        assert!(!options(&c).contains(&MountOption::DefaultPermissions));
    }

    #[test]
    fn dash_o_options() {
        let mut c = session_config(&engine_defaults());
        for o in ["ro", "noatime", "rw", "fsname=other", "max_read=65536", "max_read=131072", "allow_root", "noatime"] {
            apply_option(&mut c, o).unwrap_or_else(|e| panic!("{o}: {e}"));
        }
        let got = options(&c);
        assert!(got.contains(&MountOption::RW) && !got.contains(&MountOption::RO), "{got:?}");
        assert_eq!(got.iter().filter(|m| **m == MountOption::NoAtime).count(), 1);
        assert!(got.contains(&MountOption::FSName("other".into())));
        assert!(!got.contains(&MountOption::FSName("vol1".into())));
        assert_eq!(got.iter().filter(|m| is_max_read(m)).count(), 1);
        assert!(got.contains(&MountOption::CUSTOM("max_read=131072".into())));
        assert_eq!(c.acl, SessionACL::RootAndOwner);
        for bad in ["bogus", "fsname=", "max_read=x", "max_read=0", "nonempty"] {
            assert!(apply_option(&mut c, bad).is_err(), "{bad} accepted");
        }
    }
}
