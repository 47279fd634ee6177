//! `ferry-sim`: run the simulator, make its CA, and drive its admin API from a shell.
//!
//! CLI and glue only: everything it does is in the library. Exit codes: 0 ok, 1 runtime
//! failure, 2 usage error (clap).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use ferry_sim::ca::SandboxCertificates;
use ferry_sim::{AdminClient, FaultSpec, ServeConfig, Settings, SimConfig};

#[derive(Parser)]
#[command(
    name = "ferry-sim",
    version,
    about = "A local stand-in for Entra ID, managed identity, Key Vault and a storage gateway in front of Azurite",
    after_help = "Examples:\n  ferry-sim sandbox up --dir .sandbox\n  ferry-sim ca generate --dir .sandbox\n  ferry-sim serve --dir .sandbox --listen 127.0.0.1:18443 --imds-listen 127.0.0.1:18080 --azurite-url https://127.0.0.1:18000\n  ferry-sim admin --dir .sandbox consent --tenant 33333333-3333-4333-8333-333333333333 --app 11111111-1111-4111-8111-111111111111\n  ferry-sim admin --dir .sandbox fault add --host '*.blob.sandbox.test' --status 503 --retry-after-secs 2 --count 3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve https (all sim hosts) and optionally the plain-http IMDS shape until Ctrl-C.
    #[command(
        after_help = "Example:\n  ferry-sim serve --dir .sandbox --listen 127.0.0.1:18443 --imds-listen 127.0.0.1:18080 --azurite-url https://127.0.0.1:18000 --accounts contosologs,fabrikamlogs,providerlogs\n\nThe CA and server certificate are loaded from DIR (generated there if missing); the App Service\nidentity header is read from DIR/identity-header (written there if missing)."
    )]
    Serve {
        /// Sandbox directory holding ca.pem, server.pem, server-key.pem, identity-header.
        #[arg(long)]
        dir: PathBuf,
        /// https listen address.
        #[arg(long, default_value = "127.0.0.1:18443")]
        listen: SocketAddr,
        /// Plain-http IMDS listen address.
        #[arg(long)]
        imds_listen: Option<SocketAddr>,
        /// Azurite's base URL, the storage gateway's upstream.
        #[arg(long)]
        azurite_url: Option<String>,
        /// Azurite's account names (comma-separated); storage accounts registered through the
        /// admin API must be one of them.
        #[arg(long, value_delimiter = ',')]
        accounts: Vec<String>,
    },
    /// Test CA and certificates.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The demo sandbox: Azurite and the sim on the fixed ports, provisioned with the demo tenants.
    Sandbox {
        #[command(subcommand)]
        command: SandboxCommand,
    },
    /// Call the admin API of a running sim.
    #[command(
        after_help = "Examples:\n  ferry-sim admin --dir .sandbox revoke-consent --tenant 33333333-3333-4333-8333-333333333333 --app 11111111-1111-4111-8111-111111111111\n  ferry-sim admin --dir .sandbox rotate-secret --app 11111111-1111-4111-8111-111111111111 --write .sandbox/app-secret --remove OLD_ID\n  ferry-sim admin --dir .sandbox fault add --host contosologs.blob.sandbox.test --reset-after-bytes 1000 --count 1\n  ferry-sim admin --dir .sandbox fault clear"
    )]
    Admin(AdminArgs),
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Start Azurite and the sim (https 18443, IMDS 18080, Azurite 18000), provision the demo
    /// tenants, write the sandbox files into DIR and serve until Ctrl-C or SIGTERM.
    #[command(after_help = "Example:\n  ferry-sim sandbox up --dir .sandbox")]
    Up {
        /// Sandbox directory (ca.pem, identity-header, app-secret, sandbox.json, Azurite data).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write the demo customers' data into a running sandbox (round 0 first; later rounds add a
    /// new hour and grow the append-blob archives).
    #[command(after_help = "Example:\n  ferry-sim sandbox seed --dir .sandbox --round 1")]
    Seed {
        /// Directory of the running sandbox.
        #[arg(long)]
        dir: PathBuf,
        /// Which round of data.
        #[arg(long, default_value_t = 0)]
        round: u32,
    },
    /// List a container of a running sandbox with each object's size and ferry_* metadata.
    #[command(
        after_help = "Example:\n  ferry-sim sandbox ls --dir .sandbox --account providerlogs --container shipped"
    )]
    Ls {
        /// Directory of the running sandbox.
        #[arg(long)]
        dir: PathBuf,
        /// Storage account.
        #[arg(long)]
        account: String,
        /// Container.
        #[arg(long)]
        container: String,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Write a new CA, a server certificate for the sim and one for Azurite into DIR.
    #[command(after_help = "Example:\n  ferry-sim ca generate --dir .sandbox")]
    Generate {
        /// Target directory (created if missing; existing files are replaced).
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Args)]
struct AdminArgs {
    /// Sandbox directory (its ca.pem is trusted).
    #[arg(long)]
    dir: PathBuf,
    /// The sim's https address.
    #[arg(long, default_value = "127.0.0.1:18443")]
    sim: SocketAddr,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a tenant.
    AddTenant {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Register a multi-tenant app (consented in its home tenant); prints its client id.
    AddApp {
        #[arg(long)]
        home_tenant: String,
        #[arg(long)]
        client_id: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// Admin consent in a tenant (creates the service principal); prints its object id.
    Consent {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        app: String,
    },
    /// Withdraw consent (the tenant then answers AADSTS700016).
    RevokeConsent {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        app: String,
    },
    /// Remove the service principal but keep the app referenced (AADSTS7000229).
    OrphanSp {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        app: String,
    },
    /// Disable the app everywhere (AADSTS7000112).
    DisableApp {
        #[arg(long)]
        app: String,
    },
    /// Enable the app again.
    EnableApp {
        #[arg(long)]
        app: String,
    },
    /// Add a new client secret, write it to a file (never printed), optionally remove old ones.
    RotateSecret {
        #[arg(long)]
        app: String,
        /// File to write the new secret to.
        #[arg(long)]
        write: PathBuf,
        /// Secret ids to remove after adding the new one.
        #[arg(long)]
        remove: Vec<String>,
        /// Lifetime of the new secret.
        #[arg(long)]
        expires_in_secs: Option<i64>,
    },
    /// Mark a secret expired (AADSTS7000222).
    ExpireSecret {
        #[arg(long)]
        app: String,
        #[arg(long)]
        id: String,
    },
    /// Register a certificate (PEM file) on the app; prints its thumbprints.
    AddCertificate {
        #[arg(long)]
        app: String,
        #[arg(long)]
        pem: PathBuf,
    },
    /// Remove a certificate by SHA-1 thumbprint.
    RemoveCertificate {
        #[arg(long)]
        app: String,
        #[arg(long)]
        thumbprint: String,
    },
    /// Add a federated credential; prints its id.
    AddFederatedCredential {
        #[arg(long)]
        app: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        subject: String,
        #[arg(long, default_value = "api://AzureADTokenExchange")]
        audience: Vec<String>,
    },
    /// Create a user-assigned managed identity; prints client and object ids.
    AddManagedIdentity {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: Option<String>,
    },
    /// Change token lifetime and federated credential propagation delay.
    Settings {
        #[arg(long)]
        token_lifetime_secs: Option<u64>,
        /// New federated credentials answer AADSTS70021 for this many seconds.
        #[arg(long)]
        federated_propagation_secs: Option<u64>,
    },
    /// Print request counts as JSON.
    Requests,
    /// Call any admin route: METHOD PATH (under /admin) and an optional JSON body; prints the answer.
    #[command(
        after_help = "Example:\n  ferry-sim admin --dir .sandbox raw POST /vaults/contoso-kv/keys/ferry-cmk/disable '{}'"
    )]
    Raw {
        /// GET, POST, PUT or DELETE.
        method: String,
        /// Route under /admin, e.g. /role-assignments.
        path: String,
        /// JSON body.
        body: Option<String>,
    },
    /// Fault injection.
    Fault {
        #[command(subcommand)]
        command: FaultCommand,
    },
}

