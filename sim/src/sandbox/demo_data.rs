//! Demo data for the two demo customers, shaped like what Ferry meets in Azure:
//! - contoso `encrypted-archives`: hourly diagnostic-log archives written with client-side
//!   encryption v2 under contoso's Key Vault key (CSE is for block blobs only), one per resource
//!   and hour;
//! - contoso `exports`: byte-exact binary exports (copy mode);
//! - fabrikam `insights-logs-signinlogs`: diagnostic-log archives as append blobs of JSON Lines,
//!   the post-2018 Azure Monitor shape, still growing.
//!
//! (The sandbox itself seeds plaintext append-blob archives in each customer's
//! `insights-logs-auditevent`.)
//!
//! The CSE writer here is deliberately independent of Ferry's own (Python SDK layout: `BE96(i)`
//! nonces, 4 MiB regions, RSA-OAEP wrap of `"2.0"` padded to 8 bytes + CEK), so Ferry's reader is
//! exercised against a writer it does not share code with.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

use super::{SandboxError, CUSTOMER_ADMIN_APP_ID, CUSTOMER_ADMIN_OBJECT_ID};
use crate::admin_client::AdminClient;

/// Region size of CSE v2 as the SDKs write it.
const REGION: usize = 4 * 1024 * 1024;

/// What was seeded.
#[derive(Debug, Default, Clone)]
pub struct DemoData {
    /// (account, container, blob, records or bytes) per blob.
    pub blobs: Vec<(String, String, String, u64)>,
}

fn lines(resource: &str, category: &str, hour: u32, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n {
        s.push_str(
            &json!({
                "time": format!("2026-11-27T{hour:02}:{:02}:{:02}Z", i % 60, (i * 7) % 60),
                "resourceId": resource,
                "category": category,
                "operationName": if i % 3 == 0 { "SecretGet" } else { "VaultGet" },
                "resultType": "Success",
                "durationMs": (i * 13) % 250,
                "callerIpAddress": format!("10.0.{}.{}", i % 200, (i * 3) % 250),
                "correlationId": uuid::Uuid::new_v4().to_string(),
                "level": "Informational",
                "location": "westeurope",
                "properties": {"seq": i, "hour": hour},
            })
            .to_string(),
        );
        s.push('\n');
    }
    s
}

fn archive_path(resource: &str, hour: u32) -> String {
    format!("resourceId={resource}/y=2026/m=11/d=27/h={hour:02}/m=00/PT1H.json")
}

/// Encrypts `plain` as CSE v2 under an RSA public key given as JWK `n`/`e`; returns the body and
/// the `encryptiondata` JSON.
fn cse_v2(plain: &[u8], kid: &str, n: &[u8], e: &[u8]) -> Result<(Vec<u8>, String), SandboxError> {
    let fail = |m: String| SandboxError::Setup(format!("demo encryption: {m}"));
    let mut cek = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut cek);
    let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|e| fail(e.to_string()))?;
    let mut body = Vec::with_capacity(plain.len() + plain.len().div_ceil(REGION) * 28);
    for (i, region) in plain.chunks(REGION).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), region)
            .map_err(|e| fail(e.to_string()))?;
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&sealed);
    }
    let public = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(n),
        rsa::BigUint::from_bytes_be(e),
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut payload = b"2.0\0\0\0\0\0".to_vec();
    payload.extend_from_slice(&cek);
    let wrapped = public
        .encrypt(
            &mut rand::rngs::OsRng,
            rsa::Oaep::new::<sha1::Sha1>(),
            &payload,
        )
        .map_err(|e| fail(e.to_string()))?;
    let meta = json!({
        "WrappedContentKey": {"KeyId": kid, "EncryptedKey": base64::engine::general_purpose::STANDARD.encode(wrapped), "Algorithm": "RSA-OAEP"},
        "EncryptionAgent": {"Protocol": "2.0", "EncryptionAlgorithm": "AES_GCM_256"},
        "EncryptedRegionInfo": {"DataLength": REGION, "NonceLength": 12},
        "KeyWrappingMetadata": {"EncryptionLibrary": "ferry-sim demo (Python SDK layout)"},
        "EncryptionMode": "FullBlob",
    });
    Ok((body, meta.to_string()))
}

/// Writes demo data over HTTP through the sim (admin API for tokens, gateway for blobs), so it
/// works from another process than the one running the sandbox.
pub struct DemoSeeder<'a> {
    admin: &'a AdminClient,
}

fn setup_err(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup(format!("demo data: {what}: {e}"))
}

impl<'a> DemoSeeder<'a> {
    /// A seeder using `admin` (whose HTTP client trusts the CA and pins `*.sandbox.test`).
    pub fn new(admin: &'a AdminClient) -> Self {
        DemoSeeder { admin }
    }

