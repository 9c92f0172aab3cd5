//! Runs metadata operations as single etcd transactions, with optimistic retries,
//! a client-side key cache, and group commit.
//!
//! **Attempt**: replay the operation against a [`View`] until it needs no more reads
//! (misses are fetched in one round trip each; keys in the cache are used unverified),
//! then commit one transaction guarded by the revisions of everything it read. A failed
//! guard means someone else changed a key: drop the cached reads and retry with fresh
//! ones, with jittered exponential backoff, at most `max_retries` times.
//!
//! **Group commit**: while one transaction of this client is in flight, operations that
//! are ready queue up; the next leader replays all of them over one shared view (each sees
//! the effects of the ones before it) and commits them as one transaction, within etcd's
//! limits. If that combined transaction fails its guard, each operation is retried alone,
//! so one conflict never fails its neighbours. Leadership passes from caller to caller,
//! so there is no background task and no extra thread hop at low load.
//!
//! **Unknown outcome**: when the connection breaks after a transaction was sent, the
//! runner re-reads what it wrote; if every put is there with its exact value the operation
//! committed, otherwise it is retried from fresh reads. An operation is never applied twice.

use super::kv::{KeyValue, KvError, KvStore, TxnRequest, Write};
use super::txn::{Known, ReadSet, Step, TxnLimits, View};
use super::{attr::Timestamp, MetaError};
use bytes::Bytes;
use parking_lot::Mutex;
use rand::Rng;
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Erased = Box<dyn Any + Send>;
type ErasedOp = Box<dyn FnMut(&mut View) -> Result<Erased, Step> + Send>;

/// Tuning of the runner (from the `[etcd]` config section).
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    pub group_commit: bool,
    pub batch_window: Duration,
    pub limits: TxnLimits,
    pub max_retries: u32,
    /// An operation that cannot reach etcd fails after this long.
    pub op_timeout: Duration,
    /// Entries kept in the key cache (0 disables it).
    pub cache_entries: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            group_commit: true,
            batch_window: Duration::ZERO,
            limits: TxnLimits::default(),
            max_retries: 20,
            op_timeout: Duration::from_secs(30),
            cache_entries: 200_000,
        }
    }
}

/// Counters for benchmarks and `status`.
#[derive(Debug, Default)]
pub struct RunnerStats {
    pub txns: AtomicU64,
    pub ops_committed: AtomicU64,
    pub conflicts: AtomicU64,
    pub batch_fallbacks: AtomicU64,
    pub ambiguous_resolved: AtomicU64,
}

pub struct Runner {
    kv: Arc<dyn KvStore>,
    opts: RunnerOptions,
    cache: KeyCache,
    group: Mutex<GroupState>,
    pub stats: RunnerStats,
}

struct Payload {
    op: ErasedOp,
    reads: ReadSet,
    now: Timestamp,
}

enum Outcome {
    Committed(Erased),
    /// Replay again from fresh reads; `alone`: do not batch the retry.
    Retry {
        alone: bool,
    },
    Error(MetaError),
    Kv(KvError),
}

enum Signal {
    Done(Outcome, Payload),
    Lead(Payload),
}

#[derive(Default)]
struct GroupState {
    leading: bool,
    queue: VecDeque<(Payload, oneshot::Sender<Signal>)>,
}

/// Last known value and revision of keys, used unverified by write operations (their
/// transaction's guard catches a stale entry). Never used to answer a read-only request.
/// (value, mod revision (0: absent), revision it was known current at)
type CacheEntry = (Option<Bytes>, i64, i64);

struct KeyCache {
    map: Mutex<BTreeMap<Vec<u8>, CacheEntry>>,
    cap: usize,
}

impl KeyCache {
    fn get(&self, key: &[u8]) -> Option<Known> {
        if self.cap == 0 {
            return None;
        }
        self.map.lock().get(key).map(|(v, r, seen)| Known {
            value: v.clone(),
            mod_rev: *r,
            unverified: true,
            seen_at: *seen,
        })
    }

