//! The `ringfs.toml` configuration: one file that tunes a mount.
//!
//! Everything a mount needs that is *not* a property of the volume itself
//! lives here: where etcd and Swift are, credentials, cache placement,
//! worker and FUSE tuning. Volume properties (block size, chunk size) are
//! chosen once by `ringfs format` and stored in the volume record, so two
//! clients with different config files can never disagree about the data
//! layout.
//!
//! Loading is `file -> RINGFS_<SECTION>_<KEY> environment overrides ->
//! validate`, and every failure is a single [`ConfigError`] whose message
//! names where the bad value came from (file or environment variable), the
//! key path and the reason, e.g.
//! `ringfs.toml: swift.interface: expected one of public, internal, admin, got "private"`.
//! No input, however malformed, panics.
//!
//! The user-facing reference is `docs/CONFIGURATION.md`; keep it in sync
//! (a unit test checks that it mentions every key).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod env;
mod units;
mod validate;

pub use env::NON_CONFIG_ENV_VARS;
pub use units::{
    parse_duration, parse_size, ByteSize, Duration, Interface, IoEngine, Secret, SwiftAuth,
    REDACTED,
};

/// A configuration that could not be loaded, with a one-line message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("{}: cannot read config file: {error}", path.display())]
    Read {
        /// The file we tried to read.
        path: PathBuf,
        /// Why it failed (kept out of `source()` so the message is not
        /// repeated when printed as an error chain).
        error: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("{origin}:{line}:{column}: {message}")]
    Syntax {
        /// File name (or other origin label) of the text.
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A key is unknown, has the wrong type or an impossible value.
    #[error("{origin}: {key}: {message}")]
    Invalid {
        /// Where the value came from: the file name, or
        /// `environment variable RINGFS_...` for an override.
        origin: String,
        /// Dotted key path, e.g. `swift.interface` or `etcd.endpoints[1]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key path the error is about, if it is about a key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Where the values of a [`Config`] came from; used to attribute validation
/// errors and shown by `ringfs config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The config file name as given by the user (or a label such as
    /// `"<default>"` for a programmatic config).
    pub file: String,
    /// Keys overridden from the environment: key path -> variable name.
    pub env: BTreeMap<String, String>,
}

impl Default for Origin {
    fn default() -> Self {
        Origin {
            file: "<default>".to_owned(),
            env: BTreeMap::new(),
        }
    }
}

impl Origin {
    /// The origin label for an error about `key`.
    pub fn of(&self, key: &str) -> String {
        // `etcd.endpoints[2]` comes from wherever `etcd.endpoints` came from.
        let base = key.split('[').next().unwrap_or(key);
        match self.env.get(base) {
            Some(var) => format!("environment variable {var}"),
            None => self.file.clone(),
        }
    }
}

/// The whole configuration. Every section is optional in the file; see the
/// section types for defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Metadata store.
    #[serde(deserialize_with = "units::table")]
    pub etcd: EtcdConfig,
    /// Object store.
    #[serde(deserialize_with = "units::table")]
    pub swift: SwiftConfig,
    /// Local block cache and write staging.
    #[serde(deserialize_with = "units::table")]
    pub cache: CacheConfig,
    /// Workers, memory and read/write behaviour.
    #[serde(deserialize_with = "units::table")]
    pub engine: EngineConfig,
    /// Kernel-facing FUSE options.
    #[serde(deserialize_with = "units::table")]
    pub fuse: FuseConfig,
    /// Where the values came from (not part of the file format).
    #[serde(skip)]
    pub origin: Origin,
}

/// Two configs are equal when their settings are; where they came from does
/// not matter.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        self.etcd == other.etcd
            && self.swift == other.swift
            && self.cache == other.cache
            && self.engine == other.engine
            && self.fuse == other.fuse
    }
}

