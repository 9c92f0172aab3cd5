//! The POSIX metadata operations. Each is one call to the runner: a pure function over a
//! `View` that reads what it depends on and writes what it changes, committed as ONE etcd
//! transaction (or as part of a group commit). Keys touched per operation are bounded by
//! construction (at most a few attribute and entry keys plus range operations), so every
//! plan fits etcd's 128-operation limit; the planner still checks before sending.

use super::attr::{check_name, Attr, Dentry, FileKind, Timestamp, DIR_SIZE};
use super::keys::{Ino, Keys, ROOT_INO};
use super::kv::KvStore;
use super::runner::{Runner, RunnerOptions};
use super::txn::{Step, View};
use super::volume::VolumeRecord;
use super::MetaError;
use crate::layout::{self, SliceRef};
use parking_lot::Mutex;
use std::sync::Arc;

/// Largest xattr name and value (Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX).
pub const XATTR_NAME_MAX: usize = 255;
pub const XATTR_SIZE_MAX: usize = 65536;
/// Hard links per inode.
pub const LINK_MAX: u32 = 65000;
/// Symlink target length (PATH_MAX).
pub const SYMLINK_MAX: usize = 4096;

/// A time to set with `setattr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    Now,
    At(Timestamp),
}

/// Changes requested by `setattr`; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeSet>,
    pub mtime: Option<TimeSet>,
    pub ctime: Option<Timestamp>,
}

/// What unlinking (or replacing by rename) did to the target inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlinked {
    /// Other links remain.
    Linked(Attr),
    /// Last link gone while open on this client: kept until the last close.
    Sustained(Attr),
    /// Last link gone: the inode is deleted; its data is queued for deletion.
    Deleted(Attr),
}

/// Who is creating: owner of new inodes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
}

/// Tells whether an inode is open on this client (so its last unlink keeps it).
pub type IsOpen = Arc<dyn Fn(Ino) -> bool + Send + Sync>;

/// Flags of `rename`.
pub const RENAME_NOREPLACE: u32 = 1;
pub const RENAME_EXCHANGE: u32 = 2;

/// XATTR_CREATE / XATTR_REPLACE.
pub const XATTR_CREATE: i32 = 1;
pub const XATTR_REPLACE: i32 = 2;

/// Ids handed out from ranges reserved in etcd, so the hot path needs no counter txn.
struct IdRange {
    next: u64,
    end: u64,
}

/// One volume's metadata, as seen by one client.
pub struct Meta {
    runner: Runner,
    keys: Keys,
    volume: VolumeRecord,
    inodes: Mutex<IdRange>,
    slices: Mutex<IdRange>,
    alloc_lock: tokio::sync::Mutex<()>,
    session: u64,
    lease: i64,
    /// What the session record says (host, pid), copied into slice-writer records.
    session_info: String,
    /// Ends of the slice-id ranges this session allocated (their writer records).
    slice_ranges: Mutex<Vec<u64>>,
}

/// The session that allocated a slice id, from its writer record (see
/// [`Meta::slice_writer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceWriter {
    pub session: u64,
    /// The session's description (JSON with host and pid, as given to [`Meta::open`]).
    pub info: String,
    /// Whether the session is still registered (its lease alive): still mounted.
    pub alive: bool,
}

impl std::fmt::Display for SliceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session {:016x} {}", self.session, self.info)
    }
}

const INODE_BATCH: u64 = 1024;
const SLICE_BATCH: u64 = 4096;

fn attr_of(keys: &Keys, v: &mut View, ino: Ino) -> Result<Attr, Step> {
    match v.get(&keys.attr(ino))? {
        Some(b) => Ok(Attr::decode(ino, &b)?),
        None => Err(MetaError::NotFound.into()),
    }
}

fn dentry_of(keys: &Keys, v: &mut View, parent: Ino, name: &[u8]) -> Result<Option<Dentry>, Step> {
    match v.get(&keys.dentry(parent, name))? {
        Some(b) => Ok(Some(Dentry::decode(&b)?)),
        None => Ok(None),
    }
}

fn dir_of(keys: &Keys, v: &mut View, ino: Ino) -> Result<Attr, Step> {
    let a = attr_of(keys, v, ino)?;
    if a.kind != FileKind::Dir {
        return Err(MetaError::NotDir.into());
    }
    Ok(a)
}

fn touch_dir(keys: &Keys, v: &mut View, dir: &mut Attr, nlink_delta: i32) {
    dir.mtime = v.now;
    dir.ctime = v.now;
    dir.nlink = (dir.nlink as i64 + nlink_delta as i64).max(0) as u32;
    v.put(keys.attr(dir.ino), dir.encode());
}

/// Hard-link parents. A non-directory with one link keeps its directory in `attr.parent`;
/// once it gains a second link `attr.parent` becomes 0 and `P(ino, dir)` records count the
/// links from each directory (as JuiceFS does). The records live and die with the links,
/// in the same transaction, so they are never stale.
fn parent_count(keys: &Keys, v: &mut View, ino: Ino, dir: Ino) -> Result<u32, Step> {
    Ok(match v.get(&keys.parent(ino, dir))? {
        Some(b) if b.len() == 4 => u32::from_be_bytes(b[..].try_into().unwrap_or_default()),
        _ => 0,
    })
}

fn set_parent_count(keys: &Keys, v: &mut View, ino: Ino, dir: Ino, n: u32) {
    if n == 0 {
        v.delete(keys.parent(ino, dir));
    } else {
        v.put(keys.parent(ino, dir), n.to_be_bytes().to_vec());
    }
}

/// Records a new link of non-directory `attr` in `dir` (caller writes `attr`).
fn add_parent(keys: &Keys, v: &mut View, attr: &mut Attr, dir: Ino) -> Result<(), Step> {
    if attr.parent != 0 {
        let first = attr.parent;
        attr.parent = 0;
        let n = parent_count(keys, v, attr.ino, first)?;
        set_parent_count(keys, v, attr.ino, first, n + 1);
    }
    let n = parent_count(keys, v, attr.ino, dir)?;
    set_parent_count(keys, v, attr.ino, dir, n + 1);
    Ok(())
}

/// Forgets one link of non-directory `attr` in `dir` (caller writes `attr`).
fn remove_parent(keys: &Keys, v: &mut View, attr: &Attr, dir: Ino) -> Result<(), Step> {
    if attr.parent == 0 {
        let n = parent_count(keys, v, attr.ino, dir)?;
        set_parent_count(keys, v, attr.ino, dir, n.saturating_sub(1));
    }
    Ok(())
}

/// Moves one link of non-directory `attr` from `from` to `to` (caller writes `attr`).
fn move_parent(keys: &Keys, v: &mut View, attr: &mut Attr, from: Ino, to: Ino) -> Result<(), Step> {
    if from == to {
        return Ok(());
    }
    if attr.parent != 0 {
        attr.parent = to;
        return Ok(());
    }
    remove_parent(keys, v, attr, from)?;
    let n = parent_count(keys, v, attr.ino, to)?;
    set_parent_count(keys, v, attr.ino, to, n + 1);
    Ok(())
}

