//! `ringfs bench [DIR]`: a quick I/O benchmark of a directory, in the spirit of
//! `juicefs bench`.
//!
//! In a fresh sub-directory of DIR (removed afterwards), every thread:
//! 1. writes one big file in `--block-size` writes, then fsyncs and closes it;
//! 2. reads it back (after dropping the kernel's page cache, when allowed);
//! 3. writes `--small-file-count` files of `--small-file-size` (create, write, close);
//! 4. reads them back (page cache dropped again);
//! 5. stats them (dentry/inode caches dropped again).
//!
//! Prints a table of throughput (MiB/s), operations per second and latency per
//! operation (mean and 99th percentile, ms). A big-file operation is one block;
//! the final fsync + close count as part of the last block, so the write figures
//! are for durable data. Only the kernel's caches are dropped, never the
//! client's own (ringfs's block cache, say): "read" means "read through this
//! mount as it is configured".

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::print_stdout;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ringfs_engine::config::ByteSize;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Directory to benchmark in (default: the current directory).
    pub dir: Option<PathBuf>,
    /// Size of the big file each thread writes and reads.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub big_file_size: ByteSize,
    /// Size of each small file.
    #[arg(long, value_name = "SIZE", default_value = "128KiB")]
    pub small_file_size: ByteSize,
    /// Number of small files each thread writes and reads.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub small_file_count: u64,
    /// Size of each read and write call.
    #[arg(long, value_name = "SIZE", default_value = "1MiB")]
    pub block_size: ByteSize,
    /// Number of concurrent threads (each with its own files).
    #[arg(short = 'p', long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// Do not drop the kernel's page cache before the read and stat phases
    /// (dropping needs root; without it reads may come from memory).
    #[arg(long)]
    pub no_drop_caches: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep the benchmark's files instead of removing them.
    #[arg(long)]
    pub keep: bool,
}

/// One phase's outcome.
#[derive(Debug, Clone)]
struct PhaseResult {
    name: &'static str,
    /// What one operation is ("block", "file").
    unit: &'static str,
    ops: u64,
    bytes: u64,
    wall: Duration,
    /// Every operation's duration, sorted.
    lat: Vec<Duration>,
}

