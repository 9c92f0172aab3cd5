//! The metadata layer against the real etcd: every operation's success and errno paths,
//! concurrency with invariant checks, a model-based property test, lost replies, and
//! group commit.

mod common;

use common::*;
use ringfs_engine::meta::faulty::{FaultyKv, TxnFault};
use ringfs_engine::meta::kv::KvStore;
use ringfs_engine::meta::ops::{
    Creds, IsOpen, Unlinked, RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_CREATE, XATTR_REPLACE,
};
use ringfs_engine::meta::runner::RunnerOptions;
use ringfs_engine::meta::{Attr, FileKind, Ino, Meta, MetaError, SetAttr, TimeSet, ROOT_INO};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

const ROOT: Creds = Creds { uid: 0, gid: 0 };

fn closed() -> IsOpen {
    Arc::new(|_| false)
}

fn errno<T: std::fmt::Debug>(r: Result<T, MetaError>) -> i32 {
    r.expect_err("expected an error").errno()
}

async fn mkdir(m: &Meta, parent: Ino, name: &str) -> Attr {
    m.mknod(ROOT, parent, name.as_bytes(), FileKind::Dir, 0o755, 0)
        .await
        .unwrap()
}

async fn mkfile(m: &Meta, parent: Ino, name: &str) -> Attr {
    m.mknod(ROOT, parent, name.as_bytes(), FileKind::File, 0o644, 0)
        .await
        .unwrap()
}

/// Walks the whole tree and checks: every entry resolves to a live inode of its kind,
/// link counts match entries, directory nlink = 2 + subdirectories, parent pointers are
/// right, no loops, and no inode is left unreachable.
async fn check_invariants(m: &Meta) {
    let mut seen: HashMap<Ino, u32> = HashMap::new();
    let mut parents: HashMap<Ino, std::collections::BTreeMap<Ino, u32>> = HashMap::new();
    let mut stack = vec![ROOT_INO];
    let mut dirs_visited = 0;
    while let Some(dir) = stack.pop() {
        dirs_visited += 1;
        assert!(dirs_visited < 100_000, "directory loop");
        let da = m.getattr(dir).await.unwrap();
        let mut after: Option<Vec<u8>> = None;
        let mut subdirs = 0;
        loop {
            let page = m.readdir(dir, after.as_deref(), 500).await.unwrap();
            if page.is_empty() {
                break;
            }
            for (name, d) in &page {
                let a = m.getattr(d.ino).await.unwrap_or_else(|e| {
                    panic!(
                        "entry {:?} -> {}: {e}",
                        String::from_utf8_lossy(name),
                        d.ino
                    )
                });
                assert_eq!(a.kind, d.kind, "entry kind matches inode");
                if a.kind == FileKind::Dir {
                    subdirs += 1;
                    assert_eq!(a.parent, dir, "directory parent pointer");
                    assert!(!seen.contains_key(&d.ino), "directory with two entries");
                    stack.push(d.ino);
                }
                *seen.entry(d.ino).or_default() += 1;
                *parents.entry(d.ino).or_default().entry(dir).or_default() += 1;
            }
            after = page.last().map(|(n, _)| n.clone());
        }
        assert_eq!(da.nlink, 2 + subdirs, "nlink of directory {dir}");
    }
    for (ino, links) in &seen {
        let a = m.getattr(*ino).await.unwrap();
        if a.kind != FileKind::Dir {
            assert_eq!(a.nlink, *links, "nlink of inode {ino}");
            assert_eq!(
                m.parents(*ino).await.unwrap(),
                parents[ino],
                "hard-link parent records of inode {ino}"
            );
        }
    }
    // No orphans: every attribute record is reachable (or is the root).
    let (s, e) = {
        let mut s = m.keys().prefix().to_vec();
        s.push(b'A');
        let e = ringfs_engine::meta::keys::prefix_end(&s);
        (s, e)
    };
    let (kvs, _) = m.runner().kv().range(&s, &e, 0).await.unwrap();
    for kv in kvs {
        let ino = m.keys().trailing_ino(&kv.key).unwrap();
        assert!(
            ino == ROOT_INO || seen.contains_key(&ino),
            "orphan inode {ino}"
        );
    }
}

