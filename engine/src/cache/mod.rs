//! The local SSD side of the data path.
//!
//! * [`staging`]: write-back. With `cache.writeback = true`, a flushed block is written
//!   and fdatasync'd under `cache.dir/<volume uuid>/staging/` BEFORE its slice is
//!   committed to etcd, and `fsync`/`close` return then; a background uploader sends
//!   staged blocks to Swift oldest first, with bounded concurrency and retries, and a
//!   mount after a crash uploads whatever is still staged.
//! * [`readcache`]: blocks read from Swift kept on local disk within `cache.size`, LRU.

pub mod blockbuf;
pub mod readcache;
pub mod sealed;
pub mod staging;

pub use readcache::ReadCache;
pub use staging::{seal, unseal, Staging, StagingOptions};
