//! The SSD read cache: blocks fetched from Swift, kept as files under
//! `cache.dir/<volume uuid>/blocks/`, bounded by `cache.size` and by the free-space floor
//! `cache.min_free`; least recently used blocks are evicted first. Files carry the same
//! CRC trailer as staged blocks, so a file torn by a crash is dropped, never served.
//! Blocks are write-once, so a cached block never goes stale.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

struct Index {
    /// key → (bytes, last use tick)
    entries: HashMap<String, (u64, u64)>,
    /// last use tick → key (the LRU order)
    order: BTreeMap<u64, String>,
    bytes: u64,
    tick: u64,
}

pub struct ReadCache {
    dir: PathBuf,
    limit: u64,
    min_free: u64,
    index: Mutex<Index>,
}

fn file_name(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_string()
}

impl ReadCache {
    /// Opens the cache directory, indexing what a previous run left (oldest first).
    pub fn open(dir: PathBuf, limit: u64, min_free: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut found: Vec<(std::time::SystemTime, String, u64)> = Vec::new();
        for e in std::fs::read_dir(&dir)?.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let name = e.file_name().to_string_lossy().to_string();
            let Some(key) = block_key_of(&name) else {
                let _ = std::fs::remove_file(e.path());
                continue;
            };
            found.push((
                meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                key,
                meta.len(),
            ));
        }
        found.sort();
        let cache = ReadCache {
            dir,
            limit,
            min_free,
            index: Mutex::new(Index {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                bytes: 0,
                tick: 0,
            }),
        };
        for (_, key, len) in found {
            cache.admit(&key, len);
        }
        cache.evict();
        Ok(cache)
    }

    pub fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(file_name(key))
    }

    /// Marks `key` used; true if it is cached.
    pub fn touch(&self, key: &str) -> bool {
        let mut i = self.index.lock();
        i.tick += 1;
        let t = i.tick;
        let Some((_, used)) = i.entries.get(key).copied() else {
            return false;
        };
        i.order.remove(&used);
        i.order.insert(t, key.to_string());
        if let Some(e) = i.entries.get_mut(key) {
            e.1 = t;
        }
        true
    }

    /// Records a block file just written.
    pub fn admit(&self, key: &str, len: u64) {
        let mut i = self.index.lock();
        i.tick += 1;
        let t = i.tick;
        if let Some((old_len, used)) = i.entries.insert(key.to_string(), (len, t)) {
            i.order.remove(&used);
            i.bytes -= old_len;
        }
        i.order.insert(t, key.to_string());
        i.bytes += len;
    }

    /// Whether a block of `len` bytes should be written at all (room and free space).
    pub fn wants(&self, len: u64) -> bool {
        self.limit > 0
            && len <= self.limit
            && free_space(&self.dir).is_none_or(|f| f > self.min_free + len)
    }

    /// Forgets a block whose file turned out unreadable or corrupt.
    pub fn drop_key(&self, key: &str) {
        let mut i = self.index.lock();
        if let Some((len, used)) = i.entries.remove(key) {
            i.order.remove(&used);
            i.bytes -= len;
        }
        let _ = std::fs::remove_file(self.path_for(key));
    }

    /// Removes least recently used blocks until under the size limit and free-space floor.
    pub fn evict(&self) {
        loop {
            let victim = {
                let mut i = self.index.lock();
                let low_space = free_space(&self.dir).is_some_and(|f| f < self.min_free);
                if (i.bytes <= self.limit && !low_space) || i.order.is_empty() {
                    return;
                }
                let Some((&t, _)) = i.order.iter().next() else {
                    return;
                };
                let key = i.order.remove(&t).unwrap_or_default();
                if let Some((len, _)) = i.entries.remove(&key) {
                    i.bytes -= len;
                }
                key
            };
            let _ = std::fs::remove_file(self.path_for(&victim));
        }
    }

    pub fn bytes(&self) -> u64 {
        self.index.lock().bytes
    }
}

fn block_key_of(name: &str) -> Option<String> {
    let mut it = name.split('_');
    let id: u64 = it.next()?.parse().ok()?;
    let k: u32 = it.next()?.parse().ok()?;
    let len: u32 = it.next()?.parse().ok()?;
    it.next()
        .is_none()
        .then(|| crate::layout::block_key(id, k, len))
}

fn free_space(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs on a valid NUL-terminated path into a zeroed struct.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut s) == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_reindexes_on_open() {
        let dir = std::env::temp_dir().join(format!("ringfs-rc-{}", uuid::Uuid::new_v4()));
        let c = ReadCache::open(dir.clone(), 300, 0).unwrap();
        for id in 1..=3u64 {
            let key = crate::layout::block_key(id, 0, 100);
            std::fs::write(c.path_for(&key), vec![0u8; 100]).unwrap();
            c.admit(&key, 100);
        }
        assert!(c.touch(&crate::layout::block_key(1, 0, 100)));
        let key4 = crate::layout::block_key(4, 0, 100);
        std::fs::write(c.path_for(&key4), vec![0u8; 100]).unwrap();
        c.admit(&key4, 100);
        c.evict();
        assert_eq!(c.bytes(), 300);
        assert!(
            c.touch(&crate::layout::block_key(1, 0, 100)),
            "recently used block kept"
        );
        assert!(
            !c.touch(&crate::layout::block_key(2, 0, 100)),
            "least recently used block evicted"
        );
        assert!(!c.path_for(&crate::layout::block_key(2, 0, 100)).exists());
        let reopened = ReadCache::open(dir.clone(), 300, 0).unwrap();
        assert_eq!(reopened.bytes(), 300);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