    async fn storage_token(&self, account: &str, tenant: &str) -> Result<String, SandboxError> {
        self.admin
            .put(
                "/role-assignments",
                json!({"account": account, "container": "*", "object_id": CUSTOMER_ADMIN_OBJECT_ID, "role": "Storage Blob Data Owner"}),
            )
            .await
            .map_err(|e| setup_err("owner role", e))?;
        self.admin
            .mint_token(
                tenant,
                "https://storage.azure.com",
                CUSTOMER_ADMIN_OBJECT_ID,
                Some(CUSTOMER_ADMIN_APP_ID),
            )
            .await
            .map_err(|e| setup_err("storage token", e))
    }

    async fn blob_put(
        &self,
        token: &str,
        url: String,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<(), SandboxError> {
        let mut req = self
            .admin
            .http()
            .put(&url)
            .bearer_auth(token)
            .header("x-ms-version", "2024-11-04")
            .header("content-length", body.len());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| setup_err(&url, e))?;
        let status = resp.status();
        if status.is_success() || status.as_u16() == 409 {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        Err(setup_err(&url, format!("HTTP {status}: {text}")))
    }

    /// The public half of a vault key, read through the vault with a customer-admin token.
    async fn vault_public_key(
        &self,
        tenant: &str,
        vault: &str,
        key: &str,
    ) -> Result<(String, Vec<u8>, Vec<u8>), SandboxError> {
        let fail = |m: String| SandboxError::Setup(format!("reading {vault}/{key}: {m}"));
        self.admin
            .put(
                &format!("/vaults/{vault}/access"),
                json!({"object_id": CUSTOMER_ADMIN_OBJECT_ID, "keys": ["get"], "secrets": []}),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        let token = self
            .admin
            .mint_token(
                tenant,
                "https://vault.sandbox.test",
                CUSTOMER_ADMIN_OBJECT_ID,
                Some(CUSTOMER_ADMIN_APP_ID),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        let url = format!("https://{vault}.vault.sandbox.test/keys/{key}?api-version=7.5");
        let resp = self
            .admin
            .http()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let v: Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}: {v}")));
        }
        let b64 = |f: &str| {
            v["key"][f]
                .as_str()
                .and_then(|s| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(s.trim_end_matches('='))
                        .ok()
                })
                .ok_or_else(|| fail(format!("key has no {f}")))
        };
        let kid = v["key"]["kid"]
            .as_str()
            .ok_or_else(|| fail("key has no kid".into()))?
            .to_string();
        Ok((kid, b64("n")?, b64("e")?))
    }

    /// Seeds the demo customers' containers; `round` > 0 adds another hour of encrypted
    /// archives and export, and appends to the growing archive.
    pub async fn seed(&self, round: u32) -> Result<DemoData, SandboxError> {
        let mut out = DemoData::default();
        let hour = 9 + round;
        // the demo config (config/local.toml) reads these containers too: Reader for the app on
        // each, granted once (later rounds must not undo a revocation the demo makes)
        let grants: &[(&str, &str, &str)] = if round > 0 {
            &[]
        } else {
            &[
                ("contosologs", "exports", super::demo::CONTOSO_TENANT),
                (
                    "contosologs",
                    "encrypted-archives",
                    super::demo::CONTOSO_TENANT,
                ),
                (
                    "fabrikamlogs",
                    "insights-logs-signinlogs",
                    super::demo::FABRIKAM_TENANT,
                ),
            ]
        };
        for (account, container, tenant) in grants {
            self.admin
                .put(
                    "/role-assignments",
                    json!({"account": account, "container": container, "tenant_id": tenant, "app_id": super::demo::APP_CLIENT_ID, "role": "Storage Blob Data Reader"}),
                )
                .await
                .map_err(|e| setup_err("reader role", e))?;
        }
        let contoso = "https://contosologs.blob.sandbox.test";
        let token = self
            .storage_token("contosologs", super::demo::CONTOSO_TENANT)
            .await?;
        for c in ["encrypted-archives", "exports"] {
            self.blob_put(
                &token,
                format!("{contoso}/{c}?restype=container"),
                &[],
                Vec::new(),
            )
            .await?;
        }
        let (kid, n, e) = self
            .vault_public_key(super::demo::CONTOSO_TENANT, "contoso-kv", "ferry-cmk")
            .await?;
        for (i, name) in ["billing-kv", "payments-kv", "hr-kv"].iter().enumerate() {
            let resource = format!(
                "/SUBSCRIPTIONS/0B1F6471-1BF0-4DDA-AEC3-CB9272F09590/RESOURCEGROUPS/PROD/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{}",
                name.to_uppercase()
            );
            let records = 200 + 150 * i;
            let plain = lines(&resource, "AuditEvent", hour, records);
            let (body, meta) = cse_v2(plain.as_bytes(), &kid, &n, &e)?;
            let blob = archive_path(&resource, hour);
            self.blob_put(
                &token,
                format!("{contoso}/encrypted-archives/{blob}"),
                &[
                    ("x-ms-blob-type", "BlockBlob"),
                    ("x-ms-meta-encryptiondata", &meta),
                ],
                body,
            )
            .await?;
            out.blobs.push((
                "contosologs".into(),
                "encrypted-archives".into(),
                blob,
                records as u64,
            ));
        }
        let size = 3 * 1024 * 1024 + 12345;
        let mut data = vec![0u8; size];
        rand::rngs::OsRng.fill_bytes(&mut data);
        let blob = format!("daily/2026-11-27/export-{round:02}.parquet");
        self.blob_put(
            &token,
            format!("{contoso}/exports/{blob}"),
            &[("x-ms-blob-type", "BlockBlob")],
            data,
        )
        .await?;
        out.blobs
            .push(("contosologs".into(), "exports".into(), blob, size as u64));

        let fabrikam = "https://fabrikamlogs.blob.sandbox.test";
        let token = self
            .storage_token("fabrikamlogs", super::demo::FABRIKAM_TENANT)
            .await?;
        self.blob_put(
            &token,
            format!("{fabrikam}/insights-logs-signinlogs?restype=container"),
            &[],
            Vec::new(),
        )
        .await?;
        let resource = "/TENANTS/44444444-4444-4444-8444-444444444444/PROVIDERS/MICROSOFT.AADIAM";
        let blob = archive_path(resource, 9);
        let url = format!("{fabrikam}/insights-logs-signinlogs/{blob}");
        if round == 0 {
            self.blob_put(
                &token,
                url.clone(),
                &[("x-ms-blob-type", "AppendBlob")],
                Vec::new(),
            )
            .await?;
        }
        for _ in 0..3 {
            let body = lines(resource, "SignInLogs", 9, 120).into_bytes();
            self.blob_put(&token, format!("{url}?comp=appendblock"), &[], body)
                .await?;
        }
        out.blobs.push((
            "fabrikamlogs".into(),
            "insights-logs-signinlogs".into(),
            blob,
            360,
        ));
        Ok(out)
    }
}

