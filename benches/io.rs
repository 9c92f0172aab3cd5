//! Local disk: durable 4 MiB block writes to a temp file, with std (`write_all` +
//! `sync_data`) and with io_uring through tokio-uring (`write_all_at` + `sync_data`).
//!
//! Each criterion sample creates (truncates) the file, untimed, then writes its blocks one
//! after another at increasing offsets, each followed by `sync_data`: one iteration is one
//! durable 4 MiB block; throughput in bytes/s. The file lives in
//! `$RINGFS_BENCH_DIR` if set, otherwise in cargo's `CARGO_TARGET_TMPDIR` (the target
//! directory, i.e. real local disk rather than a tmpfs `/tmp`).
//! If the kernel refuses io_uring (sysctl, seccomp), the io_uring bench is skipped.

mod common;

use common::{fmt_rate, ratio, short_criterion, Tally, MIB};
use criterion::{Criterion, SamplingMode, Throughput};
use std::io::Write;
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

const BLOCK: usize = 4 << 20;

static TALLY: LazyLock<Tally> = LazyLock::new(Tally::default);

fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("RINGFS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn block() -> Vec<u8> {
    (0..BLOCK).map(|i| (i * 31 % 251) as u8).collect()
}

fn std_writes(path: &PathBuf, buf: &[u8], iters: u64) -> Duration {
    let mut f = std::fs::File::create(path).expect("create file");
    let start = Instant::now();
    for _ in 0..iters {
        f.write_all(buf).expect("write_all");
        f.sync_data().expect("sync_data");
    }
    start.elapsed()
}

#[cfg(target_os = "linux")]
mod uring {
    use std::path::Path;
    use std::time::{Duration, Instant};

    pub fn runtime() -> std::io::Result<tokio_uring::Runtime> {
        tokio_uring::Runtime::new(&tokio_uring::builder())
    }

    /// Same work as `std_writes`; the buffer goes to the kernel and back each write.
    pub fn writes(
        rt: &tokio_uring::Runtime,
        path: &Path,
        buf: Vec<u8>,
        iters: u64,
    ) -> (Duration, Vec<u8>) {
        rt.block_on(async {
            let f = tokio_uring::fs::File::create(path)
                .await
                .expect("create file");
            let mut buf = buf;
            let start = Instant::now();
            for i in 0..iters {
                let (res, b) = f.write_all_at(buf, i * super::BLOCK as u64).await;
                res.expect("write_all_at");
                buf = b;
                f.sync_data().await.expect("sync_data");
            }
            let took = start.elapsed();
            f.close().await.expect("close");
            (took, buf)
        })
    }
}

fn benches(c: &mut Criterion) {
    let dir = bench_dir();
    let mut g = c.benchmark_group("io_block_write_4MiB_sync");
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Bytes(BLOCK as u64));

    let path = dir.join(format!("ringfs-io-bench-{}.std", std::process::id()));
    let buf = block();
    g.bench_function("std", |b| {
        b.iter_custom(|iters| {
            let took = std_writes(&path, &buf, iters);
            TALLY.add("std", (iters as usize * BLOCK) as f64, took);
            took
        })
    });
    let _ = std::fs::remove_file(&path);

    #[cfg(target_os = "linux")]
    match uring::runtime() {
        Ok(rt) => {
            let path = dir.join(format!("ringfs-io-bench-{}.uring", std::process::id()));
            let mut buf = Some(block());
            g.bench_function("io_uring", |b| {
                b.iter_custom(|iters| {
                    let (took, back) =
                        uring::writes(&rt, &path, buf.take().expect("buffer"), iters);
                    buf = Some(back);
                    TALLY.add("io_uring", (iters as usize * BLOCK) as f64, took);
                    took
                })
            });
            let _ = std::fs::remove_file(&path);
        }
        Err(e) => eprintln!("io_uring unavailable here ({e}); skipping the io_uring bench"),
    }
    g.finish();
    eprintln!("io bench: files in {}", dir.display());
}

fn main() {
    let mut cr = short_criterion(Duration::from_secs(3));
    benches(&mut cr);
    cr.final_summary();
    let s = TALLY.rate("std");
    let u = TALLY.rate("io_uring");
    if s.is_some() || u.is_some() {
        println!();
        println!("io summary (4 MiB write + sync_data, median MiB/s of the timed calls, warm-up included)");
        println!("  std      {}", fmt_rate(s, MIB, "MiB/s"));
        println!("  io_uring {}", fmt_rate(u, MIB, "MiB/s"));
        println!("  io_uring / std {}", ratio(u, s));
    }
}
