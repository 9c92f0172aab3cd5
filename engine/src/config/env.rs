//! `RINGFS_<SECTION>_<KEY>` environment overrides.
//!
//! Overrides exist so secrets need not be written into the file
//! (`RINGFS_SWIFT_KEY`, `RINGFS_ETCD_PASSWORD`) and so one file can serve
//! several machines (`RINGFS_CACHE_DIR`). A variable that starts like a
//! section (`RINGFS_SWIFT_`) but names no key is an error rather than being
//! ignored: a typo in a credential override would otherwise silently fall
//! back to the file's value. Variables that are not config overrides are
//! listed in [`NON_CONFIG_ENV_VARS`].

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;

use super::units::opt_path;
use super::{ByteSize, Config, ConfigError, Duration, Interface, IoEngine, Secret, SwiftAuth};

/// `RINGFS_*` variables that are not config overrides and are never
/// reported as unknown keys, even when they look like one.
pub const NON_CONFIG_ENV_VARS: &[&str] = &[
    // Path of the config file, read by the CLI (`-c`).
    "RINGFS_CONFIG",
    // Log filter (tracing EnvFilter syntax), read by the CLI.
    "RINGFS_LOG",
    // Config file used by the integration test harness.
    "RINGFS_TEST_CONF",
    // Keystone token lifetime of the test services (scripts/services.sh).
    "RINGFS_KEYSTONE_TOKEN_TTL",
    // Auth flavour of the test services, exported by scripts/services.sh.
    "RINGFS_AUTH",
    // Forces psync cache I/O even where io_uring works (engine workers).
    "RINGFS_DISABLE_URING",
];

/// Parsing of one override value, with the same rules as the file.
pub(crate) trait EnvValue: Sized {
    fn from_env(raw: &str) -> Result<Self, String>;
}

impl EnvValue for String {
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
}

impl EnvValue for Secret {
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(Secret::new(raw))
    }
}

impl EnvValue for PathBuf {
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(PathBuf::from(raw))
    }
}

impl EnvValue for Option<PathBuf> {
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(opt_path::from_text(raw))
    }
}

impl EnvValue for bool {
    fn from_env(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("expected true or false, got {raw:?}")),
        }
    }
}

macro_rules! env_int {
    ($($t:ty),+) => {$(
        impl EnvValue for $t {
            fn from_env(raw: &str) -> Result<Self, String> {
                let t = raw.trim();
                t.parse().map_err(|_| {
                    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                        format!("{t} is too large")
                    } else {
                        format!("expected a non-negative integer, got {raw:?}")
                    }
                })
            }
        }
    )+};
}
env_int!(u32, usize);

macro_rules! env_from_str {
    ($($t:ty),+) => {$(
        impl EnvValue for $t {
            fn from_env(raw: &str) -> Result<Self, String> {
                raw.parse()
            }
        }
    )+};
}
env_from_str!(ByteSize, Duration, SwiftAuth, Interface, IoEngine);

impl EnvValue for Vec<String> {
    /// Comma-separated; blanks around items and empty items are dropped.
    fn from_env(raw: &str) -> Result<Self, String> {
        Ok(raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

type Setter = fn(&mut Config, &str, &str) -> Option<Result<(), String>>;

/// One `[section]`: its name, its keys in file order, and a setter that
/// parses an override for one of its keys (`None` for an unknown key).
pub(crate) struct Section {
    pub name: &'static str,
    pub keys: &'static [&'static str],
    set: Setter,
}

/// Lists a section's keys once and derives both the key list and the
/// setter from it; a unit test checks the list against the struct's serde
/// fields so a new field cannot be forgotten here.
macro_rules! section {
    ($field:ident: [$($key:ident),+ $(,)?]) => {
        Section {
            name: stringify!($field),
            keys: &[$(stringify!($key)),+],
            set: |cfg, key, raw| match key {
                $(stringify!($key) => Some(EnvValue::from_env(raw).map(|v| cfg.$field.$key = v)),)+
                _ => None,
            },
        }
    };
}

pub(crate) static SECTIONS: &[Section] = &[
    section!(etcd: [
        endpoints, prefix, username, password, ca_file, cert_file, key_file,
        dial_timeout, request_timeout, batch_window, batch_max_ops,
        batch_max_bytes, max_retries, op_timeout,
    ]),
    section!(swift: [
        auth, auth_url, user, key, project, project_domain, user_domain,
        region, interface, application_credential_id,
        application_credential_secret, storage_url, container_prefix,
        max_connections, max_in_flight, retries, connect_timeout,
        request_timeout, verify_md5,
    ]),
    section!(cache: [
        dir, size, min_free, writeback, staging_limit, o_direct,
        upload_concurrency, upload_deadline, upload_delay, read_wait_timeout,
    ]),
    section!(engine: [
        workers, io_engine, memory_limit, readahead, prefetch, write_buffer,
        max_file_size, compaction_grace,
    ]),
    section!(fuse: [
        allow_other, default_permissions, attr_ttl, entry_ttl, negative_ttl,
        writeback_cache, max_write, read_ahead, fsname, xattr,
    ]),
];

/// The override variable for `section.key`.
pub fn var_name(section: &str, key: &str) -> String {
    format!("RINGFS_{}_{}", section, key).to_ascii_uppercase()
}

pub(crate) fn apply<I, K, V>(cfg: &mut Config, vars: I) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    // Sorted, so that with several bad variables the reported one does not
    // depend on environment order.
    let mut overrides = BTreeMap::new();
    for (name, value) in vars {
        let Some(name) = name.as_ref().to_str() else {
            continue; // not UTF-8, so not one of ours
        };
        if name.starts_with("RINGFS_") && !NON_CONFIG_ENV_VARS.contains(&name) {
            overrides.insert(name.to_owned(), value.as_ref().to_owned());
        }
    }

    for (name, value) in overrides {
        let rest = &name["RINGFS_".len()..];
        let Some(section) = SECTIONS.iter().find(|s| {
            rest.len() > s.name.len()
                && rest.as_bytes()[s.name.len()] == b'_'
                && rest[..s.name.len()].eq_ignore_ascii_case(s.name)
        }) else {
            tracing::warn!(
                variable = %name,
                "ignoring environment variable: not a config override (RINGFS_<SECTION>_<KEY>) \
                 and not one of {}",
                NON_CONFIG_ENV_VARS.join(", ")
            );
            continue;
        };
        let key = rest[section.name.len() + 1..].to_ascii_lowercase();
        let path = format!("{}.{}", section.name, key);
        let fail = |message: String| ConfigError::Invalid {
            origin: format!("environment variable {name}"),
            key: path.clone(),
            message,
        };
        let Some(value) = value.to_str() else {
            return Err(fail("value is not valid UTF-8".to_owned()));
        };
        match (section.set)(cfg, &key, value) {
            None => {
                return Err(fail(format!(
                    "unknown key, expected one of {}",
                    section
                        .keys
                        .iter()
                        .map(|k| var_name(section.name, k))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            Some(Err(message)) => return Err(fail(message)),
            Some(Ok(())) => {
                cfg.origin.env.insert(path, name);
            }
        }
    }
    Ok(())
}
