//! `ferry cat BLOB_URL -c FILE`: print a shipped object to stdout, decrypted with its tenant's
//! key when it was kept under the customer's key, decompressed, and checked against the length
//! and SHA-256 in its metadata. The work is `cmk::read_shipped`; this file only prints.

use std::process::ExitCode;

use clap::Args;

use super::{ConfigArg, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME};

/// Arguments of `ferry cat`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry cat https://providerlogs.blob.core.windows.net/shipped/tenant=contoso/source=audit/date=2026-11-27/hour=13/app.log@de7abf3e634c.00000000000000000000.jsonl.zst -c /etc/ferry/ferry.toml"
)]
pub struct CatArgs {
    /// URL of the shipped object in provider storage (under destination.account_url; any other
    /// account is refused before a token is sent).
    #[arg(value_name = "BLOB_URL")]
    pub blob_url: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Runs `ferry cat`.
pub fn run(args: CatArgs) -> ExitCode {
    let loaded = match super::load_or_report(&args.config.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry cat: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match runtime.block_on(crate::cmk::read_shipped(&loaded, &args.blob_url)) {
        Ok(plain) => super::print_then("cat", &plain, ExitCode::from(EXIT_OK)),
        Err(e) => {
            eprintln!("ferry cat: {e}");
            ExitCode::from(if e.is_config_or_usage() {
                EXIT_CONFIG
            } else {
                EXIT_RUNTIME
            })
        }
    }
}
