//! [`ObjectStore`]: the narrow block-store interface the engine programs against, and its
//! Swift implementation.
//!
//! The engine writes file data as immutable block objects and never rewrites one, so five
//! operations suffice. Keeping the trait this small is what makes [`crate::MemoryStore`]
//! and [`crate::FaultyStore`] cheap to keep faithful.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use crate::client::SwiftClient;
use crate::error::{Result, SwiftError};
use crate::types::ListEntry;

/// A flat key → bytes store of write-once blocks.
///
/// Semantics every implementation follows (and the tests of callers rely on):
/// * `put` stores the whole value; keys are written once (a repeated `put` of the same
///   bytes, as a retry does, is harmless);
/// * `get` with a range follows [`SwiftClient::get_range`]: a range past the end is
///   truncated, a non-empty range starting at or past the end is
///   [`SwiftError::RangeNotSatisfiable`], an empty range is empty; a missing key is
///   [`SwiftError::NotFound`];
/// * `head` is `None` for a missing key;
/// * `delete_many` ignores missing keys;
/// * `list` returns `(key, len)` sorted by key.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores a block.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// Reads a block or a byte range of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes>;
    /// Length of a block, `None` when absent.
    async fn head(&self, key: &str) -> Result<Option<u64>>;
    /// Deletes blocks; absent ones are fine.
    async fn delete_many(&self, keys: &[String]) -> Result<()>;
    /// Keys starting with `prefix`, with their lengths, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>>;
}

/// [`ObjectStore`] on one Swift container; keys are object names. Puts are md5-verified.
#[derive(Clone, Debug)]
pub struct SwiftStore {
    client: SwiftClient,
    container: String,
}

impl SwiftStore {
    /// A store over `container` (which must exist; see [`SwiftClient::create_container`]).
    pub fn new(client: SwiftClient, container: impl Into<String>) -> Self {
        SwiftStore {
            client,
            container: container.into(),
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &SwiftClient {
        &self.client
    }

    /// The container holding the blocks.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The same store on a [`SwiftClient::fork`] (own pool, for another runtime).
    pub fn fork(&self) -> SwiftStore {
        SwiftStore {
            client: self.client.fork(),
            container: self.container.clone(),
        }
    }
}

#[async_trait]
impl ObjectStore for SwiftStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.client
            .put_object(&self.container, key, data, true)
            .await
            .map(|_| ())
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes> {
        match range {
            None => self.client.get_object(&self.container, key).await,
            Some(r) => self.client.get_range(&self.container, key, r).await,
        }
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        match self.client.head_object(&self.container, key).await {
            Ok(m) => Ok(Some(m.len)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let report = self.client.bulk_delete(&self.container, keys).await?;
        if let Some((name, status)) = report.errors.first() {
            return Err(SwiftError::Http {
                status: status
                    .split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(500),
                method: "POST".into(),
                url: format!(
                    "?bulk-delete ({} of {} failed)",
                    report.errors.len(),
                    keys.len()
                ),
                body_snippet: format!("first failure: {name}: {status}"),
            });
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let entries = self
            .client
            .list_all(&self.container, Some(prefix), None)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| match e {
                ListEntry::Object { name, bytes, .. } => Some((name, bytes)),
                ListEntry::Subdir(_) => None,
            })
            .collect())
    }
}

/// Cuts `range` out of a whole value with [`ObjectStore::get`] semantics; shared by the
/// in-memory store and tests.
pub(crate) fn slice_range(key: &str, data: &Bytes, range: Option<Range<u64>>) -> Result<Bytes> {
    let Some(r) = range else {
        return Ok(data.clone());
    };
    if r.start > r.end {
        return Err(SwiftError::Config(format!(
            "inverted range {}..{} for {key}",
            r.start, r.end
        )));
    }
    if r.is_empty() {
        return Ok(Bytes::new());
    }
    let len = data.len() as u64;
    if r.start >= len {
        return Err(SwiftError::RangeNotSatisfiable {
            container: String::new(),
            object: key.to_string(),
            start: r.start,
            end: r.end,
            len: Some(len),
        });
    }
    Ok(data.slice(r.start as usize..r.end.min(len) as usize))
}
