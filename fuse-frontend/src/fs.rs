//! The `fuser::Filesystem` implementation: every method copies what it needs out of the
//! borrowed request, and queues one job on the engine worker that owns the request's
//! shard key (see the crate docs). Replies are sent by the worker.

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request,
    TimeOrNow, WriteFlags,
};
use ringfs_engine::vfs::{
    Attr, DirEntry, Engine, FileKind, FsError, FsResult, Ino, Job, OpenReply, SetAttr, StatFs, Worker,
};
use tracing::{debug, error, info, warn};

use crate::convert::{
    bare_attr, errno, file_attr, file_type, fopen_flags, is_dot_or_dotdot, req_ctx, time_set, timestamp, xattr_answer,
    XattrAnswer,
};

/// Entries asked of the engine per readdir; the reply buffer (the kernel's request size)
/// decides how many are sent, the rest are asked for again from the last sent cookie.
/// A 32 KiB getdents buffer holds at most ~1000 plain entries.
const READDIR_BATCH: usize = 512;
/// Entries per readdirplus: each costs an attribute, and a 32 KiB buffer holds ~200.
const READDIRPLUS_BATCH: usize = 256;
/// Largest write the kernel is allowed to send (its own ceiling is 256 pages).
const MAX_WRITE: u32 = 1 << 20;
/// Background requests (read-ahead, writeback) the kernel keeps in flight.
const MAX_BACKGROUND: u16 = 64;
const CONGESTION_THRESHOLD: u16 = 48;

/// ringfs as a FUSE filesystem: a thin decoder in front of the engine's workers.
pub struct RingFs {
    engine: Arc<Engine>,
}

/// Queues an engine call on the worker owning `$key`. `$call` runs there with the worker
/// bound to `$w` (everything it uses must be owned copies); its `Ok` value goes to
/// `$done(reply, value)`, an error to `reply.error`.
macro_rules! queue {
    ($fs:expr, $op:ident, $key:expr, $reply:expr, $done:expr, |$w:ident| $call:expr) => {
        $fs.run(stringify!($op), $key, $reply, move |$w: Rc<Worker>| async move { $call.await }, $done)
    };
}

impl RingFs {
    pub fn new(engine: Arc<Engine>) -> Self {
        RingFs { engine }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Queues `call` on the worker owning `key` and answers `reply` with its result:
    /// `done(reply, value)` on success, the error's errno otherwise.
    fn run<R, T, Fut>(
        &self,
        op: &'static str,
        key: u64,
        reply: R,
        call: impl FnOnce(Rc<Worker>) -> Fut + Send + 'static,
        done: impl FnOnce(R, T) + Send + 'static,
    ) where
        R: ErrorReply + Send + 'static,
        T: 'static,
        Fut: Future<Output = FsResult<T>> + 'static,
    {
        let job = job(move |w| async move {
            match call(w).await {
                Ok(value) => done(reply, value),
                Err(e) => reply.fail(op, key, &e),
            }
        });
        self.engine.pool().submit(key, job);
    }

    /// Answers an entry reply with the configured attribute and entry TTLs.
    fn entry(&self) -> impl FnOnce(ReplyEntry, Attr) + Send + 'static {
        let o = self.engine.fuse_options();
        let (attr_ttl, entry_ttl) = (o.attr_ttl, o.entry_ttl);
        move |r, a| r.entry_with_ttls(&attr_ttl, &entry_ttl, &file_attr(&a), Generation(0))
    }

    /// Answers an attribute reply with the configured TTL.
    fn attr(&self) -> impl FnOnce(ReplyAttr, Attr) + Send + 'static {
        let ttl = self.engine.fuse_options().attr_ttl;
        move |r, a| r.attr(&ttl, &file_attr(&a))
    }

    /// The one TTL of replies that carry an entry and its attributes together (create,
    /// readdirplus): the shorter of the two, so neither is cached longer than configured.
    fn joint_ttl(&self) -> Duration {
        let o = self.engine.fuse_options();
        o.attr_ttl.min(o.entry_ttl)
    }
}

