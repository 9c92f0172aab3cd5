//! In-memory block cache of one worker: whole blocks by object key, least recently used
//! evicted first, bounded in bytes. Concurrent requests for one block share one GET.

use bytes::Bytes;
use futures::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};

type Fetch = Shared<LocalBoxFuture<'static, Result<Bytes, FetchError>>>;

/// Why a block could not be fetched. Cloneable: concurrent readers share one GET.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Still absent from Swift after the configured wait: the client that wrote it (in
    /// write-back mode) has not uploaded it.
    #[error("block {key} is not in Swift after waiting {waited:?}: the client that wrote it has not uploaded it (still staged in its write-back cache?)")]
    NotUploaded {
        key: String,
        waited: std::time::Duration,
    },
    #[error("{0}")]
    Failed(String),
}

pub struct BlockCache {
    inner: RefCell<Inner>,
    limit: usize,
}

#[derive(Default)]
struct Inner {
    blocks: HashMap<String, (Bytes, u64)>,
    order: VecDeque<(String, u64)>,
    bytes: usize,
    tick: u64,
    inflight: HashMap<String, Fetch>,
}

impl BlockCache {
    pub fn new(limit: usize) -> Self {
        BlockCache {
            inner: RefCell::new(Inner::default()),
            limit,
        }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        let mut i = self.inner.borrow_mut();
        i.tick += 1;
        let t = i.tick;
        let hit = i.blocks.get_mut(key).map(|(b, used)| {
            *used = t;
            b.clone()
        });
        if hit.is_some() {
            i.order.push_back((key.to_string(), t));
        }
        hit
    }

    pub fn insert(&self, key: &str, data: Bytes) {
        if data.len() > self.limit {
            return;
        }
        let mut i = self.inner.borrow_mut();
        i.tick += 1;
        let t = i.tick;
        i.bytes += data.len();
        if let Some((old, _)) = i.blocks.insert(key.to_string(), (data, t)) {
            i.bytes -= old.len();
        }
        i.order.push_back((key.to_string(), t));
        while i.bytes > self.limit {
            let Some((k, t)) = i.order.pop_front() else {
                break;
            };
            // Skip stale order entries (the block was used again later).
            if i.blocks.get(&k).is_some_and(|(_, used)| *used == t) {
                if let Some((b, _)) = i.blocks.remove(&k) {
                    i.bytes -= b.len();
                }
            }
        }
        // Keep the order queue from growing without bound on hot blocks.
        if i.order.len() > 4 * i.blocks.len() + 1024 {
            let Inner { blocks, order, .. } = &mut *i;
            order.retain(|(k, t)| blocks.get(k).is_some_and(|(_, used)| used == t));
        }
    }

    /// The block from the cache, or fetched once however many callers ask at a time.
    pub async fn get_or_fetch<F>(&self, key: &str, fetch: F) -> Result<Bytes, FetchError>
    where
        F: FnOnce() -> LocalBoxFuture<'static, Result<Bytes, FetchError>>,
    {
        if let Some(b) = self.get(key) {
            return Ok(b);
        }
        let shared = {
            let mut i = self.inner.borrow_mut();
            match i.inflight.get(key) {
                Some(f) => f.clone(),
                None => {
                    let f = fetch().shared();
                    i.inflight.insert(key.to_string(), f.clone());
                    f
                }
            }
        };
        let out = shared.await;
        self.inner.borrow_mut().inflight.remove(key);
        if let Ok(b) = &out {
            self.insert(key, b.clone());
        }
        out
    }

    pub fn is_inflight(&self, key: &str) -> bool {
        self.inner.borrow().inflight.contains_key(key)
    }

    pub fn bytes(&self) -> usize {
        self.inner.borrow().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_limit() {
        let c = BlockCache::new(300);
        c.insert("a", Bytes::from(vec![0; 100]));
        c.insert("b", Bytes::from(vec![0; 100]));
        c.insert("c", Bytes::from(vec![0; 100]));
        assert!(c.get("a").is_some()); // a is now the most recent
        c.insert("d", Bytes::from(vec![0; 100]));
        assert!(c.bytes() <= 300);
        assert!(c.get("a").is_some());
        assert!(c.get("b").is_none());
    }
}
