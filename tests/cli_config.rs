//! `ringfs config check` / `ringfs config show`, run as the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const VALID: &str = r#"
[etcd]
endpoints = ["http://127.0.0.1:2379"]
password = "etcd-pass-in-file"
username = "root"

[swift]
auth_url = "http://127.0.0.1:8080/auth/v1.0"
user = "test:tester"
key = "swift-key-in-file"
"#;

/// A fresh file under cargo's per-test scratch directory.
fn write_conf(text: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("ringfs-{}.toml", N.fetch_add(1, Ordering::Relaxed)));
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary with a clean environment plus `env`.
fn ringfs(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringfs"));
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ringfs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check(path: &Path, env: &[(&str, &str)]) -> Output {
    ringfs(
        &["config", "check", "--offline", "-c", path.to_str().unwrap()],
        env,
    )
}

/// A failed check: exit status 2, nothing on stdout, exactly one line on
/// stderr that starts with `ringfs: ` and no panic.
fn assert_one_line_error(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
    assert_eq!(stdout(o), "");
    let err = stderr(o);
    assert!(
        err.starts_with("ringfs: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{err:?}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err.trim_end().to_owned()
}

#[test]
fn check_ok() {
    let path = write_conf(VALID);
    let o = check(&path, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("ok: {}\n", path.display()));
    assert_eq!(stderr(&o), "");
}

#[test]
fn config_path_from_env() {
    let path = write_conf(VALID);
    let o = ringfs(
        &["config", "check", "--offline"],
        &[("RINGFS_CONFIG", path.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("ok: {}\n", path.display()));
}

#[test]
fn check_bad_key() {
    let path = write_conf(&format!("{VALID}\n[fuse]\ncolour = \"blue\"\n"));
    let err = assert_one_line_error(&check(&path, &[]));
    assert!(
        err.starts_with(&format!(
            "ringfs: {}: fuse.colour: unknown key `colour`, expected one of",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn check_bad_value() {
    let path = write_conf(&format!("{VALID}interface = \"private\"\n"));
    let err = assert_one_line_error(&check(&path, &[]));
    assert_eq!(
        err,
        format!(
            r#"ringfs: {}: swift.interface: expected one of public, internal, admin, got "private""#,
            path.display()
        )
    );

    let path = write_conf(&format!("{VALID}\n[etcd2]\n"));
    assert_one_line_error(&check(&path, &[]));

    let path =
        write_conf(&VALID.replace("\"http://127.0.0.1:2379\"", "\"http://127.0.0.1:2379\", 5"));
    let err = assert_one_line_error(&check(&path, &[]));
    assert!(
        err.contains(": etcd.endpoints[1]: invalid type: integer `5`"),
        "{err}"
    );
}

#[test]
fn check_syntax_error_has_line_and_column() {
    let path = write_conf("[etcd]\nendpoints = [\"http://a:1\"\n");
    let err = assert_one_line_error(&check(&path, &[]));
    assert_eq!(
        err,
        format!(
            "ringfs: {}:2:26: unclosed array, expected `]`",
            path.display()
        )
    );
}

#[test]
fn check_missing_file() {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("does-not-exist.toml");
    let err = assert_one_line_error(&check(&path, &[]));
    assert!(
        err.starts_with(&format!(
            "ringfs: {}: cannot read config file: No such file or directory",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn check_missing_config_flag_is_a_usage_error() {
    let o = ringfs(&["config", "check"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--config <CONF>"), "{}", stderr(&o));
}

#[test]
fn env_overrides() {
    let path = write_conf(VALID);
    // A valid override is applied and shown.
    let o = ringfs(
        &["config", "show", "-c", path.to_str().unwrap()],
        &[
            ("RINGFS_ETCD_BATCH_MAX_OPS", "64"),
            ("RINGFS_CACHE_DIR", "/tmp/ringfs-cache"),
            ("RINGFS_LOG", "warn"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("batch_max_ops = 64\n"), "{out}");
    assert!(out.contains("dir = \"/tmp/ringfs-cache\"\n"), "{out}");
    assert!(
        out.contains("# etcd.batch_max_ops: from environment variable RINGFS_ETCD_BATCH_MAX_OPS"),
        "{out}"
    );

    // An invalid override names the variable.
    let err = assert_one_line_error(&check(&path, &[("RINGFS_ETCD_BATCH_MAX_OPS", "500")]));
    assert_eq!(
        err,
        "ringfs: environment variable RINGFS_ETCD_BATCH_MAX_OPS: etcd.batch_max_ops: must be between 1 and 128, got 500"
    );
    let err = assert_one_line_error(&check(&path, &[("RINGFS_CACHE_SIZE", "12 parsecs")]));
    assert!(
        err.starts_with("ringfs: environment variable RINGFS_CACHE_SIZE: cache.size: invalid size"),
        "{err}"
    );

    // A misspelt override is an error; non-config RINGFS_ variables are not.
    let err = assert_one_line_error(&check(&path, &[("RINGFS_SWIFT_KYE", "x")]));
    assert!(
        err.starts_with("ringfs: environment variable RINGFS_SWIFT_KYE: swift.kye: unknown key"),
        "{err}"
    );
    let o = check(
        &path,
        &[
            ("RINGFS_LOG", "info"),
            ("RINGFS_TEST_CONF", "x"),
            ("RINGFS_KEYSTONE_TOKEN_TTL", "60"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Required keys can come from the environment alone.
    let path = write_conf("[swift]\nauth_url = \"http://s:8080/auth/v1.0\"\n");
    let o = check(
        &path,
        &[
            ("RINGFS_ETCD_ENDPOINTS", "http://a:2379,http://b:2379"),
            ("RINGFS_SWIFT_USER", "u"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn show_redacts_secrets() {
    let path = write_conf(VALID);
    let o = ringfs(
        &["config", "show", "-c", path.to_str().unwrap()],
        &[
            ("RINGFS_SWIFT_AUTH", "keystone"),
            ("RINGFS_SWIFT_APPLICATION_CREDENTIAL_ID", "app-id"),
            (
                "RINGFS_SWIFT_APPLICATION_CREDENTIAL_SECRET",
                "app-secret-from-env",
            ),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for secret in [
        "etcd-pass-in-file",
        "swift-key-in-file",
        "app-secret-from-env",
    ] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        assert!(!stderr(&o).contains(secret), "{secret} leaked to stderr");
    }
    assert!(out.contains("password = \"***\"\n"), "{out}");
    assert!(out.contains("\nkey = \"***\"\n"), "{out}");
    assert!(
        out.contains("application_credential_secret = \"***\"\n"),
        "{out}"
    );
    // Every section with defaults filled in.
    for needle in [
        "[etcd]",
        "[swift]",
        "[cache]",
        "[engine]",
        "[fuse]",
        "max_file_size = \"64TiB\"",
        "attr_ttl = \"1s\"",
    ] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
}

#[test]
fn show_prints_invalid_config_then_fails() {
    let path = write_conf(&VALID.replace("user = \"test:tester\"", "user = \"\""));
    let o = ringfs(&["config", "show", "-c", path.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).contains("[swift]"));
    assert_eq!(
        stderr(&o),
        format!("ringfs: {}: swift.user: is required\n", path.display())
    );
}

#[test]
fn other_commands_fail_cleanly() {
    let o = ringfs(&["umount", "/nonexistent-ringfs-mountpoint"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("ringfs: ") && !err.contains("panicked"),
        "{err}"
    );

    // Commands that take -c load the config first: a config error exits 2
    // before anything touches etcd, Swift or FUSE.
    let bad = write_conf("[etcd]\nbatch_max_ops = 0\n");
    for cmd in ["format", "status", "mount"] {
        let mut args = vec![cmd, "-c", bad.to_str().unwrap(), "vol"];
        if cmd == "mount" {
            args.push("/nonexistent-ringfs-mountpoint");
        }
        let err = assert_one_line_error(&ringfs(&args, &[]));
        assert!(
            err.contains(": etcd.endpoints: at least one endpoint is required"),
            "{cmd}: {err}"
        );
    }
}
