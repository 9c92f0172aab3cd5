//! Slice references, the chunk value encoding, newest-wins resolution and compaction.
//!
//! A chunk's value is an append-only list of [`SliceRef`]s, newest last. Appending keeps
//! the write path to a single etcd append (no read-modify-write of data), at the price of
//! reads having to resolve overlaps ([`resolve`]) and lists growing until compacted
//! ([`plan_compaction`]).

use std::collections::BTreeMap;
use std::ops::Range;

use super::LayoutError;

/// Version byte at the start of every encoded chunk value, so the record format can change
/// later without guessing.
pub const CHUNK_FORMAT_VERSION: u8 = 1;

/// Size of one encoded [`SliceRef`]: `pos u32 | id u64 | size u32 | off u32 | len u32`,
/// big-endian. Fixed-size records make appends a plain byte append and let the size of a
/// value be planned exactly: [`encoded_len`]`(n) = 1 + n * SLICE_REF_BYTES`.
pub const SLICE_REF_BYTES: usize = 24;

/// One entry of a chunk's slice list: bytes `[off, off + len)` of stored slice `id`
/// (`size` bytes long) appear at chunk offset `[pos, pos + len)`.
///
/// `id == 0` is a zero ref: the range reads as zeros (written by truncate and hole
/// punching so that stale data underneath can never reappear); `size`/`off` are then
/// meaningless and conventionally `len`/`0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SliceRef {
    /// Offset in the chunk where the referenced bytes start.
    pub pos: u32,
    /// Slice id; 0 means "zeros".
    pub id: u64,
    /// Full length of the stored slice (needed for block math and block key names).
    pub size: u32,
    /// First byte of the stored slice that is used.
    pub off: u32,
    /// Number of bytes used.
    pub len: u32,
}

impl SliceRef {
    /// A ref that uses all of a freshly written slice.
    pub fn new(pos: u32, id: u64, len: u32) -> Self {
        SliceRef {
            pos,
            id,
            size: len,
            off: 0,
            len,
        }
    }

    /// A zero ref covering chunk bytes `[pos, pos + len)`.
    pub fn zero(pos: u32, len: u32) -> Self {
        SliceRef::new(pos, 0, len)
    }

    /// True for id-0 (zeros) refs.
    pub fn is_zero(&self) -> bool {
        self.id == 0
    }

    /// End of the covered chunk range, computed in `u64` so corrupt refs cannot overflow.
    pub fn end(&self) -> u64 {
        u64::from(self.pos) + u64::from(self.len)
    }

    /// Internal consistency, independent of the chunk size.
    fn check(&self, index: usize) -> Result<(), LayoutError> {
        if self.end() > u64::from(u32::MAX) {
            return Err(LayoutError::InvalidRef {
                index,
                reason: "pos + len overflows a chunk offset",
            });
        }
        if !self.is_zero() && u64::from(self.off) + u64::from(self.len) > u64::from(self.size) {
            return Err(LayoutError::InvalidRef {
                index,
                reason: "off + len exceeds the slice size",
            });
        }
        Ok(())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.pos.to_be_bytes());
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.off.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
    }

    fn read_from(rec: &[u8; SLICE_REF_BYTES]) -> Self {
        let u32_at = |i: usize| u32::from_be_bytes([rec[i], rec[i + 1], rec[i + 2], rec[i + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&rec[4..12]);
        SliceRef {
            pos: u32_at(0),
            id: u64::from_be_bytes(id),
            size: u32_at(12),
            off: u32_at(16),
            len: u32_at(20),
        }
    }
}

/// Encoded size of a chunk value holding `n` refs (header byte included).
pub fn encoded_len(n: usize) -> usize {
    1 + n * SLICE_REF_BYTES
}

/// How many refs fit a value budget of `bytes` (e.g. part of etcd's 1.5 MiB request limit).
pub fn max_refs_for_budget(bytes: usize) -> usize {
    bytes.saturating_sub(1) / SLICE_REF_BYTES
}

/// Encode a whole chunk value.
pub fn encode_chunk(refs: &[SliceRef]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(refs.len()));
    out.push(CHUNK_FORMAT_VERSION);
    for r in refs {
        r.write_to(&mut out);
    }
    out
}

