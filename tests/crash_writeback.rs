//! Write-back crash recovery on a real mount: a writer fsyncs every few MiB while the mount
//! process is killed with SIGKILL; after a remount every fsync'd byte must read back, and
//! the staged blocks must drain to Swift. `CRASH_CYCLES` sets the cycle count
//! (default 20).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringfs")
}

fn conf() -> PathBuf {
    if let Ok(p) = std::env::var("RINGFS_TEST_CONF") {
        return PathBuf::from(p);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(repo.join("scripts/services.sh"))
        .arg("up")
        .output()
        .expect("services.sh");
    assert!(
        out.status.success(),
        "services.sh up: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    )
}

fn is_mounted(mp: &Path) -> bool {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mp.display().to_string();
    text.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

struct Env {
    conf: PathBuf,
    cache: PathBuf,
    volume: String,
}

impl Env {
    fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        c.env("RINGFS_CACHE_WRITEBACK", "true")
            .env("RINGFS_CACHE_DIR", &self.cache)
            .env("RINGFS_LOG", "warn");
        c
    }

    fn mount(&self, mp: &Path) -> Child {
        let child = self
            .cmd()
            .args(["mount", "-c"])
            .arg(&self.conf)
            .arg(&self.volume)
            .arg(mp)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mount");
        let t = Instant::now();
        while !is_mounted(mp) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "mount did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn staged(&self) -> usize {
        let mut n = 0;
        if let Ok(rd) = std::fs::read_dir(&self.cache) {
            for vol in rd.flatten() {
                // One directory per mount under the volume's staging root.
                let (blocks, _) =
                    ringfs_engine::cache::staging::backlog_on_disk(&vol.path().join("staging"));
                n += blocks;
            }
        }
        n
    }
}

/// A deterministic byte stream per (cycle, offset).
fn fill(seed: u64, buf: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

#[test]
fn kill_9_during_fsync_loop_loses_no_fsynced_byte() {
    let cycles: usize = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tmp = std::env::temp_dir().join(format!("ringfs-crash-{}", uuid::Uuid::new_v4().simple()));
    let mp = tmp.join("mnt");
    std::fs::create_dir_all(&mp).unwrap();
    let env = Env {
        conf: conf(),
        cache: tmp.join("cache"),
        volume: format!(
            "t-crash-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ),
    };
    let out = env
        .cmd()
        .args(["format", "-c"])
        .arg(&env.conf)
        .arg(&env.volume)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "format: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // (file name, bytes durable per fsync, seed)
    let mut durable: Vec<(String, u64, u64)> = Vec::new();
    for cycle in 0..cycles {
        let mut child = env.mount(&mp);
        // Everything fsync'd before earlier crashes is intact.
        for (name, len, seed) in &durable {
            let mut f = std::fs::File::open(mp.join(name))
                .unwrap_or_else(|e| panic!("cycle {cycle}: open {name}: {e}"));
            let size = f.metadata().unwrap().len();
            assert!(
                size >= *len,
                "cycle {cycle}: {name} has {size} bytes, {len} were fsync'd"
            );
            let mut got = vec![0u8; *len as usize];
            f.read_exact(&mut got).unwrap();
            let mut want = vec![0u8; *len as usize];
            fill(*seed, &mut want);
            assert!(got == want, "cycle {cycle}: fsync'd bytes of {name} differ");
        }
        // Write, fsyncing every 3 MiB, and kill the mount mid-loop.
        let name = format!("f{cycle}");
        let seed = cycle as u64 + 1;
        let total = 24 << 20;
        let mut data = vec![0u8; total];
        fill(seed, &mut data);
        let pid = child.id();
        let kill_after = Duration::from_millis(200 + (cycle as u64 * 137) % 900);
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            // SAFETY: signalling a child process we started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        });
        let mut synced = 0u64;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(mp.join(&name))
        {
            let mut off = 0usize;
            while off < total {
                let n = (1 << 20).min(total - off);
                if f.write_all(&data[off..off + n]).is_err() {
                    break;
                }
                off += n;
                if off.is_multiple_of(3 << 20) || off == total {
                    if f.sync_all().is_err() {
                        break;
                    }
                    synced = off as u64;
                }
            }
        }
        killer.join().unwrap();
        let _ = child.wait();
        let _ = Command::new("umount").arg("-l").arg(&mp).status();
        if synced > 0 {
            durable.push((name, synced, seed));
        }
    }
    // A final mount uploads whatever is staged; a clean unmount drains it.
    let mut child = env.mount(&mp);
    for (name, len, seed) in &durable {
        let mut f = std::fs::File::open(mp.join(name)).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut got = vec![0u8; *len as usize];
        f.read_exact(&mut got).unwrap();
        let mut want = vec![0u8; *len as usize];
        fill(*seed, &mut want);
        assert!(got == want, "final: fsync'd bytes of {name} differ");
    }
    let st = Command::new(bin()).arg("umount").arg(&mp).status().unwrap();
    assert!(st.success(), "clean unmount");
    let _ = child.wait();
    assert_eq!(env.staged(), 0, "staging drained at unmount");
    eprintln!(
        "{} crash cycles, {} files with fsync'd data verified",
        cycles,
        durable.len()
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
