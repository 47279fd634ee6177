//! `ferry run -c FILE [--once]`: the daemon. Not built yet: the pipeline arrives with a later issue.

use std::process::ExitCode;

use clap::Args;

use super::ConfigArg;

/// Arguments of `ferry run`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  ferry run -c /etc/ferry/ferry.toml\n  ferry run -c config/local.toml --once\n\n\
Stops gracefully on SIGTERM or SIGINT.")]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Ship what is there now, then exit (instead of polling until stopped).
    #[arg(long)]
    pub once: bool,
}

/// Runs `ferry run`.
pub fn run(args: RunArgs) -> ExitCode {
    if let Err(code) = super::load_or_report(&args.config.config) {
        return code;
    }
    super::not_built("run", "the shipping pipeline (a later issue)")
}
