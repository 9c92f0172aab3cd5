//! Inode attributes and directory-entry values, with their compact binary encoding.
//!
//! Values are small fixed layouts with a version byte: an attribute record is 71 bytes,
//! so a transaction touching several inodes stays far below etcd's request limit.

use super::keys::Ino;
use super::MetaError;
use std::time::{SystemTime, UNIX_EPOCH};

/// File type of an inode, as stored. Values are part of the on-etcd format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    CharDev = 5,
    BlockDev = 6,
    Socket = 7,
}

impl FileKind {
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => FileKind::File,
            2 => FileKind::Dir,
            3 => FileKind::Symlink,
            4 => FileKind::Fifo,
            5 => FileKind::CharDev,
            6 => FileKind::BlockDev,
            7 => FileKind::Socket,
            _ => return None,
        })
    }

    /// From the `S_IFMT` bits of a mode.
    pub fn from_mode(mode: u32) -> Option<Self> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            libc::S_IFSOCK => FileKind::Socket,
            _ => return None,
        })
    }

    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::File => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::CharDev => libc::S_IFCHR,
            FileKind::BlockDev => libc::S_IFBLK,
            FileKind::Socket => libc::S_IFSOCK,
        }
    }
}

/// A point in time with nanoseconds, as stored (seconds since the epoch may be negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nsecs: u32,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from_system(SystemTime::now())
    }

    pub fn from_system(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nsecs: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let mut secs = -(d.as_secs() as i64);
                let mut nsecs = d.subsec_nanos();
                if nsecs > 0 {
                    secs -= 1;
                    nsecs = 1_000_000_000 - nsecs;
                }
                Timestamp { secs, nsecs }
            }
        }
    }

    pub fn to_system(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + std::time::Duration::new(self.secs as u64, self.nsecs)
        } else {
            UNIX_EPOCH - std::time::Duration::from_secs(self.secs.unsigned_abs())
                + std::time::Duration::from_nanos(self.nsecs as u64)
        }
    }
}

/// The attributes of one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub rdev: u32,
    /// Parent directory; kept exact for directories (".." and the rename ancestry check).
    pub parent: Ino,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Known to have no extended attributes (set at creation, cleared by the first
    /// setxattr): clients answer `getxattr` probes such as `security.capability` (on every
    /// write) and `security.selinux` (`ls -l`) without reading etcd. Stored in a spare
    /// bit of the permission field; records without it simply mean "unknown".
    pub no_xattrs: bool,
}

const ATTR_VERSION: u8 = 1;
/// The spare permission bit that stores [`Attr::no_xattrs`].
const NO_XATTRS_BIT: u16 = 0x8000;
pub const ATTR_BYTES: usize = 1 + 1 + 2 + 4 + 4 + 4 + 8 + 4 + 8 + 3 * 12;

/// Size reported for directories, as most local filesystems do.
pub const DIR_SIZE: u64 = 4096;

impl Attr {
    pub fn new(ino: Ino, kind: FileKind, perm: u16, uid: u32, gid: u32, parent: Ino) -> Self {
        let now = Timestamp::now();
        Attr {
            ino,
            kind,
            perm: perm & 0o7777,
            uid,
            gid,
            nlink: if kind == FileKind::Dir { 2 } else { 1 },
            size: if kind == FileKind::Dir { DIR_SIZE } else { 0 },
            rdev: 0,
            parent,
            atime: now,
            mtime: now,
            ctime: now,
            no_xattrs: true,
        }
    }