impl PhaseResult {
    fn secs(&self) -> f64 {
        self.wall.as_secs_f64().max(1e-9)
    }
    fn mib_per_s(&self) -> Option<f64> {
        (self.bytes > 0).then(|| self.bytes as f64 / (1024.0 * 1024.0) / self.secs())
    }
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.secs()
    }
    fn mean_ms(&self) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        self.lat.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / self.lat.len() as f64
    }
    fn p99_ms(&self) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let i = ((self.lat.len() as f64 * 0.99).ceil() as usize).clamp(1, self.lat.len()) - 1;
        self.lat[i].as_secs_f64() * 1000.0
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let meta =
        fs::metadata(&dir).with_context(|| format!("benchmark directory {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if args.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let block = args.block_size.bytes();
    if block == 0 || block > 256 << 20 {
        bail!("--block-size must be between 1 byte and 256MiB");
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let work = dir.join(format!(
        ".ringfs-bench-{}-{}",
        std::process::id(),
        stamp % 1_000_000_000
    ));
    fs::create_dir(&work).with_context(|| format!("cannot create {}", work.display()))?;
    for t in 0..args.threads {
        fs::create_dir(work.join(format!("t{t}")))
            .with_context(|| format!("cannot create a directory in {}", work.display()))?;
    }

    let mut bench = Bench {
        args: &args,
        work: work.clone(),
        drop_note: None,
        data: pattern(block as usize),
    };
    let result = bench.all();
    if !args.keep {
        if let Err(e) = fs::remove_dir_all(&work) {
            eprintln!("ringfs bench: could not remove {}: {e}", work.display());
        }
    } else {
        eprintln!("ringfs bench: files kept in {}", work.display());
    }
    let phases = result?;
    if args.json {
        print_stdout(&format!(
            "{}\n",
            to_json(&args, &dir, &phases, bench.drop_note.as_deref())
        ))
    } else {
        print_stdout(&table(&args, &dir, &phases, bench.drop_note.as_deref()))
    }
}

struct Bench<'a> {
    args: &'a BenchArgs,
    work: PathBuf,
    /// Set when the page cache could not be dropped (why).
    drop_note: Option<String>,
    /// One block of incompressible bytes, written over and over.
    data: Vec<u8>,
}

impl Bench<'_> {
    fn all(&mut self) -> Result<Vec<PhaseResult>> {
        let a = self.args;
        let mut out = Vec::new();
        let big = a.big_file_size.bytes();
        let small = a.small_file_size.bytes();
        let n = a.small_file_count;
        if big > 0 {
            out.push(self.phase(
                "Write big file",
                "block",
                big.div_ceil(a.block_size.bytes()),
                big,
                |b, t, pb| b.write_big(t, pb),
            )?);
            self.drop_caches();
            out.push(self.phase(
                "Read big file",
                "block",
                big.div_ceil(a.block_size.bytes()),
                big,
                |b, t, pb| b.read_big(t, pb),
            )?);
        }
        if n > 0 {
            out.push(
                self.phase("Write small file", "file", n, n * small, |b, t, pb| {
                    b.write_small(t, pb)
                })?,
            );
            self.drop_caches();
            out.push(
                self.phase("Read small file", "file", n, n * small, |b, t, pb| {
                    b.read_small(t, pb)
                })?,
            );
            self.drop_caches();
            out.push(self.phase("Stat file", "file", n, 0, |b, t, pb| b.stat_small(t, pb))?);
        }
        Ok(out)
    }

    /// Runs `f` on every thread (ops_per_thread operations, bytes_per_thread bytes each)
    /// behind one progress bar; `f` returns each operation's duration.
    fn phase<F>(
        &self,
        name: &'static str,
        unit: &'static str,
        ops_per_thread: u64,
        bytes_per_thread: u64,
        f: F,
    ) -> Result<PhaseResult>
    where
        F: Fn(&Self, usize, &ProgressBar) -> Result<Vec<Duration>> + Sync,
    {
        let threads = self.args.threads;
        let total_ops = ops_per_thread * threads as u64;
        let pb = ProgressBar::with_draw_target(Some(total_ops), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:<17}} [{{elapsed_precise}}] [{{wide_bar:.cyan/blue}}] {{pos}}/{{len}} {unit}s {{per_sec}} ETA {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        pb.set_style(style);
        pb.set_prefix(name);
        let start = Instant::now();
        let results: Vec<Result<Vec<Duration>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let pb = pb.clone();
                    let f = &f;
                    s.spawn(move || f(self, t, &pb))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a benchmark thread panicked")))
                })
                .collect()
        });
        let wall = start.elapsed();
        pb.finish();
        let mut lat = Vec::with_capacity(total_ops as usize);
        for r in results {
            lat.extend(r.with_context(|| format!("{} failed", name.to_lowercase()))?);
        }
        lat.sort_unstable();
        Ok(PhaseResult {
            name,
            unit,
            ops: total_ops,
            bytes: bytes_per_thread * threads as u64,
            wall,
            lat,
        })
    }

    fn big_path(&self, t: usize) -> PathBuf {
        self.work.join(format!("t{t}")).join("big")
    }

    fn small_path(&self, t: usize, i: u64) -> PathBuf {
        self.work
            .join(format!("t{t}"))
            .join(format!("small-{i:06}"))
    }

    fn write_big(&self, t: usize, pb: &ProgressBar) -> Result<Vec<Duration>> {
        let path = self.big_path(t);
        let size = self.args.big_file_size.bytes();
        let block = self.data.len() as u64;
        let mut f = File::create(&path).with_context(|| format!("create {}", path.display()))?;
        let mut lat = Vec::new();
        let mut done = 0u64;
        while done < size {
            let n = block.min(size - done) as usize;
            let t0 = Instant::now();
            f.write_all(&self.data[..n])
                .with_context(|| format!("write {}", path.display()))?;
            done += n as u64;
            if done == size {
                f.sync_all()
                    .with_context(|| format!("fsync {}", path.display()))?;
            }
            lat.push(t0.elapsed());
            pb.inc(1);
        }
        if size == 0 {
            f.sync_all()?;
        }
        let t0 = Instant::now();
        drop(f); // close (flush) counted with the last block
        if let Some(last) = lat.last_mut() {
            *last += t0.elapsed();
        }
        Ok(lat)
    }

    fn read_big(&self, t: usize, pb: &ProgressBar) -> Result<Vec<Duration>> {
        let path = self.big_path(t);
        let size = self.args.big_file_size.bytes();
        let mut buf = vec![0u8; self.data.len()];
        let mut f = File::open(&path).with_context(|| format!("open {}", path.display()))?;
        let mut lat = Vec::new();
        let mut done = 0u64;
        loop {
            let t0 = Instant::now();
            let n =
                read_full(&mut f, &mut buf).with_context(|| format!("read {}", path.display()))?;
            if n == 0 {
                break;
            }
            lat.push(t0.elapsed());
            done += n as u64;
            pb.inc(1);
        }
        if done != size {
            bail!("read {done} bytes from {}, expected {size}", path.display());
        }
        Ok(lat)
    }

    fn write_small(&self, t: usize, pb: &ProgressBar) -> Result<Vec<Duration>> {
        let size = self.args.small_file_size.bytes();
        let block = self.data.len() as u64;
        let mut lat = Vec::new();
        for i in 0..self.args.small_file_count {
            let path = self.small_path(t, i);
            let t0 = Instant::now();
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .with_context(|| format!("create {}", path.display()))?;
            let mut done = 0u64;
            while done < size {
                let n = block.min(size - done) as usize;
                f.write_all(&self.data[..n])
                    .with_context(|| format!("write {}", path.display()))?;
                done += n as u64;
            }
            drop(f);
            lat.push(t0.elapsed());
            pb.inc(1);
        }
        Ok(lat)
    }

    fn read_small(&self, t: usize, pb: &ProgressBar) -> Result<Vec<Duration>> {
        let size = self.args.small_file_size.bytes();
        let mut buf = vec![0u8; self.data.len()];
        let mut lat = Vec::new();
        for i in 0..self.args.small_file_count {
            let path = self.small_path(t, i);
            let t0 = Instant::now();
            let mut f = File::open(&path).with_context(|| format!("open {}", path.display()))?;
            let mut done = 0u64;
            loop {
                let n = read_full(&mut f, &mut buf)
                    .with_context(|| format!("read {}", path.display()))?;
                if n == 0 {
                    break;
                }
                done += n as u64;
            }
            drop(f);
            lat.push(t0.elapsed());
            if done != size {
                bail!("read {done} bytes from {}, expected {size}", path.display());
            }
            pb.inc(1);
        }
        Ok(lat)
    }

    fn stat_small(&self, t: usize, pb: &ProgressBar) -> Result<Vec<Duration>> {
        let mut lat = Vec::new();
        for i in 0..self.args.small_file_count {
            let path = self.small_path(t, i);
            let t0 = Instant::now();
            fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
            lat.push(t0.elapsed());
            pb.inc(1);
        }
        Ok(lat)
    }

    /// sync, then drop the page, dentry and inode caches; remembers why not if it
    /// cannot (not root), so the summary can say so.
    fn drop_caches(&mut self) {
        if self.args.no_drop_caches {
            self.drop_note.get_or_insert_with(|| {
                "--no-drop-caches: reads and stats may be served by the kernel's caches".into()
            });
            return;
        }
        // SAFETY: sync(2) has no arguments and cannot fail.
        unsafe { libc::sync() };
        if let Err(e) = fs::write("/proc/sys/vm/drop_caches", "3\n") {
            self.drop_note.get_or_insert_with(|| format!("page cache not dropped ({e}; needs root): reads and stats may be served from memory"));
        }
    }
}

