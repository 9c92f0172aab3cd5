//! Metadata on etcd: the directory tree, attributes, chunk maps, xattrs, sessions.
//!
//! * [`keys`]: the key schema (docs/DESIGN.md has the table).
//! * [`attr`]: inode and entry records.
//! * [`kv`]: the store edge (`KvStore`), with [`etcd`] (real), [`memkv`] (unit tests of
//!   pure logic) and [`faulty`] (failure injection).
//! * [`txn`]: operations as pure functions over a `View`, planned into one transaction.
//! * [`runner`]: optimistic retries, key cache and group commit.
//! * [`ops`]: the POSIX operations, each one transaction.
//! * [`volume`]: the volume record written by `format`.

pub mod attr;
pub mod etcd;
pub mod faulty;
pub mod keys;
pub mod kv;
pub mod memkv;
pub mod ops;
pub mod runner;
pub mod txn;
pub mod volume;

pub use attr::{Attr, Dentry, FileKind, Timestamp};
pub use keys::{Ino, Keys, ROOT_INO};
pub use ops::{Meta, SetAttr, TimeSet};
pub use volume::VolumeRecord;

/// Errors of metadata operations. Each maps to one errno (see `errno`).
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("invalid name")]
    InvalidName,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("too many links")]
    TooManyLinks,
    #[error("no such attribute")]
    NoData,
    #[error("attribute value does not fit the buffer")]
    Range,
    #[error("attribute too large")]
    TooBig,
    #[error("no space left (metadata store)")]
    NoSpace,
    #[error("etcd is out of space (alarm NOSPACE): compact and defragment etcd, or raise its --quota-backend-bytes, then disarm the alarm (etcdctl alarm disarm)")]
    EtcdQuota,
    #[error("file too large")]
    FileTooBig,
    #[error("operation not permitted")]
    Perm,
    #[error("permission denied")]
    Access,
    #[error("operation not supported")]
    NotSupported,
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    #[error("busy: {0}")]
    Busy(String),
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    #[error("volume: {0}")]
    Volume(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl MetaError {
    /// The errno a FUSE request gets for this error.
    pub fn errno(&self) -> i32 {
        use MetaError::*;
        match self {
            NotFound => libc::ENOENT,
            Exists => libc::EEXIST,
            NotDir => libc::ENOTDIR,
            IsDir => libc::EISDIR,
            NotEmpty => libc::ENOTEMPTY,
            Invalid(_) | InvalidName => libc::EINVAL,
            NameTooLong => libc::ENAMETOOLONG,
            TooManyLinks => libc::EMLINK,
            NoData => libc::ENODATA,
            Range => libc::ERANGE,
            TooBig => libc::E2BIG,
            NoSpace | EtcdQuota => libc::ENOSPC,
            FileTooBig => libc::EFBIG,
            Perm => libc::EPERM,
            Access => libc::EACCES,
            NotSupported => libc::EOPNOTSUPP,
            Unavailable(_) | Corrupt(_) | Internal(_) | Volume(_) => libc::EIO,
            Busy(_) => libc::EIO,
        }
    }
}
