//! File ↔ chunk arithmetic: splitting file ranges into per-chunk pieces, file size
//! limits, and the metadata edits truncate and hole punching need.

use std::iter::FusedIterator;
use std::ops::Range;

use super::slices::SliceRef;
use super::{LayoutError, MAX_CHUNK_SIZE};

/// Largest file size: POSIX `off_t` is signed 64-bit, so offsets at or beyond `i64::MAX`
/// cannot be expressed by callers (`lseek`, `stat.st_size`).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;

/// Check a file range `[offset, offset + len)` (a write, or a truncate as `(0, new_size)`)
/// against `max_size` (usually [`MAX_FILE_SIZE`], or a smaller volume limit), returning
/// its end. Overflow of `offset + len` or an end beyond `max_size` is
/// [`LayoutError::FileTooLarge`], whose errno is `EFBIG`.
pub fn check_file_range(offset: u64, len: u64, max_size: u64) -> Result<u64, LayoutError> {
    match offset.checked_add(len) {
        Some(end) if end <= max_size => Ok(end),
        _ => Err(LayoutError::FileTooLarge {
            offset,
            len,
            max: max_size,
        }),
    }
}

/// The part of a file range that falls in one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Chunk index (`file offset / chunk_size`).
    pub chunk_index: u64,
    /// Offset inside the chunk.
    pub chunk_off: u32,
    /// Bytes in this chunk (never 0).
    pub len: u32,
    /// Offset of this piece in the caller's buffer (relative to the range start).
    pub buf_off: usize,
}

impl ChunkSpan {
    /// File offset of the first byte of this span.
    pub fn file_offset(&self, chunk_size: u64) -> u64 {
        self.chunk_index * chunk_size + u64::from(self.chunk_off)
    }

    /// The span as a range inside its chunk.
    pub fn chunk_range(&self) -> Range<u32> {
        self.chunk_off..self.chunk_off + self.len
    }
}

/// Iterator returned by [`chunk_spans`].
#[derive(Debug, Clone)]
pub struct ChunkSpans {
    pos: u64,
    remaining: u64,
    buf_off: usize,
    chunk_size: u64,
}

impl Iterator for ChunkSpans {
    type Item = ChunkSpan;

