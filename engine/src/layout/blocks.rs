//! Slice ↔ block arithmetic and Swift object names.
//!
//! A slice of `size` bytes is stored as `block_count(size, block_size)` write-once objects;
//! block `k` holds slice bytes `[k * bs, min((k + 1) * bs, size))`, so every block is full
//! except possibly the last. The block length is part of the object name so a reader can
//! issue ranged GETs (and validate responses) without a HEAD request.
//!
//! All functions take the block size as a plain non-zero number (volume limits are
//! checked once by [`super::Geometry::new`]); a zero block size panics where documented.

use std::ops::Range;

use super::LayoutError;

/// One GET a reader has to issue to read part of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRead {
    /// Block index within the slice.
    pub index: u32,
    /// Full length of that block object (part of its key).
    pub block_len: u32,
    /// Bytes wanted from the block.
    pub range_in_block: Range<u32>,
    /// Where those bytes go, relative to the start of the requested slice range.
    pub out_off: usize,
}

impl BlockRead {
    /// Object key of this block for slice `id`.
    pub fn key(&self, id: u64) -> String {
        block_key(id, self.index, self.block_len)
    }

    /// True if the whole block is wanted (a plain GET rather than a ranged one).
    pub fn is_whole_block(&self) -> bool {
        self.range_in_block.start == 0 && self.range_in_block.end == self.block_len
    }
}

/// Number of blocks a slice of `size` bytes is stored as (0 for an empty slice).
///
/// # Panics
/// If `block_size == 0`.
pub fn block_count(size: u32, block_size: u32) -> u32 {
    size.div_ceil(block_size)
}

/// Length of block `index` of a slice of `size` bytes (0 if there is no such block).
///
/// # Panics
/// If `block_size == 0`.
pub fn block_len(size: u32, block_size: u32, index: u32) -> u32 {
    assert!(block_size > 0, "block size must be non-zero");
    let start = u64::from(index) * u64::from(block_size);
    let end = (start + u64::from(block_size)).min(u64::from(size));
    end.saturating_sub(start) as u32
}

/// The block reads needed to read bytes `range` of a slice of `size` bytes, in order.
/// `out_off` of each read is relative to `range.start`. An empty range needs no reads.
///
/// Errors if `range` is reversed or extends past `size`, or `block_size == 0`.
pub fn block_reads(
    size: u32,
    block_size: u32,
    range: Range<u32>,
) -> Result<Vec<BlockRead>, LayoutError> {
    if block_size == 0 {
        return Err(LayoutError::InvalidGeometry("block size must be non-zero"));
    }
    if range.start > range.end || range.end > size {
        return Err(LayoutError::OutOfBounds {
            start: range.start,
            end: range.end,
            size,
        });
    }
    if range.is_empty() {
        return Ok(Vec::new());
    }
    let bs = u64::from(block_size);
    let (a, b) = (u64::from(range.start), u64::from(range.end));
    let first = range.start / block_size;
    let last = (range.end - 1) / block_size;
    Ok((first..=last)
        .map(|index| {
            let block_start = u64::from(index) * bs;
            let block_end = (block_start + bs).min(u64::from(size));
            let from = a.max(block_start);
            let to = b.min(block_end);
            BlockRead {
                index,
                block_len: (block_end - block_start) as u32,
                range_in_block: (from - block_start) as u32..(to - block_start) as u32,
                out_off: (from - a) as usize,
            }
        })
        .collect())
}

/// Swift object name of block `index` (of length `block_len`) of slice `id`:
/// `chunks/{id / 1_000_000}/{id / 1_000}/{id}_{index}_{block_len}`.
///
/// The two directory levels spread a volume's objects over many pseudo-directories
/// (useful for listing-based tools and GC scans) while keeping one slice's blocks together.
pub fn block_key(id: u64, index: u32, block_len: u32) -> String {
    format!(
        "chunks/{}/{}/{}_{}_{}",
        id / 1_000_000,
        id / 1_000,
        id,
        index,
        block_len
    )
}

/// Inverse of [`block_key`]: `Some((id, index, block_len))` exactly for strings that
/// [`block_key`] produces (canonical decimal, consistent directory levels), else `None`.
/// Used by GC / fsck scans to map objects back to slices.
pub fn parse_block_key(key: &str) -> Option<(u64, u32, u32)> {
    let name = key.strip_prefix("chunks/")?.rsplit('/').next()?;
    let mut parts = name.split('_');
    let id: u64 = parts.next()?.parse().ok()?;
    let index: u32 = parts.next()?.parse().ok()?;
    let len: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    // Re-formatting rejects everything non-canonical: leading zeros or '+', wrong
    // directory levels, extra path components.
    (block_key(id, index, len) == key).then_some((id, index, len))
}

