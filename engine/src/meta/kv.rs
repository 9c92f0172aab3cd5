//! The metadata store edge: a small transactional key-value trait with etcd's model
//! (revisions, compare-then-write transactions, range scans, leases).
//!
//! `EtcdKv` (etcd.rs) is the real implementation. `MemKv` backs unit tests of pure logic
//! only; `FaultyKv` wraps any store to inject failures and ambiguous commits.

use async_trait::async_trait;
use std::fmt;

/// A key with its value and the revision of its last modification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_rev: i64,
}

/// A transaction guard. `mod_rev == 0` means "the key does not exist".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// The key's last modification is exactly `rev` (0: absent).
    ModRev { key: Vec<u8>, rev: i64 },
    /// No key exists in `[start, end)`.
    RangeEmpty { start: Vec<u8>, end: Vec<u8> },
}

/// A transaction write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    Delete {
        key: Vec<u8>,
    },
    DeleteRange {
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

impl Write {
    pub fn key(&self) -> &[u8] {
        match self {
            Write::Put { key, .. } | Write::Delete { key } => key,
            Write::DeleteRange { start, .. } => start,
        }
    }

    /// Bytes this write adds to a request (key, value and a little framing).
    pub fn wire_bytes(&self) -> usize {
        16 + match self {
            Write::Put { key, value, .. } => key.len() + value.len(),
            Write::Delete { key } => key.len(),
            Write::DeleteRange { start, end } => start.len() + end.len(),
        }
    }
}

impl Cmp {
    pub fn wire_bytes(&self) -> usize {
        16 + match self {
            Cmp::ModRev { key, .. } => key.len(),
            Cmp::RangeEmpty { start, end } => start.len() + end.len(),
        }
    }
}

/// One transaction: if every compare holds, apply every write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnRequest {
    pub compares: Vec<Cmp>,
    pub writes: Vec<Write>,
}

impl TxnRequest {
    pub fn wire_bytes(&self) -> usize {
        self.compares.iter().map(Cmp::wire_bytes).sum::<usize>()
            + self.writes.iter().map(Write::wire_bytes).sum::<usize>()
    }
}

/// Outcome of a transaction that reached the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnOutcome {
    pub succeeded: bool,
    /// Store revision after the transaction (the mod revision of every key it wrote).
    pub revision: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// No member answered (connection refused, no leader, timeouts while connecting).
    #[error("etcd unavailable at {endpoints}: {reason}")]
    Unavailable { endpoints: String, reason: String },
    /// The request may or may not have been applied (the connection broke after sending).
    #[error("etcd request outcome unknown at {endpoints}: {reason}")]
    Ambiguous { endpoints: String, reason: String },
    #[error("etcd request timed out after {after:?} at {endpoints}")]
    Timeout {
        endpoints: String,
        after: std::time::Duration,
    },
    /// etcd's space quota alarm is raised; nothing can be written until it is fixed.
    #[error("etcd is out of space (alarm NOSPACE): compact and defragment etcd, or raise --quota-backend-bytes, then disarm the alarm (etcdctl alarm disarm)")]
    NoSpace,
    /// A request exceeded etcd's limits (ops per txn or request size): a planner bug.
    #[error("etcd rejected the request as too large: {0}")]
    TooLarge(String),
    #[error("etcd authentication failed: {0}")]
    Auth(String),
    #[error("etcd error: {0}")]
    Other(String),
}

impl KvError {
    /// Worth retrying the same request (for reads), or re-running the operation.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            KvError::Unavailable { .. } | KvError::Ambiguous { .. } | KvError::Timeout { .. }
        )
    }
}

/// Transactional key-value store with etcd semantics.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// Reads several keys at one revision. Returns the values (None: absent) in order
    /// and the revision the reads were served at.
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<(Vec<Option<KeyValue>>, i64), KvError>;

    /// Keys in `[start, end)` in order, at most `limit` (0: no limit); the flag says more exist.
    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, bool), KvError>;

    async fn txn(&self, txn: &TxnRequest) -> Result<TxnOutcome, KvError>;

    /// Grants a lease of `ttl_secs`; returns its id.
    async fn lease_grant(&self, ttl_secs: i64) -> Result<i64, KvError>;
    /// Refreshes a lease once; returns the remaining TTL (≤ 0: expired).
    async fn lease_keep_alive(&self, lease: i64) -> Result<i64, KvError>;
    async fn lease_revoke(&self, lease: i64) -> Result<(), KvError>;

    /// Where this store is, for error messages.
    fn describe(&self) -> String;
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cmp::ModRev { key, rev } => {
                write!(f, "mod_rev({}) == {rev}", String::from_utf8_lossy(key))
            }
            Cmp::RangeEmpty { start, end } => {
                write!(
                    f,
                    "empty[{}, {})",
                    String::from_utf8_lossy(start),
                    String::from_utf8_lossy(end)
                )
            }
        }
    }
}