/// Append one ref to an encoded chunk value. An empty buffer (a chunk with no value yet)
/// gets the version header first, so the result is always a valid value.
pub fn append_encoded(buf: &mut Vec<u8>, r: &SliceRef) {
    if buf.is_empty() {
        buf.push(CHUNK_FORMAT_VERSION);
    }
    r.write_to(buf);
}

/// Decode a chunk value. An empty value decodes as no refs (a chunk never written).
///
/// Errors (never panics) on an unknown version, a length that is not whole records, or a
/// ref that is internally inconsistent (`pos + len` overflowing, or `off + len > size` for
/// a data ref). Bounds against the chunk size are checked by [`validate_refs`].
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<SliceRef>, LayoutError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Ok(Vec::new());
    };
    if version != CHUNK_FORMAT_VERSION {
        return Err(LayoutError::UnsupportedVersion(version));
    }
    if body.len() % SLICE_REF_BYTES != 0 {
        return Err(LayoutError::Truncated { len: bytes.len() });
    }
    body.chunks_exact(SLICE_REF_BYTES)
        .enumerate()
        .map(|(index, rec)| {
            let rec: &[u8; SLICE_REF_BYTES] = rec.try_into().expect("chunks_exact length");
            let r = SliceRef::read_from(rec);
            r.check(index)?;
            Ok(r)
        })
        .collect()
}

/// Check refs against the chunk size (every ref ends inside the chunk) and for internal
/// consistency. Use after [`decode_chunk`] when the geometry is at hand.
pub fn validate_refs(refs: &[SliceRef], chunk_size: u64) -> Result<(), LayoutError> {
    for (index, r) in refs.iter().enumerate() {
        r.check(index)?;
        if r.end() > chunk_size {
            return Err(LayoutError::InvalidRef {
                index,
                reason: "ref extends past the end of the chunk",
            });
        }
    }
    Ok(())
}

/// One piece of a resolved chunk range; consecutive segments tile the range exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// `len` bytes of zeros (a hole, or an id-0 ref).
    Zero { len: u32 },
    /// `len` bytes of slice `id` (stored size `size`) starting at `slice_off` in the slice.
    Data {
        id: u64,
        size: u32,
        slice_off: u32,
        len: u32,
    },
}

impl Segment {
    /// Byte length of the segment.
    pub fn len(&self) -> u32 {
        match *self {
            Segment::Zero { len } | Segment::Data { len, .. } => len,
        }
    }

    /// True for zero-length segments (never produced by [`resolve`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A resolved piece with its chunk position; `src` is `(id, size, slice_off)`, `None` for
/// zeros. Positions are `u64` so corrupt refs cannot overflow the arithmetic.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: u64,
    end: u64,
    src: Option<(u64, u32, u64)>,
}

/// Newest-first sweep over the set of still-uncovered intervals of `[start, end)`.
///
/// Each ref only visits the uncovered intervals it overlaps and removes them; every visit
/// either removes an interval for good or is one of at most two boundary trims per ref, so
/// the interval set stays O(n) and the sweep is O(n log n) regardless of byte counts. It
/// stops as soon as the range is fully covered, so heavily overwritten chunks resolve in
/// time proportional to the few newest refs that matter.
fn resolve_pieces(refs: &[SliceRef], start: u64, end: u64) -> Vec<Piece> {
    let mut pieces = Vec::new();
    if start >= end {
        return pieces;
    }
    let mut uncovered: BTreeMap<u64, u64> = BTreeMap::new();
    uncovered.insert(start, end);
    let mut hit: Vec<(u64, u64)> = Vec::new();
    for r in refs.iter().rev() {
        if uncovered.is_empty() {
            break;
        }
        let rs = u64::from(r.pos).max(start);
        let re = r.end().min(end);
        if rs >= re {
            continue;
        }
        // The first candidate is the interval containing `rs`, if any; the others start
        // inside [rs, re).
        let first = match uncovered.range(..=rs).next_back() {
            Some((&s, &e)) if e > rs => s,
            _ => rs,
        };
        hit.clear();
        hit.extend(uncovered.range(first..re).map(|(&s, &e)| (s, e)));
        for &(s, e) in &hit {
            uncovered.remove(&s);
            let ps = s.max(rs);
            let pe = e.min(re);
            if s < ps {
                uncovered.insert(s, ps);
            }
            if pe < e {
                uncovered.insert(pe, e);
            }
            let src =
                (!r.is_zero()).then(|| (r.id, r.size, u64::from(r.off) + (ps - u64::from(r.pos))));
            pieces.push(Piece {
                start: ps,
                end: pe,
                src,
            });
        }
    }
    pieces.extend(uncovered.into_iter().map(|(s, e)| Piece {
        start: s,
        end: e,
        src: None,
    }));
    pieces.sort_unstable_by_key(|p| p.start);

    // Merge neighbours: zeros with zeros, and data pieces that continue the same slice
    // (e.g. two refs produced by splitting one slice, or re-pointed refs).
    let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        if let Some(last) = merged.last_mut() {
            debug_assert_eq!(last.end, p.start);
            let joins = match (last.src, p.src) {
                (None, None) => true,
                (Some((id, size, off)), Some((id2, size2, off2))) => {
                    id == id2 && size == size2 && off + (last.end - last.start) == off2
                }
                _ => false,
            };
            if joins {
                last.end = p.end;
                continue;
            }
        }
        merged.push(p);
    }
    merged
}