/// A worker job running the future `f` makes (`submit` never blocks the session thread).
fn job<Fut>(f: impl FnOnce(Rc<Worker>) -> Fut + Send + 'static) -> Job
where
    Fut: Future<Output = ()> + 'static,
{
    Box::new(move |w| -> Pin<Box<dyn Future<Output = ()>>> { Box::pin(f(w)) })
}

/// Queues `forget(ino, nlookup)` on the worker owning `ino`.
fn queue_forget(engine: &Engine, ino: Ino, nlookup: u64) {
    engine.pool().submit(ino, job(move |w| async move { w.forget(ino, nlookup) }));
}

/// The error side of every reply type.
trait ErrorReply: Sized {
    fn error_reply(self, e: Errno);

    /// Logs an engine error (EIO loudly: it hides a real failure) and answers with it.
    fn fail(self, op: &'static str, key: u64, e: &FsError) {
        let code = errno(e);
        if code == Errno::EIO {
            warn!(op, key, error = %e, "request failed with EIO");
        } else {
            debug!(op, key, errno = code.code(), error = %e, "request failed");
        }
        self.error_reply(code);
    }
}

macro_rules! error_reply {
    ($($t:ty),*) => {
        $(impl ErrorReply for $t {
            fn error_reply(self, e: Errno) {
                self.error(e)
            }
        })*
    };
}
error_reply!(
    ReplyEntry,
    ReplyAttr,
    ReplyEmpty,
    ReplyData,
    ReplyOpen,
    ReplyWrite,
    ReplyCreate,
    ReplyStatfs,
    ReplyXattr,
    ReplyLseek,
    ReplyDirectory,
    ReplyDirectoryPlus
);

fn owned(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

fn reply_ok(r: ReplyEmpty, _: ()) {
    r.ok()
}

fn reply_data<B: AsRef<[u8]>>(r: ReplyData, data: B) {
    r.data(data.as_ref())
}

fn reply_written(r: ReplyWrite, n: u32) {
    r.written(n)
}

fn reply_opened(r: ReplyOpen, o: OpenReply) {
    r.opened(FileHandle(o.fh), fopen_flags(&o))
}

fn reply_statfs(r: ReplyStatfs, s: StatFs) {
    r.statfs(s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize)
}

/// getxattr/listxattr: `size` 0 asks for the length; a short buffer gets ERANGE.
fn reply_xattr(size: u32) -> impl FnOnce(ReplyXattr, Vec<u8>) + Send + 'static {
    move |r, value| match xattr_answer(size, value.len()) {
        XattrAnswer::Size(n) => r.size(n),
        XattrAnswer::Data => r.data(&value),
        XattrAnswer::Error(e) => r.error(e),
    }
}

/// Fills a readdir reply until the kernel's buffer is full; the cookies sent are those of
/// entries actually added, so the next call resumes right after the last one the kernel got.
fn fill_dir(mut r: ReplyDirectory, entries: Vec<DirEntry>) {
    for e in &entries {
        if r.add(INodeNo(e.ino), e.offset as u64, file_type(e.kind), OsStr::from_bytes(&e.name)) {
            break;
        }
    }
    r.ok()
}

/// Fills a readdirplus reply. The kernel takes a lookup reference on every entry it
/// receives except "." and ".."; the engine counted one for each entry it returned with
/// attributes, so entries that did not fit are forgotten again.
fn fill_dir_plus(mut r: ReplyDirectoryPlus, engine: &Engine, entries: Vec<DirEntry>, ttl: Duration) {
    let counted = |e: &&DirEntry| e.attr.is_some() && !is_dot_or_dotdot(&e.name);
    if let Some(bad) = entries.iter().find(|e| e.attr.is_none() && !is_dot_or_dotdot(&e.name)) {
        error!(ino = bad.ino, "engine returned a readdirplus entry without attributes");
        entries.iter().filter(counted).for_each(|e| queue_forget(engine, e.ino, 1));
        return r.error(Errno::EIO);
    }
    let mut sent = 0;
    for e in &entries {
        let attr = e.attr.as_ref().map_or_else(|| bare_attr(e.ino, e.kind), file_attr);
        if r.add(attr.ino, e.offset as u64, OsStr::from_bytes(&e.name), &ttl, &attr, Generation(0)) {
            break;
        }
        sent += 1;
    }
    entries[sent..].iter().filter(counted).for_each(|e| queue_forget(engine, e.ino, 1));
    r.ok()
}

/// Adds `caps` one flag at a time, so a kernel lacking one still gets the others.
fn want(config: &mut KernelConfig, caps: InitFlags) {
    for flag in caps.iter() {
        if let Err(missing) = config.add_capabilities(flag) {
            info!(capability = ?missing, "kernel does not offer FUSE capability");
        }
    }
}

impl Filesystem for RingFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let o = self.engine.fuse_options();
        want(config, InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_PARALLEL_DIROPS | InitFlags::FUSE_CACHE_SYMLINKS);
        if o.writeback_cache {
            want(config, InitFlags::FUSE_WRITEBACK_CACHE);
        }
        let max_write = o.max_write.clamp(4096, MAX_WRITE);
        let results = [
            config.set_max_write(max_write).map(|_| ()).map_err(|n| format!("max_write {max_write} (nearest {n})")),
            config.set_max_background(MAX_BACKGROUND).map(|_| ()).map_err(|n| format!("max_background (nearest {n})")),
            config
                .set_congestion_threshold(CONGESTION_THRESHOLD)
                .map(|_| ())
                .map_err(|n| format!("congestion_threshold (nearest {n})")),
            config
                .set_time_granularity(Duration::from_nanos(1))
                .map(|_| ())
                .map_err(|d| format!("time granularity (nearest {d:?})")),
        ];
        for refused in results.into_iter().filter_map(Result::err) {
            warn!(setting = %refused, "kernel connection setting refused");
        }
        info!(
            volume = self.engine.volume_name(),
            abi = %config.kernel_abi(),
            max_write,
            writeback_cache = o.writeback_cache,
            "FUSE session initialized"
        );
        Ok(())
    }

    fn destroy(&mut self) {
        info!(volume = self.engine.volume_name(), "FUSE session ended; shutting the engine down");
        self.engine.shutdown();
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (ctx, name, parent) = (req_ctx(req), owned(name), parent.0);
        let negative_ttl = self.engine.fuse_options().negative_ttl;
        let entry = self.entry();
        let cache_negative = !negative_ttl.is_zero();
        let done = move |r: ReplyEntry, found: Option<Attr>| match found {
            Some(a) => entry(r, a),
            // Inode 0 with a TTL: the kernel keeps a negative dentry that long.
            None => r.entry_with_ttls(&Duration::ZERO, &negative_ttl, &bare_attr(0, FileKind::File), Generation(0)),
        };
        queue!(self, lookup, parent, reply, done, |w| async {
            match w.lookup(&ctx, parent, &name).await {
                Err(e) if cache_negative && e.errno() == libc::ENOENT => Ok(None),
                r => r.map(Some),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        queue_forget(&self.engine, ino.0, nlookup);
    }

    // batch_forget: fuser 0.18 does not export `ForgetOne`, so the method cannot be
    // overridden; its default calls `forget` above once per inode.

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let fh = fh.map(|f| f.0);
        queue!(self, getattr, ino.0, reply, self.attr(), |w| w.getattr(ino.0, fh));
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ctx = req_ctx(req);
        let set = SetAttr {
            // The kernel sends the whole i_mode; only permission bits can change.
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(time_set),
            mtime: mtime.map(time_set),
            ctime: ctime.map(timestamp),
            fh: fh.map(|f| f.0),
        };
        queue!(self, setattr, ino.0, reply, self.attr(), |w| w.setattr(&ctx, ino.0, set));
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        queue!(self, readlink, ino.0, reply, reply_data, |w| w.readlink(ino.0));
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let (ctx, name) = (req_ctx(req), owned(name));
        queue!(self, mknod, parent.0, reply, self.entry(), |w| w.mknod(&ctx, parent.0, &name, mode, umask, rdev));
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let (ctx, name) = (req_ctx(req), owned(name));
        queue!(self, mkdir, parent.0, reply, self.entry(), |w| w.mkdir(&ctx, parent.0, &name, mode, umask));
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (ctx, name) = (req_ctx(req), owned(name));
        queue!(self, unlink, parent.0, reply, reply_ok, |w| w.unlink(&ctx, parent.0, &name));
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (ctx, name) = (req_ctx(req), owned(name));
        queue!(self, rmdir, parent.0, reply, reply_ok, |w| w.rmdir(&ctx, parent.0, &name));
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let (ctx, name, target) = (req_ctx(req), owned(link_name), owned(target.as_os_str()));
        queue!(self, symlink, parent.0, reply, self.entry(), |w| w.symlink(&ctx, parent.0, &name, &target));
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (ctx, name, newname, flags) = (req_ctx(req), owned(name), owned(newname), flags.bits());
        let (parent, newparent) = (parent.0, newparent.0);
        queue!(self, rename, parent, reply, reply_ok, |w| w.rename(&ctx, parent, &name, newparent, &newname, flags));
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let (ctx, newname) = (req_ctx(req), owned(newname));
        queue!(self, link, ino.0, reply, self.entry(), |w| w.link(&ctx, ino.0, newparent.0, &newname));
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ctx = req_ctx(req);
        queue!(self, open, ino.0, reply, reply_opened, |w| w.open(&ctx, ino.0, flags.0));
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        queue!(self, read, ino.0, reply, reply_data, |w| w.read(ino.0, fh.0, offset as i64, size));
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // The session reuses its buffer for the next request: this copy is unavoidable.
        let data = Bytes::copy_from_slice(data);
        queue!(self, write, ino.0, reply, reply_written, |w| w.write(ino.0, fh.0, offset as i64, data));
    }

    fn flush(&self, _req: &Request, ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty) {
        queue!(self, flush, ino.0, reply, reply_ok, |w| w.flush(ino.0, fh.0, lock_owner.0));
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        flush: bool,
        reply: ReplyEmpty,
    ) {
        // `flush` set: the kernel sent no FLUSH for this close, so release must do it.
        // The handle is released even when that flush fails.
        queue!(self, release, ino.0, reply, reply_ok, |w| async {
            let flushed = if flush { w.flush(ino.0, fh.0, lock_owner.map_or(0, |o| o.0)).await } else { Ok(()) };
            let released = w.release(ino.0, fh.0, flags.0).await;
            flushed.and(released)
        });
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        queue!(self, fsync, ino.0, reply, reply_ok, |w| w.fsync(ino.0, fh.0, datasync));
    }

    fn opendir(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ctx = req_ctx(req);
        let done = |r: ReplyOpen, fh: u64| r.opened(FileHandle(fh), FopenFlags::empty());
        queue!(self, opendir, ino.0, reply, done, |w| w.opendir(&ctx, ino.0, flags.0));
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let offset = offset as i64;
        queue!(self, readdir, ino.0, reply, fill_dir, |w| w.readdir(ino.0, fh.0, offset, false, READDIR_BATCH));
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectoryPlus) {
        let (offset, ttl, engine) = (offset as i64, self.joint_ttl(), self.engine.clone());
        let done = move |r, entries| fill_dir_plus(r, &engine, entries, ttl);
        queue!(self, readdirplus, ino.0, reply, done, |w| w.readdir(ino.0, fh.0, offset, true, READDIRPLUS_BATCH));
    }

    fn releasedir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        queue!(self, releasedir, ino.0, reply, reply_ok, |w| w.releasedir(ino.0, fh.0));
    }

    fn fsyncdir(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        // Directory operations are durable in etcd when they are answered.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        queue!(self, statfs, ino.0, reply, reply_statfs, |w| w.statfs(ino.0));
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        if let Some(e) = self.engine.xattrs_off() {
            return reply.fail("setxattr", ino.0, &e);
        }
        let (ctx, name, value) = (req_ctx(req), owned(name), value.to_vec());
        queue!(self, setxattr, ino.0, reply, reply_ok, |w| w.setxattr(&ctx, ino.0, &name, &value, flags, position));
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = owned(name);
        if let Some(e) = self.engine.getxattr_here(ino.0, &name) {
            return reply.fail("getxattr", ino.0, &e);
        }
        queue!(self, getxattr, ino.0, reply, reply_xattr(size), |w| w.getxattr(ino.0, &name));
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if let Some(e) = self.engine.xattrs_off() {
            return reply.fail("listxattr", ino.0, &e);
        }
        queue!(self, listxattr, ino.0, reply, reply_xattr(size), |w| w.listxattr(ino.0));
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if let Some(e) = self.engine.xattrs_off() {
            return reply.fail("removexattr", ino.0, &e);
        }
        let name = owned(name);
        queue!(self, removexattr, ino.0, reply, reply_ok, |w| w.removexattr(ino.0, &name));
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (ctx, mask) = (req_ctx(req), mask.bits());
        queue!(self, access, ino.0, reply, reply_ok, |w| w.access(&ctx, ino.0, mask));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (ctx, name, ttl) = (req_ctx(req), owned(name), self.joint_ttl());
        let done = move |r: ReplyCreate, (a, o): (Attr, OpenReply)| {
            r.created(&ttl, &file_attr(&a), Generation(0), FileHandle(o.fh), fopen_flags(&o))
        };
        queue!(self, create, parent.0, reply, done, |w| w.create(&ctx, parent.0, &name, mode, umask, flags));
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (offset, length) = (offset as i64, length as i64);
        queue!(self, fallocate, ino.0, reply, reply_ok, |w| w.fallocate(ino.0, fh.0, offset, length, mode));
    }

    fn lseek(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let done = |r: ReplyLseek, off: i64| r.offset(off);
        queue!(self, lseek, ino.0, reply, done, |w| w.lseek(ino.0, fh.0, offset, whence));
    }

    /// Runs on the worker owning the destination: the copy is a write to `ino_out`, and
    /// writes to one inode stay ordered on its owner.
    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let Ok(flags) = u32::try_from(flags.bits()) else {
            return reply.error(Errno::EINVAL);
        };
        let (off_in, off_out) = (offset_in as i64, offset_out as i64);
        queue!(self, copy_file_range, ino_out.0, reply, reply_written, |w| w
            .copy_file_range(ino_in.0, fh_in.0, off_in, ino_out.0, fh_out.0, off_out, len, flags));
    }
}
