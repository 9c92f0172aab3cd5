//! Pure conversions between the engine's types and fuser's: attributes, file kinds,
//! times, open flags, request contexts, and the one errno mapping every reply uses.

use std::time::{SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, FopenFlags, INodeNo, Request, TimeOrNow};
use ringfs_engine::vfs::{Attr, FileKind, FsError, OpenReply, ReqCtx, TimeSet, Timestamp};

/// `st_blksize` reported for every inode (the preferred I/O size hint).
pub const BLOCK_SIZE: u32 = 4096;

/// Largest errno the kernel accepts in a reply: it rejects `error <= -512` (those are
/// kernel-internal restart codes) and the request would then never complete.
const MAX_ERRNO: i32 = 511;

/// The fuser file type of an engine kind.
pub fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
        FileKind::Socket => FileType::Socket,
    }
}

/// The kernel's view of an engine inode. `blocks` counts 512-byte units, rounded up.
pub fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime.to_system(),
        mtime: a.mtime.to_system(),
        ctime: a.ctime.to_system(),
        crtime: UNIX_EPOCH,
        kind: file_type(a.kind),
        perm: a.perm & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// Attributes with only an inode number and a type, for replies where the kernel reads
/// nothing else: "." and ".." in readdirplus (never instantiated from the reply) and the
/// inode 0 of a negative lookup.
pub fn bare_attr(ino: u64, kind: FileKind) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind: file_type(kind),
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// True for the names "." and "..", which carry no lookup reference in readdirplus.
pub fn is_dot_or_dotdot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// The errno sent to the kernel for an engine error code. Codes outside `1..=511` are
/// engine bugs (a negated errno is tolerated); they become `EIO` so the request still
/// completes instead of being rejected by the kernel.
pub fn errno_from_code(code: i32) -> Errno {
    let code = if code < 0 { code.saturating_neg() } else { code };
    if (1..=MAX_ERRNO).contains(&code) {
        Errno::from_i32(code)
    } else {
        Errno::EIO
    }
}

/// The errno for an engine error (the one mapping all replies go through).
pub fn errno(e: &FsError) -> Errno {
    errno_from_code(e.errno())
}

/// A kernel time for `setattr` (`UTIME_NOW` arrives as `Now`; `UTIME_OMIT` as no value).
pub fn time_set(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(t) => TimeSet::At(timestamp(t)),
    }
}

/// The engine timestamp of a time the kernel sent (setattr's atime, mtime, ctime), also
/// before 1970 (`secs` negative, `nsecs` counted forward from `secs`, as the kernel's
/// timespec).
///
/// fuser 0.18.0 decodes a kernel timespec `(sec, nsec)` with `sec < 0` as
/// `UNIX_EPOCH - Duration::new(-sec, nsec)` (its `time::system_time_from_time`, marked
/// "TODO: 1_000_000_000 - nsec"): the nanoseconds are subtracted instead of added, so
/// `touch -d '1960-06-01 00:00:00.25'` arrived as 1960-05-31 23:59:59.75. A time before
/// the epoch is therefore read back as `(-whole seconds, nanoseconds)` of its distance
/// to the epoch, which is exactly the timespec the kernel sent. Times from 1970 on are
/// decoded correctly by fuser. If fuser fixes its decoding, this must go back to
/// `Timestamp::from_system` (the `times_before_1970` test pins the kernel's values).
pub fn timestamp(t: SystemTime) -> Timestamp {
    match UNIX_EPOCH.duration_since(t) {
        Ok(d) if !d.is_zero() => {
            // `wrapping_neg`: a distance of 2^63 s is the kernel's `i64::MIN` seconds.
            Timestamp { secs: (d.as_secs() as i64).wrapping_neg(), nsecs: d.subsec_nanos() }
        }
        _ => Timestamp::from_system(t),
    }
}

/// The caller's identity, copied out of the borrowed request.
pub fn req_ctx(req: &Request) -> ReqCtx {
    ReqCtx { uid: req.uid(), gid: req.gid(), pid: req.pid() }
}

