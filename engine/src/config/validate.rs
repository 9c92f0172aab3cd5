//! Semantic checks: everything serde's type checking cannot express.
//!
//! The rules reject values that cannot work (a zero timeout, a transaction
//! bigger than etcd accepts, a certificate without its key) at `config
//! check` / mount time, instead of as an obscure failure on first use.

use std::path::Path;

use super::{ByteSize, Config, ConfigError, Duration, IoEngine, SwiftAuth};

/// etcd's default `--max-txn-ops`.
pub const ETCD_MAX_TXN_OPS: u32 = 128;
/// etcd's default `--max-request-bytes` (1.5MiB).
pub const ETCD_MAX_REQUEST_BYTES: ByteSize = ByteSize::kib(1536);
/// Longest group-commit wait we accept: every metadata operation may wait
/// this long, so more would be indistinguishable from a hang.
pub const MAX_BATCH_WINDOW: Duration = Duration::from_secs(1);
/// Swift's container name limit is 256 bytes; keep room for volume names.
pub const MAX_CONTAINER_PREFIX: usize = 192;
/// FUSE `max_write` bounds (the kernel caps writes at 1MiB by default).
pub const MIN_FUSE_MAX_WRITE: ByteSize = ByteSize::kib(4);
/// See [`MIN_FUSE_MAX_WRITE`].
pub const MAX_FUSE_MAX_WRITE: ByteSize = ByteSize::mib(1);
/// Largest file offset POSIX `off_t` can express.
pub const MAX_FILE_SIZE_LIMIT: ByteSize = ByteSize(i64::MAX as u64);
/// Sanity bound on `engine.workers`.
pub const MAX_WORKERS: usize = 4096;

struct Checker<'a> {
    cfg: &'a Config,
}

type Check = Result<(), ConfigError>;

