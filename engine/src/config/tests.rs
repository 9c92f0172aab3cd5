use super::*;
use proptest::prelude::*;

const MINIMAL: &str = r#"
[etcd]
endpoints = ["http://127.0.0.1:2379"]

[swift]
auth_url = "http://127.0.0.1:8080/auth/v1.0"
user = "test:tester"
"#;

/// Every key set to a non-default value.
const FULL: &str = r#"
[etcd]
endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
prefix = "prod/ringfs"
username = "ringfs"
password = "etcd-secret"
dial_timeout = "2s"
request_timeout = "5s"
batch_window = "200us"
batch_max_ops = 64
batch_max_bytes = "512KiB"
max_retries = 50
op_timeout = "1m"

[swift]
auth = "keystone"
auth_url = "https://keystone.example.com:5000/v3"
user = "ringfs"
key = "swift-secret"
project = "storage"
project_domain = "corp"
user_domain = "corp"
region = "RegionTwo"
interface = "internal"
application_credential_id = ""
application_credential_secret = ""
storage_url = "https://swift.example.com/v1/AUTH_x"
container_prefix = "fs-"
max_connections = 128
max_in_flight = 100
retries = 3
connect_timeout = "3s"
request_timeout = "2m"
verify_md5 = false

[cache]
dir = "/srv/ringfs-cache"
size = "100GiB"
min_free = "5%"
writeback = true
staging_limit = "20GiB"
o_direct = true
upload_concurrency = 32
upload_deadline = "10m"
read_wait_timeout = "2m"

[engine]
workers = 8
io_engine = "psync"
memory_limit = "2GiB"
readahead = "64MiB"
prefetch = 0
write_buffer = "32MiB"
max_file_size = "1TiB"

[fuse]
allow_other = true
default_permissions = false
attr_ttl = "5s"
entry_ttl = "5s"
negative_ttl = "1s"
writeback_cache = false
max_write = "128KiB"
read_ahead = "4MiB"
fsname = "ringfs-prod"
"#;

fn full() -> String {
    FULL.replace("\"5%\"", "\"2GiB\"")
}

/// `MINIMAL` with `snippet` deep-merged over it (so tests can set any key
/// without repeating table headers).
fn merged(snippet: &str) -> String {
    try_merged(snippet).expect("test snippet must be valid TOML")
}

fn try_merged(snippet: &str) -> Option<String> {
    fn merge(into: &mut toml::Table, from: toml::Table) {
        for (k, v) in from {
            match (into.get_mut(&k), v) {
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
                (_, v) => {
                    into.insert(k, v);
                }
            }
        }
    }
    let mut base: toml::Table = MINIMAL.parse().ok()?;
    merge(&mut base, snippet.parse().ok()?);
    toml::to_string(&base).ok()
}

fn err_of(text: &str) -> String {
    Config::from_toml_str(text, "ringfs.toml")
        .expect_err("config should be rejected")
        .to_string()
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = Config::from_toml_str(MINIMAL, "ringfs.toml").unwrap();
    let mut want = Config::default();
    want.etcd.endpoints = vec!["http://127.0.0.1:2379".into()];
    want.swift.auth_url = "http://127.0.0.1:8080/auth/v1.0".into();
    want.swift.user = "test:tester".into();
    assert_eq!(cfg, want);
    assert_eq!(cfg.etcd.prefix, "ringfs");
    assert_eq!(cfg.etcd.batch_max_ops, 128);
    assert_eq!(cfg.etcd.batch_max_bytes, ByteSize::mib(1));
    assert_eq!(cfg.cache.dir, PathBuf::from("/var/cache/ringfs"));
    assert_eq!(cfg.cache.size, ByteSize::gib(10));
    assert_eq!(
        cfg.cache.upload_deadline.get(),
        std::time::Duration::from_secs(300)
    );
    assert_eq!(cfg.engine.max_file_size, ByteSize::tib(64));
    assert_eq!(cfg.fuse.attr_ttl.get(), std::time::Duration::from_secs(1));
    assert_eq!(cfg.fuse.max_write, ByteSize::mib(1));
    assert_eq!(cfg.swift.container_for("vol1"), "ringfs-vol1");
    assert_eq!(cfg.origin.file, "ringfs.toml");
}

