//! The benchmark's sandbox: Azurite (pinned to its own core) + ferry-sim in this process, the
//! provider and `n` customer tenants onboarded (account `t{i}logs`, Reader on its container),
//! Azurite's account keys (for rclone), a Ferry config, and seeding of JSON-lines blobs.
//! Must not share a destination between runs: every run starts its own world.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use ferry_sim::sandbox::{Provider, ProviderSpec, Sandbox, SandboxOptions};
use futures::StreamExt as _;
use serde_json::json;

use crate::measure;

/// Container every customer ships from.
pub const SOURCE_CONTAINER: &str = "insights-logs-auditevent";
/// Destination account.
pub const DEST_ACCOUNT: &str = "providerlogs";
/// Destination container.
pub const DEST_CONTAINER: &str = "shipped";

/// One tenant of the benchmark.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Short name (`t0`).
    pub name: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Its storage account.
    pub account: String,
}

/// A running benchmark world.
pub struct World {
    /// Azurite + sim.
    pub sandbox: Sandbox,
    /// The provider.
    pub provider: Provider,
    /// Customers.
    pub tenants: Vec<Tenant>,
    /// Work directory (config, secrets, state, logs).
    pub dir: PathBuf,
    /// Azurite's pid.
    pub azurite_pid: u32,
}

impl World {
    /// Starts a fresh sandbox with `n` tenants, pins Azurite to the cores `azurite_core`.
    pub async fn start(dir: &Path, n: usize, azurite_core: &str) -> anyhow::Result<World> {
        std::fs::create_dir_all(dir)?;
        let before = measure::own_children();
        let tenants: Vec<Tenant> = (0..n)
            .map(|i| Tenant {
                name: format!("t{i}"),
                tenant_id: format!(
                    "{:08x}-0000-4000-8000-{:012x}",
                    0xbe00_0000u32 + i as u32,
                    i
                ),
                account: format!("t{i}logs"),
            })
            .collect();
        let mut accounts: Vec<String> = tenants.iter().map(|t| t.account.clone()).collect();
        accounts.push(DEST_ACCOUNT.into());
        let sandbox = Sandbox::start(SandboxOptions {
            dir: Some(dir.join("sandbox")),
            accounts,
            in_memory: true,
            imds_port: None,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow!("sandbox did not start: {e}"))?;
        let azurite_pid = measure::own_children()
            .into_iter()
            .find(|p| !before.contains(p))
            .ok_or_else(|| anyhow!("could not find azurite's pid among this process's children"))?;
        measure::pin(azurite_pid, azurite_core)?;
        let provider = sandbox
            .onboard_provider(&ProviderSpec {
                account: DEST_ACCOUNT.into(),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("provider onboarding: {e}"))?;
        // Light onboarding (no vault: the benchmark ships without CMK), concurrent.
        let app = provider.app_client_id.clone();
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(tenants.iter())
            .map(|t| onboard_light(&sandbox, &app, t))
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r?;
        }
        std::fs::write(dir.join("app-secret"), &provider.app_secret)?;
        std::fs::write(
            dir.join("identity-header"),
            sandbox.state().settings().identity_header,
        )?;
        std::fs::write(dir.join("ca.pem"), sandbox.ca_pem())?;
        Ok(World {
            sandbox,
            provider,
            tenants,
            dir: dir.to_path_buf(),
            azurite_pid,
        })
    }

    /// Azurite's `https://127.0.0.1:PORT`.
    pub fn azurite_url(&self) -> &str {
        self.sandbox.azurite_url()
    }

    /// The key Azurite was started with for `account` (read from its environment).
    pub fn account_key(&self, account: &str) -> anyhow::Result<String> {
        let env = measure::proc_environ(self.azurite_pid)?;
        let accounts = env
            .iter()
            .find(|(k, _)| k == "AZURITE_ACCOUNTS")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow!("azurite has no AZURITE_ACCOUNTS"))?;
        accounts
            .split(';')
            .filter_map(|kv| kv.split_once(':'))
            .find(|(a, _)| *a == account)
            .map(|(_, k)| k.to_string())
            .ok_or_else(|| anyhow!("no key for {account}"))
    }

