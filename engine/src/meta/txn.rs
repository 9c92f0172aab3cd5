//! Transaction planning by optimistic replay.
//!
//! A metadata operation is written as a pure function of a [`View`]: it reads keys,
//! decides, and writes keys. The runner calls it; when it touches a key nobody has read
//! yet, it stops with [`Step::Miss`], the runner fetches the keys and calls it again from
//! the start. Once it runs to the end, the view holds everything the operation depends on
//! (each key read, with its revision) and everything it changes, so the whole operation
//! becomes ONE etcd transaction: `if every read key is unchanged then apply the writes`.
//! Before sending, the plan is checked against etcd's limits (128 compares, 128 writes,
//! request bytes); operations are designed to stay far below them and are never split.
//!
//! The same replay lets group commit run several operations over one shared view: each
//! sees the effects of those before it in the batch, exactly as if run one after another.

use super::attr::Timestamp;
use super::kv::{Cmp, TxnRequest, Write};
use super::MetaError;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

/// What is known of one key: its value (None: absent) and its mod revision (0: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    pub value: Option<Bytes>,
    pub mod_rev: i64,
    /// Came from the client cache (or was speculated), not from a read of this attempt.
    pub unverified: bool,
    /// Store revision at which this was known to be current (orders two records of a key).
    pub seen_at: i64,
}

/// Everything an attempt has read.
#[derive(Clone, Debug, Default)]
pub struct ReadSet {
    pub keys: BTreeMap<Vec<u8>, Known>,
    /// `[start, end)` → the range held no key when read.
    pub ranges: BTreeMap<(Vec<u8>, Vec<u8>), bool>,
}

impl ReadSet {
    pub fn clear(&mut self) {
        self.keys.clear();
        self.ranges.clear();
    }

    /// Adds the reads of `other`, keeping the newer record of a key read by both.
    pub fn merge(&mut self, other: &ReadSet) {
        for (k, v) in &other.keys {
            match self.keys.get(k) {
                Some(mine) if mine.seen_at >= v.seen_at => {}
                _ => {
                    self.keys.insert(k.clone(), v.clone());
                }
            }
        }
        for (r, e) in &other.ranges {
            self.ranges.entry(r.clone()).or_insert(*e);
        }
    }
}

/// Why an operation stopped before finishing.
#[derive(Debug)]
pub enum Step {
    /// These keys must be read first.
    Miss(Vec<Vec<u8>>),
    /// This range must be checked for emptiness first.
    MissRange(Vec<u8>, Vec<u8>),
    /// These keys must be read from the store, bypassing the cache.
    MissFresh(Vec<Vec<u8>>),
    /// The view cannot answer consistently (inside a batch); run the operation alone.
    Conflict,
    /// The operation's own result: an error for the caller.
    Fs(MetaError),
}

impl From<MetaError> for Step {
    fn from(e: MetaError) -> Self {
        Step::Fs(e)
    }
}

/// The key-value state an operation sees, and the changes it makes.
#[derive(Clone, Debug)]
pub struct View<'r> {
    reads: &'r ReadSet,
    /// Pending single-key writes: Some(value) put, None deleted.
    overlay: BTreeMap<Vec<u8>, Option<Bytes>>,
    deleted_ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys whose stored value the operation depended on.
    used: BTreeSet<Vec<u8>>,
    used_ranges: BTreeSet<(Vec<u8>, Vec<u8>)>,
    writes: Vec<Write>,
    /// Keys assumed absent without a read (`expect_absent`): checked by the compare.
    speculated: BTreeSet<Vec<u8>>,
    speculate: bool,
    lease: i64,
    /// One clock reading per attempt so every timestamp an operation writes agrees.
    pub now: Timestamp,
}

impl<'r> View<'r> {
    pub fn new(reads: &'r ReadSet, speculate: bool, now: Timestamp) -> Self {
        View {
            reads,
            overlay: BTreeMap::new(),
            deleted_ranges: Vec::new(),
            used: BTreeSet::new(),
            used_ranges: BTreeSet::new(),
            writes: Vec::new(),
            speculated: BTreeSet::new(),
            speculate,
            lease: 0,
            now,
        }
    }

    /// The lease attached to puts made with `put_leased`.
    pub fn set_lease(&mut self, lease: i64) {
        self.lease = lease;
    }

    fn range_deleted(&self, key: &[u8]) -> bool {
        self.deleted_ranges
            .iter()
            .any(|(s, e)| key >= &s[..] && key < &e[..])
    }

