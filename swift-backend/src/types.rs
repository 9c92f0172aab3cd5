//! Plain data returned by and passed to [`crate::SwiftClient`].

/// Result of a successful PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutInfo {
    /// The ETag Swift returned (md5 hex of the body for plain objects; for an SLO manifest
    /// Swift's md5 of the concatenated segment ETags), without quotes.
    pub etag: String,
}

/// Result of a HEAD on an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Content length in bytes (for an SLO, the size of the whole assembled object).
    pub len: u64,
    /// ETag without quotes.
    pub etag: String,
    /// `Last-Modified` as Swift sent it (HTTP date).
    pub last_modified: Option<String>,
    /// True for a static large object manifest.
    pub is_slo: bool,
    /// The body's CRC-32 (8 hex digits) stored by the uploader, if any (see
    /// [`crate::client::CRC_HEADER`]).
    pub crc32: Option<String>,
}

/// Result of a HEAD on a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerMeta {
    /// `X-Container-Object-Count` (eventually consistent in Swift).
    pub object_count: u64,
    /// `X-Container-Bytes-Used` (eventually consistent in Swift).
    pub bytes_used: u64,
}

/// Options of a container listing (`GET /container?format=json&...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Roll names up to the first occurrence of this after the prefix into
    /// [`ListEntry::Subdir`] entries (e.g. `/` for directory-like listings).
    pub delimiter: Option<char>,
    /// Only names strictly greater than this (the `next_marker` of the previous page).
    pub marker: Option<String>,
    /// Page size; Swift caps it at its `container_listing_limit` (10,000 by default).
    pub limit: Option<u32>,
}

/// One entry of a container listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    /// An object.
    Object {
        name: String,
        bytes: u64,
        /// md5 hex (for an SLO manifest: the manifest's own hash).
        etag: String,
    },
    /// A rolled-up prefix when a delimiter was given (ends with the delimiter).
    Subdir(String),
}

impl ListEntry {
    /// The object name or subdir prefix; also what a listing marker compares against.
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object { name, .. } => name,
            ListEntry::Subdir(p) => p,
        }
    }
}

/// One page of a container listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub entries: Vec<ListEntry>,
    /// Marker for the next page, `None` when this page was the last one. A page is
    /// considered full (and so possibly followed by another) when it holds as many entries
    /// as were asked for.
    pub next_marker: Option<String>,
}

/// Outcome of a bulk delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkDeleteReport {
    /// Objects deleted.
    pub deleted: u64,
    /// Objects that did not exist (not an error for our callers).
    pub not_found: u64,
    /// Objects Swift failed to delete: `(url-encoded /container/object path, status)`.
    pub errors: Vec<(String, String)>,
}

/// One segment of a static large object manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloSegment {
    /// Container holding the segment.
    pub container: String,
    /// Segment object name.
    pub object: String,
    /// md5 hex of the segment; Swift checks it when set.
    pub etag: Option<String>,
    /// Size in bytes; Swift checks it when set.
    pub size_bytes: Option<u64>,
}
