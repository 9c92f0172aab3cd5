//! An in-memory `KvStore` with etcd's revision semantics. For unit tests of pure logic
//! (planner, batcher, reference-model comparisons) only: features are tested on real etcd.

use super::kv::*;
use async_trait::async_trait;
use parking_lot::Mutex;
use std::collections::BTreeMap;

#[derive(Default)]
pub struct MemKv {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rev: i64,
    data: BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
    next_lease: i64,
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of transactions that were committed (a revision each).
    pub fn revision(&self) -> i64 {
        self.state.lock().rev
    }
}

fn in_range(k: &[u8], start: &[u8], end: &[u8]) -> bool {
    k >= start && (end == [0] || k < end)
}

#[async_trait]
impl KvStore for MemKv {
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<(Vec<Option<KeyValue>>, i64), KvError> {
        let s = self.state.lock();
        let out = keys
            .iter()
            .map(|k| {
                s.data.get(k).map(|(v, r)| KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    mod_rev: *r,
                })
            })
            .collect();
        Ok((out, s.rev))
    }

    async fn range(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, bool), KvError> {
        let s = self.state.lock();
        let mut out = Vec::new();
        for (k, (v, r)) in s.data.range(start.to_vec()..) {
            if !in_range(k, start, end) {
                break;
            }
            if limit > 0 && out.len() == limit {
                return Ok((out, true));
            }
            out.push(KeyValue {
                key: k.clone(),
                value: v.clone(),
                mod_rev: *r,
            });
        }
        Ok((out, false))
    }

    async fn txn(&self, txn: &TxnRequest) -> Result<TxnOutcome, KvError> {
        let mut s = self.state.lock();
        let ok = txn.compares.iter().all(|c| match c {
            Cmp::ModRev { key, rev } => s.data.get(key).map(|x| x.1).unwrap_or(0) == *rev,
            Cmp::RangeEmpty { start, end } => !s.data.keys().any(|k| in_range(k, start, end)),
        });
        if !ok {
            return Ok(TxnOutcome {
                succeeded: false,
                revision: s.rev,
            });
        }
        if !txn.writes.is_empty() {
            s.rev += 1;
        }
        let rev = s.rev;
        for w in &txn.writes {
            match w {
                Write::Put { key, value, .. } => {
                    s.data.insert(key.clone(), (value.clone(), rev));
                }
                Write::Delete { key } => {
                    s.data.remove(key);
                }
                Write::DeleteRange { start, end } => {
                    s.data.retain(|k, _| !in_range(k, start, end));
                }
            }
        }
        Ok(TxnOutcome {
            succeeded: true,
            revision: rev,
        })
    }

    async fn lease_grant(&self, _ttl: i64) -> Result<i64, KvError> {
        let mut s = self.state.lock();
        s.next_lease += 1;
        Ok(s.next_lease)
    }

    async fn lease_keep_alive(&self, _lease: i64) -> Result<i64, KvError> {
        Ok(60)
    }

    async fn lease_revoke(&self, _lease: i64) -> Result<(), KvError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
