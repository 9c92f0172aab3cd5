//! Percent-encoding of container names, object names and query values.
//!
//! Swift object names are arbitrary UTF-8 (up to 1024 bytes) and may contain `/`, spaces,
//! `%`, `?`, `#`; Swift percent-decodes the request path once. So we encode every byte
//! outside RFC 3986's unreserved set (`A-Z a-z 0-9 - . _ ~`), keeping `/` literal in object
//! names only (it is part of the name and Swift splits the path at most into
//! account/container/object). Query values encode `/` too. Written by hand (a dozen lines)
//! rather than pulling a crate whose encode sets are easy to pick wrong.

use crate::error::SwiftError;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 4);
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
    }
    out
}

/// Encodes an object name for the URL path (keeps `/`).
pub fn encode_object(name: &str) -> String {
    encode(name, true)
}

/// Encodes a container name for the URL path (a `/` is rejected earlier by
/// [`check_container`], so encoding it is moot but safe).
pub fn encode_container(name: &str) -> String {
    encode(name, false)
}

/// Encodes a query-string value (encodes `/`, `&`, `=`, `+`, ...).
pub fn encode_query(value: &str) -> String {
    encode(value, false)
}

/// Rejects container names Swift cannot address: empty or containing `/`.
pub(crate) fn check_container(name: &str) -> Result<(), SwiftError> {
    if name.is_empty() || name.contains('/') {
        return Err(SwiftError::Config(format!(
            "container name {name:?} must be non-empty and contain no '/'"
        )));
    }
    Ok(())
}

/// Rejects empty object names (the URL would address the container instead).
pub(crate) fn check_object(container: &str, name: &str) -> Result<(), SwiftError> {
    check_container(container)?;
    if name.is_empty() {
        return Err(SwiftError::Config(format!(
            "empty object name in container {container:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_odd_names() {
        assert_eq!(encode_object("a b/c%d?e#f"), "a%20b/c%25d%3Fe%23f");
        assert_eq!(encode_object("é"), "%C3%A9");
        assert_eq!(encode_object("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(encode_query("a/b&c=d+e"), "a%2Fb%26c%3Dd%2Be");
        assert_eq!(encode_container("x y"), "x%20y");
    }

    #[test]
    fn rejects_unaddressable_names() {
        assert!(check_container("").is_err());
        assert!(check_container("a/b").is_err());
        assert!(check_object("c", "").is_err());
        assert!(check_object("c", "o/p").is_ok());
    }
}
