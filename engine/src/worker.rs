//! Thread-per-core workers.
//!
//! Each worker is one OS thread running its own single-threaded async runtime: an
//! io_uring runtime (tokio-uring) when the kernel allows it, otherwise a plain
//! current-thread tokio runtime (the fallback is chosen once at start and logged). Jobs
//! arrive on a per-worker lock-free queue (crossbeam); a `Notify` wakes the worker's
//! dispatcher, which spawns each job as a local task, so a slow etcd or Swift call never
//! blocks the next request. Inodes are sharded to workers by number, so everything about
//! one open file lives on one thread without locks.

use crossbeam::channel::{unbounded, Receiver, Sender, TryRecvError};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::Notify;

/// How local I/O is done (config `engine.io_engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    Uring,
    Psync,
}

/// A unit of work for a worker: gets the worker's state, returns a local future.
pub type LocalJob<W> = Box<dyn FnOnce(Rc<W>) -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static>;

struct Lane<W> {
    tx: Sender<LocalJob<W>>,
    wake: Arc<Notify>,
}

/// The set of workers. `submit` is wait-free for the caller.
pub struct Pool<W: 'static> {
    lanes: Vec<Lane<W>>,
    threads: parking_lot::Mutex<Vec<JoinHandle<()>>>,
    stopping: Arc<AtomicBool>,
    pub io_mode: IoMode,
}

impl<W: 'static> Pool<W> {
    /// Starts `n` workers; `make(i, mode)` builds worker `i`'s state on its own thread.
    pub fn start<F>(n: usize, want_uring: Option<bool>, make: F) -> std::io::Result<Arc<Self>>
    where
        F: Fn(usize, IoMode) -> Rc<W> + Send + Sync + 'static,
    {
        let n = n.max(1);
        let mode = pick_io_mode(want_uring)?;
        let make = Arc::new(make);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut lanes = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = unbounded::<LocalJob<W>>();
            let wake = Arc::new(Notify::new());
            let (make, wake2, stop) = (make.clone(), wake.clone(), stopping.clone());
            let t = std::thread::Builder::new()
                .name(format!("ringfs-worker-{i}"))
                .spawn(move || run_worker(i, mode, rx, wake2, stop, move |m| make(i, m)))?;
            lanes.push(Lane { tx, wake });
            threads.push(t);
        }
        Ok(Arc::new(Pool {
            lanes,
            threads: parking_lot::Mutex::new(threads),
            stopping,
            io_mode: mode,
        }))
    }

    pub fn workers(&self) -> usize {
        self.lanes.len()
    }

    /// The worker that owns `key` (an inode number).
    pub fn shard_of(&self, key: u64) -> usize {
        (key % self.lanes.len() as u64) as usize
    }

    /// Queues `job` on the worker owning `key`.
    pub fn submit(&self, key: u64, job: LocalJob<W>) {
        let lane = &self.lanes[self.shard_of(key)];
        if lane.tx.send(job).is_ok() {
            lane.wake.notify_one();
        }
    }

    /// Stops accepting work and joins the threads (running jobs finish first).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for l in &self.lanes {
            l.wake.notify_one();
        }
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn pick_io_mode(want_uring: Option<bool>) -> std::io::Result<IoMode> {
    match want_uring {
        Some(false) => Ok(IoMode::Psync),
        Some(true) => {
            uring_available().map_err(|e| {
                std::io::Error::new(e.kind(), format!("io_uring requested but unavailable: {e}"))
            })?;
            Ok(IoMode::Uring)
        }
        None => match uring_available() {
            Ok(()) => Ok(IoMode::Uring),
            Err(e) => {
                tracing::warn!(error = %e, "io_uring unavailable; using the plain-syscall engine");
                Ok(IoMode::Psync)
            }
        },
    }
}

/// Probes io_uring once (it can be disabled by sysctl, seccomp or an old kernel).
pub fn uring_available() -> std::io::Result<()> {
    if std::env::var_os("RINGFS_DISABLE_URING").is_some() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "disabled by RINGFS_DISABLE_URING",
        ));
    }
    #[cfg(target_os = "linux")]
    {
        tokio_uring::Runtime::new(&tokio_uring::builder()).map(|_| ())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "not linux",
        ))
    }
}

fn run_worker<W: 'static>(
    index: usize,
    mode: IoMode,
    rx: Receiver<LocalJob<W>>,
    wake: Arc<Notify>,
    stop: Arc<AtomicBool>,
    make: impl FnOnce(IoMode) -> Rc<W>,
) {
    let state = make(mode);
    let dispatch = async move {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(job) => {
                        let fut = job(state.clone());
                        tokio::task::spawn_local(fut);
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
            // A permit stored by notify_one between try_recv and here is not lost.
            wake.notified().await;
        }
    };
    match mode {
        #[cfg(target_os = "linux")]
        IoMode::Uring => match tokio_uring::Runtime::new(&tokio_uring::builder()) {
            Ok(rt) => rt.block_on(dispatch),
            Err(e) => {
                tracing::error!(worker = index, error = %e, "io_uring runtime failed; worker uses the plain engine");
                plain_runtime(index, dispatch)
            }
        },
        _ => plain_runtime(index, dispatch),
    }
}

fn plain_runtime(index: usize, fut: impl Future<Output = ()>) {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, fut);
        }
        Err(e) => tracing::error!(worker = index, error = %e, "cannot start worker runtime"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    struct W {
        index: usize,
        hits: Arc<AtomicU64>,
    }

    #[test]
    fn jobs_run_on_the_owning_worker() {
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let pool = Pool::start(2, Some(false), move |i, _| {
            Rc::new(W {
                index: i,
                hits: h.clone(),
            })
        })
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        for key in 0..100u64 {
            let tx = tx.clone();
            pool.submit(
                key,
                Box::new(move |w: Rc<W>| {
                    Box::pin(async move {
                        w.hits.fetch_add(1, Ordering::SeqCst);
                        tx.send((key, w.index)).unwrap();
                    })
                }),
            );
        }
        for _ in 0..100 {
            let (key, idx) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
            assert_eq!(idx, (key % 2) as usize);
        }
        assert_eq!(hits.load(Ordering::SeqCst), 100);
        pool.stop();
    }

    #[test]
    fn uring_engine_runs_jobs_when_available() {
        if uring_available().is_err() {
            eprintln!("io_uring unavailable here; only the fallback is exercised");
            return;
        }
        let pool = Pool::start(1, Some(true), |i, m| Rc::new((i, m))).unwrap();
        assert_eq!(pool.io_mode, IoMode::Uring);
        let (tx, rx) = std::sync::mpsc::channel();
        pool.submit(
            0,
            Box::new(move |w: Rc<(usize, IoMode)>| Box::pin(async move { tx.send(w.1).unwrap() })),
        );
        assert_eq!(
            rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap(),
            IoMode::Uring
        );
        pool.stop();
    }
}