/// `[etcd]`: the metadata store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdConfig {
    /// Client URLs (`http://host:port` or `https://host:port`). Required.
    pub endpoints: Vec<String>,
    /// Key prefix under which all volumes live, so one etcd cluster can
    /// host ringfs next to other users.
    pub prefix: String,
    /// etcd user for authentication; empty disables auth.
    pub username: String,
    /// Password of `username`.
    pub password: Secret,
    /// CA bundle to verify the etcd servers (https endpoints).
    #[serde(with = "units::opt_path")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS; needs `key_file`.
    #[serde(with = "units::opt_path")]
    pub cert_file: Option<PathBuf>,
    /// Private key of `cert_file`.
    #[serde(with = "units::opt_path")]
    pub key_file: Option<PathBuf>,
    /// How long to wait for a connection to an endpoint.
    pub dial_timeout: Duration,
    /// Deadline of a single etcd RPC.
    pub request_timeout: Duration,
    /// Extra time a group commit waits to gather more operations; 0 sends
    /// as soon as the previous batch finished (batching still happens
    /// naturally under load).
    pub batch_window: Duration,
    /// Maximum operations in one transaction (etcd's `--max-txn-ops`
    /// defaults to 128).
    pub batch_max_ops: u32,
    /// Maximum request size of one transaction (etcd's
    /// `--max-request-bytes` defaults to 1.5MiB).
    pub batch_max_bytes: ByteSize,
    /// Optimistic-concurrency retries per metadata operation before the
    /// operation fails with EIO.
    pub max_retries: u32,
    /// Total time a metadata operation may take, across retries and etcd
    /// outages, before the syscall fails with EIO.
    pub op_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: Vec::new(),
            prefix: "ringfs".to_owned(),
            username: String::new(),
            password: Secret::default(),
            ca_file: None,
            cert_file: None,
            key_file: None,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            batch_window: Duration::ZERO,
            batch_max_ops: 128,
            batch_max_bytes: ByteSize::mib(1),
            max_retries: 20,
            op_timeout: Duration::from_secs(30),
        }
    }
}

/// `[swift]`: the object store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwiftConfig {
    /// Authentication protocol.
    pub auth: SwiftAuth,
    /// TempAuth URL (`.../auth/v1.0`) or Keystone URL (`.../v3`). Required.
    pub auth_url: String,
    /// User name. Required unless Keystone application credentials are used.
    pub user: String,
    /// TempAuth key or Keystone password.
    pub key: Secret,
    /// Keystone project (tenant) name to scope the token to.
    pub project: String,
    /// Keystone domain of `project`.
    pub project_domain: String,
    /// Keystone domain of `user`.
    pub user_domain: String,
    /// Keystone region of the object-store endpoint; empty takes the first.
    pub region: String,
    /// Keystone catalog interface of the object-store endpoint.
    pub interface: Interface,
    /// Keystone application credential ID; when set, it replaces
    /// user/key/project.
    pub application_credential_id: String,
    /// Secret of the application credential.
    pub application_credential_secret: Secret,
    /// Storage URL to use instead of the one returned by auth (e.g. to go
    /// through a closer proxy); empty uses the auth response.
    pub storage_url: String,
    /// The volume's container is `<container_prefix><volume>`.
    pub container_prefix: String,
    /// Upper bound on open (keep-alive) HTTP connections.
    pub max_connections: usize,
    /// Upper bound on concurrent requests.
    pub max_in_flight: usize,
    /// Retries of a failed idempotent request (with backoff).
    pub retries: u32,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Deadline of a single request, including the body transfer.
    pub request_timeout: Duration,
    /// Verify the ETag (MD5) of uploads and downloads.
    pub verify_md5: bool,
}

impl Default for SwiftConfig {
    fn default() -> Self {
        SwiftConfig {
            auth: SwiftAuth::TempAuth,
            auth_url: String::new(),
            user: String::new(),
            key: Secret::default(),
            project: String::new(),
            project_domain: "Default".to_owned(),
            user_domain: "Default".to_owned(),
            region: String::new(),
            interface: Interface::Public,
            application_credential_id: String::new(),
            application_credential_secret: Secret::default(),
            storage_url: String::new(),
            container_prefix: "ringfs-".to_owned(),
            max_connections: 64,
            max_in_flight: 32,
            retries: 8,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            verify_md5: true,
        }
    }
}

impl SwiftConfig {
    /// Whether Keystone application-credential auth is configured.
    pub fn uses_application_credential(&self) -> bool {
        !self.application_credential_id.is_empty()
    }

    /// The Swift container holding `volume`'s blocks.
    pub fn container_for(&self, volume: &str) -> String {
        format!("{}{}", self.container_prefix, volume)
    }
}

