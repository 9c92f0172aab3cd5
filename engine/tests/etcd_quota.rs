//! etcd's space quota alarm, on a real etcd of our own (the shared test etcd must not be
//! filled): writes fail with ENOSPC and an error naming the alarm and its fix, reads keep
//! working, and writes resume once the alarm is cleared.

mod common;

use common::{config, fresh_meta_with};
use ringfs_engine::meta::attr::FileKind;
use ringfs_engine::meta::ops::Creds;
use ringfs_engine::meta::runner::RunnerOptions;
use ringfs_engine::meta::{MetaError, ROOT_INO};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ROOT: Creds = Creds { uid: 0, gid: 0 };

/// A single-member etcd with a 1 MiB backend quota, killed on drop.
struct SmallEtcd {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl SmallEtcd {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("ringfs-quota-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "quota", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("quota={peer_url}")])
            .args(["--quota-backend-bytes", "1048576"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd (Debian package etcd-server)");
        SmallEtcd {
            child,
            dir,
            endpoint,
        }
    }
}

impl Drop for SmallEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_alarm_gives_enospc_and_names_the_fix() {
    let etcd = SmallEtcd::start();
    let mut cfg = config();
    cfg.etcd.endpoints = vec![etcd.endpoint.clone()];
    let t = Instant::now();
    let kv = loop {
        match ringfs_engine::setup::connect_etcd(&cfg).await {
            Ok(kv) => break kv,
            Err(e) if t.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("private etcd did not start: {e}"),
        }
    };
    let m = fresh_meta_with("quota", kv, RunnerOptions::default()).await;
    let f = m
        .mknod(ROOT, ROOT_INO, b"f", FileKind::File, 0o644, 0)
        .await
        .unwrap();

    // 60 KiB xattrs: the 1 MiB quota is exceeded after a dozen or so (each revision is kept).
    let value = vec![b'x'; 60 << 10];
    let mut failure = None;
    for i in 0..200 {
        match m
            .setxattr(f.ino, format!("user.v{i}").as_bytes(), &value, 0)
            .await
        {
            Ok(()) => {}
            Err(e) => {
                failure = Some((i, e));
                break;
            }
        }
    }
    let (i, e) = failure.expect("a 1 MiB quota cannot hold 200 × 60 KiB");
    assert!(i >= 3, "failed too early, at write {i}: {e}");
    assert!(
        matches!(e, MetaError::EtcdQuota),
        "write {i}: expected EtcdQuota, got {e:?}"
    );
    assert_eq!(e.errno(), libc::ENOSPC);
    let text = e.to_string();
    assert!(
        text.contains("NOSPACE") && text.contains("alarm disarm"),
        "error should name the alarm and the fix: {text}"
    );

    // Other writes fail the same way; reads keep working.
    let e = m
        .mknod(ROOT, ROOT_INO, b"g", FileKind::File, 0o644, 0)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::ENOSPC, "{e:?}");
    assert_eq!(m.getattr(f.ino).await.unwrap().ino, f.ino);
    assert_eq!(m.lookup(ROOT_INO, b"f").await.unwrap().ino, f.ino);
}