#[test]
fn full_config_parses_every_key() {
    let cfg = Config::from_toml_str(&full(), "full.toml").unwrap();
    assert_eq!(cfg.etcd.endpoints.len(), 2);
    assert_eq!(cfg.etcd.password.expose(), "etcd-secret");
    assert_eq!(
        cfg.etcd.batch_window.get(),
        std::time::Duration::from_micros(200)
    );
    assert_eq!(cfg.swift.auth, SwiftAuth::Keystone);
    assert_eq!(cfg.swift.interface, Interface::Internal);
    assert!(!cfg.swift.verify_md5);
    assert!(cfg.cache.writeback);
    assert_eq!(cfg.engine.io_engine, IoEngine::Psync);
    assert_eq!(cfg.engine.prefetch, ByteSize(0));
    assert_eq!(cfg.engine.effective_workers(), 8);
    assert_eq!(cfg.fuse.fsname, "ringfs-prod");
    assert_eq!(cfg.fuse.negative_ttl, Duration::from_secs(1));
}

#[test]
fn default_sections_are_the_documented_defaults() {
    assert_eq!(Config::parse_toml("", "x").unwrap(), Config::default());
    assert!(Config::default().engine.effective_workers() >= 1);
}

#[test]
fn sizes_accept_integers_and_strings() {
    let cfg = Config::from_toml_str(
        &merged("cache.size = 4096\ncache.min_free = \"4 KiB\""),
        "f",
    )
    .unwrap();
    assert_eq!(cfg.cache.size, ByteSize(4096));
    assert_eq!(cfg.cache.min_free, ByteSize(4096));
}

#[test]
fn the_documented_error_format() {
    assert_eq!(
        err_of(&merged("swift.interface = \"private\"")),
        r#"ringfs.toml: swift.interface: expected one of public, internal, admin, got "private""#
    );
}

#[test]
fn unknown_keys_anywhere_are_rejected() {
    let cases = [
        (
            format!("bogus = 1\n{MINIMAL}"),
            "ringfs.toml: bogus: unknown key `bogus`, expected one of `etcd`",
        ),
        (
            format!("[etcdd]\nx = 1\n{MINIMAL}"),
            "ringfs.toml: etcdd: unknown key `etcdd`",
        ),
        (
            merged("swift.foo = 1"),
            "ringfs.toml: swift.foo: unknown key `foo`, expected one of `auth`",
        ),
        (
            merged("cache.dir2 = \"/x\""),
            "ringfs.toml: cache.dir2: unknown key `dir2`",
        ),
        (
            merged("fuse.attr_ttl_ms = 5"),
            "ringfs.toml: fuse.attr_ttl_ms: unknown key",
        ),
        (
            merged("engine.x.y = 5"),
            "ringfs.toml: engine.x: unknown key",
        ),
    ];
    for (text, want) in cases {
        let err = err_of(&text);
        assert!(
            err.starts_with(want),
            "{text:?}:\n got  {err}\n want {want}"
        );
    }
}

#[test]
fn wrong_types_name_the_key() {
    let cases = [
        ("etcd.batch_max_ops = \"ten\"", "ringfs.toml: etcd.batch_max_ops: invalid type: string \"ten\", expected a non-negative integer"),
        ("etcd.batch_max_ops = -1", "ringfs.toml: etcd.batch_max_ops: invalid value: integer `-1`, expected a non-negative integer"),
        ("etcd.endpoints = \"http://a:1\"", "ringfs.toml: etcd.endpoints: invalid type: string \"http://a:1\", expected a list"),
        ("etcd.endpoints = [1]", "ringfs.toml: etcd.endpoints[0]: invalid type: integer `1`, expected a string"),
        ("swift.verify_md5 = \"yes\"", "ringfs.toml: swift.verify_md5: invalid type: string \"yes\", expected true or false"),
        ("swift.auth = 3", "ringfs.toml: swift.auth: invalid type: integer `3`, expected one of tempauth, keystone"),
        ("cache.size = \"12 parsecs\"", "ringfs.toml: cache.size: invalid size \"12 parsecs\": unknown unit \"parsecs\""),
        ("cache.size = -5", "ringfs.toml: cache.size: size cannot be negative, got -5"),
        ("cache.size = 1.5", "ringfs.toml: cache.size: invalid type: floating point `1.5`, expected a size"),
        ("cache.size = \"\"", "ringfs.toml: cache.size: empty size"),
        ("cache.size = \"99999EiB\"", "ringfs.toml: cache.size: size \"99999EiB\" is too large"),
        ("fuse.attr_ttl = 5", "ringfs.toml: fuse.attr_ttl: duration 5 has no unit (write e.g. \"5s\" or \"5ms\")"),
        ("fuse.attr_ttl = \"-1s\"", "ringfs.toml: fuse.attr_ttl: duration cannot be negative"),
        ("fuse.attr_ttl = -1", "ringfs.toml: fuse.attr_ttl: duration cannot be negative, got -1"),
        ("fuse.attr_ttl = \"soon\"", "ringfs.toml: fuse.attr_ttl: expected a number"),
        ("engine.io_engine = \"epoll\"", "ringfs.toml: engine.io_engine: expected one of auto, uring, psync, got \"epoll\""),
        ("cache.dir = 5", "ringfs.toml: cache.dir: invalid type: integer `5`"),
        ("etcd.ca_file = false", "ringfs.toml: etcd.ca_file: invalid type: boolean `false`"),
        ("etcd.password = 1234", "ringfs.toml: etcd.password: invalid type: integer `1234`"),
        ("fuse = 5", "ringfs.toml: fuse: invalid type: integer `5`, expected a table"),
        ("fuse = []", "ringfs.toml: fuse: invalid type: sequence, expected a table"),
        ("fuse = [\"x\", true]", "ringfs.toml: fuse: invalid type: sequence, expected a table"),
        ("fuse = { fsname = 5 }", "ringfs.toml: fuse.fsname: invalid type: integer `5`, expected a string"),
    ];
    for (snippet, want) in cases {
        let err = err_of(&merged(snippet));
        assert!(
            err.starts_with(want),
            "{snippet:?}:\n got  {err}\n want {want}"
        );
    }
}

