//! The object-store edge of ringfs: an [`ObjectStore`] trait the engine uses for blocks,
//! its real implementation on OpenStack Swift over hyper ([`SwiftStore`] on
//! [`SwiftClient`]), an in-memory implementation for unit tests of pure logic
//! ([`MemoryStore`]), and a fault-injecting wrapper for retry/failure tests
//! ([`FaultyStore`]).
//!
//! Module map:
//! * [`client`]: `SwiftClient`: keep-alive pool, in-flight semaphore, the retry loop, and
//!   the object operations with their checksums;
//! * [`container`]: container operations, listings, bulk delete;
//! * [`large`]: static large objects (segments + manifest);
//! * [`auth`]: v1 and Keystone v3 auth, the token cache shared by client forks;
//! * [`retry`]: backoff with full jitter and `Retry-After`;
//! * [`body`]: request bodies and the progress-based request timeout;
//! * [`encode`]: percent-encoding of names;
//! * [`error`]: `SwiftError`, the one error type;
//! * [`store`], [`memory`], [`faulty`]: the `ObjectStore` trait and its implementations;
//! * [`types`]: plain data in and out of the client.
//!
//! Integration tests against a real Swift (and Keystone) live in `tests/`.

pub mod auth;
pub mod body;
pub mod client;
pub mod container;
pub mod encode;
pub mod error;
pub mod faulty;
pub mod large;
pub mod memory;
pub mod retry;
pub mod store;
pub mod types;

pub use auth::AuthConfig;
pub use body::ByteStream;
pub use client::{ObjectStream, SwiftClient, SwiftConfig, BULK_DELETE_MAX, LISTING_MAX};
pub use error::{BoxError, Result, SwiftError};
pub use faulty::{FaultOp, FaultyStore};
pub use memory::MemoryStore;
pub use store::{ObjectStore, SwiftStore};
pub use types::{
    BulkDeleteReport, ContainerMeta, ListEntry, ListOptions, ListPage, ObjectMeta, PutInfo,
    SloSegment,
};
