//! `ferry consent-url -c FILE [--tenant NAME]`: the admin-consent URL of one tenant, or of all.

use std::process::ExitCode;

use clap::Args;

use super::{ConfigArg, EXIT_CONFIG};
use crate::config::did_you_mean;

/// Arguments of `ferry consent-url`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry consent-url -c config/local.toml --tenant contoso\n  ferry consent-url -c /etc/ferry/ferry.toml\n\n\
Send the URL to the customer's administrator: opening it grants the provider's app consent in their tenant."
)]
pub struct ConsentUrlArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only this tenant (by its `name` in the config); prints just the URL.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
}

/// Runs `ferry consent-url`.
pub fn run(args: ConsentUrlArgs) -> ExitCode {
    let loaded = match super::load_or_report(&args.config.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    match &args.tenant {
        Some(name) => match loaded.tenant(name) {
            Some(t) => super::print_then(
                "consent-url",
                format!("{}\n", loaded.consent_url(t)),
                ExitCode::SUCCESS,
            ),
            None => {
                let names: Vec<&str> = loaded
                    .config
                    .tenants
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                let hint = did_you_mean(name, &names)
                    .map(|s| format!("did you mean \"{s}\"? "))
                    .unwrap_or_default();
                let known = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                eprintln!(
                    "ferry consent-url: no tenant named \"{name}\" in {}\n  help: {hint}tenants in this config: {known}",
                    loaded.path.display()
                );
                ExitCode::from(EXIT_CONFIG)
            }
        },
        None => {
            let lines: String = loaded
                .config
                .tenants
                .iter()
                .map(|t| format!("{}\t{}\n", t.name, loaded.consent_url(t)))
                .collect();
            super::print_then("consent-url", &lines, ExitCode::SUCCESS)
        }
    }
}
