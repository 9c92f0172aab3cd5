//! [`FaultyStore`]: a failure-injecting [`ObjectStore`] wrapper for testing callers' retry
//! and error paths (after neon's `UnreliableWrapper`).
//!
//! Deterministic modes make retry tests exact: "the first N attempts of every (operation,
//! key) fail" means a caller retrying N times succeeds and one retrying N-1 times does not.
//! A seeded random fraction and added latency shake out ordering assumptions without making
//! a failing test unreproducible (same seed, same sequence of decisions).

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{Result, SwiftError};
use crate::store::ObjectStore;

/// The operations of [`ObjectStore`], to select which ones fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    Put,
    Get,
    Head,
    DeleteMany,
    List,
}

type ErrorFn = Arc<dyn Fn(FaultOp, &str) -> SwiftError + Send + Sync>;

struct State {
    attempts: HashMap<(FaultOp, String), u32>,
    rng: StdRng,
    injected: u64,
}

/// Wraps an [`ObjectStore`] and makes some calls fail or slow down.
pub struct FaultyStore<S: ObjectStore> {
    inner: S,
    fail_first: u32,
    fail_fraction: f64,
    latency: Option<(Duration, Duration)>,
    ops: Vec<FaultOp>,
    error: ErrorFn,
    state: Mutex<State>,
}

impl<S: ObjectStore> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("fail_first", &self.fail_first)
            .field("fail_fraction", &self.fail_fraction)
            .field("latency", &self.latency)
            .field("ops", &self.ops)
            .finish_non_exhaustive()
    }
}

/// The default injected error: a retryable 503, as a struggling Swift proxy answers.
fn default_error(op: FaultOp, key: &str) -> SwiftError {
    SwiftError::Http {
        status: 503,
        method: format!("{op:?}"),
        url: format!("faulty://{key}"),
        body_snippet: "injected failure".into(),
    }
}

