//! Buffered writes of one file, as pending slices.
//!
//! A slice keeps its bytes block by block ([`SliceBuf`]): block `i` holds slice bytes
//! `[i × block size, (i + 1) × block size)`, the blocks it is uploaded as, each in an
//! aligned buffer with room for its sealed tail (`cache::blockbuf`). A flush then seals
//! the blocks where they are instead of copying them again.

use std::sync::Arc;

use bytes::Bytes;

use crate::cache::blockbuf::{BlockBuf, BufPool};

/// A slice shorter than this starts in a small buffer of its own (grown by doubling), not
/// in a block-sized one from the pool: a small file holds little memory while open.
const SMALL_START: usize = 64 << 10;

/// `(block, offset in it, length, offset in the range)` of each part of slice bytes
/// `[at, at + len)` with blocks of `bs` bytes (inside the slice, every block but the last
/// is full, so the cut depends on `bs` alone).
fn spans(bs: usize, at: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut done = 0;
    std::iter::from_fn(move || {
        (done < len).then(|| {
            let (p, d) = (at + done, done);
            let n = (bs - p % bs).min(len - d);
            done += n;
            (p / bs, p % bs, n, d)
        })
    })
}

/// The bytes of one pending slice, block by block.
#[derive(Debug, Default)]
pub struct SliceBuf {
    blocks: Vec<BlockBuf>,
    len: usize,
    /// Block size (the pool's buffer room).
    bs: usize,
}

impl SliceBuf {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `bytes` at the end.
    pub fn append(&mut self, bytes: &[u8], pool: &Arc<BufPool>) {
        self.bs = pool.room();
        let mut done = 0;
        while done < bytes.len() {
            let left = bytes.len() - done;
            match self.blocks.last_mut() {
                Some(b) if b.len() < self.bs && b.len() == b.room() => {
                    // A small first buffer that is full: move it to a bigger one.
                    let room = (b.room() * 2).max(b.len() + left).min(self.bs);
                    let mut bigger = if room == self.bs {
                        pool.take()
                    } else {
                        BlockBuf::with_room(room)
                    };
                    bigger.push(b.data());
                    *b = bigger;
                }
                Some(b) if b.len() < self.bs => {}
                _ => {
                    let first_and_small = self.blocks.is_empty() && left < SMALL_START;
                    self.blocks.push(if first_and_small {
                        BlockBuf::with_room(left.next_power_of_two().max(4096).min(self.bs))
                    } else {
                        pool.take()
                    });
                }
            }
            let last = self.blocks.last_mut().expect("a block to write to");
            done += last.push(&bytes[done..]);
        }
        self.len += bytes.len();
    }

    /// Overwrites `bytes` at `at`; `at + bytes.len()` must not pass the end.
    pub fn overwrite(&mut self, at: usize, bytes: &[u8]) {
        debug_assert!(at + bytes.len() <= self.len);
        for (i, from, n, done) in spans(self.bs, at, bytes.len()) {
            self.blocks[i].data_mut()[from..from + n].copy_from_slice(&bytes[done..done + n]);
        }
    }

    /// Copies bytes `[at, at + out.len())` into `out`.
    pub fn read(&self, at: usize, out: &mut [u8]) {
        debug_assert!(at + out.len() <= self.len);
        for (i, from, n, done) in spans(self.bs, at, out.len()) {
            out[done..done + n].copy_from_slice(&self.blocks[i].data()[from..from + n]);
        }
    }

    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let keep = len.div_ceil(self.bs.max(1));
        self.blocks.truncate(keep);
        if let Some(last) = self.blocks.last_mut() {
            last.truncate(len - (keep - 1) * self.bs);
        }
        self.len = len;
    }

    /// The buffers, block by block (every one full but the last).
    pub fn into_blocks(self) -> Vec<BlockBuf> {
        self.blocks
    }

    /// `(offset in the slice, bytes)` of each block.
    pub fn parts(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (i * self.bs, b.data()))
    }
}

/// A contiguous run of written bytes inside one chunk, not yet committed.
#[derive(Debug)]
pub struct PendingSlice {
    pub chunk: u32,
    /// Offset in the chunk where it starts.
    pub pos: u32,
    pub data: SliceBuf,
    /// Order of creation; later slices win over earlier ones.
    pub seq: u64,
}

impl PendingSlice {
    pub fn end(&self) -> u32 {
        self.pos + self.data.len() as u32
    }

    /// File offset of the first byte.
    pub fn file_offset(&self, chunk_size: u64) -> u64 {
        self.chunk as u64 * chunk_size + self.pos as u64
    }
}

