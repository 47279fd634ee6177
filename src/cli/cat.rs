//! `ferry cat BLOB_URL -c FILE`: print a shipped object, decrypted and decompressed. Not built yet:
//! it arrives with the customer-key and sink issues.

use std::process::ExitCode;

use clap::Args;

use super::ConfigArg;

/// Arguments of `ferry cat`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry cat https://providerlogs.blob.core.windows.net/shipped/tenant=contoso/source=audit/date=2026-11-27/hour=13/a.jsonl.zst -c /etc/ferry/ferry.toml"
)]
pub struct CatArgs {
    /// URL of the shipped object in provider storage.
    #[arg(value_name = "BLOB_URL")]
    pub blob_url: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Runs `ferry cat`.
pub fn run(args: CatArgs) -> ExitCode {
    if let Err(code) = super::load_or_report(&args.config.config) {
        return code;
    }
    super::not_built("cat", "customer keys and the sink (later issues)")
}
