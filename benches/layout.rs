//! Pure layout logic (no I/O): resolving fragmented chunks, the chunk value codec, and
//! etcd key encoding.
//!
//! * `layout_resolve/*`: `layout::resolve` on a 64 MiB chunk whose slice list has 100,
//!   1,000 or 10,000 refs left by random small overwrites (4 KiB–256 KiB, 4 KiB aligned,
//!   a fixed seed), over the whole chunk and over one 4 MiB block; throughput in refs/s.
//! * `layout_codec/*`: `encode_chunk` / `decode_chunk` of those lists; bytes/s of the
//!   encoded value.
//! * `layout_keys/*`: `Keys::dentry` / `attr` / `chunk`, 1,024 keys per iteration; keys/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringfs_engine::layout::{decode_chunk, encode_chunk, encoded_len, resolve, SliceRef};
use ringfs_engine::meta::Keys;
use std::hint::black_box;
use std::time::Duration;

const CHUNK: u32 = 64 << 20;
const BLOCK: u32 = 4 << 20;
const PAGE: u32 = 4 << 10;
const REFS: [usize; 3] = [100, 1_000, 10_000];
const KEYS_PER_ITER: u64 = 1024;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// `n` refs, oldest first: random overwrites of 1–64 pages anywhere in the chunk, every
/// tenth one a partial reference into a bigger slice (as compaction and truncation leave).
fn fragmented(n: usize) -> Vec<SliceRef> {
    let mut rng = Rng(0x5eed_0000 + n as u64);
    (0..n)
        .map(|i| {
            let len = (1 + rng.below(64)) * PAGE;
            let pos = rng.below((CHUNK - len) / PAGE + 1) * PAGE;
            let id = i as u64 + 1;
            if i % 10 == 9 {
                let off = rng.below(16) * PAGE;
                SliceRef {
                    pos,
                    id,
                    size: off + len + PAGE,
                    off,
                    len,
                }
            } else {
                SliceRef::new(pos, id, len)
            }
        })
        .collect()
}

fn bench_resolve(c: &mut Criterion) {
    let mut g = c.benchmark_group("layout_resolve");
    for n in REFS {
        let refs = fragmented(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("whole_chunk", n), &refs, |b, refs| {
            b.iter(|| resolve(black_box(refs), 0..CHUNK))
        });
        // A block-sized read in the middle of the chunk.
        let read = 8 * BLOCK..9 * BLOCK;
        g.bench_with_input(BenchmarkId::new("one_block", n), &refs, |b, refs| {
            b.iter(|| resolve(black_box(refs), read.clone()))
        });
    }
    g.finish();
}

fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("layout_codec");
    for n in REFS {
        let refs = fragmented(n);
        let encoded = encode_chunk(&refs);
        assert_eq!(encoded.len(), encoded_len(n));
        assert_eq!(decode_chunk(&encoded).expect("decodes"), refs);
        g.throughput(Throughput::Bytes(encoded.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode", n), &refs, |b, refs| {
            b.iter(|| encode_chunk(black_box(refs)))
        });
        g.bench_with_input(BenchmarkId::new("decode", n), &encoded, |b, enc| {
            b.iter(|| decode_chunk(black_box(enc)).expect("decodes"))
        });
    }
    g.finish();
}

fn bench_keys(c: &mut Criterion) {
    let keys = Keys::new("ringfs", "bench-volume");
    let names: Vec<Vec<u8>> = (0..KEYS_PER_ITER)
        .map(|i| format!("file-{i:08}.dat").into_bytes())
        .collect();
    let mut g = c.benchmark_group("layout_keys");
    g.throughput(Throughput::Elements(KEYS_PER_ITER));
    g.bench_function("dentry", |b| {
        b.iter(|| {
            for (i, n) in names.iter().enumerate() {
                black_box(keys.dentry(black_box(1000 + i as u64 / 64), n));
            }
        })
    });
    g.bench_function("attr", |b| {
        b.iter(|| {
            for ino in 0..KEYS_PER_ITER {
                black_box(keys.attr(black_box(1_000_000 + ino)));
            }
        })
    });
    g.bench_function("chunk", |b| {
        b.iter(|| {
            for i in 0..KEYS_PER_ITER {
                black_box(keys.chunk(black_box(42), i as u32));
            }
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_resolve, bench_codec, bench_keys
}
criterion_main!(benches);
