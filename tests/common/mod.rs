//! Harness for tests that drive the real `ringfs` binary against the local services
//! (scripts/services.sh): a fresh volume per test, mounted in the background on its own
//! directory, unmounted when the [`Mount`] is dropped (also when the test panics).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ringfs");

/// The services' config file: `RINGFS_TEST_CONF`, or the repository's default services
/// directory, started (idempotently) with the project's script.
pub fn test_conf() -> PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        if let Ok(p) = std::env::var("RINGFS_TEST_CONF") {
            return PathBuf::from(p);
        }
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(repo.join("scripts/services.sh"))
            .args(["up", "--dir"])
            .arg(repo.join(".services"))
            .output()
            .expect("run scripts/services.sh");
        assert!(
            out.status.success(),
            "services.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("services.sh printed the config path")
                .trim(),
        )
    })
    .clone()
}

/// `t-<tag>-<12 hex digits>`: a volume name no other test (or run) uses.
pub fn unique(tag: &str) -> String {
    format!(
        "t-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Runs `ringfs ARGS` to completion.
pub fn ringfs<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(BIN).args(args).output().expect("run ringfs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ringfs format` of a new volume on the test services.
pub fn format_volume(volume: &str) {
    let conf = test_conf();
    let o = ringfs([
        OsStr::new("format"),
        OsStr::new("-c"),
        conf.as_os_str(),
        OsStr::new(volume),
    ]);
    assert!(
        o.status.success(),
        "ringfs format {volume} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}

/// A new, empty directory for a mountpoint (under cargo's per-target scratch dir).
pub fn fresh_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mnt")
        .join(format!(
            "{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
    fs::create_dir_all(&dir).expect("create mountpoint dir");
    dir.canonicalize().expect("canonical mountpoint")
}

/// A scratch directory removed (with its contents) on drop, unless something is
/// mounted on it.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(fresh_dir(tag))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !is_mounted(&self.0) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// How many mounts sit on `dir` (per /proc/self/mountinfo).
pub fn mount_count(dir: &Path) -> usize {
    let want = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let want = want.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4).map(unescape_mountinfo).as_deref() == Some(&*want))
        .count()
}

pub fn is_mounted(dir: &Path) -> bool {
    mount_count(dir) > 0
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `pid` still runs. A zombie has finished: the detached mount process is
/// reparented, and whoever adopts it may reap it late.
pub fn process_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z'),
        Err(_) => false,
    }
}

/// Waits up to `limit` for `pid` to exit; true if it did.
pub fn wait_exit(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `(pid, log)` from `ringfs mount --background`'s success line:
/// `mounted volume 'V' at MP (pid N, log PATH)`.
pub fn parse_mounted_line(stdout: &str) -> Option<(i32, PathBuf)> {
    let line = stdout.lines().find(|l| l.starts_with("mounted volume"))?;
    let rest = &line[line.rfind("(pid ")? + 5..];
    let (pid, rest) = rest.split_once(", log ")?;
    Some((
        pid.trim().parse().ok()?,
        PathBuf::from(rest.trim_end_matches(')')),
    ))
}

/// A volume mounted with `ringfs mount --background` on a directory of its own.
/// Dropping it unmounts (`ringfs umount`, then `umount -l` if that fails).
pub struct Mount {
    pub volume: String,
    dir: PathBuf,
    /// The mount process, from the mount command's output.
    pid: Option<i32>,
    log: Option<PathBuf>,
    mounted: bool,
    /// `RINGFS_*` overrides for the mount process.
    env: Vec<(String, String)>,
}

impl Mount {
    /// Formats a fresh volume `t-<tag>-<uuid12>` and mounts it.
    pub fn new(tag: &str) -> Mount {
        Self::new_with_env(tag, &[])
    }

    /// Like [`Mount::new`], with config overrides (`RINGFS_SECTION_KEY`) for the mount.
    pub fn new_with_env(tag: &str, env: &[(&str, &str)]) -> Mount {
        let volume = unique(tag);
        format_volume(&volume);
        Self::attach_with_env(&volume, env)
    }

    /// Another mount (own directory, own process) of an existing volume.
    pub fn attach(volume: &str) -> Mount {
        Self::attach_with_env(volume, &[])
    }

    pub fn attach_with_env(volume: &str, env: &[(&str, &str)]) -> Mount {
        let mut m = Mount {
            volume: volume.to_string(),
            dir: fresh_dir(volume),
            pid: None,
            log: None,
            mounted: false,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        m.mount();
        m
    }

    /// The mountpoint.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A path inside the mount.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn pid(&self) -> Option<i32> {
        self.pid
    }

    /// Mounts (again) on the same directory; panics with the command's output on failure.
    pub fn mount(&mut self) {
        assert!(!self.mounted, "already mounted");
        let conf = test_conf();
        let mut cmd = Command::new(BIN);
        cmd.arg("mount")
            .arg("-c")
            .arg(&conf)
            .arg(&self.volume)
            .arg(&self.dir)
            .arg("--background");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let o = cmd.output().expect("run ringfs mount");
        assert!(
            o.status.success(),
            "ringfs mount {} {} failed: {}{}",
            self.volume,
            self.dir.display(),
            text(&o.stdout),
            text(&o.stderr)
        );
        let (pid, log) = parse_mounted_line(&text(&o.stdout))
            .unwrap_or_else(|| panic!("unexpected output of ringfs mount: {:?}", text(&o.stdout)));
        self.pid = Some(pid);
        self.log = Some(log);
        self.mounted = true;
        assert!(
            is_mounted(&self.dir),
            "{} not in mountinfo",
            self.dir.display()
        );
    }

    /// `ringfs umount`, which returns once the mount process has flushed and exited.
    pub fn unmount(&mut self) {
        assert!(self.mounted, "not mounted");
        let o = ringfs([OsStr::new("umount"), self.dir.as_os_str()]);
        assert!(
            o.status.success(),
            "ringfs umount {} failed: {}{}",
            self.dir.display(),
            text(&o.stdout),
            text(&o.stderr)
        );
        self.mounted = false;
        assert!(
            !is_mounted(&self.dir),
            "{} still mounted",
            self.dir.display()
        );
        if let Some(pid) = self.pid.take() {
            assert!(
                !process_alive(pid),
                "mount process {pid} still alive after ringfs umount returned"
            );
        }
    }

    /// Unmounts and mounts the same volume again on the same directory.
    pub fn remount(&mut self) {
        self.unmount();
        self.mount();
    }

    /// The mount process's log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let t = fs::read_to_string(log).unwrap_or_default();
        let all: Vec<&str> = t.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if std::thread::panicking() && self.log.is_some() {
            eprintln!(
                "--- last lines of the mount log of {} ({}):\n{}",
                self.dir.display(),
                self.log
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                self.log_tail(30)
            );
        }
        if self.mounted {
            let o = ringfs([OsStr::new("umount"), self.dir.as_os_str()]);
            if !o.status.success() {
                eprintln!(
                    "ringfs umount {} failed ({}); detaching with umount -l",
                    self.dir.display(),
                    text(&o.stderr).trim()
                );
                let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
            }
            if let Some(pid) = self.pid {
                if !wait_exit(pid, Duration::from_secs(30)) {
                    eprintln!("mount process {pid} of {} did not exit", self.dir.display());
                }
            }
        }
        if !is_mounted(&self.dir) {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// The errno of a failed call; panics if it succeeded.
#[track_caller]
pub fn errno_of<T: std::fmt::Debug>(r: io::Result<T>) -> i32 {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e
            .raw_os_error()
            .unwrap_or_else(|| panic!("not an OS error: {e}")),
    }
}
