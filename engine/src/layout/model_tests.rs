//! End-to-end check of the data model against a plain byte vector.
//!
//! Random sequences of write / truncate / punch-hole / compaction are applied both to a
//! `Vec<u8>` (the obviously correct file) and to a miniature ringfs: encoded chunk values
//! in a map (etcd) and block objects keyed by `block_key` (Swift). Reads go through the
//! whole read path: `chunk_spans` → `decode_chunk` → `resolve` → `block_reads` →
//! objects, and must match the vector byte for byte. Tiny chunk and block sizes make
//! every boundary case (spans across chunks, partial blocks, refs into the middle of a
//! slice) common.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use proptest::prelude::*;

use super::*;

/// Deterministic pseudo-random byte `i` of write number `tag`, so stale data is
/// distinguishable from current data.
fn byte(tag: u64, i: u64) -> u8 {
    let mut x = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 29)) as u8
}

struct Mini {
    cs: u64,
    bs: u32,
    /// chunk index → encoded chunk value (the etcd side).
    chunks: BTreeMap<u64, Vec<u8>>,
    /// block key → block bytes (the Swift side).
    objects: HashMap<String, Vec<u8>>,
    next_id: u64,
    size: u64,
    /// The reference file.
    file: Vec<u8>,
}

impl Mini {
    fn new(cs: u64, bs: u32) -> Self {
        Mini {
            cs,
            bs,
            chunks: BTreeMap::new(),
            objects: HashMap::new(),
            next_id: 1,
            size: 0,
            file: Vec::new(),
        }
    }

    fn refs(&self, chunk: u64) -> Vec<SliceRef> {
        let refs = self
            .chunks
            .get(&chunk)
            .map(|v| decode_chunk(v).expect("decode"))
            .unwrap_or_default();
        validate_refs(&refs, self.cs).expect("refs inside chunk");
        refs
    }

    /// Upload a slice as blocks and return its id.
    fn put_slice(&mut self, content: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        for (k, r) in split_into_blocks(content.len() as u32, self.bs) {
            let key = block_key(id, k, r.end - r.start);
            let prev = self
                .objects
                .insert(key, content[r.start as usize..r.end as usize].to_vec());
            assert!(prev.is_none(), "blocks are write-once");
        }
        id
    }

    fn read_slice(&self, id: u64, size: u32, range: Range<u32>, out: &mut [u8]) {
        assert_eq!(out.len(), (range.end - range.start) as usize);
        let mut filled = 0;
        for br in block_reads(size, self.bs, range).expect("range inside slice") {
            let obj = &self.objects[&br.key(id)];
            assert_eq!(
                obj.len(),
                br.block_len as usize,
                "length in key matches object"
            );
            let part = &obj[br.range_in_block.start as usize..br.range_in_block.end as usize];
            assert_eq!(br.out_off, filled, "block reads are ordered and contiguous");
            out[br.out_off..br.out_off + part.len()].copy_from_slice(part);
            filled += part.len();
        }
        assert_eq!(filled, out.len());
    }

    /// Read chunk bytes `range` of chunk `chunk` into `out` through resolve + block math.
    fn read_chunk(&self, chunk: u64, range: Range<u32>, out: &mut [u8]) {
        let mut o = 0usize;
        for seg in resolve(&self.refs(chunk), range) {
            let n = seg.len() as usize;
            match seg {
                Segment::Zero { .. } => out[o..o + n].fill(0),
                Segment::Data {
                    id,
                    size,
                    slice_off,
                    len,
                } => self.read_slice(id, size, slice_off..slice_off + len, &mut out[o..o + n]),
            }
            o += n;
        }
        assert_eq!(o, out.len(), "segments tile the range");
    }

    fn read(&self, off: u64, len: u64) -> Vec<u8> {
        let mut out = vec![0xA5; len as usize];
        for span in chunk_spans(off, len, self.cs) {
            let dst = &mut out[span.buf_off..span.buf_off + span.len as usize];
            self.read_chunk(span.chunk_index, span.chunk_range(), dst);
        }
        out
    }