impl Checker<'_> {
    fn fail(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            origin: self.cfg.origin.of(key),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn ensure(&self, ok: bool, key: &str, message: impl FnOnce() -> String) -> Check {
        if ok {
            Ok(())
        } else {
            Err(self.fail(key, message()))
        }
    }

    fn positive(&self, key: &str, d: Duration) -> Check {
        self.ensure(!d.is_zero(), key, || "must be greater than 0".to_owned())
    }

    fn range<T: PartialOrd + std::fmt::Display>(&self, key: &str, v: T, lo: T, hi: T) -> Check {
        self.ensure(v >= lo && v <= hi, key, || {
            format!("must be between {lo} and {hi}, got {v}")
        })
    }

    fn at_least_one(&self, key: &str, v: usize) -> Check {
        self.ensure(v >= 1, key, || "must be at least 1".to_owned())
    }

    fn absolute(&self, key: &str, p: &Path) -> Check {
        self.ensure(p.is_absolute(), key, || {
            format!(
                "must be an absolute path (a background mount does not keep the working \
                 directory), got {:?}",
                p.display().to_string()
            )
        })
    }

    fn existing_file(&self, key: &str, p: &Path) -> Check {
        self.absolute(key, p)?;
        match std::fs::metadata(p) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(self.fail(key, format!("{} is not a regular file", p.display()))),
            Err(e) => Err(self.fail(key, format!("cannot access {}: {e}", p.display()))),
        }
    }

    fn http_url(&self, key: &str, url: &str) -> Check {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
        self.ensure(host.is_some_and(|h| !h.is_empty()), key, || {
            format!("expected an http:// or https:// URL, got {url:?}")
        })
    }

    fn etcd(&self) -> Check {
        let e = &self.cfg.etcd;
        self.ensure(!e.endpoints.is_empty(), "etcd.endpoints", || {
            "at least one endpoint is required, e.g. endpoints = [\"http://127.0.0.1:2379\"]"
                .to_owned()
        })?;
        for (i, ep) in e.endpoints.iter().enumerate() {
            let key = format!("etcd.endpoints[{i}]");
            check_endpoint(ep).map_err(|m| self.fail(&key, m))?;
        }
        self.ensure(!e.prefix.is_empty(), "etcd.prefix", || {
            "must not be empty".to_owned()
        })?;
        self.ensure(!e.prefix.contains('\0'), "etcd.prefix", || {
            "must not contain NUL".to_owned()
        })?;
        self.ensure(
            !e.password.is_set() || !e.username.is_empty(),
            "etcd.password",
            || "is set but etcd.username is empty".to_owned(),
        )?;
        if let Some(p) = &e.ca_file {
            self.existing_file("etcd.ca_file", p)?;
        }
        match (&e.cert_file, &e.key_file) {
            (Some(_), None) => {
                return Err(self.fail(
                    "etcd.cert_file",
                    "is set but etcd.key_file is not; they go together",
                ))
            }
            (None, Some(_)) => {
                return Err(self.fail(
                    "etcd.key_file",
                    "is set but etcd.cert_file is not; they go together",
                ))
            }
            (Some(c), Some(k)) => {
                self.existing_file("etcd.cert_file", c)?;
                self.existing_file("etcd.key_file", k)?;
            }
            (None, None) => {}
        }
        self.positive("etcd.dial_timeout", e.dial_timeout)?;
        self.positive("etcd.request_timeout", e.request_timeout)?;
        self.ensure(
            e.batch_window <= MAX_BATCH_WINDOW,
            "etcd.batch_window",
            || format!("must be at most {MAX_BATCH_WINDOW}, got {}", e.batch_window),
        )?;
        self.range("etcd.batch_max_ops", e.batch_max_ops, 1, ETCD_MAX_TXN_OPS)?;
        self.range(
            "etcd.batch_max_bytes",
            e.batch_max_bytes,
            ByteSize::kib(1),
            ETCD_MAX_REQUEST_BYTES,
        )?;
        self.positive("etcd.op_timeout", e.op_timeout)?;
        self.ensure(e.op_timeout >= e.request_timeout, "etcd.op_timeout", || {
            format!(
                "must be at least etcd.request_timeout ({}), got {}",
                e.request_timeout, e.op_timeout
            )
        })
    }

    fn swift(&self) -> Check {
        let s = &self.cfg.swift;
        self.ensure(!s.auth_url.is_empty(), "swift.auth_url", || {
            "is required".to_owned()
        })?;
        self.http_url("swift.auth_url", &s.auth_url)?;
        let app_cred = s.uses_application_credential();
        match s.auth {
            SwiftAuth::TempAuth => {
                self.ensure(
                    !app_cred && !s.application_credential_secret.is_set(),
                    "swift.application_credential_id",
                    || "application credentials need swift.auth = \"keystone\"".to_owned(),
                )?;
                self.ensure(!s.user.is_empty(), "swift.user", || {
                    "is required".to_owned()
                })?;
            }
            SwiftAuth::Keystone if app_cred => {
                self.ensure(
                    s.application_credential_secret.is_set(),
                    "swift.application_credential_secret",
                    || "is required when swift.application_credential_id is set".to_owned(),
                )?;
            }
            SwiftAuth::Keystone => {
                self.ensure(
                    !s.application_credential_secret.is_set(),
                    "swift.application_credential_id",
                    || "is required when swift.application_credential_secret is set".to_owned(),
                )?;
                self.ensure(!s.user.is_empty(), "swift.user", || {
                    "is required (or set swift.application_credential_id)".to_owned()
                })?;
                self.ensure(!s.project.is_empty(), "swift.project", || {
                    "is required with keystone auth (or set swift.application_credential_id)"
                        .to_owned()
                })?;
                self.ensure(!s.user_domain.is_empty(), "swift.user_domain", || {
                    "must not be empty with keystone auth".to_owned()
                })?;
                self.ensure(!s.project_domain.is_empty(), "swift.project_domain", || {
                    "must not be empty with keystone auth".to_owned()
                })?;
            }
        }
        if !s.storage_url.is_empty() {
            self.http_url("swift.storage_url", &s.storage_url)?;
        }
        self.ensure(
            !s.container_prefix.contains('/'),
            "swift.container_prefix",
            || "must not contain '/' (Swift container names cannot)".to_owned(),
        )?;
        self.ensure(
            s.container_prefix.len() <= MAX_CONTAINER_PREFIX,
            "swift.container_prefix",
            || {
                format!(
                    "must be at most {MAX_CONTAINER_PREFIX} bytes (Swift container names are \
                     limited to 256), got {}",
                    s.container_prefix.len()
                )
            },
        )?;
        self.at_least_one("swift.max_connections", s.max_connections)?;
        self.at_least_one("swift.max_in_flight", s.max_in_flight)?;
        self.ensure(
            s.max_in_flight <= s.max_connections,
            "swift.max_in_flight",
            || {
                format!(
                    "must not exceed swift.max_connections ({}), got {}",
                    s.max_connections, s.max_in_flight
                )
            },
        )?;
        self.positive("swift.connect_timeout", s.connect_timeout)?;
        self.positive("swift.request_timeout", s.request_timeout)
    }

    fn cache(&self) -> Check {
        let c = &self.cfg.cache;
        self.ensure(!c.dir.as_os_str().is_empty(), "cache.dir", || {
            "must not be empty".to_owned()
        })?;
        self.absolute("cache.dir", &c.dir)?;
        self.ensure(
            !c.writeback || c.staging_limit.bytes() > 0,
            "cache.staging_limit",
            || "must be greater than 0 when cache.writeback is true".to_owned(),
        )?;
        self.at_least_one("cache.upload_concurrency", c.upload_concurrency)?;
        self.positive("cache.upload_deadline", c.upload_deadline)?;
        self.ensure(
            c.upload_delay.get() < c.upload_deadline.get(),
            "cache.upload_delay",
            || {
                format!(
                    "must be shorter than cache.upload_deadline ({})",
                    c.upload_deadline
                )
            },
        )?;
        self.positive("cache.read_wait_timeout", c.read_wait_timeout)
    }

    fn engine(&self) -> Check {
        let e = &self.cfg.engine;
        self.ensure(e.workers <= MAX_WORKERS, "engine.workers", || {
            format!(
                "must be at most {MAX_WORKERS} (0 means one per core), got {}",
                e.workers
            )
        })?;
        self.ensure(
            e.io_engine != IoEngine::Uring || cfg!(target_os = "linux"),
            "engine.io_engine",
            || "\"uring\" is only available on Linux".to_owned(),
        )?;
        self.ensure(e.write_buffer.bytes() > 0, "engine.write_buffer", || {
            "must be greater than 0".to_owned()
        })?;
        for (key, v) in [
            ("engine.write_buffer", e.write_buffer),
            ("engine.readahead", e.readahead),
            ("engine.prefetch", e.prefetch),
        ] {
            self.ensure(v <= e.memory_limit, key, || {
                format!(
                    "must not exceed engine.memory_limit ({}), got {v}",
                    e.memory_limit
                )
            })?;
        }
        self.range(
            "engine.max_file_size",
            e.max_file_size,
            ByteSize(1),
            MAX_FILE_SIZE_LIMIT,
        )
    }

    fn fuse(&self) -> Check {
        let f = &self.cfg.fuse;
        self.range(
            "fuse.max_write",
            f.max_write,
            MIN_FUSE_MAX_WRITE,
            MAX_FUSE_MAX_WRITE,
        )?;
        self.ensure(
            f.max_write.bytes().is_multiple_of(4096),
            "fuse.max_write",
            || {
                format!(
                    "must be a multiple of 4KiB (the page size), got {}",
                    f.max_write
                )
            },
        )?;
        self.ensure(
            f.read_ahead.bytes() <= u64::from(u32::MAX),
            "fuse.read_ahead",
            || format!("must be below 4GiB, got {}", f.read_ahead),
        )?;
        self.ensure(!f.fsname.is_empty(), "fuse.fsname", || {
            "must not be empty".to_owned()
        })?;
        self.ensure(
            !f.fsname.contains([',', '\0']) && !f.fsname.chars().any(char::is_whitespace),
            "fuse.fsname",
            || {
                format!(
                    "must not contain commas, whitespace or NUL, got {:?}",
                    f.fsname
                )
            },
        )
    }
}