#[derive(Subcommand)]
enum FaultCommand {
    /// Install a fault rule; prints its id.
    Add {
        /// Host glob, e.g. '*.blob.sandbox.test'.
        #[arg(long)]
        host: Option<String>,
        #[arg(long)]
        method: Option<String>,
        #[arg(long)]
        path_prefix: Option<String>,
        #[arg(long)]
        status: Option<u16>,
        #[arg(long)]
        error_code: Option<String>,
        #[arg(long)]
        retry_after_secs: Option<u64>,
        #[arg(long)]
        retry_after_ms: Option<u64>,
        #[arg(long)]
        latency_ms: Option<u64>,
        /// Serve the request, then hold its response back this long.
        #[arg(long)]
        response_latency_ms: Option<u64>,
        #[arg(long)]
        reset_after_bytes: Option<u64>,
        /// Close connections without answering.
        #[arg(long)]
        outage: bool,
        /// Apply to the next N matching requests only.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Remove one rule (--id) or all rules.
    Clear {
        #[arg(long)]
        id: Option<String>,
    },
    /// List rules as JSON.
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            dir,
            listen,
            imds_listen,
            azurite_url,
            accounts,
        } => serve(&dir, listen, imds_listen, azurite_url, accounts).await,
        Command::Ca {
            command: CaCommand::Generate { dir },
        } => {
            SandboxCertificates::generate_into(&dir)?;
            println!(
                "wrote ca.pem, server.pem, azurite.pem and their keys to {}",
                dir.display()
            );
            Ok(())
        }
        Command::Sandbox {
            command: SandboxCommand::Up { dir },
        } => Ok(ferry_sim::sandbox::run_demo_sandbox(&dir).await?),
        Command::Sandbox {
            command: SandboxCommand::Seed { dir, round },
        } => {
            let admin = ferry_sim::sandbox::admin_from_dir(&dir)?;
            let data = ferry_sim::sandbox::DemoSeeder::new(&admin)
                .seed(round)
                .await?;
            for (account, container, blob, size) in data.blobs {
                println!("  {account}/{container}/{blob}  ({size})");
            }
            Ok(())
        }
        Command::Sandbox {
            command:
                SandboxCommand::Ls {
                    dir,
                    account,
                    container,
                },
        } => {
            let admin = ferry_sim::sandbox::admin_from_dir(&dir)?;
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("sandbox.json"))?)?;
            let tenant = if summary["provider"]["account"].as_str() == Some(account.as_str()) {
                summary["provider"]["tenant_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            } else {
                summary["customers"]
                    .as_array()
                    .and_then(|cs| {
                        cs.iter()
                            .find(|c| c["account"].as_str() == Some(account.as_str()))
                    })
                    .and_then(|c| c["tenant_id"].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let blobs =
                ferry_sim::sandbox::list_container(&admin, &account, &tenant, &container).await?;
            println!("{} objects in {account}/{container}:", blobs.len());
            for (name, size, meta) in blobs {
                let records = meta
                    .iter()
                    .find(|(k, _)| k == "ferry_records")
                    .map(|(_, v)| format!(", {v} records"))
                    .unwrap_or_default();
                let range = meta
                    .iter()
                    .find(|(k, _)| k == "ferry_source_range")
                    .map(|(_, v)| format!(", source bytes {v}"))
                    .unwrap_or_default();
                println!("  {name}  ({size} B{records}{range})");
            }
            Ok(())
        }
        Command::Admin(args) => admin(args).await,
    }
}

