//! Write-back staging of blocks on local disk and their ordered background upload.
//!
//! A staged file is a sealed block ([`super::sealed`]: bytes, padding, segment CRCs,
//! trailer), written through the worker's io engine as temp file → fdatasync → rename →
//! directory sync, so a file under its final name is always complete; the CRCs still
//! guard against a torn or corrupted file, which is never uploaded.
//!
//! The staging directory IS the persistent upload queue: file names are the block names,
//! and slice ids grow monotonically, so ordering by (slice id, block index) uploads the
//! oldest first.
//!
//! Each mount stages into a directory of its own under the volume's staging root and
//! holds an exclusive `flock` on the `lock` file inside it while it runs. Several mounts
//! of one volume on one machine therefore never touch each other's files, and a mount
//! that starts adopts the blocks of every directory whose lock it can take: those of a
//! mount that crashed or was killed (the crash-recovery path). A block older than `cache.upload_deadline` is logged. Staged bytes are
//! bounded by `cache.staging_limit`: a writer waits for room instead of growing the queue.

use parking_lot::Mutex;
use ringfs_swift::ObjectStore;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub use super::sealed::{aligned_zeroed, seal, sealed_len, unseal, ALIGN, TRAILER};

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    len: u64,
    since: Instant,
}

/// How a [`Staging`] area behaves (the `[cache]` keys of the same names).
#[derive(Clone, Debug)]
pub struct StagingOptions {
    /// Staged-but-not-uploaded bytes beyond which writers wait.
    pub limit: u64,
    /// Concurrent uploads.
    pub concurrency: usize,
    /// Age past which a waiting block is logged as late.
    pub deadline: Duration,
    /// Age before which a block is not uploaded (unless staging is half full or draining):
    /// blocks of files deleted within it never reach Swift, and a burst of writes does not
    /// share the machine with its own uploads.
    pub delay: Duration,
    /// Read staged files with O_DIRECT.
    pub o_direct: bool,
}

impl Default for StagingOptions {
    fn default() -> Self {
        StagingOptions {
            limit: 1 << 30,
            concurrency: 4,
            deadline: Duration::from_secs(300),
            delay: Duration::ZERO,
            o_direct: false,
        }
    }
}

/// The lock file of a mount's staging directory.
const LOCK: &str = "lock";

/// The staging area of one volume on this client.
pub struct Staging {
    /// This mount's own directory under the volume's staging root.
    dir: PathBuf,
    /// Holds the `flock` that tells other mounts this directory is alive.
    _lock: std::fs::File,
    store: Arc<dyn ObjectStore>,
    queue: Mutex<BTreeMap<(u64, u32), Entry>>,
    inflight: Mutex<HashSet<(u64, u32)>>,
    staged_bytes: AtomicU64,
    limit: u64,
    opts: StagingOptions,
    /// `drain` is waiting: upload everything now, whatever `delay` says.
    draining: std::sync::atomic::AtomicBool,
    work: Notify,
    space: Notify,
    progress: Notify,
    pub uploaded: AtomicU64,
    /// Where an uploaded block goes instead of being deleted: a block just written is
    /// the likeliest to be read next (see [`Staging::keep_uploaded_in`]).
    keep_in: std::sync::OnceLock<Arc<super::ReadCache>>,
}

fn file_name(key: &str) -> Option<String> {
    key.rsplit('/').next().map(str::to_string)
}

fn parse_name(name: &str) -> Option<(u64, u32, u32)> {
    let mut it = name.split('_');
    let id = it.next()?.parse().ok()?;
    let k = it.next()?.parse().ok()?;
    let len = it.next()?.parse().ok()?;
    it.next().is_none().then_some((id, k, len))
}