/// Resolve chunk bytes `range` against `refs` (oldest first, newest last): the ordered
/// segments that tile `range` exactly, newest ref winning every byte, uncovered bytes and
/// id-0 refs as zeros. Adjacent zero segments are merged, as are adjacent pieces that are
/// contiguous bytes of one slice. An empty (or reversed) range gives no segments.
///
/// O(n log n) in the number of refs (see the sweep above), never O(bytes).
pub fn resolve(refs: &[SliceRef], range: Range<u32>) -> Vec<Segment> {
    resolve_pieces(refs, u64::from(range.start), u64::from(range.end))
        .into_iter()
        .map(|p| {
            // Pieces lie inside `range`, so lengths fit u32; slice offsets fit u32 for any
            // ref that passed `decode_chunk` (off + len <= size).
            let len = (p.end - p.start) as u32;
            match p.src {
                None => Segment::Zero { len },
                Some((id, size, off)) => Segment::Data {
                    id,
                    size,
                    slice_off: off as u32,
                    len,
                },
            }
        })
        .collect()
}

/// The minimal equivalent list of non-overlapping data refs, sorted by `pos`: what reads
/// actually see. Zero refs disappear (once nothing older lies underneath, zeros and holes
/// read the same) and contiguous pieces of one slice are joined.
///
/// This is compaction without data movement: the list only re-points into existing slices.
/// Note it can be longer than `refs` (a small overwrite in the middle of a big slice
/// splits it in two), which is why [`plan_compaction`] may have to rewrite data instead.
pub fn visible(refs: &[SliceRef]) -> Vec<SliceRef> {
    let Some(start) = refs.iter().map(|r| u64::from(r.pos)).min() else {
        return Vec::new();
    };
    let end = refs.iter().map(SliceRef::end).max().unwrap_or(start);
    resolve_pieces(refs, start, end)
        .into_iter()
        .filter_map(|p| {
            let (id, size, off) = p.src?;
            Some(SliceRef {
                pos: p.start as u32,
                id,
                size,
                off: off as u32,
                len: (p.end - p.start) as u32,
            })
        })
        .collect()
}

/// True when the list is longer than `max_refs` and should be compacted before it grows
/// further. Since records are fixed-size, a byte budget converts to a count with
/// [`max_refs_for_budget`].
pub fn needs_compaction(refs: &[SliceRef], max_refs: usize) -> bool {
    refs.len() > max_refs
}

/// Knobs of [`plan_compaction_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Upper bound for the compacted list (and the usual [`needs_compaction`] threshold).
    /// 256 refs encode to ~6 KiB, far below etcd's 1.5 MiB request limit, so many chunk
    /// values fit one transaction. Must be at least 1.
    pub max_refs: usize,
    /// Visible pieces shorter than this are "tiny fragments": re-pointing cannot reduce
    /// them and each costs a Swift request on read, so two or more of them trigger a data
    /// rewrite. With all pieces at least this long a chunk has at most
    /// `chunk_size / min_fragment` of them (64 for the defaults).
    pub min_fragment: u32,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_refs: 256,
            min_fragment: 1 << 20,
        }
    }
}

