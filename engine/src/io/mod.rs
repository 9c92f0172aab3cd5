//! The local-disk edge: how a worker writes and reads cache files.
//!
//! [`IoEngine`] has an io_uring implementation ([`UringIo`], tokio-uring, used when the
//! worker runs an io_uring runtime) and a plain-syscall one ([`PsyncIo`], std::fs on the
//! blocking pool) chosen at start with the worker's runtime, like neon and foyer do.
//! [`FaultyIo`] wraps either to inject failures in tests. Futures are `!Send`: they run on
//! the worker's own thread.

use async_trait::async_trait;
use bytes::Bytes;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::cache::staging::{aligned_zeroed, ALIGN};

/// Durable local file I/O for the cache.
#[async_trait(?Send)]
pub trait IoEngine {
    /// Writes each `(path, data)` as the whole content of `path`, durably: temporary files
    /// are written and fdatasync'd (concurrently), renamed over their paths, then every
    /// directory involved is synced once. For each file that gets `Ok`, a crash or power
    /// loss afterwards leaves the full file under its name.
    async fn write_durable(&self, files: Vec<(PathBuf, Bytes)>) -> Vec<io::Result<()>>;
    /// Writes `data` as the whole content of `path` without syncing (cache files: a
    /// torn one is detected by its checksum and dropped).
    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()>;
    /// Reads the whole file.
    async fn read_all(&self, path: &Path) -> io::Result<Bytes>;
    /// Reads `len` bytes at `offset` (both multiples of 4 KiB for O_DIRECT, or reaching
    /// the file's end); fewer if the file ends first.
    async fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes>;
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

fn parents(files: &[(PathBuf, Bytes)]) -> BTreeSet<PathBuf> {
    files
        .iter()
        .filter_map(|(p, _)| p.parent().map(Path::to_path_buf))
        .collect()
}

/// Every file that was written gets the directory sync's error, if there is one.
fn with_dir_sync(mut results: Vec<io::Result<()>>, synced: io::Result<()>) -> Vec<io::Result<()>> {
    if let Err(e) = synced {
        for r in results.iter_mut().filter(|r| r.is_ok()) {
            *r = Err(io::Error::new(
                e.kind(),
                format!("syncing the directory: {e}"),
            ));
        }
    }
    results
}

fn is_aligned(data: &[u8]) -> bool {
    (data.as_ptr() as usize).is_multiple_of(ALIGN) && data.len().is_multiple_of(ALIGN)
}

/// Whether O_DIRECT is in use: on when `cache.o_direct` asks for it, switched off (and
/// logged once) if the cache's file system refuses it (tmpfs, some overlays).
struct Direct(Cell<bool>);

impl Direct {
    fn new(on: bool) -> Self {
        Direct(Cell::new(on))
    }
    /// The open flags for a file of `len` bytes at `data` (aligned buffers only).
    fn flags(&self, aligned: bool) -> i32 {
        if self.0.get() && aligned {
            libc::O_DIRECT
        } else {
            0
        }
    }
    /// After an open with `flags` failed with `e`: whether to retry without O_DIRECT.
    fn refused(&self, flags: i32, e: &io::Error, path: &Path) -> bool {
        if flags & libc::O_DIRECT != 0 && e.raw_os_error() == Some(libc::EINVAL) {
            if self.0.replace(false) {
                tracing::warn!(dir = %path.parent().unwrap_or(path).display(), "the cache file system refuses O_DIRECT; using buffered I/O");
            }
            return true;
        }
        false
    }
}

/// io_uring engine (tokio-uring): opens, writes, fdatasync, directory syncs and reads are
/// ring submissions, so a worker never blocks on its disk.
pub struct UringIo {
    direct: Direct,
}

impl UringIo {
    pub fn new(o_direct: bool) -> Self {
        UringIo {
            direct: Direct::new(o_direct),
        }
    }

    /// Opens for reading, or for writing (created, truncated), with O_DIRECT when it is on
    /// and the I/O is `aligned`; retried buffered if the file system refuses O_DIRECT.
    #[cfg(target_os = "linux")]
    async fn open(
        &self,
        path: &Path,
        write: bool,
        aligned: bool,
    ) -> io::Result<tokio_uring::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        loop {
            let flags = self.direct.flags(aligned);
            let mut o = tokio_uring::fs::OpenOptions::new();
            if write {
                o.write(true).create(true).truncate(true);
            } else {
                o.read(true);
            }
            match o.custom_flags(flags).open(path).await {
                Err(e) if self.direct.refused(flags, &e, path) => continue,
                r => return r,
            }
        }
    }

    #[cfg(target_os = "linux")]
    async fn write_one(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let tmp = tmp_path(path);
        let file = self.open(&tmp, true, is_aligned(&data)).await?;
        let (res, _) = file.write_all_at(data, 0).await;
        let synced = match res {
            Ok(()) => file.sync_data().await,
            Err(e) => Err(e),
        };
        let closed = file.close().await;
        synced.and(closed)?;
        tokio_uring::fs::rename(&tmp, path).await
    }
}