#[tokio::test]
async fn namespace_operations_and_their_errors() {
    let m = fresh_meta("ns").await;
    let d = mkdir(&m, ROOT_INO, "d").await;
    assert_eq!(d.nlink, 2);
    assert_eq!(m.getattr(ROOT_INO).await.unwrap().nlink, 3);
    let f = mkfile(&m, d.ino, "f").await;
    assert_eq!(m.lookup(d.ino, b"f").await.unwrap(), f);
    assert_eq!(m.lookup(d.ino, b"..").await.unwrap().ino, ROOT_INO);
    assert_eq!(errno(m.lookup(d.ino, b"nope").await), libc::ENOENT);
    assert_eq!(errno(m.lookup(f.ino, b"x").await), libc::ENOTDIR);
    assert_eq!(
        errno(m.mknod(ROOT, d.ino, b"f", FileKind::File, 0o644, 0).await),
        libc::EEXIST
    );
    assert_eq!(
        errno(m.mknod(ROOT, f.ino, b"x", FileKind::File, 0o644, 0).await),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(
            m.mknod(ROOT, d.ino, &[b'a'; 256], FileKind::File, 0o644, 0)
                .await
        ),
        libc::ENAMETOOLONG
    );
    assert_eq!(
        errno(m.mknod(ROOT, d.ino, b"a/b", FileKind::File, 0o644, 0).await),
        libc::EINVAL
    );
    assert_eq!(
        errno(m.mknod(ROOT, d.ino, b"..", FileKind::Dir, 0o755, 0).await),
        libc::EINVAL
    );
    assert!(m
        .mknod(ROOT, d.ino, &[b'a'; 255], FileKind::File, 0o644, 0)
        .await
        .is_ok());
    // Special files are metadata only.
    let fifo = m
        .mknod(ROOT, d.ino, b"fifo", FileKind::Fifo, 0o600, 0)
        .await
        .unwrap();
    let dev = m
        .mknod(ROOT, d.ino, b"dev", FileKind::CharDev, 0o600, 0x0103)
        .await
        .unwrap();
    assert_eq!(m.getattr(dev.ino).await.unwrap().rdev, 0x0103);
    assert_eq!(m.getattr(fifo.ino).await.unwrap().kind, FileKind::Fifo);
    // rmdir / unlink errnos.
    assert_eq!(errno(m.rmdir(ROOT_INO, b"d").await), libc::ENOTEMPTY);
    assert_eq!(errno(m.rmdir(d.ino, b"f").await), libc::ENOTDIR);
    assert_eq!(
        errno(m.unlink(ROOT_INO, b"d", closed()).await),
        libc::EISDIR
    );
    assert_eq!(
        errno(m.unlink(ROOT_INO, b"gone", closed()).await),
        libc::ENOENT
    );
    // Symlinks.
    let l = m.symlink(ROOT, d.ino, b"l", b"../target").await.unwrap();
    assert_eq!(m.readlink(l.ino).await.unwrap(), b"../target");
    assert_eq!(errno(m.readlink(f.ino).await), libc::EINVAL);
    // Hard links.
    let f2 = m.link(f.ino, ROOT_INO, b"f-link").await.unwrap();
    assert_eq!(f2.nlink, 2);
    assert_eq!(errno(m.link(d.ino, ROOT_INO, b"dlink").await), libc::EPERM);
    assert_eq!(
        errno(m.link(f.ino, ROOT_INO, b"f-link").await),
        libc::EEXIST
    );
    assert!(
        matches!(m.unlink(d.ino, b"f", closed()).await.unwrap(), Unlinked::Linked(a) if a.nlink == 1)
    );
    assert!(matches!(
        m.unlink(ROOT_INO, b"f-link", closed()).await.unwrap(),
        Unlinked::Deleted(_)
    ));
    assert_eq!(errno(m.getattr(f.ino).await), libc::ENOENT);
    assert_eq!(m.pending_deletions(10).await.unwrap(), vec![f.ino]);
    m.finish_deletion(f.ino).await.unwrap();
    check_invariants(&m).await;
}

