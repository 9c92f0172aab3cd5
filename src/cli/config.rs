//! `ringfs config check` and `ringfs config show`.

use anyhow::Result;
use clap::Args;
use ringfs_engine::config::Config;

use super::{print_stdout, runtime, ConfigFileArg};

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub file: ConfigFileArg,
    /// Only validate the file; do not contact etcd or Swift.
    #[arg(long)]
    pub offline: bool,
}

/// Loads and validates the file (with environment overrides), then (unless `--offline`)
/// connects to etcd and authenticates to Swift the way a mount does, so a wrong endpoint,
/// password, project, domain or region fails here with the line a mount would print.
/// Prints `ok: <file>`; errors surface through `main` as one line (exit status 2 for a
/// bad file, 1 for a service that refuses).
pub fn check(args: &CheckArgs) -> Result<()> {
    let cfg = args.file.load()?;
    if !args.offline {
        runtime()?.block_on(async {
            ringfs_engine::setup::connect_etcd(&cfg).await?;
            ringfs_engine::setup::connect_swift(&cfg).await?;
            anyhow::Ok(())
        })?;
    }
    print_stdout(&format!("ok: {}\n", args.file.config.display()))
}

/// Prints the effective configuration with secrets redacted. A config that
/// parses but fails validation is still printed (that is when you want to
/// see it), and the validation error is reported afterwards (exit 2).
pub fn show(args: &ConfigFileArg) -> Result<()> {
    let cfg = Config::load_unvalidated(&args.config, std::env::vars_os())?;
    print_stdout(&cfg.to_toml_redacted())?;
    cfg.validate()?;
    Ok(())
}
