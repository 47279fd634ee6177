//! Helpers of the customer-key tests: build CSE v2/v2.1 blobs by hand (Python, Java and .NET
//! nonces), wrap their content keys with the customer's key in the sim's Key Vault, upload them
//! with their `encryptiondata`, and look at quarantine rows.
#![allow(dead_code)]

use aes_gcm::aead::{Aead as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use rand::RngCore as _;

use super::common::World;

/// Nonce encodings of the three SDKs.
#[derive(Debug, Clone, Copy)]
pub enum Nonces {
    /// BE96(i).
    Python,
    /// BE64(i) || 0x00000000.
    Java,
    /// 0x00000000 || LE64(i+1).
    DotNet,
}

fn nonce(n: Nonces, i: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    match n {
        Nonces::Python => out[4..].copy_from_slice(&i.to_be_bytes()),
        Nonces::Java => out[..8].copy_from_slice(&i.to_be_bytes()),
        Nonces::DotNet => out[4..].copy_from_slice(&(i + 1).to_le_bytes()),
    }
    out
}

/// The configured key URL of a customer.
pub fn key_url(customer: &str) -> String {
    format!("https://{customer}-kv.vault.sandbox.test/keys/ferry-cmk")
}

/// A vault token for the app in the customer's tenant.
pub async fn vault_token(w: &World, customer: &str) -> String {
    let c = &w.customers[customer];
    w.sandbox
        .mint_token(
            &c.spec.tenant_id,
            "https://vault.sandbox.test",
            &c.service_principal_object_id,
            Some(&w.provider.app_client_id),
        )
        .await
        .expect("mint vault token")
}

/// Wraps `payload` with the customer's key (`wrapkey`, RSA-OAEP): (kid, wrapped).
pub async fn wrap(w: &World, customer: &str, payload: &[u8]) -> (String, Vec<u8>) {
    let token = vault_token(w, customer).await;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let r = w
        .sandbox
        .http()
        .post(format!("{}/wrapkey?api-version=7.5", key_url(customer)))
        .bearer_auth(token)
        .json(&serde_json::json!({"alg": "RSA-OAEP", "value": b64.encode(payload)}))
        .send()
        .await
        .expect("wrapkey");
    assert!(r.status().is_success(), "wrapkey failed: {}", r.status());
    let v: serde_json::Value = r.json().await.expect("wrapkey json");
    let kid = v["kid"].as_str().expect("kid").to_string();
    let wrapped = b64
        .decode(v["value"].as_str().expect("value"))
        .expect("b64");
    (kid, wrapped)
}

/// An encrypted blob: body and its `encryptiondata`.
pub struct Sealed {
    /// Ciphertext regions.
    pub body: Vec<u8>,
    /// The metadata JSON.
    pub encryption_data: String,
    /// Region plaintext size.
    pub data_length: usize,
}

/// Encrypts `plain` as CSE `protocol` ("2.0" or "2.1") with `data_length` regions and `nonces`,
/// the content key wrapped by the customer's key.
pub async fn seal(
    w: &World,
    customer: &str,
    plain: &[u8],
    protocol: &str,
    data_length: usize,
    nonces: Nonces,
) -> Sealed {
    let mut cek = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut cek);
    let mut payload = [0u8; 40];
    payload[..protocol.len()].copy_from_slice(protocol.as_bytes());
    payload[8..].copy_from_slice(&cek);
    let (kid, wrapped) = wrap(w, customer, &payload).await;
    let cipher = Aes256Gcm::new((&cek).into());
    let mut body = Vec::new();
    for (i, region) in plain.chunks(data_length).enumerate() {
        let n = nonce(nonces, i as u64);
        body.extend_from_slice(&n);
        body.extend_from_slice(
            &cipher
                .encrypt(Nonce::from_slice(&n), region)
                .expect("encrypt region"),
        );
    }
    let encryption_data = serde_json::json!({
        "WrappedContentKey": {"KeyId": kid, "EncryptedKey": base64::engine::general_purpose::STANDARD.encode(&wrapped), "Algorithm": "RSA-OAEP"},
        "EncryptionAgent": {"Protocol": protocol, "EncryptionAlgorithm": "AES_GCM_256"},
        "EncryptedRegionInfo": {"DataLength": data_length, "NonceLength": 12},
        "KeyWrappingMetadata": {"EncryptionLibrary": "ferry-tests"},
        "EncryptionMode": "FullBlob"
    })
    .to_string();
    Sealed {
        body,
        encryption_data,
        data_length,
    }
}

/// Uploads `body` in one put (or in `blocks` staged blocks) with `encryptiondata` metadata
/// (none when `encryption_data` is None) and extra metadata.
#[allow(clippy::too_many_arguments)] // a test helper mirroring the blob upload parameters
pub async fn upload(
    w: &World,
    customer: &str,
    container: &str,
    name: &str,
    body: &[u8],
    encryption_data: Option<&str>,
    extra: &[(&str, &str)],
    blocks: usize,
) {
    let s = w.seeder(customer).await;
    if blocks <= 1 {
        s.put_block_blob(container, name, body.to_vec())
            .await
            .expect("put blob");
    } else {
        let size = body.len().div_ceil(blocks).max(1);
        let mut ids = Vec::new();
        for (i, chunk) in body.chunks(size).enumerate() {
            let id = format!("block-{i:06}");
            s.put_block(container, name, &id, chunk.to_vec())
                .await
                .expect("put block");
            ids.push(id);
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        s.put_block_list(container, name, &refs)
            .await
            .expect("put block list");
    }
    let mut meta: Vec<(&str, &str)> = extra.to_vec();
    if let Some(e) = encryption_data {
        meta.push(("encryptiondata", e));
    }
    if !meta.is_empty() {
        s.set_metadata(container, name, &meta)
            .await
            .expect("set metadata");
    }
}

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[1] ^ seed)
        .collect()
}

/// Destination objects whose source blob is `blob`: (object name, content).
pub fn shipped_from(
    dest: &std::collections::BTreeMap<
        String,
        (std::collections::BTreeMap<String, String>, Vec<u8>),
    >,
    blob: &str,
) -> Vec<(String, Vec<u8>)> {
    dest.iter()
        .filter(|(_, (m, _))| {
            m.get("ferry_source_url")
                .is_some_and(|u| u.ends_with(&format!("/{blob}")))
        })
        .map(|(n, (_, b))| (n.clone(), b.clone()))
        .collect()
}

/// The quarantine rows of a (tenant, source) in the state directory.
pub fn quarantined(w: &World, tenant: &str, source: &str) -> Vec<(String, String)> {
    use ferry::state::CheckpointStore as _;
    w.state_store()
        .quarantined(tenant, source)
        .expect("quarantined")
        .into_iter()
        .map(|q| (q.object, q.reason))
        .collect()
}