    fn write(&mut self, off: u64, len: u64, pre: u32, post: u32) {
        check_file_range(off, len, MAX_FILE_SIZE).unwrap();
        if len == 0 {
            return; // a zero-length write does not extend the file
        }
        let tag = self.next_id;
        let data: Vec<u8> = (0..len).map(|i| byte(tag, i)).collect();
        for span in chunk_spans(off, len, self.cs) {
            // Store the slice with junk around the used part to exercise `off` (as after a
            // compaction re-pointed a ref into the middle of a larger slice).
            let mut content: Vec<u8> = (0..pre).map(|i| byte(!tag, u64::from(i))).collect();
            content.extend_from_slice(&data[span.buf_off..span.buf_off + span.len as usize]);
            content.extend((0..post).map(|i| byte(tag ^ 0x55, u64::from(i))));
            let size = content.len() as u32;
            let id = self.put_slice(&content);
            let r = SliceRef {
                pos: span.chunk_off,
                id,
                size,
                off: pre,
                len: span.len,
            };
            append_encoded(self.chunks.entry(span.chunk_index).or_default(), &r);
        }
        let end = (off + len) as usize;
        if end > self.file.len() {
            self.file.resize(end, 0);
        }
        self.file[off as usize..end].copy_from_slice(&data);
        self.size = self.size.max(off + len);
    }

    fn truncate(&mut self, new_size: u64) {
        check_file_range(0, new_size, MAX_FILE_SIZE).unwrap();
        let plan = plan_truncate(self.size, new_size, self.cs);
        for idx in plan.dropped_chunks {
            self.chunks.remove(&idx);
        }
        if let Some((idx, r)) = plan.zero_tail {
            append_encoded(self.chunks.entry(idx).or_default(), &r);
        }
        self.file.resize(new_size as usize, 0);
        self.size = new_size;
    }

    /// fallocate(PUNCH_HOLE | KEEP_SIZE): clipped to the file size.
    fn punch(&mut self, off: u64, len: u64) {
        if off >= self.size {
            return;
        }
        let len = len.min(self.size - off);
        for (idx, r) in punch_hole_refs(off, len, self.cs) {
            append_encoded(self.chunks.entry(idx).or_default(), &r);
        }
        self.file[off as usize..(off + len) as usize].fill(0);
    }

    fn compact(&mut self, pick: usize, policy: &CompactionPolicy) {
        if self.chunks.is_empty() {
            return;
        }
        let idx = *self.chunks.keys().nth(pick % self.chunks.len()).unwrap();
        let base = self.chunks[&idx].clone();
        let refs = decode_chunk(&base).unwrap();
        let new_refs = match plan_compaction_with(&refs, policy) {
            CompactionPlan::Noop => return,
            CompactionPlan::Rewrite { refs: new } => new,
            CompactionPlan::Merge(plan) => {
                // Produce the new slice from the planned segments through the read path.
                let mut content = vec![0u8; plan.len() as usize];
                let mut o = 0usize;
                for seg in &plan.segments {
                    let n = seg.len() as usize;
                    if let Segment::Data {
                        id,
                        size,
                        slice_off,
                        len,
                    } = *seg
                    {
                        self.read_slice(
                            id,
                            size,
                            slice_off..slice_off + len,
                            &mut content[o..o + n],
                        );
                    }
                    o += n;
                }
                assert_eq!(o, content.len());
                // It must equal what the chunk currently reads in that window.
                let mut expect = vec![0u8; content.len()];
                self.read_chunk(idx, plan.start..plan.end, &mut expect);
                assert_eq!(content, expect);
                let id = self.put_slice(&content);
                plan.apply(id)
            }
        };
        assert!(new_refs.len() <= policy.max_refs.max(1));
        // Garbage: slices no longer referenced by this chunk (no sharing in the model).
        let garbage = unreferenced_slices(&refs, &new_refs);
        let value = rebase_compacted(&base, &new_refs, &base).unwrap();
        self.chunks.insert(idx, value);
        for (id, size) in garbage {
            for (k, r) in split_into_blocks(size, self.bs) {
                assert!(self
                    .objects
                    .remove(&block_key(id, k, r.end - r.start))
                    .is_some());
            }
        }
    }