fn identity_header(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("identity-header");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        _ => {
            let value = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, &value).with_context(|| format!("writing {}", path.display()))?;
            Ok(value)
        }
    }
}

async fn serve(
    dir: &Path,
    listen: SocketAddr,
    imds_listen: Option<SocketAddr>,
    azurite_url: Option<String>,
    accounts: Vec<String>,
) -> anyhow::Result<()> {
    let certs = SandboxCertificates::load_or_generate(dir)?;
    let settings = Settings {
        identity_header: identity_header(dir)?,
        ..Settings::default()
    };
    let sim = ferry_sim::serve(ServeConfig {
        https_listen: listen,
        imds_listen,
        server_cert_pem: certs.server.chain_pem.clone(),
        server_key_pem: certs.server.key_pem.clone(),
        settings,
        config: SimConfig {
            azurite_url,
            ca_pem: certs.ca_pem.clone(),
        },
    })
    .await?;
    if !accounts.is_empty() {
        ferry_sim::state::lock(&sim.state().storage).azurite_accounts = Some(accounts);
    }
    eprintln!(
        "ferry-sim serving https on {} (IMDS http on {}); CA {}; Ctrl-C stops",
        sim.https_addr(),
        sim.imds_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
        dir.join("ca.pem").display()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}

fn print_json(v: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let ca_path = args.dir.join("ca.pem");
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    let c = AdminClient::new(&ca, args.sim)?;
    match args.command {
        AdminCommand::AddTenant { tenant, name } => c.add_tenant(&tenant, name.as_deref()).await?,
        AdminCommand::AddApp {
            home_tenant,
            client_id,
            name,
        } => {
            println!(
                "{}",
                c.add_app(client_id.as_deref(), &home_tenant, name.as_deref())
                    .await?
            )
        }
        AdminCommand::Consent { tenant, app } => println!("{}", c.consent(&tenant, &app).await?),
        AdminCommand::RevokeConsent { tenant, app } => c.revoke_consent(&tenant, &app).await?,
        AdminCommand::OrphanSp { tenant, app } => c.orphan_service_principal(&tenant, &app).await?,
        AdminCommand::DisableApp { app } => c.disable_app(&app).await?,
        AdminCommand::EnableApp { app } => c.enable_app(&app).await?,
        AdminCommand::RotateSecret {
            app,
            write,
            remove,
            expires_in_secs,
        } => {
            let added = c.add_secret(&app, None, expires_in_secs).await?;
            std::fs::write(&write, &added.value)
                .with_context(|| format!("writing {}", write.display()))?;
            for id in remove {
                c.remove_secret(&app, &id).await?;
            }
            println!("new secret id {} written to {}", added.id, write.display());
        }
        AdminCommand::ExpireSecret { app, id } => c.expire_secret(&app, &id).await?,
        AdminCommand::AddCertificate { app, pem } => {
            let text = std::fs::read_to_string(&pem)
                .with_context(|| format!("reading {}", pem.display()))?;
            let t = c.add_certificate(&app, &text).await?;
            println!("sha1 {} sha256 {}", t.thumbprint_sha1, t.thumbprint_sha256);
        }
        AdminCommand::RemoveCertificate { app, thumbprint } => {
            c.remove_certificate(&app, &thumbprint).await?
        }
        AdminCommand::AddFederatedCredential {
            app,
            issuer,
            subject,
            audience,
        } => {
            let audiences: Vec<&str> = audience.iter().map(String::as_str).collect();
            println!(
                "{}",
                c.add_federated_credential(&app, &issuer, &subject, &audiences)
                    .await?
            );
        }
        AdminCommand::AddManagedIdentity { tenant, client_id } => {
            let mi = c
                .add_managed_identity(&tenant, client_id.as_deref())
                .await?;
            println!("client_id {} object_id {}", mi.client_id, mi.object_id);
        }
        AdminCommand::Settings {
            token_lifetime_secs,
            federated_propagation_secs,
        } => {
            c.update_settings(token_lifetime_secs, None).await?;
            if let Some(secs) = federated_propagation_secs {
                c.set_federated_propagation_secs(secs).await?;
            }
        }
        AdminCommand::Requests => print_json(&c.requests().await?)?,
        AdminCommand::Raw { method, path, body } => {
            let body: Option<serde_json::Value> = match body {
                Some(b) => Some(serde_json::from_str(&b).context("the body is not JSON")?),
                None => None,
            };
            let answer = match method.to_ascii_uppercase().as_str() {
                "GET" => c.get(&path).await?,
                "POST" => {
                    c.post(&path, body.unwrap_or(serde_json::Value::Null))
                        .await?
                }
                "PUT" => {
                    c.put(&path, body.unwrap_or(serde_json::Value::Null))
                        .await?
                }
                "DELETE" => c.delete(&path, body).await?,
                other => anyhow::bail!("unknown method {other}: use GET, POST, PUT or DELETE"),
            };
            if !answer.is_null() {
                print_json(&answer)?;
            }
        }
        AdminCommand::Fault { command } => match command {
            FaultCommand::Add {
                host,
                method,
                path_prefix,
                status,
                error_code,
                retry_after_secs,
                retry_after_ms,
                latency_ms,
                response_latency_ms,
                reset_after_bytes,
                outage,
                count,
            } => {
                let spec = FaultSpec {
                    host,
                    method,
                    path_prefix,
                    status,
                    error_code,
                    retry_after_secs,
                    retry_after_ms,
                    latency_ms,
                    response_latency_ms,
                    reset_after_bytes,
                    outage,
                    count,
                };
                println!("{}", c.add_fault(&spec).await?);
            }
            FaultCommand::Clear { id: Some(id) } => c.remove_fault(&id).await?,
            FaultCommand::Clear { id: None } => c.clear_faults().await?,
            FaultCommand::List => print_json(&c.get("/faults").await?)?,
        },
    }
    Ok(())
}
