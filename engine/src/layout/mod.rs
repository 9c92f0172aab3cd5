//! File data layout: the pure arithmetic of the ringfs data model (the JuiceFS model).
//!
//! A file is cut into fixed-size **chunks** (`chunk_size`, default 64 MiB). Every write
//! produces an immutable **slice** (unique `u64` id) that lives inside one chunk and is
//! stored in Swift as write-once **blocks** of `block_size` bytes (default 4 MiB). A
//! chunk's etcd value is the append-only list of [`SliceRef`]s written to it, newest last;
//! a read resolves each byte to the newest ref covering it ([`resolve`]), bytes no ref
//! covers (or covered by an id-0 ref) read as zeros. Appending is cheap (no
//! read-modify-write of data), so lists grow; [`plan_compaction`] keeps them bounded so a
//! chunk value always fits an etcd transaction.
//!
//! Everything here is synchronous, allocation-light logic with no I/O, so the metadata
//! layer, the read path and the write-back path all share one tested definition of the
//! layout.
//!
//! * [`slices`]: `SliceRef`, the chunk value encoding, `resolve`, `visible`, compaction.
//! * [`blocks`]: slice ↔ Swift block math and object key names.
//! * [`chunk`]: file ↔ chunk arithmetic, file size limits, truncate / hole punching.

pub mod blocks;
pub mod chunk;
pub mod slices;

#[cfg(test)]
mod model_tests;

pub use blocks::{
    block_count, block_key, block_len, block_reads, parse_block_key, split_into_blocks, BlockRead,
};
pub use chunk::{
    check_file_range, chunk_spans, plan_truncate, punch_hole_refs, ChunkSpan, ChunkSpans,
    TruncatePlan, MAX_FILE_SIZE,
};
pub use slices::{
    append_encoded, decode_chunk, encode_chunk, encoded_len, max_refs_for_budget, needs_compaction,
    plan_compaction, plan_compaction_with, rebase_compacted, resolve, unreferenced_slices,
    validate_refs, visible, CompactionPlan, CompactionPolicy, MergePlan, Segment, SliceRef,
    CHUNK_FORMAT_VERSION, SLICE_REF_BYTES,
};

use thiserror::Error;

/// Default chunk size (64 MiB), as in JuiceFS.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 << 20;
/// Largest chunk size: offsets and lengths inside a chunk are `u32`, and `pos + len` of a
/// ref must not overflow, so a chunk is at most 2 GiB.
pub const MAX_CHUNK_SIZE: u64 = 1 << 31;
/// Default block size (4 MiB): large enough for efficient Swift GETs, small enough that a
/// random read does not fetch much more than it needs.
pub const DEFAULT_BLOCK_SIZE: u32 = 4 << 20;
/// Smallest allowed block size (64 KiB).
pub const MIN_BLOCK_SIZE: u32 = 64 << 10;
/// Largest allowed block size (64 MiB).
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;