/// `[cache]`: local block cache and write-back staging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Directory for cached and staged blocks (absolute path; created at
    /// mount).
    #[serde(with = "units::lossy_path")]
    pub dir: PathBuf,
    /// Space used by cached (already uploaded) blocks; least recently used
    /// blocks are evicted beyond it. 0 keeps no read cache.
    pub size: ByteSize,
    /// Free space always left on the cache file system; the cache shrinks
    /// below `size` to respect it.
    pub min_free: ByteSize,
    /// false: fsync/close wait until blocks are in Swift. true: they return
    /// once blocks are staged and fsync'd locally, uploads continue in the
    /// background (a crash of this machine loses nothing; losing its disk
    /// loses un-uploaded writes).
    pub writeback: bool,
    /// Staged-but-not-uploaded bytes; writers block beyond it.
    pub staging_limit: ByteSize,
    /// Write and read staged and cached block files with O_DIRECT (bypassing the page
    /// cache: no second copy of every block in memory, less CPU per byte); turned off by
    /// itself on a file system that refuses it.
    pub o_direct: bool,
    /// Concurrent background block uploads.
    pub upload_concurrency: usize,
    /// A staged block older than this is uploaded before newer ones, and
    /// logged as late.
    pub upload_deadline: Duration,
    /// A staged block waits this long before its upload starts (unless staging is half
    /// full or the volume is being unmounted); blocks of files deleted within it never
    /// reach Swift. 0 uploads at once.
    pub upload_delay: Duration,
    /// How long a read waits for a block another client has committed but
    /// not uploaded yet before failing with EIO.
    pub read_wait_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            dir: PathBuf::from("/var/cache/ringfs"),
            size: ByteSize::gib(10),
            min_free: ByteSize::gib(1),
            writeback: false,
            staging_limit: ByteSize::gib(4),
            o_direct: true,
            upload_concurrency: 16,
            upload_deadline: Duration::from_mins(5),
            upload_delay: Duration::ZERO,
            read_wait_timeout: Duration::from_secs(60),
        }
    }
}

/// `[engine]`: workers, memory and read/write behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Worker threads; 0 means one per CPU core.
    pub workers: usize,
    /// Local disk I/O method.
    pub io_engine: IoEngine,
    /// Budget for in-memory buffers (write buffers, readahead, blocks in
    /// flight); new work waits when it is exhausted.
    pub memory_limit: ByteSize,
    /// Maximum sequential readahead window per open file.
    pub readahead: ByteSize,
    /// Bytes fetched beyond a random read; 0 disables.
    pub prefetch: ByteSize,
    /// Bytes buffered per open file before they are cut into a slice and
    /// handed to the uploader.
    pub write_buffer: ByteSize,
    /// Largest file size; writes or truncates beyond it fail with EFBIG.
    pub max_file_size: ByteSize,
    /// How long the objects of slices that a compaction replaced stay in Swift
    /// before they are deleted: a client may still read through a chunk list it
    /// read before the compaction (and reads it again if an object is gone).
    pub compaction_grace: Duration,
}

/// Default [`EngineConfig::max_file_size`]: 64TiB. Far beyond any single
/// file we expect, yet it keeps a runaway `truncate`/`pwrite` far from the
/// 2^63 `off_t` limit and bounds the number of chunks one file can have.
pub const DEFAULT_MAX_FILE_SIZE: ByteSize = ByteSize::tib(64);

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 0,
            io_engine: IoEngine::Auto,
            memory_limit: ByteSize::mib(512),
            readahead: ByteSize::mib(32),
            prefetch: ByteSize::mib(1),
            write_buffer: ByteSize::mib(64),
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            compaction_grace: Duration::from_secs(3600),
        }
    }
}

impl EngineConfig {
    /// The number of workers to start (`workers`, or the number of cores
    /// when it is 0).
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// `[fuse]`: options passed to the kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuseConfig {
    /// Let users other than the mounting one access the file system
    /// (needs `user_allow_other` in /etc/fuse.conf for non-root).
    pub allow_other: bool,
    /// Let the kernel enforce permission bits.
    pub default_permissions: bool,
    /// How long the kernel caches file attributes.
    pub attr_ttl: Duration,
    /// How long the kernel caches name lookups.
    pub entry_ttl: Duration,
    /// How long the kernel caches "no such file"; 0 so files created by
    /// other clients show up immediately.
    pub negative_ttl: Duration,
    /// Kernel write-back page cache (merges small writes).
    pub writeback_cache: bool,
    /// Largest single write request from the kernel.
    pub max_write: ByteSize,
    /// Kernel readahead per file.
    pub read_ahead: ByteSize,
    /// File system name shown in `mount` / `df`.
    pub fsname: String,
    /// Extended attributes. `false` answers every xattr request with ENOSYS, which
    /// the kernel remembers for the mount: `ls -l` (`security.selinux`, every
    /// entry) and writes (`security.capability`) then cost no round trip. JuiceFS's
    /// default (`--enable-xattr` is off).
    pub xattr: bool,
}

