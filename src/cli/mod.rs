//! Command-line interface.
//!
//! The subcommand names, arguments and flags are a contract that scripts and
//! other tools rely on; change them only compatibly.
//!
//! Exit status: 0 on success, 2 for usage errors (clap) and for any
//! configuration error (so scripts can tell "fix your config" from "the
//! cluster is unhappy"), 1 for every other error. Errors are printed as one
//! line, `ringfs: <message>: <cause>: ...`, never as a panic.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use ringfs_engine::config::{Config, ConfigError};

pub mod bench;
pub mod config;
pub mod format;
pub mod mount;
pub mod status;
pub mod umount;

/// A distributed POSIX file system: metadata in etcd, data in OpenStack Swift.
#[derive(Debug, Parser)]
#[command(name = "ringfs", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a volume: its etcd record and its Swift container.
    Format(format::FormatArgs),
    /// Mount a volume with FUSE.
    Mount(mount::MountArgs),
    /// Unmount a ringfs mount point.
    Umount(umount::UmountArgs),
    /// Show a volume's settings and usage.
    Status(status::StatusArgs),
    /// Check or show the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run a quick I/O benchmark in a directory (of a mounted volume).
    Bench(bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then reach etcd and authenticate to
    /// Swift (Keystone: token and catalog endpoint); prints "ok: FILE" or the first
    /// error. `--offline` only validates the file.
    Check(config::CheckArgs),
    /// Print the effective configuration (file + RINGFS_* environment
    /// overrides, defaults filled in) as TOML, secrets shown as "***".
    Show(ConfigFileArg),
}

/// `-c/--config FILE`, shared by every command that needs the config.
#[derive(Debug, Clone, Args)]
pub struct ConfigFileArg {
    /// Configuration file (ringfs.toml); see docs/CONFIGURATION.md.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "CONF",
        env = "RINGFS_CONFIG"
    )]
    pub config: PathBuf,
}

impl ConfigFileArg {
    /// Loads and validates the file with the process's environment
    /// overrides. The error keeps its [`ConfigError`] type inside the
    /// `anyhow` chain so [`main`] can exit with status 2.
    pub fn load(&self) -> Result<Config> {
        let cfg = Config::load(&self.config)?;
        tracing::debug!(file = %self.config.display(), overrides = ?cfg.origin.env, "configuration loaded");
        Ok(cfg)
    }
}

/// Entry point: parse arguments, set up logging, run, map errors to an exit
/// status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed stdout (`ringfs config show | head`) is not an error
            // worth reporting.
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // `{:#}` prints the whole anyhow chain on one line.
            let msg = format!("{err:#}").replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "ringfs: {msg}");
            exit_code_for(&err)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Format(args) => {
            let cfg = args.conf.load()?;
            format::run(cfg, args)
        }
        Command::Mount(args) => {
            let cfg = args.conf.load()?;
            mount::run(cfg, args)
        }
        Command::Umount(args) => umount::run(args),
        Command::Status(args) => {
            let cfg = args.conf.load()?;
            status::run(cfg, args)
        }
        Command::Config(ConfigCommand::Check(args)) => config::check(&args),
        Command::Config(ConfigCommand::Show(args)) => config::show(&args),
        Command::Bench(args) => bench::run(args),
    }
}

/// 2 for configuration errors, 1 for everything else.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| e.is::<ConfigError>()) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Logs go to stderr (stdout is for command output such as `config
/// show`), filtered by `RINGFS_LOG` (EnvFilter syntax, default `info`).
fn init_logging() {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter};

    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    let spec = std::env::var("RINGFS_LOG").unwrap_or_default();
    let (filter, bad) = match builder.parse(&spec) {
        Ok(f) => (f, None),
        Err(e) => (builder.parse_lossy(""), Some(e)),
    };
    // try_init: never panic if something already installed a subscriber.
    // Colours only on a terminal: a background mount's stderr is a log file.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if let Some(e) = bad {
        tracing::warn!("ignoring invalid RINGFS_LOG={spec:?} ({e}); logging at info");
    }
}

/// Writes command output to stdout, returning (not panicking on) errors
/// such as a closed pipe.
pub fn print_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

/// A small runtime for one-shot commands (format, status).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn contract_flags_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map_err(|e| e.to_string());
        let cli = parse(&[
            "ringfs",
            "format",
            "-c",
            "r.toml",
            "vol",
            "--block-size",
            "1MiB",
            "--chunk-size",
            "16MiB",
            "--force",
        ])
        .unwrap();
        let Command::Format(f) = cli.command else {
            panic!()
        };
        assert_eq!(
            (
                f.volume.as_str(),
                f.block_size.bytes(),
                f.chunk_size.bytes(),
                f.force
            ),
            ("vol", 1 << 20, 16 << 20, true)
        );

        let Command::Format(f) = parse(&["ringfs", "format", "-c", "r.toml", "vol"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(
            (f.block_size.bytes(), f.chunk_size.bytes(), f.force),
            (4 << 20, 64 << 20, false)
        );
        assert!(parse(&[
            "ringfs",
            "format",
            "-c",
            "r.toml",
            "vol",
            "--block-size",
            "big"
        ])
        .is_err());

        let Command::Mount(m) = parse(&[
            "ringfs",
            "mount",
            "--config",
            "r.toml",
            "vol",
            "/mnt",
            "--background",
            "-o",
            "ro,noatime",
            "-o",
            "x=1",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(
            (
                m.volume.as_str(),
                m.mountpoint.to_str().unwrap(),
                m.background
            ),
            ("vol", "/mnt", true)
        );
        assert_eq!(m.options, ["ro", "noatime", "x=1"]);

        let Command::Umount(u) = parse(&["ringfs", "umount", "/mnt", "--lazy"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert!(u.lazy);
        let Command::Status(s) = parse(&["ringfs", "status", "-c", "r.toml", "vol"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(s.volume, "vol");
        assert!(matches!(
            parse(&["ringfs", "config", "check", "-c", "r.toml"])
                .unwrap()
                .command,
            Command::Config(ConfigCommand::Check(_))
        ));
        assert!(matches!(
            parse(&["ringfs", "config", "show", "-c", "r.toml"])
                .unwrap()
                .command,
            Command::Config(ConfigCommand::Show(_))
        ));
        let Command::Bench(b) = parse(&["ringfs", "bench"]).unwrap().command else {
            panic!()
        };
        assert_eq!(b.dir, None);
        let Command::Bench(b) = parse(&["ringfs", "bench", "/mnt/x"]).unwrap().command else {
            panic!()
        };
        assert_eq!(b.dir, Some(PathBuf::from("/mnt/x")));
    }
}