#[tokio::test]
async fn rename_semantics() {
    let m = fresh_meta("rename").await;
    let a = mkdir(&m, ROOT_INO, "a").await;
    let b = mkdir(&m, a.ino, "b").await;
    let c = mkdir(&m, b.ino, "c").await;
    let x = mkfile(&m, ROOT_INO, "x").await;
    let y = mkfile(&m, ROOT_INO, "y").await;
    // Into its own descendant: EINVAL, also for the direct child and itself.
    assert_eq!(
        errno(m.rename(ROOT_INO, b"a", c.ino, b"a", 0, closed()).await),
        libc::EINVAL
    );
    assert_eq!(
        errno(m.rename(ROOT_INO, b"a", a.ino, b"self", 0, closed()).await),
        libc::EINVAL
    );
    // Replace a file.
    assert!(
        matches!(m.rename(ROOT_INO, b"x", ROOT_INO, b"y", 0, closed()).await.unwrap(), Some(Unlinked::Deleted(d)) if d.ino == y.ino)
    );
    assert_eq!(m.lookup(ROOT_INO, b"y").await.unwrap().ino, x.ino);
    // NOREPLACE / EXCHANGE.
    let z = mkfile(&m, ROOT_INO, "z").await;
    assert_eq!(
        errno(
            m.rename(ROOT_INO, b"y", ROOT_INO, b"z", RENAME_NOREPLACE, closed())
                .await
        ),
        libc::EEXIST
    );
    m.rename(ROOT_INO, b"y", ROOT_INO, b"z", RENAME_EXCHANGE, closed())
        .await
        .unwrap();
    assert_eq!(m.lookup(ROOT_INO, b"z").await.unwrap().ino, x.ino);
    assert_eq!(m.lookup(ROOT_INO, b"y").await.unwrap().ino, z.ino);
    assert_eq!(
        errno(
            m.rename(ROOT_INO, b"y", ROOT_INO, b"none", RENAME_EXCHANGE, closed())
                .await
        ),
        libc::ENOENT
    );
    // Exchange a file with a directory across parents keeps nlinks right.
    m.rename(ROOT_INO, b"y", b.ino, b"c", RENAME_EXCHANGE, closed())
        .await
        .unwrap();
    assert_eq!(m.lookup(ROOT_INO, b"y").await.unwrap().ino, c.ino);
    assert_eq!(m.getattr(c.ino).await.unwrap().parent, ROOT_INO);
    check_invariants(&m).await;
    // Directory over a file and vice versa; over a non-empty directory.
    assert_eq!(
        errno(m.rename(ROOT_INO, b"a", ROOT_INO, b"z", 0, closed()).await),
        libc::ENOTDIR
    );
    assert_eq!(
        errno(m.rename(ROOT_INO, b"z", ROOT_INO, b"a", 0, closed()).await),
        libc::EISDIR
    );
    let e = mkdir(&m, ROOT_INO, "e").await;
    mkfile(&m, e.ino, "inside").await;
    assert_eq!(
        errno(m.rename(ROOT_INO, b"y", ROOT_INO, b"e", 0, closed()).await),
        libc::ENOTEMPTY
    );
    // Directory over an empty directory, across parents.
    let empty = mkdir(&m, a.ino, "empty").await;
    m.rename(ROOT_INO, b"y", a.ino, b"empty", 0, closed())
        .await
        .unwrap();
    assert_eq!(errno(m.getattr(empty.ino).await), libc::ENOENT);
    // Renaming a link onto another link of the same inode is a no-op.
    m.link(x.ino, ROOT_INO, b"x2").await.unwrap();
    assert_eq!(
        m.rename(ROOT_INO, b"z", ROOT_INO, b"x2", 0, closed())
            .await
            .unwrap(),
        None
    );
    assert!(m.lookup(ROOT_INO, b"z").await.is_ok());
    // ctime of the moved inode changes.
    let before = m.getattr(x.ino).await.unwrap().ctime;
    m.rename(ROOT_INO, b"z", a.ino, b"moved", 0, closed())
        .await
        .unwrap();
    assert!(m.getattr(x.ino).await.unwrap().ctime > before);
    check_invariants(&m).await;
}

