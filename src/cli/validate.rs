//! `ferry validate -c FILE`: every problem in a config file, or a one-line summary.

use std::process::ExitCode;

use clap::Args;

use super::ConfigArg;
use crate::config::{AppCredential, LoadedConfig, ProviderCredential, SourceConfig};

/// Arguments of `ferry validate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  ferry validate -c config/local.toml\n\nPrints every problem as file:line:col: path: message, with a help line, and exits 2; \
on success prints one summary line and exits 0. Contacts nothing."
)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

/// Runs `ferry validate`.
pub fn run(args: ValidateArgs) -> ExitCode {
    match super::load_or_report(&args.config.config) {
        Ok(loaded) => super::print_then(
            "validate",
            format!("{}\n", summary(&loaded)),
            ExitCode::SUCCESS,
        ),
        Err(code) => code,
    }
}

/// `config/local.toml: ok: 2 tenants, 3 sources (2 blob, 1 log_analytics), app credential secret, destination credential managed_identity`
pub fn summary(loaded: &LoadedConfig) -> String {
    let c = &loaded.config;
    let sources: Vec<&SourceConfig> = c.tenants.iter().flat_map(|t| t.sources.iter()).collect();
    let blob = sources
        .iter()
        .filter(|s| matches!(s, SourceConfig::Blob(_)))
        .count();
    let la = sources.len() - blob;
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}: ok: {}, {} ({blob} blob, {la} log_analytics), app credential {}, destination credential {}",
        loaded.path.display(),
        plural(c.tenants.len(), "tenant"),
        plural(sources.len(), "source"),
        app_kind(&c.app.credential),
        provider_kind(&c.destination.credential),
    )
}

fn app_kind(c: &AppCredential) -> &'static str {
    match c {
        AppCredential::Secret { env: Some(_), .. } => "secret (env)",
        AppCredential::Secret { .. } => "secret (file)",
        AppCredential::KeyVaultSecret { .. } => "key_vault_secret",
        AppCredential::Certificate { .. } => "certificate",
        AppCredential::FederatedManagedIdentity { .. } => "federated_managed_identity",
        AppCredential::WorkloadIdentity { .. } => "workload_identity",
    }
}

fn provider_kind(c: &ProviderCredential) -> &'static str {
    match c {
        ProviderCredential::ManagedIdentity { .. } => "managed_identity",
        ProviderCredential::WorkloadIdentity { .. } => "workload_identity",
        ProviderCredential::App => "app",
    }
}