    /// Writes a Ferry config: every tenant ships its container in `mode`; returns its path.
    pub fn ferry_config(
        &self,
        mode: &str,
        poll: &str,
        agent_extra: &str,
        direct: bool,
    ) -> anyhow::Result<PathBuf> {
        let port = self.sandbox.https_addr().port();
        // direct: every account host pinned to Azurite itself (Ferry's ordinary per-endpoint
        // `resolve`), as rclone reaches it; otherwise through the sim's gateway
        let pin = if direct {
            let azurite = url::Url::parse(self.azurite_url())?;
            let azurite_port = azurite
                .port()
                .ok_or_else(|| anyhow::anyhow!("azurite url {azurite} has no port"))?;
            format!("resolve = \"127.0.0.1:{azurite_port}\"\n")
        } else {
            String::new()
        };
        let mut toml = self.provider.ferry_config_head(port, agent_extra);
        toml.push_str(&pin);
        for t in &self.tenants {
            toml.push_str(&format!(
                "\n[[tenant]]\nname = \"{}\"\ntenant_id = \"{}\"\n\n  [[tenant.source]]\n  name = \"logs\"\n  kind = \"blob\"\n  account_url = \"https://{}.blob.sandbox.test\"\n  container = \"{SOURCE_CONTAINER}\"\n  mode = \"{mode}\"\n  poll_interval = \"{poll}\"\n  {pin}",
                t.name, t.tenant_id, t.account
            ));
        }
        let path = self.dir.join("ferry.toml");
        std::fs::write(&path, toml)?;
        Ok(path)
    }