#[test]
fn zero_durations_and_sizes_are_allowed_where_meaningful() {
    let cfg = Config::from_toml_str(
        &merged("etcd.batch_window = 0\nfuse.negative_ttl = \"0\"\nengine.prefetch = \"0\"\ncache.size = 0"),
        "f",
    )
    .unwrap();
    assert!(cfg.etcd.batch_window.is_zero());
    assert!(cfg.fuse.negative_ttl.is_zero());
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = Config::from_toml_str("[etcd]\nendpoints = [\"a\"\nprefix = 3\n", "ringfs.toml")
        .unwrap_err();
    let ConfigError::Syntax { line, column, .. } = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!((*line, *column), (3, 1), "{err}");
    assert!(err.to_string().starts_with("ringfs.toml:3:1: "), "{err}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");

    let err = err_of("[etcd]\nprefix = \"a\"\nprefix = \"b\"\n");
    assert!(err.starts_with("ringfs.toml:3:1: duplicate key"), "{err}");

    let err = err_of(&format!("[[etcd]]\n{}", MINIMAL.replace("[etcd]\n", "")));
    assert!(
        err.starts_with("ringfs.toml: etcd: invalid type: sequence, expected a table"),
        "{err}"
    );

    let err = err_of("[etcd\n");
    assert!(err.starts_with("ringfs.toml:1:6: "), "{err}");

    // Columns count characters, not bytes.
    let err = err_of("# é\nx = é\n");
    assert!(err.starts_with("ringfs.toml:2:5: "), "{err}");
}