/// Rewrite part of a chunk as one new slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    /// Chunk offset where the new slice starts.
    pub start: u32,
    /// Chunk offset where the new slice ends (exclusive); new slice length `end - start`.
    pub end: u32,
    /// What to read to produce the new slice's bytes, in order (zeros become zero bytes).
    pub segments: Vec<Segment>,
    /// Visible refs outside `[start, end)` that are kept as they are.
    pub keep: Vec<SliceRef>,
}

impl MergePlan {
    /// Length of the new slice.
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// True if the new slice would be empty (never produced by the planner).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The compacted list once the new slice has been written under `new_id`.
    pub fn apply(&self, new_id: u64) -> Vec<SliceRef> {
        let mut out = Vec::with_capacity(self.keep.len() + 1);
        out.extend(self.keep.iter().filter(|r| r.pos < self.start));
        out.push(SliceRef::new(self.start, new_id, self.len()));
        out.extend(self.keep.iter().filter(|r| r.pos >= self.end));
        out
    }
}

/// What compaction should do with a chunk's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionPlan {
    /// The list is already minimal.
    Noop,
    /// Replace the list with `refs` ([`visible`]); no data is read or written. An empty
    /// list (everything was zeros) means the chunk value can simply be deleted.
    Rewrite { refs: Vec<SliceRef> },
    /// Read `segments`, store them as one new slice, then replace the list with
    /// [`MergePlan::apply`].
    Merge(MergePlan),
}

/// [`plan_compaction_with`] using [`CompactionPolicy::default`].
pub fn plan_compaction(refs: &[SliceRef]) -> CompactionPlan {
    plan_compaction_with(refs, &CompactionPolicy::default())
}

/// Plan the compaction of a chunk's ref list (oldest first).
///
/// Deliberately simple:
/// 1. Compute the [`visible`] pieces.
/// 2. If fewer than two of them are tiny (`< min_fragment`) and they fit `max_refs`,
///    re-point: [`CompactionPlan::Rewrite`] (or `Noop` if nothing changes).
/// 3. Otherwise merge the window from the first to the last tiny piece into one new slice,
///    keeping the pieces outside it; if that would still exceed `max_refs` (or there are
///    no tiny pieces but too many pieces), merge the whole data extent, which always
///    yields a single ref.
///
/// The merged window may contain holes, which are stored as zero bytes in the new slice:
/// bounded extra bytes (at most one chunk) in exchange for a bounded list.
///
/// The result is always at most `max_refs` long and reads exactly like `refs`. It is
/// computed from a snapshot; apply it with [`rebase_compacted`] (or a compare-and-swap)
/// since writers may have appended refs meanwhile.
pub fn plan_compaction_with(refs: &[SliceRef], policy: &CompactionPolicy) -> CompactionPlan {
    let vis = visible(refs);
    let tiny: Vec<usize> = vis
        .iter()
        .enumerate()
        .filter(|(_, r)| r.len < policy.min_fragment)
        .map(|(i, _)| i)
        .collect();
    if tiny.len() < 2 && vis.len() <= policy.max_refs {
        return if vis.as_slice() == refs {
            CompactionPlan::Noop
        } else {
            CompactionPlan::Rewrite { refs: vis }
        };
    }
    let (mut lo, mut hi) = match (tiny.first(), tiny.last()) {
        (Some(&lo), Some(&hi)) if tiny.len() >= 2 => (lo, hi),
        _ => (0, vis.len() - 1),
    };
    let kept = vis.len() - (hi - lo + 1);
    if kept + 1 > policy.max_refs {
        lo = 0;
        hi = vis.len() - 1;
    }
    if lo == hi {
        // A single piece (only possible with max_refs == 0): nothing to merge.
        return CompactionPlan::Rewrite { refs: vis };
    }
    let start = vis[lo].pos;
    let end = vis[hi].end() as u32;
    let segments = resolve(&vis[lo..=hi], start..end);
    let mut keep = Vec::with_capacity(kept);
    keep.extend_from_slice(&vis[..lo]);
    keep.extend_from_slice(&vis[hi + 1..]);
    CompactionPlan::Merge(MergePlan {
        start,
        end,
        segments,
        keep,
    })
}

