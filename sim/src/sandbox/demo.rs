//! The demo sandbox behind `ferry-sim sandbox up --dir .sandbox`: fixed ports and ids from
//! docs/sandbox.md, the provider and two customer tenants (contoso, fabrikam) with a little data,
//! `sandbox.json` and the secret/header files written into the directory; then it stays up until
//! Ctrl-C or SIGTERM. Prints paths and ids, never secret values.

use std::path::Path;

use serde_json::json;

use super::{CustomerSpec, ProviderSpec, Sandbox, SandboxError, SandboxOptions};
use crate::state::Settings;

/// App client id of the provider's multi-tenant app.
pub const APP_CLIENT_ID: &str = "11111111-1111-4111-8111-111111111111";
/// Provider tenant.
pub const PROVIDER_TENANT: &str = "22222222-2222-4222-8222-222222222222";
/// Contoso's tenant.
pub const CONTOSO_TENANT: &str = "33333333-3333-4333-8333-333333333333";
/// Fabrikam's tenant.
pub const FABRIKAM_TENANT: &str = "44444444-4444-4444-8444-444444444444";
/// Provider managed identity client id.
pub const MI_CLIENT_ID: &str = "55555555-5555-4555-8555-555555555555";
/// Sim https port.
pub const SIM_HTTPS_PORT: u16 = 18443;
/// Sim IMDS port.
pub const SIM_IMDS_PORT: u16 = 18080;
/// Azurite port.
pub const AZURITE_PORT: u16 = 18000;

/// The demo's fixed ids, for callers that generate configs.
#[derive(Debug, Clone, Copy)]
pub struct DemoIds;

impl DemoIds {
    /// `(name, tenant, account, vault)` of each demo customer.
    pub const CUSTOMERS: [(&'static str, &'static str, &'static str, &'static str); 2] = [
        ("contoso", CONTOSO_TENANT, "contosologs", "contoso-kv"),
        ("fabrikam", FABRIKAM_TENANT, "fabrikamlogs", "fabrikam-kv"),
    ];
}

fn write(dir: &Path, name: &str, text: &str) -> Result<(), SandboxError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| SandboxError::Io {
        what: format!("writing {}", path.display()),
        source: e,
    })
}

/// Ports of the demo sandbox.
#[derive(Debug, Clone, Copy)]
pub struct DemoPorts {
    /// Sim https (0: any).
    pub https: u16,
    /// Sim IMDS (0: any).
    pub imds: u16,
    /// Azurite (None: any).
    pub azurite: Option<u16>,
}

impl DemoPorts {
    /// The fixed ports of docs/sandbox.md (what `scripts/demo` and `config/local.toml` use).
    pub const FIXED: DemoPorts = DemoPorts {
        https: SIM_HTTPS_PORT,
        imds: SIM_IMDS_PORT,
        azurite: Some(AZURITE_PORT),
    };
    /// Free ports (tests).
    pub const ANY: DemoPorts = DemoPorts {
        https: 0,
        imds: 0,
        azurite: None,
    };
}

/// Starts the demo sandbox on the fixed ports in `dir`, provisions it, writes its files, prints a
/// summary and serves until Ctrl-C or SIGTERM.
pub async fn run_demo_sandbox(dir: &Path) -> Result<(), SandboxError> {
    let sandbox = start_demo_sandbox(dir, DemoPorts::FIXED).await?;
    println!("ferry sandbox is up in {}", dir.display());
    println!(
        "  sim https  {}  (pin *.sandbox.test to it; CA {})",
        sandbox.https_addr(),
        sandbox.ca_path().display()
    );
    if let Some(imds) = sandbox.imds_url() {
        println!("  sim imds   {imds}");
    }
    println!("  azurite    {}", sandbox.azurite_url());
    println!("  provider   tenant {PROVIDER_TENANT} app {APP_CLIENT_ID} (secret in app-secret)");
    for (name, tenant, account, vault) in DemoIds::CUSTOMERS {
        println!("  customer   {name} tenant {tenant} account {account} vault {vault}");
    }
    println!("  ids and ports: {}", dir.join("sandbox.json").display());
    println!("Ctrl-C or SIGTERM stops it.");
    wait_for_stop().await?;
    println!("ferry sandbox stopping");
    drop(sandbox);
    Ok(())
}