/// Writer side: the blocks a new slice of `slice_len` bytes is uploaded as, as
/// `(index, byte range within the slice)`; the block length is the range length.
///
/// # Panics
/// If `block_size == 0`.
pub fn split_into_blocks(
    slice_len: u32,
    block_size: u32,
) -> impl Iterator<Item = (u32, Range<u32>)> + Clone {
    assert!(block_size > 0, "block size must be non-zero");
    (0..block_count(slice_len, block_size)).map(move |index| {
        let start = u64::from(index) * u64::from(block_size);
        let end = (start + u64::from(block_size)).min(u64::from(slice_len));
        (index, start as u32..end as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let mib = 1u32 << 20;
        let bs = 4 * mib;
        assert_eq!(block_count(0, bs), 0);
        assert_eq!(block_count(1, bs), 1);
        assert_eq!(block_count(bs, bs), 1);
        assert_eq!(block_count(bs + 1, bs), 2);
        assert_eq!(block_len(10 * mib, bs, 2), 2 * mib);
        assert_eq!(block_len(10 * mib, bs, 3), 0);
        assert_eq!(
            block_reads(10 * mib, bs, 3 * mib..9 * mib).unwrap(),
            vec![
                BlockRead {
                    index: 0,
                    block_len: bs,
                    range_in_block: 3 * mib..bs,
                    out_off: 0
                },
                BlockRead {
                    index: 1,
                    block_len: bs,
                    range_in_block: 0..bs,
                    out_off: mib as usize
                },
                BlockRead {
                    index: 2,
                    block_len: 2 * mib,
                    range_in_block: 0..mib,
                    out_off: 5 * mib as usize
                },
            ]
        );
        assert_eq!(block_reads(10, bs, 5..5).unwrap(), vec![]);
        assert!(block_reads(10, bs, 5..11).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = block_reads(10, bs, 6..5);
        assert!(reversed.is_err());
        assert!(block_reads(10, 0, 0..5).is_err());
        // Largest slice / offsets: no overflow.
        let big = block_reads(u32::MAX, 1 << 31, u32::MAX - 1..u32::MAX).unwrap();
        assert_eq!(big.len(), 1);
        assert_eq!(big[0].block_len, (1 << 31) - 1);
        assert_eq!(
            split_into_blocks(u32::MAX, 1 << 31).collect::<Vec<_>>(),
            vec![(0, 0..1 << 31), (1, 1 << 31..u32::MAX)]
        );
    }

    #[test]
    fn keys() {
        assert_eq!(
            block_key(1_234_567_890, 3, 4 << 20),
            "chunks/1234/1234567/1234567890_3_4194304"
        );
        assert_eq!(block_key(7, 0, 5), "chunks/0/0/7_0_5");
        assert_eq!(parse_block_key("chunks/0/0/7_0_5"), Some((7, 0, 5)));
        for bad in [
            "",
            "chunks/",
            "chunks/0/0/7_0",
            "chunks/0/0/7_0_5_1",
            "chunks/0/1/7_0_5",
            "chunks/0/0/07_0_5",
            "chunks/0/0/+7_0_5",
            "chunks/0/0/7_0_-5",
            "chunks/0/0/x/7_0_5",
            "chunks/0/7_0_5",
            "blocks/0/0/7_0_5",
            "chunks/0/0/7_0_5/",
            "chunks/0/0/7_0_4294967296",
        ] {
            assert_eq!(parse_block_key(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn key_round_trip(id in any::<u64>(), index in any::<u32>(), len in any::<u32>()) {
            prop_assert_eq!(parse_block_key(&block_key(id, index, len)), Some((id, index, len)));
        }

        #[test]
        fn parse_never_panics(s in "chunks/[0-9]{0,3}/[0-9]{0,5}/[0-9_+-]{0,12}") {
            if let Some((id, index, len)) = parse_block_key(&s) {
                prop_assert_eq!(block_key(id, index, len), s);
            }
        }

        /// Block reads tile the requested range exactly and agree with the writer's split.
        #[test]
        fn reads_tile_range(
            size in 0u32..5000,
            bs_shift in 0u32..10,
            a in 0u32..5000,
            b in 0u32..5000,
        ) {
            let bs = 1u32 << bs_shift;
            let (a, b) = (a.min(b).min(size), a.max(b).min(size));
            let blocks: Vec<_> = split_into_blocks(size, bs).collect();
            prop_assert_eq!(blocks.len() as u32, block_count(size, bs));
            let mut next = 0;
            for (i, (index, r)) in blocks.iter().enumerate() {
                prop_assert_eq!(*index as usize, i);
                prop_assert_eq!(r.start, next);
                prop_assert!(r.end > r.start && r.end - r.start <= bs);
                prop_assert_eq!(r.end - r.start, block_len(size, bs, *index));
                next = r.end;
            }
            prop_assert_eq!(next, size);

            let reads = block_reads(size, bs, a..b).unwrap();
            let mut covered = a;
            for rd in &reads {
                let (_, br) = &blocks[rd.index as usize];
                prop_assert_eq!(rd.block_len, br.end - br.start);
                prop_assert!(rd.range_in_block.start < rd.range_in_block.end);
                prop_assert!(rd.range_in_block.end <= rd.block_len);
                prop_assert_eq!(br.start + rd.range_in_block.start, covered);
                prop_assert_eq!(rd.out_off, (covered - a) as usize);
                covered = br.start + rd.range_in_block.end;
            }
            prop_assert_eq!(covered, b);
        }
    }
}
