//! The local-disk edge: how a worker writes and reads cache files.
//!
//! [`IoEngine`] has an io_uring implementation ([`UringIo`], tokio-uring, used when the
//! worker runs an io_uring runtime) and a plain-syscall one ([`PsyncIo`], std::fs on the
//! blocking pool) chosen at start with the worker's runtime, like neon and foyer do.
//! [`FaultyIo`] wraps either to inject failures in tests. Futures are `!Send`: they run on
//! the worker's own thread.

use async_trait::async_trait;
use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Durable local file I/O for the cache.
#[async_trait(?Send)]
pub trait IoEngine {
    /// Writes `data` as the whole content of `path`, durably: a temporary file is
    /// written and fdatasync'd, then renamed over `path`, then the directory is synced.
    /// After it returns, a crash or power loss leaves either no file or the full file.
    async fn write_durable(&self, path: &Path, data: Bytes) -> io::Result<()>;
    /// Writes `data` as the whole content of `path` without syncing (cache files: a
    /// torn one is detected by its checksum and dropped).
    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()>;
    /// Reads the whole file.
    async fn read_all(&self, path: &Path) -> io::Result<Bytes>;
    fn name(&self) -> &'static str;
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// io_uring engine (tokio-uring): writes, fdatasync and reads are ring submissions.
#[derive(Default)]
pub struct UringIo;

#[cfg(target_os = "linux")]
#[async_trait(?Send)]
impl IoEngine for UringIo {
    async fn write_durable(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let tmp = tmp_path(path);
        let file = tokio_uring::fs::File::create(&tmp).await?;
        let (res, _) = file.write_all_at(data, 0).await;
        res?;
        file.sync_data().await?;
        file.close().await?;
        tokio_uring::fs::rename(&tmp, path).await?;
        sync_dir(path)
    }

    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let file = tokio_uring::fs::File::create(path).await?;
        let (res, _) = file.write_all_at(data, 0).await;
        let closed = file.close().await;
        res.and(closed)
    }

    async fn read_all(&self, path: &Path) -> io::Result<Bytes> {
        let len = std::fs::metadata(path)?.len() as usize;
        let file = tokio_uring::fs::File::open(path).await?;
        let buf = Vec::with_capacity(len);
        let (res, buf) = file.read_exact_at(buf, 0).await;
        let _ = file.close().await;
        res?;
        Ok(Bytes::from(buf))
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }
}

/// Plain syscalls on tokio's blocking pool (the fallback when io_uring is unavailable).
#[derive(Default)]
pub struct PsyncIo;

#[async_trait(?Send)]
impl IoEngine for PsyncIo {
    async fn write_durable(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let tmp = tmp_path(&path);
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_data()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            sync_dir(&path)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::write(&path, &data))
            .await
            .map_err(io::Error::other)?
    }

    async fn read_all(&self, path: &Path) -> io::Result<Bytes> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::read(&path).map(Bytes::from))
            .await
            .map_err(io::Error::other)?
    }

    fn name(&self) -> &'static str {
        "psync"
    }
}

/// Fails chosen calls of the wrapped engine (tests of error paths: a full or broken disk).
pub struct FaultyIo<E> {
    inner: E,
    fail_writes: std::cell::Cell<u32>,
}

impl<E: IoEngine> FaultyIo<E> {
    pub fn new(inner: E) -> Self {
        FaultyIo {
            inner,
            fail_writes: std::cell::Cell::new(0),
        }
    }

    /// The next `n` writes fail with ENOSPC.
    pub fn fail_next_writes(&self, n: u32) {
        self.fail_writes.set(n);
    }
}

#[async_trait(?Send)]
impl<E: IoEngine> IoEngine for FaultyIo<E> {
    async fn write_durable(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let n = self.fail_writes.get();
        if n > 0 {
            self.fail_writes.set(n - 1);
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inner.write_durable(path, data).await
    }

    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()> {
        self.inner.write_plain(path, data).await
    }

    async fn read_all(&self, path: &Path) -> io::Result<Bytes> {
        self.inner.read_all(path).await
    }

    fn name(&self) -> &'static str {
        "faulty"
    }
}

/// The engine for a worker running in `mode`.
pub fn engine_for(mode: crate::worker::IoMode) -> Rc<dyn IoEngine> {
    match mode {
        #[cfg(target_os = "linux")]
        crate::worker::IoMode::Uring => Rc::new(UringIo),
        _ => Rc::new(PsyncIo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(io: &dyn IoEngine, dir: &Path) {
        let p = dir.join(format!("f-{}", io.name()));
        let data = Bytes::from((0..100_000u32).map(|i| i as u8).collect::<Vec<_>>());
        io.write_durable(&p, data.clone()).await.unwrap();
        assert_eq!(io.read_all(&p).await.unwrap(), data);
        assert!(!tmp_path(&p).exists(), "temporary file renamed away");
        io.write_durable(&p, Bytes::from_static(b"short"))
            .await
            .unwrap();
        assert_eq!(&io.read_all(&p).await.unwrap()[..], b"short");
    }

    #[test]
    fn psync_engine_round_trips() {
        let dir = std::env::temp_dir().join(format!("ringfs-io-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(round_trip(&PsyncIo, &dir));
        let faulty = FaultyIo::new(PsyncIo);
        faulty.fail_next_writes(1);
        let e = rt
            .block_on(faulty.write_durable(&dir.join("x"), Bytes::from_static(b"1")))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        rt.block_on(faulty.write_durable(&dir.join("x"), Bytes::from_static(b"1")))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uring_engine_round_trips() {
        if crate::worker::uring_available().is_err() {
            eprintln!("io_uring unavailable: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ringfs-io-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        tokio_uring::start(round_trip(&UringIo, &dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