/// Drops the link of `attr` in `dir`, deleting or sustaining the inode at its last link.
fn drop_link(
    keys: &Keys,
    v: &mut View,
    mut attr: Attr,
    dir: Ino,
    is_open: &IsOpen,
    session: u64,
) -> Result<Unlinked, Step> {
    attr.ctime = v.now;
    let last = attr.kind == FileKind::Dir || attr.nlink <= 1;
    if !last {
        attr.nlink -= 1;
        remove_parent(keys, v, &attr, dir)?;
        v.put(keys.attr(attr.ino), attr.encode());
        return Ok(Unlinked::Linked(attr));
    }
    attr.nlink = 0;
    if attr.kind != FileKind::Dir && attr.parent == 0 {
        let (s, e) = keys.parent_range(attr.ino);
        v.delete_range(s, e);
    }
    if attr.kind == FileKind::File && is_open(attr.ino) {
        v.put(keys.attr(attr.ino), attr.encode());
        v.put(keys.sustained(attr.ino), session.to_be_bytes().to_vec());
        return Ok(Unlinked::Sustained(attr));
    }
    delete_inode(keys, v, &attr);
    Ok(Unlinked::Deleted(attr))
}

/// Removes an inode's records; a regular file's chunks stay for the background deleter,
/// which finds them through the delfile record (bounded work per transaction).
fn delete_inode(keys: &Keys, v: &mut View, attr: &Attr) {
    v.delete(keys.attr(attr.ino));
    let (xs, xe) = keys.xattr_range(attr.ino);
    v.delete_range(xs, xe);
    match attr.kind {
        FileKind::Symlink => v.delete(keys.symlink(attr.ino)),
        FileKind::File => v.put(keys.delfile(attr.ino), attr.size.to_be_bytes().to_vec()),
        _ => {}
    }
}

impl Meta {
    /// Writes a new volume: its record, the root directory and the counters. Refuses an
    /// existing volume unless `force` (which wipes its metadata first).
    pub async fn format(
        kv: Arc<dyn KvStore>,
        keys: &Keys,
        record: &VolumeRecord,
        force: bool,
    ) -> Result<(), MetaError> {
        record.check_supported()?;
        let runner = Runner::new(
            kv,
            RunnerOptions {
                group_commit: false,
                cache_entries: 0,
                ..Default::default()
            },
        );
        let keys = keys.clone();
        let rec = record.clone();
        runner
            .run_alone("format", move |v| {
                if let Some(existing) = v.get(&keys.volume())? {
                    if !force {
                        let name = VolumeRecord::decode(&existing).map(|r| r.name).unwrap_or_default();
                        return Err(MetaError::Volume(format!(
                            "volume '{name}' already exists (use --force to format it again, which erases its metadata)"
                        ))
                        .into());
                    }
                    let (s, e) = keys.volume_range();
                    v.delete_range(s, e);
                }
                v.put(keys.volume(), rec.encode());
                let mut root = Attr::new(ROOT_INO, FileKind::Dir, 0o777, 0, 0, ROOT_INO);
                root.atime = v.now;
                root.mtime = v.now;
                root.ctime = v.now;
                v.put(keys.attr(ROOT_INO), root.encode());
                v.put(keys.counter("nextInode"), (ROOT_INO + 1).to_be_bytes().to_vec());
                v.put(keys.counter("nextSlice"), 1u64.to_be_bytes().to_vec());
                Ok(())
            })
            .await
    }

    /// Reads the volume record (None if the volume does not exist).
    pub async fn load_volume(
        kv: &Arc<dyn KvStore>,
        keys: &Keys,
    ) -> Result<Option<VolumeRecord>, MetaError> {
        let (vals, _) = kv
            .get_many(&[keys.volume()])
            .await
            .map_err(|e| super::runner::kv_error("load volume", e))?;
        match vals.into_iter().next().flatten() {
            Some(kv) => Ok(Some(VolumeRecord::decode(&kv.value)?)),
            None => Ok(None),
        }
    }

    /// Opens an existing volume and registers this client's session on an etcd lease.
    pub async fn open(
        kv: Arc<dyn KvStore>,
        keys: Keys,
        opts: RunnerOptions,
        session_info: &str,
    ) -> Result<Self, MetaError> {
        let volume = Self::load_volume(&kv, &keys).await?.ok_or_else(|| {
            MetaError::Volume(format!(
                "volume not found at etcd key prefix '{}' (run `ringfs format` first)",
                String::from_utf8_lossy(keys.prefix())
            ))
        })?;
        let lease = kv
            .lease_grant(60)
            .await
            .map_err(|e| super::runner::kv_error("session", e))?;
        let session = (lease as u64) ^ ((std::process::id() as u64) << 32);
        let runner = Runner::new(kv, opts);
        let meta = Meta {
            runner,
            keys,
            volume,
            inodes: Mutex::new(IdRange { next: 0, end: 0 }),
            slices: Mutex::new(IdRange { next: 0, end: 0 }),
            alloc_lock: tokio::sync::Mutex::new(()),
            session,
            lease,
            session_info: session_info.to_string(),
            slice_ranges: Mutex::new(Vec::new()),
        };
        let (k, info) = (meta.keys.session(session), session_info.as_bytes().to_vec());
        meta.runner
            .run_alone("session", move |v| {
                v.set_lease(lease);
                v.put_leased(k.clone(), info.clone());
                Ok(())
            })
            .await?;
        Ok(meta)
    }