    fn put(&self, key: &[u8], value: Option<Bytes>, rev: i64, seen_at: i64) {
        if self.cap == 0 {
            return;
        }
        let mut m = self.map.lock();
        if m.len() >= self.cap {
            m.clear();
        }
        match m.get(key) {
            Some((_, _, seen)) if *seen > seen_at => {}
            _ => {
                m.insert(key.to_vec(), (value, rev, seen_at));
            }
        }
    }

    /// Replaces records in `reads` with newer ones from the cache (our own commits).
    fn refresh(&self, reads: &mut ReadSet) {
        if self.cap == 0 {
            return;
        }
        let m = self.map.lock();
        for (k, known) in reads.keys.iter_mut() {
            if let Some((v, r, seen)) = m.get(k) {
                if *seen > known.seen_at {
                    *known = Known {
                        value: v.clone(),
                        mod_rev: *r,
                        unverified: known.unverified,
                        seen_at: *seen,
                    };
                }
            }
        }
    }

    fn forget(&self, key: &[u8]) {
        self.map.lock().remove(key);
    }

    fn apply(&self, writes: &[Write], rev: i64) {
        if self.cap == 0 {
            return;
        }
        for w in writes {
            match w {
                Write::Put { key, value, .. } => {
                    self.put(key, Some(Bytes::copy_from_slice(value)), rev, rev)
                }
                Write::Delete { key } => self.put(key, None, 0, rev),
                Write::DeleteRange { start, end } => {
                    let mut m = self.map.lock();
                    let doomed: Vec<Vec<u8>> = m
                        .range(start.clone()..end.clone())
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        m.remove(&k);
                    }
                }
            }
        }
    }
}

enum ReadPhase {
    /// Nothing to write: the operation's answer.
    Done(Erased),
    /// Ready to commit this transaction with this answer.
    Ready(Erased, TxnRequest),
}

impl Runner {
    pub fn new(kv: Arc<dyn KvStore>, opts: RunnerOptions) -> Self {
        let cache = KeyCache {
            map: Mutex::new(BTreeMap::new()),
            cap: opts.cache_entries,
        };
        Runner {
            kv,
            opts,
            cache,
            group: Mutex::new(GroupState::default()),
            stats: RunnerStats::default(),
        }
    }

    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    pub fn options(&self) -> &RunnerOptions {
        &self.opts
    }

    /// Runs `op` as one transaction (see the module doc). `name` is for logs.
    pub async fn run<T, F>(&self, name: &'static str, mut op: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnMut(&mut View) -> Result<T, Step> + Send + 'static,
    {
        let erased: ErasedOp = Box::new(move |v: &mut View| op(v).map(|t| Box::new(t) as Erased));
        let out = self
            .run_erased(name, erased, self.opts.group_commit)
            .await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| MetaError::Internal(format!("{name}: result type")))
    }