#[tokio::test]
async fn setattr_xattr_and_open_unlinked() {
    let m = fresh_meta("attrs").await;
    let f = mkfile(&m, ROOT_INO, "f").await;
    let a = m
        .setattr(
            f.ino,
            SetAttr {
                mode: Some(0o4755),
                uid: Some(7),
                gid: Some(8),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.perm, a.uid, a.gid), (0o4755, 7, 8));
    assert!(a.ctime >= f.ctime);
    let t = ringfs_engine::meta::Timestamp {
        secs: 1_000_000,
        nsecs: 5,
    };
    let a = m
        .setattr(
            f.ino,
            SetAttr {
                atime: Some(TimeSet::At(t)),
                mtime: Some(TimeSet::Now),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(a.atime, t);
    assert_eq!(
        m.setattr(
            f.ino,
            SetAttr {
                size: Some(10),
                ..Default::default()
            }
        )
        .await
        .unwrap()
        .size,
        10
    );
    let d = mkdir(&m, ROOT_INO, "d").await;
    assert_eq!(
        errno(
            m.setattr(
                d.ino,
                SetAttr {
                    size: Some(0),
                    ..Default::default()
                }
            )
            .await
        ),
        libc::EISDIR
    );
    // xattrs
    assert_eq!(errno(m.getxattr(f.ino, b"user.a").await), libc::ENODATA);
    m.setxattr(f.ino, b"user.a", b"1", 0).await.unwrap();
    assert_eq!(
        errno(m.setxattr(f.ino, b"user.a", b"2", XATTR_CREATE).await),
        libc::EEXIST
    );
    assert_eq!(
        errno(m.setxattr(f.ino, b"user.b", b"2", XATTR_REPLACE).await),
        libc::ENODATA
    );
    m.setxattr(f.ino, b"user.a", b"2", XATTR_REPLACE)
        .await
        .unwrap();
    m.setxattr(f.ino, b"user.b", &[0u8; 65536], 0)
        .await
        .unwrap();
    assert_eq!(
        errno(m.setxattr(f.ino, b"user.c", &[0u8; 65537], 0).await),
        libc::E2BIG
    );
    assert_eq!(m.getxattr(f.ino, b"user.a").await.unwrap(), b"2");
    assert_eq!(m.listxattr(f.ino).await.unwrap(), b"user.a\0user.b\0");
    m.removexattr(f.ino, b"user.a").await.unwrap();
    assert_eq!(errno(m.removexattr(f.ino, b"user.a").await), libc::ENODATA);
    // Open but unlinked: kept until released.
    let open_ino = f.ino;
    let is_open: IsOpen = Arc::new(move |i| i == open_ino);
    assert!(matches!(
        m.unlink(ROOT_INO, b"f", is_open).await.unwrap(),
        Unlinked::Sustained(_)
    ));
    assert_eq!(m.getattr(f.ino).await.unwrap().nlink, 0);
    assert!(m.pending_deletions(10).await.unwrap().is_empty());
    m.release_sustained(f.ino).await.unwrap();
    assert_eq!(errno(m.getattr(f.ino).await), libc::ENOENT);
    assert_eq!(m.pending_deletions(10).await.unwrap(), vec![f.ino]);
    // Xattrs went with the inode.
    assert_eq!(errno(m.listxattr(f.ino).await), libc::ENOENT);
}

#[tokio::test]
async fn readdir_pages_are_stable_under_inserts() {
    let m = fresh_meta("readdir").await;
    let d = mkdir(&m, ROOT_INO, "d").await;
    for i in 0..300 {
        mkfile(&m, d.ino, &format!("f{i:04}")).await;
    }
    let mut names = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    let mut inserted = 0;
    loop {
        let page = m.readdir(d.ino, after.as_deref(), 64).await.unwrap();
        if page.is_empty() {
            break;
        }
        // Concurrent inserts before and after the cursor.
        mkfile(&m, d.ino, &format!("a-new{inserted}")).await;
        mkfile(&m, d.ino, &format!("z-new{inserted}")).await;
        inserted += 1;
        after = page.last().map(|(n, _)| n.clone());
        names.extend(page.into_iter().map(|(n, _)| n));
    }
    let originals: Vec<_> = names.iter().filter(|n| n.starts_with(b"f")).collect();
    assert_eq!(originals.len(), 300, "every pre-existing entry listed once");
    let mut sorted = names.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "no duplicates");
}

#[tokio::test]
async fn concurrent_creates_and_renames_keep_invariants() {
    let m = Arc::new(fresh_meta("conc").await);
    let d = mkdir(&m, ROOT_INO, "d").await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..1000 {
                let name = format!("t{t}-{i}");
                m.mknod(ROOT, d.ino, name.as_bytes(), FileKind::File, 0o644, 0)
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    let to = format!("r{t}-{i}");
                    m.rename(
                        d.ino,
                        name.as_bytes(),
                        d.ino,
                        to.as_bytes(),
                        0,
                        Arc::new(|_| false),
                    )
                    .await
                    .unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut count = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = m.readdir(d.ino, after.as_deref(), 1000).await.unwrap();
        if page.is_empty() {
            break;
        }
        count += page.len();
        after = page.last().map(|(n, _)| n.clone());
    }
    assert_eq!(count, 8000);
    let s = &m.runner().stats;
    let (txns, ops) = (
        s.txns.load(std::sync::atomic::Ordering::Relaxed),
        s.ops_committed.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!("group commit: {ops} operations in {txns} transactions");
    assert!(ops >= 12000);
    check_invariants(&m).await;
}

/// A commit assumes a chunk past the end of the file has no key yet and does not read
/// it. When another client wrote that chunk meanwhile, the transaction's guards (on the
/// file's attributes and on the chunk key) catch the wrong guess and the retry keeps
/// both writes.
#[tokio::test]
async fn a_commit_past_the_end_never_loses_another_clients_write() {
    let kv = kv().await;
    let name = unique("pastend");
    let keys = ringfs_engine::meta::Keys::new("ringfs-test", &name);
    Meta::format(kv.clone(), &keys, &record(&name), false)
        .await
        .unwrap();
    let a = Meta::open(kv.clone(), keys.clone(), RunnerOptions::default(), "a")
        .await
        .unwrap();
    let b = Meta::open(kv, keys, RunnerOptions::default(), "b")
        .await
        .unwrap();
    use ringfs_engine::layout::SliceRef;
    // `a` created the file: it knows it as empty, so chunk 0 is "past the end".
    let f = mkfile(&a, ROOT_INO, "f").await;
    b.commit_slices(f.ino, vec![(0, SliceRef::new(0, 1001, 100))], 100)
        .await
        .unwrap();
    a.commit_slices(f.ino, vec![(0, SliceRef::new(100, 1002, 50))], 150)
        .await
        .unwrap();
    let ids: Vec<u64> = a
        .read_chunk(f.ino, 0)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [1001, 1002], "both clients' slices are in the chunk");
    assert_eq!(a.getattr(f.ino).await.unwrap().size, 150);
    // A new file's first commit, the case the guess is for, needs no read and is right.
    let g = mkfile(&a, ROOT_INO, "g").await;
    a.commit_slices(g.ino, vec![(0, SliceRef::new(0, 1003, 10))], 10)
        .await
        .unwrap();
    assert_eq!(a.read_chunk(g.ino, 0).await.unwrap().len(), 1);
}

/// Every slice id can be traced to the session that allocated it, also after that
/// session ended without cleaning up (a crashed client); a clean end removes the records.
#[tokio::test]
async fn slice_ids_name_their_writing_session() {
    let kv = kv().await;
    let name = unique("writer");
    let keys = ringfs_engine::meta::Keys::new("ringfs-test", &name);
    Meta::format(kv.clone(), &keys, &record(&name), false)
        .await
        .unwrap();
    let open = |info: &'static str| {
        let (kv, keys) = (kv.clone(), keys.clone());
        async move {
            Meta::open(kv, keys, RunnerOptions::default(), info)
                .await
                .unwrap()
        }
    };
    let (a, b) = (
        open("{\"host\":\"a\"}").await,
        open("{\"host\":\"b\"}").await,
    );
    let a1 = a.new_slice_id().await.unwrap();
    let b1 = b.new_slice_id().await.unwrap();
    let a2 = a.new_slice_id().await.unwrap();
    async fn writer(m: &Meta, id: u64) -> Option<ringfs_engine::meta::ops::SliceWriter> {
        m.slice_writer(id).await.unwrap()
    }
    for (id, owner, info) in [
        (a1, &a, "{\"host\":\"a\"}"),
        (a2, &a, "{\"host\":\"a\"}"),
        (b1, &b, "{\"host\":\"b\"}"),
    ] {
        let w = writer(&b, id).await.expect("a record");
        assert_eq!(
            (w.session, w.info.as_str(), w.alive),
            (owner.session_id(), info, true),
            "slice {id}"
        );
    }
    assert_eq!(
        writer(&a, b1.max(a2) + 1_000_000).await,
        None,
        "an id nobody allocated"
    );

    // `a` crashes: its lease ends, its records stay and say it is gone.
    a.close_session().await.unwrap();
    let w = writer(&b, a1).await.expect("kept after a crash");
    assert_eq!((w.session, w.alive), (a.session_id(), false));

    // A clean end removes a session's records, and only its own.
    a.forget_slice_writers().await.unwrap();
    assert_eq!(writer(&b, a1).await, None);
    assert_eq!(
        writer(&b, b1).await.map(|w| w.session),
        Some(b.session_id())
    );
}

