//! Reading `/proc/self/mountinfo`: which FUSE mount sits on a directory, and its device
//! number (the name of its bdi in sysfs). Reading the table never touches the mount
//! itself, so it works on a dead mount and before our session serves requests.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use tracing::debug;

/// A device number as `major:minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevId {
    pub major: u32,
    pub minor: u32,
}

impl DevId {
    pub fn from_dev(dev: u64) -> Self {
        DevId { major: libc::major(dev), minor: libc::minor(dev) }
    }

    fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once(':')?;
        Some(DevId { major: major.parse().ok()?, minor: minor.parse().ok()? })
    }
}

/// One line of the mount table.
#[derive(Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub dev: DevId,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
}

impl MountEntry {
    pub fn is_fuse(&self) -> bool {
        self.fstype == "fuse" || self.fstype.starts_with("fuse.")
    }

    /// `36 35 0:52 / /mnt/x rw,nosuid shared:1 - fuse ringfs rw,user_id=0`: the device is
    /// field 3, the mount point field 5; type and source follow the "-" that ends the
    /// optional fields.
    fn parse(line: &str) -> Option<Self> {
        let mut fields = line.split(' ');
        let dev = DevId::parse(fields.nth(2)?)?;
        let mount_point = PathBuf::from(OsString::from_vec(unescape(fields.nth(1)?)));
        let mut tail = fields.skip_while(|f| *f != "-").skip(1);
        let fstype = String::from_utf8_lossy(&unescape(tail.next()?)).into_owned();
        let source = String::from_utf8_lossy(&unescape(tail.next()?)).into_owned();
        Some(MountEntry { dev, mount_point, fstype, source })
    }
}

/// Undoes the table's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match digits {
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

/// The mount table, or `None` when it cannot be read.
fn entries() -> Option<Vec<MountEntry>> {
    match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => Some(text.lines().filter_map(MountEntry::parse).collect()),
        Err(e) => {
            debug!(error = %e, "cannot read /proc/self/mountinfo");
            None
        }
    }
}

/// The topmost FUSE mount on `mountpoint` (a canonical path).
pub fn fuse_mount_at(mountpoint: &Path) -> Option<MountEntry> {
    entries()?.into_iter().rev().find(|m| m.mount_point == mountpoint && m.is_fuse())
}

/// Whether a FUSE mount (with device `dev`, when given) is still on `mountpoint`; assumes
/// so when the table cannot be read.
pub fn still_mounted(mountpoint: &Path, dev: Option<DevId>) -> bool {
    match entries() {
        None => true,
        Some(all) => all.iter().any(|m| m.mount_point == mountpoint && m.is_fuse() && dev.is_none_or(|d| d == m.dev)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
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
        let fuseblk = MountEntry::parse("41 22 8:1 / /y rw - fuseblk /dev/sda1 rw").expect("parses");
        assert!(!fuseblk.is_fuse());

        assert_eq!(MountEntry::parse(""), None);
        assert_eq!(MountEntry::parse("36 35 0:52 / /mnt rw"), None);
        assert_eq!(MountEntry::parse("36 35 zero / /mnt rw - fuse x rw"), None);
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
    fn proc_is_not_a_fuse_mount() {
        assert_eq!(fuse_mount_at(Path::new("/proc")), None);
        assert!(!still_mounted(Path::new("/proc"), None));
    }
}
