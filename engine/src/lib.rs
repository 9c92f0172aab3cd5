//! ringfs engine: everything between the FUSE frontend and the remote stores.
//!
//! It owns:
//! * [`config`]: the `ringfs.toml` engine config file (parsing, env overrides, validation);
//! * [`meta`]: metadata in etcd — key schema, POSIX operations as single transactions,
//!   optimistic retries and group commit — behind the `KvStore` trait;
//! * [`layout`]: the data model's pure logic — files → chunks → slices → blocks;
//! * [`data`]: per-file write buffers and the block cache;
//! * [`cache`]: the local SSD write-back staging and its ordered background uploader;
//! * [`io`]: local disk I/O behind a trait — io_uring, plain syscalls, fault injection;
//! * [`worker`]: thread-per-core workers, each with its own io_uring runtime (or the
//!   plain-syscall fallback), fed by lock-free queues;
//! * [`vfs`]: the filesystem API the frontend calls (`Engine`, `Worker`), mapping every
//!   failure to one errno.
//!
//! Data flows one way: frontend → worker queue → `Worker` → buffers/cache → Swift
//! (blocks, via `ringfs_swift::ObjectStore`) and etcd (metadata, via `meta::kv::KvStore`).

pub mod cache;
pub mod config;
pub mod data;
pub mod io;
pub mod layout;
pub mod meta;
pub mod setup;
pub mod vfs;
pub mod worker;
