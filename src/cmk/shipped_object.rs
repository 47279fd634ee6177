//! Reading back an object Ferry shipped: decrypt it when it was kept under the customer's key
//! (`at_rest = "customer_key"`), decompress a records object, and check the plaintext length and
//! SHA-256 recorded in its metadata (the CSE format does not authenticate length: dropped
//! trailing regions would otherwise decrypt "fine" to a prefix).
//!
//! Owns: the checks that make a truncated or altered object fail. Must not: fetch anything
//! (the caller brings the bytes and the key), or print plaintext.

use std::collections::BTreeMap;
use std::io::Read as _;

use sha2::{Digest as _, Sha256};

use super::customer_key::{CustomerKey, CustomerKeyError};
use super::decrypt::RegionDecryptor;
use super::error::CseError;
use super::format::{parse_encryption_data, ENCRYPTION_DATA_METADATA};
use super::keyvault::KeyVaultError;
use super::regions::plaintext_len;

/// Metadata Ferry writes on every object.
pub const TENANT_ID_METADATA: &str = "ferry_tenant_id";
/// The source name.
pub const SOURCE_METADATA: &str = "ferry_source";
/// Plaintext length (of the records, uncompressed, or of the copied bytes).
pub const LENGTH_METADATA: &str = super::format::PLAINTEXT_LENGTH_METADATA;
/// Lowercase hex SHA-256 of the same.
pub const SHA256_METADATA: &str = super::format::PLAINTEXT_SHA256_METADATA;
/// Compression of a sealed records object (its Content-Encoding, kept out of the HTTP header).
pub const CONTENT_ENCODING_METADATA: &str = "ferry_content_encoding";

/// Why a shipped object cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ShippedObjectError {
    /// The customer's key refused (revoked, disabled, permission removed) or failed.
    #[error("object {object}: tenant {tenant_id}'s key {key} cannot unwrap it: {source}")]
    Key {
        /// The object.
        object: String,
        /// The tenant.
        tenant_id: String,
        /// The key URL.
        key: String,
        /// The refusal.
        source: KeyVaultError,
    },
    /// The object's bytes or metadata are not what Ferry wrote.
    #[error("object {object} refused: {reason}; it was truncated or altered after shipping")]
    Altered {
        /// The object.
        object: String,
        /// What is wrong.
        reason: String,
    },
}

fn meta<'a>(metadata: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// True when the object carries `encryptiondata` (needs the customer's key).
pub fn is_sealed(metadata: &BTreeMap<String, String>) -> bool {
    meta(metadata, ENCRYPTION_DATA_METADATA).is_some()
}

/// The plaintext of a shipped object: decrypted with `key` when sealed, decompressed when the
/// object is compressed (`content_encoding` or `ferry_content_encoding`), then checked against
/// the recorded length and SHA-256.
pub async fn open_shipped_object(
    object: &str,
    metadata: &BTreeMap<String, String>,
    content_encoding: Option<&str>,
    body: &[u8],
    key: Option<&CustomerKey>,
) -> Result<Vec<u8>, ShippedObjectError> {
    let altered = |reason: String| ShippedObjectError::Altered {
        object: object.to_string(),
        reason,
    };
    let decrypted = match meta(metadata, ENCRYPTION_DATA_METADATA) {
        None => body.to_vec(),
        Some(json) => {
            let key = key.ok_or_else(|| {
                altered(
                    "the object is sealed but no customer key is configured for its source".into(),
                )
            })?;
            let data = parse_encryption_data(json).map_err(|e| altered(e.to_string()))?;
            if plaintext_len(body.len() as u64, data.layout.data_length).is_none() {
                return Err(altered(format!(
                    "{} bytes end in a partial region",
                    body.len()
                )));
            }
            let content_key = key.content_key(&data).await.map_err(|e| match e {
                CustomerKeyError::Vault(source) => ShippedObjectError::Key {
                    object: object.to_string(),
                    tenant_id: key.client().tenant_id().to_string(),
                    key: key.key_url().to_string(),
                    source,
                },
                CustomerKeyError::Blob(c) => altered(c.to_string()),
            })?;
            let mut dec = RegionDecryptor::new(&content_key, data.layout)
                .map_err(|e| altered(e.to_string()))?;
            let mut out = Vec::with_capacity(body.len());
            let mut push = |t: &[u8]| {
                out.extend_from_slice(t);
                Ok::<(), CseError>(())
            };
            dec.push(body, &mut push)
                .map_err(|e| altered(e.to_string()))?;
            dec.finish(&mut push).map_err(|e| altered(e.to_string()))?;
            out
        }
    };
    let encoding = meta(metadata, CONTENT_ENCODING_METADATA).or(content_encoding);
    let plain = match encoding.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("identity") => decrypted,
        Some("zstd") => zstd::stream::decode_all(decrypted.as_slice())
            .map_err(|e| altered(format!("zstd: {e}")))?,
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(decrypted.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| altered(format!("gzip: {e}")))?;
            out
        }
        Some(other) => return Err(altered(format!("unknown content encoding {other}"))),
    };
    match meta(metadata, LENGTH_METADATA) {
        Some(v) if v.trim().parse::<u64>().ok() != Some(plain.len() as u64) => {
            return Err(altered(format!(
                "plaintext is {} bytes, metadata says {v}",
                plain.len()
            )))
        }
        None if is_sealed(metadata) => {
            return Err(altered(format!("{LENGTH_METADATA} metadata is missing")))
        }
        _ => {}
    }
    match meta(metadata, SHA256_METADATA) {
        Some(v) if !v.eq_ignore_ascii_case(&hex::encode(Sha256::digest(&plain))) => {
            return Err(altered(
                "plaintext SHA-256 differs from the metadata".into(),
            ))
        }
        None if is_sealed(metadata) => {
            return Err(altered(format!("{SHA256_METADATA} metadata is missing")))
        }
        _ => {}
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta_for(plain: &[u8]) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(LENGTH_METADATA.into(), plain.len().to_string());
        m.insert(SHA256_METADATA.into(), hex::encode(Sha256::digest(plain)));
        m
    }

    #[tokio::test]
    async fn plain_objects_are_checked_and_decompressed() {
        let plain = b"{\"a\":1}\n{\"a\":2}\n".to_vec();
        let packed = zstd::stream::encode_all(plain.as_slice(), 1).unwrap();
        let m = meta_for(&plain);
        let out = open_shipped_object("o", &m, Some("zstd"), &packed, None)
            .await
            .unwrap();
        assert_eq!(out, plain);
        let err = open_shipped_object("o", &m, None, &plain[..5], None)
            .await
            .unwrap_err();
        assert!(matches!(err, ShippedObjectError::Altered { .. }));
        let mut bad = plain.clone();
        bad[0] ^= 1;
        assert!(open_shipped_object("o", &m, None, &bad, None)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn sealed_objects_need_a_key() {
        let mut m = meta_for(b"");
        m.insert(ENCRYPTION_DATA_METADATA.into(), "{}".into());
        let err = open_shipped_object("o", &m, None, b"", None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no customer key"));
    }
}