/// Reads until `buf` is full or end of file; returns the byte count.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `len` pseudo-random (incompressible) bytes from a fixed seed (xorshift64*).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

fn describe(args: &BenchArgs, dir: &Path) -> String {
    format!(
        "{} thread(s) in {}: big file {} per thread in {} blocks, {} small files of {} per thread",
        args.threads,
        dir.display(),
        args.big_file_size,
        args.block_size,
        args.small_file_count,
        args.small_file_size
    )
}

/// The summary table as text (printed once, so a closed stdout is one error).
fn table(args: &BenchArgs, dir: &Path, phases: &[PhaseResult], note: Option<&str>) -> String {
    let mut out = format!("Benchmark: {}\n", describe(args, dir));
    let head = [
        "ITEM",
        "THROUGHPUT",
        "OPS/S",
        "LATENCY MEAN",
        "LATENCY P99",
        "OPS",
        "TIME",
    ];
    let rows: Vec<[String; 7]> = phases
        .iter()
        .map(|p| {
            [
                p.name.to_string(),
                p.mib_per_s()
                    .map(|v| format!("{v:.2} MiB/s"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.1} {}s/s", p.ops_per_s(), p.unit),
                format!("{:.2} ms/{}", p.mean_ms(), p.unit),
                format!("{:.2} ms/{}", p.p99_ms(), p.unit),
                p.ops.to_string(),
                format!("{:.2} s", p.secs()),
            ]
        })
        .collect();
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let sep = format!(
        "+{}+",
        w.iter()
            .map(|n| "-".repeat(n + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!(" {c:<width$} ", width = w[i])
                } else {
                    format!(" {c:>width$} ", width = w[i])
                }
            })
            .collect();
        format!("|{}|", parts.join("|"))
    };
    let _ = writeln!(out, "{sep}\n{}\n{sep}", line(&head.map(String::from)));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    let _ = writeln!(out, "{sep}");
    if let Some(n) = note {
        let _ = writeln!(out, "Note: {n}");
    }
    out
}

