//! Mounting and unmounting: builds fuser's session from the engine's `FuseOptions`, runs
//! it on its own threads, tunes the mount's bdi, and hands back a [`MountHandle`].

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use fuser::{Config, MountOption, Notifier, Session, SessionACL, SessionUnmounter};
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::fs::RingFs;
use crate::vfs::{Engine, FuseOptions};

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
            | MountError::Mount { mountpoint, .. }
            | MountError::Session { mountpoint, .. }
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
        Err(MountError::Session {
            mountpoint: self.mountpoint().to_path_buf(),
            source,
        })
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
    /// fuser's unmounter, used when umount(2) is not permitted (non-root: fusermount3).
    fuser: Mutex<SessionUnmounter>,
}

impl Unmounter {
    /// `umount(2)`; [`MountError::Busy`] while files are open in the mount. Unmounting a
    /// mount that is already gone succeeds.
    pub fn unmount(&self) -> Result<(), MountError> {
        self.umount2(0)
    }

    /// Detaches the mount now (`MNT_DETACH`); the session ends once the last open file
    /// in it is closed.
    pub fn unmount_lazy(&self) -> Result<(), MountError> {
        self.umount2(libc::MNT_DETACH)
    }

    fn umount2(&self, flags: libc::c_int) -> Result<(), MountError> {
        let inner = &self.inner;
        let mountpoint = || inner.mountpoint.clone();
        if !still_mounted(&inner.mountpoint, inner.dev) {
            debug!(mountpoint = %inner.mountpoint.display(), "already unmounted");
            return Ok(());
        }
        let path = CString::new(inner.mountpoint.as_os_str().as_bytes()).map_err(|e| MountError::Unmount {
            mountpoint: mountpoint(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
        // SAFETY: `path` is a valid NUL-terminated string that outlives the call.
        if unsafe { libc::umount2(path.as_ptr(), flags) } == 0 {
            info!(mountpoint = %inner.mountpoint.display(), "unmounted");
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EPERM) => inner.fuser.lock().unmount().map_err(|source| MountError::Unmount {
                mountpoint: mountpoint(),
                source,
            }),
            Some(libc::EBUSY) => Err(MountError::Busy {
                mountpoint: mountpoint(),
                reason: "files in it are open or a process works in it (unmount lazily to detach now)".into(),
            }),
            _ => Err(MountError::Unmount {
                mountpoint: mountpoint(),
                source: err,
            }),
        }
    }
}

/// Mounts `engine` at `mountpoint` and starts serving it on background session threads.
/// Fails with a [`MountError`] naming the mountpoint when it is missing, not a directory,
/// already carries a FUSE mount (or a dead one), or when there is no FUSE device.
pub fn mount(engine: Arc<Engine>, mountpoint: &Path) -> Result<MountHandle, MountError> {
    let mountpoint = check_mountpoint(mountpoint)?;
    check_fuse_device(&mountpoint)?;
    let config = session_config(engine.fuse_options());
    let read_ahead = engine.fuse_options().read_ahead;
    let volume = engine.volume_name().to_string();

    let mut session =
        Session::new(RingFs::new(engine), &mountpoint, &config).map_err(|e| classify_mount_error(&mountpoint, e))?;
    let notifier = session.notifier();
    let fuser_unmounter = session.unmount_callable();
    // Read before the session serves requests: asking the mount itself (stat) would wait
    // for our own getattr.
    let dev = mounted_dev(&mountpoint);
    let thread = std::thread::Builder::new()
        .name("ringfs-fuse".into())
        .spawn(move || session.run())
        .map_err(|source| MountError::Session {
            mountpoint: mountpoint.clone(),
            source,
        })?;
    let dev = dev.or_else(|| fs::metadata(&mountpoint).ok().map(|m| DevId::from_dev(m.dev())));
    match dev {
        Some(dev) => tune_bdi(dev, read_ahead),
        None => debug!(mountpoint = %mountpoint.display(), "device of the mount unknown; bdi not tuned"),
    }
    info!(volume, mountpoint = %mountpoint.display(), "ringfs mounted");
    Ok(MountHandle {
        session: Some(thread),
        unmounter: Unmounter {
            inner: Arc::new(UnmounterInner {
                mountpoint,
                dev,
                fuser: Mutex::new(fuser_unmounter),
            }),
        },
        notifier,
    })
}

/// fuser's configuration for the engine's options. `AutoUnmount` stays off: it needs the
/// fusermount3 helper, while root mounts with mount(2) directly.
fn session_config(o: &FuseOptions) -> Config {
    let fsname = if o.fsname.is_empty() { SUBTYPE } else { o.fsname.as_str() };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(fsname.to_string()),
        MountOption::Subtype(SUBTYPE.to_string()),
    ];
    if o.default_permissions {
        config.mount_options.push(MountOption::DefaultPermissions);
    }
    config.acl = if o.allow_other { SessionACL::All } else { SessionACL::Owner };
    config.n_threads = Some(SESSION_THREADS);
    config.clone_fd = true;
    config
}

fn check_mountpoint(path: &Path) -> Result<PathBuf, MountError> {
    let mountpoint = || path.to_path_buf();
    let io_error = |source| MountError::Mount {
        mountpoint: mountpoint(),
        source,
    };
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(MountError::NotADirectory { mountpoint: mountpoint() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(MountError::MissingMountpoint { mountpoint: mountpoint() })
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(MountError::Busy {
                mountpoint: mountpoint(),
                reason: "a dead FUSE mount is still attached (transport endpoint is not connected); \
                         `umount -l` it first"
                    .into(),
            })
        }
        Err(e) => return Err(io_error(e)),
    }
    let canonical = path.canonicalize().map_err(io_error)?;
    if let Some(m) = mount_entries().into_iter().rev().find(|m| m.mount_point == canonical && m.is_fuse()) {
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

/// Names the cause of a failed `Session::new` where it can be told from the error.
fn classify_mount_error(mountpoint: &Path, e: io::Error) -> MountError {
    let mountpoint = mountpoint.to_path_buf();
    let text = e.to_string();
    if e.raw_os_error() == Some(libc::EBUSY) || text.contains("EBUSY") {
        return MountError::Busy {
            mountpoint,
            reason: text,
        };
    }
    if e.kind() == io::ErrorKind::NotFound && fs::metadata(FUSE_DEVICE).is_err() {
        return MountError::NoFuseDevice {
            mountpoint,
            reason: format!("{FUSE_DEVICE} disappeared: {e}"),
        };
    }
    if e.kind() == io::ErrorKind::NotFound {
        return MountError::MissingMountpoint { mountpoint };
    }
    MountError::Mount { mountpoint, source: e }
}

/// Raises the mount's read-ahead (the kernel then sends reads of that size instead of
/// 128 KiB) and its share of dirty pages (1% by default for FUSE, which throttles the
/// writeback cache). Best effort: needs root and sysfs.
fn tune_bdi(dev: DevId, read_ahead: u32) {
    let dir = PathBuf::from(format!("/sys/class/bdi/{}:{}", dev.major, dev.minor));
    let read_ahead_kb = read_ahead / 1024;
    let settings = [("read_ahead_kb", read_ahead_kb), ("max_ratio", BDI_MAX_RATIO)];
    for (name, value) in settings.into_iter().filter(|&(_, v)| v > 0) {
        let path = dir.join(name);
        match fs::write(&path, value.to_string()) {
            Ok(()) => debug!(path = %path.display(), value, "bdi tuned"),
            Err(e) => debug!(path = %path.display(), value, error = %e, "cannot tune bdi"),
        }
    }
}

/// A device number as `major:minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DevId {
    major: u32,
    minor: u32,
}

impl DevId {
    fn from_dev(dev: u64) -> Self {
        DevId {
            major: libc::major(dev),
            minor: libc::minor(dev),
        }
    }

    fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once(':')?;
        Some(DevId {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct MountEntry {
    dev: DevId,
    mount_point: PathBuf,
    fstype: String,
    source: String,
}

impl MountEntry {
    fn is_fuse(&self) -> bool {
        self.fstype == "fuse" || self.fstype.starts_with("fuse.")
    }

    /// `36 35 0:52 / /mnt/x rw,nosuid shared:1 - fuse ringfs rw,user_id=0`: fields 3 and 5,
    /// then after the optional fields and "-": type and source.
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split(' ');
        let dev = DevId::parse(fields.nth(2)?)?;
        let mount_point = PathBuf::from(std::ffi::OsString::from_vec(unescape(fields.nth(1)?)));
        let mut after_sep = fields.skip_while(|f| *f != "-").skip(1);
        let fstype = String::from_utf8_lossy(&unescape(after_sep.next()?)).into_owned();
        let source = String::from_utf8_lossy(&unescape(after_sep.next()?)).into_owned();
        Some(MountEntry {
            dev,
            mount_point,
            fstype,
            source,
        })
    }
}

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

fn mount_entries() -> Vec<MountEntry> {
    match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text.lines().filter_map(MountEntry::parse).collect(),
        Err(e) => {
            debug!(error = %e, "cannot read /proc/self/mountinfo");
            Vec::new()
        }
    }
}

/// The device of the topmost FUSE mount at `mountpoint`.
fn mounted_dev(mountpoint: &Path) -> Option<DevId> {
    let entries = mount_entries();
    entries.iter().rev().find(|m| m.mount_point == mountpoint && m.is_fuse()).map(|m| m.dev)
}

/// Whether our mount (device `dev`, when known) is still at `mountpoint`; assumes so when
/// the mount table cannot be read.
fn still_mounted(mountpoint: &Path, dev: Option<DevId>) -> bool {
    let entries = mount_entries();
    entries.is_empty()
        || entries
            .iter()
            .any(|m| m.mount_point == mountpoint && m.is_fuse() && dev.is_none_or(|d| d == m.dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let line = "36 35 0:52 / /mnt/ring\\040fs rw,nosuid,nodev,relatime shared:1 master:2 - fuse ringfs rw,user_id=0,group_id=0";
        let m = MountEntry::parse(line).expect("parses");
        assert_eq!(m.dev, DevId { major: 0, minor: 52 });
        assert_eq!(m.mount_point, PathBuf::from("/mnt/ring fs"));
        assert_eq!((m.fstype.as_str(), m.source.as_str()), ("fuse", "ringfs"));
        assert!(m.is_fuse());

        let ext4 = MountEntry::parse("22 1 254:1 / / rw,relatime - ext4 /dev/vda rw").expect("parses");
        assert_eq!(ext4.dev, DevId { major: 254, minor: 1 });
        assert!(!ext4.is_fuse());
        let sub = MountEntry::parse("40 22 0:60 / /x rw - fuse.sshfs me@h:/ rw").expect("parses");
        assert!(sub.is_fuse());

        assert_eq!(MountEntry::parse(""), None);
        assert_eq!(MountEntry::parse("36 35 0:52 / /mnt rw"), None);
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("a\\040b\\011c\\012d\\134e"), b"a b\tc\nd\\e");
        assert_eq!(unescape("plain"), b"plain");
        assert_eq!(unescape("trailing\\04"), b"trailing\\04");
        assert_eq!(unescape("\\x41"), b"\\x41");
    }

    #[test]
    fn dev_ids() {
        assert_eq!(DevId::parse("0:52"), Some(DevId { major: 0, minor: 52 }));
        assert_eq!(DevId::parse("0-52"), None);
        let dev = libc::makedev(259, 7);
        assert_eq!(DevId::from_dev(dev), DevId { major: 259, minor: 7 });
    }

    #[test]
    fn mount_errors_name_the_mountpoint() {
        let e = check_mountpoint(Path::new("/nonexistent/ringfs-test-mnt")).unwrap_err();
        assert!(matches!(e, MountError::MissingMountpoint { .. }));
        assert!(e.to_string().contains("/nonexistent/ringfs-test-mnt"), "{e}");

        let file = std::env::temp_dir().join(format!("ringfs-fuse-notdir-{}", std::process::id()));
        fs::write(&file, b"x").expect("temp file");
        let e = check_mountpoint(&file).unwrap_err();
        let _ = fs::remove_file(&file);
        assert!(matches!(e, MountError::NotADirectory { .. }));
        assert!(e.to_string().contains(&*file.to_string_lossy()), "{e}");

        let busy = classify_mount_error(
            Path::new("/mnt/x"),
            io::Error::other("Error calling mount() at \"/mnt/x\": EBUSY: Device or resource busy"),
        );
        assert!(matches!(busy, MountError::Busy { .. }));
        assert!(busy.to_string().starts_with("mountpoint /mnt/x is busy"), "{busy}");
    }

    #[test]
    fn an_existing_directory_passes_the_checks() {
        let dir = std::env::temp_dir();
        let canonical = check_mountpoint(&dir).expect("temp dir is a fine mountpoint");
        assert_eq!(canonical, dir.canonicalize().expect("canonical"));
    }
}