impl<S: ObjectStore> FaultyStore<S> {
    /// A wrapper that injects nothing until configured.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            fail_first: 0,
            fail_fraction: 0.0,
            latency: None,
            ops: vec![
                FaultOp::Put,
                FaultOp::Get,
                FaultOp::Head,
                FaultOp::DeleteMany,
                FaultOp::List,
            ],
            error: Arc::new(default_error),
            state: Mutex::new(State {
                attempts: HashMap::new(),
                rng: StdRng::seed_from_u64(0),
                injected: 0,
            }),
        }
    }

    /// Fail the first `n` attempts of each (operation, key) pair. The key of
    /// `delete_many` is its keys joined by `,`; the key of `list` is the prefix.
    pub fn fail_first(mut self, n: u32) -> Self {
        self.fail_first = n;
        self
    }

    /// After the first `n`, fail this fraction of calls, drawn from an RNG seeded with
    /// `seed`.
    pub fn fail_fraction(mut self, fraction: f64, seed: u64) -> Self {
        self.fail_fraction = fraction.clamp(0.0, 1.0);
        self.state.get_mut().rng = StdRng::seed_from_u64(seed);
        self
    }

    /// Delay every call by a uniform random time in `[min, max]` (seeded RNG).
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = Some((min, max.max(min)));
        self
    }

    /// Only inject into these operations.
    pub fn only(mut self, ops: &[FaultOp]) -> Self {
        self.ops = ops.to_vec();
        self
    }

    /// Inject this error (cloned) instead of the default retryable 503.
    pub fn with_error(self, error: SwiftError) -> Self {
        self.with_error_fn(move |_, _| error.clone())
    }

    /// Inject the error built by `f(op, key)`.
    pub fn with_error_fn(
        mut self,
        f: impl Fn(FaultOp, &str) -> SwiftError + Send + Sync + 'static,
    ) -> Self {
        self.error = Arc::new(f);
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Calls made so far for (op, key), failed or not.
    pub fn attempts(&self, op: FaultOp, key: &str) -> u32 {
        self.state
            .lock()
            .attempts
            .get(&(op, key.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// Sleeps the configured latency, then decides whether this call fails.
    async fn before(&self, op: FaultOp, key: &str) -> Result<()> {
        let (delay, fail) = {
            let mut st = self.state.lock();
            let delay = self.latency.map(|(lo, hi)| {
                if hi > lo {
                    st.rng.gen_range(lo..=hi)
                } else {
                    lo
                }
            });
            let fail = if self.ops.contains(&op) {
                let n = st.attempts.entry((op, key.to_string())).or_insert(0);
                *n += 1;
                let n = *n;
                n <= self.fail_first
                    || (self.fail_fraction > 0.0 && st.rng.gen::<f64>() < self.fail_fraction)
            } else {
                false
            };
            if fail {
                st.injected += 1;
            }
            (delay, fail)
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if fail {
            tracing::debug!(?op, key, "injecting failure");
            return Err((self.error)(op, key));
        }
        Ok(())
    }
}

#[async_trait]
impl<S: ObjectStore> ObjectStore for FaultyStore<S> {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.before(FaultOp::Put, key).await?;
        self.inner.put(key, data).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        self.before(FaultOp::Get, key).await?;
        self.inner.get(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        self.before(FaultOp::Head, key).await?;
        self.inner.head(key).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.before(FaultOp::DeleteMany, &keys.join(",")).await?;
        self.inner.delete_many(keys).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.before(FaultOp::List, prefix).await?;
        self.inner.list(prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    /// A minimal caller-side retry loop, as the engine would have.
    async fn put_with_retries(s: &impl ObjectStore, key: &str, retries: u32) -> Result<()> {
        let mut attempt = 0;
        loop {
            match s.put(key, Bytes::from_static(b"v")).await {
                Err(e) if e.is_retryable() && attempt < retries => attempt += 1,
                r => return r,
            }
        }
    }

    #[tokio::test]
    async fn fail_first_n_per_key() {
        let s = FaultyStore::new(MemoryStore::new()).fail_first(2);
        assert!(put_with_retries(&s, "a", 1).await.is_err());
        assert_eq!(s.attempts(FaultOp::Put, "a"), 2);
        // The third attempt of "a" goes through; "b" has its own count.
        put_with_retries(&s, "a", 0).await.unwrap();
        put_with_retries(&s, "b", 2).await.unwrap();
        assert_eq!(s.attempts(FaultOp::Put, "b"), 3);
        assert_eq!(s.injected(), 4);
        assert_eq!(s.inner().keys(), vec!["a".to_string(), "b".to_string()]);
    }

    #[tokio::test]
    async fn chosen_error_and_ops() {
        let s = FaultyStore::new(MemoryStore::new())
            .fail_first(1)
            .only(&[FaultOp::Get])
            .with_error(SwiftError::NotFound {
                container: "x".into(),
                object: None,
            });
        s.put("k", Bytes::from_static(b"v")).await.unwrap();
        let e = s.get("k", None).await.unwrap_err();
        assert!(e.is_not_found() && !e.is_retryable());
        assert_eq!(s.get("k", None).await.unwrap(), "v");
    }

    #[tokio::test]
    async fn seeded_fraction_is_reproducible() {
        async fn pattern(seed: u64) -> Vec<bool> {
            let s = FaultyStore::new(MemoryStore::new()).fail_fraction(0.3, seed);
            let mut v = Vec::new();
            for i in 0..200 {
                v.push(s.head(&format!("k{i}")).await.is_err());
            }
            v
        }
        let a = pattern(7).await;
        assert_eq!(a, pattern(7).await);
        let failures = a.iter().filter(|f| **f).count();
        assert!((30..90).contains(&failures), "{failures}");
    }

    #[tokio::test(start_paused = true)]
    async fn latency_is_added() {
        let s = FaultyStore::new(MemoryStore::new())
            .latency(Duration::from_millis(50), Duration::from_millis(50));
        let t = tokio::time::Instant::now();
        s.head("k").await.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