/// Data slices `(id, size)` referenced by `old` but no longer by `new`, sorted: candidates
/// for the slice-release / garbage-collection path (which must still account for other
/// references, e.g. from cloned files).
pub fn unreferenced_slices(old: &[SliceRef], new: &[SliceRef]) -> Vec<(u64, u32)> {
    let still: std::collections::HashSet<(u64, u32)> = new
        .iter()
        .filter(|r| !r.is_zero())
        .map(|r| (r.id, r.size))
        .collect();
    let mut out: Vec<(u64, u32)> = old
        .iter()
        .filter(|r| !r.is_zero())
        .map(|r| (r.id, r.size))
        .filter(|k| !still.contains(k))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Apply a compaction computed from the encoded value `base` to the value as it is now
/// (`current`).
///
/// Lists are append-only between compactions and ids are unique, so if `current` still
/// starts with `base`'s records, anything after them was appended since and is newer than
/// everything compacted: the new value is `compacted` followed by those records. Returns
/// `None` if `current` no longer extends `base` (another compaction, a truncate that
/// deleted the chunk, or corrupt input): re-plan from `current`, and treat a slice
/// already written for a [`MergePlan`] as garbage.
pub fn rebase_compacted(base: &[u8], compacted: &[SliceRef], current: &[u8]) -> Option<Vec<u8>> {
    let body = |v: &[u8]| -> Option<Vec<u8>> {
        match v.split_first() {
            None => Some(Vec::new()),
            Some((&CHUNK_FORMAT_VERSION, b)) if b.len() % SLICE_REF_BYTES == 0 => Some(b.to_vec()),
            _ => None,
        }
    };
    let base_body = body(base)?;
    let cur_body = body(current)?;
    let tail = cur_body.strip_prefix(base_body.as_slice())?;
    let mut out = encode_chunk(compacted);
    out.extend_from_slice(tail);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive model: paint every byte of `range` with `Some((id, slice_off))` or `None`.
    fn naive(refs: &[SliceRef], range: Range<u32>) -> Vec<Option<(u64, u32)>> {
        let mut bytes = vec![None; (range.end - range.start) as usize];
        for r in refs {
            for b in r.pos..r.pos + r.len {
                if range.contains(&b) {
                    bytes[(b - range.start) as usize] =
                        (!r.is_zero()).then_some((r.id, r.off + (b - r.pos)));
                }
            }
        }
        bytes
    }

    fn expand(segs: &[Segment]) -> Vec<Option<(u64, u32)>> {
        let mut out = Vec::new();
        for s in segs {
            match *s {
                Segment::Zero { len } => out.extend((0..len).map(|_| None)),
                Segment::Data {
                    id, slice_off, len, ..
                } => out.extend((0..len).map(|i| Some((id, slice_off + i)))),
            }
        }
        out
    }

    const CHUNK: u32 = 512;

    /// Random refs inside a small chunk; ids drawn from a small set so that the same slice
    /// is referenced several times (exercising the merge of contiguous pieces).
    fn arb_ref() -> impl Strategy<Value = SliceRef> {
        (0..CHUNK, 0..CHUNK, 0u64..6, 0u32..64, 0u32..64).prop_map(|(a, b, id, pre, post)| {
            let (pos, end) = if a <= b { (a, b) } else { (b, a) };
            let len = end - pos;
            if id == 0 {
                SliceRef::zero(pos, len)
            } else {
                // `size` is a function of the id so equal ids mean the same slice.
                let size = 2 * CHUNK + 128;
                let off = (pos + pre).min(size - len - post.min(size - len));
                SliceRef {
                    pos,
                    id,
                    size,
                    off,
                    len,
                }
            }
        })
    }

    fn arb_range() -> impl Strategy<Value = Range<u32>> {
        (0..=CHUNK, 0..=CHUNK).prop_map(|(a, b)| a.min(b)..a.max(b))
    }

    fn check_shape(segs: &[Segment], range: &Range<u32>) {
        let total: u64 = segs.iter().map(|s| u64::from(s.len())).sum();
        assert_eq!(total, u64::from(range.end - range.start));
        assert!(segs.iter().all(|s| !s.is_empty()));
        for w in segs.windows(2) {
            assert!(
                !matches!((w[0], w[1]), (Segment::Zero { .. }, Segment::Zero { .. })),
                "adjacent zero segments not merged: {segs:?}"
            );
            if let (
                Segment::Data {
                    id: a,
                    slice_off: ao,
                    len: al,
                    ..
                },
                Segment::Data {
                    id: b,
                    slice_off: bo,
                    ..
                },
            ) = (w[0], w[1])
            {
                assert!(!(a == b && ao + al == bo), "contiguous data not merged");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn encode_decode_round_trip(refs in proptest::collection::vec(arb_ref(), 0..40)) {
            let enc = encode_chunk(&refs);
            prop_assert_eq!(enc.len(), encoded_len(refs.len()));
            prop_assert_eq!(decode_chunk(&enc).unwrap(), refs.clone());
            let mut appended = Vec::new();
            for r in &refs {
                append_encoded(&mut appended, r);
            }
            if refs.is_empty() {
                prop_assert!(appended.is_empty());
                prop_assert_eq!(decode_chunk(&appended).unwrap(), vec![]);
            } else {
                prop_assert_eq!(appended, enc);
            }
        }

        #[test]
        fn encode_decode_round_trip_any_fields(
            raw in proptest::collection::vec(
                (any::<u32>(), any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>()), 0..20)
        ) {
            let refs: Vec<SliceRef> = raw
                .into_iter()
                .map(|(pos, id, size, off, len)| SliceRef { pos, id, size, off, len })
                .collect();
            let valid = refs.iter().enumerate().all(|(i, r)| r.check(i).is_ok());
            let dec = decode_chunk(&encode_chunk(&refs));
            if valid {
                prop_assert_eq!(dec.unwrap(), refs);
            } else {
                let is_invalid_ref = matches!(dec, Err(LayoutError::InvalidRef { .. }));
                prop_assert!(is_invalid_ref);
            }
        }

        #[test]
        fn decode_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(refs) = decode_chunk(&bytes) {
                prop_assert_eq!(encode_chunk(&refs).len().max(1), bytes.len().max(1));
                // Anything decode accepts must resolve without panicking.
                let _ = resolve(&refs, 0..u32::MAX);
                let _ = visible(&refs);
                let _ = plan_compaction(&refs);
            }
            // Also with a valid header in front.
            let mut v = vec![CHUNK_FORMAT_VERSION];
            v.extend_from_slice(&bytes);
            if let Ok(refs) = decode_chunk(&v) {
                let _ = visible(&refs);
                let _ = plan_compaction(&refs);
            }
        }

        #[test]
        fn resolve_matches_naive(
            refs in proptest::collection::vec(arb_ref(), 0..30),
            range in arb_range(),
        ) {
            let segs = resolve(&refs, range.clone());
            check_shape(&segs, &range);
            prop_assert_eq!(expand(&segs), naive(&refs, range));
        }

        #[test]
        fn visible_is_equivalent_and_disjoint(
            refs in proptest::collection::vec(arb_ref(), 0..30),
            range in arb_range(),
        ) {
            let vis = visible(&refs);
            for w in vis.windows(2) {
                prop_assert!(w[0].end() <= u64::from(w[1].pos));
            }
            prop_assert!(vis.iter().all(|r| !r.is_zero() && r.len > 0));
            prop_assert!(vis.len() <= 2 * refs.len());
            prop_assert_eq!(naive(&vis, range.clone()), naive(&refs, range));
            // Already minimal: idempotent.
            prop_assert_eq!(visible(&vis), vis);
        }

        #[test]
        fn compaction_is_equivalent_and_bounded(
            refs in proptest::collection::vec(arb_ref(), 0..60),
            max_refs in 1usize..8,
            min_fragment in 0u32..128,
        ) {
            let policy = CompactionPolicy { max_refs, min_fragment };
            let full = 0..CHUNK;
            let want = naive(&refs, full.clone());
            match plan_compaction_with(&refs, &policy) {
                CompactionPlan::Noop => {
                    prop_assert_eq!(visible(&refs), refs.clone());
                    prop_assert!(refs.len() <= max_refs);
                }
                CompactionPlan::Rewrite { refs: new } => {
                    prop_assert!(new.len() <= max_refs);
                    prop_assert_eq!(naive(&new, full), want);
                }
                CompactionPlan::Merge(plan) => {
                    const NEW_ID: u64 = 1000;
                    prop_assert!(!plan.is_empty());
                    prop_assert_eq!(
                        plan.segments.iter().map(|s| s.len()).sum::<u32>(),
                        plan.len()
                    );
                    let new = plan.apply(NEW_ID);
                    prop_assert!(new.len() <= max_refs);
                    for w in new.windows(2) {
                        prop_assert!(w[0].end() <= u64::from(w[1].pos));
                    }
                    // Reading the new list: bytes of the new slice map back to whatever
                    // its segments said.
                    let seg_bytes = expand(&plan.segments);
                    let got: Vec<_> = naive(&new, full)
                        .into_iter()
                        .map(|b| match b {
                            Some((NEW_ID, off)) => seg_bytes[off as usize],
                            other => other,
                        })
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode_chunk(&[]), Ok(vec![]));
        assert_eq!(decode_chunk(&[CHUNK_FORMAT_VERSION]), Ok(vec![]));
        assert_eq!(decode_chunk(&[9]), Err(LayoutError::UnsupportedVersion(9)));
        let mut v = encode_chunk(&[SliceRef::new(0, 7, 10)]);
        v.pop();
        assert_eq!(decode_chunk(&v), Err(LayoutError::Truncated { len: 24 }));
        let bad = SliceRef {
            pos: 0,
            id: 7,
            size: 10,
            off: 5,
            len: 6,
        };
        assert!(matches!(
            decode_chunk(&encode_chunk(&[SliceRef::new(0, 1, 1), bad])),
            Err(LayoutError::InvalidRef { index: 1, .. })
        ));
        let overflow = SliceRef::zero(u32::MAX, 1);
        assert!(decode_chunk(&encode_chunk(&[overflow])).is_err());
    }

    #[test]
    fn validate_against_chunk_size() {
        let refs = [SliceRef::new(0, 1, 64), SliceRef::new(64, 2, 64)];
        assert!(validate_refs(&refs, 128).is_ok());
        assert!(matches!(
            validate_refs(&refs, 127),
            Err(LayoutError::InvalidRef { index: 1, .. })
        ));
    }

    #[test]
    fn encoding_layout_is_stable() {
        let enc = encode_chunk(&[SliceRef {
            pos: 1,
            id: 2,
            size: 3,
            off: 4,
            len: 5,
        }]);
        assert_eq!(
            enc,
            [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5]
        );
        assert_eq!(max_refs_for_budget(encoded_len(256)), 256);
        assert_eq!(max_refs_for_budget(0), 0);
    }

    #[test]
    fn resolve_examples() {
        // Old 0..100 of slice 1, newer 20..30 of slice 2, a hole at 100..110, then a zero
        // ref over 40..50.
        let refs = [
            SliceRef::new(0, 1, 100),
            SliceRef::new(20, 2, 10),
            SliceRef::zero(40, 10),
        ];
        assert_eq!(
            resolve(&refs, 10..110),
            vec![
                Segment::Data {
                    id: 1,
                    size: 100,
                    slice_off: 10,
                    len: 10
                },
                Segment::Data {
                    id: 2,
                    size: 10,
                    slice_off: 0,
                    len: 10
                },
                Segment::Data {
                    id: 1,
                    size: 100,
                    slice_off: 30,
                    len: 10
                },
                Segment::Zero { len: 10 },
                Segment::Data {
                    id: 1,
                    size: 100,
                    slice_off: 50,
                    len: 50
                },
                Segment::Zero { len: 10 },
            ]
        );
        assert_eq!(resolve(&[], 5..9), vec![Segment::Zero { len: 4 }]);
        assert_eq!(resolve(&refs, 9..9), vec![]);
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = resolve(&refs, 9..3);
        assert_eq!(reversed, vec![]);
        let r = |pos, id, size, off, len| SliceRef {
            pos,
            id,
            size,
            off,
            len,
        };
        assert_eq!(
            visible(&refs),
            vec![
                r(0, 1, 100, 0, 20),
                r(20, 2, 10, 0, 10),
                r(30, 1, 100, 30, 10),
                r(50, 1, 100, 50, 50),
            ]
        );
    }

    #[test]
    fn resolve_is_fast_on_fragmented_chunks() {
        // 20k refs of 4 KiB random-ish writes over a 64 MiB chunk plus big overwrites.
        let chunk = 64u32 << 20;
        let mut refs = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for id in 1..=20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pos = (x % u64::from(chunk - 4096)) as u32;
            refs.push(SliceRef::new(pos, id, 4096));
            if id % 5000 == 0 {
                refs.push(SliceRef::new(0, id + 1_000_000, chunk / 2));
            }
        }
        let t = std::time::Instant::now();
        let segs = resolve(&refs, 0..chunk);
        let vis = visible(&refs);
        let plan = plan_compaction(&refs);
        // Generous bound: debug builds on a shared machine; O(n × bytes) would take minutes.
        assert!(t.elapsed().as_secs() < 10, "took {:?}", t.elapsed());
        assert_eq!(
            segs.iter().map(|s| u64::from(s.len())).sum::<u64>(),
            u64::from(chunk)
        );
        assert!(vis.len() > 256);
        match plan {
            CompactionPlan::Merge(m) => assert!(m.apply(u64::MAX).len() <= 256),
            other => panic!("expected a merge, got {other:?}"),
        }
    }

    #[test]
    fn compaction_examples() {
        let policy = CompactionPolicy {
            max_refs: 4,
            min_fragment: 100,
        };
        // Many full overwrites: re-pointing suffices.
        let refs: Vec<_> = (1..=10).map(|id| SliceRef::new(0, id, 1000)).collect();
        assert_eq!(
            plan_compaction_with(&refs, &policy),
            CompactionPlan::Rewrite {
                refs: vec![SliceRef::new(0, 10, 1000)]
            }
        );
        assert_eq!(
            plan_compaction_with(&[SliceRef::new(0, 10, 1000)], &policy),
            CompactionPlan::Noop
        );
        // Small appends after a big slice: merge only the small tail.
        let mut refs = vec![SliceRef::new(0, 1, 1000)];
        refs.extend((0..10).map(|i| SliceRef::new(1000 + i * 10, 2 + u64::from(i), 10)));
        let CompactionPlan::Merge(m) = plan_compaction_with(&refs, &policy) else {
            panic!("expected merge");
        };
        assert_eq!((m.start, m.end), (1000, 1100));
        assert_eq!(m.keep, vec![SliceRef::new(0, 1, 1000)]);
        assert_eq!(
            m.apply(99),
            vec![SliceRef::new(0, 1, 1000), SliceRef::new(1000, 99, 100)]
        );
        assert_eq!(
            unreferenced_slices(&refs, &m.apply(99)),
            (2..12).map(|id| (id, 10)).collect::<Vec<_>>()
        );
        assert!(needs_compaction(&refs, 4));
        assert!(!needs_compaction(&refs, 11));
    }

    #[test]
    fn rebase_after_concurrent_append() {
        let base_refs = vec![SliceRef::new(0, 1, 10), SliceRef::new(0, 2, 10)];
        let base = encode_chunk(&base_refs);
        let compacted = vec![SliceRef::new(0, 2, 10)];
        let mut current = base.clone();
        append_encoded(&mut current, &SliceRef::new(5, 3, 2));
        let rebased = rebase_compacted(&base, &compacted, &current).unwrap();
        assert_eq!(
            decode_chunk(&rebased).unwrap(),
            vec![SliceRef::new(0, 2, 10), SliceRef::new(5, 3, 2)]
        );
        // Unchanged value: just the compacted list.
        assert_eq!(
            rebase_compacted(&base, &compacted, &base).unwrap(),
            encode_chunk(&compacted)
        );
        // Value replaced (e.g. truncated and rewritten): no rebase.
        let other = encode_chunk(&[SliceRef::new(0, 7, 10)]);
        assert_eq!(rebase_compacted(&base, &compacted, &other), None);
        // Base was empty / absent.
        assert_eq!(
            rebase_compacted(&[], &[], &current).unwrap(),
            current.clone()
        );
        assert_eq!(rebase_compacted(&base, &compacted, &[7, 1]), None);
    }
}
