//! The FUSE frontend of ringfs: the kernel's requests in, the engine's answers out.
//!
//! # Architecture
//! The session threads (fuser's, reading `/dev/fuse`) only decode kernel requests. Each
//! [`fuser::Filesystem`] method of [`RingFs`] copies what it needs out of the borrowed
//! request (uid, gid, pid, names, write data), wraps the engine call and the reply object
//! in a job, and pushes it onto the owning engine worker's lock-free queue
//! (`engine.pool().submit(shard_key, job)`; the pool uses crossbeam channels). The worker
//! runs the engine call on its own runtime and sends the reply itself. The session thread
//! never waits on etcd or Swift: `submit` does not block, and a reply dropped unanswered
//! (a job lost at shutdown) reaches the kernel as `EIO`.
//!
//! Shard key: the inode the request is about (`ino`); for name-based requests the parent
//! directory (lookup, mknod, mkdir, create, unlink, rmdir, symlink, rename: the old
//! parent); for link the target inode; for copy_file_range the destination inode. The
//! engine forwards internally when ownership requires it.
//!
//! # Modules
//! * [`fs`]: the `Filesystem` implementation ([`RingFs`]), including `init` (kernel
//!   capabilities and limits) and `destroy` (engine shutdown);
//! * [`convert`]: pure conversions (attributes, kinds, times, open flags) and the one
//!   engine-error → errno mapping;
//! * [`mount`](mod@mount): [`mount()`] / [`mount_with_options`], [`MountHandle`] (join, unmount,
//!   the kernel-cache [`fuser::Notifier`]), [`unmount()`] by path, and [`MountError`];
//! * `mountinfo`: reading `/proc/self/mountinfo` (busy checks, the mount's bdi).

pub mod convert;
pub mod fs;
pub mod mount;
mod mountinfo;

pub use fs::RingFs;
pub use mount::{mount, mount_with_options, unmount, MountError, MountHandle, Unmounter};
