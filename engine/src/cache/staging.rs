//! Write-back staging of blocks on local disk and their ordered background upload.
//!
//! A staged file is the block's bytes followed by a 16-byte trailer (magic, CRC-32 of the
//! bytes, length), written through the worker's io engine as temp file → fdatasync →
//! rename → directory sync, so a file under its final name is always complete; the CRC
//! still guards against a torn or corrupted file, which is never uploaded.
//!
//! The staging directory IS the persistent upload queue: file names are the block names,
//! and slice ids grow monotonically, so ordering by (slice id, block index) uploads the
//! oldest first. A block older than `cache.upload_deadline` is logged. Staged bytes are
//! bounded by `cache.staging_limit`: a writer waits for room instead of growing the queue.

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use ringfs_swift::ObjectStore;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

const MAGIC: &[u8; 4] = b"RFS1";
pub const TRAILER: usize = 16;

/// Block bytes + trailer, ready to be written to a staging file.
pub fn seal(data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + TRAILER);
    b.put_slice(data);
    b.put_slice(MAGIC);
    b.put_u32(crc32fast::hash(data));
    b.put_u64(data.len() as u64);
    b.freeze()
}

/// The block bytes of a staging file, or an error if it is torn or corrupt.
pub fn unseal(file: Bytes) -> Result<Bytes, String> {
    if file.len() < TRAILER {
        return Err(format!("{} bytes, shorter than the trailer", file.len()));
    }
    let n = file.len() - TRAILER;
    let t = &file[n..];
    if &t[..4] != MAGIC {
        return Err("bad trailer magic".into());
    }
    let crc = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let len = u64::from_be_bytes(t[8..16].try_into().map_err(|_| "trailer")?);
    if len != n as u64 {
        return Err(format!("length {len} in trailer, {n} bytes present"));
    }
    let data = file.slice(..n);
    if crc32fast::hash(&data) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(data)
}

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    len: u64,
    since: Instant,
}

/// The staging area of one volume on this client.
pub struct Staging {
    dir: PathBuf,
    store: Arc<dyn ObjectStore>,
    queue: Mutex<BTreeMap<(u64, u32), Entry>>,
    inflight: Mutex<HashSet<(u64, u32)>>,
    staged_bytes: AtomicU64,
    limit: u64,
    concurrency: usize,
    deadline: Duration,
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
    /// Opens (creating) the staging directory and queues every block left there by a
    /// previous run — the crash-recovery path. Temporary files (writes that never
    /// completed) are removed: their slices were never committed.
    pub fn open(
        dir: PathBuf,
        store: Arc<dyn ObjectStore>,
        limit: u64,
        concurrency: usize,
        deadline: Duration,
    ) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(&dir)?;
        let s = Staging {
            dir,
            store,
            queue: Mutex::new(BTreeMap::new()),
            inflight: Mutex::new(HashSet::new()),
            staged_bytes: AtomicU64::new(0),
            limit: limit.max(1),
            concurrency: concurrency.max(1),
            deadline,
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

    /// The uploader: runs until the process ends (spawn it on a multi-thread runtime).
    pub async fn run(self: Arc<Self>) {
        let mut warned_old = false;
        loop {
            let notified = self.work.notified();
            let next: Vec<((u64, u32), Entry)> = {
                let q = self.queue.lock();
                let mut inflight = self.inflight.lock();
                let room = self.concurrency.saturating_sub(inflight.len());
                let picked: Vec<_> = q
                    .iter()
                    .filter(|(id, _)| !inflight.contains(id))
                    .take(room)
                    .map(|(id, e)| (*id, e.clone()))
                    .collect();
                for (id, _) in &picked {
                    inflight.insert(*id);
                }
                picked
            };
            if let Some((_, oldest)) = self.queue.lock().iter().next() {
                if oldest.since.elapsed() > self.deadline && !warned_old {
                    warned_old = true;
                    tracing::warn!(block = %oldest.key, waited = ?oldest.since.elapsed(), "a staged block is past its upload deadline (is Swift reachable?)");
                }
            }
            for (id, entry) in next {
                let me = self.clone();
                tokio::spawn(async move { me.upload(id, entry).await });
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
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
            if rc.wants(entry.len) && std::fs::rename(path, rc.path_for(&entry.key)).is_ok() {
                rc.admit(&entry.key, entry.len);
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
                let path = path.clone();
                move || std::fs::read(&path)
            })
            .await;
            let data = match read {
                Ok(Ok(buf)) => match unseal(Bytes::from(buf)) {
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
                    delay = (delay * 2).min(Duration::from_secs(30));
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

/// (blocks, bytes) staged in a staging directory, read from disk (for `ringfs status`).
pub fn backlog_on_disk(dir: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some((_, _, len)) = parse_name(&name) {
                n += 1;
                bytes += len as u64;
            }
        }
    }
    (n, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ringfs_swift::memory::MemoryStore;

    proptest! {
        #[test]
        fn seal_round_trips_and_any_damage_is_caught(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2016, flip in 0usize..2016) {
            let sealed = seal(&data);
            prop_assert_eq!(&unseal(sealed.clone()).unwrap()[..], &data[..]);
            if cut < sealed.len() {
                prop_assert!(unseal(sealed.slice(..cut)).is_err(), "a torn file is detected");
            }
            if flip < sealed.len() {
                let mut b = sealed.to_vec();
                b[flip] ^= 0x40;
                prop_assert!(unseal(Bytes::from(b)).is_err(), "a flipped bit is detected");
            }
        }
    }

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
                1 << 20,
                4,
                Duration::from_secs(60),
            )
            .unwrap();
            inspect(&s);
            if let Some(rc) = keep_in {
                s.keep_uploaded_in(rc);
            }
            tokio::spawn(s.clone().run());
            s.drain(Duration::from_secs(10)).await.unwrap();
        });
        store
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
        let file = Bytes::from(std::fs::read(rc.path_for(&key)).unwrap());
        assert_eq!(&unseal(file).unwrap()[..], b"fresh");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reserve_applies_backpressure() {
        let dir = std::env::temp_dir().join(format!("ringfs-staging-{}", uuid::Uuid::new_v4()));
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let s = Staging::open(
                dir.clone(),
                Arc::new(MemoryStore::new()),
                10,
                1,
                Duration::from_secs(60),
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
