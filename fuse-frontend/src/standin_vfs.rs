//! TEMPORARY stand-in for `ringfs_engine::vfs` (the engine contract), used only until the
//! engine's `vfs` module compiles. Delete once `engine/src/vfs.rs` exists.
#![allow(dead_code, unused_variables, clippy::too_many_arguments)]

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub type Ino = u64;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nsecs: u32,
}

impl Timestamp {
    pub fn to_system(self) -> SystemTime {
        if self.secs >= 0 {
            UNIX_EPOCH + Duration::new(self.secs as u64, self.nsecs)
        } else {
            UNIX_EPOCH - Duration::from_secs(self.secs.unsigned_abs())
                + Duration::from_nanos(self.nsecs as u64)
        }
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub rdev: u32,
    pub parent: Ino,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
}

pub struct ReqCtx {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}
pub enum TimeSet {
    Now,
    At(Timestamp),
}
#[derive(Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<Timestamp>,
    pub fh: Option<u64>,
}
pub struct OpenReply {
    pub fh: u64,
    pub direct_io: bool,
    pub keep_cache: bool,
}
pub struct DirEntry {
    pub ino: u64,
    pub name: Vec<u8>,
    pub kind: FileKind,
    pub offset: i64,
    pub attr: Option<Attr>,
}
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
}
#[derive(Debug)]
pub struct FsError(i32);
impl FsError {
    pub fn errno(&self) -> i32 {
        self.0
    }
}
impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "errno {}", self.0)
    }
}
pub type FsResult<T> = Result<T, FsError>;
pub struct FuseOptions {
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    pub negative_ttl: Duration,
    pub writeback_cache: bool,
    pub max_write: u32,
    pub allow_other: bool,
    pub default_permissions: bool,
    pub fsname: String,
    pub read_ahead: u32,
}
pub struct Engine {
    pool: WorkerPool,
    opts: FuseOptions,
}
impl Engine {
    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }
    pub fn fuse_options(&self) -> &FuseOptions {
        &self.opts
    }
    pub fn volume_name(&self) -> &str {
        ""
    }
    pub fn shutdown(&self) {}
}
pub struct WorkerPool;
pub type Job = Box<dyn FnOnce(Rc<Worker>) -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static>;
impl WorkerPool {
    pub fn submit(&self, shard_key: u64, job: Job) {}
    pub fn workers(&self) -> usize {
        1
    }
}
pub struct Worker(std::cell::Cell<u8>);

macro_rules! stub {
    ($($name:ident ( $($a:ident : $t:ty),* ) -> $r:ty;)*) => {
        impl Worker { $(pub async fn $name(&self, $($a: $t),*) -> FsResult<$r> { unimplemented!() })* }
    };
}
stub! {
    lookup(ctx: &ReqCtx, parent: Ino, name: &[u8]) -> Attr;
    getattr(ino: Ino, fh: Option<u64>) -> Attr;
    setattr(ctx: &ReqCtx, ino: Ino, set: SetAttr) -> Attr;
    mknod(ctx: &ReqCtx, parent: Ino, name: &[u8], mode: u32, umask: u32, rdev: u32) -> Attr;
    mkdir(ctx: &ReqCtx, parent: Ino, name: &[u8], mode: u32, umask: u32) -> Attr;
    unlink(ctx: &ReqCtx, parent: Ino, name: &[u8]) -> ();
    rmdir(ctx: &ReqCtx, parent: Ino, name: &[u8]) -> ();
    symlink(ctx: &ReqCtx, parent: Ino, name: &[u8], target: &[u8]) -> Attr;
    readlink(ino: Ino) -> Vec<u8>;
    rename(ctx: &ReqCtx, parent: Ino, name: &[u8], newparent: Ino, newname: &[u8], flags: u32) -> ();
    link(ctx: &ReqCtx, ino: Ino, newparent: Ino, newname: &[u8]) -> Attr;
    open(ctx: &ReqCtx, ino: Ino, flags: i32) -> OpenReply;
    create(ctx: &ReqCtx, parent: Ino, name: &[u8], mode: u32, umask: u32, flags: i32) -> (Attr, OpenReply);
    read(ino: Ino, fh: u64, offset: i64, size: u32) -> bytes::Bytes;
    write(ino: Ino, fh: u64, offset: i64, data: bytes::Bytes) -> u32;
    flush(ino: Ino, fh: u64, lock_owner: u64) -> ();
    release(ino: Ino, fh: u64, flags: i32) -> ();
    fsync(ino: Ino, fh: u64, datasync: bool) -> ();
    opendir(ctx: &ReqCtx, ino: Ino, flags: i32) -> u64;
    readdir(ino: Ino, fh: u64, offset: i64, plus: bool, max_entries: usize) -> Vec<DirEntry>;
    releasedir(ino: Ino, fh: u64) -> ();
    statfs(ino: Ino) -> StatFs;
    setxattr(ctx: &ReqCtx, ino: Ino, name: &[u8], value: &[u8], flags: i32, position: u32) -> ();
    getxattr(ino: Ino, name: &[u8]) -> Vec<u8>;
    listxattr(ino: Ino) -> Vec<u8>;
    removexattr(ino: Ino, name: &[u8]) -> ();
    access(ctx: &ReqCtx, ino: Ino, mask: i32) -> ();
    fallocate(ino: Ino, fh: u64, offset: i64, length: i64, mode: i32) -> ();
    lseek(ino: Ino, fh: u64, offset: i64, whence: i32) -> i64;
    copy_file_range(ino_in: Ino, fh_in: u64, off_in: i64, ino_out: Ino, fh_out: u64, off_out: i64, len: u64, flags: u32) -> u32;
}
impl Worker {
    pub fn forget(&self, ino: Ino, nlookup: u64) {}
}