impl Staging {
    /// Creates this mount's directory under `root` (the volume's staging root), moves
    /// into it the blocks of every mount that is gone, and queues them: the
    /// crash-recovery path. Temporary files (writes that never completed) are removed:
    /// their slices were never committed.
    pub fn open(
        root: PathBuf,
        store: Arc<dyn ObjectStore>,
        opts: StagingOptions,
    ) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&root)?;
        let (dir, lock) = claim_dir(&root)?;
        adopt_orphans(&root, &dir)?;
        let s = Staging {
            dir,
            _lock: lock,
            store,
            queue: Mutex::new(BTreeMap::new()),
            inflight: Mutex::new(HashSet::new()),
            staged_bytes: AtomicU64::new(0),
            limit: opts.limit.max(1),
            opts: StagingOptions {
                concurrency: opts.concurrency.max(1),
                ..opts
            },
            draining: std::sync::atomic::AtomicBool::new(false),
            work: Notify::new(),
            space: Notify::new(),
            progress: Notify::new(),
            uploaded: AtomicU64::new(0),
            keep_in: std::sync::OnceLock::new(),
        };
        let mut recovered = 0u64;
        for entry in std::fs::read_dir(&s.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name == LOCK {
                continue;
            }
            if name.contains(".tmp") {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some((id, k, len)) = parse_name(&name) else {
                tracing::warn!(file = %entry.path().display(), "unknown file in the staging directory; left alone");
                continue;
            };
            let key = crate::layout::block_key(id, k, len);
            s.staged_bytes.fetch_add(len as u64, Ordering::SeqCst);
            s.queue.lock().insert(
                (id, k),
                Entry {
                    key,
                    len: len as u64,
                    since: Instant::now(),
                },
            );
            recovered += 1;
        }
        if recovered > 0 {
            tracing::info!(blocks = recovered, dir = %s.dir.display(), "uploading blocks staged before the last shutdown or crash");
        }
        Ok(Arc::new(s))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes this mount's directory if nothing but its lock is left in it (after a
    /// drain that uploaded everything). Anything else stays for the next mount to adopt.
    pub fn close(&self) {
        let only_lock = std::fs::read_dir(&self.dir)
            .map(|rd| rd.flatten().all(|e| e.file_name() == LOCK))
            .unwrap_or(false);
        if only_lock {
            let _ = std::fs::remove_file(self.dir.join(LOCK));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    /// Where block `key` is staged.
    pub fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(file_name(key).unwrap_or_default())
    }

    /// Waits until `n` more bytes fit under the staging limit, then reserves them.
    pub async fn reserve(&self, n: u64) {
        loop {
            let notified = self.space.notified();
            let cur = self.staged_bytes.load(Ordering::SeqCst);
            // Always admit one block when nothing is staged, whatever its size.
            if cur == 0 || cur + n <= self.limit {
                if self
                    .staged_bytes
                    .compare_exchange(cur, cur + n, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            notified.await;
        }
    }

    /// Gives back a reservation whose block was not staged (the write failed).
    pub fn release(&self, n: u64) {
        self.staged_bytes.fetch_sub(n, Ordering::SeqCst);
        self.space.notify_waiters();
    }

    /// Queues a block that is now durably staged.
    pub fn enqueue(&self, key: &str, len: u64) {
        if let Some((id, k, _)) = file_name(key).as_deref().and_then(parse_name) {
            self.queue.lock().insert(
                (id, k),
                Entry {
                    key: key.to_string(),
                    len,
                    since: Instant::now(),
                },
            );
            self.work.notify_one();
        }
    }

    /// Blocks of deleted files: those still waiting are dropped (never uploaded); returns
    /// once none of them is being uploaded, so that a delete that follows reaches Swift
    /// after any upload of the same block.
    pub async fn cancel(&self, keys: &[String]) {
        let ids: Vec<(u64, u32)> = keys
            .iter()
            .filter_map(|k| file_name(k).as_deref().and_then(parse_name))
            .map(|(id, k, _)| (id, k))
            .collect();
        let mut freed = 0;
        {
            let mut q = self.queue.lock();
            let inflight = self.inflight.lock();
            for id in ids.iter().filter(|id| !inflight.contains(id)) {
                if let Some(e) = q.remove(id) {
                    let _ = std::fs::remove_file(self.path_for(&e.key));
                    freed += e.len;
                }
            }
        }
        if freed > 0 {
            self.staged_bytes.fetch_sub(freed, Ordering::SeqCst);
            self.space.notify_waiters();
            self.progress.notify_waiters();
        }
        loop {
            let notified = self.progress.notified();
            if !ids.iter().any(|id| self.inflight.lock().contains(id)) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
    }

    /// Whether block `key` is still staged here (readers take it from disk).
    pub fn is_staged(&self, key: &str) -> bool {
        match file_name(key).as_deref().and_then(parse_name) {
            Some((id, k, _)) => self.queue.lock().contains_key(&(id, k)),
            None => false,
        }
    }

    /// (blocks, bytes) waiting for upload.
    pub fn backlog(&self) -> (usize, u64) {
        let q = self.queue.lock();
        (q.len(), q.values().map(|e| e.len).sum())
    }

    /// Whether a block staged at `since` may be uploaded now.
    fn due(&self, since: Instant) -> bool {
        since.elapsed() >= self.opts.delay
            || self.draining.load(Ordering::SeqCst)
            || self.staged_bytes.load(Ordering::SeqCst) > self.limit / 2
    }

    /// The uploader: runs until the process ends (spawn it on a multi-thread runtime).
    pub async fn run(self: Arc<Self>) {
        let mut warned_old = false;
        loop {
            let notified = self.work.notified();
            let mut wait = Duration::from_secs(1);
            let next: Vec<((u64, u32), Entry)> = {
                let q = self.queue.lock();
                let mut inflight = self.inflight.lock();
                let room = self.opts.concurrency.saturating_sub(inflight.len());
                let mut picked = Vec::new();
                // Oldest first; a block not yet due sets when to look again.
                for (id, e) in q.iter().filter(|(id, _)| !inflight.contains(id)) {
                    if picked.len() == room {
                        break;
                    }
                    if !self.due(e.since) {
                        wait = wait.min(self.opts.delay.saturating_sub(e.since.elapsed()));
                        continue;
                    }
                    picked.push((*id, e.clone()));
                }
                for (id, _) in &picked {
                    inflight.insert(*id);
                }
                picked
            };
            if let Some((_, oldest)) = self.queue.lock().iter().next() {
                if oldest.since.elapsed() > self.opts.deadline && !warned_old {
                    warned_old = true;
                    tracing::warn!(block = %oldest.key, waited = ?oldest.since.elapsed(), "a staged block is past its upload deadline (is Swift reachable?)");
                }
            }
            for (id, entry) in next {
                let me = self.clone();
                tokio::spawn(async move { me.upload(id, entry).await });
            }
            let _ = tokio::time::timeout(wait.max(Duration::from_millis(1)), notified).await;
        }
    }

    /// Moves uploaded blocks into `cache` (a rename on the same file system, same sealed
    /// format) when it has room, instead of deleting them.
    pub fn keep_uploaded_in(&self, cache: Arc<super::ReadCache>) {
        let _ = self.keep_in.set(cache);
    }

    /// After its upload: into the read cache if it wants the block, else deleted.
    fn retire(&self, path: &Path, entry: &Entry) {
        if let Some(rc) = self.keep_in.get() {
            let len = sealed_len(entry.len as usize) as u64;
            if rc.wants(len) && std::fs::rename(path, rc.path_for(&entry.key)).is_ok() {
                rc.admit(&entry.key, len);
                rc.evict();
                return;
            }
        }
        let _ = std::fs::remove_file(path);
    }

    async fn upload(self: Arc<Self>, id: (u64, u32), entry: Entry) {
        let path = self.path_for(&entry.key);
        let mut delay = Duration::from_millis(500);
        loop {
            let read = tokio::task::spawn_blocking({
                let (path, direct) = (path.clone(), self.opts.o_direct);
                move || crate::io::read_file(&path, direct)
            })
            .await;
            let data = match read {
                Ok(Ok(buf)) => match unseal(buf) {
                    Ok(d) => d,
                    Err(why) => {
                        // A final-name file is complete by construction: this is disk corruption.
                        tracing::error!(block = %entry.key, file = %path.display(), %why, "staged block is corrupt; NOT uploaded");
                        let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                        self.finish(id, &entry);
                        return;
                    }
                },
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::error!(block = %entry.key, "staged block vanished before upload");
                    self.finish(id, &entry);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(block = %entry.key, error = %e, "reading a staged block failed; will retry");
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "staging read task failed");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            match self.store.put(&entry.key, data).await {
                Ok(()) => {
                    self.retire(&path, &entry);
                    self.uploaded.fetch_add(1, Ordering::Relaxed);
                    self.finish(id, &entry);
                    return;
                }
                Err(e) => {
                    tracing::warn!(block = %entry.key, error = %e, retry_in = ?delay, "uploading a staged block failed; will retry");
                    tokio::time::sleep(delay).await;
                    // Short: the client already retried for 8–16 s, and writers may be waiting
                    // for staging room once Swift is back.
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn finish(&self, id: (u64, u32), entry: &Entry) {
        self.queue.lock().remove(&id);
        self.inflight.lock().remove(&id);
        self.staged_bytes.fetch_sub(entry.len, Ordering::SeqCst);
        self.space.notify_waiters();
        self.progress.notify_waiters();
        self.work.notify_one();
    }

    /// Waits until every staged block is uploaded, or `timeout` passes (then returns the
    /// number of blocks still staged: they stay on disk and go up at the next mount).
    pub async fn drain(&self, timeout: Duration) -> Result<(), usize> {
        let deadline = Instant::now() + timeout;
        self.draining.store(true, Ordering::SeqCst);
        self.work.notify_one();
        let _undrain = DrainGuard(&self.draining);
        loop {
            let notified = self.progress.notified();
            let left = self.queue.lock().len();
            if left == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(left);
            }
            let _ =
                tokio::time::timeout((deadline - now).min(Duration::from_secs(1)), notified).await;
        }
    }
}

fn flock_exclusive(f: &std::fs::File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows; no memory is involved.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Creates and locks this mount's staging directory. It is built under a dot-name and
/// renamed into place with its lock held, so no other mount ever sees it unlocked.
fn claim_dir(root: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!("m{}-{stamp:x}", std::process::id());
    let building = root.join(format!(".{name}"));
    std::fs::create_dir(&building)?;
    let lock = std::fs::File::create(building.join(LOCK))?;
    flock_exclusive(&lock)?;
    let dir = root.join(&name);
    std::fs::rename(&building, &dir)?;
    std::fs::File::open(root)?.sync_all()?;
    Ok((dir, lock))
}

/// Moves into `dir` the blocks no running mount owns: files directly under `root` (the
/// layout before per-mount directories) and the contents of every per-mount directory
/// whose lock can be taken (or that has none). Temporary files there are removed.
fn adopt_orphans(root: &Path, dir: &Path) -> std::io::Result<()> {
    let mut moved = false;
    for entry in std::fs::read_dir(root)?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path == dir || name.starts_with('.') {
            continue; // ours, or a directory another mount is setting up
        }
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let lock = std::fs::File::open(path.join(LOCK)).ok();
            if let Some(l) = &lock {
                if flock_exclusive(l).is_err() {
                    continue; // its mount is running
                }
            }
            // Another mount that got here first may have emptied and removed it already.
            for file in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                if file.file_name() != LOCK {
                    moved |= adopt_file(&file.path(), dir);
                }
            }
            let _ = std::fs::remove_file(path.join(LOCK));
            let _ = std::fs::remove_dir(&path);
        } else {
            moved |= adopt_file(&path, dir);
        }
    }
    if moved {
        std::fs::File::open(dir)?.sync_all()?;
        std::fs::File::open(root)?.sync_all()?;
    }
    Ok(())
}

/// A temporary file is removed; anything else moves into `dir` (blocks to upload, and
/// files kept for inspection such as `.corrupt` ones). True if something moved.
fn adopt_file(path: &Path, dir: &Path) -> bool {
    let Some(name) = path.file_name() else {
        return false;
    };
    if name.to_string_lossy().contains(".tmp") {
        let _ = std::fs::remove_file(path);
        return false;
    }
    match std::fs::rename(path, dir.join(name)) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "could not take over a staged file");
            false
        }
    }
}

/// (blocks, bytes) staged under a volume's staging root by all its mounts on this
/// machine, read from disk (for `ringfs status`).
pub fn backlog_on_disk(root: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    let mut count = |dir: &Path| {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some((_, _, len)) = parse_name(&name) {
                n += 1;
                bytes += len as u64;
            }
        }
    };
    count(root);
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            count(&e.path());
        }
    }
    (n, bytes)
}

