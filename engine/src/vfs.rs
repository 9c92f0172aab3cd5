//! The filesystem as the FUSE frontend sees it: `Engine` (shared clients and settings)
//! and `Worker` (one per core, owning the open files of its shard of inodes).
//!
//! Data flows one way: frontend → worker queue → `Worker` method → write buffer / block
//! cache → Swift (blocks) and etcd (metadata). Every method returns an `FsError` that
//! carries the errno for the kernel.

use crate::config::Config;
use crate::data::{BlockCache, FetchError, WriteBuffer};
use crate::layout::{self, Segment, SliceRef};
use crate::meta::ops::{Creds, IsOpen, Unlinked};
use crate::meta::{self, Meta, MetaError};
use crate::worker::{IoMode, LocalJob, Pool};
use bytes::Bytes;
use futures::future::{join_all, try_join_all, FutureExt};
use parking_lot::Mutex;
use ringfs_swift::{ObjectStore, SwiftError};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use crate::meta::ops::TimeSet;
pub use crate::meta::{Attr, FileKind, Ino, Timestamp};

/// Who sent a request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReqCtx {
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
}

/// `setattr` changes; `fh` is the handle when called through an open file.
#[derive(Clone, Debug, Default)]
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

#[derive(Clone, Copy, Debug)]
pub struct OpenReply {
    pub fh: u64,
    pub direct_io: bool,
    pub keep_cache: bool,
}

#[derive(Clone, Debug)]
pub struct DirEntry {
    pub ino: u64,
    pub name: Vec<u8>,
    pub kind: FileKind,
    /// Cookie: pass it back to continue after this entry.
    pub offset: i64,
    pub attr: Option<Attr>,
}

#[derive(Clone, Copy, Debug, Default)]
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

/// An error for the kernel: an errno and what happened (for logs).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{msg} (errno {errno})")]
pub struct FsError {
    errno: i32,
    msg: String,
}

impl FsError {
    pub fn new(errno: i32, msg: impl Into<String>) -> Self {
        FsError {
            errno,
            msg: msg.into(),
        }
    }

    pub fn errno(&self) -> i32 {
        self.errno
    }
}

impl From<MetaError> for FsError {
    fn from(e: MetaError) -> Self {
        FsError {
            errno: e.errno(),
            msg: e.to_string(),
        }
    }
}

impl From<SwiftError> for FsError {
    fn from(e: SwiftError) -> Self {
        tracing::warn!(error = %e, "object store error");
        // 507 Insufficient Storage: Swift's object servers are out of space (or under
        // their reserve); the application sees a full file system, as it would locally.
        let errno = if e.status() == Some(507) {
            libc::ENOSPC
        } else {
            libc::EIO
        };
        FsError {
            errno,
            msg: e.to_string(),
        }
    }
}

pub type FsResult<T> = Result<T, FsError>;

fn errno(e: i32, msg: &str) -> FsError {
    FsError::new(e, msg)
}

/// FUSE settings the frontend needs (from `[fuse]`).
#[derive(Clone, Debug)]
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
    pub xattr: bool,
}

impl FuseOptions {
    pub fn from_config(c: &Config) -> Self {
        FuseOptions {
            attr_ttl: c.fuse.attr_ttl.0,
            entry_ttl: c.fuse.entry_ttl.0,
            negative_ttl: c.fuse.negative_ttl.0,
            writeback_cache: c.fuse.writeback_cache,
            max_write: c.fuse.max_write.0.min(1 << 20) as u32,
            allow_other: c.fuse.allow_other,
            default_permissions: c.fuse.default_permissions,
            fsname: c.fuse.fsname.clone(),
            read_ahead: c.fuse.read_ahead.0.min(u32::MAX as u64) as u32,
            xattr: c.fuse.xattr,
        }
    }
}

pub type WorkerPool = Pool<Worker>;

/// Bound on remembered "no xattrs" inodes (expired ones are dropped first).
const XATTR_HINTS_MAX: usize = 200_000;
pub type Job = LocalJob<Worker>;

/// State shared by all workers.
pub struct Shared {
    pub meta: Arc<Meta>,
    pub store: Arc<dyn ObjectStore>,
    pub block_size: u64,
    pub chunk_size: u64,
    pub max_file_size: u64,
    pub write_buffer: usize,
    /// Block buffers of written data (`cache::blockbuf`), recycled.
    pub bufs: Arc<crate::cache::blockbuf::BufPool>,
    pub readahead: u64,
    pub prefetch: u64,
    /// `engine.compaction_grace`: how long replaced slices wait in the trash.
    pub compaction_grace: Duration,
    pub cache_per_worker: usize,
    /// Open handles per inode, across workers (an unlinked open file is kept).
    open_counts: Mutex<HashMap<Ino, u32>>,
    /// Size including buffered writes, for stat from any worker.
    dirty_sizes: Mutex<HashMap<Ino, u64>>,
    /// Inodes recently seen without xattrs (see [`Attr::no_xattrs`]), and when: for
    /// `xattr_hint_ttl` their xattr probes are answered here.
    xattr_free: Mutex<HashMap<Ino, std::time::Instant>>,
    xattr_hint_ttl: Duration,
    /// The (mtime, ctime, size) each file had at its last open here: a file opened again
    /// unchanged keeps the kernel's page cache of it (warm reads at memory speed); any
    /// commit or setattr, here or on another client, changes ctime and drops it.
    open_seen: Mutex<HashMap<Ino, (meta::Timestamp, meta::Timestamp, u64)>>,
    /// Inodes an unlink or rename on this client found open (so possibly kept by a
    /// sustained record until their last close): only their last close asks etcd.
    maybe_sustained: Mutex<std::collections::HashSet<Ino>>,
    next_fh: AtomicU64,
    pool: OnceLock<std::sync::Weak<WorkerPool>>,
    /// Wakes the background deleter.
    pub deleter_wake: tokio::sync::Notify,
    /// Write-back staging (`cache.writeback = true`).
    pub staging: Option<Arc<crate::cache::Staging>>,
    /// How long a reader waits for a block another client has not uploaded yet.
    pub read_wait: Duration,
    /// How long `umount` waits for staged blocks to upload.
    pub drain_timeout: Duration,
    /// Blocks read from Swift, kept on local disk.
    pub read_cache: Option<Arc<crate::cache::ReadCache>>,
    /// Cache and staging files bypass the page cache (`cache.o_direct`).
    pub o_direct: bool,
}

impl Shared {
    /// "Is `ino` open here?" for unlink/rename; a yes also marks `ino` as possibly
    /// sustained, so that its last close looks for the sustained record.
    fn is_open_fn(self: &Arc<Self>) -> IsOpen {
        let me = self.clone();
        Arc::new(move |ino| {
            let open = me.open_counts.lock().get(&ino).copied().unwrap_or(0) > 0;
            if open {
                me.maybe_sustained.lock().insert(ino);
            }
            open
        })
    }

    /// After an unlink or rename left `ino` sustained: if its last close came before the
    /// sustained record was committed, that close did not see it; release it now.
    async fn settle_sustained(&self, ino: Ino) -> Result<(), FsError> {
        if self.open_counts.lock().get(&ino).copied().unwrap_or(0) == 0 {
            self.maybe_sustained.lock().remove(&ino);
            self.meta.release_sustained(ino).await?;
            self.deleter_wake.notify_one();
        }
        Ok(())
    }

    fn pool(&self) -> Option<Arc<WorkerPool>> {
        self.pool.get().and_then(|w| w.upgrade())
    }

    /// Records what `a` says about xattrs (an attr just read from etcd or returned by it).
    fn note_xattrs(&self, a: &Attr) {
        if self.xattr_hint_ttl.is_zero() {
            return;
        }
        let mut m = self.xattr_free.lock();
        if a.no_xattrs {
            if m.len() >= XATTR_HINTS_MAX {
                let ttl = self.xattr_hint_ttl;
                m.retain(|_, seen| seen.elapsed() < ttl);
                if m.len() >= XATTR_HINTS_MAX {
                    m.clear();
                }
            }
            m.insert(a.ino, std::time::Instant::now());
        } else {
            m.remove(&a.ino);
        }
    }

    /// Whether `a` (just read from etcd at open) is what this file was at its last open
    /// here; records it for the next open.
    fn unchanged_since_last_open(&self, a: &Attr) -> bool {
        let now = (a.mtime, a.ctime, a.size);
        let mut m = self.open_seen.lock();
        if m.len() >= XATTR_HINTS_MAX && !m.contains_key(&a.ino) {
            m.clear();
        }
        m.insert(a.ino, now) == Some(now)
    }

    /// Whether `ino` was seen without xattrs within the hint's lifetime.
    fn surely_no_xattrs(&self, ino: Ino) -> bool {
        self.xattr_free
            .lock()
            .get(&ino)
            .is_some_and(|seen| seen.elapsed() < self.xattr_hint_ttl)
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }
}