    /// The full `st_mode`.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | self.perm as u32
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(ATTR_BYTES);
        b.push(ATTR_VERSION);
        b.push(self.kind as u8);
        let flags = if self.no_xattrs { NO_XATTRS_BIT } else { 0 };
        b.extend_from_slice(&((self.perm & 0o7777) | flags).to_be_bytes());
        b.extend_from_slice(&self.uid.to_be_bytes());
        b.extend_from_slice(&self.gid.to_be_bytes());
        b.extend_from_slice(&self.nlink.to_be_bytes());
        b.extend_from_slice(&self.size.to_be_bytes());
        b.extend_from_slice(&self.rdev.to_be_bytes());
        b.extend_from_slice(&self.parent.to_be_bytes());
        for t in [self.atime, self.mtime, self.ctime] {
            b.extend_from_slice(&t.secs.to_be_bytes());
            b.extend_from_slice(&t.nsecs.to_be_bytes());
        }
        b
    }

    pub fn decode(ino: Ino, b: &[u8]) -> Result<Self, MetaError> {
        let corrupt = || {
            MetaError::Corrupt(format!(
                "attribute record of inode {ino} ({} bytes)",
                b.len()
            ))
        };
        if b.len() != ATTR_BYTES || b[0] != ATTR_VERSION {
            return Err(corrupt());
        }
        let kind = FileKind::from_u8(b[1]).ok_or_else(corrupt)?;
        let u16_at = |o: usize| u16::from_be_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_be_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let ts_at = |o: usize| Timestamp {
            secs: u64_at(o) as i64,
            nsecs: u32_at(o + 8).min(999_999_999),
        };
        Ok(Attr {
            ino,
            kind,
            perm: u16_at(2) & 0o7777,
            uid: u32_at(4),
            gid: u32_at(8),
            nlink: u32_at(12),
            size: u64_at(16),
            rdev: u32_at(24),
            parent: u64_at(28),
            atime: ts_at(36),
            mtime: ts_at(48),
            ctime: ts_at(60),
            no_xattrs: u16_at(2) & NO_XATTRS_BIT != 0,
        })
    }
}

/// A directory entry's value: the child inode and its type (so readdir needs no attr reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dentry {
    pub ino: Ino,
    pub kind: FileKind,
}

impl Dentry {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(9);
        b.extend_from_slice(&self.ino.to_be_bytes());
        b.push(self.kind as u8);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, MetaError> {
        if b.len() != 9 {
            return Err(MetaError::Corrupt(format!(
                "directory entry value of {} bytes",
                b.len()
            )));
        }
        let ino = u64::from_be_bytes(b[..8].try_into().unwrap_or_default());
        let kind = FileKind::from_u8(b[8])
            .ok_or_else(|| MetaError::Corrupt("directory entry kind".into()))?;
        Ok(Dentry { ino, kind })
    }
}

/// Checks a name for a directory entry or the name of a link: any byte but '/' and NUL,
/// 1 to 255 bytes, not "." or "..".
pub fn check_name(name: &[u8]) -> Result<(), MetaError> {
    if name.len() > 255 {
        return Err(MetaError::NameTooLong);
    }
    if name.is_empty() || name.contains(&b'/') || name.contains(&0) {
        return Err(MetaError::InvalidName);
    }
    if name == b"." || name == b".." {
        return Err(MetaError::InvalidName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_kind() -> impl Strategy<Value = FileKind> {
        (1u8..=7).prop_map(|v| FileKind::from_u8(v).unwrap())
    }

    proptest! {
        #[test]
        fn attr_round_trips(ino in any::<u64>(), kind in any_kind(), perm in 0u16..0o10000, uid in any::<u32>(), gid in any::<u32>(),
                            nlink in any::<u32>(), size in any::<u64>(), rdev in any::<u32>(), parent in any::<u64>(),
                            secs in any::<i64>(), nsecs in 0u32..1_000_000_000, no_xattrs in any::<bool>()) {
            let t = Timestamp { secs, nsecs };
            let a = Attr { ino, kind, perm, uid, gid, nlink, size, rdev, parent, atime: t, mtime: t, ctime: t, no_xattrs };
            let enc = a.encode();
            prop_assert_eq!(enc.len(), ATTR_BYTES);
            prop_assert_eq!(Attr::decode(ino, &enc).unwrap(), a);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Attr::decode(1, &bytes);
            let _ = Dentry::decode(&bytes);
        }
    }

    #[test]
    fn names() {
        assert!(check_name(b"ok").is_ok());
        assert!(matches!(
            check_name(&[b'a'; 256]),
            Err(MetaError::NameTooLong)
        ));
        assert!(check_name(&[b'a'; 255]).is_ok());
        assert!(check_name(b"a/b").is_err());
        assert!(check_name(b"a\0b").is_err());
        assert!(check_name(b".").is_err());
        assert!(check_name(b"..").is_err());
        assert!(check_name(b"...").is_ok());
    }

    #[test]
    fn negative_timestamps_round_trip() {
        let t = Timestamp {
            secs: -5,
            nsecs: 250,
        };
        assert_eq!(Timestamp::from_system(t.to_system()), t);
    }
}