    fn check_all(&self) {
        assert_eq!(self.file.len() as u64, self.size);
        assert_eq!(self.read(0, self.size), self.file);
        // The invariant plan_truncate relies on: nothing past the file size is visible,
        // and no chunk values exist wholly past it.
        let end_chunk = self.size.div_ceil(self.cs);
        assert!(self.chunks.range(end_chunk..).next().is_none());
        if !self.size.is_multiple_of(self.cs) {
            let tail = (self.size % self.cs) as u32..self.cs as u32;
            let segs = resolve(&self.refs(self.size / self.cs), tail);
            assert!(
                segs.iter().all(|s| matches!(s, Segment::Zero { .. })),
                "{segs:?}"
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write {
        off: u16,
        len: u16,
        pre: u8,
        post: u8,
    },
    Truncate {
        size: u16,
    },
    Punch {
        off: u16,
        len: u16,
    },
    Compact {
        pick: u8,
        max_refs: u8,
        min_fragment: u16,
    },
    Read {
        off: u16,
        len: u16,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (any::<u16>(), any::<u16>(), 0u8..4, 0u8..4)
            .prop_map(|(off, len, pre, post)| Op::Write { off, len, pre: pre * 3, post: post * 5 }),
        2 => any::<u16>().prop_map(|size| Op::Truncate { size }),
        1 => (any::<u16>(), any::<u16>()).prop_map(|(off, len)| Op::Punch { off, len }),
        2 => (any::<u8>(), 1u8..8, any::<u16>())
            .prop_map(|(pick, max_refs, min_fragment)| Op::Compact { pick, max_refs, min_fragment }),
        2 => (any::<u16>(), any::<u16>()).prop_map(|(off, len)| Op::Read { off, len }),
    ]
}

fn run(cs_shift: u32, bs_shift: u32, ops: &[Op]) {
    let cs = 1u64 << cs_shift;
    let bs = 1u32 << bs_shift.min(cs_shift);
    let span = 4 * cs + cs / 2; // file offsets range over a few chunks
    let mut m = Mini::new(cs, bs);
    for op in ops {
        match *op {
            Op::Write {
                off,
                len,
                pre,
                post,
            } => {
                let off = u64::from(off) % span;
                let len = u64::from(len) % (2 * cs + 3);
                m.write(off, len, u32::from(pre), u32::from(post));
            }
            Op::Truncate { size } => m.truncate(u64::from(size) % span),
            Op::Punch { off, len } => {
                m.punch(u64::from(off) % span, u64::from(len) % (2 * cs));
            }
            Op::Compact {
                pick,
                max_refs,
                min_fragment,
            } => {
                let policy = CompactionPolicy {
                    max_refs: usize::from(max_refs),
                    min_fragment: u32::from(min_fragment) % (cs as u32 / 2 + 1),
                };
                m.compact(usize::from(pick), &policy);
            }
            Op::Read { off, len } => {
                let off = u64::from(off) % (m.size + 1);
                let len = (u64::from(len) % (2 * cs)).min(m.size - off);
                let got = m.read(off, len);
                assert_eq!(got, &m.file[off as usize..(off + len) as usize]);
            }
        }
        m.check_all();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn file_model_matches_byte_vector(
        cs_shift in 3u32..9,
        bs_shift in 1u32..8,
        ops in proptest::collection::vec(arb_op(), 1..40),
    ) {
        run(cs_shift, bs_shift, &ops);
    }
}

#[test]
fn shrink_then_extend_reads_zeros() {
    let mut m = Mini::new(64, 16);
    m.write(0, 200, 0, 0);
    m.truncate(70);
    m.truncate(190); // grow again: 70..190 must be zeros, not the old bytes
    m.check_all();
    assert!(m.read(70, 120).iter().all(|&b| b == 0));
    m.write(150, 10, 2, 3); // write past a hole inside the old data
    m.check_all();
    assert!(m.read(70, 80).iter().all(|&b| b == 0));
}

#[test]
fn many_small_writes_stay_bounded_with_compaction() {
    let mut m = Mini::new(256, 32);
    let policy = CompactionPolicy {
        max_refs: 8,
        min_fragment: 64,
    };
    for i in 0..500u64 {
        m.write((i * 37) % 250, 1 + i % 7, 1, 1);
        if needs_compaction(&m.refs(0), policy.max_refs) {
            m.compact(0, &policy);
            assert!(m.refs(0).len() <= policy.max_refs);
        }
        m.check_all();
    }
}