#[cfg(target_os = "linux")]
#[async_trait(?Send)]
impl IoEngine for UringIo {
    async fn write_durable(&self, files: Vec<(PathBuf, Bytes)>) -> Vec<io::Result<()>> {
        let dirs = parents(&files);
        let results = futures::future::join_all(
            files
                .into_iter()
                .map(|(path, data)| async move { self.write_one(&path, data).await }),
        )
        .await;
        let mut synced = Ok(());
        for dir in dirs {
            let r = async {
                let d = tokio_uring::fs::File::open(&dir).await?;
                let r = d.sync_all().await;
                d.close().await.and(r)
            }
            .await;
            synced = synced.and(r);
        }
        with_dir_sync(results, synced)
    }

    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let file = self.open(path, true, is_aligned(&data)).await?;
        let (res, _) = file.write_all_at(data, 0).await;
        let closed = file.close().await;
        res.and(closed)
    }

    async fn read_all(&self, path: &Path) -> io::Result<Bytes> {
        use tokio_uring::buf::BoundedBuf;
        let len = std::fs::metadata(path)?.len() as usize;
        let file = self.open(path, false, len.is_multiple_of(ALIGN)).await?;
        let mut buf = aligned_zeroed(len);
        buf.clear();
        let (res, buf) = file.read_exact_at(buf.slice(..len), 0).await;
        let _ = file.close().await;
        res?;
        Ok(buf.into_inner().freeze())
    }

    async fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes> {
        use tokio_uring::buf::BoundedBuf;
        let aligned = offset.is_multiple_of(ALIGN as u64) && len.is_multiple_of(ALIGN);
        let file = self.open(path, false, aligned).await?;
        let mut buf = aligned_zeroed(len);
        buf.clear();
        let (res, buf) = file.read_at(buf.slice(..len), offset).await;
        let _ = file.close().await;
        let n = res?;
        let mut b = buf.into_inner();
        b.truncate(n);
        Ok(b.freeze())
    }

    fn name(&self) -> &'static str {
        "io_uring"
    }
}

/// Plain syscalls on tokio's blocking pool (the fallback when io_uring is unavailable).
pub struct PsyncIo {
    o_direct: bool,
}

impl PsyncIo {
    pub fn new(o_direct: bool) -> Self {
        PsyncIo { o_direct }
    }
}

fn std_open(path: &Path, write: bool, direct: bool) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags: i32| {
        let mut o = std::fs::OpenOptions::new();
        if write {
            o.write(true).create(true).truncate(true);
        } else {
            o.read(true);
        }
        o.custom_flags(flags).open(path)
    };
    match open(if direct { libc::O_DIRECT } else { 0 }) {
        Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => open(0),
        r => r,
    }
}

/// Reads a whole cache file with a blocking read (O_DIRECT when asked and its size allows).
pub fn read_file(path: &Path, direct: bool) -> io::Result<Bytes> {
    use std::io::Read;
    let len = std::fs::metadata(path)?.len() as usize;
    let mut buf = aligned_zeroed(len);
    std_open(path, false, direct && len.is_multiple_of(ALIGN))?.read_exact(&mut buf)?;
    Ok(buf.freeze())
}

#[async_trait(?Send)]
impl IoEngine for PsyncIo {
    async fn write_durable(&self, files: Vec<(PathBuf, Bytes)>) -> Vec<io::Result<()>> {
        let direct = self.o_direct;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let dirs = parents(&files);
            let results = files
                .into_iter()
                .map(|(path, data)| {
                    let tmp = tmp_path(&path);
                    let mut f = std_open(&tmp, true, direct && is_aligned(&data))?;
                    f.write_all(&data)?;
                    f.sync_data()?;
                    drop(f);
                    std::fs::rename(&tmp, &path)
                })
                .collect();
            let synced = dirs
                .iter()
                .try_for_each(|d| std::fs::File::open(d)?.sync_all());
            with_dir_sync(results, synced)
        })
        .await
        .unwrap_or_else(|e| vec![Err(io::Error::other(e))])
    }

    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()> {
        let (path, direct) = (path.to_path_buf(), self.o_direct);
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            std_open(&path, true, direct && is_aligned(&data))?.write_all(&data)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn read_all(&self, path: &Path) -> io::Result<Bytes> {
        let (path, direct) = (path.to_path_buf(), self.o_direct);
        tokio::task::spawn_blocking(move || read_file(&path, direct))
            .await
            .map_err(io::Error::other)?
    }

    async fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes> {
        let (path, direct) = (path.to_path_buf(), self.o_direct);
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let aligned = offset.is_multiple_of(ALIGN as u64) && len.is_multiple_of(ALIGN);
            let f = std_open(&path, false, direct && aligned)?;
            let mut buf = aligned_zeroed(len);
            let mut n = 0;
            while n < len {
                match f.read_at(&mut buf[n..], offset + n as u64)? {
                    0 => break,
                    k => n += k,
                }
            }
            buf.truncate(n);
            Ok(buf.freeze())
        })
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

    /// The next `n` files written durably fail with ENOSPC.
    pub fn fail_next_writes(&self, n: u32) {
        self.fail_writes.set(n);
    }
}