fn to_json(args: &BenchArgs, dir: &Path, phases: &[PhaseResult], note: Option<&str>) -> String {
    let items: Vec<serde_json::Value> = phases
        .iter()
        .map(|p| {
            serde_json::json!({
                "item": p.name,
                "unit": p.unit,
                "ops": p.ops,
                "bytes": p.bytes,
                "seconds": p.secs(),
                "mib_per_s": p.mib_per_s(),
                "ops_per_s": p.ops_per_s(),
                "latency_mean_ms": p.mean_ms(),
                "latency_p99_ms": p.p99_ms(),
            })
        })
        .collect();
    serde_json::json!({
        "dir": dir.display().to_string(),
        "threads": args.threads,
        "big_file_size": args.big_file_size.bytes(),
        "small_file_size": args.small_file_size.bytes(),
        "small_file_count": args.small_file_count,
        "block_size": args.block_size.bytes(),
        "note": note,
        "results": items,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &Path) -> BenchArgs {
        BenchArgs {
            dir: Some(dir.to_path_buf()),
            big_file_size: ByteSize::kib(300),
            small_file_size: ByteSize::kib(5),
            small_file_count: 7,
            block_size: ByteSize::kib(64),
            threads: 2,
            no_drop_caches: true,
            json: true,
            keep: false,
        }
    }

    #[test]
    fn runs_in_a_temp_dir_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("ringfs-bench-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        run(args(&dir)).unwrap();
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "the work directory is removed"
        );
        fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn phases_count_blocks_and_files() {
        let dir = std::env::temp_dir().join(format!("ringfs-bench-test2-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let a = args(&dir);
        let work = dir.join("w");
        fs::create_dir_all(work.join("t0")).unwrap();
        fs::create_dir_all(work.join("t1")).unwrap();
        let mut b = Bench {
            args: &a,
            work: work.clone(),
            drop_note: None,
            data: pattern(a.block_size.as_usize()),
        };
        let phases = b.all().unwrap();
        let names: Vec<_> = phases.iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            [
                "Write big file",
                "Read big file",
                "Write small file",
                "Read small file",
                "Stat file"
            ]
        );
        // 300 KiB in 64 KiB blocks: 5 blocks per thread (the last one short)
        assert_eq!(phases[0].ops, 10);
        assert_eq!(phases[0].lat.len(), 10);
        assert_eq!(phases[1].lat.len(), 10);
        assert_eq!(phases[0].bytes, 2 * 300 * 1024);
        assert_eq!(phases[2].ops, 14);
        assert_eq!(phases[4].bytes, 0);
        assert!(phases[4].mib_per_s().is_none());
        assert_eq!(fs::metadata(work.join("t1/big")).unwrap().len(), 300 * 1024);
        assert!(b.drop_note.is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pattern_is_deterministic_and_not_constant() {
        let p = pattern(4096);
        assert_eq!(p, pattern(4096));
        assert_eq!(p.len(), 4096);
        assert!(p.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn percentiles() {
        let p = PhaseResult {
            name: "x",
            unit: "file",
            ops: 100,
            bytes: 0,
            wall: Duration::from_secs(1),
            lat: (1..=100).map(Duration::from_millis).collect(),
        };
        assert!((p.mean_ms() - 50.5).abs() < 1e-9);
        assert!((p.p99_ms() - 99.0).abs() < 1e-9);
        assert!((p.ops_per_s() - 100.0).abs() < 1e-9);
    }
}
