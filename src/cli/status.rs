//! `ferry status [--url URL | -c FILE] [--json]`: the state of a running Ferry, read from its status
//! server. Not built yet: the status server arrives with a later issue.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

/// Arguments of `ferry status`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry status --url http://127.0.0.1:9464\n  ferry status -c /etc/ferry/ferry.toml --json\n\n\
With -c, the status server address is agent.status_listen of that config."
)]
pub struct StatusArgs {
    /// Status server of the running Ferry.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Config file whose agent.status_listen names the status server.
    #[arg(
        short = 'c',
        long = "config",
        env = "FERRY_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry status`.
pub fn run(args: StatusArgs) -> ExitCode {
    if args.url.is_none() && args.config.is_none() {
        eprintln!("ferry status: say which Ferry to ask\n  help: pass --url http://127.0.0.1:9464 or -c FILE (or set FERRY_CONFIG)");
        return ExitCode::from(super::EXIT_CONFIG);
    }
    if args.url.is_none() {
        if let Some(path) = &args.config {
            if let Err(code) = super::load_or_report(path) {
                return code;
            }
        }
    }
    super::not_built("status", "the status server (a later issue)")
}