/// One test per semantic rule: (snippet merged over MINIMAL, key, reason).
#[test]
fn semantic_rules() {
    let cases: &[(&str, &str, &str)] = &[
        ("etcd.endpoints = []", "etcd.endpoints", "at least one endpoint is required"),
        ("etcd.endpoints = [\"http://a:2379\", \"a:2379\"]", "etcd.endpoints[1]", "unsupported scheme"),
        ("etcd.endpoints = [\"http://a\"]", "etcd.endpoints[0]", "missing port"),
        ("etcd.prefix = \"\"", "etcd.prefix", "must not be empty"),
        ("etcd.prefix = \"a\\u0000b\"", "etcd.prefix", "must not contain NUL"),
        ("etcd.password = \"p\"", "etcd.password", "etcd.username is empty"),
        ("etcd.cert_file = \"/etc/hostname\"", "etcd.cert_file", "etcd.key_file is not"),
        ("etcd.key_file = \"/etc/hostname\"", "etcd.key_file", "etcd.cert_file is not"),
        ("etcd.ca_file = \"/nonexistent/ca.pem\"", "etcd.ca_file", "cannot access /nonexistent/ca.pem"),
        ("etcd.ca_file = \"ca.pem\"", "etcd.ca_file", "must be an absolute path"),
        ("etcd.ca_file = \"/\"", "etcd.ca_file", "is not a regular file"),
        ("etcd.dial_timeout = 0", "etcd.dial_timeout", "must be greater than 0"),
        ("etcd.request_timeout = \"0s\"", "etcd.request_timeout", "must be greater than 0"),
        ("etcd.op_timeout = \"5s\"", "etcd.op_timeout", "must be at least etcd.request_timeout (10s), got 5s"),
        ("etcd.batch_window = \"2s\"", "etcd.batch_window", "must be at most 1s, got 2s"),
        ("etcd.batch_max_ops = 0", "etcd.batch_max_ops", "must be between 1 and 128, got 0"),
        ("etcd.batch_max_ops = 500", "etcd.batch_max_ops", "must be between 1 and 128, got 500"),
        ("etcd.batch_max_bytes = \"2MiB\"", "etcd.batch_max_bytes", "must be between 1KiB and 1536KiB, got 2MiB"),
        ("etcd.batch_max_bytes = 0", "etcd.batch_max_bytes", "must be between"),
        ("swift.auth_url = \"\"", "swift.auth_url", "is required"),
        ("swift.auth_url = \"keystone:5000\"", "swift.auth_url", "expected an http:// or https:// URL"),
        ("swift.user = \"\"", "swift.user", "is required"),
        ("swift.application_credential_id = \"x\"", "swift.application_credential_id", "need swift.auth = \"keystone\""),
        ("swift.auth = \"keystone\"", "swift.project", "is required with keystone auth"),
        ("swift.auth = \"keystone\"\nswift.application_credential_id = \"id\"", "swift.application_credential_secret", "is required"),
        ("swift.auth = \"keystone\"\nswift.application_credential_secret = \"s\"\nswift.project = \"p\"", "swift.application_credential_id", "is required"),
        ("swift.auth = \"keystone\"\nswift.project = \"p\"\nswift.user_domain = \"\"", "swift.user_domain", "must not be empty"),
        ("swift.storage_url = \"swift\"", "swift.storage_url", "expected an http:// or https:// URL"),
        ("swift.container_prefix = \"a/b\"", "swift.container_prefix", "must not contain '/'"),
        ("swift.max_connections = 0", "swift.max_connections", "must be at least 1"),
        ("swift.max_in_flight = 0", "swift.max_in_flight", "must be at least 1"),
        ("swift.max_in_flight = 65", "swift.max_in_flight", "must not exceed swift.max_connections (64), got 65"),
        ("swift.connect_timeout = 0", "swift.connect_timeout", "must be greater than 0"),
        ("swift.request_timeout = 0", "swift.request_timeout", "must be greater than 0"),
        ("cache.dir = \"\"", "cache.dir", "must not be empty"),
        ("cache.dir = \"cache\"", "cache.dir", "must be an absolute path"),
        ("cache.writeback = true\ncache.staging_limit = 0", "cache.staging_limit", "must be greater than 0 when cache.writeback"),
        ("cache.upload_concurrency = 0", "cache.upload_concurrency", "must be at least 1"),
        ("cache.upload_deadline = 0", "cache.upload_deadline", "must be greater than 0"),
        ("cache.upload_delay = \"10m\"", "cache.upload_delay", "must be shorter than cache.upload_deadline (5m)"),
        ("cache.read_wait_timeout = 0", "cache.read_wait_timeout", "must be greater than 0"),
        ("engine.workers = 100000", "engine.workers", "must be at most 4096"),
        ("engine.write_buffer = 0", "engine.write_buffer", "must be greater than 0"),
        ("engine.write_buffer = \"1GiB\"", "engine.write_buffer", "must not exceed engine.memory_limit (512MiB), got 1GiB"),
        ("engine.readahead = \"1GiB\"", "engine.readahead", "must not exceed engine.memory_limit"),
        ("engine.memory_limit = \"16MiB\"", "engine.write_buffer", "must not exceed engine.memory_limit (16MiB), got 64MiB"),
        ("engine.max_file_size = 0", "engine.max_file_size", "must be between 1B and"),
        ("engine.max_file_size = \"8EiB\"", "engine.max_file_size", "must be between"),
        ("fuse.max_write = \"3MiB\"", "fuse.max_write", "must be between 4KiB and 1MiB, got 3MiB"),
        ("fuse.max_write = 1024", "fuse.max_write", "must be between 4KiB and 1MiB, got 1KiB"),
        ("fuse.max_write = 5000", "fuse.max_write", "must be a multiple of 4KiB"),
        ("fuse.read_ahead = \"4GiB\"", "fuse.read_ahead", "must be below 4GiB"),
        ("fuse.fsname = \"\"", "fuse.fsname", "must not be empty"),
        ("fuse.fsname = \"a,b\"", "fuse.fsname", "must not contain commas"),
    ];
    for (snippet, key, reason) in cases {
        let err = Config::from_toml_str(&merged(snippet), "ringfs.toml").expect_err(snippet);
        assert_eq!(err.key(), Some(*key), "{snippet:?}: {err}");
        let msg = err.to_string();
        let want = format!("ringfs.toml: {key}: ");
        assert!(
            msg.starts_with(&want) && msg.contains(reason),
            "{snippet:?}:\n got  {msg}\n want {want}...{reason}"
        );
    }
}