    /// A read-only operation: fresh reads (never the cache), no transaction. The answer
    /// is linearizable per key read.
    pub async fn query<T, F>(&self, name: &'static str, mut op: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnMut(&mut View) -> Result<T, Step> + Send + 'static,
    {
        let mut erased: ErasedOp =
            Box::new(move |v: &mut View| op(v).map(|t| Box::new(t) as Erased));
        let deadline = Instant::now() + self.opts.op_timeout;
        let mut reads = ReadSet::default();
        match self
            .read_phase(
                name,
                &mut erased,
                &mut reads,
                false,
                Timestamp::now(),
                deadline,
            )
            .await
        {
            Ok(ReadPhase::Done(v)) => v
                .downcast::<T>()
                .map(|b| *b)
                .map_err(|_| MetaError::Internal(format!("{name}: result type"))),
            Ok(ReadPhase::Ready(..)) => Err(MetaError::Internal(format!(
                "{name}: a query tried to write"
            ))),
            Err(Retryable::Fail(e)) => Err(e),
            Err(Retryable::Fresh) => Err(MetaError::Internal(format!("{name}: query conflict"))),
        }
    }

    /// Like `run`, never batched (id allocation, maintenance).
    pub async fn run_alone<T, F>(&self, name: &'static str, mut op: F) -> Result<T, MetaError>
    where
        T: Send + 'static,
        F: FnMut(&mut View) -> Result<T, Step> + Send + 'static,
    {
        let erased: ErasedOp = Box::new(move |v: &mut View| op(v).map(|t| Box::new(t) as Erased));
        let out = self.run_erased(name, erased, false).await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| MetaError::Internal(format!("{name}: result type")))
    }

    async fn run_erased(
        &self,
        name: &'static str,
        mut op: ErasedOp,
        batch: bool,
    ) -> Result<Erased, MetaError> {
        let deadline = Instant::now() + self.opts.op_timeout;
        let mut reads = ReadSet::default();
        let mut use_cache = true;
        let mut alone = !batch;
        let mut conflicts = 0u32;
        loop {
            let now = Timestamp::now();
            let phase = self
                .read_phase(name, &mut op, &mut reads, use_cache, now, deadline)
                .await;
            let (value, txn) = match phase {
                Ok(ReadPhase::Done(v)) => return Ok(v),
                Ok(ReadPhase::Ready(v, t)) => (v, t),
                Err(Retryable::Fresh) => {
                    use_cache = false;
                    reads.clear();
                    continue;
                }
                Err(Retryable::Fail(e)) => return Err(e),
            };
            self.opts.limits.check(&txn, name)?;
            let outcome = if alone {
                self.commit_alone(name, value, &txn).await
            } else {
                let (outcome, payload) = self.commit_grouped(Payload { op, reads, now }).await;
                op = payload.op;
                reads = payload.reads;
                outcome
            };
            match outcome {
                Outcome::Committed(v) => return Ok(v),
                Outcome::Error(e) => return Err(e),
                Outcome::Retry { alone: a } => {
                    conflicts += 1;
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    if conflicts > self.opts.max_retries {
                        tracing::warn!(op = name, conflicts, "metadata operation kept conflicting");
                        return Err(MetaError::Busy(format!(
                            "{name}: still conflicting after {conflicts} attempts"
                        )));
                    }
                    alone |= a;
                    for c in &txn.compares {
                        if let super::kv::Cmp::ModRev { key, .. } = c {
                            self.cache.forget(key);
                        }
                    }
                    use_cache = false;
                    reads.clear();
                    backoff(conflicts).await;
                }
                Outcome::Kv(e) => {
                    if !e.is_transient() || Instant::now() >= deadline {
                        return Err(kv_error(name, e));
                    }
                    tracing::debug!(op = name, error = %e, "retrying after etcd error");
                    use_cache = false;
                    reads.clear();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    async fn read_phase(
        &self,
        name: &'static str,
        op: &mut ErasedOp,
        reads: &mut ReadSet,
        use_cache: bool,
        now: Timestamp,
        deadline: Instant,
    ) -> Result<ReadPhase, Retryable> {
        for _ in 0..64 {
            let mut view = View::new(reads, use_cache, now);
            match op(&mut view) {
                Ok(v) => {
                    if view.relied_on_unverified() && !view.has_writes() {
                        return Err(Retryable::Fresh);
                    }
                    if !view.has_writes() {
                        return Ok(ReadPhase::Done(v));
                    }
                    return Ok(ReadPhase::Ready(v, view.to_txn()));
                }
                Err(Step::Fs(e)) => {
                    if view.relied_on_unverified() {
                        return Err(Retryable::Fresh);
                    }
                    return Err(Retryable::Fail(e));
                }
                Err(Step::Conflict) => return Err(Retryable::Fresh),
                Err(step @ (Step::Miss(_) | Step::MissFresh(_))) => {
                    drop(view);
                    let (keys, fresh) = match step {
                        Step::Miss(k) => (k, false),
                        Step::MissFresh(k) => (k, true),
                        _ => {
                            return Err(Retryable::Fail(MetaError::Internal(format!(
                                "{name}: read step"
                            ))))
                        }
                    };
                    let mut fetch = Vec::new();
                    for k in keys {
                        if reads.keys.get(&k).is_some_and(|v| !fresh || !v.unverified) {
                            continue;
                        }
                        match (use_cache && !fresh).then(|| self.cache.get(&k)).flatten() {
                            Some(known) => {
                                reads.keys.insert(k, known);
                            }
                            None => fetch.push(k),
                        }
                    }
                    if !fetch.is_empty() {
                        let (vals, at) = self
                            .read_with_retry(name, deadline, |kv| {
                                let keys = fetch.clone();
                                async move { kv.get_many(&keys).await }
                            })
                            .await
                            .map_err(Retryable::Fail)?;
                        for (k, v) in fetch.into_iter().zip(vals) {
                            let (value, rev) = match v {
                                Some(KeyValue { value, mod_rev, .. }) => {
                                    (Some(Bytes::from(value)), mod_rev)
                                }
                                None => (None, 0),
                            };
                            self.cache.put(&k, value.clone(), rev, at);
                            reads.keys.insert(
                                k,
                                Known {
                                    value,
                                    mod_rev: rev,
                                    unverified: false,
                                    seen_at: at,
                                },
                            );
                        }
                    }
                }
                Err(Step::MissRange(s, e)) => {
                    drop(view);
                    let (kvs, _) = self
                        .read_with_retry(name, deadline, |kv| {
                            let (s, e) = (s.clone(), e.clone());
                            async move { kv.range(&s, &e, 1).await }
                        })
                        .await
                        .map_err(Retryable::Fail)?;
                    reads.ranges.insert((s, e), kvs.is_empty());
                }
            }
        }
        Err(Retryable::Fail(MetaError::Internal(format!(
            "{name}: too many dependent reads"
        ))))
    }

    /// Retries a read on transient errors until the operation's deadline.
    pub(crate) async fn read_with_retry<R, Fut>(
        &self,
        name: &str,
        deadline: Instant,
        f: impl Fn(Arc<dyn KvStore>) -> Fut,
    ) -> Result<R, MetaError>
    where
        Fut: std::future::Future<Output = Result<R, KvError>>,
    {
        loop {
            match f(self.kv.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    tracing::debug!(op = name, error = %e, "retrying read");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(kv_error(name, e)),
            }
        }
    }

    /// A plain read retried within the operation timeout (for read-only requests).
    pub async fn read<R, Fut>(
        &self,
        name: &str,
        f: impl Fn(Arc<dyn KvStore>) -> Fut,
    ) -> Result<R, MetaError>
    where
        Fut: std::future::Future<Output = Result<R, KvError>>,
    {
        self.read_with_retry(name, Instant::now() + self.opts.op_timeout, f)
            .await
    }

    async fn commit_alone(&self, name: &'static str, value: Erased, txn: &TxnRequest) -> Outcome {
        self.stats.txns.fetch_add(1, Ordering::Relaxed);
        match self.kv.txn(txn).await {
            Ok(o) if o.succeeded => {
                self.cache.apply(&txn.writes, o.revision);
                self.stats.ops_committed.fetch_add(1, Ordering::Relaxed);
                Outcome::Committed(value)
            }
            Ok(_) => Outcome::Retry { alone: false },
            Err(KvError::Ambiguous { reason, .. }) => match self.resolve_ambiguous(txn).await {
                Some(rev) => {
                    tracing::info!(op = name, %reason, "transaction outcome was unknown; found it applied");
                    self.stats
                        .ambiguous_resolved
                        .fetch_add(1, Ordering::Relaxed);
                    self.cache.apply(&txn.writes, rev);
                    Outcome::Committed(value)
                }
                None => Outcome::Retry { alone: false },
            },
            Err(e) => Outcome::Kv(e),
        }
    }

    /// After a lost reply: were the writes applied? Some(revision) if every put holds
    /// exactly the value we wrote (and, for a delete-only transaction, every deleted key
    /// is gone); None if not, or if it cannot be told (then the operation is retried from
    /// fresh reads, which re-checks all its preconditions).
    async fn resolve_ambiguous(&self, txn: &TxnRequest) -> Option<i64> {
        let puts: Vec<(&Vec<u8>, &Vec<u8>)> = txn
            .writes
            .iter()
            .filter_map(|w| match w {
                Write::Put { key, value, .. } => Some((key, value)),
                _ => None,
            })
            .collect();
        let deadline = Instant::now() + self.opts.op_timeout;
        let keys: Vec<Vec<u8>> = if puts.is_empty() {
            txn.writes
                .iter()
                .filter(|w| matches!(w, Write::Delete { .. }))
                .map(|w| w.key().to_vec())
                .collect()
        } else {
            puts.iter().map(|(k, _)| (*k).clone()).collect()
        };
        if keys.is_empty() {
            return None;
        }
        let (vals, rev) = loop {
            match self.kv.get_many(&keys).await {
                Ok(r) => break r,
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(_) => return None,
            }
        };
        if puts.is_empty() {
            return vals.iter().all(|v| v.is_none()).then_some(rev);
        }
        let mut commit_rev = None;
        for ((_, want), got) in puts.iter().zip(vals) {
            match got {
                Some(kv) if &kv.value == *want => {
                    if commit_rev.is_some_and(|r| r != kv.mod_rev) {
                        return None;
                    }
                    commit_rev = Some(kv.mod_rev);
                }
                _ => return None,
            }
        }
        commit_rev
    }

    async fn commit_grouped(&self, payload: Payload) -> (Outcome, Payload) {
        let mut payload = Some(payload);
        // Either queue behind the current leader or become the leader (lock not held
        // across an await).
        let waiting = {
            let mut g = self.group.lock();
            if g.leading {
                let (tx, rx) = oneshot::channel();
                if let Some(p) = payload.take() {
                    g.queue.push_back((p, tx));
                }
                Some(rx)
            } else {
                g.leading = true;
                None
            }
        };
        if let Some(rx) = waiting {
            match rx.await {
                Ok(Signal::Done(o, p)) => return (o, p),
                Ok(Signal::Lead(p)) => payload = Some(p),
                // The leader vanished without answering (cannot happen unless a task is
                // cancelled mid-commit); the operation is retried from fresh reads.
                Err(_) => {
                    return (
                        Outcome::Kv(KvError::Unavailable {
                            endpoints: self.kv.describe(),
                            reason: "group commit leader lost".into(),
                        }),
                        Payload {
                            op: Box::new(|_| Err(Step::Conflict)),
                            reads: ReadSet::default(),
                            now: Timestamp::now(),
                        },
                    )
                }
            }
        }
        // We lead: commit a batch that starts with our own operation.
        if !self.opts.batch_window.is_zero() {
            tokio::time::sleep(self.opts.batch_window).await;
        }
        let Some(payload) = payload else {
            return unreachable_payload();
        };
        let mut batch: Vec<(Payload, Option<oneshot::Sender<Signal>>)> = vec![(payload, None)];
        {
            let mut g = self.group.lock();
            while batch.len() < self.opts.limits.max_ops {
                match g.queue.pop_front() {
                    Some((p, tx)) => batch.push((p, Some(tx))),
                    None => break,
                }
            }
        }
        let results = self.commit_batch(&mut batch).await;
        let mut mine = None;
        for ((p, tx), out) in batch.into_iter().zip(results) {
            match (tx, out) {
                (None, o) => mine = Some((o, p)),
                (Some(tx), BatchResult::Final(o)) => {
                    let _ = tx.send(Signal::Done(o, p));
                }
                (Some(tx), BatchResult::Requeue) => {
                    // Did not fit: back to the front of the queue for the next leader.
                    self.group.lock().queue.push_front((p, tx));
                }
            }
        }
        // Pass leadership to the next waiter, if any.
        loop {
            let next = {
                let mut g = self.group.lock();
                match g.queue.pop_front() {
                    Some(n) => n,
                    None => {
                        g.leading = false;
                        break;
                    }
                }
            };
            let (p, tx) = next;
            if let Err(Signal::Lead(_)) = tx.send(Signal::Lead(p)) {
                continue; // that caller is gone; try the next one
            }
            break;
        }
        match mine {
            Some((BatchResult::Final(o), p)) => (o, p),
            // The leader's own operation always fits (it was checked alone); be safe anyway.
            Some((BatchResult::Requeue, p)) => (Outcome::Retry { alone: true }, p),
            None => unreachable_payload(),
        }
    }

    async fn commit_batch(
        &self,
        batch: &mut [(Payload, Option<oneshot::Sender<Signal>>)],
    ) -> Vec<BatchResult> {
        let mut merged = ReadSet::default();
        for (p, _) in batch.iter() {
            merged.merge(&p.reads);
        }
        // Reads taken before our previous batch committed are stale by exactly what that
        // batch wrote; the cache has those writes, so consecutive batches do not conflict.
        self.cache.refresh(&mut merged);
        let mut refreshed = false;
        loop {
            let mut results: Vec<Option<BatchResult>> = (0..batch.len()).map(|_| None).collect();
            let mut values: Vec<Option<Erased>> = (0..batch.len()).map(|_| None).collect();
            let txn =
                Self::replay_batch(&self.opts.limits, &merged, batch, &mut results, &mut values);
            let members = values.iter().filter(|v| v.is_some()).count();
            if members == 0 {
                return finish(results);
            }
            self.stats.txns.fetch_add(1, Ordering::Relaxed);
            let outcome = match self.kv.txn(&txn).await {
                Ok(o) if o.succeeded => Ok(o.revision),
                Ok(_) => Err(None),
                Err(KvError::Ambiguous { .. }) => match self.resolve_ambiguous(&txn).await {
                    Some(rev) => {
                        self.stats
                            .ambiguous_resolved
                            .fetch_add(1, Ordering::Relaxed);
                        Ok(rev)
                    }
                    None => Err(None),
                },
                Err(e) => Err(Some(e)),
            };
            match outcome {
                Ok(rev) => {
                    self.cache.apply(&txn.writes, rev);
                    self.stats
                        .ops_committed
                        .fetch_add(members as u64, Ordering::Relaxed);
                    for (i, v) in values.iter_mut().enumerate() {
                        if let Some(v) = v.take() {
                            results[i] = Some(BatchResult::Final(Outcome::Committed(v)));
                        }
                    }
                    return finish(results);
                }
                Err(None) if members > 1 && !refreshed => {
                    // Someone else changed a guarded key: re-read every guarded key once
                    // (one round trip) and replay the batch on the fresh values.
                    refreshed = true;
                    self.stats.batch_fallbacks.fetch_add(1, Ordering::Relaxed);
                    let keys: Vec<Vec<u8>> = txn
                        .compares
                        .iter()
                        .filter_map(|c| match c {
                            super::kv::Cmp::ModRev { key, .. } => Some(key.clone()),
                            _ => None,
                        })
                        .collect();
                    if let Ok((vals, at)) = self.kv.get_many(&keys).await {
                        for (k, v) in keys.into_iter().zip(vals) {
                            let (value, rev) = match v {
                                Some(KeyValue { value, mod_rev, .. }) => {
                                    (Some(Bytes::from(value)), mod_rev)
                                }
                                None => (None, 0),
                            };
                            self.cache.put(&k, value.clone(), rev, at);
                            merged.keys.insert(
                                k,
                                Known {
                                    value,
                                    mod_rev: rev,
                                    unverified: false,
                                    seen_at: at,
                                },
                            );
                        }
                        merged.ranges.clear();
                        for (p, _) in batch.iter() {
                            for (r, e) in &p.reads.ranges {
                                merged.ranges.insert(r.clone(), *e);
                            }
                        }
                        continue;
                    }
                    return fail_members(results, &values, None, members);
                }
                Err(err) => return fail_members(results, &values, err, members),
            }
        }
    }

    /// Replays every operation of the batch over one shared view; returns the combined
    /// transaction. Operations that cannot run on the shared view are told to retry alone;
    /// those that no longer fit wait for the next batch.
    fn replay_batch(
        limits: &TxnLimits,
        merged: &ReadSet,
        batch: &mut [(Payload, Option<oneshot::Sender<Signal>>)],
        results: &mut [Option<BatchResult>],
        values: &mut [Option<Erased>],
    ) -> TxnRequest {
        let mut view = View::new(merged, true, Timestamp::now());
        let mut full = false;
        for (i, (p, _)) in batch.iter_mut().enumerate() {
            if full {
                results[i] = Some(BatchResult::Requeue);
                continue;
            }
            let saved = view.clone();
            view.now = p.now;
            match (p.op)(&mut view) {
                Ok(v) => {
                    if i > 0 && !limits.fits(&view.to_txn()) {
                        view = saved;
                        full = true;
                        results[i] = Some(BatchResult::Requeue);
                    } else {
                        values[i] = Some(v);
                    }
                }
                Err(_) => {
                    view = saved;
                    results[i] = Some(BatchResult::Final(Outcome::Retry { alone: true }));
                }
            }
        }
        view.to_txn()
    }
}

fn finish(results: Vec<Option<BatchResult>>) -> Vec<BatchResult> {
    results
        .into_iter()
        .map(|r| r.unwrap_or(BatchResult::Final(Outcome::Retry { alone: true })))
        .collect()
}

fn fail_members(
    mut results: Vec<Option<BatchResult>>,
    values: &[Option<Erased>],
    err: Option<KvError>,
    members: usize,
) -> Vec<BatchResult> {
    for (i, v) in values.iter().enumerate() {
        if v.is_some() {
            results[i] = Some(BatchResult::Final(match &err {
                None => Outcome::Retry { alone: members > 1 },
                Some(e) => Outcome::Kv(clone_kv_error(e)),
            }));
        }
    }
    finish(results)
}

enum BatchResult {
    Final(Outcome),
    Requeue,
}

enum Retryable {
    Fresh,
    Fail(MetaError),
}

fn unreachable_payload() -> (Outcome, Payload) {
    (
        Outcome::Error(MetaError::Internal(
            "group commit lost the leader's own operation".into(),
        )),
        Payload {
            op: Box::new(|_| Err(Step::Conflict)),
            reads: ReadSet::default(),
            now: Timestamp::now(),
        },
    )
}

fn clone_kv_error(e: &KvError) -> KvError {
    match e {
        KvError::Unavailable { endpoints, reason } => KvError::Unavailable {
            endpoints: endpoints.clone(),
            reason: reason.clone(),
        },
        KvError::Ambiguous { endpoints, reason } => KvError::Ambiguous {
            endpoints: endpoints.clone(),
            reason: reason.clone(),
        },
        KvError::Timeout { endpoints, after } => KvError::Timeout {
            endpoints: endpoints.clone(),
            after: *after,
        },
        KvError::NoSpace => KvError::NoSpace,
        KvError::TooLarge(s) => KvError::TooLarge(s.clone()),
        KvError::Auth(s) => KvError::Auth(s.clone()),
        KvError::Other(s) => KvError::Other(s.clone()),
    }
}

/// Maps a store error to the operation's error, logging what a user must know.
pub fn kv_error(op: &str, e: KvError) -> MetaError {
    match e {
        KvError::NoSpace => {
            // One line per 10 s, not one per failed syscall.
            static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let last = LAST_LOGGED.load(Ordering::Relaxed);
            if now >= last + 10
                && LAST_LOGGED
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::error!(op, "{}", MetaError::EtcdQuota);
            }
            MetaError::EtcdQuota
        }
        other => {
            tracing::warn!(op, error = %other, "metadata operation failed");
            MetaError::Unavailable(other.to_string())
        }
    }
}

async fn backoff(attempt: u32) {
    let cap_ms = 100u64;
    let base = 1u64 << attempt.min(7);
    let ms = rand::thread_rng().gen_range(0..=base.min(cap_ms));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