    pub fn volume(&self) -> &VolumeRecord {
        &self.volume
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    pub fn session_id(&self) -> u64 {
        self.session
    }

    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// Refreshes the session lease; call every few seconds.
    pub async fn heartbeat(&self) -> Result<(), MetaError> {
        let ttl = self
            .runner
            .kv()
            .lease_keep_alive(self.lease)
            .await
            .map_err(|e| super::runner::kv_error("heartbeat", e))?;
        if ttl <= 0 {
            return Err(MetaError::Unavailable("session lease expired".into()));
        }
        Ok(())
    }

    /// Ends the session: its lease (and the session record) goes away.
    pub async fn close_session(&self) -> Result<(), MetaError> {
        self.runner
            .kv()
            .lease_revoke(self.lease)
            .await
            .map_err(|e| super::runner::kv_error("close session", e))
    }

    async fn next_id(&self, which: &'static str) -> Result<u64, MetaError> {
        let (range, batch) = if which == "nextInode" {
            (&self.inodes, INODE_BATCH)
        } else {
            (&self.slices, SLICE_BATCH)
        };
        loop {
            {
                let mut r = range.lock();
                if r.next < r.end {
                    r.next += 1;
                    return Ok(r.next - 1);
                }
            }
            let _g = self.alloc_lock.lock().await;
            let has_ids = {
                let r = range.lock();
                r.next < r.end
            };
            if has_ids {
                continue;
            }
            let key = self.keys.counter(which);
            // Slice ids are recorded with the session taking them, so that a reader who
            // cannot find a block in Swift can name the client that wrote it.
            // Record value: first id, session id (8 bytes each, big-endian), session info.
            let writer = (which == "nextSlice").then(|| {
                let mut w = self.session.to_be_bytes().to_vec();
                w.extend_from_slice(self.session_info.as_bytes());
                w
            });
            let keys = self.keys.clone();
            let start = self
                .runner
                .run_alone("allocate ids", move |v| {
                    let cur = match v.get(&key)? {
                        Some(b) if b.len() == 8 => {
                            u64::from_be_bytes(b[..].try_into().unwrap_or_default())
                        }
                        Some(_) => {
                            return Err(MetaError::Corrupt(format!("counter {which}")).into())
                        }
                        None => 1,
                    };
                    let end = cur.checked_add(batch).ok_or(MetaError::NoSpace)?;
                    v.put(key.clone(), end.to_be_bytes().to_vec());
                    if let Some(w) = &writer {
                        let mut value = cur.to_be_bytes().to_vec();
                        value.extend_from_slice(w);
                        v.put(keys.slice_writer(end), value);
                    }
                    Ok(cur)
                })
                .await?;
            if which == "nextSlice" {
                self.slice_ranges.lock().push(start + batch);
            }
            let mut r = range.lock();
            r.next = start;
            r.end = start + batch;
        }
    }

    /// The session that allocated slice id `slice`, from the record written with its
    /// id range; `None` when there is none (the session ended cleanly, which removes its
    /// records once everything it wrote is in Swift, or the volume predates the records).
    pub async fn slice_writer(&self, slice: u64) -> Result<Option<SliceWriter>, MetaError> {
        let from = self.keys.slice_writer(slice.saturating_add(1));
        let (_, end) = self.keys.slice_writer_range();
        let (kvs, _) = self
            .runner
            .read("slice writer", |kv| {
                let (from, end) = (from.clone(), end.clone());
                async move { kv.range(&from, &end, 1).await }
            })
            .await?;
        let Some(kv) = kvs.first() else {
            return Ok(None);
        };
        let v = &kv.value;
        if v.len() < 16 {
            return Err(MetaError::Corrupt("slice writer record".into()));
        }
        let first = u64::from_be_bytes(v[..8].try_into().unwrap_or_default());
        if first > slice {
            return Ok(None);
        }
        let session = u64::from_be_bytes(v[8..16].try_into().unwrap_or_default());
        let skey = self.keys.session(session);
        let (alive, _) = self
            .runner
            .read("slice writer session", |kv| {
                let k = vec![skey.clone()];
                async move { kv.get_many(&k).await }
            })
            .await?;
        Ok(Some(SliceWriter {
            session,
            info: String::from_utf8_lossy(&v[16..]).into_owned(),
            alive: alive.first().is_some_and(|a| a.is_some()),
        }))
    }

    /// Removes the writer records of this session's slice ids: call when every block it
    /// wrote is in Swift (a clean unmount with nothing left staged). A session that ends
    /// otherwise leaves them, so that readers can still name it.
    pub async fn forget_slice_writers(&self) -> Result<(), MetaError> {
        let ends: Vec<u64> = std::mem::take(&mut *self.slice_ranges.lock());
        for group in ends.chunks(64) {
            let keys: Vec<Vec<u8>> = group.iter().map(|e| self.keys.slice_writer(*e)).collect();
            self.runner
                .run_alone("forget slice writers", move |v| {
                    for k in &keys {
                        v.delete(k.clone());
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    pub async fn new_inode_number(&self) -> Result<Ino, MetaError> {
        self.next_id("nextInode").await
    }

    pub async fn new_slice_id(&self) -> Result<u64, MetaError> {
        self.next_id("nextSlice").await
    }

    // ---- reads -------------------------------------------------------------------

    pub async fn getattr(&self, ino: Ino) -> Result<Attr, MetaError> {
        let keys = self.keys.clone();
        self.runner
            .query("getattr", move |v| attr_of(&keys, v, ino))
            .await
    }

    /// The directories holding links to `ino`, with the number of links in each (see
    /// [`add_parent`]). For fsck-style checks and tools; not on the data path.
    pub async fn parents(
        &self,
        ino: Ino,
    ) -> Result<std::collections::BTreeMap<Ino, u32>, MetaError> {
        let a = self.getattr(ino).await?;
        let mut out = std::collections::BTreeMap::new();
        if a.kind == FileKind::Dir || a.parent != 0 {
            if a.nlink > 0 {
                out.insert(a.parent, 1);
            }
            return Ok(out);
        }
        let (s, e) = self.keys.parent_range(ino);
        let (kvs, _) = self
            .runner
            .read("parents", |kv| {
                let (s, e) = (s.clone(), e.clone());
                async move { kv.range(&s, &e, 0).await }
            })
            .await?;
        for kv in kvs {
            let (Some(dir), Ok(n)) = (
                self.keys.parent_of_key(ino, &kv.key),
                <[u8; 4]>::try_from(&kv.value[..]),
            ) else {
                return Err(MetaError::Corrupt(format!(
                    "bad hard-link parent record of inode {ino}"
                )));
            };
            out.insert(dir, u32::from_be_bytes(n));
        }
        Ok(out)
    }

    /// Attributes of several inodes in one round trip per 100 (readdirplus).
    pub async fn getattr_many(&self, inos: &[Ino]) -> Result<Vec<Option<Attr>>, MetaError> {
        let mut out = Vec::with_capacity(inos.len());
        for group in inos.chunks(100) {
            let keys: Vec<Vec<u8>> = group.iter().map(|i| self.keys.attr(*i)).collect();
            let (vals, _) = self
                .runner
                .read("getattr many", |kv| {
                    let keys = keys.clone();
                    async move { kv.get_many(&keys).await }
                })
                .await?;
            for (ino, v) in group.iter().zip(vals) {
                out.push(match v {
                    Some(kv) => Some(Attr::decode(*ino, &kv.value)?),
                    None => None,
                });
            }
        }
        Ok(out)
    }

    pub async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr, MetaError> {
        if name.len() > 255 {
            return Err(MetaError::NameTooLong);
        }
        let keys = self.keys.clone();
        let name = name.to_vec();
        self.runner
            .query("lookup", move |v| {
                if name == b"." {
                    return attr_of(&keys, v, parent);
                }
                if name == b".." {
                    let p = dir_of(&keys, v, parent)?;
                    return attr_of(&keys, v, p.parent);
                }
                // Read the entry and the parent together (the parent tells ENOTDIR apart).
                let vals = v.get_many(&[&keys.dentry(parent, &name), &keys.attr(parent)])?;
                let d = match &vals[0] {
                    Some(b) => Dentry::decode(b)?,
                    None => {
                        return match &vals[1] {
                            Some(p) if Attr::decode(parent, p)?.kind != FileKind::Dir => {
                                Err(MetaError::NotDir.into())
                            }
                            _ => Err(MetaError::NotFound.into()),
                        }
                    }
                };
                attr_of(&keys, v, d.ino)
            })
            .await
    }

    pub async fn readlink(&self, ino: Ino) -> Result<Vec<u8>, MetaError> {
        let keys = self.keys.clone();
        self.runner
            .query("readlink", move |v| {
                let a = attr_of(&keys, v, ino)?;
                if a.kind != FileKind::Symlink {
                    return Err(MetaError::Invalid("not a symlink").into());
                }
                match v.get(&keys.symlink(ino))? {
                    Some(t) => Ok(t.to_vec()),
                    None => Err(MetaError::Corrupt(format!("symlink {ino} has no target")).into()),
                }
            })
            .await
    }

    /// Up to `limit` entries of directory `ino` whose names sort after `after`, in name
    /// order. A name cursor is stable under concurrent inserts and deletes: no entry that
    /// exists throughout the listing is skipped or returned twice, and memory is bounded
    /// by the page, whatever the directory's size.
    pub async fn readdir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Dentry)>, MetaError> {
        let (start, end) = self.keys.dentry_range(ino);
        let start = match after {
            Some(name) => {
                let mut k = self.keys.dentry(ino, name);
                k.push(0);
                k
            }
            None => start,
        };
        let (kvs, _) = self
            .runner
            .read("readdir", |kv| {
                let (s, e) = (start.clone(), end.clone());
                async move { kv.range(&s, &e, limit).await }
            })
            .await?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let name = self
                .keys
                .dentry_name(ino, &kv.key)
                .ok_or_else(|| MetaError::Corrupt("dentry key".into()))?;
            out.push((name.to_vec(), Dentry::decode(&kv.value)?));
        }
        Ok(out)
    }

    // ---- namespace changes --------------------------------------------------------

    /// Creates a node of any kind except symlink (mknod, mkdir, create).
    pub async fn mknod(
        &self,
        creds: Creds,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
        perm: u32,
        rdev: u32,
    ) -> Result<Attr, MetaError> {
        check_name(name)?;
        if kind == FileKind::Symlink {
            return Err(MetaError::Invalid("use symlink"));
        }
        let ino = self.new_inode_number().await?;
        let keys = self.keys.clone();
        let name = name.to_vec();
        self.runner
            .run("mknod", move |v| {
                let dkey = keys.dentry(parent, &name);
                let vals = v.get_many(&[&keys.attr(parent)])?;
                let mut p = match &vals[0] {
                    Some(b) => Attr::decode(parent, b)?,
                    None => return Err(MetaError::NotFound.into()),
                };
                if p.kind != FileKind::Dir {
                    return Err(MetaError::NotDir.into());
                }
                if p.nlink == 0 {
                    return Err(MetaError::NotFound.into()); // directory being removed
                }
                if v.get_expect_absent(&dkey)?.is_some() {
                    return Err(MetaError::Exists.into());
                }
                let mut perm = perm & 0o7777;
                let mut gid = creds.gid;
                // BSD group semantics on setgid directories (as Linux does).
                if p.perm & 0o2000 != 0 {
                    gid = p.gid;
                    if kind == FileKind::Dir {
                        perm |= 0o2000;
                    }
                }
                let mut a = Attr::new(ino, kind, perm as u16, creds.uid, gid, parent);
                a.atime = v.now;
                a.mtime = v.now;
                a.ctime = v.now;
                a.rdev = rdev;
                v.put(keys.attr(ino), a.encode());
                v.put(dkey, Dentry { ino, kind }.encode());
                touch_dir(&keys, v, &mut p, if kind == FileKind::Dir { 1 } else { 0 });
                Ok(a)
            })
            .await
    }

    pub async fn symlink(
        &self,
        creds: Creds,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<Attr, MetaError> {
        check_name(name)?;
        if target.is_empty() || target.contains(&0) {
            return Err(MetaError::Invalid("symlink target"));
        }
        if target.len() > SYMLINK_MAX {
            return Err(MetaError::NameTooLong);
        }
        let ino = self.new_inode_number().await?;
        let keys = self.keys.clone();
        let (name, target) = (name.to_vec(), target.to_vec());
        self.runner
            .run("symlink", move |v| {
                let dkey = keys.dentry(parent, &name);
                let mut p = dir_of(&keys, v, parent)?;
                if p.nlink == 0 {
                    return Err(MetaError::NotFound.into());
                }
                if v.get_expect_absent(&dkey)?.is_some() {
                    return Err(MetaError::Exists.into());
                }
                let gid = if p.perm & 0o2000 != 0 {
                    p.gid
                } else {
                    creds.gid
                };
                let mut a = Attr::new(ino, FileKind::Symlink, 0o777, creds.uid, gid, parent);
                a.atime = v.now;
                a.mtime = v.now;
                a.ctime = v.now;
                a.size = target.len() as u64;
                v.put(keys.attr(ino), a.encode());
                v.put(keys.symlink(ino), target.clone());
                v.put(
                    dkey,
                    Dentry {
                        ino,
                        kind: FileKind::Symlink,
                    }
                    .encode(),
                );
                touch_dir(&keys, v, &mut p, 0);
                Ok(a)
            })
            .await
    }

    pub async fn link(&self, ino: Ino, newparent: Ino, newname: &[u8]) -> Result<Attr, MetaError> {
        check_name(newname)?;
        let keys = self.keys.clone();
        let name = newname.to_vec();
        self.runner
            .run("link", move |v| {
                let dkey = keys.dentry(newparent, &name);
                let mut a = attr_of(&keys, v, ino)?;
                if a.kind == FileKind::Dir {
                    return Err(MetaError::Perm.into());
                }
                let mut p = dir_of(&keys, v, newparent)?;
                if p.nlink == 0 {
                    return Err(MetaError::NotFound.into());
                }
                if a.nlink == 0 {
                    return Err(MetaError::NotFound.into());
                }
                if a.nlink >= LINK_MAX {
                    return Err(MetaError::TooManyLinks.into());
                }
                if v.get_expect_absent(&dkey)?.is_some() {
                    return Err(MetaError::Exists.into());
                }
                a.nlink += 1;
                a.ctime = v.now;
                add_parent(&keys, v, &mut a, newparent)?;
                v.put(keys.attr(ino), a.encode());
                v.put(dkey, Dentry { ino, kind: a.kind }.encode());
                touch_dir(&keys, v, &mut p, 0);
                Ok(a)
            })
            .await
    }

    pub async fn unlink(
        &self,
        parent: Ino,
        name: &[u8],
        is_open: IsOpen,
    ) -> Result<Unlinked, MetaError> {
        if name.len() > 255 {
            return Err(MetaError::NameTooLong);
        }
        let keys = self.keys.clone();
        let name = name.to_vec();
        let session = self.session;
        self.runner
            .run("unlink", move |v| {
                let mut p = dir_of(&keys, v, parent)?;
                let d = dentry_of(&keys, v, parent, &name)?.ok_or(MetaError::NotFound)?;
                if d.kind == FileKind::Dir {
                    return Err(MetaError::IsDir.into());
                }
                let a = attr_of(&keys, v, d.ino)?;
                v.delete(keys.dentry(parent, &name));
                touch_dir(&keys, v, &mut p, 0);
                drop_link(&keys, v, a, parent, &is_open, session)
            })
            .await
    }

    pub async fn rmdir(&self, parent: Ino, name: &[u8]) -> Result<Attr, MetaError> {
        if name.len() > 255 {
            return Err(MetaError::NameTooLong);
        }
        if name == b"." {
            return Err(MetaError::Invalid("rmdir ."));
        }
        if name == b".." {
            return Err(MetaError::NotEmpty);
        }
        let keys = self.keys.clone();
        let name = name.to_vec();
        self.runner
            .run("rmdir", move |v| {
                let mut p = dir_of(&keys, v, parent)?;
                let d = dentry_of(&keys, v, parent, &name)?.ok_or(MetaError::NotFound)?;
                if d.kind != FileKind::Dir {
                    return Err(MetaError::NotDir.into());
                }
                let a = attr_of(&keys, v, d.ino)?;
                let (s, e) = keys.dentry_range(d.ino);
                // Proven empty inside the transaction: a racing create makes it fail.
                if !v.range_empty(&s, &e)? {
                    return Err(MetaError::NotEmpty.into());
                }
                v.delete(keys.dentry(parent, &name));
                delete_inode(&keys, v, &a);
                touch_dir(&keys, v, &mut p, -1);
                Ok(a)
            })
            .await
    }

    /// rename(2) with `RENAME_NOREPLACE` / `RENAME_EXCHANGE`. Returns what happened to a
    /// replaced destination, if any.
    pub async fn rename(
        &self,
        parent: Ino,
        name: &[u8],
        newparent: Ino,
        newname: &[u8],
        flags: u32,
        is_open: IsOpen,
    ) -> Result<Option<Unlinked>, MetaError> {
        if name.len() > 255 || newname.len() > 255 {
            return Err(MetaError::NameTooLong);
        }
        check_name(newname)?;
        if name == b"." || name == b".." || name.is_empty() {
            return Err(MetaError::Invalid("rename of . or .."));
        }
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
            || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
        {
            return Err(MetaError::Invalid("rename flags"));
        }
        let keys = self.keys.clone();
        let (name, newname) = (name.to_vec(), newname.to_vec());
        let session = self.session;
        self.runner
            .run("rename", move |v| {
                let mut sp = dir_of(&keys, v, parent)?;
                let src = dentry_of(&keys, v, parent, &name)?.ok_or(MetaError::NotFound)?;
                let mut dp = if newparent == parent {
                    sp.clone()
                } else {
                    dir_of(&keys, v, newparent)?
                };
                if dp.nlink == 0 {
                    return Err(MetaError::NotFound.into());
                }
                let dst = dentry_of(&keys, v, newparent, &newname)?;
                if flags & RENAME_NOREPLACE != 0 && dst.is_some() {
                    return Err(MetaError::Exists.into());
                }
                if flags & RENAME_EXCHANGE != 0 && dst.is_none() {
                    return Err(MetaError::NotFound.into());
                }
                if let Some(d) = dst {
                    if d.ino == src.ino {
                        // Both names are links to one inode: POSIX says do nothing.
                        return Ok(None);
                    }
                }
                let cross = newparent != parent;
                let exchange = flags & RENAME_EXCHANGE != 0;
                // Moving a directory to another parent: it must not land under itself.
                let moving_dirs = (src.kind == FileKind::Dir && cross)
                    || (exchange && dst.is_some_and(|d| d.kind == FileKind::Dir) && cross);
                if moving_dirs {
                    let gen_key = keys.rename_gen();
                    let gen = match v.get(&gen_key)? {
                        Some(b) if b.len() == 8 => {
                            u64::from_be_bytes(b[..].try_into().unwrap_or_default())
                        }
                        _ => 0,
                    };
                    v.put(gen_key, (gen + 1).to_be_bytes().to_vec());
                    if src.kind == FileKind::Dir && is_ancestor(&keys, v, src.ino, newparent)? {
                        return Err(
                            MetaError::Invalid("cannot move a directory under itself").into()
                        );
                    }
                    if let Some(d) = dst.filter(|d| exchange && d.kind == FileKind::Dir) {
                        if is_ancestor(&keys, v, d.ino, parent)? {
                            return Err(
                                MetaError::Invalid("cannot move a directory under itself").into()
                            );
                        }
                    }
                }
                let mut sa = attr_of(&keys, v, src.ino)?;
                let mut replaced = None;
                if exchange {
                    let d = dst.ok_or(MetaError::NotFound)?;
                    let mut da = attr_of(&keys, v, d.ino)?;
                    v.put(keys.dentry(newparent, &newname), src.encode());
                    v.put(keys.dentry(parent, &name), d.encode());
                    sa.ctime = v.now;
                    da.ctime = v.now;
                    if cross {
                        if sa.kind == FileKind::Dir {
                            sa.parent = newparent;
                        } else {
                            move_parent(&keys, v, &mut sa, parent, newparent)?;
                        }
                        if da.kind == FileKind::Dir {
                            da.parent = parent;
                        } else {
                            move_parent(&keys, v, &mut da, newparent, parent)?;
                        }
                        let shift =
                            (sa.kind == FileKind::Dir) as i32 - (da.kind == FileKind::Dir) as i32;
                        touch_dir(&keys, v, &mut sp, -shift);
                        touch_dir(&keys, v, &mut dp, shift);
                    } else {
                        touch_dir(&keys, v, &mut sp, 0);
                    }
                    v.put(keys.attr(sa.ino), sa.encode());
                    v.put(keys.attr(da.ino), da.encode());
                    return Ok(None);
                }
                let mut dir_delta_dst = 0i32;
                if let Some(d) = dst {
                    let da = attr_of(&keys, v, d.ino)?;
                    match (sa.kind == FileKind::Dir, da.kind == FileKind::Dir) {
                        (true, false) => return Err(MetaError::NotDir.into()),
                        (false, true) => return Err(MetaError::IsDir.into()),
                        (true, true) => {
                            let (s, e) = keys.dentry_range(d.ino);
                            if !v.range_empty(&s, &e)? {
                                return Err(MetaError::NotEmpty.into());
                            }
                            dir_delta_dst -= 1;
                        }
                        (false, false) => {}
                    }
                    replaced = Some(drop_link(&keys, v, da, newparent, &is_open, session)?);
                }
                v.delete(keys.dentry(parent, &name));
                v.put(keys.dentry(newparent, &newname), src.encode());
                sa.ctime = v.now;
                let is_dir = sa.kind == FileKind::Dir;
                if is_dir && cross {
                    sa.parent = newparent;
                } else if !is_dir {
                    move_parent(&keys, v, &mut sa, parent, newparent)?;
                }
                v.put(keys.attr(sa.ino), sa.encode());
                if cross {
                    touch_dir(&keys, v, &mut sp, if is_dir { -1 } else { 0 });
                    touch_dir(
                        &keys,
                        v,
                        &mut dp,
                        dir_delta_dst + if is_dir { 1 } else { 0 },
                    );
                } else {
                    touch_dir(&keys, v, &mut sp, dir_delta_dst);
                }
                Ok(replaced)
            })
            .await
    }

    pub async fn setattr(&self, ino: Ino, set: SetAttr) -> Result<Attr, MetaError> {
        let keys = self.keys.clone();
        let chunk_size = self.volume.chunk_size;
        self.runner
            .run("setattr", move |v| {
                let mut a = attr_of(&keys, v, ino)?;
                let old = a.clone();
                if let Some(mode) = set.mode {
                    a.perm = (mode & 0o7777) as u16;
                }
                if let Some(uid) = set.uid {
                    a.uid = uid;
                }
                if let Some(gid) = set.gid {
                    a.gid = gid;
                }
                if let Some(t) = set.atime {
                    a.atime = match t {
                        TimeSet::Now => v.now,
                        TimeSet::At(t) => t,
                    };
                }
                if let Some(t) = set.mtime {
                    a.mtime = match t {
                        TimeSet::Now => v.now,
                        TimeSet::At(t) => t,
                    };
                }
                if let Some(size) = set.size {
                    match a.kind {
                        FileKind::File => {}
                        FileKind::Dir => return Err(MetaError::IsDir.into()),
                        _ => return Err(MetaError::Invalid("truncate of a special file").into()),
                    }
                    if size < a.size {
                        truncate_chunks(&keys, v, ino, size, chunk_size)?;
                    }
                    a.size = size;
                    if set.mtime.is_none() {
                        a.mtime = v.now;
                    }
                }
                if a != old || set.ctime.is_some() || set.size.is_some() {
                    a.ctime = set.ctime.unwrap_or(v.now);
                    v.put(keys.attr(ino), a.encode());
                }
                Ok(a)
            })
            .await
    }

    /// The last close of a sustained (open but unlinked) inode: delete it now.
    pub async fn release_sustained(&self, ino: Ino) -> Result<(), MetaError> {
        let keys = self.keys.clone();
        self.runner
            .run("release", move |v| {
                if v.get(&keys.sustained(ino))?.is_none() {
                    return Ok(());
                }
                v.delete(keys.sustained(ino));
                if let Some(b) = v.get(&keys.attr(ino))? {
                    let a = Attr::decode(ino, &b)?;
                    if a.nlink == 0 {
                        delete_inode(&keys, v, &a);
                    }
                }
                Ok(())
            })
            .await
    }

    // ---- xattrs -------------------------------------------------------------------

    pub async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>, MetaError> {
        self.getxattr_and_attr(ino, name)
            .await?
            .0
            .ok_or(MetaError::NoData)
    }

    /// The value of xattr `name` (None: not set) and the inode's attributes, in one read.
    pub async fn getxattr_and_attr(
        &self,
        ino: Ino,
        name: &[u8],
    ) -> Result<(Option<Vec<u8>>, Attr), MetaError> {
        check_xattr_name(name)?;
        let keys = self.keys.clone();
        let name = name.to_vec();
        self.runner
            .query("getxattr", move |v| {
                let vals = v.get_many(&[&keys.xattr(ino, &name), &keys.attr(ino)])?;
                match (&vals[0], &vals[1]) {
                    (_, None) => Err(MetaError::NotFound.into()),
                    (x, Some(a)) => Ok((x.as_ref().map(|x| x.to_vec()), Attr::decode(ino, a)?)),
                }
            })
            .await
    }

    pub async fn setxattr(
        &self,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<(), MetaError> {
        check_xattr_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(MetaError::TooBig);
        }
        let keys = self.keys.clone();
        let (name, value) = (name.to_vec(), value.to_vec());
        self.runner
            .run("setxattr", move |v| {
                let mut a = attr_of(&keys, v, ino)?;
                let k = keys.xattr(ino, &name);
                let exists = v.get(&k)?.is_some();
                if flags & XATTR_CREATE != 0 && exists {
                    return Err(MetaError::Exists.into());
                }
                if flags & XATTR_REPLACE != 0 && !exists {
                    return Err(MetaError::NoData.into());
                }
                v.put(k, value.clone());
                a.ctime = v.now;
                a.no_xattrs = false;
                v.put(keys.attr(ino), a.encode());
                Ok(())
            })
            .await
    }

    /// Names, each followed by NUL, as listxattr(2) returns them.
    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<u8>, MetaError> {
        self.getattr(ino).await?;
        let (s, e) = self.keys.xattr_range(ino);
        let mut out = Vec::new();
        let mut start = s.clone();
        loop {
            let (kvs, more) = self
                .runner
                .read("listxattr", |kv| {
                    let (s, e) = (start.clone(), e.clone());
                    async move { kv.range(&s, &e, 1000).await }
                })
                .await?;
            for kv in &kvs {
                if let Some(n) = self.keys.xattr_name(ino, &kv.key) {
                    out.extend_from_slice(n);
                    out.push(0);
                }
            }
            match (more, kvs.last()) {
                (true, Some(last)) => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    pub async fn removexattr(&self, ino: Ino, name: &[u8]) -> Result<(), MetaError> {
        check_xattr_name(name)?;
        let keys = self.keys.clone();
        let name = name.to_vec();
        self.runner
            .run("removexattr", move |v| {
                let mut a = attr_of(&keys, v, ino)?;
                let k = keys.xattr(ino, &name);
                if v.get(&k)?.is_none() {
                    return Err(MetaError::NoData.into());
                }
                v.delete(k);
                a.ctime = v.now;
                v.put(keys.attr(ino), a.encode());
                Ok(())
            })
            .await
    }

    // ---- data: chunks and slices --------------------------------------------------

    /// The slice references of one chunk, oldest first.
    pub async fn read_chunk(&self, ino: Ino, index: u32) -> Result<Vec<SliceRef>, MetaError> {
        let key = self.keys.chunk(ino, index);
        let (vals, _) = self
            .runner
            .read("read chunk", |kv| {
                let k = key.clone();
                async move { kv.get_many(&[k]).await }
            })
            .await?;
        match vals.into_iter().next().flatten() {
            Some(kv) => layout::decode_chunk(&kv.value)
                .map_err(|e| MetaError::Corrupt(format!("chunk {ino}/{index}: {e}"))),
            None => Ok(Vec::new()),
        }
    }

    /// Commits written slices: appends each to its chunk and grows the file size to
    /// `end` if larger, setting mtime and ctime. One transaction for up to ~100 slices;
    /// callers pass at most `MAX_SLICES_PER_COMMIT`.
    pub async fn commit_slices(
        &self,
        ino: Ino,
        slices: Vec<(u32, SliceRef)>,
        end: u64,
    ) -> Result<Attr, MetaError> {
        Ok(self.commit_slices_counted(ino, slices, end).await?.0)
    }

    /// [`Self::commit_slices`], also returning how many refs each chunk it appended to
    /// holds now, so that the caller can compact a fragmented one.
    pub async fn commit_slices_counted(
        &self,
        ino: Ino,
        slices: Vec<(u32, SliceRef)>,
        end: u64,
    ) -> Result<(Attr, Vec<(u32, usize)>), MetaError> {
        if slices.len() > MAX_SLICES_PER_COMMIT {
            return Err(MetaError::Internal(format!(
                "{} slices in one commit",
                slices.len()
            )));
        }
        let keys = self.keys.clone();
        let chunk_size = self.volume.chunk_size;
        self.runner
            .run("commit slices", move |v| {
                let mut a = attr_of(&keys, v, ino)?;
                if a.kind != FileKind::File {
                    return Err(MetaError::Invalid("write to a non-regular file").into());
                }
                let chunk_keys: Vec<Vec<u8>> =
                    slices.iter().map(|(i, _)| keys.chunk(ino, *i)).collect();
                // A chunk wholly past the end of the file has no key (truncate deletes
                // them): assumed absent without a round trip, as a new file's first
                // commit always is; the transaction's guard checks the guess.
                let past_end = |i: u32| i as u64 * chunk_size >= a.size;
                let known: Vec<&[u8]> = chunk_keys
                    .iter()
                    .zip(&slices)
                    .filter(|(_, (i, _))| !past_end(*i))
                    .map(|(k, _)| &k[..])
                    .collect();
                let mut fetched = v.get_many(&known)?.into_iter();
                let mut vals = Vec::with_capacity(chunk_keys.len());
                for (k, (i, _)) in chunk_keys.iter().zip(&slices) {
                    vals.push(if past_end(*i) {
                        v.get_expect_absent(k)?
                    } else {
                        fetched.next().flatten()
                    });
                }
                let mut pending: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
                for ((i, s), cur) in slices.iter().zip(vals) {
                    let buf = pending.entry(*i).or_insert_with(|| {
                        cur.map(|b| b.to_vec())
                            .unwrap_or_else(|| layout::encode_chunk(&[]))
                    });
                    layout::append_encoded(buf, s);
                }
                let mut counts = Vec::with_capacity(pending.len());
                for (i, val) in pending {
                    counts.push((i, layout::max_refs_for_budget(val.len())));
                    v.put(keys.chunk(ino, i), val);
                }
                if end > a.size {
                    a.size = end;
                }
                a.mtime = v.now;
                a.ctime = v.now;
                v.put(keys.attr(ino), a.encode());
                Ok((a, counts))
            })
            .await
    }

    /// Replaces the refs `expected` of a chunk, as read before, with `new`, their
    /// compacted equivalent. Refs appended since (writes committed meanwhile, newer than
    /// everything compacted) are kept after `new` (`layout::rebase_compacted`), so a
    /// concurrent write is never lost. Fails with `Busy` if the chunk changed otherwise
    /// (truncated, deleted, compacted elsewhere). Returns the chunk's refs as written.
    ///
    /// The slices no longer referenced go to the trash in the same transaction (one
    /// record, [`Keys::trash`]): their objects are deleted by [`Meta::trash_due`] /
    /// [`Meta::forget_trash`] once `grace` has passed.
    pub async fn replace_chunk(
        &self,
        ino: Ino,
        index: u32,
        expected: Vec<SliceRef>,
        new: Vec<SliceRef>,
        grace: std::time::Duration,
    ) -> Result<Vec<SliceRef>, MetaError> {
        let key = self.keys.chunk(ino, index);
        let keys = self.keys.clone();
        let base = layout::encode_chunk(&expected);
        self.runner
            .run("compact chunk", move |v| {
                let cur = v
                    .get(&key)?
                    .ok_or_else(|| MetaError::Busy("chunk deleted during compaction".into()))?;
                let val = layout::rebase_compacted(&base, &new, &cur)
                    .ok_or_else(|| MetaError::Busy("chunk changed during compaction".into()))?;
                let refs = layout::decode_chunk(&val)
                    .map_err(|e| MetaError::Corrupt(format!("chunk {ino}/{index}: {e}")))?;
                let replaced = replaced_slices(&expected, &refs);
                if let Some(&(first, _)) = replaced.first() {
                    let deadline = (v.now.secs.max(0) as u64).saturating_add(grace.as_secs());
                    v.put(keys.trash(deadline, first), encode_trash(&replaced));
                }
                v.put(key.clone(), val);
                Ok(refs)
            })
            .await
    }

    /// Trash records whose grace has passed at `now` (seconds since the epoch), at most
    /// `limit`: each its key and the (slice id, slice size) pairs whose objects to delete.
    pub async fn trash_due(
        &self,
        now: u64,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<(u64, u32)>)>, MetaError> {
        let (s, e) = self.keys.trash_due(now);
        let (kvs, _) = self
            .runner
            .read("trash", |kv| {
                let (s, e) = (s.clone(), e.clone());
                async move { kv.range(&s, &e, limit).await }
            })
            .await?;
        kvs.into_iter()
            .map(|kv| {
                let slices = decode_trash(&kv.value)
                    .ok_or_else(|| MetaError::Corrupt("trash record".into()))?;
                Ok((kv.key, slices))
            })
            .collect()
    }

    /// Drops trash records whose objects are deleted: one transaction per 100 keys
    /// (etcd allows 128 operations in one).
    pub async fn forget_trash(&self, keys: Vec<Vec<u8>>) -> Result<(), MetaError> {
        for batch in keys.chunks(100) {
            let batch = batch.to_vec();
            self.runner
                .run_alone("forget trash", move |v| {
                    for k in &batch {
                        v.delete(k.clone());
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    /// Inodes whose data awaits deletion (after their last link went away).
    pub async fn pending_deletions(&self, limit: usize) -> Result<Vec<Ino>, MetaError> {
        let (s, e) = self.keys.delfile_range();
        let (kvs, _) = self
            .runner
            .read("pending deletions", |kv| {
                let (s, e) = (s.clone(), e.clone());
                async move { kv.range(&s, &e, limit).await }
            })
            .await?;
        Ok(kvs
            .iter()
            .filter_map(|kv| self.keys.trailing_ino(&kv.key))
            .collect())
    }

    /// All slices of a deleted inode, page by page (bounded memory per page).
    pub async fn chunks_page(
        &self,
        ino: Ino,
        from: u32,
        limit: usize,
    ) -> Result<(Vec<(u32, Vec<SliceRef>)>, bool), MetaError> {
        let (s, e) = self.keys.chunk_range_from(ino, from);
        let (kvs, more) = self
            .runner
            .read("chunks", |kv| {
                let (s, e) = (s.clone(), e.clone());
                async move { kv.range(&s, &e, limit).await }
            })
            .await?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let idx = self
                .keys
                .chunk_index(&kv.key)
                .ok_or_else(|| MetaError::Corrupt("chunk key".into()))?;
            let refs =
                layout::decode_chunk(&kv.value).map_err(|e| MetaError::Corrupt(e.to_string()))?;
            out.push((idx, refs));
        }
        Ok((out, more))
    }

    /// After the objects of a deleted inode are gone: drop its chunk records.
    pub async fn finish_deletion(&self, ino: Ino) -> Result<(), MetaError> {
        let keys = self.keys.clone();
        self.runner
            .run_alone("finish deletion", move |v| {
                let (s, e) = keys.chunk_range_from(ino, 0);
                v.delete_range(s, e);
                v.delete(keys.delfile(ino));
                Ok(())
            })
            .await
    }

    /// Usage summary for statfs and `ringfs status`: (files, bytes), counted by a scan of
    /// attributes when small; cheap estimate otherwise.
    pub async fn usage(&self) -> Result<(u64, u64), MetaError> {
        let (s, e) = {
            let mut s = self.keys.prefix().to_vec();
            s.push(super::keys::tag::ATTR);
            let e = super::keys::prefix_end(&s);
            (s, e)
        };
        let mut start = s.clone();
        let (mut files, mut bytes) = (0u64, 0u64);
        for _ in 0..100 {
            let (kvs, more) = self
                .runner
                .read("usage", |kv| {
                    let (s, e) = (start.clone(), e.clone());
                    async move { kv.range(&s, &e, 1000).await }
                })
                .await?;
            for kv in &kvs {
                files += 1;
                if let Some(ino) = self.keys.trailing_ino(&kv.key) {
                    if let Ok(a) = Attr::decode(ino, &kv.value) {
                        if a.kind == FileKind::File {
                            bytes += a.size;
                        }
                    }
                }
            }
            match (more, kvs.last()) {
                (true, Some(last)) => {
                    start = last.key.clone();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok((files, bytes))
    }
}

/// Slices one `commit_slices` call may carry (each adds a chunk key to the transaction).
pub const MAX_SLICES_PER_COMMIT: usize = 100;

/// Whether `ancestor` is `ino` or one of its ancestors. Parent pointers are read fresh
/// and not individually guarded: the rename generation's compare proves none changed.
fn is_ancestor(keys: &Keys, v: &mut View, ancestor: Ino, mut ino: Ino) -> Result<bool, Step> {
    for _ in 0..100_000 {
        if ino == ancestor {
            return Ok(true);
        }
        if ino == ROOT_INO {
            return Ok(false);
        }
        let a = match v.peek_fresh(&keys.attr(ino))? {
            Some(b) => Attr::decode(ino, &b)?,
            None => return Err(MetaError::NotFound.into()),
        };
        ino = a.parent;
    }
    Err(MetaError::Corrupt("directory loop".into()).into())
}

/// Shrinking a file: drop whole chunks past the end in one range delete and cover the
/// tail of the last partial chunk with a zero reference, so extending the file later
/// reads zeros, never the old bytes.
fn truncate_chunks(
    keys: &Keys,
    v: &mut View,
    ino: Ino,
    size: u64,
    chunk_size: u64,
) -> Result<(), Step> {
    let first_dropped = size.div_ceil(chunk_size);
    if first_dropped <= u32::MAX as u64 {
        let (s, e) = keys.chunk_range_from(ino, first_dropped as u32);
        v.delete_range(s, e);
    }
    let tail = size % chunk_size;
    if tail != 0 {
        let idx = (size / chunk_size) as u32;
        let key = keys.chunk(ino, idx);
        if let Some(cur) = v.get(&key)? {
            let mut buf = cur.to_vec();
            let len = (chunk_size - tail) as u32;
            layout::append_encoded(
                &mut buf,
                &SliceRef {
                    pos: tail as u32,
                    id: 0,
                    size: len,
                    off: 0,
                    len,
                },
            );
            v.put(key, buf);
        }
    }
    Ok(())
}

fn check_xattr_name(name: &[u8]) -> Result<(), MetaError> {
    if name.is_empty() {
        return Err(MetaError::Invalid("empty xattr name"));
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(MetaError::Range);
    }
    Ok(())
}

/// Directory size as reported (constant, like ext4's first block).
pub fn dir_size() -> u64 {
    DIR_SIZE
}

/// The slices of `before` that `after` no longer references, by id (each once, sorted).
fn replaced_slices(before: &[SliceRef], after: &[SliceRef]) -> Vec<(u64, u32)> {
    let kept: std::collections::HashSet<u64> = after.iter().map(|r| r.id).collect();
    let mut gone: Vec<(u64, u32)> = before
        .iter()
        .filter(|r| r.id != 0 && !kept.contains(&r.id))
        .map(|r| (r.id, r.size))
        .collect();
    gone.sort_unstable();
    gone.dedup();
    gone
}

/// A trash record's value: (id u64, size u32) big-endian, 12 bytes per slice.
fn encode_trash(slices: &[(u64, u32)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(slices.len() * 12);
    for (id, size) in slices {
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(&size.to_be_bytes());
    }
    v
}

fn decode_trash(v: &[u8]) -> Option<Vec<(u64, u32)>> {
    if !v.len().is_multiple_of(12) {
        return None;
    }
    v.chunks_exact(12)
        .map(|c| {
            Some((
                u64::from_be_bytes(c[..8].try_into().ok()?),
                u32::from_be_bytes(c[8..].try_into().ok()?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod trash_tests {
    use super::*;

    #[test]
    fn only_slices_no_longer_referenced_are_trashed() {
        let before = [
            SliceRef::new(0, 7, 100),
            SliceRef::new(100, 8, 50),
            SliceRef::new(150, 7, 100), // a second piece of slice 7
            SliceRef::new(200, 0, 10),  // zeros: no object
        ];
        let after = [SliceRef::new(0, 9, 150), SliceRef::new(150, 7, 100)];
        assert_eq!(replaced_slices(&before, &after), vec![(8, 50)]);
        assert_eq!(replaced_slices(&before, &before), vec![]);
    }

    #[test]
    fn trash_records_round_trip_and_reject_torn_values() {
        let s = vec![(1, 2), (u64::MAX, u32::MAX)];
        assert_eq!(decode_trash(&encode_trash(&s)), Some(s));
        assert_eq!(decode_trash(&[0; 13]), None);
        assert_eq!(decode_trash(&[]), Some(vec![]));
    }
}