#[test]
fn valid_variants_pass() {
    for snippet in [
        // Keystone with application credential: no user/key/project needed.
        "swift.auth = \"keystone\"\nswift.user = \"\"\nswift.application_credential_id = \"id\"\nswift.application_credential_secret = \"s\"",
        "swift.auth = \"keystone\"\nswift.project = \"p\"\nswift.key = \"k\"",
        "etcd.endpoints = [\"http://[::1]:2379\", \"https://e:2379/\"]",
        "etcd.username = \"root\"\netcd.password = \"pw\"",
        "etcd.cert_file = \"/etc/hostname\"\netcd.key_file = \"/etc/hostname\"\netcd.ca_file = \"/etc/hostname\"",
        "etcd.batch_max_ops = 1\netcd.batch_max_bytes = \"1.5MiB\"",
        "fuse.max_write = \"4KiB\"\nfuse.negative_ttl = \"0s\"",
        "engine.max_file_size = 9223372036854775807",
        "swift.max_in_flight = 64",
        "etcd.op_timeout = \"10s\"",
        "swift.auth = \"KEYSTONE\"\nswift.project = \"p\"\nswift.interface = \"Admin\"",
    ] {
        if snippet.contains("/etc/hostname") && !Path::new("/etc/hostname").is_file() {
            continue;
        }
        if let Err(e) = Config::from_toml_str(&merged(snippet), "ringfs.toml") {
            panic!("{snippet:?} rejected: {e}");
        }
    }
}

#[test]
fn missing_required_keys_are_named() {
    assert!(
        err_of("").starts_with("ringfs.toml: etcd.endpoints: at least one endpoint is required")
    );
    assert!(err_of("[etcd]\nendpoints = [\"http://e:2379\"]")
        .starts_with("ringfs.toml: swift.auth_url: is required"));
}

#[test]
fn env_overrides_every_kind_of_value() {
    let mut cfg = Config::parse_toml(MINIMAL, "ringfs.toml").unwrap();
    cfg.apply_env(env(&[
        ("RINGFS_ETCD_ENDPOINTS", " http://a:2379, http://b:2379 ,,"),
        ("RINGFS_ETCD_USERNAME", "root"),
        ("RINGFS_ETCD_PASSWORD", "pw with spaces "),
        ("RINGFS_ETCD_BATCH_MAX_OPS", "64"),
        ("RINGFS_SWIFT_KEY", "sekrit"),
        ("RINGFS_SWIFT_INTERFACE", "internal"),
        ("RINGFS_SWIFT_VERIFY_MD5", "false"),
        ("RINGFS_CACHE_DIR", "/tmp/rc"),
        ("RINGFS_CACHE_SIZE", "1GiB"),
        ("RINGFS_ETCD_CA_FILE", ""),
        ("RINGFS_FUSE_ATTR_TTL", "250ms"),
        ("RINGFS_ENGINE_WORKERS", "3"),
        // Not overrides: ignored.
        ("RINGFS_LOG", "debug"),
        ("RINGFS_CONFIG", "/etc/ringfs.toml"),
        ("RINGFS_TEST_CONF", "x"),
        ("RINGFS_KEYSTONE_TOKEN_TTL", "1h"),
        ("RINGFS_SOMETHING_ELSE", "x"),
        ("PATH", "/bin"),
        ("ringfs_swift_key", "lowercase is not ours"),
    ]))
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.etcd.endpoints, ["http://a:2379", "http://b:2379"]);
    assert_eq!(cfg.etcd.password.expose(), "pw with spaces ");
    assert_eq!(cfg.etcd.batch_max_ops, 64);
    assert_eq!(cfg.swift.key.expose(), "sekrit");
    assert_eq!(cfg.swift.interface, Interface::Internal);
    assert!(!cfg.swift.verify_md5);
    assert_eq!(cfg.cache.dir, PathBuf::from("/tmp/rc"));
    assert_eq!(cfg.cache.size, ByteSize::gib(1));
    assert_eq!(cfg.etcd.ca_file, None);
    assert_eq!(cfg.fuse.attr_ttl, Duration::from_millis(250));
    assert_eq!(cfg.engine.workers, 3);
    assert_eq!(
        cfg.origin.env.get("swift.key").map(String::as_str),
        Some("RINGFS_SWIFT_KEY")
    );
    assert_eq!(cfg.origin.env.len(), 12);
}

