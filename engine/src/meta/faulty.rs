//! A fault-injecting `KvStore` wrapper for tests: fails chosen calls, or applies a
//! transaction and then reports an ambiguous error (the reply was "lost"), which is the
//! case the operation runner must resolve without applying an operation twice.

use super::kv::*;
use async_trait::async_trait;
use parking_lot::Mutex;

/// What to do to the next transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnFault {
    /// Fail before sending: nothing applied.
    Unavailable,
    /// Apply, then report `Ambiguous`.
    LoseReply,
}

pub struct FaultyKv<S> {
    inner: S,
    faults: Mutex<Vec<TxnFault>>,
    reads_failing: Mutex<u32>,
}

impl<S: KvStore> FaultyKv<S> {
    pub fn new(inner: S) -> Self {
        FaultyKv {
            inner,
            faults: Mutex::new(Vec::new()),
            reads_failing: Mutex::new(0),
        }
    }

    /// The next transactions suffer these faults, in order.
    pub fn inject_txn_faults(&self, faults: &[TxnFault]) {
        let mut f = self.faults.lock();
        f.extend(faults.iter().rev());
    }

    /// The next `n` reads fail as unavailable.
    pub fn fail_reads(&self, n: u32) {
        *self.reads_failing.lock() = n;
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn unavailable(&self) -> KvError {
        KvError::Unavailable {
            endpoints: self.describe(),
            reason: "injected fault".into(),
        }
    }

    fn read_fault(&self) -> Option<KvError> {
        let mut n = self.reads_failing.lock();
        if *n > 0 {
            *n -= 1;
            return Some(self.unavailable());
        }
        None
    }
}

#[async_trait]
impl<S: KvStore> KvStore for FaultyKv<S> {
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<(Vec<Option<KeyValue>>, i64), KvError> {
        if let Some(e) = self.read_fault() {
            return Err(e);
        }
        self.inner.get_many(keys).await
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, bool), KvError> {
        if let Some(e) = self.read_fault() {
            return Err(e);
        }
        self.inner.range(start, end, limit).await
    }

    async fn txn(&self, txn: &TxnRequest) -> Result<TxnOutcome, KvError> {
        let fault = self.faults.lock().pop();
        match fault {
            None => self.inner.txn(txn).await,
            Some(TxnFault::Unavailable) => Err(self.unavailable()),
            Some(TxnFault::LoseReply) => {
                self.inner.txn(txn).await?;
                Err(KvError::Ambiguous {
                    endpoints: self.describe(),
                    reason: "injected lost reply".into(),
                })
            }
        }
    }

    async fn lease_grant(&self, ttl: i64) -> Result<i64, KvError> {
        self.inner.lease_grant(ttl).await
    }

    async fn lease_keep_alive(&self, lease: i64) -> Result<i64, KvError> {
        self.inner.lease_keep_alive(lease).await
    }

    async fn lease_revoke(&self, lease: i64) -> Result<(), KvError> {
        self.inner.lease_revoke(lease).await
    }

    fn describe(&self) -> String {
        format!("faulty({})", self.inner.describe())
    }
}
