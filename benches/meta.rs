//! Metadata: file creates per second against the real etcd (the local services), with 1
//! and 16 concurrent callers of one `Meta` (one client), group commit on and off, and two
//! layouts: every caller creating in its own directory ("own_dirs"), and all callers
//! creating in one shared directory ("one_dir", where every create also rewrites the
//! same parent attribute, so without group commit the callers conflict).
//!
//! Each variant gets a freshly formatted volume (under a unique name, removed at the end).
//! One criterion iteration is one round of `callers` creates; a sample of `n` iterations
//! runs `callers` tasks that each create `n` files back to back, so the reported
//! throughput is aggregate creates/s. A ratio table (group commit on / off) is printed at
//! the end.

mod common;

use common::{fmt_rate, ratio, short_criterion, Tally};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use ringfs_engine::meta::kv::{KvStore, TxnRequest, Write};
use ringfs_engine::meta::ops::Creds;
use ringfs_engine::meta::volume::{VolumeRecord, FORMAT_VERSION};
use ringfs_engine::meta::{FileKind, Ino, Keys, Meta, MetaError, ROOT_INO};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const CALLERS: [usize; 2] = [1, 16];
/// The target of group commit on / off at 16 callers.
const TARGET: f64 = 4.0;
const CREDS: Creds = Creds { uid: 0, gid: 0 };

static TALLY: LazyLock<Tally> = LazyLock::new(Tally::default);
/// Creates that failed with `Busy` (too many conflicts), per bench id.
static BUSY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// Every volume made, for removal at the end.
static VOLUMES: Mutex<Vec<Arc<Vol>>> = Mutex::new(Vec::new());

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    OwnDirs,
    OneDir,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OwnDirs => "own_dirs",
            Layout::OneDir => "one_dir",
        }
    }
}

struct Vol {
    meta: Meta,
    kv: Arc<dyn KvStore>,
    keys: Keys,
    /// The directory of each caller (all the same for `OneDir`).
    dirs: Vec<Ino>,
    /// Next file number of each caller.
    seq: Vec<AtomicU64>,
}

fn gc_name(group_commit: bool) -> &'static str {
    if group_commit {
        "gc_on"
    } else {
        "gc_off"
    }
}

fn id(group_commit: bool, layout: Layout, callers: usize) -> String {
    format!("{}/{}/{callers}", gc_name(group_commit), layout.name())
}

/// A freshly formatted volume with its callers' directories, opened with group commit
/// on or off (the rest of the runner options from the config file).
async fn fresh_volume(group_commit: bool, layout: Layout, callers: usize) -> Arc<Vol> {
    let cfg = common::config();
    let kv = ringfs_engine::setup::connect_etcd(&cfg)
        .await
        .expect("etcd reachable");
    let name = common::unique("meta");
    let keys = Keys::new(&cfg.etcd.prefix, &name);
    let record = VolumeRecord {
        name: name.clone(),
        uuid: uuid::Uuid::new_v4().to_string(),
        format_version: FORMAT_VERSION,
        block_size: 4 << 20,
        chunk_size: 64 << 20,
        container: cfg.swift.container_for(&name),
        features: vec![],
        created: 0,
    };
    Meta::format(kv.clone(), &keys, &record, false)
        .await
        .expect("format volume");
    let mut opts = ringfs_engine::setup::runner_options(&cfg);
    opts.group_commit = group_commit;
    let meta = Meta::open(kv.clone(), keys.clone(), opts, "bench")
        .await
        .expect("open volume");
    let mkdir = |n: String| {
        let meta = &meta;
        async move {
            meta.mknod(CREDS, ROOT_INO, n.as_bytes(), FileKind::Dir, 0o755, 0)
                .await
                .expect("mkdir")
                .ino
        }
    };
    let dirs = match layout {
        Layout::OwnDirs => {
            let mut d = Vec::with_capacity(callers);
            for i in 0..callers {
                d.push(mkdir(format!("caller{i}")).await);
            }
            d
        }
        Layout::OneDir => vec![mkdir("shared".into()).await; callers],
    };
    let vol = Arc::new(Vol {
        meta,
        kv,
        keys,
        dirs,
        seq: (0..callers).map(|_| AtomicU64::new(0)).collect(),
    });
    VOLUMES.lock().unwrap().push(vol.clone());
    vol
}

