//! Buffered writes of one file, as pending slices.

use bytes::{Bytes, BytesMut};

/// A contiguous run of written bytes inside one chunk, not yet committed.
#[derive(Debug)]
pub struct PendingSlice {
    pub chunk: u32,
    /// Offset in the chunk where it starts.
    pub pos: u32,
    pub data: BytesMut,
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
    /// opens a new slice. Returns the indices of slices that reached their chunk's end
    /// (ready to be flushed).
    pub fn write(&mut self, off: u64, data: &[u8], chunk_size: u64) -> Vec<usize> {
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
                Some(s) if s.end() == pos => s.data.extend_from_slice(piece),
                Some(s) if pos >= s.pos && pos + n as u32 <= s.end() => {
                    let from = (pos - s.pos) as usize;
                    s.data[from..from + n].copy_from_slice(piece);
                    self.bytes -= n; // no growth
                }
                _ => {
                    let mut buf = BytesMut::with_capacity(n.max(64 * 1024));
                    buf.extend_from_slice(piece);
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
        let mut order: Vec<&PendingSlice> = self.slices.iter().collect();
        order.sort_by_key(|s| s.seq);
        let end = off + buf.len() as u64;
        for s in order {
            let s_start = s.file_offset(chunk_size);
            let s_end = s_start + s.data.len() as u64;
            let (a, b) = (s_start.max(off), s_end.min(end));
            if a < b {
                buf[(a - off) as usize..(b - off) as usize]
                    .copy_from_slice(&s.data[(a - s_start) as usize..(b - s_start) as usize]);
            }
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
                    (
                        a,
                        Bytes::copy_from_slice(
                            &s.data[(a - s_start) as usize..(b - s_start) as usize],
                        ),
                    )
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

/// Freezes a pending slice's bytes for upload.
pub fn freeze(s: PendingSlice) -> (u32, u32, Bytes) {
    (s.chunk, s.pos, s.data.freeze())
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
            let mut model = vec![0u8; 1024];
            let mut written = vec![false; 1024];
            for (off, data) in &ops {
                wb.write(*off, data, chunk_size);
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

    #[test]
    fn sequential_writes_make_one_slice_per_chunk() {
        let mut wb = WriteBuffer::default();
        let mut full = Vec::new();
        for i in 0..8u64 {
            full.extend(wb.write(i * 100, &[1u8; 100], 400));
        }
        assert_eq!(wb.slices.len(), 2);
        assert_eq!(full.len(), 2);
    }

    #[test]
    fn truncate_drops_the_tail() {
        let mut wb = WriteBuffer::default();
        wb.write(0, &[7u8; 300], 1000);
        wb.truncate(100, 1000);
        assert_eq!(wb.end(1000), 100);
        wb.truncate(0, 1000);
        assert!(wb.is_empty());
    }
}