    fn lookup(&mut self, key: &[u8]) -> Result<Option<Bytes>, Option<Vec<u8>>> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        if self.range_deleted(key) {
            return Ok(None);
        }
        match self.reads.keys.get(key) {
            Some(k) => {
                self.used.insert(key.to_vec());
                Ok(k.value.clone())
            }
            None => Err(Some(key.to_vec())),
        }
    }

    /// Reads one key.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, Step> {
        self.lookup(key)
            .map_err(|m| Step::Miss(m.into_iter().collect()))
    }

    /// Reads a key from a fresh read WITHOUT guarding it with a compare: for values whose
    /// consistency another compare already proves (directory ancestry, guarded by the
    /// rename generation). Pending writes of this view are seen as usual.
    pub fn peek_fresh(&mut self, key: &[u8]) -> Result<Option<Bytes>, Step> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        if self.range_deleted(key) {
            return Ok(None);
        }
        match self.reads.keys.get(key) {
            Some(k) if !k.unverified => Ok(k.value.clone()),
            _ => Err(Step::MissFresh(vec![key.to_vec()])),
        }
    }

    /// Reads several keys; all missing ones are fetched together in one round trip.
    pub fn get_many(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>, Step> {
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for k in keys {
            match self.lookup(k) {
                Ok(v) => out.push(v),
                Err(m) => missing.extend(m),
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(Step::Miss(missing))
        }
    }

    /// Reads a key the operation expects to be absent (a new entry name). When nothing
    /// is known of it, it is assumed absent without a round trip and the transaction's
    /// compare checks the assumption; a wrong guess costs one retry with a real read.
    pub fn get_expect_absent(&mut self, key: &[u8]) -> Result<Option<Bytes>, Step> {
        match self.lookup(key) {
            Ok(v) => Ok(v),
            Err(_) if self.speculate => {
                self.speculated.insert(key.to_vec());
                Ok(None)
            }
            Err(m) => Err(Step::Miss(m.into_iter().collect())),
        }
    }

    /// Whether `[start, end)` holds no key, as seen by this operation.
    pub fn range_empty(&mut self, start: &[u8], end: &[u8]) -> Result<bool, Step> {
        let in_range = |k: &[u8]| k >= start && k < end;
        if self.overlay.iter().any(|(k, v)| v.is_some() && in_range(k)) {
            return Ok(false);
        }
        let touched = self.overlay.keys().any(|k| in_range(k))
            || self
                .deleted_ranges
                .iter()
                .any(|(s, e)| &s[..] < end && &e[..] > start);
        let r = (start.to_vec(), end.to_vec());
        match self.reads.ranges.get(&r) {
            Some(true) => {
                self.used_ranges.insert(r);
                Ok(true)
            }
            // Non-empty in the store, but this batch deleted keys in it: we cannot tell.
            Some(false) if touched => Err(Step::Conflict),
            Some(false) => Ok(false),
            None => Err(Step::MissRange(r.0, r.1)),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let value = Bytes::from(value);
        self.overlay.insert(key.clone(), Some(value.clone()));
        self.writes.push(Write::Put {
            key,
            value: value.to_vec(),
            lease: 0,
        });
    }

    /// A put tied to the view's lease (session-scoped records).
    pub fn put_leased(&mut self, key: Vec<u8>, value: Vec<u8>) {
        let value = Bytes::from(value);
        self.overlay.insert(key.clone(), Some(value.clone()));
        self.writes.push(Write::Put {
            key,
            value: value.to_vec(),
            lease: self.lease,
        });
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.overlay.insert(key.clone(), None);
        self.writes.push(Write::Delete { key });
    }

    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        self.overlay.retain(|k, _| !(k >= &start && k < &end));
        self.deleted_ranges.push((start.clone(), end.clone()));
        self.writes.push(Write::DeleteRange { start, end });
    }

    /// Whether the operation relied on anything not read in this attempt.
    pub fn relied_on_unverified(&self) -> bool {
        !self.speculated.is_empty()
            || self
                .used
                .iter()
                .any(|k| self.reads.keys.get(k).is_some_and(|v| v.unverified))
    }

    pub fn has_writes(&self) -> bool {
        !self.writes.is_empty()
    }

    /// The transaction: compares on every key and range used, then the writes with
    /// repeated writes to one key folded into the last one.
    pub fn to_txn(&self) -> TxnRequest {
        let mut compares: Vec<Cmp> = Vec::with_capacity(self.used.len() + self.speculated.len());
        for k in &self.used {
            let rev = self.reads.keys.get(k).map(|v| v.mod_rev).unwrap_or(0);
            compares.push(Cmp::ModRev {
                key: k.clone(),
                rev,
            });
        }
        for k in &self.speculated {
            if !self.used.contains(k) {
                compares.push(Cmp::ModRev {
                    key: k.clone(),
                    rev: 0,
                });
            }
        }
        for (s, e) in &self.used_ranges {
            compares.push(Cmp::RangeEmpty {
                start: s.clone(),
                end: e.clone(),
            });
        }
        TxnRequest {
            compares,
            writes: fold_writes(&self.writes),
        }
    }
}

/// Keeps, for each single key, only its last write, in first-write order; range deletes
/// stay where they are and drop earlier single-key writes they cover. etcd rejects a
/// transaction that writes one key twice.
pub fn fold_writes(writes: &[Write]) -> Vec<Write> {
    let mut out: Vec<Write> = Vec::with_capacity(writes.len());
    for w in writes {
        match w {
            Write::DeleteRange { start, end } => {
                out.retain(|o| match o {
                    Write::Put { key, .. } | Write::Delete { key } => !(key >= start && key < end),
                    Write::DeleteRange { .. } => true,
                });
                out.push(w.clone());
            }
            _ => {
                let key = w.key();
                if let Some(pos) = out
                    .iter()
                    .position(|o| !matches!(o, Write::DeleteRange { .. }) && o.key() == key)
                {
                    out.remove(pos);
                }
                // A put after a covering range delete must come after it; a plain delete of
                // a key the range already removed is redundant.
                let covered = out.iter().any(|o| match o {
                    Write::DeleteRange { start, end } => key >= &start[..] && key < &end[..],
                    _ => false,
                });
                if covered && matches!(w, Write::Delete { .. }) {
                    continue;
                }
                out.push(w.clone());
            }
        }
    }
    out
}

/// etcd's limits on one transaction request.
#[derive(Clone, Copy, Debug)]
pub struct TxnLimits {
    pub max_ops: usize,
    pub max_bytes: usize,
}

impl Default for TxnLimits {
    fn default() -> Self {
        // etcd defaults: --max-txn-ops 128, --max-request-bytes 1.5 MiB (keep headroom).
        TxnLimits {
            max_ops: 128,
            max_bytes: 1024 * 1024,
        }
    }
}

impl TxnLimits {
    pub fn fits(&self, t: &TxnRequest) -> bool {
        t.compares.len() <= self.max_ops
            && t.writes.len() <= self.max_ops
            && t.wire_bytes() <= self.max_bytes
    }

    pub fn check(&self, t: &TxnRequest, op: &str) -> Result<(), MetaError> {
        if self.fits(t) {
            Ok(())
        } else {
            Err(MetaError::Internal(format!(
                "{op}: transaction of {} compares, {} writes, {} bytes exceeds etcd limits",
                t.compares.len(),
                t.writes.len(),
                t.wire_bytes()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(v: &[u8], rev: i64) -> Known {
        Known {
            value: Some(Bytes::copy_from_slice(v)),
            mod_rev: rev,
            unverified: false,
            seen_at: rev,
        }
    }

    #[test]
    fn miss_then_replay_builds_compares_and_writes() {
        let mut reads = ReadSet::default();
        {
            let mut v = View::new(&reads, false, Timestamp::default());
            assert!(matches!(v.get(b"a"), Err(Step::Miss(k)) if k == vec![b"a".to_vec()]));
        }
        reads.keys.insert(b"a".to_vec(), known(b"1", 7));
        let mut v = View::new(&reads, false, Timestamp::default());
        assert_eq!(v.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        v.put(b"b".to_vec(), b"2".to_vec());
        assert_eq!(v.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
        let t = v.to_txn();
        assert_eq!(
            t.compares,
            vec![Cmp::ModRev {
                key: b"a".to_vec(),
                rev: 7
            }]
        );
        assert_eq!(t.writes.len(), 1);
    }

    #[test]
    fn speculation_becomes_an_absence_compare() {
        let reads = ReadSet::default();
        let mut v = View::new(&reads, true, Timestamp::default());
        assert_eq!(v.get_expect_absent(b"x").unwrap(), None);
        assert!(v.relied_on_unverified());
        assert_eq!(
            v.to_txn().compares,
            vec![Cmp::ModRev {
                key: b"x".to_vec(),
                rev: 0
            }]
        );
        let mut v = View::new(&reads, false, Timestamp::default());
        assert!(matches!(v.get_expect_absent(b"x"), Err(Step::Miss(_))));
    }

    #[test]
    fn repeated_writes_fold_to_the_last() {
        let w = vec![
            Write::Put {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                lease: 0,
            },
            Write::Put {
                key: b"b".to_vec(),
                value: b"1".to_vec(),
                lease: 0,
            },
            Write::Put {
                key: b"a".to_vec(),
                value: b"2".to_vec(),
                lease: 0,
            },
            Write::Delete { key: b"c".to_vec() },
            Write::DeleteRange {
                start: b"c".to_vec(),
                end: b"d".to_vec(),
            },
            Write::Delete {
                key: b"c1".to_vec(),
            },
        ];
        let f = fold_writes(&w);
        assert_eq!(
            f,
            vec![
                Write::Put {
                    key: b"b".to_vec(),
                    value: b"1".to_vec(),
                    lease: 0
                },
                Write::Put {
                    key: b"a".to_vec(),
                    value: b"2".to_vec(),
                    lease: 0
                },
                Write::DeleteRange {
                    start: b"c".to_vec(),
                    end: b"d".to_vec()
                },
            ]
        );
    }

    #[test]
    fn range_emptiness_sees_the_overlay() {
        let mut reads = ReadSet::default();
        reads.ranges.insert((b"d/".to_vec(), b"d0".to_vec()), true);
        let mut v = View::new(&reads, false, Timestamp::default());
        assert!(v.range_empty(b"d/", b"d0").unwrap());
        v.put(b"d/x".to_vec(), vec![]);
        assert!(!v.range_empty(b"d/", b"d0").unwrap());
    }
}