/// The pending writes of one file.
#[derive(Debug, Default)]
pub struct WriteBuffer {
    pub slices: Vec<PendingSlice>,
    next_seq: u64,
    pub bytes: usize,
}

impl WriteBuffer {
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// End of the furthest pending byte (file offset), 0 if none.
    pub fn end(&self, chunk_size: u64) -> u64 {
        self.slices
            .iter()
            .map(|s| s.chunk as u64 * chunk_size + s.end() as u64)
            .max()
            .unwrap_or(0)
    }

    /// Buffers `data` at file offset `off`. Appends to the newest slice of the chunk when
    /// contiguous, overwrites in place when it falls inside the newest slice, otherwise
    /// opens a new slice. Block buffers come from `pool`. Returns the indices of slices
    /// that reached their chunk's end (ready to be flushed).
    pub fn write(
        &mut self,
        off: u64,
        data: &[u8],
        chunk_size: u64,
        pool: &Arc<BufPool>,
    ) -> Vec<usize> {
        let mut full = Vec::new();
        let mut done = 0usize;
        while done < data.len() {
            let at = off + done as u64;
            let chunk = (at / chunk_size) as u32;
            let pos = (at % chunk_size) as u32;
            let room = (chunk_size - pos as u64) as usize;
            let n = room.min(data.len() - done);
            let piece = &data[done..done + n];
            let newest = self
                .slices
                .iter_mut()
                .filter(|s| s.chunk == chunk)
                .max_by_key(|s| s.seq);
            match newest {
                Some(s) if s.end() == pos => s.data.append(piece, pool),
                Some(s) if pos >= s.pos && pos + n as u32 <= s.end() => {
                    s.data.overwrite((pos - s.pos) as usize, piece);
                    self.bytes -= n; // no growth
                }
                _ => {
                    let mut buf = SliceBuf::default();
                    buf.append(piece, pool);
                    self.next_seq += 1;
                    self.slices.push(PendingSlice {
                        chunk,
                        pos,
                        data: buf,
                        seq: self.next_seq,
                    });
                }
            }
            self.bytes += n;
            if let Some(i) = self
                .slices
                .iter()
                .position(|s| s.chunk == chunk && s.end() as u64 == chunk_size)
            {
                if !full.contains(&i) {
                    full.push(i);
                }
            }
            done += n;
        }
        full
    }

    /// Removes and returns every pending slice, oldest first.
    pub fn take_all(&mut self) -> Vec<PendingSlice> {
        self.bytes = 0;
        let mut v = std::mem::take(&mut self.slices);
        v.sort_by_key(|s| s.seq);
        v
    }

    /// Copies pending bytes over `buf`, which holds file bytes `[off, off + buf.len())`.
    pub fn overlay(&self, off: u64, buf: &mut [u8], chunk_size: u64) {
        for (at, data) in self.pieces(off, buf.len(), chunk_size) {
            let from = (at - off) as usize;
            buf[from..from + data.len()].copy_from_slice(&data);
        }
    }

    /// Copies of the pending bytes within `[off, off + len)` as `(file offset, bytes)`,
    /// oldest first (apply them in order): a snapshot that stays right after the buffer
    /// is flushed, unlike [`WriteBuffer::overlay`] applied later.
    pub fn pieces(&self, off: u64, len: usize, chunk_size: u64) -> Vec<(u64, Bytes)> {
        let mut order: Vec<&PendingSlice> = self.slices.iter().collect();
        order.sort_by_key(|s| s.seq);
        let end = off + len as u64;
        order
            .into_iter()
            .filter_map(|s| {
                let s_start = s.file_offset(chunk_size);
                let s_end = s_start + s.data.len() as u64;
                let (a, b) = (s_start.max(off), s_end.min(end));
                (a < b).then(|| {
                    let mut copy = vec![0u8; (b - a) as usize];
                    s.data.read((a - s_start) as usize, &mut copy);
                    (a, Bytes::from(copy))
                })
            })
            .collect()
    }

