//! End-to-end tests through a real FUSE mount: the `ringfs` binary formats a volume on
//! the local services (scripts/services.sh), mounts it in the background, and the tests
//! use it with std::fs and libc like any program would.
//!
//! Run: `RINGFS_TEST_CONF=.services/ringfs.toml cargo test --test mount_e2e`
//! (without RINGFS_TEST_CONF the harness starts the services itself).
//! `RINGFS_E2E_BIG_MIB` sets the size of the big sequential test (default 1024).

mod common;

use common::{errno_of, mount_count, ringfs, test_conf, text, Mount, Scratch};
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

const MIB: usize = 1 << 20;

// ---- helpers -------------------------------------------------------------------------

/// xorshift64*: fast, deterministic test content.
struct Rng(u64);

/// Random bytes that content is cut from: filling buffers a word at a time is slow in
/// a debug build, copying windows of this pool is not.
const POOL: usize = 8 * MIB;

fn pool() -> &'static [u8] {
    static POOL_BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    POOL_BYTES.get_or_init(|| {
        let mut r = Rng(0x5EED_1234_ABCD_0001);
        let mut v = Vec::with_capacity(POOL);
        while v.len() < POOL {
            v.extend_from_slice(&r.next_u64().to_le_bytes());
        }
        v
    })
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with 4 KiB windows of the pool at random offsets, each piece
    /// stamped with a fresh random word (so no two pieces are alike).
    fn fill(&mut self, buf: &mut [u8]) {
        let pool = pool();
        for piece in buf.chunks_mut(4096) {
            let off = self.below((POOL - 4096) as u64) as usize;
            piece.copy_from_slice(&pool[off..off + piece.len()]);
            let stamp = self.next_u64().to_le_bytes();
            let n = piece.len().min(8);
            piece[..n].copy_from_slice(&stamp[..n]);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

/// An MD5 computed by `md5sum` fed through a pipe (fast even when this test is a debug
/// build, and on the other core).
struct Md5Pipe {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Md5Pipe {
    fn new() -> Md5Pipe {
        let mut child = Command::new("md5sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run md5sum");
        let stdin = child.stdin.take();
        Md5Pipe { child, stdin }
    }

    fn update(&mut self, data: &[u8]) {
        self.stdin
            .as_mut()
            .unwrap()
            .write_all(data)
            .expect("feed md5sum");
    }

    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .expect("md5sum");
        assert!(out.status.success());
        text(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

impl Drop for Md5Pipe {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn md5_of(data: &[u8]) -> String {
    let mut p = Md5Pipe::new();
    p.update(data);
    p.finish()
}

/// `md5sum FILE`: reads the file through the mount.
fn md5_file(path: &Path) -> String {
    let out = Command::new("md5sum")
        .arg(path)
        .output()
        .expect("run md5sum");
    assert!(
        out.status.success(),
        "md5sum {}: {}",
        path.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in path")
}

fn sys(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sys_ssize(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (a, b) = (cpath(from), cpath(to));
    // SAFETY: valid NUL-terminated paths.
    sys(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

fn setxattr(p: &Path, name: &str, value: &[u8], flags: libc::c_int) -> io::Result<()> {
    let (p, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid pointers and lengths.
    sys(unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// `getxattr` into a buffer of `size` bytes (0: just the length).
fn getxattr_sized(p: &Path, name: &str, size: usize) -> io::Result<(usize, Vec<u8>)> {
    let (p, n) = (cpath(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; size];
    // SAFETY: valid pointers; `buf` has `size` bytes.
    let r = sys_ssize(unsafe {
        libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size)
    })?;
    buf.truncate(r.min(size));
    Ok((r, buf))
}

fn getxattr(p: &Path, name: &str) -> io::Result<Vec<u8>> {
    let (len, _) = getxattr_sized(p, name, 0)?;
    let (n, v) = getxattr_sized(p, name, len)?;
    assert_eq!(n, len);
    Ok(v)
}

fn listxattr(p: &Path) -> io::Result<Vec<String>> {
    let c = cpath(p);
    // SAFETY: a NULL buffer of size 0 asks for the length.
    let len = sys_ssize(unsafe { libc::listxattr(c.as_ptr(), std::ptr::null_mut(), 0) })?;
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` has `len` bytes.
    let n = sys_ssize(unsafe { libc::listxattr(c.as_ptr(), buf.as_mut_ptr().cast(), len) })?;
    buf.truncate(n);
    let mut names: Vec<String> = buf
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

fn removexattr(p: &Path, name: &str) -> io::Result<()> {
    let (p, n) = (cpath(p), CString::new(name).unwrap());
    // SAFETY: valid NUL-terminated strings.
    sys(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) }).map(drop)
}

fn utimensat(p: &Path, atime: libc::timespec, mtime: libc::timespec) -> io::Result<()> {
    let c = cpath(p);
    let times = [atime, mtime];
    // SAFETY: valid path and a two-element array.
    sys(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

fn ts(sec: i64, nsec: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as _,
    }
}

fn mknod(p: &Path, mode: libc::mode_t, dev: libc::dev_t) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid path.
    sys(unsafe { libc::mknod(c.as_ptr(), mode, dev) }).map(drop)
}

fn access(p: &Path, mode: libc::c_int) -> io::Result<()> {
    let c = cpath(p);
    // SAFETY: valid path.
    sys(unsafe { libc::access(c.as_ptr(), mode) }).map(drop)
}

fn fallocate(f: &File, mode: libc::c_int, off: i64, len: i64) -> io::Result<()> {
    // SAFETY: a valid open fd.
    sys(unsafe { libc::fallocate(f.as_raw_fd(), mode, off, len) }).map(drop)
}

fn lseek(f: &File, off: i64, whence: libc::c_int) -> io::Result<i64> {
    // SAFETY: a valid open fd.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn statvfs(p: &Path) -> libc::statvfs {
    let c = cpath(p);
    // SAFETY: zeroed plain-old-data filled by the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    sys(unsafe { libc::statvfs(c.as_ptr(), &mut s) }).expect("statvfs");
    s
}

fn makedev(major: u32, minor: u32) -> libc::dev_t {
    libc::makedev(major, minor)
}

/// Names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    v.sort();
    v
}

/// Retries `f` until it returns true or `limit` passes; the kernel caches entries and
/// attributes of other clients' files for `fuse.entry_ttl` / `fuse.attr_ttl` (1 s).
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- 1. operations and their errnos ----------------------------------------------------

#[test]
fn lookup_and_stat_errors() {
    let m = Mount::new("lookup");
    assert_eq!(errno_of(fs::metadata(m.join("missing"))), libc::ENOENT);
    assert_eq!(
        errno_of(fs::symlink_metadata(m.join("missing"))),
        libc::ENOENT
    );
    assert_eq!(errno_of(File::open(m.join("missing"))), libc::ENOENT);
    assert_eq!(errno_of(fs::metadata(m.join("no/such/dir"))), libc::ENOENT);
    fs::write(m.join("file"), b"x").unwrap();
    assert_eq!(errno_of(fs::metadata(m.join("file/below"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::read_dir(m.join("file"))), libc::ENOTDIR);
    let md = fs::metadata(m.join("file")).unwrap();
    assert!(md.is_file());
    assert_eq!((md.len(), md.nlink()), (1, 1));
    let root = fs::metadata(m.path()).unwrap();
    assert!(root.is_dir());
    assert_eq!(root.ino(), 1, "root inode");
}

#[test]
fn mkdir_rmdir_unlink_errors() {
    let m = Mount::new("dirs");
    let d = m.join("d");
    fs::create_dir(&d).unwrap();
    assert_eq!(errno_of(fs::create_dir(&d)), libc::EEXIST);
    fs::write(m.join("f"), b"x").unwrap();
    assert_eq!(errno_of(fs::create_dir(m.join("f"))), libc::EEXIST);
    assert_eq!(errno_of(File::create_new(m.join("f"))), libc::EEXIST);
    assert_eq!(errno_of(File::create_new(&d)), libc::EEXIST);
    assert_eq!(
        errno_of(OpenOptions::new().write(true).open(&d)),
        libc::EISDIR
    );
    assert_eq!(
        errno_of(fs::create_dir(m.join("missing/sub"))),
        libc::ENOENT
    );
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("sub/file"), b"y").unwrap();
    assert_eq!(errno_of(fs::remove_dir(&d)), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::remove_dir(d.join("sub"))), libc::ENOTEMPTY);
    assert_eq!(errno_of(fs::remove_dir(m.join("f"))), libc::ENOTDIR);
    assert_eq!(errno_of(fs::remove_file(&d)), libc::EISDIR);
    assert_eq!(errno_of(fs::remove_file(m.join("missing"))), libc::ENOENT);
    assert_eq!(errno_of(fs::remove_dir(m.join("missing"))), libc::ENOENT);
    // Directory link counts: 2 + subdirectories.
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 3);
    assert_eq!(names(&d), ["sub"]);
    fs::remove_file(d.join("sub/file")).unwrap();
    fs::remove_dir(d.join("sub")).unwrap();
    assert_eq!(fs::metadata(&d).unwrap().nlink(), 2);
    fs::remove_dir(&d).unwrap();
    fs::remove_file(m.join("f")).unwrap();
    assert!(names(m.path()).is_empty());
    assert_eq!(errno_of(fs::metadata(&d)), libc::ENOENT);
}

#[test]
fn rename_variants() {
    let m = Mount::new("rename");
    // Plain rename keeps the inode and the data.
    fs::write(m.join("a"), b"alpha").unwrap();
    let ino = fs::metadata(m.join("a")).unwrap().ino();
    fs::rename(m.join("a"), m.join("b")).unwrap();
    assert_eq!(errno_of(fs::metadata(m.join("a"))), libc::ENOENT);
    assert_eq!(fs::read(m.join("b")).unwrap(), b"alpha");
    assert_eq!(fs::metadata(m.join("b")).unwrap().ino(), ino);

    // Over an existing file: the target is replaced.
    fs::write(m.join("c"), b"charlie-longer").unwrap();
    fs::rename(m.join("b"), m.join("c")).unwrap();
    assert_eq!(fs::read(m.join("c")).unwrap(), b"alpha");
    assert_eq!(names(m.path()), ["c"]);

    // Across directories.
    fs::create_dir_all(m.join("d1/d2")).unwrap();
    fs::rename(m.join("c"), m.join("d1/d2/c")).unwrap();
    assert_eq!(fs::read(m.join("d1/d2/c")).unwrap(), b"alpha");

    // RENAME_NOREPLACE.
    fs::write(m.join("x"), b"x").unwrap();
    fs::write(m.join("y"), b"y").unwrap();
    assert_eq!(
        errno_of(renameat2(
            &m.join("x"),
            &m.join("y"),
            libc::RENAME_NOREPLACE
        )),
        libc::EEXIST
    );
    assert_eq!(fs::read(m.join("y")).unwrap(), b"y");
    renameat2(&m.join("x"), &m.join("z"), libc::RENAME_NOREPLACE).unwrap();
    assert_eq!(fs::read(m.join("z")).unwrap(), b"x");

    // RENAME_EXCHANGE swaps, also a file with a directory.
    renameat2(&m.join("y"), &m.join("z"), libc::RENAME_EXCHANGE).unwrap();
    assert_eq!(fs::read(m.join("y")).unwrap(), b"x");
    assert_eq!(fs::read(m.join("z")).unwrap(), b"y");
    renameat2(&m.join("y"), &m.join("d1"), libc::RENAME_EXCHANGE).unwrap();
    assert!(fs::metadata(m.join("y")).unwrap().is_dir());
    assert_eq!(fs::read(m.join("d1")).unwrap(), b"x");
    assert_eq!(fs::read(m.join("y/d2/c")).unwrap(), b"alpha");
    assert_eq!(
        errno_of(renameat2(
            &m.join("z"),
            &m.join("nothing"),
            libc::RENAME_EXCHANGE
        )),
        libc::ENOENT
    );

    // Directory into its own subdirectory.
    assert_eq!(
        errno_of(fs::rename(m.join("y"), m.join("y/d2/inside"))),
        libc::EINVAL
    );
    // Type mismatches and non-empty targets.
    fs::create_dir(m.join("empty")).unwrap();
    assert_eq!(
        errno_of(fs::rename(m.join("z"), m.join("empty"))),
        libc::EISDIR
    );
    assert_eq!(
        errno_of(fs::rename(m.join("empty"), m.join("z"))),
        libc::ENOTDIR
    );
    assert_eq!(
        errno_of(fs::rename(m.join("empty"), m.join("y"))),
        libc::ENOTEMPTY
    );
    // A directory over an empty directory.
    fs::rename(m.join("y"), m.join("empty")).unwrap();
    assert_eq!(fs::read(m.join("empty/d2/c")).unwrap(), b"alpha");
    assert_eq!(
        errno_of(fs::rename(m.join("missing"), m.join("q"))),
        libc::ENOENT
    );
    assert_eq!(names(m.path()), ["d1", "empty", "z"]);
}

#[test]
fn hard_links() {
    let m = Mount::new("link");
    fs::write(m.join("f"), b"data").unwrap();
    fs::hard_link(m.join("f"), m.join("g")).unwrap();
    let (a, b) = (
        fs::metadata(m.join("f")).unwrap(),
        fs::metadata(m.join("g")).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink(), b.nlink()), (b.ino(), 2, 2));
    // Writes through one name show through the other.
    fs::OpenOptions::new()
        .append(true)
        .open(m.join("g"))
        .unwrap()
        .write_all(b"+more")
        .unwrap();
    assert_eq!(fs::read(m.join("f")).unwrap(), b"data+more");
    assert_eq!(
        errno_of(fs::hard_link(m.join("f"), m.join("g"))),
        libc::EEXIST
    );
    fs::create_dir(m.join("d")).unwrap();
    assert_eq!(
        errno_of(fs::hard_link(m.join("d"), m.join("d2"))),
        libc::EPERM
    );
    assert_eq!(
        errno_of(fs::hard_link(m.join("missing"), m.join("h"))),
        libc::ENOENT
    );
    fs::remove_file(m.join("f")).unwrap();
    let b = fs::metadata(m.join("g")).unwrap();
    assert_eq!(b.nlink(), 1);
    assert_eq!(fs::read(m.join("g")).unwrap(), b"data+more");
}

#[test]
fn symlinks() {
    let m = Mount::new("symlink");
    fs::write(m.join("target"), b"pointed at").unwrap();
    std::os::unix::fs::symlink("target", m.join("ln")).unwrap();
    assert_eq!(fs::read_link(m.join("ln")).unwrap(), Path::new("target"));
    let lm = fs::symlink_metadata(m.join("ln")).unwrap();
    assert!(lm.file_type().is_symlink());
    assert_eq!(lm.len(), "target".len() as u64);
    assert_eq!(fs::read(m.join("ln")).unwrap(), b"pointed at");
    assert!(fs::metadata(m.join("ln")).unwrap().is_file());
    // Dangling, long and absolute targets.
    std::os::unix::fs::symlink("nowhere", m.join("dangling")).unwrap();
    assert_eq!(errno_of(fs::metadata(m.join("dangling"))), libc::ENOENT);
    let long = "x/".repeat(1000) + "end";
    std::os::unix::fs::symlink(&long, m.join("long")).unwrap();
    assert_eq!(fs::read_link(m.join("long")).unwrap(), Path::new(&long));
    std::os::unix::fs::symlink(m.join("target"), m.join("abs")).unwrap();
    assert_eq!(fs::read(m.join("abs")).unwrap(), b"pointed at");
    assert_eq!(errno_of(fs::read_link(m.join("target"))), libc::EINVAL);
    assert_eq!(
        errno_of(std::os::unix::fs::symlink("t", m.join("target"))),
        libc::EEXIST
    );
    fs::remove_file(m.join("ln")).unwrap();
    assert!(fs::metadata(m.join("target")).is_ok());
}

#[test]
fn chmod_chown_utimens() {
    let m = Mount::new("attrs");
    let p = m.join("f");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o640);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o4755);

    let before = fs::metadata(&p).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::os::unix::fs::chown(&p, Some(1234), Some(5678)).unwrap();
    let after = fs::metadata(&p).unwrap();
    assert_eq!((after.uid(), after.gid()), (1234, 5678));
    assert!(
        (after.ctime(), after.ctime_nsec()) > (before.ctime(), before.ctime_nsec()),
        "chown updates ctime"
    );
    std::os::unix::fs::chown(&p, None, Some(42)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 42));

    // Explicit times, with nanoseconds.
    utimensat(
        &p,
        ts(1_000_000_000, 123_456_789),
        ts(1_100_000_000, 987_654_321),
    )
    .unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.atime(), md.atime_nsec()), (1_000_000_000, 123_456_789));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_100_000_000, 987_654_321));
    // UTIME_OMIT keeps mtime; a new atime is set.
    utimensat(&p, ts(1_200_000_000, 5), ts(0, libc::UTIME_OMIT)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.atime(), md.atime_nsec()), (1_200_000_000, 5));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_100_000_000, 987_654_321));
    // UTIME_NOW for mtime, atime omitted.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    utimensat(&p, ts(0, libc::UTIME_OMIT), ts(0, libc::UTIME_NOW)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert_eq!((md.atime(), md.atime_nsec()), (1_200_000_000, 5));
    assert!(
        (md.mtime() - now).abs() <= 5,
        "mtime {} vs now {now}",
        md.mtime()
    );
    // Both now.
    utimensat(&p, ts(0, libc::UTIME_NOW), ts(0, libc::UTIME_NOW)).unwrap();
    let md = fs::metadata(&p).unwrap();
    assert!(
        (md.atime() - now).abs() <= 5,
        "atime {} vs now {now}",
        md.atime()
    );
    assert_eq!(
        errno_of(utimensat(
            &m.join("missing"),
            ts(0, libc::UTIME_NOW),
            ts(0, libc::UTIME_NOW)
        )),
        libc::ENOENT
    );

    // Directories too.
    fs::create_dir(m.join("d")).unwrap();
    fs::set_permissions(m.join("d"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(fs::metadata(m.join("d")).unwrap().mode() & 0o7777, 0o700);
}

#[test]
fn truncate_up_and_down() {
    let m = Mount::new("truncate");
    let p = m.join("f");
    let data = Rng::new(1).bytes(300_000);
    fs::write(&p, &data).unwrap();
    // Closed file (truncate(2)).
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), 100_000);
    assert_eq!(fs::read(&p).unwrap(), &data[..100_000]);
    let c = cpath(&p);
    // SAFETY: valid path.
    sys(unsafe { libc::truncate(c.as_ptr(), 250_000) }).unwrap();
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 250_000);
    assert_eq!(&got[..100_000], &data[..100_000]);
    assert!(
        got[100_000..].iter().all(|b| *b == 0),
        "extended part reads zeros"
    );
    // Open file (ftruncate) with buffered writes.
    let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.write_all_at(b"tail", 249_996).unwrap();
    f.set_len(10).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 10);
    f.set_len(5 * MIB as u64).unwrap();
    let mut buf = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut buf).unwrap();
    assert_eq!(buf.len(), 5 * MIB);
    assert_eq!(&buf[..10], &data[..10]);
    assert!(buf[10..].iter().all(|b| *b == 0));
    f.set_len(0).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), 0);
    assert_eq!(fs::read(&p).unwrap(), b"");
    // O_TRUNC on open.
    fs::write(&p, b"0123456789").unwrap();
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all(b"ab").unwrap();
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"ab");
}

#[test]
fn mknod_fifo_and_char_device() {
    let m = Mount::new("mknod");
    mknod(&m.join("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
    let md = fs::symlink_metadata(m.join("fifo")).unwrap();
    assert!(md.file_type().is_fifo(), "{:?}", md.file_type());
    assert_eq!(md.mode() & 0o777, 0o644);
    let dev = makedev(1, 3);
    mknod(&m.join("null"), libc::S_IFCHR | 0o600, dev).unwrap();
    let md = fs::symlink_metadata(m.join("null")).unwrap();
    assert!(md.file_type().is_char_device(), "{:?}", md.file_type());
    assert_eq!(md.rdev(), dev);
    assert_eq!(md.mode() & 0o777, 0o600);
    mknod(&m.join("blk"), libc::S_IFBLK | 0o600, makedev(7, 0)).unwrap();
    let md = fs::symlink_metadata(m.join("blk")).unwrap();
    assert!(md.file_type().is_block_device());
    assert_eq!(md.rdev(), makedev(7, 0));
    // A regular file through mknod.
    mknod(&m.join("reg"), libc::S_IFREG | 0o644, 0).unwrap();
    assert!(fs::metadata(m.join("reg")).unwrap().is_file());
    assert_eq!(
        errno_of(mknod(&m.join("fifo"), libc::S_IFIFO | 0o644, 0)),
        libc::EEXIST
    );
    assert_eq!(names(m.path()), ["blk", "fifo", "null", "reg"]);
    // Metadata only: they can be renamed and removed like files.
    fs::rename(m.join("null"), m.join("null2")).unwrap();
    assert_eq!(fs::symlink_metadata(m.join("null2")).unwrap().rdev(), dev);
    fs::remove_file(m.join("fifo")).unwrap();
}

#[test]
fn xattrs() {
    let m = Mount::new("xattr");
    let p = m.join("f");
    fs::write(&p, b"x").unwrap();
    assert_eq!(listxattr(&p).unwrap(), Vec::<String>::new());
    setxattr(&p, "user.a", b"one", 0).unwrap();
    setxattr(&p, "user.b", b"", 0).unwrap();
    assert_eq!(getxattr(&p, "user.a").unwrap(), b"one");
    assert_eq!(getxattr(&p, "user.b").unwrap(), b"");
    assert_eq!(listxattr(&p).unwrap(), ["user.a", "user.b"]);
    // Length query and a short buffer.
    assert_eq!(getxattr_sized(&p, "user.a", 0).unwrap().0, 3);
    assert_eq!(errno_of(getxattr_sized(&p, "user.a", 2)), libc::ERANGE);
    // POSIX ACLs are not supported: refused, not stored unenforced.
    assert_eq!(
        errno_of(getxattr(&p, "system.posix_acl_access")),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        errno_of(setxattr(&p, "system.posix_acl_access", b"\x02\0\0\0", 0)),
        libc::EOPNOTSUPP
    );
    // Flags.
    assert_eq!(
        errno_of(setxattr(&p, "user.a", b"two", libc::XATTR_CREATE)),
        libc::EEXIST
    );
    assert_eq!(
        errno_of(setxattr(&p, "user.c", b"3", libc::XATTR_REPLACE)),
        libc::ENODATA
    );
    setxattr(&p, "user.a", b"two", libc::XATTR_REPLACE).unwrap();
    setxattr(&p, "user.c", b"3", libc::XATTR_CREATE).unwrap();
    assert_eq!(getxattr(&p, "user.a").unwrap(), b"two");
    // Missing names.
    assert_eq!(errno_of(getxattr(&p, "user.missing")), libc::ENODATA);
    assert_eq!(errno_of(removexattr(&p, "user.missing")), libc::ENODATA);
    removexattr(&p, "user.a").unwrap();
    assert_eq!(errno_of(getxattr(&p, "user.a")), libc::ENODATA);
    assert_eq!(listxattr(&p).unwrap(), ["user.b", "user.c"]);
    // A binary value of some size, on a directory.
    fs::create_dir(m.join("d")).unwrap();
    let big = Rng::new(7).bytes(4000);
    setxattr(&m.join("d"), "user.big", &big, 0).unwrap();
    assert_eq!(getxattr(&m.join("d"), "user.big").unwrap(), big);
    assert_eq!(
        errno_of(getxattr(&m.join("missing"), "user.a")),
        libc::ENOENT
    );
}

/// `fuse.xattr = false`: every xattr call fails with EOPNOTSUPP (the kernel turns the
/// ENOSYS into that and stops asking), files and data are untouched, and a mount with
/// the default (xattrs on) still stores and reads them.
#[test]
fn xattrs_can_be_switched_off() {
    let off = Mount::new_with_env("xattr-off", &[("RINGFS_FUSE_XATTR", "false")]);
    let p = off.join("f");
    fs::write(&p, b"data").unwrap();
    for _ in 0..2 {
        // twice: the second call is answered by the kernel without a round trip
        assert_eq!(errno_of(getxattr(&p, "security.selinux")), libc::EOPNOTSUPP);
    }
    assert_eq!(
        errno_of(setxattr(&p, "user.a", b"one", 0)),
        libc::EOPNOTSUPP
    );
    assert_eq!(errno_of(listxattr(&p)), libc::EOPNOTSUPP);
    assert_eq!(errno_of(removexattr(&p, "user.a")), libc::EOPNOTSUPP);
    assert_eq!(fs::read(&p).unwrap(), b"data");

    let on = Mount::attach(&off.volume);
    let q = on.join("f");
    setxattr(&q, "user.a", b"one", 0).unwrap();
    assert_eq!(getxattr(&q, "user.a").unwrap(), b"one");
    assert_eq!(fs::read(&q).unwrap(), b"data");
}

#[test]
fn statfs_and_access() {
    let m = Mount::new("statfs");
    let s = statvfs(m.path());
    assert_eq!(s.f_namemax, 255);
    assert!(s.f_bsize > 0 && s.f_frsize > 0);
    assert!(s.f_blocks > 0 && s.f_bavail > 0 && s.f_bavail <= s.f_blocks);
    assert!(s.f_files > 0 && s.f_ffree <= s.f_files);
    fs::write(m.join("f"), vec![1u8; 100_000]).unwrap();
    let s2 = statvfs(m.path());
    assert!(s2.f_ffree < s.f_ffree, "a new file uses an inode");

    let p = m.join("f");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    access(&p, libc::F_OK).unwrap();
    access(&p, libc::R_OK | libc::W_OK).unwrap();
    // Root needs an x bit somewhere for X_OK on a file.
    assert_eq!(errno_of(access(&p, libc::X_OK)), libc::EACCES);
    fs::set_permissions(&p, fs::Permissions::from_mode(0o744)).unwrap();
    access(&p, libc::X_OK).unwrap();
    assert_eq!(
        errno_of(access(&m.join("missing"), libc::F_OK)),
        libc::ENOENT
    );
    fs::create_dir(m.join("d")).unwrap();
    access(&m.join("d"), libc::R_OK | libc::W_OK | libc::X_OK).unwrap();
}

#[test]
fn fallocate_modes() {
    let m = Mount::new("falloc");
    let p = m.join("f");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    fallocate(&f, 0, 0, MIB as i64).unwrap();
    assert_eq!(f.metadata().unwrap().len(), MIB as u64);
    fallocate(&f, 0, 4096, 10).unwrap();
    assert_eq!(
        f.metadata().unwrap().len(),
        MIB as u64,
        "inside the file: no change"
    );
    fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 0, 4 * MIB as i64).unwrap();
    assert_eq!(f.metadata().unwrap().len(), MIB as u64, "KEEP_SIZE");
    assert_eq!(
        errno_of(fallocate(
            &f,
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            0,
            4096
        )),
        libc::EOPNOTSUPP
    );
    assert_eq!(
        errno_of(fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, 0, 4096)),
        libc::EOPNOTSUPP
    );
    drop(f);
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), MIB);
    assert!(got.iter().all(|b| *b == 0));
    // Growing a file with buffered data keeps the data.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.write_all_at(b"hello", 0).unwrap();
    fallocate(&f, 0, 0, 2 * MIB as i64).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 2 * MIB as u64);
    drop(f);
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 2 * MIB);
    assert_eq!(&got[..5], b"hello");
    assert!(got[5..].iter().all(|b| *b == 0));
}

#[test]
fn lseek_data_and_hole() {
    let m = Mount::new("lseek");
    let p = m.join("f");
    let check = |f: &File, size: i64| {
        assert_eq!(lseek(f, 0, libc::SEEK_DATA).unwrap(), 0);
        assert_eq!(lseek(f, 5000, libc::SEEK_DATA).unwrap(), 5000);
        assert_eq!(lseek(f, 0, libc::SEEK_HOLE).unwrap(), size);
        assert_eq!(errno_of(lseek(f, size, libc::SEEK_DATA)), libc::ENXIO);
        assert_eq!(errno_of(lseek(f, size + 100, libc::SEEK_HOLE)), libc::ENXIO);
        assert_eq!(lseek(f, 7, libc::SEEK_SET).unwrap(), 7);
        assert_eq!(lseek(f, 0, libc::SEEK_END).unwrap(), size);
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all_at(&[9u8; 10_000], 0).unwrap();
    // Written, not flushed yet.
    check(&f, 10_000);
    f.sync_all().unwrap();
    check(&f, 10_000);
    drop(f);
    let f = File::open(&p).unwrap();
    check(&f, 10_000);
}

#[test]
fn name_length_limits() {
    let m = Mount::new("names");
    let n255 = "a".repeat(255);
    let n256 = "b".repeat(256);
    fs::write(m.join(&n255), b"ok").unwrap();
    assert_eq!(fs::read(m.join(&n255)).unwrap(), b"ok");
    assert_eq!(names(m.path()), std::slice::from_ref(&n255));
    let d255 = "d".repeat(255);
    fs::create_dir(m.join(&d255)).unwrap();
    std::os::unix::fs::symlink("x", m.join("s".repeat(255))).unwrap();
    fs::hard_link(m.join(&n255), m.join("h".repeat(255))).unwrap();
    fs::rename(m.join(&n255), m.join("r".repeat(255))).unwrap();
    assert_eq!(
        errno_of(fs::metadata(m.join("z".repeat(255)))),
        libc::ENOENT
    );

    assert_eq!(errno_of(fs::write(m.join(&n256), b"x")), libc::ENAMETOOLONG);
    assert_eq!(errno_of(fs::create_dir(m.join(&n256))), libc::ENAMETOOLONG);
    assert_eq!(errno_of(fs::metadata(m.join(&n256))), libc::ENAMETOOLONG);
    assert_eq!(
        errno_of(std::os::unix::fs::symlink("x", m.join(&n256))),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_of(fs::hard_link(m.join("r".repeat(255)), m.join(&n256))),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_of(fs::rename(m.join("r".repeat(255)), m.join(&n256))),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno_of(mknod(&m.join(&n256), libc::S_IFIFO | 0o644, 0)),
        libc::ENAMETOOLONG
    );
    assert_eq!(names(m.path()).len(), 4);
}

/// Writes and truncates beyond `engine.max_file_size` (64 TiB) fail with EFBIG at once.
#[test]
fn efbig_beyond_max_file_size() {
    let m = Mount::new("efbig");
    let max: u64 = 64 << 40;
    let p = m.join("f");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    assert_eq!(errno_of(f.set_len(max + 1)), libc::EFBIG);
    f.set_len(max).unwrap();
    assert_eq!(f.metadata().unwrap().len(), max);
    f.set_len(0).unwrap();
    assert_eq!(errno_of(f.write_at(b"x", max)), libc::EFBIG);
    // Across the maximum: a short write up to it (as on a local file system), then
    // EFBIG for the rest.
    assert_eq!(f.write_at(&[1u8; 8192], max - 4096).unwrap(), 4096);
    assert_eq!(
        errno_of(f.write_all_at(&[1u8; 8192], max - 4096)),
        libc::EFBIG
    );
    f.write_at(b"y", max - 1).unwrap();
    assert_eq!(f.metadata().unwrap().len(), max);
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), max);

    let d = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .unwrap();
    assert_eq!(errno_of(d.write_at(&[1u8; 4096], max)), libc::EFBIG);
    d.write_at(&[2u8; 4096], max - 4096).unwrap();
    drop(d);
    assert_eq!(fs::metadata(&p).unwrap().len(), max);
    let mut tail = [0u8; 4096];
    File::open(&p)
        .unwrap()
        .read_exact_at(&mut tail, max - 4096)
        .unwrap();
    assert_eq!(tail, [2u8; 4096]);
}

/// With `fuse.writeback_cache = true` (for volumes used by one client) the kernel
/// buffers writes in its page cache: data, size, lseek and EFBIG still behave (EFBIG
/// then comes from the writeback, at fsync at the latest).
#[test]
fn writeback_cache_single_client() {
    let m = Mount::new_with_env("wbcache", &[("RINGFS_FUSE_WRITEBACK_CACHE", "true")]);
    overwrites(&m, 0, 5, 800);

    // lseek on a file whose data is still in the kernel's dirty pages.
    let p = m.join("seek");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all_at(&[9u8; 10_000], 0).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 10_000);
    assert_eq!(lseek(&f, 0, libc::SEEK_DATA).unwrap(), 0);
    assert_eq!(lseek(&f, 0, libc::SEEK_HOLE).unwrap(), 10_000);
    assert_eq!(errno_of(lseek(&f, 10_000, libc::SEEK_DATA)), libc::ENXIO);
    drop(f);

    // Truncate down and up again with dirty pages around.
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.write_all_at(&[7u8; 5000], 5000).unwrap();
    f.set_len(100).unwrap();
    f.set_len(20_000).unwrap();
    let mut got = vec![0xffu8; 20_000];
    f.read_exact_at(&mut got, 0).unwrap();
    assert_eq!(&got[..100], &[9u8; 100]);
    assert!(got[100..].iter().all(|b| *b == 0));
    drop(f);
    assert_eq!(fs::metadata(&p).unwrap().len(), 20_000);

    let max: u64 = 64 << 40;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("big"))
        .unwrap();
    let write = f.write_at(b"x", max + 4096);
    let synced = f.sync_all();
    assert!(
        matches!(&write, Err(e) if e.raw_os_error() == Some(libc::EFBIG))
            || matches!(&synced, Err(e) if e.raw_os_error() == Some(libc::EFBIG)),
        "buffered write beyond the maximum: write {write:?}, fsync {synced:?}"
    );
}

#[test]
fn readdir_many_entries() {
    let m = Mount::new("readdir");
    let d = m.join("d");
    fs::create_dir(&d).unwrap();
    let mut want: Vec<String> = (0..700)
        .map(|i| format!("entry-{i:05}-{}", "n".repeat(i % 40)))
        .collect();
    for n in &want {
        File::create(d.join(n)).unwrap();
    }
    want.sort();
    assert_eq!(names(&d), want);
    // With attributes (readdirplus path): every entry stats as a file.
    for e in fs::read_dir(&d).unwrap() {
        let e = e.unwrap();
        assert!(e.metadata().unwrap().is_file());
    }
    for n in want.iter().step_by(2) {
        fs::remove_file(d.join(n)).unwrap();
    }
    let left: Vec<String> = want.iter().skip(1).step_by(2).cloned().collect();
    assert_eq!(names(&d), left);
}

// ---- 2. data ---------------------------------------------------------------------------

/// Block `i` of the big sequential file: a 1 MiB window of the pool that moves with
/// `i`, stamped with `i` (a misplaced block cannot match).
fn big_block(i: u64, out: &mut [u8]) {
    let off = ((i * 4099 * 8) % (POOL - out.len()) as u64) as usize;
    out.copy_from_slice(&pool()[off..off + out.len()]);
    out[..8].copy_from_slice(&i.to_le_bytes());
}

/// 1 GiB (`RINGFS_E2E_BIG_MIB`) written sequentially in 1 MiB writes, then read back
/// in 1 MiB reads: equal MD5s, and every block equal. Prints the throughput.
#[test]
fn sequential_1gib_write_then_read() {
    let mib: u64 = std::env::var("RINGFS_E2E_BIG_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let m = Mount::new("seq");
    let p = m.join("big");
    let mut buf = vec![0u8; MIB];
    let mut want = vec![0u8; MIB];
    let mut wsum = Md5Pipe::new();
    let t0 = Instant::now();
    let mut f = File::create(&p).unwrap();
    for i in 0..mib {
        big_block(i, &mut buf);
        wsum.update(&buf);
        f.write_all(&buf).unwrap();
    }
    let t_written = t0.elapsed();
    f.sync_all().unwrap();
    drop(f);
    let t_write = t0.elapsed();
    assert_eq!(fs::metadata(&p).unwrap().len(), mib * MIB as u64);

    let t1 = Instant::now();
    let mut f = File::open(&p).unwrap();
    let mut rsum = Md5Pipe::new();
    for i in 0..mib {
        f.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("read block {i}: {e}"));
        rsum.update(&buf);
        big_block(i, &mut want);
        assert!(buf == want, "block {i} (offset {}) differs", i * MIB as u64);
    }
    assert_eq!(f.read(&mut buf).unwrap(), 0, "nothing after the end");
    let t_read = t1.elapsed();
    drop(f);
    assert_eq!(rsum.finish(), wsum.finish(), "MD5 of the data read back");
    let rate = |d: Duration| mib as f64 / d.as_secs_f64();
    eprintln!(
        "sequential {mib} MiB in 1 MiB calls: write+fsync+close {:.1} MiB/s ({:.1}s; last write \
         returned after {:.1}s), read {:.1} MiB/s ({:.1}s)",
        rate(t_write),
        t_write.as_secs_f64(),
        t_written.as_secs_f64(),
        rate(t_read),
        t_read.as_secs_f64(),
    );
    // Give the space back: the mount's background deleter removes the objects (an
    // unmount only waits for it briefly, and nothing mounts a test volume again).
    fs::remove_file(&p).unwrap();
    let t = Instant::now();
    assert!(
        eventually(Duration::from_secs(300), || status(&m.volume)
            .contains("pending deletions: 0")),
        "the deleted file's objects are still pending deletion after {:?}: {}",
        t.elapsed(),
        status(&m.volume)
    );
}

/// `ringfs status` of a volume (stdout; panics if it fails).
fn status(volume: &str) -> String {
    let conf = test_conf();
    let o = ringfs([
        OsStr::new("status"),
        OsStr::new("-c"),
        conf.as_os_str(),
        OsStr::new(volume),
    ]);
    assert!(o.status.success(), "ringfs status: {}", text(&o.stderr));
    text(&o.stdout)
}

/// `ringfs status | head -1`: the reader is gone before the output is
/// written, which must end the command quietly, not in a panic.
#[test]
fn status_into_a_closed_pipe_exits_cleanly() {
    let m = Mount::new("statuspipe");
    let conf = test_conf();
    let mut child = Command::new(common::BIN)
        .args([OsStr::new("status"), OsStr::new("-c"), conf.as_os_str()])
        .arg(&m.volume)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: status connects to etcd before it prints.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(o.status.success(), "{:?}: {err}", o.status);
}

#[test]
fn sparse_file() {
    let m = Mount::new("sparse");
    let p = m.join("sparse");
    let off = 100 * MIB as u64;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    f.write_all_at(b"after the hole", off).unwrap();
    drop(f);
    let md = fs::metadata(&p).unwrap();
    assert_eq!(md.len(), off + 14);
    let mut f = File::open(&p).unwrap();
    let mut buf = vec![0xffu8; MIB];
    let mut at = 0u64;
    while at < off {
        f.read_exact(&mut buf).unwrap();
        assert!(buf.iter().all(|b| *b == 0), "hole reads zeros at {at}");
        at += MIB as u64;
    }
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, b"after the hole");
    // A read spanning the end of the hole and the data.
    let mut mid = [0xffu8; 20];
    let n = f.read_at(&mut mid, off - 6).unwrap();
    assert_eq!(n, 20);
    assert_eq!(&mid[..6], &[0u8; 6]);
    assert_eq!(&mid[6..], b"after the hole");
    // Another write far in the middle of the hole.
    drop(f);
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(b"middle", 50 * MIB as u64 + 3).unwrap();
    drop(f);
    let f = File::open(&p).unwrap();
    let mut b = [0xffu8; 12];
    f.read_exact_at(&mut b, 50 * MIB as u64).unwrap();
    assert_eq!(&b, b"\0\0\0middle\0\0\0");
    assert_eq!(fs::metadata(&p).unwrap().len(), off + 14);
}

/// Random small writes into a 10 MiB file, checked against an in-memory copy with reads
/// in between (before close), then after close and reopen.
#[test]
fn random_overwrites_match_model() {
    let m = Mount::new("overwrite");
    overwrites(&m, 0, 3, 1500);
}

/// Small reads at random offsets of a file that no cache holds (a second client with an
/// empty cache directory, O_DIRECT so every read reaches the engine): each one fetches only
/// its bytes from Swift while the whole block arrives in the background; every byte is
/// right, before and after the blocks are cached, across block and slice boundaries.
#[test]
fn random_small_reads_of_a_cold_file() {
    let m = Mount::new("randread");
    let mut rng = Rng::new(21);
    let data = rng.bytes(10 * MIB + 4321);
    let p = m.join("f");
    fs::write(&p, &data).unwrap();
    // An overwrite across the first block boundary: reads resolve two slices there.
    let patch = rng.bytes(100_000);
    let at = 4 * MIB - 50_000;
    OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .write_all_at(&patch, at as u64)
        .unwrap();
    let mut want = data.clone();
    want[at..at + patch.len()].copy_from_slice(&patch);

    let cache = Scratch::new("randread-cache");
    let cache_dir = cache.path().to_string_lossy().into_owned();
    let other = Mount::attach_with_env(&m.volume, &[("RINGFS_CACHE_DIR", &cache_dir)]);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(other.join("f"))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..400 {
        let len = [4096usize, 8192, 65536][i % 3];
        let off = (rng.below((want.len() / 4096) as u64) as usize) * 4096;
        let n = f.read_at(&mut buf[..len], off as u64).unwrap();
        let end = (off + len).min(want.len());
        assert_eq!(n, end - off, "read {i} at {off}");
        assert!(
            buf[..n] == want[off..end],
            "read {i}: {len} bytes at {off} differ"
        );
    }
    drop(f);
    // The whole file, now from the blocks the random reads brought in.
    assert_eq!(md5_file(&other.join("f")), md5_of(&want));
    drop(other);

    // A new mount on the same cache directory: random reads come from the cached block
    // files, 64 KiB segments at a time, each checked; a damaged segment is not served.
    let mut damaged = None;
    for dir in fs::read_dir(cache.path()).unwrap().flatten() {
        for file in fs::read_dir(dir.path().join("blocks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            // Blocks of the first slice are named 1_<index>_<len>.
            let name = file.file_name().to_string_lossy().into_owned();
            let index: Option<usize> = name
                .strip_prefix("1_")
                .and_then(|r| r.split('_').next()?.parse().ok());
            if let (None, Some(index)) = (damaged, index) {
                let mut bytes = fs::read(file.path()).unwrap();
                bytes[100_000] ^= 0x55;
                fs::write(file.path(), bytes).unwrap();
                damaged = Some(index * 4 * MIB + 100_000);
            }
        }
    }
    let damaged = damaged.expect("a cached block file of the first slice to damage");
    let third = Mount::attach_with_env(&m.volume, &[("RINGFS_CACHE_DIR", &cache_dir)]);
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(third.join("f"))
        .unwrap();
    let at = damaged / 4096 * 4096;
    let n = f.read_at(&mut buf[..4096], at as u64).unwrap();
    assert!(
        buf[..n] == want[at..at + n],
        "the damaged segment was served"
    );
    for i in 0..300 {
        let len = [4096usize, 8192, 65536][i % 3];
        let off = (rng.below((want.len() / 4096) as u64) as usize) * 4096;
        let n = f.read_at(&mut buf[..len], off as u64).unwrap();
        let end = (off + len).min(want.len());
        assert!(
            buf[..n] == want[off..end],
            "cached read {i}: {len} bytes at {off} differ"
        );
    }
}

/// The same with O_DIRECT (every write and read goes to the engine, not the page cache)
/// and a 1 MiB write buffer, so reads overlap buffered, uploading and committed data.
#[test]
fn random_overwrites_match_model_direct_io() {
    let m = Mount::new_with_env(
        "overwrite-direct",
        &[("RINGFS_ENGINE_WRITE_BUFFER", "1MiB")],
    );
    overwrites(&m, libc::O_DIRECT, 4, 400);
}

/// `ops` random writes per round (every 7th followed by a random read), 3 rounds.
fn overwrites(m: &Mount, flags: libc::c_int, seed: u64, ops: usize) {
    let p = m.join("f");
    let size = 10 * MIB;
    let mut rng = Rng::new(seed);
    let mut model = rng.bytes(size);
    fs::write(&p, &model).unwrap();
    let open = || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(&p)
            .unwrap()
    };
    for round in 0..3 {
        let f = open();
        // (op, offset, data) of this round's writes, to explain a bad read.
        let mut history: Vec<(usize, usize, Vec<u8>)> = Vec::new();
        let start = model.clone();
        for i in 0..ops {
            let len = 1 + rng.below(if i % 10 == 0 { 300_000 } else { 5000 }) as usize;
            // Some writes run past the end and grow the file.
            let off = rng.below((model.len() + 1000) as u64) as usize;
            let data = rng.bytes(len);
            f.write_all_at(&data, off as u64).unwrap();
            if off + len > model.len() {
                model.resize(off + len, 0);
            }
            model[off..off + len].copy_from_slice(&data);
            history.push((i, off, data));
            if i % 7 == 0 {
                let roff = rng.below(model.len() as u64) as usize;
                let rlen = (1 + rng.below(200_000) as usize).min(model.len() - roff);
                let mut got = vec![0u8; rlen];
                f.read_exact_at(&mut got, roff as u64).unwrap();
                if got != model[roff..roff + rlen] {
                    panic!(
                        "round {round} op {i}: read [{roff}, +{rlen}) differs from the model: {}",
                        explain(&got, roff, &model, &start, &history)
                    );
                }
            }
        }
        assert_eq!(f.metadata().unwrap().len(), model.len() as u64);
        drop(f);
        let mut got = Vec::new();
        open().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), model.len(), "size after close, round {round}");
        assert!(got == model, "content after close, round {round}");
    }
    assert_eq!(md5_file(&p), md5_of(&model));
}

/// One writer and one reader on the same file at once (O_DIRECT, so both reach the
/// engine; a small write buffer, so writes keep flushing): a read that starts after a
/// write returned must see that write (or a newer one), never older data.
#[test]
fn reader_sees_writes_completed_before_it_started() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    const REGION: usize = 64 * 1024;
    const REGIONS: usize = 128;
    let m = Mount::new_with_env("rw-race", &[("RINGFS_ENGINE_WRITE_BUFFER", "1MiB")]);
    let p = m.join("f");
    // Version 0 everywhere, committed.
    let stamp = |region: usize, version: u64| -> Vec<u8> {
        let word = ((region as u64) << 40 | version).to_le_bytes();
        word.iter().copied().cycle().take(REGION).collect()
    };
    let mut init = Vec::with_capacity(REGION * REGIONS);
    for r in 0..REGIONS {
        init.extend_from_slice(&stamp(r, 0));
    }
    fs::write(&p, &init).unwrap();
    let done: Arc<Vec<AtomicU64>> = Arc::new((0..REGIONS).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let open = |p: &Path| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(p)
            .unwrap()
    };
    let writer = {
        let (f, done, stop) = (open(&p), done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(1);
            let mut versions = vec![0u64; REGIONS];
            let t = Instant::now();
            let mut writes = 0;
            while t.elapsed() < Duration::from_secs(20) && !stop.load(Ordering::Relaxed) {
                let r = rng.below(REGIONS as u64) as usize;
                versions[r] += 1;
                f.write_all_at(&stamp(r, versions[r]), (r * REGION) as u64)
                    .unwrap();
                done[r].store(versions[r], Ordering::SeqCst);
                writes += 1;
            }
            stop.store(true, Ordering::Relaxed);
            writes
        })
    };
    let f = open(&p);
    let mut rng = Rng::new(2);
    let mut buf = vec![0u8; REGION];
    let mut reads = 0;
    let mut failure = None;
    while !stop.load(Ordering::Relaxed) {
        let r = rng.below(REGIONS as u64) as usize;
        let before = done[r].load(Ordering::SeqCst);
        f.read_exact_at(&mut buf, (r * REGION) as u64).unwrap();
        reads += 1;
        let oldest = buf
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap()) & ((1 << 40) - 1))
            .min()
            .unwrap();
        if oldest < before {
            failure = Some(format!(
                "read {reads}: region {r} has bytes of version {oldest}, but version {before} \
                 was written before the read started"
            ));
            stop.store(true, Ordering::Relaxed);
        }
    }
    let writes = writer.join().expect("writer");
    if let Some(f) = failure {
        panic!("{f} ({writes} writes)");
    }
    eprintln!("reader_sees_writes_completed_before_it_started: {writes} writes, {reads} reads");
}

/// Which bytes of a read differ from the model, and whose bytes they are instead.
fn explain(
    got: &[u8],
    roff: usize,
    model: &[u8],
    start: &[u8],
    history: &[(usize, usize, Vec<u8>)],
) -> String {
    let bad: Vec<usize> = (0..got.len())
        .filter(|&k| got[k] != model[roff + k])
        .map(|k| roff + k)
        .collect();
    let (first, last) = (bad[0], *bad.last().unwrap());
    let mut out = format!(
        "{} bytes differ in [{first}, {last}]; zeros: {}; ",
        bad.len(),
        bad.iter().all(|&x| got[x - roff] == 0)
    );
    let same = |x: usize, src: &[u8], src_off: usize| {
        (x..=last.min(src_off + src.len() - 1))
            .filter(|&y| bad.binary_search(&y).is_ok())
            .all(|y| got[y - roff] == src[y - src_off])
    };
    if first < start.len() && same(first, &start[..start.len().min(last + 1)], 0) {
        out += "the bad bytes are the content from before this round; ";
    }
    for (op, off, data) in history.iter().rev() {
        if *off <= first && first < off + data.len() {
            out += &format!(
                "op {op} wrote [{off}, +{}) over it (bad bytes match it: {}); ",
                data.len(),
                same(first, data, *off)
            );
        }
    }
    out
}

/// Unaligned writes and reads across block (4 MiB) and chunk (64 MiB) boundaries, with
/// O_DIRECT so the engine sees exactly these ranges; read before and after the flush.
#[test]
fn writes_across_block_and_chunk_boundaries() {
    let m = Mount::new("boundaries");
    let p = m.join("f");
    let block = 4 * MIB as u64;
    let chunk = 64 * MIB as u64;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&p)
        .unwrap();
    let mut rng = Rng::new(77);
    let spots = [
        block - 3,
        2 * block - 100_000,
        chunk - 1,
        chunk - 5000,
        2 * chunk - 2 * MIB as u64,
        chunk + block - 7,
    ];
    let mut written = Vec::new();
    for (i, at) in spots.iter().enumerate() {
        let len = [10usize, 300_000, 2, 10_000, 5 * MIB, 20][i];
        let data = rng.bytes(len);
        f.write_all_at(&data, *at).unwrap();
        let mut got = vec![0u8; len];
        f.read_exact_at(&mut got, *at).unwrap();
        assert!(got == data, "buffered write at {at} reads back");
        written.push((*at, data));
    }
    // [chunk - 5000, +10000) was written after, and over, [chunk - 1, +2).
    written.remove(2);
    let check = |f: &File, when: &str| {
        for (at, data) in &written {
            let mut got = vec![0u8; data.len() + 20];
            let n = f.read_at(&mut got, at - 10).unwrap();
            assert!(n >= data.len() + 10, "{when}: short read at {at}");
            assert!(got[10..10 + data.len()] == data[..], "{when}: data at {at}");
        }
    };
    check(&f, "before fsync");
    f.sync_all().unwrap();
    check(&f, "after fsync");
    drop(f);
    let f = File::open(&p).unwrap();
    check(&f, "after reopen");
    assert_eq!(
        f.metadata().unwrap().len(),
        2 * chunk - 2 * MIB as u64 + 5 * MIB as u64
    );
}

#[test]
fn truncate_down_then_extend_reads_zeros() {
    let m = Mount::new("truncext");
    let p = m.join("f");
    let data = Rng::new(5).bytes(6 * MIB);
    fs::write(&p, &data).unwrap();
    // Closed file: shrink into the middle of a block, then extend by truncate.
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(1_000_003)
        .unwrap();
    File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(6 * MIB as u64)
        .unwrap();
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 6 * MIB);
    assert_eq!(&got[..1_000_003], &data[..1_000_003]);
    assert!(
        got[1_000_003..].iter().all(|b| *b == 0),
        "extended range reads zeros"
    );
    // Open file: shrink, then extend by writing past the end (a hole in between).
    let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    f.set_len(500).unwrap();
    f.write_all_at(b"end", 3 * MIB as u64).unwrap();
    let mut buf = vec![0xffu8; 3 * MIB + 3];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf[..500], &data[..500]);
    assert!(buf[500..3 * MIB].iter().all(|b| *b == 0), "before close");
    assert_eq!(&buf[3 * MIB..], b"end");
    drop(f);
    let got = fs::read(&p).unwrap();
    assert_eq!(got.len(), 3 * MIB + 3);
    assert_eq!(&got[..500], &data[..500]);
    assert!(got[500..3 * MIB].iter().all(|b| *b == 0), "after close");
    assert_eq!(&got[3 * MIB..], b"end");
}

#[test]
fn concurrent_writers_on_8_files() {
    let m = Mount::new("concurrent");
    let per_file = 24 * MIB;
    let dir = m.path().to_path_buf();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let p = dir.join(format!("w{i}"));
            std::thread::spawn(move || {
                let mut rng = Rng::new(100 + i);
                let mut f = File::create(&p).unwrap();
                let mut s = Md5Pipe::new();
                let mut written = 0;
                while written < per_file {
                    // Unaligned write sizes, different per thread.
                    let n = (1 + rng.below(256 * 1024) as usize).min(per_file - written);
                    let b = rng.bytes(n);
                    f.write_all(&b).unwrap();
                    s.update(&b);
                    written += n;
                }
                drop(f);
                (p, written, s.finish())
            })
        })
        .collect();
    for h in handles {
        let (p, written, want) = h.join().expect("writer thread");
        assert_eq!(written, per_file);
        assert_eq!(fs::metadata(&p).unwrap().len(), per_file as u64);
        assert_eq!(md5_file(&p), want, "{}", p.display());
    }
}

#[test]
fn o_append() {
    let m = Mount::new("append");
    let p = m.join("log");
    fs::write(&p, b"start\n").unwrap();
    let mut a = OpenOptions::new().append(true).open(&p).unwrap();
    let mut b = OpenOptions::new().append(true).open(&p).unwrap();
    let mut want = b"start\n".to_vec();
    for i in 0..50 {
        let line = format!("line {i} from {}\n", if i % 2 == 0 { "a" } else { "b" });
        let w = if i % 2 == 0 { &mut a } else { &mut b };
        // Seeking does not matter with O_APPEND.
        w.seek(SeekFrom::Start(0)).unwrap();
        w.write_all(line.as_bytes()).unwrap();
        want.extend_from_slice(line.as_bytes());
    }
    assert_eq!(a.metadata().unwrap().len(), want.len() as u64);
    drop(a);
    drop(b);
    assert_eq!(fs::read(&p).unwrap(), want);
    // Appending to a file created with O_APPEND, and after a reopen.
    let q = m.join("new");
    let mut c = OpenOptions::new()
        .append(true)
        .create(true)
        .open(&q)
        .unwrap();
    c.write_all(b"1").unwrap();
    drop(c);
    let mut c = OpenOptions::new().append(true).open(&q).unwrap();
    c.write_all(b"2").unwrap();
    drop(c);
    assert_eq!(fs::read(&q).unwrap(), b"12");
}

// ---- 3. open but unlinked ----------------------------------------------------------------

#[test]
fn open_unlinked_file_stays_usable_until_close() {
    let mut m = Mount::new("unlinked");
    let p = m.join("f");
    let data = Rng::new(9).bytes(3 * MIB + 17);
    fs::write(&p, &data).unwrap();
    let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
    fs::remove_file(&p).unwrap();
    assert_eq!(errno_of(fs::metadata(&p)), libc::ENOENT);
    assert!(names(m.path()).is_empty());
    // Still readable...
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert!(got == data);
    // ...and writable, also after a flush.
    f.write_all_at(b"more", 100).unwrap();
    f.sync_all().unwrap();
    f.write_all_at(b"tail", data.len() as u64).unwrap();
    let md = f.metadata().unwrap();
    assert_eq!(md.nlink(), 0);
    assert_eq!(md.len(), data.len() as u64 + 4);
    let mut buf = [0u8; 4];
    f.read_exact_at(&mut buf, 100).unwrap();
    assert_eq!(&buf, b"more");
    f.read_exact_at(&mut buf, data.len() as u64).unwrap();
    assert_eq!(&buf, b"tail");
    // A new file of the same name is a different file.
    fs::write(&p, b"new").unwrap();
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, &data[..4]);
    drop(f);
    assert_eq!(fs::read(&p).unwrap(), b"new");
    // After the close and the unmount the inode is gone for good.
    m.unmount();
    let out = status(&m.volume);
    assert!(out.contains("pending deletions: 0"), "{out}");
    assert!(
        out.contains("inodes:        2"),
        "root and the new file only: {out}"
    );
    assert!(out.contains("sessions:      0"), "{out}");
    m.mount();
    assert_eq!(names(m.path()), ["f"]);
}

// ---- 4. persistence ------------------------------------------------------------------------

#[test]
fn persistence_across_remount() {
    let mut m = Mount::new("persist");
    let mut rng = Rng::new(11);
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4 * MIB,
        4 * MIB + 1,
        70 * MIB + 12345,
    ];
    fs::create_dir_all(m.join("a/b/c")).unwrap();
    let mut sums = Vec::new();
    for (i, s) in sizes.iter().enumerate() {
        let data = rng.bytes(*s);
        let p = m.join(format!("a/b/f{i}"));
        fs::write(&p, &data).unwrap();
        sums.push((p, md5_of(&data)));
    }
    // A sparse file, a symlink, a hard link, an xattr, modes and times.
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(m.join("a/sparse"))
        .unwrap();
    f.write_all_at(b"far", 200 * MIB as u64).unwrap();
    drop(f);
    std::os::unix::fs::symlink("b/f1", m.join("a/ln")).unwrap();
    fs::hard_link(m.join("a/b/f2"), m.join("a/c-hard")).unwrap();
    setxattr(&m.join("a/b/f3"), "user.k", b"v", 0).unwrap();
    fs::set_permissions(m.join("a/b/c"), fs::Permissions::from_mode(0o711)).unwrap();
    utimensat(
        &m.join("a/b/f4"),
        ts(1_500_000_000, 1),
        ts(1_600_000_000, 2),
    )
    .unwrap();
    let before = names(&m.join("a/b"));

    m.remount();

    for (p, want) in &sums {
        assert_eq!(md5_file(p), *want, "{}", p.display());
    }
    assert_eq!(names(&m.join("a/b")), before);
    let sp = fs::read(m.join("a/sparse")).unwrap();
    assert_eq!(sp.len(), 200 * MIB + 3);
    assert!(sp[..200 * MIB].iter().all(|b| *b == 0));
    assert_eq!(&sp[200 * MIB..], b"far");
    assert_eq!(fs::read_link(m.join("a/ln")).unwrap(), Path::new("b/f1"));
    assert_eq!(fs::metadata(m.join("a/c-hard")).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(m.join("a/c-hard")).unwrap().ino(),
        fs::metadata(m.join("a/b/f2")).unwrap().ino()
    );
    assert_eq!(getxattr(&m.join("a/b/f3"), "user.k").unwrap(), b"v");
    assert_eq!(
        fs::metadata(m.join("a/b/c")).unwrap().mode() & 0o7777,
        0o711
    );
    let md = fs::metadata(m.join("a/b/f4")).unwrap();
    assert_eq!(
        (md.atime(), md.atime_nsec(), md.mtime(), md.mtime_nsec()),
        (1_500_000_000, 1, 1_600_000_000, 2)
    );

    // Data written right before an unmount (no fsync, no wait) is there too.
    let last = rng.bytes(5 * MIB + 3);
    let mut f = File::create(m.join("last")).unwrap();
    f.write_all(&last).unwrap();
    drop(f);
    m.remount();
    assert_eq!(md5_file(&m.join("last")), md5_of(&last));
}

// ---- 5. two mounts of one volume ------------------------------------------------------

/// A file opened again unchanged keeps the kernel's page cache (warm reads at memory
/// speed); another client's commit or truncate in between drops it.
#[test]
fn reopened_unchanged_file_keeps_page_cache_but_sees_other_clients_writes() {
    let a = Mount::new("keepcache");
    let b = Mount::attach(&a.volume);
    let mut rng = Rng::new(5);
    let data = rng.bytes(2 * MIB + 3);
    fs::write(a.join("f"), &data).unwrap();
    // B reads it twice: the second open finds it unchanged and keeps B's page cache.
    assert!(fs::read(b.join("f")).unwrap() == data);
    assert!(fs::read(b.join("f")).unwrap() == data);
    // A overwrites bytes in place (same size) and closes: B's next open must not serve
    // its cached pages.
    let want = overwrite_in_place(&a.join("f"), 4096, b"changed on A", &data);
    assert!(
        fs::read(b.join("f")).unwrap() == want,
        "B reads A's overwrite"
    );
    assert!(
        fs::read(b.join("f")).unwrap() == want,
        "and again, from its cache"
    );
    // A truncate on A shows too.
    OpenOptions::new()
        .write(true)
        .open(a.join("f"))
        .unwrap()
        .set_len(100)
        .unwrap();
    assert!(
        fs::read(b.join("f")).unwrap() == want[..100],
        "B reads the truncated file"
    );
}

/// Writes `text` at `at` into the existing file `path` (same size) and closes it;
/// returns what the file holds now if it held `before`.
fn overwrite_in_place(path: &Path, at: usize, text: &[u8], before: &[u8]) -> Vec<u8> {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(text, at as u64).unwrap();
    drop(f);
    let mut want = before.to_vec();
    want[at..at + text.len()].copy_from_slice(text);
    want
}

/// Two mounts (two processes) of one volume, default configuration (the kernel's
/// writeback cache off): what one writes and closes, the other reads after opening;
/// renames and deletes show up after the kernel's entry TTL.
#[test]
fn two_mounts_close_to_open() {
    let a = Mount::new("twomounts");
    let b = Mount::attach(&a.volume);
    assert_ne!(a.pid(), b.pid());
    let mut rng = Rng::new(21);

    // A new file: write + close on A, open + read on B.
    let d1 = rng.bytes(3 * MIB + 5);
    fs::write(a.join("f"), &d1).unwrap();
    assert!(fs::read(b.join("f")).unwrap() == d1, "B reads A's new file");
    // And the other way round, overwriting part of it (same size).
    let want = overwrite_in_place(&b.join("f"), 1000, b"written by B", &d1);
    assert!(
        fs::read(a.join("f")).unwrap() == want,
        "A reads B's overwrite"
    );
    // Growing and shrinking.
    let d2 = rng.bytes(5 * MIB);
    fs::write(a.join("f"), &d2).unwrap();
    assert!(
        fs::read(b.join("f")).unwrap() == d2,
        "B reads the rewritten, bigger file"
    );
    fs::write(a.join("f"), b"short").unwrap();
    assert_eq!(
        fs::read(b.join("f")).unwrap(),
        b"short",
        "B reads the shrunk file"
    );

    // Directories, renames and deletes show on the other mount (after the kernel's
    // entry cache of at most fuse.entry_ttl).
    let limit = Duration::from_secs(5);
    fs::create_dir(a.join("dir")).unwrap();
    fs::write(a.join("dir/x"), b"x").unwrap();
    assert!(
        eventually(limit, || b.join("dir/x").exists()),
        "B sees A's new dir"
    );
    fs::rename(a.join("dir/x"), a.join("dir/y")).unwrap();
    assert!(
        eventually(limit, || !b.join("dir/x").exists()
            && b.join("dir/y").exists()),
        "B sees A's rename"
    );
    assert_eq!(fs::read(b.join("dir/y")).unwrap(), b"x");
    fs::remove_file(b.join("dir/y")).unwrap();
    assert!(
        eventually(limit, || !a.join("dir/y").exists()),
        "A sees B's delete"
    );
    assert!(eventually(limit, || names(&a.join("dir")).is_empty()));
    fs::remove_dir(a.join("dir")).unwrap();
    assert!(
        eventually(limit, || !b.join("dir").exists()),
        "B sees A's rmdir"
    );
    // A rename over an existing file on B, read on A.
    fs::write(b.join("new"), b"replacement").unwrap();
    fs::rename(b.join("new"), b.join("f")).unwrap();
    assert!(
        eventually(limit, || fs::read(a.join("f"))
            .map(|d| d == b"replacement")
            .unwrap_or(false)),
        "A sees B's rename over f"
    );
    assert_eq!(names(a.path()), ["f"]);
    assert_eq!(names(b.path()), ["f"]);
}

// ---- 6. bad input at mount ------------------------------------------------------------

/// Runs `ringfs mount -c CONF VOLUME MP --background`.
fn mount_cmd(conf: &Path, volume: &str, mp: &Path) -> std::process::Output {
    ringfs([
        OsStr::new("mount"),
        OsStr::new("-c"),
        conf.as_os_str(),
        OsStr::new(volume),
        mp.as_os_str(),
        OsStr::new("--background"),
    ])
}

/// A failed mount: non-zero exit, exactly one line on stderr, starting with `ringfs: `
/// and containing every word of `words` (case-insensitive), nothing mounted.
#[track_caller]
fn assert_mount_fails(o: &std::process::Output, mp: &Path, words: &[&str]) {
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "mount succeeded: stdout {:?} stderr {err:?}",
        text(&o.stdout)
    );
    assert!(
        err.starts_with("ringfs: ") && err.ends_with('\n') && err.lines().count() == 1,
        "want one `ringfs: ` line on stderr, got {err:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let lower = err.to_lowercase();
    for w in words {
        assert!(
            lower.contains(&w.to_lowercase()),
            "stderr lacks {w:?}: {err:?}"
        );
    }
    if mp.is_dir() {
        assert!(!common::is_mounted(mp) || mount_count(mp) == 1);
    }
}

/// A copy of the test config with one line replaced (in a scratch directory).
fn conf_with(tag: &str, from: &str, to: &str) -> (Scratch, PathBuf) {
    let text = fs::read_to_string(test_conf()).unwrap();
    assert!(text.contains(from), "config has no {from:?}");
    let dir = Scratch::new(tag);
    let p = dir.join("ringfs.toml");
    fs::write(&p, text.replace(from, to)).unwrap();
    (dir, p)
}

/// The first line of the test config that starts with `key`.
fn conf_line(key: &str) -> String {
    fs::read_to_string(test_conf())
        .unwrap()
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no {key:?} line in the test config"))
        .to_string()
}

#[test]
fn mount_error_missing_volume() {
    let mp = Scratch::new("missing-volume");
    let vol = common::unique("never-formatted");
    let o = mount_cmd(&test_conf(), &vol, mp.path());
    assert_mount_fails(&o, mp.path(), &[&vol, "not found", "format"]);
    assert!(!common::is_mounted(mp.path()));
}

#[test]
fn mount_error_etcd_down() {
    // A port that nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, conf) = conf_with(
        "etcd-down",
        &conf_line("endpoints"),
        &format!("endpoints = [\"http://127.0.0.1:{port}\"]"),
    );
    let mp = Scratch::new("etcd-down");
    let t = Instant::now();
    let o = mount_cmd(&conf, "anyvolume", mp.path());
    assert_mount_fails(&o, mp.path(), &["etcd", &format!("127.0.0.1:{port}")]);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    assert!(!common::is_mounted(mp.path()));
}

#[test]
fn mount_error_wrong_swift_key() {
    let vol = common::unique("badkey");
    common::format_volume(&vol);
    let (_dir, conf) = conf_with("badkey", &conf_line("key ="), "key = \"definitely-wrong\"");
    let mp = Scratch::new("badkey");
    let o = mount_cmd(&conf, &vol, mp.path());
    assert_mount_fails(&o, mp.path(), &["swift", "auth", "401"]);
    assert!(!common::is_mounted(mp.path()));
}

/// `config check` reaches the services like a mount: ok with the test config, and the
/// mount's own one-line error for a wrong key or a dead etcd; `--offline` skips them.
#[test]
fn config_check_reaches_the_services() {
    let check = |conf: &Path, offline: bool| {
        let mut args = vec![OsStr::new("config"), OsStr::new("check")];
        if offline {
            args.push(OsStr::new("--offline"));
        }
        args.extend([OsStr::new("-c"), conf.as_os_str()]);
        ringfs(args)
    };
    let o = check(&test_conf(), false);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (_d1, bad_key) = conf_with(
        "check-key",
        &conf_line("key ="),
        "key = \"definitely-wrong\"",
    );
    let o = check(&bad_key, false);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("auth") && err.contains("401"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        check(&bad_key, true).status.success(),
        "--offline does not contact Swift"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_d2, dead) = conf_with(
        "check-etcd",
        &conf_line("endpoints"),
        &format!("endpoints = [\"http://127.0.0.1:{port}\"]"),
    );
    let o = check(&dead, false);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains(&format!("127.0.0.1:{port}")),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn mount_error_busy_mountpoint() {
    let m = Mount::new("busy");
    fs::write(m.join("f"), b"first mount").unwrap();
    let o = mount_cmd(&test_conf(), &m.volume, m.path());
    // If the command claims success, its mount process must not outlive this test
    // (it could mount on top once the first mount is gone).
    if let Some((pid, _)) = common::parse_mounted_line(&text(&o.stdout)) {
        assert!(
            common::wait_exit(pid, Duration::from_secs(30)),
            "second mount process {pid} keeps running"
        );
    }
    assert_mount_fails(&o, m.path(), &["busy", "already mounted"]);
    assert_eq!(
        mount_count(m.path()),
        1,
        "exactly one mount on the mountpoint"
    );
    assert_eq!(
        fs::read(m.join("f")).unwrap(),
        b"first mount",
        "the first mount still works"
    );
}

#[test]
fn mount_error_mountpoint_is_a_file() {
    let dir = Scratch::new("mp-file");
    let file = dir.join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let vol = common::unique("mpfile");
    common::format_volume(&vol);
    let o = mount_cmd(&test_conf(), &vol, &file);
    assert_mount_fails(&o, &file, &["not a directory", &file.to_string_lossy()]);
    let missing = dir.join("missing");
    let o = mount_cmd(&test_conf(), &vol, &missing);
    assert_mount_fails(&o, &missing, &[&missing.to_string_lossy(), "no such file"]);
}

/// A block another client has staged but not uploaded yet (write-back, long upload
/// delay): a reader waits `cache.read_wait_timeout`, gets EIO, and its log names the
/// writing session (host and pid). Once the writer unmounts, which uploads, the read works.
#[test]
fn a_block_not_yet_uploaded_is_eio_naming_the_writer() {
    let writer = Mount::new_with_env(
        "notuploaded",
        &[
            ("RINGFS_CACHE_WRITEBACK", "true"),
            ("RINGFS_CACHE_UPLOAD_DELAY", "1h"),
            ("RINGFS_CACHE_UPLOAD_DEADLINE", "2h"),
        ],
    );
    let data = Rng::new(41).bytes(300_000);
    fs::write(writer.join("f"), &data).unwrap();

    let cache = Scratch::new("notuploaded-cache");
    let cache_dir = cache.path().to_string_lossy().into_owned();
    let reader = Mount::attach_with_env(
        &writer.volume,
        &[
            ("RINGFS_CACHE_DIR", &cache_dir),
            ("RINGFS_CACHE_READ_WAIT_TIMEOUT", "1s"),
        ],
    );
    let t0 = Instant::now();
    let err = fs::read(reader.join("f")).expect_err("the block is only on the writer's disk");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert!(
        t0.elapsed() >= Duration::from_secs(1),
        "the reader waited first"
    );
    let log = reader.log_tail(40);
    let pid = writer.pid().expect("writer pid");
    assert!(
        log.contains(&format!("\"pid\":{pid}")) && log.contains("still mounted"),
        "the reader's log names the writing session (pid {pid}):\n{log}"
    );

    drop(writer);
    assert!(
        fs::read(reader.join("f")).unwrap() == data,
        "readable once the writer has unmounted (and uploaded)"
    );
}

/// Block files staged by each mount under `cache` (one entry per mount directory that
/// holds any), sorted.
fn staged_per_mount(cache: &Path) -> Vec<usize> {
    let mut out = Vec::new();
    for vol in fs::read_dir(cache).into_iter().flatten().flatten() {
        for dir in fs::read_dir(vol.path().join("staging"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| {
                    let name = f.file_name().to_string_lossy().into_owned();
                    name != "lock" && !name.contains(".tmp")
                })
                .count();
            if n > 0 {
                out.push(n);
            }
        }
    }
    out.sort();
    out
}

/// Two write-back mounts of one volume on one machine share `cache.dir`: each stages into
/// a directory of its own, the second's start leaves the first's staged block alone, and
/// each uploads its own blocks when it unmounts.
#[test]
fn two_writeback_mounts_sharing_a_cache_dir_keep_their_own_staging() {
    let cache = Scratch::new("shared-cache");
    let dir = cache.path().to_string_lossy().into_owned();
    let env = [
        ("RINGFS_CACHE_DIR", dir.as_str()),
        ("RINGFS_CACHE_WRITEBACK", "true"),
        ("RINGFS_CACHE_UPLOAD_DELAY", "1h"),
        ("RINGFS_CACHE_UPLOAD_DEADLINE", "2h"),
    ];
    let a = Mount::new_with_env("sharedcache", &env);
    let volume = a.volume.clone();
    let (da, db) = (Rng::new(51).bytes(200_000), Rng::new(52).bytes(300_000));
    fs::write(a.join("a"), &da).unwrap();
    assert_eq!(staged_per_mount(cache.path()), [1], "a's block is staged");

    let b = Mount::attach_with_env(&volume, &env);
    fs::write(b.join("b"), &db).unwrap();
    assert_eq!(
        staged_per_mount(cache.path()),
        [1, 1],
        "b started without taking a's block; each has its own"
    );

    drop(b);
    assert_eq!(
        staged_per_mount(cache.path()),
        [1],
        "b uploaded only its own block"
    );
    drop(a);
    assert!(
        staged_per_mount(cache.path()).is_empty(),
        "a uploaded its block at unmount"
    );

    let c = Mount::attach(&volume);
    assert!(
        fs::read(c.join("a")).unwrap() == da,
        "a's file, read from Swift"
    );
    assert!(
        fs::read(c.join("b")).unwrap() == db,
        "b's file, read from Swift"
    );
}

/// Slice references in each chunk of `volume`, read from etcd with `etcdctl` (the value
/// is a 1-byte header and 25 bytes per reference).
fn chunk_ref_counts(volume: &str) -> Vec<usize> {
    value_lens(volume, 'C')
        .into_iter()
        .map(|bytes| (bytes - 1) / 25)
        .collect()
}

/// A reader that keeps a file open reads through the chunk list it read at first. When a
/// compaction on another client has replaced those fragments and their objects are gone
/// (no grace), the reader's fetch finds nothing, and it reads the chunk list again and
/// gets the same bytes from the merged slice, instead of EIO.
#[test]
fn a_reader_with_a_chunk_list_older_than_a_compaction_reads_again() {
    let w = Mount::new_with_env("stalelist", &[("RINGFS_ENGINE_COMPACTION_GRACE", "0s")]);
    let volume = w.volume.clone();
    let p = w.join("log");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .unwrap();
    let mut want = Vec::new();
    let mut rng = Rng::new(67);
    let mut append = |f: &mut File, want: &mut Vec<u8>, i: usize| {
        let line = rng.bytes(100 + i % 50);
        f.write_all(&line).unwrap();
        f.sync_data().unwrap();
        want.extend_from_slice(&line);
    };
    for i in 0..250 {
        append(&mut f, &mut want, i);
    }
    let known = want.clone();

    let cache = Scratch::new("stalelist-cache");
    let cache_dir = cache.path().to_string_lossy().into_owned();
    let r = Mount::attach_with_env(
        &volume,
        &[
            ("RINGFS_CACHE_DIR", &cache_dir),
            ("RINGFS_CACHE_READ_WAIT_TIMEOUT", "1s"),
        ],
    );
    let rf = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(r.join("log"))
        .unwrap();
    // The first 4 KiB only: the reader now holds the list of 250 fragments and the
    // blocks of the first ~30.
    let mut buf = vec![0u8; 4096];
    assert_eq!(rf.read_at(&mut buf, 0).unwrap(), 4096);
    assert!(buf[..] == known[..4096]);

    // More appends: the chunk passes 256 references and is compacted; the fragments'
    // objects are deleted at the next sweep.
    for i in 250..350 {
        append(&mut f, &mut want, i);
    }
    let t0 = Instant::now();
    while chunk_ref_counts(&volume)[0] > 256 || !value_lens(&volume, 'T').is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no compaction and deletion within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut buf = vec![0u8; 16384];
    let n = rf
        .read_at(&mut buf, 4096)
        .expect("the reader reads the chunk list again, not EIO");
    assert_eq!(n, 16384);
    assert!(
        buf[..] == known[4096..4096 + 16384],
        "the bytes through the merged slice are the same"
    );
    assert!(
        r.log_tail(200)
            .contains("read again with chunk lists changed"),
        "the reader's cached list was the stale one: {}",
        r.log_tail(20)
    );
}

/// How many block objects the volume's container holds in Swift.
fn swift_block_count(volume: &str) -> usize {
    let cfg = ringfs_engine::config::Config::load(&test_conf()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let swift = ringfs_engine::setup::connect_swift(&cfg).await.unwrap();
        swift
            .list_all(&cfg.swift.container_for(volume), Some("chunks/"), None)
            .await
            .unwrap()
            .len()
    })
}

/// The value lengths of the volume's etcd keys of one table (`tag`), read with etcdctl.
fn value_lens(volume: &str, tag: char) -> Vec<usize> {
    let conf = fs::read_to_string(test_conf()).unwrap();
    let mut in_etcd = false;
    let (mut endpoints, mut prefix) = (String::new(), String::from("ringfs"));
    for line in conf.lines().map(str::trim) {
        if line.starts_with('[') {
            in_etcd = line == "[etcd]";
        } else if in_etcd {
            if let Some(v) = line.strip_prefix("endpoints") {
                endpoints = v
                    .trim_start_matches([' ', '=', '['])
                    .trim_end_matches(']')
                    .replace(['"', ' '], "");
            } else if let Some(v) = line.strip_prefix("prefix") {
                prefix = v
                    .trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_string();
            }
        }
    }
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args([
            "get",
            "--prefix",
            &format!("{prefix}/{volume}/{tag}"),
            "-w",
            "json",
        ])
        .output()
        .expect("run etcdctl");
    assert!(out.status.success(), "etcdctl: {}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kvs = j["kvs"].as_array().cloned().unwrap_or_default();
    kvs.iter()
        .map(|kv| {
            let b64 = kv["value"].as_str().unwrap_or("");
            b64.len() / 4 * 3 - b64.bytes().rev().take_while(|&c| c == b'=').count()
        })
        .collect()
}

/// Every fsync'd small append is a slice of its own. Past 256 references in a chunk the
/// chunk is compacted in the background (the fragments merged into one new slice) while
/// the appends go on; nothing is lost, and a fresh client reads the same bytes. With no
/// grace (`engine.compaction_grace = 0s`) the replaced fragments' objects are deleted
/// and their trash records go: the fresh client's read proves only garbage went.
#[test]
fn fragmented_chunks_are_compacted_while_appends_go_on() {
    let m = Mount::new_with_env(
        "compact",
        &[
            ("RINGFS_CACHE_WRITEBACK", "true"),
            ("RINGFS_ENGINE_COMPACTION_GRACE", "0s"),
        ],
    );
    let volume = m.volume.clone();
    let p = m.join("log");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
        .unwrap();
    let mut want = Vec::new();
    let mut rng = Rng::new(61);
    for i in 0..700 {
        let line = rng.bytes(100 + i % 50);
        f.write_all(&line).unwrap();
        f.sync_data().unwrap();
        want.extend_from_slice(&line);
    }
    drop(f);
    let t0 = Instant::now();
    loop {
        let counts = chunk_ref_counts(&volume);
        assert_eq!(counts.len(), 1, "the log is one chunk");
        if counts[0] <= 256 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the chunk still holds {} references",
            counts[0]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fs::read(&p).unwrap() == want,
        "the writer reads its log back"
    );
    let t0 = Instant::now();
    while !value_lens(&volume, 'T').is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{} trash records left after 60 s",
            value_lens(&volume, 'T').len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(m);
    // 700 fragments were uploaded; what is left is the chunk's at most 256 live slices.
    let objects = swift_block_count(&volume);
    assert!(
        objects <= 300,
        "{objects} block objects in Swift: the replaced fragments were not deleted"
    );
    let other = Mount::attach(&volume);
    assert!(
        fs::read(other.join("log")).unwrap() == want,
        "a fresh client reads the compacted log"
    );
}