#[test]
fn env_errors_name_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("RINGFS_SWIFT_FOO", "1", "environment variable RINGFS_SWIFT_FOO: swift.foo: unknown key, expected one of RINGFS_SWIFT_AUTH, "),
        ("RINGFS_ETCD_", "1", "environment variable RINGFS_ETCD_: etcd.: unknown key"),
        ("RINGFS_ETCD_BATCH_MAX_OPS", "ten", "environment variable RINGFS_ETCD_BATCH_MAX_OPS: etcd.batch_max_ops: expected a non-negative integer, got \"ten\""),
        ("RINGFS_ETCD_BATCH_MAX_OPS", "-1", "environment variable RINGFS_ETCD_BATCH_MAX_OPS: etcd.batch_max_ops: expected a non-negative integer, got \"-1\""),
        ("RINGFS_ETCD_MAX_RETRIES", "99999999999", "environment variable RINGFS_ETCD_MAX_RETRIES: etcd.max_retries: 99999999999 is too large"),
        ("RINGFS_CACHE_SIZE", "12 parsecs", "environment variable RINGFS_CACHE_SIZE: cache.size: invalid size \"12 parsecs\""),
        ("RINGFS_FUSE_ATTR_TTL", "5", "environment variable RINGFS_FUSE_ATTR_TTL: fuse.attr_ttl: duration \"5\" has no unit"),
        ("RINGFS_SWIFT_INTERFACE", "private", "environment variable RINGFS_SWIFT_INTERFACE: swift.interface: expected one of public, internal, admin, got \"private\""),
        ("RINGFS_FUSE_ALLOW_OTHER", "yes", "environment variable RINGFS_FUSE_ALLOW_OTHER: fuse.allow_other: expected true or false, got \"yes\""),
    ];
    for (var, value, want) in cases {
        let mut cfg = Config::parse_toml(MINIMAL, "ringfs.toml").unwrap();
        let err = cfg
            .apply_env(env(&[(var, value)]))
            .expect_err(var)
            .to_string();
        assert!(
            err.starts_with(want),
            "{var}={value}:\n got  {err}\n want {want}"
        );
    }
}

#[test]
fn validation_errors_on_env_values_name_the_variable() {
    let mut cfg = Config::parse_toml(MINIMAL, "ringfs.toml").unwrap();
    cfg.apply_env(env(&[("RINGFS_ETCD_BATCH_MAX_OPS", "500")]))
        .unwrap();
    assert_eq!(
        cfg.validate().unwrap_err().to_string(),
        "environment variable RINGFS_ETCD_BATCH_MAX_OPS: etcd.batch_max_ops: must be between 1 and 128, got 500"
    );

    let mut cfg = Config::parse_toml(MINIMAL, "ringfs.toml").unwrap();
    cfg.apply_env(env(&[("RINGFS_ETCD_ENDPOINTS", "http://ok:1,bad")]))
        .unwrap();
    assert!(cfg.validate().unwrap_err().to_string().starts_with(
        "environment variable RINGFS_ETCD_ENDPOINTS: etcd.endpoints[1]: unsupported scheme"
    ));
}

#[cfg(unix)]
#[test]
fn env_values_must_be_utf8() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let mut cfg = Config::parse_toml(MINIMAL, "f").unwrap();
    let err = cfg
        .apply_env([(
            OsString::from("RINGFS_SWIFT_KEY"),
            OsString::from_vec(vec![0xff, 0xfe]),
        )])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable RINGFS_SWIFT_KEY: swift.key: value is not valid UTF-8"
    );
    // Non-UTF-8 names are not ours and are ignored.
    cfg.apply_env([(OsString::from_vec(vec![b'R', 0xff]), OsString::from("x"))])
        .unwrap();
}