/// Errors of the layout layer. All of them are either corrupt metadata or a request the
/// filesystem must refuse; see [`LayoutError::errno`] for the POSIX mapping.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    /// The chunk value starts with a format version this build does not understand.
    #[error("unsupported chunk value format version {0}")]
    UnsupportedVersion(u8),
    /// The chunk value is not a header followed by whole records.
    #[error(
        "truncated chunk value: {len} bytes is not a 1-byte header plus whole {SLICE_REF_BYTES}-byte records"
    )]
    Truncated { len: usize },
    /// A decoded ref is internally inconsistent (corrupt metadata).
    #[error("invalid slice ref #{index}: {reason}")]
    InvalidRef { index: usize, reason: &'static str },
    /// `offset + len` is beyond the largest file size (or overflows `u64`): EFBIG.
    #[error("file range {offset} + {len} exceeds the maximum file size {max}")]
    FileTooLarge { offset: u64, len: u64, max: u64 },
    /// A byte range does not lie inside the slice it addresses.
    #[error("range {start}..{end} is outside a slice of {size} bytes")]
    OutOfBounds { start: u32, end: u32, size: u32 },
    /// Chunk / block size settings are not usable.
    #[error("invalid volume geometry: {0}")]
    InvalidGeometry(&'static str),
}

impl LayoutError {
    /// The errno a FUSE reply should carry for this error.
    pub fn errno(&self) -> i32 {
        match self {
            LayoutError::FileTooLarge { .. } => libc::EFBIG,
            LayoutError::OutOfBounds { .. } | LayoutError::InvalidGeometry(_) => libc::EINVAL,
            LayoutError::UnsupportedVersion(_)
            | LayoutError::Truncated { .. }
            | LayoutError::InvalidRef { .. } => libc::EIO,
        }
    }
}

/// A volume's validated chunk and block sizes.
///
/// The free functions of this module only require non-zero sizes (so tests can use tiny
/// geometries); `Geometry::new` is where a volume's settings are checked against the real
/// limits, once, when the volume is formatted or mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub chunk_size: u64,
    pub block_size: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            chunk_size: DEFAULT_CHUNK_SIZE,
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }
}

impl Geometry {
    /// Validate volume settings: both powers of two, block size in
    /// `MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE`, `block_size <= chunk_size <= MAX_CHUNK_SIZE`.
    pub fn new(chunk_size: u64, block_size: u32) -> Result<Self, LayoutError> {
        if !block_size.is_power_of_two() {
            return Err(LayoutError::InvalidGeometry(
                "block size must be a power of two",
            ));
        }
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(LayoutError::InvalidGeometry(
                "block size must be between 64 KiB and 64 MiB",
            ));
        }
        if !chunk_size.is_power_of_two() {
            return Err(LayoutError::InvalidGeometry(
                "chunk size must be a power of two",
            ));
        }
        if chunk_size < u64::from(block_size) {
            return Err(LayoutError::InvalidGeometry(
                "chunk size must be at least the block size",
            ));
        }
        if chunk_size > MAX_CHUNK_SIZE {
            return Err(LayoutError::InvalidGeometry(
                "chunk size must be at most 2 GiB",
            ));
        }
        Ok(Geometry {
            chunk_size,
            block_size,
        })
    }

    /// Byte length of a full chunk as `u32` (always fits, see [`MAX_CHUNK_SIZE`]).
    pub fn chunk_len(&self) -> u32 {
        u32::try_from(self.chunk_size).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_validation() {
        assert!(Geometry::new(DEFAULT_CHUNK_SIZE, DEFAULT_BLOCK_SIZE).is_ok());
        assert_eq!(Geometry::default().chunk_len(), 64 << 20);
        assert!(Geometry::new(64 << 10, 64 << 10).is_ok());
        assert!(Geometry::new(MAX_CHUNK_SIZE, MAX_BLOCK_SIZE).is_ok());
        assert!(Geometry::new(MAX_CHUNK_SIZE * 2, MAX_BLOCK_SIZE).is_err());
        assert!(Geometry::new(64 << 20, 3 << 20).is_err());
        assert!(Geometry::new(64 << 20, 32 << 10).is_err());
        assert!(Geometry::new(64 << 20, 128 << 20).is_err());
        assert!(Geometry::new(1 << 20, 4 << 20).is_err());
        assert!(Geometry::new(48 << 20, 4 << 20).is_err());
        assert!(Geometry::new(0, 4 << 20).is_err());
    }

    #[test]
    fn errno_mapping() {
        let e = LayoutError::FileTooLarge {
            offset: u64::MAX,
            len: 1,
            max: MAX_FILE_SIZE,
        };
        assert_eq!(e.errno(), libc::EFBIG);
        assert_eq!(LayoutError::Truncated { len: 3 }.errno(), libc::EIO);
        assert_eq!(
            LayoutError::Truncated { len: 3 }.to_string(),
            "truncated chunk value: 3 bytes is not a 1-byte header plus whole 24-byte records"
        );
    }
}
