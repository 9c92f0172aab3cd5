//! `ringfs config check` and `ringfs config show`.

use anyhow::Result;
use ringfs_engine::config::Config;

use super::{print_stdout, ConfigFileArg};

/// Loads and validates the file (with environment overrides) and prints
/// `ok: <file>`; errors surface through `main` as one line and exit status 2.
pub fn check(args: &ConfigFileArg) -> Result<()> {
    args.load()?;
    print_stdout(&format!("ok: {}\n", args.config.display()))
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