impl Default for FuseConfig {
    fn default() -> Self {
        FuseConfig {
            allow_other: false,
            default_permissions: true,
            attr_ttl: Duration::from_secs(1),
            entry_ttl: Duration::from_secs(1),
            negative_ttl: Duration::ZERO,
            writeback_cache: false,
            max_write: ByteSize::mib(1),
            read_ahead: ByteSize::mib(1),
            fsname: "ringfs".to_owned(),
            xattr: true,
        }
    }
}

impl Config {
    /// Reads `path`, applies `RINGFS_*` environment overrides from the
    /// process environment, and validates. This is what `mount` uses.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars_os())
    }

    /// Like [`Config::load`] with an explicit environment, so tests need not
    /// touch the (process-global) real one.
    pub fn load_with_env<I, K, V>(path: &Path, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let cfg = Self::load_unvalidated(path, vars)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses `path` and applies environment overrides, without
    /// the semantic checks of [`Config::validate`]. `config show` uses this
    /// to display an invalid config before reporting what is wrong.
    pub fn load_unvalidated<I, K, V>(path: &Path, vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        let mut cfg = Self::parse_toml(&text, &path.display().to_string())?;
        cfg.apply_env(vars)?;
        Ok(cfg)
    }

    /// Parses and validates TOML text (no environment overrides). `origin`
    /// labels errors, normally the file name.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg = Self::parse_toml(text, origin)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text: syntax, unknown keys and value types, but no
    /// semantic validation and no environment overrides.
    pub fn parse_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let de = toml::de::Deserializer::parse(text).map_err(|e| syntax_error(text, origin, &e))?;
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = humanize_serde_message(e.inner().message());
            if key.is_empty() || key == "?" {
                // Not attributable to a key (e.g. a top-level type mismatch):
                // report the position instead.
                syntax_error(text, origin, e.inner())
            } else {
                ConfigError::Invalid {
                    origin: origin.to_owned(),
                    key,
                    message,
                }
            }
        })?;
        cfg.origin = Origin {
            file: origin.to_owned(),
            env: BTreeMap::new(),
        };
        Ok(cfg)
    }

    /// Applies `RINGFS_<SECTION>_<KEY>` overrides from `vars` (see
    /// [`NON_CONFIG_ENV_VARS`] for the variables that are not overrides).
    /// Values are parsed like the file's; errors name the variable.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        env::apply(self, vars)
    }

    /// Checks the semantic rules (ranges, required keys, combinations,
    /// TLS files exist). Returns the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// The effective configuration as TOML: every key with its value,
    /// secrets shown as `"***"` when set (and `""` when not), preceded by a
    /// comment naming the file and the environment overrides. The output
    /// parses back to the same settings (except the secrets).
    pub fn to_toml_redacted(&self) -> String {
        let mut out = format!(
            "# ringfs effective configuration\n# file: {}\n",
            self.origin.file
        );
        for (key, var) in &self.origin.env {
            out.push_str(&format!("# {key}: from environment variable {var}\n"));
        }
        out.push_str("# secrets are shown as \"***\" when set\n\n");
        match toml::to_string(self) {
            Ok(body) => out.push_str(&body),
            // Cannot happen with the types above (no maps with non-string
            // keys, paths rendered lossily); never panic in a diagnostic.
            Err(e) => out.push_str(&format!("# cannot render configuration: {e}\n")),
        }
        out
    }

    /// Every key as `section.key`, in file order.
    pub fn keys() -> impl Iterator<Item = String> {
        env::SECTIONS
            .iter()
            .flat_map(|s| s.keys.iter().map(move |k| format!("{}.{}", s.name, k)))
    }
}

fn syntax_error(text: &str, origin: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = e
        .span()
        .map(|span| line_col(text, span.start))
        .unwrap_or((1, 1));
    ConfigError::Syntax {
        origin: origin.to_owned(),
        line,
        column,
        message: e.message().trim().replace('\n', "; "),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Rewrites serde's Rust-flavoured wording into config-file wording.
fn humanize_serde_message(msg: &str) -> String {
    let mut m = msg.trim().replace('\n', "; ");
    for (from, to) in [
        ("unknown field", "unknown key"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected a list"),
    ] {
        m = m.replace(from, to);
    }
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a table");
    }
    m
}

impl fmt::Display for Config {
    /// The redacted TOML, so accidentally logging a config is safe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_toml_redacted())
    }
}

#[cfg(test)]
mod tests;