    fn next(&mut self) -> Option<ChunkSpan> {
        if self.remaining == 0 {
            return None;
        }
        let chunk_index = self.pos / self.chunk_size;
        let chunk_off = self.pos % self.chunk_size;
        let len = (self.chunk_size - chunk_off).min(self.remaining);
        let span = ChunkSpan {
            chunk_index,
            chunk_off: chunk_off as u32,
            len: len as u32,
            buf_off: self.buf_off,
        };
        match self.pos.checked_add(len) {
            Some(p) => {
                self.pos = p;
                self.remaining -= len;
                self.buf_off = self.buf_off.saturating_add(len as usize);
            }
            // The range ran past u64::MAX (callers should have used check_file_range):
            // stop at the end of the addressable space rather than wrap.
            None => self.remaining = 0,
        }
        Some(span)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.remaining == 0 {
            return (0, Some(0));
        }
        let first = self.pos / self.chunk_size;
        let last = (self.pos.saturating_add(self.remaining - 1)) / self.chunk_size;
        let n = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl FusedIterator for ChunkSpans {}

/// Split the file range `[offset, offset + len)` into per-chunk spans, in order. Chunk
/// `i` covers file bytes `[i * chunk_size, (i + 1) * chunk_size)`; a write produces one
/// slice per span, since a slice never crosses a chunk boundary.
///
/// Validate the range with [`check_file_range`] first; if `offset + len` overflows the
/// iterator stops at `u64::MAX` instead of wrapping.
///
/// # Panics
/// If `chunk_size` is 0 or larger than [`MAX_CHUNK_SIZE`] (chunk offsets are `u32`).
pub fn chunk_spans(offset: u64, len: u64, chunk_size: u64) -> ChunkSpans {
    assert!(
        chunk_size > 0 && chunk_size <= MAX_CHUNK_SIZE,
        "invalid chunk size {chunk_size}"
    );
    ChunkSpans {
        pos: offset,
        remaining: len,
        buf_off: 0,
        chunk_size,
    }
}

/// Metadata edits for a truncate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatePlan {
    /// Chunk indices whose values are deleted entirely (their slices become garbage):
    /// `new_size.div_ceil(chunk_size)..old_size.div_ceil(chunk_size)`, empty when growing.
    pub dropped_chunks: Range<u64>,
    /// `(chunk index, ref)` to append to the chunk the new end falls inside: an id-0 ref
    /// from the new end to the chunk end, so that the cut-off bytes read as zeros if the
    /// file is extended again later. `None` when the new size is chunk aligned or the file
    /// grows.
    pub zero_tail: Option<(u64, SliceRef)>,
}

/// Plan a truncate from `old_size` to `new_size`.
///
/// Growing needs no edits: by the invariant this plan maintains, nothing is stored
/// beyond a file's size (every shrink drops or zero-masks it), so the new range already
/// reads as zeros. Shrinking drops the chunks wholly past the new end and masks the
/// partial chunk's tail.
///
/// # Panics
/// If `chunk_size` is 0 or larger than [`MAX_CHUNK_SIZE`].
pub fn plan_truncate(old_size: u64, new_size: u64, chunk_size: u64) -> TruncatePlan {
    assert!(
        chunk_size > 0 && chunk_size <= MAX_CHUNK_SIZE,
        "invalid chunk size {chunk_size}"
    );
    if new_size >= old_size {
        let n = old_size.div_ceil(chunk_size);
        return TruncatePlan {
            dropped_chunks: n..n,
            zero_tail: None,
        };
    }
    let tail_off = new_size % chunk_size;
    let zero_tail = (tail_off != 0).then(|| {
        let pos = tail_off as u32;
        (
            new_size / chunk_size,
            SliceRef::zero(pos, (chunk_size - tail_off) as u32),
        )
    });
    TruncatePlan {
        dropped_chunks: new_size.div_ceil(chunk_size)..old_size.div_ceil(chunk_size),
        zero_tail,
    }
}

/// Zero refs to append for `fallocate(PUNCH_HOLE)` / `ZERO_RANGE` over the file range
/// `[offset, offset + len)`, one per chunk touched. (A caller may instead delete chunks
/// that are covered entirely and lie past every other reader's view; appending a zero ref
/// is always correct.)
///
/// # Panics
/// If `chunk_size` is 0 or larger than [`MAX_CHUNK_SIZE`].
pub fn punch_hole_refs(
    offset: u64,
    len: u64,
    chunk_size: u64,
) -> impl Iterator<Item = (u64, SliceRef)> {
    chunk_spans(offset, len, chunk_size)
        .map(|s| (s.chunk_index, SliceRef::zero(s.chunk_off, s.len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn spans_examples() {
        let cs = 64 * MIB;
        let spans: Vec<_> = chunk_spans(60 * MIB, 70 * MIB, cs).collect();
        assert_eq!(
            spans,
            vec![
                ChunkSpan {
                    chunk_index: 0,
                    chunk_off: (60 * MIB) as u32,
                    len: (4 * MIB) as u32,
                    buf_off: 0
                },
                ChunkSpan {
                    chunk_index: 1,
                    chunk_off: 0,
                    len: (64 * MIB) as u32,
                    buf_off: (4 * MIB) as usize
                },
                ChunkSpan {
                    chunk_index: 2,
                    chunk_off: 0,
                    len: (2 * MIB) as u32,
                    buf_off: (68 * MIB) as usize
                },
            ]
        );
        assert_eq!(chunk_spans(5, 0, cs).count(), 0);
        assert_eq!(
            chunk_spans(60 * MIB, 70 * MIB, cs).size_hint(),
            (3, Some(3))
        );
        // Overflowing range: stops after the byte at u64::MAX, no panic.
        let it = chunk_spans(u64::MAX - 10, 100, cs);
        assert_eq!(it.size_hint(), (1, Some(1)));
        let spans: Vec<_> = it.collect();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].len, 11);
        assert_eq!(spans[0].file_offset(cs), u64::MAX - 10);
        // Largest chunk size.
        let spans: Vec<_> = chunk_spans(0, MAX_CHUNK_SIZE + 1, MAX_CHUNK_SIZE).collect();
        assert_eq!(spans[0].len, 1 << 31);
        assert_eq!(spans[1].chunk_range(), 0..1);
    }

    #[test]
    #[should_panic]
    fn zero_chunk_size_panics() {
        let _ = chunk_spans(0, 1, 0);
    }

    #[test]
    fn file_size_limits() {
        assert_eq!(check_file_range(10, 20, MAX_FILE_SIZE), Ok(30));
        assert_eq!(
            check_file_range(MAX_FILE_SIZE, 0, MAX_FILE_SIZE),
            Ok(MAX_FILE_SIZE)
        );
        let e = check_file_range(MAX_FILE_SIZE, 1, MAX_FILE_SIZE).unwrap_err();
        assert_eq!(e.errno(), libc::EFBIG);
        assert!(check_file_range(u64::MAX, 1, u64::MAX).is_err());
        assert!(check_file_range(1, u64::MAX, u64::MAX).is_err());
    }

    #[test]
    fn truncate_examples() {
        let cs = 64 * MIB;
        // Shrink 200 MiB -> 100 MiB: chunks 2 and 3 go, chunk 1 keeps 36 MiB.
        let p = plan_truncate(200 * MIB, 100 * MIB, cs);
        assert_eq!(p.dropped_chunks, 2..4);
        assert_eq!(
            p.zero_tail,
            Some((1, SliceRef::zero((36 * MIB) as u32, (28 * MIB) as u32)))
        );
        // Chunk-aligned shrink: no tail.
        let p = plan_truncate(200 * MIB, 128 * MIB, cs);
        assert_eq!(p.dropped_chunks, 2..4);
        assert_eq!(p.zero_tail, None);
        // To zero: everything goes.
        assert_eq!(plan_truncate(1, 0, cs).dropped_chunks, 0..1);
        // Grow: nothing.
        let p = plan_truncate(100, 1000, cs);
        assert!(p.dropped_chunks.is_empty());
        assert_eq!(p.zero_tail, None);
        // Shrink within one chunk.
        let p = plan_truncate(1000, 10, cs);
        assert!(p.dropped_chunks.is_empty());
        assert_eq!(p.zero_tail, Some((0, SliceRef::zero(10, (cs - 10) as u32))));
        // Punch a hole over a chunk boundary.
        let refs: Vec<_> = punch_hole_refs(cs - 5, 10, cs).collect();
        assert_eq!(
            refs,
            vec![
                (0, SliceRef::zero((cs - 5) as u32, 5)),
                (1, SliceRef::zero(0, 5))
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn spans_tile_the_range(
            offset in 0u64..100_000,
            len in 0u64..100_000,
            cs_shift in 0u32..14,
        ) {
            let cs = 1u64 << cs_shift;
            let spans: Vec<_> = chunk_spans(offset, len, cs).collect();
            prop_assert_eq!(chunk_spans(offset, len, cs).size_hint().0, spans.len());
            let mut pos = offset;
            let mut buf = 0usize;
            for s in &spans {
                prop_assert!(s.len > 0);
                prop_assert!(u64::from(s.chunk_off) + u64::from(s.len) <= cs);
                prop_assert_eq!(s.file_offset(cs), pos);
                prop_assert_eq!(s.buf_off, buf);
                pos += u64::from(s.len);
                buf += s.len as usize;
            }
            prop_assert_eq!(pos, offset + len);
        }

        #[test]
        fn truncate_plan_shape(old in 0u64..10_000, new in 0u64..10_000, cs_shift in 0u32..10) {
            let cs = 1u64 << cs_shift;
            let p = plan_truncate(old, new, cs);
            if new >= old {
                prop_assert!(p.dropped_chunks.is_empty());
                prop_assert!(p.zero_tail.is_none());
            } else {
                // Every chunk holding bytes >= new is either dropped or masked from `new`.
                for idx in new / cs..old.div_ceil(cs) {
                    let dropped = p.dropped_chunks.contains(&idx);
                    let masked = matches!(p.zero_tail, Some((i, r))
                        if i == idx && idx * cs + u64::from(r.pos) == new && r.end() == cs);
                    prop_assert!(dropped ^ masked);
                }
                // Chunks below the new end are untouched.
                prop_assert!(p.dropped_chunks.start * cs >= new);
            }
        }
    }
}