/// The `FOPEN_*` flags for an engine open reply.
pub fn fopen_flags(o: &OpenReply) -> FopenFlags {
    let mut flags = FopenFlags::empty();
    if o.direct_io {
        flags |= FopenFlags::FOPEN_DIRECT_IO;
    }
    if o.keep_cache {
        flags |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    flags
}

/// How to answer a getxattr/listxattr call that asked for `size` bytes when the value
/// is `len` bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XattrAnswer {
    /// `size == 0`: the caller only wants the length.
    Size(u32),
    /// The value fits: send it.
    Data,
    /// The value does not fit (`ERANGE`) or cannot be described (`E2BIG`).
    Error(Errno),
}

/// The xattr size protocol: size 0 asks for the length, a short buffer gets `ERANGE`.
pub fn xattr_answer(size: u32, len: usize) -> XattrAnswer {
    match u32::try_from(len) {
        Err(_) => XattrAnswer::Error(Errno::E2BIG),
        Ok(n) if size == 0 => XattrAnswer::Size(n),
        Ok(n) if n <= size => XattrAnswer::Data,
        Ok(_) => XattrAnswer::Error(Errno::ERANGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn attr(kind: FileKind, size: u64) -> Attr {
        Attr {
            ino: 42,
            kind,
            perm: 0o4755,
            uid: 1000,
            gid: 100,
            nlink: 3,
            size,
            rdev: 0x0801,
            parent: 1,
            atime: Timestamp { secs: 1, nsecs: 2 },
            mtime: Timestamp { secs: 1_700_000_000, nsecs: 999_999_999 },
            ctime: Timestamp { secs: -1, nsecs: 500_000_000 },
            no_xattrs: true,
        }
    }

    #[test]
    fn attr_fields_carry_over() {
        let f = file_attr(&attr(FileKind::File, 10_000));
        assert_eq!(f.ino, INodeNo(42));
        assert_eq!(f.size, 10_000);
        assert_eq!(f.kind, FileType::RegularFile);
        assert_eq!(f.perm, 0o4755);
        assert_eq!((f.uid, f.gid, f.nlink, f.rdev), (1000, 100, 3, 0x0801));
        assert_eq!(f.blksize, 4096);
        assert_eq!(f.flags, 0);
        assert_eq!(f.atime, UNIX_EPOCH + Duration::new(1, 2));
        assert_eq!(f.mtime, UNIX_EPOCH + Duration::new(1_700_000_000, 999_999_999));
    }

    #[test]
    fn blocks_round_up_to_512() {
        for (size, blocks) in [(0, 0), (1, 1), (511, 1), (512, 1), (513, 2), (4096, 8), (u64::MAX, u64::MAX / 512 + 1)]
        {
            assert_eq!(file_attr(&attr(FileKind::File, size)).blocks, blocks, "size {size}");
        }
    }

    #[test]
    fn perm_keeps_only_permission_bits() {
        let mut a = attr(FileKind::Dir, 4096);
        a.perm = 0o177777;
        assert_eq!(file_attr(&a).perm, 0o7777);
    }

    #[test]
    fn every_kind_maps() {
        let cases = [
            (FileKind::File, FileType::RegularFile),
            (FileKind::Dir, FileType::Directory),
            (FileKind::Symlink, FileType::Symlink),
            (FileKind::Fifo, FileType::NamedPipe),
            (FileKind::CharDev, FileType::CharDevice),
            (FileKind::BlockDev, FileType::BlockDevice),
            (FileKind::Socket, FileType::Socket),
        ];
        for (k, t) in cases {
            assert_eq!(file_type(k), t);
            assert_eq!(file_attr(&attr(k, 0)).kind, t);
        }
    }

    #[test]
    fn times_before_1970() {
        // -0.5 s is stored as secs -1, nsecs 500_000_000.
        let f = file_attr(&attr(FileKind::File, 0));
        assert_eq!(f.ctime, UNIX_EPOCH - Duration::from_millis(500));
        // and back, as setattr receives it: the kernel's timespec (-86_401, 750_000_000),
        // i.e. 86_400.25 s before the epoch, reaches us through fuser 0.18 as
        // UNIX_EPOCH - Duration::new(86_401, 750_000_000).
        let from_fuser = UNIX_EPOCH - Duration::new(86_401, 750_000_000);
        let ts = timestamp(from_fuser);
        assert_eq!(ts, Timestamp { secs: -86_401, nsecs: 750_000_000 });
        assert_eq!(ts.to_system(), UNIX_EPOCH - Duration::new(86_400, 250_000_000));
        let whole = timestamp(UNIX_EPOCH - Duration::from_secs(3));
        assert_eq!(whole, Timestamp { secs: -3, nsecs: 0 });
        assert_eq!(timestamp(UNIX_EPOCH), Timestamp { secs: 0, nsecs: 0 });
        assert_eq!(timestamp(UNIX_EPOCH + Duration::new(3, 5)), Timestamp { secs: 3, nsecs: 5 });
        // the kernel's most negative timespec (i64::MIN, 0)
        let min = UNIX_EPOCH - Duration::new(1 << 63, 0);
        assert_eq!(timestamp(min), Timestamp { secs: i64::MIN, nsecs: 0 });
        // setattr's atime/mtime go through the same decoding
        match time_set(TimeOrNow::SpecificTime(from_fuser)) {
            TimeSet::At(t) => assert_eq!(t, ts),
            TimeSet::Now => panic!("specific time became Now"),
        }
    }

    #[test]
    fn setattr_times() {
        assert!(matches!(time_set(TimeOrNow::Now), TimeSet::Now));
        let t = UNIX_EPOCH + Duration::new(5, 6);
        match time_set(TimeOrNow::SpecificTime(t)) {
            TimeSet::At(ts) => assert_eq!(ts, Timestamp { secs: 5, nsecs: 6 }),
            TimeSet::Now => panic!("specific time became Now"),
        }
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(errno_from_code(libc::ENOENT), Errno::ENOENT);
        assert_eq!(errno_from_code(libc::ENOTEMPTY).code(), libc::ENOTEMPTY);
        assert_eq!(errno_from_code(libc::ENODATA).code(), libc::ENODATA);
        // a negated errno is tolerated
        assert_eq!(errno_from_code(-libc::EEXIST).code(), libc::EEXIST);
        // nonsense becomes EIO rather than a reply the kernel rejects
        for bad in [0, 512, 4095, i32::MAX, i32::MIN, -512] {
            assert_eq!(errno_from_code(bad), Errno::EIO, "code {bad}");
        }
        assert_eq!(errno_from_code(511).code(), 511);
    }

    #[test]
    fn open_flags() {
        let o = |direct_io, keep_cache| OpenReply { fh: 7, direct_io, keep_cache };
        assert_eq!(fopen_flags(&o(false, false)), FopenFlags::empty());
        assert_eq!(fopen_flags(&o(true, false)), FopenFlags::FOPEN_DIRECT_IO);
        assert_eq!(fopen_flags(&o(true, true)), FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_KEEP_CACHE);
    }

    #[test]
    fn xattr_size_protocol() {
        assert_eq!(xattr_answer(0, 17), XattrAnswer::Size(17));
        assert_eq!(xattr_answer(0, 0), XattrAnswer::Size(0));
        assert_eq!(xattr_answer(17, 17), XattrAnswer::Data);
        assert_eq!(xattr_answer(4096, 0), XattrAnswer::Data);
        assert_eq!(xattr_answer(16, 17), XattrAnswer::Error(Errno::ERANGE));
        if usize::BITS > 32 {
            assert_eq!(xattr_answer(0, u32::MAX as usize + 1), XattrAnswer::Error(Errno::E2BIG));
        }
    }

    #[test]
    fn dot_entries() {
        assert!(is_dot_or_dotdot(b"."));
        assert!(is_dot_or_dotdot(b".."));
        assert!(!is_dot_or_dotdot(b"..."));
        assert!(!is_dot_or_dotdot(b".hidden"));
        let f = bare_attr(9, FileKind::Dir);
        assert_eq!((f.ino, f.kind), (INodeNo(9), FileType::Directory));
    }
}
