//! One error type for everything the object-store edge can report.
//!
//! Each variant names *what* failed and *where* (container, object, URL, user), in one
//! line, because these messages end up in the FUSE daemon's log next to an `EIO` and are
//! the only clue an operator gets. The retry loop in [`crate::client`] and callers above
//! it decide what to do from [`SwiftError::is_retryable`]; the engine maps
//! [`SwiftError::is_not_found`] to `ENOENT`-like handling.

use std::time::Duration;

/// A boxed error, as hyper and user-supplied body streams produce.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A shared error source: `Arc` rather than `Box` so that [`SwiftError`] is `Clone` (one
/// failed token refresh is reported to every request that waited for it; a
/// `FaultyStore` hands out copies of the error it injects).
pub type SharedError = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Convenience alias used across the crate.
pub type Result<T, E = SwiftError> = std::result::Result<T, E>;

/// Everything that can go wrong talking to Swift (or to a test store).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SwiftError {
    /// 404 on an object or container. `object` is `None` for container operations.
    #[error("not found: container {container:?}{}", fmt_obj(.object))]
    NotFound {
        container: String,
        object: Option<String>,
    },

    /// 401 from Swift even after one re-authentication.
    #[error("unauthorized (401) on {method} {url} even after re-authenticating")]
    Unauthorized { method: String, url: String },

    /// 403: the token is valid but has no access (e.g. a token for another project).
    #[error("forbidden (403) on {method} {url}")]
    Forbidden { method: String, url: String },

    /// 429 or 498 (Swift's rate limiter) after all retries.
    #[error("throttled ({status}) on {method} {url} after {attempts} attempts")]
    Throttled {
        status: u16,
        method: String,
        url: String,
        attempts: u32,
    },

    /// The request did not complete within the configured request timeout.
    #[error("timeout: {op} did not complete within {after:?}")]
    Timeout { op: String, after: Duration },

    /// Data did not match its checksum: a 422 from Swift on a PUT whose `ETag` we sent, or
    /// a body whose md5 differs from the `ETag` Swift returned.
    #[error("checksum mismatch for {object}: expected md5 {expected}, got {actual}")]
    Corrupt {
        object: String,
        expected: String,
        actual: String,
    },

    /// Any other unexpected HTTP status.
    #[error("HTTP {status} on {method} {url}: {body_snippet}")]
    Http {
        status: u16,
        method: String,
        url: String,
        body_snippet: String,
    },

    /// TCP connect failed (refused, unreachable, connect timeout).
    #[error("cannot connect to {endpoint}: {}", chain(.source.as_ref()))]
    Connect {
        endpoint: String,
        #[source]
        source: SharedError,
    },

    /// Authentication failed or its answer was unusable (missing header, no endpoint).
    #[error("Swift auth failed for user {user} at URL {url}: {reason}")]
    Auth {
        user: String,
        url: String,
        reason: String,
    },

    /// The configuration (or an argument) is invalid; never retried.
    #[error("invalid Swift configuration: {0}")]
    Config(String),

    /// A range starting at or beyond the end of the object (HTTP 416).
    #[error(
        "range {start}..{end} not satisfiable for {container}/{object} (object length {len:?})"
    )]
    RangeNotSatisfiable {
        container: String,
        object: String,
        start: u64,
        end: u64,
        /// Object length when the server told us (`Content-Range: bytes */LEN`).
        len: Option<u64>,
    },

    /// A transport error after the connection was established (reset, closed early,
    /// truncated body), or a body stream supplied by the caller failed.
    #[error("I/O error during {context}: {}", chain(.source.as_ref()))]
    Io {
        context: String,
        #[source]
        source: SharedError,
    },
}

fn fmt_obj(o: &Option<String>) -> String {
    match o {
        Some(o) => format!(" object {o:?}"),
        None => String::new(),
    }
}

/// Formats an error and its source chain on one line: hyper's top-level messages
/// ("client error (Connect)") say little without the chain ("Connection refused").
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let cs = c.to_string();
        if !s.contains(&cs) {
            s.push_str(": ");
            s.push_str(&cs);
        }
        cur = c.source();
    }
    s
}

impl SwiftError {
    /// Whether repeating the same request may succeed: transport failures, timeouts,
    /// throttling and server-side (5xx, 408) errors. Client errors (4xx), checksum
    /// mismatches and configuration errors are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            SwiftError::Connect { .. }
            | SwiftError::Timeout { .. }
            | SwiftError::Throttled { .. }
            | SwiftError::Io { .. } => true,
            SwiftError::Http { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }

    /// True for a 404 on the object or container.
    pub fn is_not_found(&self) -> bool {
        matches!(self, SwiftError::NotFound { .. })
    }

    /// The HTTP status behind this error, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            SwiftError::NotFound { .. } => Some(404),
            SwiftError::Unauthorized { .. } => Some(401),
            SwiftError::Forbidden { .. } => Some(403),
            SwiftError::Throttled { status, .. } | SwiftError::Http { status, .. } => Some(*status),
            SwiftError::RangeNotSatisfiable { .. } => Some(416),
            _ => None,
        }
    }
}

/// Statuses worth retrying: every 5xx, 408 (request timeout), 429 (too many requests)
/// and 498 (Swift's ratelimit middleware).
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 498) || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classification() {
        let http = |status| SwiftError::Http {
            status,
            method: "GET".into(),
            url: "u".into(),
            body_snippet: String::new(),
        };
        for s in [500, 502, 503, 504, 408, 429, 498] {
            assert!(http(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 411, 416, 422] {
            assert!(!http(s).is_retryable(), "{s}");
        }
        let nf = SwiftError::NotFound {
            container: "c".into(),
            object: Some("o".into()),
        };
        assert!(nf.is_not_found() && !nf.is_retryable());
        assert_eq!(nf.to_string(), "not found: container \"c\" object \"o\"");
    }

    #[test]
    fn messages_are_one_line() {
        let e = SwiftError::Auth {
            user: "test:tester".into(),
            url: "http://h/auth/v1.0".into(),
            reason: "401 Unauthorized".into(),
        };
        assert_eq!(
            e.to_string(),
            "Swift auth failed for user test:tester at URL http://h/auth/v1.0: 401 Unauthorized"
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = SwiftError::Connect {
            endpoint: "127.0.0.1:1".into(),
            source: std::sync::Arc::new(io),
        };
        assert_eq!(e.to_string(), "cannot connect to 127.0.0.1:1: refused");
        assert!(!e.to_string().contains('\n'));
    }
}