/// `callers` tasks, each creating `per_caller` files; wall time and `Busy` failures.
async fn closed_loop(vol: &Arc<Vol>, per_caller: u64) -> (Duration, u64) {
    let start = Instant::now();
    let tasks: Vec<_> = (0..vol.dirs.len())
        .map(|c| {
            let vol = vol.clone();
            tokio::spawn(async move {
                let mut busy = 0u64;
                for _ in 0..per_caller {
                    let n = vol.seq[c].fetch_add(1, Ordering::Relaxed);
                    let name = format!("c{c}-f{n}");
                    match vol
                        .meta
                        .mknod(
                            CREDS,
                            vol.dirs[c],
                            name.as_bytes(),
                            FileKind::File,
                            0o644,
                            0,
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(MetaError::Busy(_)) => busy += 1,
                        Err(e) => panic!("create {name}: {e}"),
                    }
                }
                busy
            })
        })
        .collect();
    let mut busy = 0;
    for t in tasks {
        busy += t.await.expect("bench task");
    }
    (start.elapsed(), busy)
}

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn benches(cr: &mut Criterion) {
    let rt = runtime();
    let mut g = cr.benchmark_group("meta_create");
    g.sampling_mode(SamplingMode::Flat);
    for layout in [Layout::OwnDirs, Layout::OneDir] {
        for callers in CALLERS {
            g.throughput(Throughput::Elements(callers as u64));
            for gc in [true, false] {
                let mut vol: Option<Arc<Vol>> = None;
                let bench_id =
                    BenchmarkId::new(format!("{}/{}", gc_name(gc), layout.name()), callers);
                g.bench_with_input(bench_id, &callers, |b, &callers| {
                    let vol = vol
                        .get_or_insert_with(|| rt.block_on(fresh_volume(gc, layout, callers)))
                        .clone();
                    b.to_async(rt).iter_custom(|iters| {
                        let vol = vol.clone();
                        async move {
                            let (took, busy) = closed_loop(&vol, iters).await;
                            let key = id(gc, layout, callers);
                            TALLY.add(&key, (iters as usize * callers) as f64 - busy as f64, took);
                            if busy > 0 {
                                *BUSY.lock().unwrap().entry(key).or_default() += busy;
                            }
                            took
                        }
                    });
                });
            }
        }
    }
    g.finish();
}

fn summary() {
    println!();
    println!("meta summary (median successful creates/s of the timed calls, warm-up included; target on/off at 16 callers >= {TARGET:.1}x)");
    println!(
        "{:<9} {:>7} {:>14} {:>14} {:>8}  target",
        "layout", "callers", "gc_on /s", "gc_off /s", "on/off"
    );
    for layout in [Layout::OwnDirs, Layout::OneDir] {
        for callers in CALLERS {
            let on = TALLY.rate(&id(true, layout, callers));
            let off = TALLY.rate(&id(false, layout, callers));
            if on.is_none() && off.is_none() {
                continue;
            }
            let verdict = match (callers, on, off) {
                (16, Some(on), Some(off)) if off > 0.0 => {
                    if on / off >= TARGET {
                        "met"
                    } else {
                        "MISSED"
                    }
                }
                _ => "-",
            };
            println!(
                "{:<9} {:>7} {:>14} {:>14} {:>8}  {verdict}",
                layout.name(),
                callers,
                fmt_rate(on, 1.0, ""),
                fmt_rate(off, 1.0, ""),
                ratio(on, off)
            );
        }
    }
    let vols = VOLUMES.lock().unwrap();
    for v in vols.iter() {
        let s = &v.meta.runner().stats;
        let txns = s.txns.load(Ordering::Relaxed);
        let ops = s.ops_committed.load(Ordering::Relaxed);
        println!(
            "  volume {}: group_commit {}, {} txns, {} ops committed ({:.1} ops/txn), {} conflicts, {} batch fallbacks",
            String::from_utf8_lossy(v.keys.prefix()),
            v.meta.runner().options().group_commit,
            txns,
            ops,
            ops as f64 / txns.max(1) as f64,
            s.conflicts.load(Ordering::Relaxed),
            s.batch_fallbacks.load(Ordering::Relaxed),
        );
    }
    for (key, n) in BUSY.lock().unwrap().iter() {
        println!("  {key}: {n} creates failed with Busy (too many conflicts; not counted above)");
    }
}

/// Removes the bench volumes from etcd (sessions first, then every key of the volume).
async fn cleanup() {
    let vols: Vec<Arc<Vol>> = VOLUMES.lock().unwrap().drain(..).collect();
    for v in vols {
        let _ = v.meta.close_session().await;
        let (start, end) = v.keys.volume_range();
        let txn = TxnRequest {
            compares: vec![],
            writes: vec![Write::DeleteRange { start, end }],
        };
        if let Err(e) = v.kv.txn(&txn).await {
            eprintln!(
                "meta bench cleanup: deleting {}: {e}",
                String::from_utf8_lossy(v.keys.prefix())
            );
        }
    }
}

fn main() {
    let mut cr = short_criterion(Duration::from_secs(4));
    benches(&mut cr);
    cr.final_summary();
    summary();
    runtime().block_on(cleanup());
}