    /// Seeds `count` blobs of about `size` bytes of JSON lines into each tenant's container,
    /// `concurrency` at a time. Blobs over 32 MiB are staged in 32 MiB blocks. Returns total bytes.
    pub async fn seed(
        &self,
        count_per_tenant: usize,
        size: usize,
        concurrency: usize,
    ) -> anyhow::Result<u64> {
        let mut jobs = Vec::new();
        for t in &self.tenants {
            let seeder = self
                .sandbox
                .seeder(&t.account)
                .await
                .map_err(|e| anyhow!("seeder for {}: {e}", t.account))?;
            for i in 0..count_per_tenant {
                jobs.push((seeder.clone(), t.name.clone(), i));
            }
        }
        let sizes: Vec<anyhow::Result<u64>> = futures::stream::iter(jobs)
            .map(|(seeder, tenant, i)| async move {
                let name = format!("data/{tenant}/b{i:05}.json");
                const BLOCK: usize = 32 << 20;
                if size <= BLOCK {
                    let body = json_lines(&format!("{tenant}-{i}"), 0, size);
                    let len = body.len() as u64;
                    seeder
                        .put_block_blob(SOURCE_CONTAINER, &name, body)
                        .await
                        .map_err(|e| anyhow!("seeding {name}: {e}"))?;
                    return Ok(len);
                }
                let mut ids = Vec::new();
                let mut total = 0u64;
                let mut k = 0usize;
                while (total as usize) < size {
                    let want = BLOCK.min(size - total as usize);
                    let body = json_lines(&format!("{tenant}-{i}-{k}"), k * 1_000_000, want);
                    let id = format!("block-{k:06}");
                    total += body.len() as u64;
                    seeder
                        .put_block(SOURCE_CONTAINER, &name, &id, body)
                        .await
                        .map_err(|e| anyhow!("seeding {name}: {e}"))?;
                    ids.push(id);
                    k += 1;
                    if want < BLOCK {
                        break;
                    }
                }
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                seeder
                    .put_block_list(SOURCE_CONTAINER, &name, &refs)
                    .await
                    .map_err(|e| anyhow!("committing {name}: {e}"))?;
                Ok(total)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut total = 0;
        for s in sizes {
            total += s?;
        }
        Ok(total)
    }

    /// Names in the destination container (first 5000).
    pub async fn destination_names(&self) -> anyhow::Result<Vec<String>> {
        let seeder = self
            .sandbox
            .seeder(DEST_ACCOUNT)
            .await
            .map_err(|e| anyhow!("destination seeder: {e}"))?;
        seeder
            .list_blobs(DEST_CONTAINER, "")
            .await
            .map_err(|e| anyhow!("listing the destination: {e}"))
    }

    /// `GET /admin/requests`.
    pub async fn request_counters(&self) -> anyhow::Result<serde_json::Value> {
        self.sandbox
            .admin_json(reqwest::Method::GET, "/admin/requests", None)
            .await
            .map_err(|e| anyhow!("GET /admin/requests: {e}"))
    }
}

/// Tenant, consent, storage account, Reader on the container, the container.
async fn onboard_light(sandbox: &Sandbox, app: &str, t: &Tenant) -> anyhow::Result<()> {
    let call = |m: reqwest::Method, p: String, b: Option<serde_json::Value>| async move {
        sandbox
            .admin_json(m.clone(), &p, b.as_ref())
            .await
            .map_err(|e| anyhow!("{m} {p}: {e}"))
    };
    let tid = &t.tenant_id;
    call(
        reqwest::Method::POST,
        "/admin/tenants".into(),
        Some(json!({"tenant_id": tid, "display_name": t.name})),
    )
    .await?;
    let consent = call(
        reqwest::Method::PUT,
        format!("/admin/tenants/{tid}/consent/{app}"),
        None,
    )
    .await?;
    let sp = consent
        .get("object_id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow!("consent answered without object_id"))?
        .to_string();
    call(
        reqwest::Method::POST,
        "/admin/storage-accounts".into(),
        Some(json!({"name": t.account, "tenant_id": tid})),
    )
    .await?;
    call(
        reqwest::Method::PUT,
        "/admin/role-assignments".into(),
        Some(json!({"account": t.account, "container": SOURCE_CONTAINER, "object_id": sp, "role": "Storage Blob Data Reader"})),
    )
    .await?;
    sandbox
        .seeder(&t.account)
        .await
        .map_err(|e| anyhow!("seeder {}: {e}", t.account))?
        .create_container(SOURCE_CONTAINER)
        .await
        .map_err(|e| anyhow!("container in {}: {e}", t.account))
        .context("onboarding")?;
    Ok(())
}

/// Diagnostic-log-shaped JSON lines tagged `tag`, whole lines, at most `size` bytes.
pub fn json_lines(tag: &str, first_seq: usize, size: usize) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(size);
    let mut line = Vec::with_capacity(512);
    let mut i = first_seq;
    loop {
        line.clear();
        let _ = writeln!(
            line,
            "{{\"time\":\"2026-11-27T10:{:02}:{:02}.{:07}Z\",\"resourceId\":\"/SUBSCRIPTIONS/0B2E5E5C-1111-4222-8333-444455556666/RESOURCEGROUPS/RG-{tag}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-{tag}\",\"category\":\"AuditEvent\",\"operationName\":\"SecretGet\",\"resultType\":\"Success\",\"callerIpAddress\":\"10.{}.{}.{}\",\"correlationId\":\"{:08x}-7d1e-4c3b-9a55-{:012x}\",\"identity\":{{\"claim\":{{\"oid\":\"{:08x}-0000-4000-8000-000000000001\",\"appid\":\"04b07795-8ddb-461a-bbee-02f9e1bf7b46\"}}}},\"properties\":{{\"id\":\"https://kv-{tag}.vault.azure.net/secrets/s{}\",\"clientInfo\":\"azsdk-net-Security.KeyVault.Secrets/4.5.0\",\"httpStatusCode\":200,\"seq\":\"{tag}-{i}\"}}}}",
            (i / 60) % 60,
            i % 60,
            (i.wrapping_mul(7919)) % 10_000_000,
            i % 251,
            (i / 251) % 251,
            (i * 13) % 251,
            i.wrapping_mul(2_654_435_761) as u32,
            i,
            (i % 97) as u32,
            i % 1000,
        );
        if out.len() + line.len() > size {
            break;
        }
        out.extend_from_slice(&line);
        i += 1;
    }
    out
}