/// A compaction replaces the list it read and keeps what was appended since; it gives up
/// (`Busy`) when the chunk was truncated away meanwhile, never resurrecting it.
#[tokio::test]
async fn replace_chunk_keeps_appends_made_during_compaction() {
    use ringfs_engine::layout::SliceRef;
    let m = fresh_meta("compact").await;
    let f = mkfile(&m, ROOT_INO, "f").await;
    for (i, id) in (0..4u32).zip(2001u64..) {
        m.commit_slices(
            f.ino,
            vec![(0, SliceRef::new(i * 10, id, 10))],
            (i as u64 + 1) * 10,
        )
        .await
        .unwrap();
    }
    let read = m.read_chunk(f.ino, 0).await.unwrap();
    // A write lands between the read and the replacement.
    m.commit_slices(f.ino, vec![(0, SliceRef::new(40, 2005, 10))], 50)
        .await
        .unwrap();
    let merged = vec![SliceRef::new(0, 3000, 40)];
    let written = m
        .replace_chunk(f.ino, 0, read.clone(), merged, Duration::from_secs(3600))
        .await
        .unwrap();
    let ids: Vec<u64> = written.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [3000, 2005],
        "the merged slice, then the append made meanwhile"
    );
    assert_eq!(m.read_chunk(f.ino, 0).await.unwrap(), written);

    // Truncated to zero meanwhile: the chunk key is gone and stays gone.
    let now = m.read_chunk(f.ino, 0).await.unwrap();
    let set = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    m.setattr(f.ino, set).await.unwrap();
    let r = m
        .replace_chunk(
            f.ino,
            0,
            now,
            vec![SliceRef::new(0, 3001, 50)],
            Duration::ZERO,
        )
        .await;
    assert!(matches!(r, Err(MetaError::Busy(_))), "{r:?}");
    assert!(m.read_chunk(f.ino, 0).await.unwrap().is_empty());
}