#[async_trait(?Send)]
impl<E: IoEngine> IoEngine for FaultyIo<E> {
    async fn write_durable(&self, files: Vec<(PathBuf, Bytes)>) -> Vec<io::Result<()>> {
        let n = self.fail_writes.get() as usize;
        let failing = n.min(files.len());
        self.fail_writes.set((n - failing) as u32);
        let mut results: Vec<io::Result<()>> = (0..failing)
            .map(|_| Err(io::Error::from_raw_os_error(libc::ENOSPC)))
            .collect();
        results.extend(self.inner.write_durable(files[failing..].to_vec()).await);
        results
    }

    async fn write_plain(&self, path: &Path, data: Bytes) -> io::Result<()> {
        self.inner.write_plain(path, data).await
    }

    async fn read_all(&self, path: &Path) -> io::Result<Bytes> {
        self.inner.read_all(path).await
    }

    async fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Bytes> {
        self.inner.read_at(path, offset, len).await
    }

    fn name(&self) -> &'static str {
        "faulty"
    }
}

/// The engine for a worker running in `mode`, with O_DIRECT cache files if `o_direct`.
pub fn engine_for(mode: crate::worker::IoMode, o_direct: bool) -> Rc<dyn IoEngine> {
    match mode {
        #[cfg(target_os = "linux")]
        crate::worker::IoMode::Uring => Rc::new(UringIo::new(o_direct)),
        _ => Rc::new(PsyncIo::new(o_direct)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{seal, unseal};

    /// Sealed (aligned, O_DIRECT-ready) and unaligned files round-trip, batched durable
    /// writes leave no temporary files, and a rewrite replaces the whole content.
    async fn round_trip(io: &dyn IoEngine, dir: &Path) {
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let sealed = seal(&big);
        let files = vec![
            (dir.join("sealed"), sealed.clone()),
            (dir.join("plain"), Bytes::from(big.clone())),
        ];
        for r in io.write_durable(files).await {
            r.unwrap();
        }
        assert_eq!(
            unseal(io.read_all(&dir.join("sealed")).await.unwrap()).unwrap(),
            &big[..]
        );
        assert_eq!(io.read_all(&dir.join("plain")).await.unwrap(), &big[..]);
        assert!(
            !tmp_path(&dir.join("sealed")).exists(),
            "temporary file renamed away"
        );
        let short = vec![(dir.join("sealed"), seal(b"short"))];
        io.write_durable(short).await.pop().unwrap().unwrap();
        assert_eq!(
            &unseal(io.read_all(&dir.join("sealed")).await.unwrap()).unwrap()[..],
            b"short"
        );
        io.write_plain(&dir.join("cached"), seal(b"cached"))
            .await
            .unwrap();
        assert_eq!(
            &unseal(io.read_all(&dir.join("cached")).await.unwrap()).unwrap()[..],
            b"cached"
        );
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringfs-io-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn psync_engine_round_trips() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for direct in [false, true] {
            let dir = temp_dir();
            rt.block_on(round_trip(&PsyncIo::new(direct), &dir));
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let dir = temp_dir();
        let faulty = FaultyIo::new(PsyncIo::new(false));
        faulty.fail_next_writes(1);
        let two = |n: &str| {
            vec![
                (dir.join(format!("{n}1")), Bytes::from_static(b"1")),
                (dir.join(format!("{n}2")), Bytes::from_static(b"2")),
            ]
        };
        let r = rt.block_on(faulty.write_durable(two("a")));
        assert_eq!(
            r[0].as_ref().unwrap_err().raw_os_error(),
            Some(libc::ENOSPC)
        );
        assert!(r[1].is_ok(), "only the first file fails");
        assert!(rt
            .block_on(faulty.write_durable(two("b")))
            .iter()
            .all(|r| r.is_ok()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uring_engine_round_trips() {
        if crate::worker::uring_available().is_err() {
            eprintln!("io_uring unavailable: skipped");
            return;
        }
        for direct in [false, true] {
            let dir = temp_dir();
            tokio_uring::start(round_trip(&UringIo::new(direct), &dir));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn o_direct_refused_by_the_file_system_is_switched_off_once() {
        let d = Direct::new(true);
        assert_eq!(d.flags(true), libc::O_DIRECT);
        assert_eq!(d.flags(false), 0, "unaligned buffers are written buffered");
        let einval = io::Error::from_raw_os_error(libc::EINVAL);
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(!d.refused(libc::O_DIRECT, &enoent, Path::new("/x/y")));
        assert!(d.refused(libc::O_DIRECT, &einval, Path::new("/x/y")));
        assert_eq!(d.flags(true), 0, "buffered from now on");
        assert!(
            !d.refused(0, &einval, Path::new("/x/y")),
            "no retry loop without O_DIRECT"
        );
    }
}
