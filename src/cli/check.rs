//! `ferry check -c FILE [--tenant NAME] [--json]`: live checks of each tenant (tokens, listing,
//! endpoints, keys) with the fix for each failure; exit 1 when anything fails, 2 on bad config.

use std::process::ExitCode;

use clap::Args;

use super::{ConfigArg, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME};
use crate::check::{render_human, render_json, run_checks};
use crate::config::did_you_mean;
use crate::identity::from_config::{http_settings, identity_settings};
use crate::identity::TokenProvider;

/// Arguments of `ferry check`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry check -c /etc/ferry/ferry.toml\n  ferry check -c config/local.toml --tenant contoso --json\n\n\
Gets each token, lists one page of each container, reads each customer key and unwraps a\n\
throwaway value, and resolves each endpoint (private or public). One row per check with the fix.\n\
Exit codes: 0 every check passed; 1 a check failed; 2 bad configuration or unknown tenant."
)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this tenant (by its `name` in the config); the destination is then not checked.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// Print results as JSON, for automation.
    #[arg(long)]
    pub json: bool,
}

/// Runs `ferry check`.
pub fn run(args: CheckArgs) -> ExitCode {
    let loaded = match super::load_or_report(&args.config.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Some(name) = &args.tenant {
        if loaded.tenant(name).is_none() {
            let names: Vec<&str> = loaded
                .config
                .tenants
                .iter()
                .map(|t| t.name.as_str())
                .collect();
            let hint = did_you_mean(name, &names)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            eprintln!(
                "ferry check: no tenant named \"{name}\" in {}\n  help: {hint}tenants in this config: {}",
                loaded.path.display(),
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let http = match http_settings(&loaded) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("ferry check: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let client = match http.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferry check: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let tokens = match identity_settings(&loaded, client) {
        Ok(s) => TokenProvider::new(s),
        Err(e) => {
            eprintln!("ferry check: {e}\n  help: {}", e.fix(""));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry check: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let report = runtime.block_on(run_checks(&loaded, &http, &tokens, args.tenant.as_deref()));
    let text = if args.json {
        format!("{}\n", render_json(&report))
    } else {
        render_human(&report)
    };
    if let Err(code) = super::write_stdout("check", text.as_bytes()) {
        return code;
    }
    if report.ok() {
        ExitCode::from(EXIT_OK)
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}