/// The slices a compaction replaced wait in the trash, written in the same transaction,
/// until their grace has passed; the ones still referenced are never in it; a Busy
/// compaction trashes nothing; forgetting a record removes only it.
#[tokio::test]
async fn replaced_slices_wait_out_their_grace_in_the_trash() {
    use ringfs_engine::layout::SliceRef;
    let m = fresh_meta("trash").await;
    let f = mkfile(&m, ROOT_INO, "f").await;
    for (i, id) in (0..3u32).zip(4001u64..) {
        m.commit_slices(
            f.ino,
            vec![(0, SliceRef::new(i * 10, id, 10))],
            (i as u64 + 1) * 10,
        )
        .await
        .unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(m.trash_due(now + 10_000, 10).await.unwrap().is_empty());
    let read = m.read_chunk(f.ino, 0).await.unwrap();
    // 4001 and 4002 merged into 5000; 4003 kept.
    let new = vec![SliceRef::new(0, 5000, 20), read[2]];
    m.replace_chunk(f.ino, 0, read, new, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(
        m.trash_due(now, 10).await.unwrap().is_empty(),
        "not due before the grace has passed"
    );
    let due = m.trash_due(now + 601 + 5, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].1, vec![(4001, 10), (4002, 10)]);

    // A compaction that finds the chunk changed trashes nothing.
    let stale = m.read_chunk(f.ino, 0).await.unwrap();
    m.setattr(
        f.ino,
        SetAttr {
            size: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let r = m
        .replace_chunk(
            f.ino,
            0,
            stale,
            vec![SliceRef::new(0, 5001, 30)],
            Duration::ZERO,
        )
        .await;
    assert!(matches!(r, Err(MetaError::Busy(_))), "{r:?}");
    assert_eq!(m.trash_due(now + 10_000, 10).await.unwrap().len(), 1);

    m.forget_trash(vec![due[0].0.clone()]).await.unwrap();
    assert!(m.trash_due(now + 10_000, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn rmdir_racing_create_never_orphans() {
    let m = Arc::new(fresh_meta("rmrace").await);
    for round in 0..30 {
        let name = format!("d{round}");
        let d = mkdir(&m, ROOT_INO, &name).await;
        let (m1, m2) = (m.clone(), m.clone());
        let n2 = name.clone();
        let rm = tokio::spawn(async move { m1.rmdir(ROOT_INO, n2.as_bytes()).await });
        let mk = tokio::spawn(async move {
            m2.mknod(ROOT, d.ino, b"child", FileKind::File, 0o644, 0)
                .await
        });
        let (rm, mk) = (rm.await.unwrap(), mk.await.unwrap());
        // Exactly one of them wins; never both.
        assert!(
            rm.is_ok() != mk.is_ok(),
            "round {round}: rmdir {rm:?} create {mk:?}"
        );
    }
    check_invariants(&m).await;
}

#[tokio::test]
async fn crossing_directory_renames_never_make_a_loop() {
    let m = Arc::new(fresh_meta("cross").await);
    for round in 0..20 {
        let a = mkdir(&m, ROOT_INO, &format!("a{round}")).await;
        let b = mkdir(&m, ROOT_INO, &format!("b{round}")).await;
        let (m1, m2) = (m.clone(), m.clone());
        let (an, bn) = (format!("a{round}"), format!("b{round}"));
        // a → b/a and b → a/b at the same time: at most one may succeed.
        let r1 = tokio::spawn(async move {
            m1.rename(ROOT_INO, an.as_bytes(), b.ino, b"a", 0, Arc::new(|_| false))
                .await
        });
        let r2 = tokio::spawn(async move {
            m2.rename(ROOT_INO, bn.as_bytes(), a.ino, b"b", 0, Arc::new(|_| false))
                .await
        });
        let (r1, r2) = (r1.await.unwrap(), r2.await.unwrap());
        assert!(
            !(r1.is_ok() && r2.is_ok()),
            "both crossing renames succeeded"
        );
        for r in [r1, r2] {
            if let Err(e) = r {
                assert_eq!(e.errno(), libc::EINVAL);
            }
        }
    }
    check_invariants(&m).await;
}

#[tokio::test]
async fn a_lost_reply_is_resolved_without_applying_twice() {
    let etcd =
        ringfs_engine::meta::etcd::EtcdKv::connect(&ringfs_engine::setup::etcd_options(&config()))
            .await
            .unwrap();
    let faulty = Arc::new(FaultyKv::new(etcd));
    let kv: Arc<dyn KvStore> = faulty.clone();
    let m = fresh_meta_with(
        "lost",
        kv,
        RunnerOptions {
            group_commit: false,
            ..Default::default()
        },
    )
    .await;
    // The create is applied but its reply is lost: it must report success, not EEXIST.
    faulty.inject_txn_faults(&[TxnFault::LoseReply]);
    let f = m
        .mknod(ROOT, ROOT_INO, b"once", FileKind::File, 0o644, 0)
        .await
        .unwrap();
    assert_eq!(m.lookup(ROOT_INO, b"once").await.unwrap().ino, f.ino);
    // A rename whose reply is lost happened exactly once.
    faulty.inject_txn_faults(&[TxnFault::LoseReply]);
    m.rename(ROOT_INO, b"once", ROOT_INO, b"twice", 0, closed())
        .await
        .unwrap();
    assert_eq!(errno(m.lookup(ROOT_INO, b"once").await), libc::ENOENT);
    assert_eq!(m.lookup(ROOT_INO, b"twice").await.unwrap().ino, f.ino);
    // A transaction that never left: retried, applied once.
    faulty.inject_txn_faults(&[TxnFault::Unavailable]);
    mkdir(&m, ROOT_INO, "dir").await;
    assert_eq!(m.getattr(ROOT_INO).await.unwrap().nlink, 3);
    assert!(
        m.runner()
            .stats
            .ambiguous_resolved
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
    check_invariants(&m).await;
}

#[tokio::test]
async fn etcd_down_gives_an_error_within_the_timeout() {
    let mut cfg = config();
    cfg.etcd.endpoints = vec!["http://127.0.0.1:1".into()];
    cfg.etcd.dial_timeout = std::time::Duration::from_millis(500).into();
    let t = std::time::Instant::now();
    let e = ringfs_engine::setup::connect_etcd(&cfg)
        .await
        .err()
        .expect("no etcd there");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
}

// ---- model-based property test ------------------------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Mkdir(usize, u8),
    Create(usize, u8),
    Unlink(usize, u8),
    Rmdir(usize, u8),
    Rename(usize, u8, usize, u8, u32),
    Link(usize, u8, usize, u8),
}

/// The reference: a map from (parent, name) to (inode, is_dir).
#[derive(Default, Clone)]
struct Model {
    entries: BTreeMap<(Ino, u8), (Ino, bool)>,
    dirs: Vec<Ino>,
}

impl Model {
    fn children(&self, d: Ino) -> usize {
        self.entries.keys().filter(|(p, _)| *p == d).count()
    }
    fn is_ancestor(&self, anc: Ino, mut d: Ino) -> bool {
        loop {
            if d == anc {
                return true;
            }
            if d == ROOT_INO {
                return false;
            }
            d = self
                .entries
                .iter()
                .find(|(_, (i, isdir))| *i == d && *isdir)
                .map(|((p, _), _)| *p)
                .unwrap_or(ROOT_INO);
        }
    }
    fn apply(&mut self, op: &Op, new_ino: Ino) -> Result<(), i32> {
        let dir = |i: usize| self.dirs[i % self.dirs.len()];
        match *op {
            Op::Mkdir(p, n) | Op::Create(p, n) => {
                let p = dir(p);
                if self.entries.contains_key(&(p, n)) {
                    return Err(libc::EEXIST);
                }
                let isdir = matches!(op, Op::Mkdir(..));
                self.entries.insert((p, n), (new_ino, isdir));
                if isdir {
                    self.dirs.push(new_ino);
                }
                Ok(())
            }
            Op::Unlink(p, n) => match self.entries.get(&(dir(p), n)) {
                None => Err(libc::ENOENT),
                Some((_, true)) => Err(libc::EISDIR),
                Some(_) => {
                    self.entries.remove(&(dir(p), n));
                    Ok(())
                }
            },
            Op::Rmdir(p, n) => match self.entries.get(&(dir(p), n)).copied() {
                None => Err(libc::ENOENT),
                Some((_, false)) => Err(libc::ENOTDIR),
                Some((i, true)) if self.children(i) > 0 => Err(libc::ENOTEMPTY),
                Some((i, true)) => {
                    self.entries.remove(&(dir(p), n));
                    self.dirs.retain(|d| *d != i);
                    Ok(())
                }
            },
            Op::Link(p, n, q, m) => match self.entries.get(&(dir(p), n)).copied() {
                None => Err(libc::ENOENT),
                Some((_, true)) => Err(libc::EPERM),
                Some(_) if self.entries.contains_key(&(dir(q), m)) => Err(libc::EEXIST),
                Some(e) => {
                    self.entries.insert((dir(q), m), e);
                    Ok(())
                }
            },
            Op::Rename(p, n, q, m, flags) => {
                let (sp, dp) = (dir(p), dir(q));
                let Some(src) = self.entries.get(&(sp, n)).copied() else {
                    return Err(libc::ENOENT);
                };
                let dst = self.entries.get(&(dp, m)).copied();
                if flags == RENAME_NOREPLACE && dst.is_some() {
                    return Err(libc::EEXIST);
                }
                if flags == RENAME_EXCHANGE && dst.is_none() {
                    return Err(libc::ENOENT);
                }
                if let Some(d) = dst {
                    if d.0 == src.0 {
                        return Ok(());
                    }
                }
                if sp != dp && src.1 && self.is_ancestor(src.0, dp) {
                    return Err(libc::EINVAL);
                }
                if flags == RENAME_EXCHANGE {
                    let d = dst.unwrap();
                    if sp != dp && d.1 && self.is_ancestor(d.0, sp) {
                        return Err(libc::EINVAL);
                    }
                    self.entries.insert((dp, m), src);
                    self.entries.insert((sp, n), d);
                    return Ok(());
                }
                if let Some(d) = dst {
                    match (src.1, d.1) {
                        (true, false) => return Err(libc::ENOTDIR),
                        (false, true) => return Err(libc::EISDIR),
                        (true, true) if self.children(d.0) > 0 => return Err(libc::ENOTEMPTY),
                        (true, true) => self.dirs.retain(|x| *x != d.0),
                        _ => {}
                    }
                }
                self.entries.remove(&(sp, n));
                self.entries.insert((dp, m), src);
                Ok(())
            }
        }
    }
}

fn arb_op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let d = 0usize..6;
    let n = 0u8..4;
    prop_oneof![
        (d.clone(), n.clone()).prop_map(|(p, n)| Op::Mkdir(p, n)),
        (d.clone(), n.clone()).prop_map(|(p, n)| Op::Create(p, n)),
        (d.clone(), n.clone()).prop_map(|(p, n)| Op::Unlink(p, n)),
        (d.clone(), n.clone()).prop_map(|(p, n)| Op::Rmdir(p, n)),
        (
            d.clone(),
            n.clone(),
            d.clone(),
            n.clone(),
            prop_oneof![Just(0u32), Just(RENAME_NOREPLACE), Just(RENAME_EXCHANGE)]
        )
            .prop_map(|(p, n, q, m, f)| Op::Rename(p, n, q, m, f)),
        (d.clone(), n.clone(), d, n).prop_map(|(p, n, q, m)| Op::Link(p, n, q, m)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 12, max_shrink_iters: 50, .. Default::default() })]
    #[test]
    fn etcd_layer_matches_the_reference_model(ops in proptest::collection::vec(arb_op(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let m = fresh_meta("model").await;
            let mut model = Model { dirs: vec![ROOT_INO], ..Default::default() };
            for op in &ops {
                let dirs = model.dirs.clone();
                let dir = |i: usize| dirs[i % dirs.len()];
                let name = |n: u8| vec![b'n', b'0' + n];
                let got: Result<Ino, i32> = match *op {
                    Op::Mkdir(p, n) => m.mknod(ROOT, dir(p), &name(n), FileKind::Dir, 0o755, 0).await.map(|a| a.ino),
                    Op::Create(p, n) => m.mknod(ROOT, dir(p), &name(n), FileKind::File, 0o644, 0).await.map(|a| a.ino),
                    Op::Unlink(p, n) => m.unlink(dir(p), &name(n), closed()).await.map(|_| 0),
                    Op::Rmdir(p, n) => m.rmdir(dir(p), &name(n)).await.map(|_| 0),
                    Op::Link(p, n, q, k) => match m.lookup(dir(p), &name(n)).await {
                        Ok(a) => m.link(a.ino, dir(q), &name(k)).await.map(|_| 0),
                        Err(e) => Err(e),
                    },
                    Op::Rename(p, n, q, k, f) => m.rename(dir(p), &name(n), dir(q), &name(k), f, closed()).await.map(|_| 0),
                }
                .map_err(|e| e.errno());
                let want = model.apply(op, *got.as_ref().unwrap_or(&0));
                assert_eq!(got.map(|_| ()), want, "op {op:?}");
            }
            // Same tree: every model entry exists in etcd with the same kind.
            for ((p, n), (ino, isdir)) in &model.entries {
                let a = m.lookup(*p, &[b'n', b'0' + n]).await.unwrap();
                assert_eq!(a.ino, *ino);
                assert_eq!(a.kind == FileKind::Dir, *isdir);
            }
            check_invariants(&m).await;
        });
    }
}
