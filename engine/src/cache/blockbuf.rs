//! 4 KiB-aligned block buffers with room for the sealed-file tail, recycled through a
//! pool.
//!
//! Written bytes are buffered block by block in these (see `data::pending`): behind each
//! block there is room for its padding, segment CRCs and trailer, so a block is sealed
//! in place and written with O_DIRECT without another copy. Recycling matters as much as
//! the copy: a fresh multi-MiB allocation is mapped on first touch, one page fault and
//! one page clear per 4 KiB, and unmapped on free; in a sequential write that was over
//! half of the worker's time.

use std::sync::Arc;

use bytes::Bytes;
use crossbeam::queue::ArrayQueue;

use super::sealed::{seal_in_place, sealed_len, ALIGN};

/// Idle buffers of one size, kept mapped for reuse. Bounded: beyond `max_idle` a
/// returned buffer is freed, so idle memory is at most `max_idle` blocks.
pub struct BufPool {
    idle: ArrayQueue<Vec<u8>>,
    room: usize,
}

impl BufPool {
    /// A pool of buffers holding up to `room` data bytes each (the block size).
    pub fn new(room: usize, max_idle: usize) -> Arc<Self> {
        Arc::new(BufPool {
            idle: ArrayQueue::new(max_idle.max(1)),
            room,
        })
    }

    /// Data bytes one buffer holds.
    pub fn room(&self) -> usize {
        self.room
    }

    fn raw_len(room: usize) -> usize {
        sealed_len(room) + ALIGN
    }

    /// An empty buffer of `room()` bytes, reused when one is idle.
    pub fn take(self: &Arc<Self>) -> BlockBuf {
        let raw = self
            .idle
            .pop()
            .unwrap_or_else(|| vec![0; Self::raw_len(self.room)]);
        BlockBuf::from_raw(raw, self.room, Some(self.clone()))
    }

    fn give_back(&self, raw: Vec<u8>) {
        if raw.len() == Self::raw_len(self.room) {
            let _ = self.idle.push(raw);
        }
    }

    /// Buffers waiting for reuse.
    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}

/// Up to `room` bytes of one block, at a 4 KiB-aligned address, followed by room for
/// its sealed tail.
pub struct BlockBuf {
    raw: Vec<u8>,
    /// Offset of the aligned start in `raw`.
    start: usize,
    len: usize,
    room: usize,
    pool: Option<Arc<BufPool>>,
}

impl std::fmt::Debug for BlockBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBuf")
            .field("len", &self.len)
            .field("room", &self.room)
            .field("pooled", &self.pool.is_some())
            .finish()
    }
}

impl BlockBuf {
    /// A buffer of its own (not pooled) for up to `room` bytes.
    pub fn with_room(room: usize) -> Self {
        Self::from_raw(vec![0; BufPool::raw_len(room)], room, None)
    }

    fn from_raw(raw: Vec<u8>, room: usize, pool: Option<Arc<BufPool>>) -> Self {
        let start = raw.as_ptr().align_offset(ALIGN);
        debug_assert!(start + sealed_len(room) <= raw.len());
        BlockBuf {
            raw,
            start,
            len: 0,
            room,
            pool,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Data bytes it can hold.
    pub fn room(&self) -> usize {
        self.room
    }

    pub fn data(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }

    /// Appends as much of `bytes` as fits; returns how many bytes that was.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.room - self.len);
        let at = self.start + self.len;
        self.raw[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Seals the block in place: `(file, body)`, the sealed file (aligned, for a staging
    /// or cache file) and the block bytes, sharing one buffer that goes back to its pool
    /// when both are dropped.
    pub fn seal(mut self) -> (Bytes, Bytes) {
        let (start, len) = (self.start, self.len);
        let total = sealed_len(len);
        seal_in_place(&mut self.raw[start..start + total], len);
        let file = Bytes::from_owner(Owned {
            buf: self,
            len: total,
        });
        let body = file.slice(..len);
        (file, body)
    }

    /// The block bytes as `Bytes`, without sealing (a block sent straight to Swift).
    pub fn freeze(self) -> Bytes {
        let len = self.len;
        Bytes::from_owner(Owned { buf: self, len })
    }
}

impl Drop for BlockBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.raw));
        }
    }
}

/// A block buffer as the owner behind a `Bytes`: its first `len` aligned bytes.
struct Owned {
    buf: BlockBuf,
    len: usize,
}

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.buf.raw[self.buf.start..self.buf.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::sealed::unseal;

    #[test]
    fn a_sealed_buffer_unseals_and_goes_back_to_its_pool() {
        let pool = BufPool::new(100_000, 2);
        let mut b = pool.take();
        assert_eq!(b.push(&[7u8; 60_000]), 60_000);
        assert_eq!(b.push(&[8u8; 60_000]), 40_000, "only what fits");
        let (file, body) = b.seal();
        assert_eq!(file.as_ptr() as usize % ALIGN, 0);
        assert_eq!(file.len(), sealed_len(100_000));
        assert_eq!(body.len(), 100_000);
        assert_eq!(&unseal(file.clone()).unwrap()[..], &body[..]);
        assert_eq!(pool.idle(), 0, "in use while a Bytes holds it");
        drop(file);
        assert_eq!(pool.idle(), 0);
        drop(body);
        assert_eq!(pool.idle(), 1, "back when the last Bytes is dropped");
    }

    #[test]
    fn a_reused_buffer_seals_a_shorter_block_with_zero_padding() {
        let pool = BufPool::new(10_000, 1);
        let mut b = pool.take();
        b.push(&[0xffu8; 10_000]);
        drop(b);
        let mut b = pool.take();
        assert!(b.is_empty(), "reused buffers start empty");
        b.push(b"short");
        let (file, _) = b.seal();
        // unseal rejects non-zero padding: the old bytes were cleared.
        assert_eq!(&unseal(file).unwrap()[..], b"short");
    }

    #[test]
    fn the_pool_keeps_at_most_max_idle_buffers() {
        let pool = BufPool::new(4096, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.take()).collect();
        drop(bufs);
        assert_eq!(pool.idle(), 2);
    }
}