#[test]
fn load_reads_file_and_env() {
    let dir = std::env::temp_dir().join(format!("ringfs-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ringfs.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let cfg = Config::load_with_env(&path, env(&[("RINGFS_SWIFT_KEY", "k")])).unwrap();
    assert_eq!(cfg.swift.key.expose(), "k");
    assert_eq!(cfg.origin.file, path.display().to_string());

    std::fs::write(&path, merged("fuse.max_write = \"3MiB\"")).unwrap();
    let err = Config::load_with_env(&path, env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}: fuse.max_write: must be between 4KiB and 1MiB, got 3MiB",
            path.display()
        )
    );

    let missing = dir.join("missing.toml");
    let err = Config::load_with_env(&missing, env(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read config file: ", missing.display())),
        "{err}"
    );
    assert!(
        std::error::Error::source(&err).is_none(),
        "message must not repeat in a chain"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn redacted_output_hides_secrets_and_round_trips() {
    let mut cfg = Config::from_toml_str(&full(), "full.toml").unwrap();
    cfg.apply_env(env(&[("RINGFS_SWIFT_KEY", "from-env-secret")]))
        .unwrap();
    let out = cfg.to_toml_redacted();
    assert!(!out.contains("etcd-secret"), "{out}");
    assert!(!out.contains("from-env-secret"), "{out}");
    assert!(out.contains("password = \"***\""), "{out}");
    assert!(out.contains("key = \"***\""), "{out}");
    assert!(
        out.contains("application_credential_secret = \"\""),
        "{out}"
    );
    assert!(
        out.contains("# swift.key: from environment variable RINGFS_SWIFT_KEY"),
        "{out}"
    );
    assert!(!format!("{cfg:?}").contains("etcd-secret"));
    assert!(!cfg.to_string().contains("etcd-secret"));

    // Every key is shown, and the output parses back to the same settings
    // once the secrets are restored.
    for key in Config::keys() {
        let (section, name) = key.split_once('.').unwrap();
        let table: toml::Table = out.parse().unwrap();
        assert!(
            table[section].as_table().unwrap().contains_key(name),
            "{key} missing from\n{out}"
        );
    }
    let mut back = Config::from_toml_str(&out, "show").unwrap();
    back.etcd.password = cfg.etcd.password.clone();
    back.swift.key = cfg.swift.key.clone();
    assert_eq!(back, cfg);

    // Unset optional paths and defaults render too.
    let cfg = Config::from_toml_str(MINIMAL, "m").unwrap();
    let out = cfg.to_toml_redacted();
    assert!(out.contains("ca_file = \"\""), "{out}");
    assert!(out.contains("password = \"\""), "{out}");
    assert!(out.contains("size = \"10GiB\""), "{out}");
    assert!(out.contains("upload_deadline = \"5m\""), "{out}");
    assert!(out.contains("batch_window = \"0s\""), "{out}");
    assert_eq!(Config::from_toml_str(&out, "m").unwrap(), cfg);
}

#[test]
fn env_key_lists_match_the_structs() {
    let table: toml::Table = toml::to_string(&Config::default())
        .unwrap()
        .parse()
        .unwrap();
    let from_serde: Vec<String> = table
        .iter()
        .flat_map(|(s, t)| {
            t.as_table()
                .unwrap()
                .keys()
                .map(move |k| format!("{s}.{k}"))
        })
        .collect();
    let mut a = from_serde.clone();
    let mut b: Vec<String> = Config::keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // And every key really is settable from the environment.
    for key in Config::keys() {
        let (s, k) = key.split_once('.').unwrap();
        let var = env::var_name(s, k);
        let mut cfg = Config::default();
        let value = match k {
            "endpoints" => "http://a:1",
            "auth" => "keystone",
            "interface" => "admin",
            "io_engine" => "psync",
            _ if k.ends_with("timeout")
                || k.ends_with("ttl")
                || k.ends_with("window")
                || k.ends_with("deadline")
                || k.ends_with("delay")
                || k.ends_with("grace") =>
            {
                "3s"
            }
            "batch_max_bytes" | "size" | "min_free" | "staging_limit" | "memory_limit"
            | "readahead" | "prefetch" | "write_buffer" | "max_file_size" | "max_write"
            | "read_ahead" => "4KiB",
            "verify_md5" | "default_permissions" | "o_direct" | "xattr" => "false",
            "writeback" | "allow_other" | "writeback_cache" => "true",
            "batch_max_ops" | "max_retries" | "max_connections" | "max_in_flight" | "retries"
            | "upload_concurrency" | "workers" => "7",
            _ => "/x",
        };
        cfg.apply_env(env(&[(&var, value)]))
            .unwrap_or_else(|e| panic!("{var}: {e}"));
        assert_eq!(cfg.origin.env.get(&key), Some(&var));
        assert_ne!(
            toml::to_string(&cfg).unwrap(),
            toml::to_string(&Config::default()).unwrap(),
            "{var}={value} changed nothing"
        );
    }
}

#[test]
fn docs_mention_every_key_and_the_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIGURATION.md");
    let doc = std::fs::read_to_string(path).expect("docs/CONFIGURATION.md");
    for key in Config::keys() {
        let (section, name) = key.split_once('.').unwrap();
        let var = env::var_name(section, name);
        assert!(doc.contains(&format!("`{name}`")), "docs lack key {key}");
        assert!(
            doc.contains(&var) || doc.contains("RINGFS_<SECTION>_<KEY>"),
            "docs lack {var}"
        );
    }
    for var in NON_CONFIG_ENV_VARS {
        assert!(doc.contains(var), "docs lack {var}");
    }
    // Every ```toml block must at least parse; the complete example must also validate.
    let mut blocks = doc
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap());
    let example = blocks.next().expect("a toml example");
    Config::from_toml_str(example, "CONFIGURATION.md example").unwrap_or_else(|e| panic!("{e}"));
    for b in blocks {
        Config::parse_toml(b, "CONFIGURATION.md snippet").unwrap_or_else(|e| panic!("{e}\n{b}"));
    }
}

// ---------------------------------------------------------------------------
// No input may panic.
// ---------------------------------------------------------------------------

fn check_no_panic(text: &str) {
    if let Ok(cfg) = Config::parse_toml(text, "fuzz.toml") {
        let _ = cfg.validate();
        let out = cfg.to_toml_redacted();
        // Whatever parsed must render to something that parses again.
        Config::parse_toml(&out, "rendered")
            .unwrap_or_else(|e| panic!("{e}\n--- input\n{text}\n--- output\n{out}"));
    }
}

/// Values that exercise every deserializer path.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        "[a-zA-Z0-9 .:/_-]{0,12}".prop_map(|s| format!("{s:?}")),
        "[0-9]{1,25}(\\.[0-9]{1,25})? ?(B|KiB|k|MB|GiB|T|EiB|ms|s|m|h|d|us|ns|x)?"
            .prop_map(|s| format!("{s:?}")),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
        "[\"a-z0-9, ]{0,20}".prop_map(|s| format!("[{s}]")),
    ]
}