/// Ends a drain's "upload everything now" when the drain returns.
struct DrainGuard<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfs_swift::memory::MemoryStore;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Runtime::new().unwrap().block_on(f)
    }

    /// Opens `dir` as a staging directory over a memory store (after `inspect`), uploads
    /// everything staged there and returns the store.
    fn upload_all(
        dir: &Path,
        keep_in: Option<Arc<super::super::ReadCache>>,
        inspect: impl FnOnce(&Staging),
    ) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        block_on(async {
            let s = Staging::open(
                dir.to_path_buf(),
                store.clone(),
                StagingOptions {
                    limit: 1 << 20,
                    ..Default::default()
                },
            )
            .unwrap();
            inspect(&s);
            if let Some(rc) = keep_in {
                s.keep_uploaded_in(rc);
            }
            tokio::spawn(s.clone().run());
            s.drain(Duration::from_secs(10)).await.unwrap();
            s.close();
        });
        store
    }

    /// Two mounts of one volume on one machine: a running mount's staged and temporary
    /// files are never touched by another that starts; once it is gone (its lock
    /// released, as by a crash), the next mount adopts its blocks and drops its temporaries.
    #[test]
    fn a_running_mounts_files_are_left_alone_and_a_dead_ones_adopted() {
        let root = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        let open = || {
            let opts = StagingOptions {
                delay: Duration::from_secs(3600),
                ..Default::default()
            };
            Staging::open(root.clone(), store.clone(), opts).unwrap()
        };
        let a = open();
        let key = stage_abc(&a, 50);
        let tmp = a.dir().join("51_0_3.tmp77");
        std::fs::write(&tmp, b"half").unwrap();

        let b = open();
        assert_ne!(a.dir(), b.dir());
        assert_eq!(b.backlog(), (0, 0), "b takes nothing of a running mount");
        assert!(
            a.path_for(&key).exists() && tmp.exists(),
            "a's files are untouched"
        );
        assert_eq!(
            backlog_on_disk(&root),
            (1, 3),
            "status counts every mount's blocks"
        );

        let a_dir = a.dir().to_path_buf();
        drop(a); // the process ends: its lock goes with it
        let c = open();
        assert_eq!(c.backlog(), (1, 3), "c adopts a's block");
        assert!(c.is_staged(&key) && c.path_for(&key).exists());
        assert!(
            !a_dir.exists() && !tmp.exists(),
            "a's directory and temporary are gone"
        );
        assert_eq!(b.backlog(), (0, 0));
        drop((b, c));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn recovery_uploads_staged_blocks_and_drops_temporaries() {
        let dir = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = crate::layout::block_key(42, 0, 5);
        std::fs::write(dir.join(file_name(&key).unwrap()), seal(b"hello")).unwrap();
        std::fs::write(dir.join("43_0_5.tmp99"), b"half").unwrap();
        let store = upload_all(&dir, None, |s| assert_eq!(s.backlog(), (1, 5)));
        assert_eq!(&block_on(store.get(&key, None)).unwrap()[..], b"hello");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "uploaded and temporary files are gone"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An uploaded block moves into the read cache (still sealed, readable from there)
    /// instead of being deleted, when the cache has room.
    #[test]
    fn uploaded_blocks_move_into_the_read_cache() {
        let root = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        let (dir, blocks) = (root.join("staging"), root.join("blocks"));
        std::fs::create_dir_all(&dir).unwrap();
        let key = crate::layout::block_key(7, 0, 5);
        std::fs::write(dir.join(file_name(&key).unwrap()), seal(b"fresh")).unwrap();
        let rc = Arc::new(super::super::ReadCache::open(blocks, 1 << 20, 0).unwrap());
        let store = upload_all(&dir, Some(rc.clone()), |_| {});
        assert_eq!(&block_on(store.get(&key, None)).unwrap()[..], b"fresh");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "staging is empty"
        );
        assert!(rc.touch(&key), "the read cache has the block");
        let file = bytes::Bytes::from(std::fs::read(rc.path_for(&key)).unwrap());
        assert_eq!(&unseal(file).unwrap()[..], b"fresh");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A staging area in `dir` over a memory store, its uploader running (call inside a
    /// multi-thread runtime).
    fn uploading(dir: &Path, delay: Duration) -> (Arc<Staging>, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        let opts = StagingOptions {
            delay,
            ..Default::default()
        };
        let s = Staging::open(dir.to_path_buf(), store.clone(), opts).unwrap();
        tokio::spawn(s.clone().run());
        (s, store)
    }

    /// Stages the 3-byte block "abc" of slice `id` as a flush would; returns its key.
    fn stage_abc(s: &Staging, id: u64) -> String {
        let key = crate::layout::block_key(id, 0, 3);
        std::fs::write(s.path_for(&key), seal(b"abc")).unwrap();
        s.staged_bytes.fetch_add(3, Ordering::SeqCst);
        s.enqueue(&key, 3);
        key
    }

    #[test]
    fn uploads_wait_for_the_delay_but_not_when_draining() {
        let dir = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (s, store) = uploading(&dir, Duration::from_millis(600));
            let stage = |id| stage_abc(&s, id);
            let early = stage(1);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                store.get(&early, None).await.is_err(),
                "not uploaded before the delay"
            );
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert_eq!(
                &store.get(&early, None).await.unwrap()[..],
                b"abc",
                "uploaded after it"
            );
            let late = stage(2);
            s.drain(Duration::from_secs(5)).await.unwrap();
            assert_eq!(
                &store.get(&late, None).await.unwrap()[..],
                b"abc",
                "a drain does not wait"
            );
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cancelled_blocks_are_never_uploaded() {
        let dir = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (s, store) = uploading(&dir, Duration::from_millis(300));
            let keys: Vec<String> = (1..=2).map(|id| stage_abc(&s, id)).collect();
            s.cancel(&keys[..1]).await;
            assert_eq!(s.backlog(), (1, 3));
            assert!(!s.path_for(&keys[0]).exists(), "its staged file is removed");
            s.drain(Duration::from_secs(5)).await.unwrap();
            assert!(
                store.get(&keys[0], None).await.is_err(),
                "cancelled: never uploaded"
            );
            assert!(store.get(&keys[1], None).await.is_ok());
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reserve_applies_backpressure() {
        let dir = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = Staging::open(
                dir.clone(),
                Arc::new(MemoryStore::new()),
                StagingOptions {
                    limit: 10,
                    concurrency: 1,
                    ..Default::default()
                },
            )
            .unwrap();
            s.reserve(8).await;
            let s2 = s.clone();
            let waiter = tokio::spawn(async move { s2.reserve(8).await });
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(!waiter.is_finished(), "second reservation waits for room");
            s.release(8);
            tokio::time::timeout(Duration::from_secs(2), waiter)
                .await
                .unwrap()
                .unwrap();
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
