//! File data on one worker: write buffers that become slices, the read path that
//! resolves chunk maps into block reads, and the in-memory block cache.
//!
//! Writes are buffered per open inode as *pending slices* (contiguous runs within one
//! chunk). A pending slice is uploaded as blocks and committed to etcd on flush, fsync,
//! close, when it reaches the end of its chunk, or when the file's buffer exceeds its
//! budget. Reads see committed data overlaid with pending slices, newest last, so a
//! reader on this client never needs a flush.

pub mod blockcache;
pub mod pending;

pub use blockcache::{BlockCache, FetchError};
pub use pending::{PendingSlice, WriteBuffer};