/// Accepts `http://host:port` and `https://host:port` (host may be a
/// bracketed IPv6 address; a trailing `/` is tolerated). The port is
/// required: etcd's is 2379, not the scheme's default, so omitting it is
/// almost always a mistake.
fn check_endpoint(ep: &str) -> Result<(), String> {
    let bad =
        |why: &str| format!("{why}: expected http://host:port or https://host:port, got {ep:?}");
    let rest = ep
        .strip_prefix("http://")
        .or_else(|| ep.strip_prefix("https://"))
        .ok_or_else(|| bad("unsupported scheme"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) || authority.chars().any(char::is_whitespace) {
        return Err(bad("unexpected path, user or blank"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad("IPv6 addresses must be in brackets")),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let port = port.ok_or_else(|| bad("missing port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(bad("invalid port")),
    }
}

pub(crate) fn validate(cfg: &Config) -> Check {
    let c = Checker { cfg };
    c.etcd()?;
    c.swift()?;
    c.cache()?;
    c.engine()?;
    c.fuse()
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints() {
        for ok in [
            "http://127.0.0.1:2379",
            "https://etcd-0.example.com:2379",
            "http://[::1]:2379",
            "http://localhost:2379/",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("127.0.0.1:2379", "unsupported scheme"),
            ("ftp://host:21", "unsupported scheme"),
            ("http://host", "missing port"),
            ("http://:2379", "missing host"),
            ("http://host:0", "invalid port"),
            ("http://host:65536", "invalid port"),
            ("http://host:port", "invalid port"),
            ("http://host:2379/v3", "unexpected path"),
            ("http://user@host:2379", "unexpected path"),
            ("http://::1:2379", "IPv6"),
            ("http://[::1:2379", "unclosed"),
            ("http://[::1]", "missing port"),
            ("", "unsupported scheme"),
        ] {
            let err = check_endpoint(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