/// A mounted volume's engine.
pub struct Engine {
    shared: Arc<Shared>,
    pool: Arc<WorkerPool>,
    fuse: FuseOptions,
    volume: String,
    /// Runs heartbeats, deletion and the network clients' background tasks.
    background: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Engine {
    /// Starts workers over already-connected metadata and object stores.
    pub fn start(
        cfg: &Config,
        volume: &str,
        meta: Arc<Meta>,
        store: Arc<dyn ObjectStore>,
        background: tokio::runtime::Runtime,
    ) -> std::io::Result<Arc<Engine>> {
        let rec = meta.volume().clone();
        let workers = cfg.engine.effective_workers();
        let staging = if cfg.cache.writeback {
            let dir = cfg.cache.dir.join(&rec.uuid).join("staging");
            let s = crate::cache::Staging::open(
                dir,
                store.clone(),
                crate::cache::StagingOptions {
                    limit: cfg.cache.staging_limit.0,
                    concurrency: cfg.cache.upload_concurrency,
                    deadline: cfg.cache.upload_deadline.0,
                    delay: cfg.cache.upload_delay.0,
                    o_direct: cfg.cache.o_direct,
                },
            )?;
            background.spawn(s.clone().run());
            Some(s)
        } else {
            None
        };
        let read_cache = if cfg.cache.size.0 > 0 {
            let dir = cfg.cache.dir.join(&rec.uuid).join("blocks");
            match crate::cache::ReadCache::open(dir, cfg.cache.size.0, cfg.cache.min_free.0) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(error = %e, dir = %cfg.cache.dir.display(), "no local read cache");
                    None
                }
            }
        } else {
            None
        };
        if let (Some(st), Some(rc)) = (&staging, &read_cache) {
            st.keep_uploaded_in(rc.clone());
        }
        let mem = cfg.engine.memory_limit.0 as usize;
        let shared = Arc::new(Shared {
            meta,
            store,
            block_size: rec.block_size,
            chunk_size: rec.chunk_size,
            max_file_size: cfg
                .engine
                .max_file_size
                .0
                .min(rec.chunk_size * u32::MAX as u64),
            write_buffer: cfg.engine.write_buffer.0 as usize,
            // Idle buffers enough for one writer's two write buffers (the one filling
            // and the one flushing), within a quarter of the memory budget.
            bufs: crate::cache::blockbuf::BufPool::new(
                rec.block_size as usize,
                (2 * cfg.engine.write_buffer.0 as usize).min(mem / 4) / rec.block_size as usize + 2,
            ),
            readahead: cfg.engine.readahead.0,
            prefetch: cfg.engine.prefetch.0,
            compaction_grace: cfg.engine.compaction_grace.0,
            cache_per_worker: (mem / 2 / workers.max(1)).max(8 << 20),
            open_counts: Mutex::new(HashMap::new()),
            dirty_sizes: Mutex::new(HashMap::new()),
            maybe_sustained: Mutex::new(Default::default()),
            xattr_free: Mutex::new(HashMap::new()),
            open_seen: Mutex::new(HashMap::new()),
            // As long as the kernel trusts the attributes it was given.
            xattr_hint_ttl: cfg.fuse.attr_ttl.0,
            next_fh: AtomicU64::new(1),
            pool: OnceLock::new(),
            deleter_wake: tokio::sync::Notify::new(),
            staging,
            read_wait: cfg.cache.read_wait_timeout.0,
            o_direct: cfg.cache.o_direct,
            drain_timeout: Duration::from_secs(600),
            read_cache,
        });
        let want_uring = match cfg.engine.io_engine {
            crate::config::IoEngine::Auto => None,
            crate::config::IoEngine::Uring => Some(true),
            crate::config::IoEngine::Psync => Some(false),
        };
        let s2 = shared.clone();
        let pool = Pool::start(workers, want_uring, move |index, io| {
            Worker::new(index, io, s2.clone())
        })?;
        let _ = shared.pool.set(Arc::downgrade(&pool));
        tracing::info!(workers = pool.workers(), io = ?pool.io_mode, writeback = shared.staging.is_some(), "engine started");
        let engine = Arc::new(Engine {
            shared: shared.clone(),
            pool,
            fuse: FuseOptions::from_config(cfg),
            volume: volume.to_string(),
            background: Mutex::new(Some(background)),
        });
        engine.spawn_background();
        Ok(engine)
    }

    fn spawn_background(&self) {
        let guard = self.background.lock();
        let Some(rt) = guard.as_ref() else { return };
        let s = self.shared.clone();
        rt.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                if let Err(e) = s.meta.heartbeat().await {
                    tracing::warn!(error = %e, "session heartbeat failed");
                }
            }
        });
        let s = self.shared.clone();
        rt.spawn(async move {
            loop {
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), s.deleter_wake.notified()).await;
                if let Err(e) = delete_pending(&s).await {
                    tracing::warn!(error = %e, "background deletion failed; will retry");
                }
                if let Err(e) = empty_trash(&s).await {
                    tracing::warn!(error = %e, "deleting slices replaced by compaction failed; will retry");
                }
            }
        });
    }

    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// The answer to `getxattr` when it needs no etcd read (ACL names refused, an inode
    /// seen without xattrs): the FUSE thread replies at once, without the worker hop
    /// (`ls -l` asks two of these per entry).
    pub fn getxattr_here(&self, ino: Ino, name: &[u8]) -> Option<FsError> {
        if let Some(e) = self.xattrs_off() {
            return Some(e);
        }
        if let Err(e) = refuse_acl(name) {
            return Some(e);
        }
        self.shared
            .surely_no_xattrs(ino)
            .then(|| errno(libc::ENODATA, "no such xattr"))
    }

    /// With `fuse.xattr = false` every xattr request is refused with ENOSYS, answered
    /// on the session thread; the kernel then stops sending them for this mount.
    pub fn xattrs_off(&self) -> Option<FsError> {
        (!self.fuse.xattr).then(|| {
            errno(
                libc::ENOSYS,
                "extended attributes are off (fuse.xattr = false)",
            )
        })
    }

    pub fn fuse_options(&self) -> &FuseOptions {
        &self.fuse
    }

    pub fn volume_name(&self) -> &str {
        &self.volume
    }

    pub fn meta(&self) -> &Arc<Meta> {
        &self.shared.meta
    }

    pub fn io_mode(&self) -> IoMode {
        self.pool.io_mode
    }

    /// Flushes every open file's buffered writes, stops the workers, ends the session.
    /// Blocking; call from a non-async thread (FUSE `destroy` or the CLI).
    pub fn shutdown(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        for w in 0..self.pool.workers() {
            let tx = tx.clone();
            self.pool.submit(
                w as u64,
                Box::new(move |worker: Rc<Worker>| {
                    Box::pin(async move {
                        let r = worker.flush_all().await;
                        let _ = tx.send(r);
                    })
                }),
            );
        }
        drop(tx);
        let mut all_flushed = true;
        for r in rx.iter() {
            if let Err(e) = r {
                all_flushed = false;
                tracing::error!(error = %e, "flushing at shutdown failed");
            }
        }
        self.pool.stop();
        if let Some(rt) = self.background.lock().take() {
            let meta = self.shared.meta.clone();
            let s = self.shared.clone();
            rt.block_on(async move {
                let mut all_uploaded = all_flushed;
                if let Some(st) = &s.staging {
                    let (n, bytes) = st.backlog();
                    if n > 0 {
                        tracing::info!(blocks = n, bytes, "uploading staged blocks before unmount");
                    }
                    match st.drain(s.drain_timeout).await {
                        Ok(()) => st.close(),
                        Err(left) => {
                            all_uploaded = false;
                            tracing::error!(blocks = left, dir = %st.dir().display(), "staged blocks not uploaded yet; they stay on disk and are uploaded at the next mount");
                        }
                    }
                }
                // Every block this session wrote is in Swift: readers no longer need to
                // know who wrote them.
                if all_uploaded {
                    if let Err(e) = meta.forget_slice_writers().await {
                        tracing::warn!(error = %e, "could not remove this session's slice-writer records");
                    }
                }
                // Deleting objects of removed files is background work: bounded here, the
                // rest is finished by the next mount of any client.
                match tokio::time::timeout(Duration::from_secs(10), delete_pending(&s)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "deletion at shutdown incomplete; another client will finish it"),
                    Err(_) => tracing::info!("deletion of removed files continues at the next mount"),
                }
                let _ = meta.close_session().await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// Runs `f` on the worker owning `key` and waits for its answer (CLI, tests).
    pub fn call<T, F, Fut>(&self, key: u64, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(Rc<Worker>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T> + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.pool.submit(
            key,
            Box::new(move |w| {
                Box::pin(async move {
                    let _ = tx.send(f(w).await);
                })
            }),
        );
        rx.recv().ok()
    }
}

/// Deletes the objects of removed files, then their chunk records.
async fn delete_pending(s: &Arc<Shared>) -> Result<(), FsError> {
    loop {
        let inos = s.meta.pending_deletions(100).await?;
        if inos.is_empty() {
            return Ok(());
        }
        for ino in inos {
            if s.open_counts.lock().get(&ino).copied().unwrap_or(0) > 0 {
                continue;
            }
            let mut from = 0u32;
            loop {
                let (chunks, more) = s.meta.chunks_page(ino, from, 64).await?;
                let mut keys = Vec::new();
                for (idx, refs) in &chunks {
                    for r in refs.iter().filter(|r| r.id != 0) {
                        keys.extend(slice_block_keys(r.id, r.size, s.block_size));
                    }
                    from = idx + 1;
                }
                keys.sort();
                keys.dedup();
                if let Some(st) = &s.staging {
                    // Blocks still staged here are dropped, not uploaded after the delete.
                    st.cancel(&keys).await;
                }
                if !keys.is_empty() {
                    s.store.delete_many(&keys).await?;
                }
                if !more {
                    break;
                }
            }
            s.meta.finish_deletion(ino).await?;
        }
    }
}

/// Deletes the objects of slices that compactions replaced once their grace has passed
/// (`engine.compaction_grace`), then their trash records. Every client sweeps; two that
/// sweep the same record delete the same objects twice, which is harmless.
async fn empty_trash(s: &Arc<Shared>) -> Result<(), FsError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    loop {
        let due = s.meta.trash_due(now, 100).await?;
        if due.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = due
            .iter()
            .flat_map(|(_, slices)| slices.iter())
            .flat_map(|&(id, size)| slice_block_keys(id, size, s.block_size))
            .collect();
        if let Some(st) = &s.staging {
            // Blocks of these slices still staged here are dropped, not uploaded after
            // the delete (as for removed files).
            st.cancel(&keys).await;
        }
        s.store.delete_many(&keys).await?;
        let n = keys.len();
        s.meta
            .forget_trash(due.into_iter().map(|(k, _)| k).collect())
            .await?;
        tracing::debug!(objects = n, "deleted slices replaced by compaction");
    }
}

/// A stored piece to read: `len` bytes at `slice_off` of slice `id` (of `size` bytes),
/// going to `at` in the caller's buffer.
#[derive(Clone, Copy)]
struct Piece {
    at: usize,
    id: u64,
    size: u32,
    slice_off: u32,
    len: u32,
}

/// The data pieces of consecutive `segments` laid out from `at` (zeros are skipped).
fn data_pieces(segments: impl IntoIterator<Item = Segment>, mut at: usize, out: &mut Vec<Piece>) {
    for seg in segments {
        if let Segment::Data {
            id,
            size,
            slice_off,
            len,
        } = seg
        {
            out.push(Piece {
                at,
                id,
                size,
                slice_off,
                len,
            });
        }
        at += seg.len() as usize;
    }
}

/// The object keys of every block of slice `id` (`size` bytes).
fn slice_block_keys(id: u64, size: u32, block_size: u64) -> impl Iterator<Item = String> {
    let bs = block_size as u32;
    (0..layout::block_count(size, bs))
        .map(move |k| layout::block_key(id, k, block_len(size, bs, k)))
}

fn block_len(slice_size: u32, block_size: u32, index: u32) -> u32 {
    (slice_size - index * block_size).min(block_size)
}

/// A pending slice cut into its blocks for a flush.
struct FlushSlice {
    chunk: u32,
    pos: u32,
    blocks: Vec<FlushBlock>,
}

/// One block of a flushed slice: its bytes and, with write-back, its sealed staging file
/// (both views of one buffer, sealed in place).
struct FlushBlock {
    file: Option<Bytes>,
    body: Bytes,
}

impl FlushSlice {
    fn seal(p: crate::data::PendingSlice, writeback: bool) -> Self {
        let blocks = p
            .data
            .into_blocks()
            .into_iter()
            .map(|b| {
                if writeback {
                    let (file, body) = b.seal();
                    FlushBlock {
                        file: Some(file),
                        body,
                    }
                } else {
                    FlushBlock {
                        file: None,
                        body: b.freeze(),
                    }
                }
            })
            .collect();
        FlushSlice {
            chunk: p.chunk,
            pos: p.pos,
            blocks,
        }
    }
}

/// A block being uploaded: still visible to reads until committed.
struct Flushing {
    off: u64,
    data: Bytes,
}

#[derive(Default)]
struct FileState {
    handles: u32,
    buffer: WriteBuffer,
    flushing: Vec<Flushing>,
    /// Committed size as last seen (attr), without buffered writes.
    size: u64,
    chunks: HashMap<u32, Rc<Vec<SliceRef>>>,
    last_read_end: u64,
    readahead_window: u64,
    /// Held by the flush in progress (at most one per file, possibly in the background).
    flush_lock: Arc<tokio::sync::Mutex<()>>,
    /// A write or commit failed: reported once by the next flush/fsync/close.
    write_error: Option<FsError>,
    /// Bumped whenever this worker changes the committed size or chunk maps (commit,
    /// truncate, fallocate): a size or chunk map read from etcd across a bump may
    /// predate the change and must not replace the local one.
    changes: u64,
}

/// An open file handle; the inode is kept to check that a request matches its handle.
struct Handle {
    ino: Ino,
}

struct DirHandle {
    /// Cookie → name of the entries returned by the last page, to continue after one.
    last_page: BTreeMap<i64, Vec<u8>>,
    /// The last page read from etcd, larger than one kernel request holds (the kernel asks
    /// for one 4 KiB buffer, ~25 entries with attributes, at a time): later requests of
    /// the same listing are answered from it. `(cookie it follows, readdirplus, entries)`.
    ahead: Option<(i64, bool, Vec<DirEntry>)>,
}

impl DirHandle {
    /// Buffered entries after cookie `offset`, at most `room`, if the buffer covers it.
    fn take_ahead(&self, offset: i64, plus: bool, room: usize) -> Option<Vec<DirEntry>> {
        let (from, was_plus, entries) = self.ahead.as_ref()?;
        if *was_plus != plus || !(offset == *from || entries.iter().any(|e| e.offset == offset)) {
            return None;
        }
        let out: Vec<DirEntry> = entries
            .iter()
            .filter(|e| e.offset > offset)
            .take(room)
            .cloned()
            .collect();
        (!out.is_empty()).then_some(out)
    }
}

/// Entries read from etcd per readdir page (several kernel requests' worth).
const READDIR_PAGE: usize = 512;

/// One worker's state. Lives on its thread; methods are called by queued jobs.
pub struct Worker {
    pub index: usize,
    pub io: IoMode,
    shared: Arc<Shared>,
    files: RefCell<HashMap<Ino, FileState>>,
    handles: RefCell<HashMap<u64, Handle>>,
    dirs: RefCell<HashMap<u64, DirHandle>>,
    cache: Rc<BlockCache>,
    /// Local disk I/O (io_uring or psync, matching the worker's runtime).
    disk: Rc<dyn crate::io::IoEngine>,
    /// This worker, for tasks it spawns on its own thread (background flushes).
    me: Weak<Worker>,
    /// Chunks being compacted by this worker (one compaction per chunk at a time).
    compacting: RefCell<std::collections::HashSet<(Ino, u32)>>,
}

/// A chunk holding more slice references than this after a commit is compacted in the
/// background (the planner's own bound): reads stay a few block fetches, and a chunk's
/// value in etcd stays a few KiB instead of growing by 25 bytes with every fsync'd append.
const COMPACT_ABOVE: usize = 256;

/// POSIX ACLs are not supported (permissions are the mode bits, checked by the kernel):
/// their xattrs get EOPNOTSUPP, as on a file system mounted without ACL support, instead
/// of being stored as plain xattrs that nothing enforces. It also answers the two ACL
/// probes `ls -l` makes per entry without a round trip to etcd.
fn refuse_acl(name: &[u8]) -> FsResult<()> {
    if name.starts_with(b"system.posix_acl_") {
        return Err(errno(libc::EOPNOTSUPP, "POSIX ACLs are not supported"));
    }
    Ok(())
}

/// Block `key` (or `range` of it) from Swift, checked to be `len` bytes. Another client's
/// write-back may not have uploaded it yet: a missing block is retried every 200 ms for
/// up to `wait` before it is an error.
async fn get_block(
    store: Arc<dyn ObjectStore>,
    key: String,
    range: Option<std::ops::Range<u64>>,
    len: u64,
    wait: Duration,
) -> Result<Bytes, FetchError> {
    let started = std::time::Instant::now();
    loop {
        match store.get(&key, range.clone()).await {
            Ok(b) if b.len() as u64 == len => return Ok(b),
            Ok(b) => {
                return Err(FetchError::Failed(format!(
                    "block {key}: expected {len} bytes, got {}",
                    b.len()
                )))
            }
            Err(e) if e.is_not_found() && started.elapsed() < wait => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) if e.is_not_found() => {
                return Err(FetchError::NotUploaded { key, waited: wait })
            }
            Err(e) => return Err(FetchError::Failed(e.to_string())),
        }
    }
}

/// Writes a block to the SSD read cache in a local task, if the cache wants it.
fn admit_to_read_cache(
    shared: &Arc<Shared>,
    disk: Rc<dyn crate::io::IoEngine>,
    key: &str,
    data: &Bytes,
) {
    if let Some(rc) = shared.read_cache.clone() {
        let len = crate::cache::staging::sealed_len(data.len()) as u64;
        if rc.wants(len) {
            let (key, data) = (key.to_string(), data.clone());
            // Sealed in a recycled buffer when the block fits one (all do but blocks of
            // a volume formatted with another block size).
            let mut buf = if data.len() <= shared.bufs.room() {
                shared.bufs.take()
            } else {
                crate::cache::blockbuf::BlockBuf::with_room(data.len())
            };
            tokio::task::spawn_local(async move {
                let path = rc.path_for(&key);
                buf.push(&data);
                drop(data);
                let (file, _) = buf.seal();
                if disk.write_plain(&path, file).await.is_ok() {
                    rc.admit(&key, len);
                    rc.evict();
                }
            });
        }
    }
}

fn creds(ctx: &ReqCtx) -> Creds {
    Creds {
        uid: ctx.uid,
        gid: ctx.gid,
    }
}

impl Worker {
    fn new(index: usize, io: IoMode, shared: Arc<Shared>) -> Rc<Self> {
        let cache = Rc::new(BlockCache::new(shared.cache_per_worker));
        let disk = crate::io::engine_for(io, shared.o_direct);
        Rc::new_cyclic(|me| Worker {
            index,
            io,
            shared,
            files: RefCell::new(HashMap::new()),
            handles: RefCell::new(HashMap::new()),
            dirs: RefCell::new(HashMap::new()),
            cache,
            disk,
            me: me.clone(),
            compacting: RefCell::new(Default::default()),
        })
    }

    fn meta(&self) -> &Meta {
        &self.shared.meta
    }

    /// The attr with this client's buffered size applied (every attr replied to the
    /// kernel goes through here: its xattr hint is recorded too).
    fn with_local_size(&self, mut a: Attr) -> Attr {
        self.shared.note_xattrs(&a);
        if a.kind == FileKind::File {
            if let Some(sz) = self.shared.dirty_sizes.lock().get(&a.ino) {
                a.size = a.size.max(*sz);
            }
        }
        a
    }

    fn note_size(&self, ino: Ino) {
        let files = self.files.borrow();
        if let Some(f) = files.get(&ino) {
            let pending = f.buffer.end(self.shared.chunk_size).max(
                f.flushing
                    .iter()
                    .map(|x| x.off + x.data.len() as u64)
                    .max()
                    .unwrap_or(0),
            );
            let mut d = self.shared.dirty_sizes.lock();
            if pending > f.size {
                d.insert(ino, pending);
            } else {
                d.remove(&ino);
            }
        }
    }

    // ---- metadata --------------------------------------------------------------

    pub async fn lookup(&self, _ctx: &ReqCtx, parent: Ino, name: &[u8]) -> FsResult<Attr> {
        Ok(self.with_local_size(self.meta().lookup(parent, name).await?))
    }

    pub fn forget(&self, _ino: Ino, _nlookup: u64) {}

    pub async fn getattr(&self, ino: Ino, _fh: Option<u64>) -> FsResult<Attr> {
        let before = self.files.borrow().get(&ino).map(|f| f.changes);
        let a = self.meta().getattr(ino).await?;
        if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
            // Not when a commit or truncate here may have overtaken this read of etcd.
            if f.flushing.is_empty() && before == Some(f.changes) {
                f.size = a.size;
            }
        }
        Ok(self.with_local_size(a))
    }

    pub async fn setattr(&self, _ctx: &ReqCtx, ino: Ino, set: SetAttr) -> FsResult<Attr> {
        if let Some(size) = set.size {
            if size > self.shared.max_file_size {
                return Err(errno(libc::EFBIG, "size beyond the maximum file size"));
            }
            // Order buffered writes before the size change.
            self.flush_file(ino).await?;
        }
        let m = meta::SetAttr {
            mode: set.mode,
            uid: set.uid,
            gid: set.gid,
            size: set.size,
            atime: set.atime,
            mtime: set.mtime,
            ctime: set.ctime,
        };
        let before = self.files.borrow().get(&ino).map(|f| f.changes);
        let a = self.meta().setattr(ino, m).await?;
        if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
            if set.size.is_some() {
                f.size = a.size;
                f.changes += 1;
                f.chunks.clear();
                f.buffer.truncate(a.size, self.shared.chunk_size);
            } else if f.flushing.is_empty() && before == Some(f.changes) {
                // (A commit here during the update may have made `a.size` stale.)
                f.size = a.size;
            }
        }
        self.note_size(ino);
        Ok(self.with_local_size(a))
    }

    pub async fn mknod(
        &self,
        ctx: &ReqCtx,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> FsResult<Attr> {
        let kind = FileKind::from_mode(mode).unwrap_or(FileKind::File);
        if kind == FileKind::Dir || kind == FileKind::Symlink {
            return Err(errno(libc::EINVAL, "mknod of a directory or symlink"));
        }
        Ok(self
            .meta()
            .mknod(creds(ctx), parent, name, kind, mode & !umask & 0o7777, rdev)
            .await?)
    }

    pub async fn mkdir(
        &self,
        ctx: &ReqCtx,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
    ) -> FsResult<Attr> {
        Ok(self
            .meta()
            .mknod(
                creds(ctx),
                parent,
                name,
                FileKind::Dir,
                mode & !umask & 0o7777,
                0,
            )
            .await?)
    }

    pub async fn unlink(&self, _ctx: &ReqCtx, parent: Ino, name: &[u8]) -> FsResult<()> {
        let r = self
            .meta()
            .unlink(parent, name, self.shared.is_open_fn())
            .await?;
        match r {
            Unlinked::Deleted(_) => self.shared.deleter_wake.notify_one(),
            Unlinked::Sustained(a) => self.shared.settle_sustained(a.ino).await?,
            Unlinked::Linked(_) => {}
        }
        Ok(())
    }

    pub async fn rmdir(&self, _ctx: &ReqCtx, parent: Ino, name: &[u8]) -> FsResult<()> {
        self.meta().rmdir(parent, name).await?;
        Ok(())
    }

    pub async fn symlink(
        &self,
        ctx: &ReqCtx,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> FsResult<Attr> {
        Ok(self
            .meta()
            .symlink(creds(ctx), parent, name, target)
            .await?)
    }

    pub async fn readlink(&self, ino: Ino) -> FsResult<Vec<u8>> {
        Ok(self.meta().readlink(ino).await?)
    }

    pub async fn rename(
        &self,
        _ctx: &ReqCtx,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: u32,
    ) -> FsResult<()> {
        let r = self
            .meta()
            .rename(
                parent,
                name,
                newparent,
                newname,
                flags,
                self.shared.is_open_fn(),
            )
            .await?;
        match r {
            Some(Unlinked::Deleted(_)) => self.shared.deleter_wake.notify_one(),
            Some(Unlinked::Sustained(a)) => self.shared.settle_sustained(a.ino).await?,
            _ => {}
        }
        Ok(())
    }

    pub async fn link(
        &self,
        _ctx: &ReqCtx,
        ino: Ino,
        newparent: Ino,
        newname: &[u8],
    ) -> FsResult<Attr> {
        Ok(self.with_local_size(self.meta().link(ino, newparent, newname).await?))
    }

    pub async fn statfs(&self, _ino: Ino) -> FsResult<StatFs> {
        let (files, bytes) = self.meta().usage().await?;
        let bsize = 4096u64;
        // Swift has no fixed capacity: report 1 PiB so tools that check space proceed.
        let total = (1u64 << 50) / bsize;
        let used = bytes.div_ceil(bsize);
        let file_cap = 1u64 << 40;
        Ok(StatFs {
            blocks: total,
            bfree: total.saturating_sub(used),
            bavail: total.saturating_sub(used),
            files: file_cap,
            ffree: file_cap.saturating_sub(files),
            bsize: bsize as u32,
            namelen: 255,
            frsize: bsize as u32,
        })
    }

    pub async fn setxattr(
        &self,
        _ctx: &ReqCtx,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: i32,
        position: u32,
    ) -> FsResult<()> {
        if position != 0 {
            return Err(errno(libc::EINVAL, "xattr position"));
        }
        refuse_acl(name)?;
        self.shared.xattr_free.lock().remove(&ino);
        Ok(self.meta().setxattr(ino, name, value, flags).await?)
    }

    /// The kernel asks for `security.capability` before every write and `ls -l` for
    /// `security.selinux` on every entry: an inode seen without xattrs within the attr
    /// TTL answers ENODATA here (another client's setxattr shows within that TTL).
    pub async fn getxattr(&self, ino: Ino, name: &[u8]) -> FsResult<Vec<u8>> {
        refuse_acl(name)?;
        if self.shared.surely_no_xattrs(ino) {
            return Err(errno(libc::ENODATA, "no such xattr"));
        }
        let (value, a) = self.meta().getxattr_and_attr(ino, name).await?;
        self.shared.note_xattrs(&a);
        value.ok_or_else(|| errno(libc::ENODATA, "no such xattr"))
    }

    pub async fn listxattr(&self, ino: Ino) -> FsResult<Vec<u8>> {
        if self.shared.surely_no_xattrs(ino) {
            return Ok(Vec::new());
        }
        Ok(self.meta().listxattr(ino).await?)
    }

    pub async fn removexattr(&self, ino: Ino, name: &[u8]) -> FsResult<()> {
        refuse_acl(name)?;
        Ok(self.meta().removexattr(ino, name).await?)
    }

    /// Permission check for access(2) (the kernel checks everything else when
    /// `default_permissions` is on).
    pub async fn access(&self, ctx: &ReqCtx, ino: Ino, mask: i32) -> FsResult<()> {
        let a = self.meta().getattr(ino).await?;
        if mask == libc::F_OK
            || ctx.uid == 0
                && (mask & libc::X_OK == 0 || a.perm & 0o111 != 0 || a.kind == FileKind::Dir)
        {
            return Ok(());
        }
        let bits = if ctx.uid == a.uid {
            (a.perm >> 6) & 7
        } else if ctx.gid == a.gid {
            (a.perm >> 3) & 7
        } else {
            a.perm & 7
        } as i32;
        if bits & mask == mask {
            Ok(())
        } else {
            Err(errno(libc::EACCES, "access"))
        }
    }

    // ---- directories -------------------------------------------------------------

    pub async fn opendir(&self, _ctx: &ReqCtx, ino: Ino, _flags: i32) -> FsResult<u64> {
        let a = self.meta().getattr(ino).await?;
        if a.kind != FileKind::Dir {
            return Err(errno(libc::ENOTDIR, "opendir"));
        }
        let fh = self.shared.new_fh();
        self.dirs.borrow_mut().insert(
            fh,
            DirHandle {
                last_page: BTreeMap::new(),
                ahead: None,
            },
        );
        Ok(fh)
    }

    pub async fn readdir(
        &self,
        ino: Ino,
        fh: u64,
        offset: i64,
        plus: bool,
        max_entries: usize,
    ) -> FsResult<Vec<DirEntry>> {
        let max_entries = max_entries.clamp(1, 1000);
        if offset > 2 {
            let ahead = self
                .dirs
                .borrow()
                .get(&fh)
                .and_then(|d| d.take_ahead(offset, plus, max_entries));
            if let Some(mut entries) = ahead {
                for e in entries.iter_mut() {
                    e.attr = e.attr.take().map(|a| self.with_local_size(a));
                }
                return Ok(entries);
            }
        }
        let mut out = Vec::new();
        let dir = self.meta().getattr(ino).await?;
        // Cookies: 1 = ".", 2 = "..", then 3, 4, ... in name order.
        if offset < 1 {
            out.push(DirEntry {
                ino,
                name: b".".to_vec(),
                kind: FileKind::Dir,
                offset: 1,
                attr: plus.then(|| dir.clone()),
            });
        }
        if offset < 2 {
            let pa = if plus {
                Some(self.meta().getattr(dir.parent).await?)
            } else {
                None
            };
            out.push(DirEntry {
                ino: dir.parent,
                name: b"..".to_vec(),
                kind: FileKind::Dir,
                offset: 2,
                attr: pa,
            });
        }
        let (mut cookie, after): (i64, Option<Vec<u8>>) = if offset <= 2 {
            (2, None)
        } else {
            let known = self
                .dirs
                .borrow()
                .get(&fh)
                .and_then(|d| d.last_page.get(&offset).cloned());
            match known {
                Some(name) => (offset, Some(name)),
                None => {
                    // A seek to an unknown cookie: walk from the start (rare: telldir/seekdir).
                    let mut after: Option<Vec<u8>> = None;
                    let mut c = 2i64;
                    while c < offset {
                        let page = self
                            .meta()
                            .readdir(ino, after.as_deref(), ((offset - c) as usize).min(1000))
                            .await?;
                        if page.is_empty() {
                            return Ok(out);
                        }
                        c += page.len() as i64;
                        after = page.last().map(|(n, _)| n.clone());
                    }
                    (c, after)
                }
            }
        };
        let room = max_entries.saturating_sub(out.len()).max(1);
        let from = cookie;
        let page = self
            .meta()
            .readdir(ino, after.as_deref(), room.max(READDIR_PAGE))
            .await?;
        let attrs = if plus {
            let inos: Vec<Ino> = page.iter().map(|(_, d)| d.ino).collect();
            self.meta().getattr_many(&inos).await?
        } else {
            vec![None; page.len()]
        };
        let mut last_page = BTreeMap::new();
        for ((name, d), a) in page.into_iter().zip(attrs) {
            cookie += 1;
            last_page.insert(cookie, name.clone());
            let attr = a.map(|a| self.with_local_size(a));
            if plus && attr.is_none() {
                continue; // removed between the scan and the attr read
            }
            out.push(DirEntry {
                ino: d.ino,
                name,
                kind: d.kind,
                offset: cookie,
                attr,
            });
        }
        // `out` may hold "." and ".." first; the page's entries follow them.
        let head = out.iter().take_while(|e| e.offset <= 2).count();
        let page_entries = out.split_off(head);
        let mut rest = page_entries.clone();
        out.extend(rest.drain(..room.min(rest.len())));
        if let Some(h) = self.dirs.borrow_mut().get_mut(&fh) {
            h.last_page = last_page;
            h.ahead = Some((from, plus, page_entries));
        }
        Ok(out)
    }

    pub async fn releasedir(&self, _ino: Ino, fh: u64) -> FsResult<()> {
        self.dirs.borrow_mut().remove(&fh);
        Ok(())
    }

    // ---- files ---------------------------------------------------------------------

    fn register_open(&self, ino: Ino, size: u64) -> u64 {
        let fh = self.shared.new_fh();
        let mut files = self.files.borrow_mut();
        let f = files.entry(ino).or_default();
        if f.handles == 0 && f.buffer.is_empty() && f.flushing.is_empty() {
            // Close-to-open: a new open sees what other clients committed.
            f.chunks.clear();
            f.size = size;
        }
        f.handles += 1;
        *self.shared.open_counts.lock().entry(ino).or_insert(0) += 1;
        self.handles.borrow_mut().insert(fh, Handle { ino });
        fh
    }

    pub async fn open(&self, _ctx: &ReqCtx, ino: Ino, flags: i32) -> FsResult<OpenReply> {
        let a = self.meta().getattr(ino).await?;
        self.shared.note_xattrs(&a);
        match a.kind {
            FileKind::Dir => return Err(errno(libc::EISDIR, "open of a directory")),
            FileKind::File => {}
            _ if flags & libc::O_ACCMODE != libc::O_RDONLY => {}
            _ => {}
        }
        let fh = self.register_open(ino, a.size);
        Ok(OpenReply {
            fh,
            direct_io: false,
            keep_cache: self.shared.unchanged_since_last_open(&a),
        })
    }

    pub async fn create(
        &self,
        ctx: &ReqCtx,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        _flags: i32,
    ) -> FsResult<(Attr, OpenReply)> {
        let a = self
            .meta()
            .mknod(
                creds(ctx),
                parent,
                name,
                FileKind::File,
                mode & !umask & 0o7777,
                0,
            )
            .await?;
        self.shared.note_xattrs(&a);
        let owner = self
            .shared
            .pool()
            .map(|p| p.shard_of(a.ino))
            .unwrap_or(self.index);
        let fh = if owner == self.index {
            self.register_open(a.ino, 0)
        } else {
            // The new inode belongs to another worker: register the handle there.
            let pool = self
                .shared
                .pool()
                .ok_or_else(|| errno(libc::EIO, "engine stopping"))?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            let ino = a.ino;
            pool.submit(
                ino,
                Box::new(move |w: Rc<Worker>| {
                    Box::pin(async move {
                        let _ = tx.send(w.register_open(ino, 0));
                    })
                }),
            );
            rx.await.map_err(|_| errno(libc::EIO, "engine stopping"))?
        };
        Ok((
            a,
            OpenReply {
                fh,
                direct_io: false,
                keep_cache: false,
            },
        ))
    }

    pub async fn write(&self, ino: Ino, fh: u64, offset: i64, data: Bytes) -> FsResult<u32> {
        if offset < 0 {
            return Err(errno(libc::EINVAL, "negative offset"));
        }
        let off = offset as u64;
        let max = self.shared.max_file_size;
        if off >= max {
            return Err(errno(libc::EFBIG, "write beyond the maximum file size"));
        }
        // Like write(2) on a local file: the part below the maximum is written (a short
        // write); the caller's next write, at the maximum, gets EFBIG.
        let data = if data.len() as u64 > max - off {
            data.slice(..(max - off) as usize)
        } else {
            data
        };
        if self.handles.borrow().get(&fh).map(|h| h.ino) != Some(ino) {
            return Err(errno(libc::EBADF, "unknown file handle"));
        }
        let over_budget = {
            let mut files = self.files.borrow_mut();
            let f = files.entry(ino).or_default();
            f.buffer
                .write(off, &data, self.shared.chunk_size, &self.shared.bufs);
            f.buffer.bytes >= self.shared.write_buffer
        };
        self.note_size(ino);
        if over_budget {
            self.flush_behind(ino).await?;
        }
        Ok(data.len() as u32)
    }

    /// A full write buffer is flushed in the background while the writer goes on filling
    /// the next one; the writer waits only for the previous flush of the same file (one in
    /// flight per file, so a file holds at most twice `engine.write_buffer`). A background
    /// failure keeps the data buffered and is reported by the next write, fsync or close.
    async fn flush_behind(&self, ino: Ino) -> FsResult<()> {
        let Some(guard) = self.flush_guard(ino).await? else {
            return Ok(());
        };
        let Some(me) = self.me.upgrade() else {
            return self.flush_locked(ino).await;
        };
        tokio::task::spawn_local(async move {
            if let Err(e) = me.flush_locked(ino).await {
                if let Some(f) = me.files.borrow_mut().get_mut(&ino) {
                    f.write_error.get_or_insert(e);
                }
            }
            drop(guard);
        });
        Ok(())
    }

    /// Uploads the file's buffered slices and commits them (one flush at a time per file).
    async fn flush_file(&self, ino: Ino) -> FsResult<()> {
        match self.flush_guard(ino).await? {
            Some(_g) => self.flush_locked(ino).await,
            None => Ok(()),
        }
    }

    /// Waits for the file's flush lock (None: nothing buffered here). A failure a
    /// background flush left behind is returned instead, once.
    async fn flush_guard(&self, ino: Ino) -> FsResult<Option<tokio::sync::OwnedMutexGuard<()>>> {
        let lock = match self.files.borrow().get(&ino) {
            Some(f) => f.flush_lock.clone(),
            None => return Ok(None),
        };
        let guard = lock.lock_owned().await;
        match self
            .files
            .borrow_mut()
            .get_mut(&ino)
            .and_then(|f| f.write_error.take())
        {
            Some(e) => Err(e),
            None => Ok(Some(guard)),
        }
    }

    /// [`Self::flush_file`] with the file's flush lock held by the caller.
    async fn flush_locked(&self, ino: Ino) -> FsResult<()> {
        let cs = self.shared.chunk_size;
        let bs = self.shared.block_size;
        let writeback = self.shared.staging.is_some();
        let slices: Vec<FlushSlice> = match self.files.borrow_mut().get_mut(&ino) {
            Some(f) => {
                let s: Vec<FlushSlice> = f
                    .buffer
                    .take_all()
                    .into_iter()
                    .map(|p| FlushSlice::seal(p, writeback))
                    .collect();
                for fs in &s {
                    let off = fs.chunk as u64 * cs + fs.pos as u64;
                    for (k, b) in fs.blocks.iter().enumerate() {
                        f.flushing.push(Flushing {
                            off: off + k as u64 * bs,
                            data: b.body.clone(),
                        });
                    }
                }
                s
            }
            None => return Ok(()),
        };
        if slices.is_empty() {
            return Ok(());
        }
        let result = self.upload_and_commit(ino, slices).await;
        let mut files = self.files.borrow_mut();
        if let Some(f) = files.get_mut(&ino) {
            match &result {
                Ok(a) => {
                    f.flushing.clear();
                    f.size = a.size;
                }
                Err(_) => {
                    // Keep the data: put it back as pending writes, older than anything newer.
                    let back: Vec<Flushing> = f.flushing.drain(..).collect();
                    let newer = std::mem::take(&mut f.buffer);
                    let pool = &self.shared.bufs;
                    for s in back {
                        f.buffer.write(s.off, &s.data, cs, pool);
                    }
                    for s in newer.slices {
                        let off = s.file_offset(cs);
                        for (at, part) in s.data.parts() {
                            f.buffer.write(off + at as u64, part, cs, pool);
                        }
                    }
                }
            }
        }
        drop(files);
        self.note_size(ino);
        result.map(|_| ())
    }

    async fn upload_and_commit(&self, ino: Ino, slices: Vec<FlushSlice>) -> FsResult<Attr> {
        let cs = self.shared.chunk_size;
        let bs = self.shared.block_size as u32;
        let mut commits = Vec::with_capacity(slices.len());
        let mut uploads = Vec::new();
        let mut end = 0u64;
        for FlushSlice { chunk, pos, blocks } in slices {
            let id = self.meta().new_slice_id().await?;
            let len: u32 = blocks.iter().map(|b| b.body.len() as u32).sum();
            end = end.max(chunk as u64 * cs + pos as u64 + len as u64);
            for (k, b) in blocks.into_iter().enumerate() {
                let blen = b.body.len() as u32;
                debug_assert_eq!(blen, block_len(len, bs, k as u32));
                uploads.push((layout::block_key(id, k as u32, blen), b));
            }
            commits.push((chunk, SliceRef::new(pos, id, len)));
        }
        match &self.shared.staging {
            // Write-back: staged and fdatasync'd locally BEFORE the slice is committed.
            Some(st) => self.stage_blocks(st, uploads).await?,
            None => {
                try_join_all(uploads.into_iter().map(|(key, b)| {
                    let store = self.shared.store.clone();
                    async move { store.put(&key, b.body).await }
                }))
                .await?;
            }
        }
        let mut attr = None;
        for group in commits.chunks(meta::ops::MAX_SLICES_PER_COMMIT) {
            let (a, counts) = self
                .meta()
                .commit_slices_counted(ino, group.to_vec(), end)
                .await?;
            for (chunk, refs) in counts {
                if refs > COMPACT_ABOVE {
                    self.spawn_compaction(ino, chunk);
                }
            }
            if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
                f.changes += 1;
                for (c, r) in group {
                    if let Some(refs) = f.chunks.get_mut(c) {
                        Rc::make_mut(refs).push(*r);
                    }
                }
            }
            attr = Some(a);
        }
        attr.ok_or_else(|| errno(libc::EIO, "nothing committed"))
    }

    /// Compacts chunk `chunk` of `ino` in a local task, unless it is being compacted.
    fn spawn_compaction(&self, ino: Ino, chunk: u32) {
        let Some(me) = self.me.upgrade() else { return };
        if !self.compacting.borrow_mut().insert((ino, chunk)) {
            return;
        }
        tokio::task::spawn_local(async move {
            if let Err(e) = me.compact_chunk(ino, chunk).await {
                tracing::info!(ino, chunk, error = %e, "chunk compaction skipped; retried after more commits");
            }
            me.compacting.borrow_mut().remove(&(ino, chunk));
        });
    }

    /// Rewrites a fragmented chunk as `layout::plan_compaction` says: re-pointing its
    /// references, or reading the fragmented range and storing it as one new slice
    /// (uploaded to Swift before it is committed, whatever `cache.writeback` says). The
    /// new list replaces the one read, keeping references appended meanwhile; if the
    /// chunk changed otherwise, nothing is replaced (the new slice's objects are left).
    ///
    /// The slices no longer referenced go to the trash with the replacement; their
    /// objects are deleted once `engine.compaction_grace` has passed (`empty_trash`).
    async fn compact_chunk(&self, ino: Ino, chunk: u32) -> FsResult<()> {
        let refs = self.meta().read_chunk(ino, chunk).await?;
        if refs.len() <= COMPACT_ABOVE {
            return Ok(());
        }
        let new = match layout::plan_compaction(&refs) {
            layout::CompactionPlan::Noop => return Ok(()),
            layout::CompactionPlan::Rewrite { refs } => refs,
            layout::CompactionPlan::Merge(plan) => {
                let mut data = vec![0u8; plan.len() as usize];
                let mut reads = Vec::new();
                data_pieces(plan.segments.iter().copied(), 0, &mut reads);
                for (at, bytes) in self.read_pieces(&reads, false).await? {
                    data[at..at + bytes.len()].copy_from_slice(&bytes);
                }
                let data = Bytes::from(data);
                let id = self.meta().new_slice_id().await?;
                let bs = self.shared.block_size as u32;
                try_join_all(layout::split_into_blocks(plan.len(), bs).map(|(k, r)| {
                    let key = layout::block_key(id, k, r.end - r.start);
                    let body = data.slice(r.start as usize..r.end as usize);
                    let store = self.shared.store.clone();
                    async move { store.put(&key, body).await }
                }))
                .await?;
                plan.apply(id)
            }
        };
        let (before, after) = (refs.len(), new.len());
        let grace = self.shared.compaction_grace;
        self.meta()
            .replace_chunk(ino, chunk, refs, new, grace)
            .await?;
        // The cached list still reads right (its slices stay), but is dropped so the next
        // read takes the short one; a commit made during the await may already be in
        // etcd after the replaced value, so the value written is not cached either.
        if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
            f.chunks.remove(&chunk);
        }
        tracing::debug!(ino, chunk, before, after, "chunk compacted");
        Ok(())
    }

    async fn stage_blocks(
        &self,
        st: &Arc<crate::cache::Staging>,
        blocks: Vec<(String, FlushBlock)>,
    ) -> FsResult<()> {
        let total: u64 = blocks.iter().map(|(_, b)| b.body.len() as u64).sum();
        st.reserve(total).await;
        let mut lens = Vec::with_capacity(blocks.len());
        let files = blocks
            .into_iter()
            .map(|(key, b)| {
                let path = st.path_for(&key);
                lens.push((key, b.body.len() as u64));
                // Sealed in the flush (FlushSlice::seal with write-back on).
                let file = b.file.unwrap_or_else(|| crate::cache::seal(&b.body));
                (path, file)
            })
            .collect();
        let results = self.disk.write_durable(files).await;
        let mut failed = None;
        for ((key, len), r) in lens.iter().zip(results) {
            match r {
                Ok(()) => st.enqueue(key, *len),
                Err(e) => {
                    // Never uploaded: its slice is not committed.
                    let _ = std::fs::remove_file(st.path_for(key));
                    st.release(*len);
                    failed.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failed {
            tracing::error!(error = %e, dir = %st.dir().display(), "staging a block on local disk failed");
            let code = e.raw_os_error().unwrap_or(libc::EIO);
            return Err(FsError::new(code, format!("write-back staging: {e}")));
        }
        Ok(())
    }

    async fn chunk_refs(&self, ino: Ino, chunk: u32) -> FsResult<Rc<Vec<SliceRef>>> {
        if let Some(r) = self
            .files
            .borrow()
            .get(&ino)
            .and_then(|f| f.chunks.get(&chunk).cloned())
        {
            return Ok(r);
        }
        let before = self.files.borrow().get(&ino).map(|f| f.changes);
        let refs = Rc::new(self.meta().read_chunk(ino, chunk).await?);
        if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
            // A commit during the fetch may be missing from `refs`: then do not cache them
            // (the commit only updated chunk maps already cached).
            if f.handles > 0 && before == Some(f.changes) {
                f.chunks.insert(chunk, refs.clone());
            }
        }
        Ok(refs)
    }

    pub async fn read(&self, ino: Ino, fh: u64, offset: i64, size: u32) -> FsResult<Bytes> {
        if offset < 0 {
            return Err(errno(libc::EINVAL, "negative offset"));
        }
        if self.handles.borrow().get(&fh).map(|h| h.ino) != Some(ino) {
            return Err(errno(libc::EBADF, "unknown file handle"));
        }
        let off = offset as u64;
        // The pending bytes are copied now, before any await: a flush that commits while
        // this read waits for blocks moves them out of `flushing` into chunk maps that
        // this read may have fetched before the commit (it read stale data that way).
        let (committed, len, pending) = {
            let files = self.files.borrow();
            let f = files.get(&ino);
            let committed = f.map(|f| f.size).unwrap_or(0);
            let pending_end = f
                .map(|f| {
                    f.buffer.end(self.shared.chunk_size).max(
                        f.flushing
                            .iter()
                            .map(|x| x.off + x.data.len() as u64)
                            .max()
                            .unwrap_or(0),
                    )
                })
                .unwrap_or(0);
            let local_end = committed.max(pending_end);
            if off >= local_end {
                return Ok(Bytes::new());
            }
            let len = (size as u64).min(local_end - off) as usize;
            let end = off + len as u64;
            let mut pending = Vec::new();
            if let Some(f) = f {
                // Oldest first: flushing slices, then the buffer's.
                for fl in &f.flushing {
                    let (a, b) = (fl.off.max(off), (fl.off + fl.data.len() as u64).min(end));
                    if a < b {
                        pending.push((
                            a,
                            fl.data.slice((a - fl.off) as usize..(b - fl.off) as usize),
                        ));
                    }
                }
                pending.extend(f.buffer.pieces(off, len, self.shared.chunk_size));
            }
            (committed, len, pending)
        };
        // A small read that does not continue the previous one is random: it fetches only
        // the bytes it needs (plus `engine.prefetch`) instead of whole blocks.
        let random = off > 0
            && (len as u64) < self.shared.block_size
            && self
                .files
                .borrow()
                .get(&ino)
                .is_some_and(|f| f.last_read_end != off);
        let committed_len = committed.saturating_sub(off).min(len as u64) as usize;
        let pieces = if committed_len > 0 {
            self.read_committed(ino, off, committed_len, random).await?
        } else {
            Vec::new()
        };
        self.maybe_readahead(ino, off, len as u64, committed);
        // The common sequential case: one piece of one cached block, handed to the kernel
        // without a copy.
        if let [(0, only)] = &pieces[..] {
            if pending.is_empty() && only.len() == len {
                return Ok(only.clone());
            }
        }
        let mut buf = vec![0u8; len];
        for (at, data) in &pieces {
            buf[*at..*at + data.len()].copy_from_slice(data);
        }
        for (at, data) in &pending {
            overlay_bytes(off, &mut buf, *at, data);
        }
        Ok(Bytes::from(buf))
    }

    /// The committed bytes of `[off, off + len)` as (offset in the range, bytes) pieces;
    /// holes are left out (they read as zeros).
    async fn read_committed(
        &self,
        ino: Ino,
        off: u64,
        len: usize,
        random: bool,
    ) -> FsResult<Vec<(usize, Bytes)>> {
        match self.read_committed_once(ino, off, len, random).await {
            Err(e)
                if e.errno() == libc::EIO && self.drop_stale_chunk_lists(ino, off, len).await =>
            {
                // A chunk list kept while the file is open predated a compaction whose
                // replaced objects are deleted by now: read again with the current lists.
                tracing::info!(ino, error = %e, "read again with chunk lists changed since they were cached");
                self.read_committed_once(ino, off, len, random).await
            }
            r => r,
        }
    }

    /// Drops the cached chunk lists of `[off, off + len)` that differ from etcd's now;
    /// whether there was one.
    async fn drop_stale_chunk_lists(&self, ino: Ino, off: u64, len: usize) -> bool {
        let cs = self.shared.chunk_size;
        let (first, last) = (
            (off / cs) as u32,
            ((off + len.max(1) as u64 - 1) / cs) as u32,
        );
        let mut stale = false;
        for chunk in first..=last {
            let cached = self
                .files
                .borrow()
                .get(&ino)
                .and_then(|f| f.chunks.get(&chunk).cloned());
            let Some(cached) = cached else { continue };
            match self.meta().read_chunk(ino, chunk).await {
                Ok(now) if now != *cached => {
                    if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
                        f.chunks.remove(&chunk);
                    }
                    stale = true;
                }
                _ => {}
            }
        }
        stale
    }

    async fn read_committed_once(
        &self,
        ino: Ino,
        off: u64,
        len: usize,
        random: bool,
    ) -> FsResult<Vec<(usize, Bytes)>> {
        let cs = self.shared.chunk_size;
        let mut done = 0usize;
        let mut pieces = Vec::new();
        while done < len {
            let at = off + done as u64;
            let chunk = (at / cs) as u32;
            let pos = (at % cs) as u32;
            let n = ((cs - pos as u64) as usize).min(len - done);
            let refs = self.chunk_refs(ino, chunk).await?;
            data_pieces(
                layout::resolve(&refs, pos..pos + n as u32),
                done,
                &mut pieces,
            );
            done += n;
        }
        self.read_pieces(&pieces, random).await
    }

    /// Reads the stored pieces concurrently: (where it goes, bytes) for each.
    async fn read_pieces(&self, pieces: &[Piece], random: bool) -> FsResult<Vec<(usize, Bytes)>> {
        let fetched = join_all(
            pieces
                .iter()
                .map(|p| self.read_slice(p.id, p.size, p.slice_off, p.len, random)),
        )
        .await;
        pieces
            .iter()
            .zip(fetched)
            .map(|(p, data)| Ok((p.at, data?)))
            .collect()
    }

    /// Bytes `[off, off + len)` of a stored slice, block by block through the cache.
    async fn read_slice(
        &self,
        id: u64,
        size: u32,
        off: u32,
        len: u32,
        random: bool,
    ) -> FsResult<Bytes> {
        let bs = self.shared.block_size as u32;
        let first = off / bs;
        let last = (off + len - 1) / bs;
        let blocks = try_join_all((first..=last).map(|k| {
            // The part of block k this read needs.
            let from = if k == first { off - k * bs } else { 0 };
            let to = if k == last { off + len - k * bs } else { bs };
            self.fetch_block(id, size, k, random.then_some(from..to))
        }))
        .await?;
        let mut parts = Vec::with_capacity(blocks.len());
        let mut got = 0usize;
        for (k, (base, b)) in (first..=last).zip(blocks) {
            let start = if k == first {
                (off - k * bs) as usize
            } else {
                0
            };
            let Some(start) = start.checked_sub(base as usize) else {
                return Err(errno(libc::EIO, "short block"));
            };
            let want = (len as usize - got).min(b.len().saturating_sub(start));
            if b.len() < start + want {
                return Err(errno(libc::EIO, "short block"));
            }
            got += want;
            parts.push(b.slice(start..start + want));
        }
        if got != len as usize {
            return Err(errno(libc::EIO, "short slice read"));
        }
        match parts.len() {
            1 => Ok(parts.pop().unwrap_or_default()),
            _ => Ok(Bytes::from(parts.concat())),
        }
    }

    /// Block `k` of slice `id`, or with `part` (a random read) possibly only the bytes
    /// from `part.start` on: returns the offset in the block where the bytes begin.
    async fn fetch_block(
        &self,
        id: u64,
        size: u32,
        k: u32,
        part: Option<std::ops::Range<u32>>,
    ) -> FsResult<(u32, Bytes)> {
        let blen = block_len(size, self.shared.block_size as u32, k);
        let key = layout::block_key(id, k, blen);
        if let Some(st) = &self.shared.staging {
            if st.is_staged(&key) {
                // Not uploaded yet: read our own staged copy.
                if let Ok(file) = self.disk.read_all(&st.path_for(&key)).await {
                    if let Ok(b) = crate::cache::unseal(file) {
                        return Ok((0, b));
                    }
                }
            }
        }
        if let Some(b) = self.cache.get(&key) {
            return Ok((0, b));
        }
        if let Some(rc) = &self.shared.read_cache {
            if rc.touch(&key) {
                if let Some(part) = &part {
                    // A random read: only the 64 KiB segments it needs, checked on their own.
                    match self.read_cached_segments(&rc.path_for(&key), part).await {
                        Ok(Some(found)) => return Ok(found),
                        Ok(None) => {} // first-format file: read whole below
                        Err(why) => {
                            tracing::warn!(block = %key, %why, "cached block is damaged; dropped");
                            rc.drop_key(&key);
                        }
                    }
                }
                match self
                    .disk
                    .read_all(&rc.path_for(&key))
                    .await
                    .map(crate::cache::unseal)
                {
                    Ok(Ok(b)) if b.len() == blen as usize => {
                        self.cache.insert(&key, b.clone());
                        return Ok((0, b));
                    }
                    _ => rc.drop_key(&key),
                }
            }
        }
        if let Some(part) = part.filter(|_| !self.cache.is_inflight(&key)) {
            // Random read of a block nobody is fetching: GET just the bytes needed (plus
            // the prefetch), and bring the whole block into the caches in the background
            // so that the next reads of it are local (as JuiceFS does).
            let end = (part.end as u64 + self.shared.prefetch).min(blen as u64);
            let bytes = self
                .fetch_remote_range(&key, part.start as u64..end)
                .await?;
            self.spawn_block_fetch(key, blen);
            return Ok((part.start, bytes));
        }
        let fetched = self.fetch_remote(&key, blen).await?;
        self.admit_to_read_cache(&key, &fetched);
        Ok((0, fetched))
    }

    /// Keeps a fetched block on the SSD read cache, in the background (the reader does
    /// not wait for it).
    /// The 64 KiB segments of a cached block file covering `part`, checked against their
    /// CRCs: `(offset of the first byte in the block, bytes)`. `Ok(None)` for a file of
    /// the first format (no segment table).
    async fn read_cached_segments(
        &self,
        path: &std::path::Path,
        part: &std::ops::Range<u32>,
    ) -> Result<Option<(u32, Bytes)>, String> {
        use crate::cache::sealed::{parse_tail, tail_span, SEGMENT};
        let file_len = std::fs::metadata(path).map_err(|e| e.to_string())?.len() as usize;
        let span = tail_span(file_len);
        let tail_bytes = self
            .disk
            .read_at(path, (file_len - span) as u64, span)
            .await
            .map_err(|e| e.to_string())?;
        let Ok(tail) = parse_tail(&tail_bytes, file_len) else {
            return Ok(None);
        };
        let first = part.start as usize / SEGMENT;
        let last = (part.end.max(part.start + 1) as usize - 1) / SEGMENT;
        let from = first * SEGMENT;
        let to = ((last + 1) * SEGMENT).min(tail.len);
        if from >= to {
            return Err(format!(
                "range {part:?} past the block's {} bytes",
                tail.len
            ));
        }
        let data = self
            .disk
            .read_at(path, from as u64, (to - from).next_multiple_of(4096))
            .await
            .map_err(|e| e.to_string())?;
        if data.len() < to - from {
            return Err("cache file shorter than its trailer says".into());
        }
        let data = data.slice(..to - from);
        tail.check(first, &data)?;
        Ok(Some((from as u32, data)))
    }

    fn admit_to_read_cache(&self, key: &str, data: &Bytes) {
        admit_to_read_cache(&self.shared, self.disk.clone(), key, data);
    }

    /// Fetches a whole block into the memory and SSD caches in the background (once,
    /// however many readers ask).
    fn spawn_block_fetch(&self, key: String, blen: u32) {
        if self.cache.get(&key).is_some() || self.cache.is_inflight(&key) {
            return;
        }
        let store = self.shared.store.clone();
        let cache = self.cache.clone();
        let (shared, disk) = (self.shared.clone(), self.disk.clone());
        tokio::task::spawn_local(async move {
            let k2 = key.clone();
            let got = cache
                .get_or_fetch(&key, move || {
                    get_block(store, k2, None, blen as u64, Duration::ZERO).boxed_local()
                })
                .await;
            if let Ok(b) = got {
                admit_to_read_cache(&shared, disk, &key, &b);
            }
        });
    }

    /// Bytes `range` of a block straight from Swift (not cached), waiting like
    /// [`Self::fetch_remote`] for another client's write-back upload.
    async fn fetch_remote_range(&self, key: &str, range: std::ops::Range<u64>) -> FsResult<Bytes> {
        let want = range.end - range.start;
        let got = get_block(
            self.shared.store.clone(),
            key.to_string(),
            Some(range),
            want,
            self.shared.read_wait,
        )
        .await;
        match got {
            Ok(b) => Ok(b),
            Err(e) => Err(self.block_read_failed(key, e).await),
        }
    }

    /// The `EIO` of a failed block read, logged. A block missing after the wait is named
    /// with the session that wrote it, so the operator knows which client still holds it.
    async fn block_read_failed(&self, key: &str, e: FetchError) -> FsError {
        if let FetchError::NotUploaded { .. } = &e {
            let slice = layout::blocks::parse_block_key(key).map(|(id, _, _)| id);
            let writer = match slice {
                Some(id) => self.shared.meta.slice_writer(id).await,
                None => Ok(None),
            };
            match writer {
                Ok(Some(w)) if w.alive => tracing::error!(block = %key, writer = %w, error = %e,
                    "block read failed: its writer is still mounted and has not uploaded it yet"),
                Ok(Some(w)) => tracing::error!(block = %key, writer = %w, error = %e,
                    "block read failed: its writer's session has ended without uploading it; mounting the volume again on that host uploads what it staged"),
                Ok(None) => tracing::error!(block = %key, error = %e,
                    "block read failed: no record of the session that wrote it"),
                Err(me) => tracing::error!(block = %key, error = %e, lookup = %me,
                    "block read failed; the session that wrote it could not be looked up"),
            }
        } else {
            tracing::warn!(block = %key, error = %e, "block read failed");
        }
        errno(libc::EIO, &e.to_string())
    }

    /// A block from Swift through the memory cache (one GET for concurrent readers).
    async fn fetch_remote(&self, key: &str, blen: u32) -> FsResult<Bytes> {
        let key = key.to_string();
        let (store, k2, wait) = (
            self.shared.store.clone(),
            key.clone(),
            self.shared.read_wait,
        );
        let got = self
            .cache
            .get_or_fetch(&key, move || {
                get_block(store, k2, None, blen as u64, wait).boxed_local()
            })
            .await;
        match got {
            Ok(b) => Ok(b),
            Err(e) => Err(self.block_read_failed(&key, e).await),
        }
    }

    /// Sequential reads widen a readahead window (up to `engine.readahead`) and fetch the
    /// next blocks in the background; random reads reset it.
    fn maybe_readahead(&self, ino: Ino, off: u64, len: u64, committed: u64) {
        let window = {
            let mut files = self.files.borrow_mut();
            let Some(f) = files.get_mut(&ino) else { return };
            let sequential = off == f.last_read_end && off > 0;
            f.last_read_end = off + len;
            if !sequential {
                f.readahead_window = 0;
                return;
            }
            f.readahead_window = (f.readahead_window * 2).clamp(
                self.shared.block_size,
                self.shared.readahead.max(self.shared.block_size),
            );
            f.readahead_window
        };
        let start = off + len;
        let end = (start + window).min(committed);
        if start >= end || self.shared.readahead == 0 {
            return;
        }
        let cs = self.shared.chunk_size;
        let bs = self.shared.block_size;
        let mut at = start;
        let mut wanted = Vec::new();
        while at < end {
            let chunk = (at / cs) as u32;
            let pos = (at % cs) as u32;
            let n = ((cs - pos as u64).min(end - at)) as u32;
            if let Some(refs) = self
                .files
                .borrow()
                .get(&ino)
                .and_then(|f| f.chunks.get(&chunk).cloned())
            {
                let mut pieces = Vec::new();
                data_pieces(layout::resolve(&refs, pos..pos + n), 0, &mut pieces);
                for p in pieces {
                    let (first, last) = (
                        p.slice_off / bs as u32,
                        (p.slice_off + p.len - 1) / bs as u32,
                    );
                    for k in first..=last {
                        wanted.push((p.id, p.size, k));
                    }
                }
            }
            at += n as u64;
        }
        for (id, size, k) in wanted {
            let blen = block_len(size, bs as u32, k);
            let key = layout::block_key(id, k, blen);
            if self.cache.get(&key).is_some() || self.cache.is_inflight(&key) {
                continue;
            }
            let store = self.shared.store.clone();
            let cache = self.cache.clone();
            // A local task on this worker: the cache is per worker, no locks.
            tokio::task::spawn_local(async move {
                let k2 = key.clone();
                let _ = cache
                    .get_or_fetch(&key, move || {
                        get_block(store, k2, None, blen as u64, Duration::ZERO).boxed_local()
                    })
                    .await;
            });
        }
    }

    pub async fn flush(&self, ino: Ino, _fh: u64, _lock_owner: u64) -> FsResult<()> {
        self.flush_file(ino).await
    }

    pub async fn fsync(&self, ino: Ino, _fh: u64, _datasync: bool) -> FsResult<()> {
        self.flush_file(ino).await
    }

    pub async fn release(&self, ino: Ino, fh: u64, _flags: i32) -> FsResult<()> {
        let flushed = self.flush_file(ino).await;
        if self.handles.borrow_mut().remove(&fh).is_none() {
            return flushed;
        }
        let last = {
            let mut files = self.files.borrow_mut();
            let last = match files.get_mut(&ino) {
                Some(f) => {
                    f.handles = f.handles.saturating_sub(1);
                    f.handles == 0 && f.buffer.is_empty() && f.flushing.is_empty()
                }
                None => true,
            };
            if last {
                files.remove(&ino);
            }
            last
        };
        let now_closed = {
            let mut oc = self.shared.open_counts.lock();
            let c = oc.entry(ino).or_insert(1);
            *c = c.saturating_sub(1);
            let closed = *c == 0;
            if closed {
                oc.remove(&ino);
            }
            closed
        };
        if last {
            self.shared.dirty_sizes.lock().remove(&ino);
        }
        if now_closed && self.shared.maybe_sustained.lock().remove(&ino) {
            // An unlinked file's last close deletes it.
            self.meta().release_sustained(ino).await?;
            self.shared.deleter_wake.notify_one();
        }
        flushed
    }

    pub async fn fallocate(
        &self,
        ino: Ino,
        _fh: u64,
        offset: i64,
        length: i64,
        mode: i32,
    ) -> FsResult<()> {
        if offset < 0 || length <= 0 {
            return Err(errno(libc::EINVAL, "fallocate range"));
        }
        let end = (offset as u64)
            .checked_add(length as u64)
            .ok_or_else(|| errno(libc::EFBIG, "range"))?;
        if end > self.shared.max_file_size {
            return Err(errno(libc::EFBIG, "fallocate beyond the maximum file size"));
        }
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            return Err(errno(libc::EOPNOTSUPP, "fallocate mode"));
        }
        self.flush_file(ino).await?;
        let a = self.meta().getattr(ino).await?;
        if a.kind != FileKind::File {
            return Err(errno(libc::ENODEV, "fallocate of a non-regular file"));
        }
        if mode & libc::FALLOC_FL_KEEP_SIZE == 0 && end > a.size {
            let a = self
                .meta()
                .setattr(
                    ino,
                    meta::SetAttr {
                        size: Some(end),
                        ..Default::default()
                    },
                )
                .await?;
            if let Some(f) = self.files.borrow_mut().get_mut(&ino) {
                f.size = a.size;
                f.changes += 1;
            }
        }
        Ok(())
    }

    /// SEEK_DATA / SEEK_HOLE: ENOSYS, so the kernel stops asking and seeks against its
    /// own i_size (data up to the size, the hole at the end: all this engine could say
    /// too). Answering here was wrong with the writeback cache: the kernel's size counts
    /// dirty pages this engine has not received yet, so a freshly written file seeked as
    /// empty (ENXIO).
    pub async fn lseek(&self, _ino: Ino, _fh: u64, _offset: i64, _whence: i32) -> FsResult<i64> {
        Err(errno(
            libc::ENOSYS,
            "lseek: the kernel seeks against its own file size",
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn copy_file_range(
        &self,
        _ino_in: Ino,
        _fh_in: u64,
        _off_in: i64,
        _ino_out: Ino,
        _fh_out: u64,
        _off_out: i64,
        _len: u64,
        _flags: u32,
    ) -> FsResult<u32> {
        // The kernel falls back to a plain read/write copy.
        Err(errno(libc::ENOSYS, "copy_file_range: kernel copies"))
    }

    /// Flushes every file this worker has buffered writes for.
    pub async fn flush_all(&self) -> FsResult<()> {
        let inos: Vec<Ino> = self.files.borrow().keys().copied().collect();
        let mut first_err = None;
        for ino in inos {
            if let Err(e) = self.flush_file(ino).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn overlay_bytes(off: u64, buf: &mut [u8], s_start: u64, data: &[u8]) {
    let end = off + buf.len() as u64;
    let s_end = s_start + data.len() as u64;
    let (a, b) = (s_start.max(off), s_end.min(end));
    if a < b {
        buf[(a - off) as usize..(b - off) as usize]
            .copy_from_slice(&data[(a - s_start) as usize..(b - s_start) as usize]);
    }
}