    /// Drops pending bytes at or beyond `size` (truncate).
    pub fn truncate(&mut self, size: u64, chunk_size: u64) {
        self.slices.retain_mut(|s| {
            let start = s.file_offset(chunk_size);
            if start >= size {
                return false;
            }
            let keep = (size - start).min(s.data.len() as u64) as usize;
            s.data.truncate(keep);
            true
        });
        self.bytes = self.slices.iter().map(|s| s.data.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Buffered writes read back exactly as a plain byte array would.
        #[test]
        fn overlay_matches_a_byte_array(ops in proptest::collection::vec((0u64..600, proptest::collection::vec(any::<u8>(), 1..200)), 1..40)) {
            let chunk_size = 256u64;
            let mut wb = WriteBuffer::default();
            let pool = BufPool::new(48, 4);
            let mut model = vec![0u8; 1024];
            let mut written = vec![false; 1024];
            for (off, data) in &ops {
                wb.write(*off, data, chunk_size, &pool);
                model[*off as usize..*off as usize + data.len()].copy_from_slice(data);
                for w in &mut written[*off as usize..*off as usize + data.len()] { *w = true; }
            }
            let mut buf = vec![0u8; 1024];
            wb.overlay(0, &mut buf, chunk_size);
            prop_assert_eq!(&buf, &model);
            // The snapshot form gives the same bytes, also for a window.
            let mut snap = vec![0u8; 1024];
            for (at, data) in wb.pieces(0, 1024, chunk_size) {
                snap[at as usize..at as usize + data.len()].copy_from_slice(&data);
            }
            prop_assert_eq!(&snap, &model);
            let mut window = vec![0u8; 600];
            for (at, data) in wb.pieces(100, 600, chunk_size) {
                prop_assert!(at >= 100 && at as usize + data.len() <= 700);
                window[at as usize - 100..at as usize - 100 + data.len()].copy_from_slice(&data);
            }
            prop_assert_eq!(&window[..], &model[100..700]);
            prop_assert!(wb.slices.iter().all(|s| s.end() as u64 <= chunk_size));
            let end = written.iter().rposition(|w| *w).map(|p| p as u64 + 1).unwrap_or(0);
            prop_assert_eq!(wb.end(chunk_size), end);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(Vec<u8>),
        Overwrite(usize, Vec<u8>),
        Truncate(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let bytes = || proptest::collection::vec(any::<u8>(), 1..300);
        prop_oneof![
            3 => bytes().prop_map(Op::Append),
            1 => (any::<usize>(), bytes()).prop_map(|(at, b)| Op::Overwrite(at, b)),
            1 => any::<usize>().prop_map(Op::Truncate),
        ]
    }

    proptest! {
        /// A slice buffer holds what a plain byte vector would, cut into full blocks (all
        /// but the last), whatever mix of appends, overwrites and truncates built it.
        #[test]
        fn slice_buffers_match_a_byte_vector(bs in 1usize..200, ops in proptest::collection::vec(op(), 1..40)) {
            let pool = BufPool::new(bs, 2);
            let mut sb = SliceBuf::default();
            let mut model: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Append(b) => { sb.append(&b, &pool); model.extend_from_slice(&b); }
                    Op::Overwrite(at, b) if !model.is_empty() => {
                        let at = at % model.len();
                        let n = b.len().min(model.len() - at);
                        sb.overwrite(at, &b[..n]);
                        model[at..at + n].copy_from_slice(&b[..n]);
                    }
                    Op::Overwrite(..) => {}
                    Op::Truncate(n) => { let n = n % (model.len() + 1); sb.truncate(n); model.truncate(n); }
                }
                prop_assert_eq!(sb.len(), model.len());
            }
            let mut all = vec![0u8; model.len()];
            sb.read(0, &mut all);
            prop_assert_eq!(&all, &model);
            let mut joined = Vec::new();
            for (at, part) in sb.parts() {
                prop_assert_eq!(at, joined.len());
                joined.extend_from_slice(part);
            }
            prop_assert_eq!(&joined, &model);
            let blocks = sb.into_blocks();
            let n = blocks.len();
            for (i, b) in blocks.iter().enumerate() {
                prop_assert!(!b.is_empty());
                prop_assert!(i + 1 == n || b.len() == bs, "block {} of {} holds {} of {}", i, n, b.len(), bs);
            }
        }
    }

    #[test]
    fn sequential_writes_make_one_slice_per_chunk() {
        let mut wb = WriteBuffer::default();
        let pool = BufPool::new(64, 4);
        let mut full = Vec::new();
        for i in 0..8u64 {
            full.extend(wb.write(i * 100, &[1u8; 100], 400, &pool));
        }
        assert_eq!(wb.slices.len(), 2);
        assert_eq!(full.len(), 2);
    }

    #[test]
    fn truncate_drops_the_tail() {
        let mut wb = WriteBuffer::default();
        let pool = BufPool::new(64, 4);
        wb.write(0, &[7u8; 300], 1000, &pool);
        wb.truncate(100, 1000);
        assert_eq!(wb.end(1000), 100);
        wb.truncate(0, 1000);
        assert!(wb.is_empty());
    }
}
