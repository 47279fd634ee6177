//! JSON shapes Key Vault answers with: key bundles, deleted-key bundles, secret bundles, and the
//! request bodies it accepts. Serialisation only; never includes private key material.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::model::{KeyVersion, SecretVersion};

/// `attributes` of create, import and update requests.
#[derive(Debug, Default, Deserialize)]
pub struct AttributesIn {
    /// Enable or disable the version.
    pub enabled: Option<bool>,
    /// Not-before, unix seconds.
    pub nbf: Option<i64>,
    /// Expiry, unix seconds.
    pub exp: Option<i64>,
}

/// Body of `POST /keys/{name}/create`.
#[derive(Debug, Deserialize)]
pub struct CreateKeyBody {
    /// `RSA`, `RSA-HSM`, `oct-HSM`.
    pub kty: String,
    /// Bits; default 2048 for RSA, 256 for oct-HSM.
    pub key_size: Option<usize>,
    /// Allowed operations; defaults per key type.
    pub key_ops: Option<Vec<String>>,
    /// Initial attributes.
    #[serde(default)]
    pub attributes: AttributesIn,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The JWK of an import.
#[derive(Debug, Deserialize)]
pub struct JwkIn {
    /// `RSA`, `RSA-HSM`, `oct`, `oct-HSM`.
    pub kty: String,
    /// Allowed operations.
    pub key_ops: Option<Vec<String>>,
    /// RSA members.
    pub n: Option<String>,
    /// RSA public exponent.
    pub e: Option<String>,
    /// RSA private exponent.
    pub d: Option<String>,
    /// RSA prime p.
    pub p: Option<String>,
    /// RSA prime q.
    pub q: Option<String>,
    /// AES key.
    pub k: Option<String>,
}

/// Body of `PUT /keys/{name}` (import).
#[derive(Debug, Deserialize)]
pub struct ImportKeyBody {
    /// The key to import.
    pub key: JwkIn,
    /// Initial attributes.
    #[serde(default)]
    pub attributes: AttributesIn,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Body of `PATCH /keys/{name}/{version}`.
#[derive(Debug, Deserialize)]
pub struct UpdateKeyBody {
    /// Attribute changes.
    #[serde(default)]
    pub attributes: AttributesIn,
    /// New allowed operations.
    pub key_ops: Option<Vec<String>>,
    /// New tags.
    pub tags: Option<BTreeMap<String, String>>,
}

/// Body of `wrapkey` / `unwrapkey`.
#[derive(Debug, Deserialize)]
pub struct KeyOperationBody {
    /// Algorithm, e.g. `RSA-OAEP-256`.
    pub alg: String,
    /// base64url value.
    pub value: String,
}

/// Body of `PUT /secrets/{name}`.
#[derive(Debug, Deserialize)]
pub struct SetSecretBody {
    /// The secret value.
    pub value: String,
    /// Optional content type.
    #[serde(rename = "contentType")]
    pub content_type: Option<String>,
}

/// Default `key_ops` for a key type.
pub fn default_key_ops(kty: &str) -> Vec<String> {
    let ops: &[&str] = if kty.starts_with("oct") {
        &["wrapKey", "unwrapKey", "encrypt", "decrypt"]
    } else {
        &[
            "encrypt",
            "decrypt",
            "sign",
            "verify",
            "wrapKey",
            "unwrapKey",
        ]
    };
    ops.iter().map(|s| s.to_string()).collect()
}

/// `https://{authority}/keys/{name}/{version}`.
pub fn key_id(authority: &str, name: &str, version: &str) -> String {
    format!("https://{authority}/keys/{name}/{version}")
}

fn key_attributes(v: &KeyVersion) -> Value {
    let mut a = json!({
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
        "exportable": false,
    });
    if let Some(nbf) = v.nbf {
        a["nbf"] = json!(nbf);
    }
    if let Some(exp) = v.exp {
        a["exp"] = json!(exp);
    }
    a
}

/// The key bundle `{"key":{kid,kty,key_ops,n,e},"attributes":{..},"tags":{..}}`.
pub fn key_bundle(authority: &str, name: &str, v: &KeyVersion) -> Value {
    let mut key = Map::new();
    key.insert("kid".into(), json!(key_id(authority, name, &v.version)));
    key.insert("kty".into(), json!(v.kty));
    key.insert("key_ops".into(), json!(v.key_ops));
    for (member, value) in v.material.public_members() {
        key.insert(member.into(), json!(value));
    }
    json!({ "key": key, "attributes": key_attributes(v), "tags": v.tags })
}

/// The deleted-key bundle answered by `DELETE /keys/{name}`.
pub fn deleted_key_bundle(authority: &str, name: &str, v: &KeyVersion, now: i64) -> Value {
    let mut bundle = key_bundle(authority, name, v);
    bundle["recoveryId"] = json!(format!("https://{authority}/deletedkeys/{name}"));
    bundle["deletedDate"] = json!(now);
    bundle["scheduledPurgeDate"] = json!(now + 90 * 86_400);
    bundle
}

/// The secret bundle `{"value","id","attributes","tags"}`.
pub fn secret_bundle(
    authority: &str,
    name: &str,
    s: &SecretVersion,
    content_type: Option<&str>,
) -> Value {
    let mut b = json!({
        "value": s.value,
        "id": format!("https://{authority}/secrets/{name}/{}", s.version),
        "attributes": {
            "enabled": true,
            "created": s.created,
            "updated": s.created,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90
        },
        "tags": {}
    });
    if let Some(ct) = content_type {
        b["contentType"] = json!(ct);
    }
    b
}