/// The admin client of a running sandbox, from its directory (`sandbox.json`, `ca.pem`).
pub fn admin_from_dir(dir: &std::path::Path) -> Result<AdminClient, SandboxError> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| {
            SandboxError::Setup(format!(
                "cannot read {}: {e}; is the sandbox up (ferry-sim sandbox up --dir {})?",
                dir.join(name).display(),
                dir.display()
            ))
        })
    };
    let summary: Value = serde_json::from_str(&read("sandbox.json")?)
        .map_err(|e| SandboxError::Setup(format!("sandbox.json is not JSON: {e}")))?;
    let addr = summary["sim_https"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| SandboxError::Setup("sandbox.json has no sim_https address".into()))?;
    AdminClient::new(&read("ca.pem")?, addr).map_err(|e| setup_err("admin client", e))
}

/// Lists a container of a running sandbox as the customer admin: name, size and Ferry's metadata.
pub async fn list_container(
    admin: &AdminClient,
    account: &str,
    tenant: &str,
    container: &str,
) -> Result<Vec<(String, u64, Vec<(String, String)>)>, SandboxError> {
    let seeder = DemoSeeder::new(admin);
    let token = seeder.storage_token(account, tenant).await?;
    let url = format!("https://{account}.blob.sandbox.test/{container}?restype=container&comp=list&include=metadata");
    let resp = admin
        .http()
        .get(&url)
        .bearer_auth(token)
        .header("x-ms-version", "2024-11-04")
        .send()
        .await
        .map_err(|e| setup_err(&url, e))?;
    let status = resp.status();
    let xml = resp.text().await.map_err(|e| setup_err(&url, e))?;
    if !status.is_success() {
        return Err(setup_err(&url, format!("HTTP {status}: {xml}")));
    }
    let mut out = Vec::new();
    for blob in xml.split("<Blob>").skip(1) {
        let field = |tag: &str| {
            blob.split(&format!("<{tag}>"))
                .nth(1)
                .and_then(|r| r.split(&format!("</{tag}>")).next())
                .unwrap_or("")
                .to_string()
        };
        let meta = blob
            .split("<Metadata>")
            .nth(1)
            .and_then(|m| m.split("</Metadata>").next())
            .unwrap_or("");
        let mut pairs = Vec::new();
        for part in meta
            .split("</")
            .filter_map(|p| p.rsplit_once('<').map(|(_, kv)| kv.to_string()))
        {
            if let Some((k, v)) = part.split_once('>') {
                if k.starts_with("ferry_") {
                    pairs.push((k.to_string(), v.to_string()));
                }
            }
        }
        out.push((
            field("Name"),
            field("Content-Length").parse().unwrap_or(0),
            pairs,
        ));
    }
    Ok(out)
}
