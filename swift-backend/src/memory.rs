//! [`MemoryStore`]: an in-memory [`ObjectStore`] for unit tests of pure logic.
//!
//! It follows the trait's semantics exactly (ranges, missing keys, sorted listing) so that
//! a test passing on it means something for Swift. One deliberate difference: a second
//! `put` of *different* bytes under an existing key is an error, because blocks are
//! write-once and such a put is a bug in the caller that Swift would silently accept.

use std::collections::BTreeMap;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::{Result, SwiftError};
use crate::store::{slice_range, ObjectStore};

/// In-memory block store (a sorted map behind a mutex).
#[derive(Debug, Default)]
pub struct MemoryStore {
    objects: Mutex<BTreeMap<String, Bytes>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.objects.lock().len()
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.objects.lock().is_empty()
    }

    /// All keys, sorted (for assertions).
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().keys().cloned().collect()
    }
}

fn not_found(key: &str) -> SwiftError {
    SwiftError::NotFound {
        container: "memory".into(),
        object: Some(key.to_string()),
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        if key.is_empty() {
            return Err(SwiftError::Config("empty key".into()));
        }
        let mut objects = self.objects.lock();
        match objects.get(key) {
            Some(old) if *old != data => Err(SwiftError::Config(format!(
                "write-once violation: {key} rewritten with different bytes"
            ))),
            Some(_) => Ok(()),
            None => {
                objects.insert(key.to_string(), data);
                Ok(())
            }
        }
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        let data = self
            .objects
            .lock()
            .get(key)
            .cloned()
            .ok_or_else(|| not_found(key))?;
        slice_range(key, &data, range)
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.objects.lock().get(key).map(|d| d.len() as u64))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut objects = self.objects.lock();
        for k in keys {
            objects.remove(k);
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .objects
            .lock()
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn semantics() {
        let s = MemoryStore::new();
        s.put("b/1", Bytes::from_static(b"hello")).await.unwrap();
        s.put("b/2", Bytes::from_static(b"")).await.unwrap();
        s.put("c", Bytes::from_static(b"x")).await.unwrap();
        // Idempotent retry is fine, a different value is not.
        s.put("b/1", Bytes::from_static(b"hello")).await.unwrap();
        assert!(s.put("b/1", Bytes::from_static(b"HELLO")).await.is_err());

        assert_eq!(s.get("b/1", None).await.unwrap(), "hello");
        assert_eq!(s.get("b/1", Some(0..1)).await.unwrap(), "h");
        assert_eq!(s.get("b/1", Some(4..5)).await.unwrap(), "o");
        assert_eq!(s.get("b/1", Some(3..100)).await.unwrap(), "lo");
        assert_eq!(s.get("b/1", Some(2..2)).await.unwrap(), "");
        assert!(matches!(
            s.get("b/1", Some(5..6)).await,
            Err(SwiftError::RangeNotSatisfiable { len: Some(5), .. })
        ));
        assert!(s.get("nope", None).await.unwrap_err().is_not_found());

        assert_eq!(s.head("b/1").await.unwrap(), Some(5));
        assert_eq!(s.head("nope").await.unwrap(), None);
        assert_eq!(
            s.list("b/").await.unwrap(),
            vec![("b/1".to_string(), 5), ("b/2".to_string(), 0)]
        );
        s.delete_many(&["b/1".into(), "missing".into()])
            .await
            .unwrap();
        assert_eq!(s.keys(), vec!["b/2".to_string(), "c".to_string()]);
    }
}
