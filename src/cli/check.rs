//! `ferry check -c FILE [--tenant NAME] [--json]`: live checks of each tenant. Not built yet: it
//! arrives with the tenant identity issue (issue 3).

use std::process::ExitCode;

use clap::Args;

use super::ConfigArg;

/// Arguments of `ferry check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry check -c /etc/ferry/ferry.toml\n  ferry check -c config/local.toml --tenant contoso --json\n\n\
Gets each token, lists each container, reads each customer key and resolves each endpoint; exits 1 when anything fails."
)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this tenant (by its `name` in the config).
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Print results as JSON, for automation.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry check`.
pub fn run(args: CheckArgs) -> ExitCode {
    if let Err(code) = super::load_or_report(&args.config.config) {
        return code;
    }
    super::not_built("check", "tenant identity (issue 3)")
}