fn any_key() -> impl Strategy<Value = String> {
    let keys: Vec<String> = Config::keys().collect();
    prop_oneof![proptest::sample::select(keys), "[a-z_.]{1,12}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_never_panic(s in "\\PC{0,200}") {
        check_no_panic(&s);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_no_panic(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_key_values_never_panic(
        lines in proptest::collection::vec((any_key(), any_value()), 0..12),
    ) {
        let text: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        check_no_panic(&text);
        check_no_panic(&merged_or_raw(&text));
    }

    #[test]
    fn mutated_valid_configs_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..8),
    ) {
        let mut text: Vec<char> = full().chars().collect();
        for (at, op, c) in edits {
            let i = at.index(text.len() + 1);
            match op {
                0 => text.insert(i, c),
                1 if i < text.len() => { text.remove(i); }
                _ if i < text.len() => text[i] = c,
                _ => {}
            }
        }
        check_no_panic(&text.into_iter().collect::<String>());
    }

    #[test]
    fn random_env_never_panics(
        vars in proptest::collection::vec(("RINGFS_[A-Z_]{0,24}", "\\PC{0,16}"), 0..6),
        pick in proptest::collection::vec((any_key(), any_value()), 0..4),
    ) {
        let mut cfg = Config::parse_toml(MINIMAL, "m").unwrap();
        let mut all = vars;
        for (k, v) in pick {
            if let Some((s, k)) = k.split_once('.') {
                all.push((env::var_name(s, k), v));
            }
        }
        if cfg.apply_env(all).is_ok() {
            let _ = cfg.validate();
            let _ = cfg.to_toml_redacted();
        }
    }
}

/// Dotted keys merged over MINIMAL when they form valid TOML, else the raw
/// text (so the fuzzer also reaches the semantic checks).
fn merged_or_raw(snippet: &str) -> String {
    try_merged(snippet).unwrap_or_else(|| snippet.to_owned())
}