/// Starts and provisions the demo sandbox in `dir` (Azurite data under `dir/azurite`), writes
/// `sandbox.json`, `identity-header` (kept across restarts), `app-secret`, `app-cert.pem`,
/// `app-key.pem`, and returns it running.
pub async fn start_demo_sandbox(dir: &Path, ports: DemoPorts) -> Result<Sandbox, SandboxError> {
    let mut settings = Settings::default();
    if let Ok(header) = std::fs::read_to_string(dir.join("identity-header")) {
        if !header.trim().is_empty() {
            settings.identity_header = header.trim().to_string();
        }
    }
    let options = SandboxOptions {
        dir: Some(dir.to_path_buf()),
        accounts: vec![
            "contosologs".into(),
            "fabrikamlogs".into(),
            "providerlogs".into(),
        ],
        in_memory: false,
        https_port: ports.https,
        imds_port: Some(ports.imds),
        azurite_port: ports.azurite,
        settings,
        azurite_bin: None,
    };
    let sandbox = Sandbox::start(options).await?;
    let provider = sandbox
        .onboard_provider(&ProviderSpec {
            account: "providerlogs".into(),
            ..ProviderSpec::default()
        })
        .await?;
    let mut customers = Vec::new();
    for (name, tenant, account, vault) in DemoIds::CUSTOMERS {
        let customer = sandbox
            .onboard_customer(
                APP_CLIENT_ID,
                &CustomerSpec::new(name, tenant, account, vault),
            )
            .await?;
        seed_demo_logs(&sandbox, &customer.spec).await?;
        customers.push(customer);
    }
    let identity_header = sandbox.state().settings().identity_header;
    write(dir, "identity-header", &identity_header)?;
    write(dir, "app-secret", &provider.app_secret)?;
    write(dir, "app-cert.pem", &provider.app_certificate_pem)?;
    write(dir, "app-key.pem", &provider.app_certificate_key_pem)?;
    let summary = json!({
        "sim_https": sandbox.https_addr().to_string(),
        "sim_imds": sandbox.imds_url(),
        "azurite": sandbox.azurite_url(),
        "ca_file": "ca.pem",
        "authority_host": sandbox.authority_host(),
        "provider": {
            "tenant_id": provider.tenant_id,
            "app_client_id": provider.app_client_id,
            "app_secret_file": "app-secret",
            "app_certificate_file": "app-cert.pem",
            "app_key_file": "app-key.pem",
            "app_certificate_thumbprint_sha1": provider.app_certificate_thumbprint_sha1,
            "managed_identity_client_id": provider.managed_identity_client_id,
            "managed_identity_object_id": provider.managed_identity_object_id,
            "identity_endpoint": "https://identity.sandbox.test/msi/token",
            "identity_header_file": "identity-header",
            "account": provider.account,
            "blob_endpoint": sandbox.blob_endpoint(&provider.account),
            "container": provider.container,
        },
        "customers": customers.iter().map(|c| json!({
            "name": c.spec.name,
            "tenant_id": c.spec.tenant_id,
            "account": c.spec.account,
            "blob_endpoint": sandbox.blob_endpoint(&c.spec.account),
            "container": c.spec.container,
            "vault": c.spec.vault,
            "vault_url": sandbox.vault_url(&c.spec.vault),
            "key": c.spec.key,
            "key_id": c.key_id,
            "service_principal_object_id": c.service_principal_object_id,
        })).collect::<Vec<_>>(),
    });
    let pretty =
        serde_json::to_string_pretty(&summary).map_err(|e| SandboxError::Setup(e.to_string()))?;
    write(dir, "sandbox.json", &pretty)?;
    Ok(sandbox)
}

/// A few hours of Azure Monitor-shaped append blobs (JSON Lines) in the customer's container.
async fn seed_demo_logs(sandbox: &Sandbox, spec: &CustomerSpec) -> Result<(), SandboxError> {
    let seeder = sandbox.seeder(&spec.account).await?;
    let resource = format!(
        "/SUBSCRIPTIONS/00000000-0000-4000-8000-000000000000/RESOURCEGROUPS/{}-RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{}",
        spec.name.to_ascii_uppercase(),
        spec.vault.to_ascii_uppercase()
    );
    for hour in 0..3u32 {
        let blob = format!("resourceId={resource}/y=2026/m=11/d=27/h={hour:02}/m=00/PT1H.json");
        seeder.create_append_blob(&spec.container, &blob).await?;
        let mut lines = String::new();
        for i in 0..5u32 {
            lines.push_str(
                &json!({
                    "time": format!("2026-11-27T{hour:02}:{:02}:00.0000000Z", i * 7),
                    "resourceId": resource,
                    "category": "AuditEvent",
                    "operationName": "VaultGet",
                    "resultType": "Success",
                    "durationMs": 12 + i,
                    "callerIpAddress": "10.0.0.4",
                    "correlationId": uuid::Uuid::new_v4().to_string(),
                    "level": "Informational",
                    "location": "westeurope",
                    "properties": {"tenant": spec.name, "seq": i},
                })
                .to_string(),
            );
            lines.push('\n');
        }
        seeder
            .append_block(&spec.container, &blob, lines.into_bytes())
            .await?;
    }
    Ok(())
}

async fn wait_for_stop() -> Result<(), SandboxError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| SandboxError::Io {
            what: "installing the SIGTERM handler".into(),
            source: e,
        })?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(|e| SandboxError::Io { what: "waiting for Ctrl-C".into(), source: e }),
        _ = term.recv() => Ok(()),
    }
}
