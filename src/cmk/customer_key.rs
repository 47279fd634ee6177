//! `CustomerKey`: one source's configured key-encryption key as the pipeline uses it: content
//! keys unwrapped through the `ContentKeyCache`, fresh content keys wrapped for objects kept
//! under the customer's key, the re-check probe, and the "refused" latch.
//!
//! The latch is set at the very moment Key Vault refuses (before the error travels to the tenant
//! supervisor), and the cache is purged at that moment too, so a job that checks
//! [`CustomerKey::is_refused`] before committing never commits bytes decrypted after the refusal.
//!
//! Must not: decide tenant state (the caller maps [`KeyVaultError::class`]), or log key material.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use zeroize::Zeroizing;

use super::content_key::{content_key_from_unwrapped, wrap_payload, ContentKey};
use super::content_key_cache::{ContentKeyCache, DEFAULT_CONTENT_KEY_CACHE_CAPACITY};
use super::error::CseError;
use super::format::{
    key_id_matches, EncryptionData, Protocol, RegionLayout, WrappedContentKey, V2_DATA_LENGTH,
};
use super::keyvault::{KeyBundle, KeyFailure, KeyVaultClient, KeyVaultError, Refusal};

/// Why a content key could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CustomerKeyError {
    /// The blob's metadata or wrapped key is wrong: quarantine the blob.
    #[error(transparent)]
    Blob(#[from] CseError),
    /// Key Vault refused or failed: the tenant's problem (or a transient one).
    #[error(transparent)]
    Vault(#[from] KeyVaultError),
}

/// One source's customer key.
#[derive(Debug)]
pub struct CustomerKey {
    client: KeyVaultClient,
    cache: ContentKeyCache,
    refused: AtomicBool,
    unwraps: std::sync::atomic::AtomicU64,
    /// One unwrap at a time per wrapped key: concurrent blobs sharing a key wait for the first.
    inflight: std::sync::Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
    /// False with `content_key_ttl = 0`: every blob unwraps, nobody waits for anybody.
    caching: bool,
}

impl CustomerKey {
    /// A key used through `client`, keeping unwrapped content keys for `content_key_ttl`.
    pub fn new(client: KeyVaultClient, content_key_ttl: Duration) -> CustomerKey {
        CustomerKey {
            client,
            cache: ContentKeyCache::new(content_key_ttl, DEFAULT_CONTENT_KEY_CACHE_CAPACITY),
            refused: AtomicBool::new(false),
            unwraps: std::sync::atomic::AtomicU64::new(0),
            inflight: std::sync::Mutex::new(HashMap::new()),
            caching: !content_key_ttl.is_zero(),
        }
    }

    /// The configured key URL.
    pub fn key_url(&self) -> &str {
        self.client.key_url()
    }

    /// The Key Vault client.
    pub fn client(&self) -> &KeyVaultClient {
        &self.client
    }

    /// True from the first refusal until [`CustomerKey::reset`]: commit nothing decrypted now.
    pub fn is_refused(&self) -> bool {
        self.refused.load(Ordering::SeqCst)
    }

    /// Unwrap calls made to Key Vault so far (cache misses).
    pub fn unwrap_calls(&self) -> u64 {
        self.unwraps.load(Ordering::Relaxed)
    }

    /// Forgets every cached content key (zeroized) and latches the refusal.
    pub fn revoke(&self) {
        self.refused.store(true, Ordering::SeqCst);
        self.cache.purge();
    }

    /// Clears the latch after a successful re-check.
    pub fn reset(&self) {
        self.refused.store(false, Ordering::SeqCst);
    }

    fn note(&self, e: KeyVaultError) -> KeyVaultError {
        if e.class() != KeyFailure::Transient {
            self.revoke();
        }
        e
    }

    /// The content key of a blob: refuses a `KeyId` that is not a version of the configured
    /// key, then unwraps through the cache and checks the protocol prefix.
    pub async fn content_key(&self, data: &EncryptionData) -> Result<ContentKey, CustomerKeyError> {
        let wrapped = &data.wrapped_content_key;
        if !key_id_matches(self.client.key_url(), &wrapped.key_id) {
            return Err(CseError::ForeignKeyId {
                key_id: wrapped.key_id.clone(),
                configured: self.client.key_url().to_string(),
            }
            .into());
        }
        if self.is_refused() {
            return Err(self.latched("unwrapkey").into());
        }
        let protocol = data.layout.protocol;
        if !self.caching {
            return self.unwrap_through_cache(data).await;
        }
        if let Some(key) = self.cache.get(wrapped, protocol) {
            return Ok(key);
        }
        let gate = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(wrapped.encrypted_key.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .clone()
        };
        let result = {
            let _turn = gate.lock().await;
            self.unwrap_through_cache(data).await
        };
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if Arc::strong_count(&gate) <= 2 {
            map.remove(&wrapped.encrypted_key);
        }
        result
    }

    async fn unwrap_through_cache(
        &self,
        data: &EncryptionData,
    ) -> Result<ContentKey, CustomerKeyError> {
        let wrapped = &data.wrapped_content_key;
        let protocol = data.layout.protocol;
        if self.is_refused() {
            return Err(self.latched("unwrapkey").into());
        }
        self.cache
            .get_or_unwrap(wrapped, protocol, || async {
                self.unwraps.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(tenant_id = %self.client.tenant_id(), key = %self.client.key_url(), "Content key unwrapped through Key Vault");
                let raw = self
                    .client
                    .unwrap_key(&wrapped.key_id, &wrapped.algorithm, &wrapped.encrypted_key)
                    .await
                    .map_err(|e| self.note(e))?;
                Ok(content_key_from_unwrapped(protocol, &raw)?)
            })
            .await
    }

    fn latched(&self, operation: &'static str) -> KeyVaultError {
        KeyVaultError::Refused(Box::new(Refusal {
            operation,
            key: self.client.key_url().to_string(),
            tenant_id: self.client.tenant_id().to_string(),
            status: 403,
            code: "RefusedEarlier".into(),
            message: "an earlier call was refused; waiting for the tenant re-check".into(),
            class: KeyFailure::KeyRevoked,
            fix: "the customer must restore the key or Ferry's permission on it; Ferry resumes by itself",
            retry_after: None,
        }))
    }

    /// A fresh content key wrapped by the customer's key (`wrapkey`), with the metadata of an
    /// object written in CSE v2.
    pub async fn new_content_key(&self) -> Result<(ContentKey, EncryptionData), CustomerKeyError> {
        if self.is_refused() {
            return Err(self.latched("wrapkey").into());
        }
        let key = ContentKey::generate();
        let protocol = Protocol::V2_0;
        let payload = wrap_payload(protocol, &key);
        let alg = content_key_wrap_algorithm(self.client.key_url());
        let (kid, wrapped) = self
            .client
            .wrap_key(alg, payload.as_slice())
            .await
            .map_err(|e| self.note(e))?;
        let data = EncryptionData::for_upload(
            WrappedContentKey {
                key_id: kid,
                encrypted_key: wrapped,
                algorithm: alg.to_string(),
            },
            RegionLayout {
                protocol,
                data_length: V2_DATA_LENGTH,
            },
        );
        Ok((key, data))
    }

    /// The re-check: get the key (it must be enabled) and unwrap a throwaway value wrapped with
    /// the key's public JWK (RSA), or wrapped by the vault (symmetric HSM keys). With `wraps`
    /// (objects are kept under the customer's key, `at_rest = "customer_key"`), the vault wraps
    /// the value as it wraps a content key, so a missing wrapKey permission keeps the tenant
    /// stopped instead of letting it resume only to stop again at its next object.
    pub async fn probe(&self, wraps: bool) -> Result<(), KeyVaultError> {
        let bundle = self.client.get_key().await?;
        if bundle.attributes.enabled == Some(false) {
            return Err(KeyVaultError::Refused(Box::new(Refusal {
                operation: "get key",
                key: self.client.key_url().to_string(),
                tenant_id: self.client.tenant_id().to_string(),
                status: 403,
                code: "KeyDisabled".into(),
                message: "the key is disabled".into(),
                class: KeyFailure::KeyRevoked,
                fix: "the customer must enable the key again; Ferry resumes by itself",
                retry_after: None,
            })));
        }
        let mut secret = Zeroizing::new([0u8; 40]);
        rand::thread_rng().fill_bytes(secret.as_mut_slice());
        let local = if wraps {
            None
        } else {
            local_wrap(&bundle, secret.as_slice())
        };
        let (kid, alg, wrapped) = match local {
            Some(w) => (bundle.key.kid.clone(), "RSA-OAEP", w),
            None => {
                let alg = if wraps {
                    content_key_wrap_algorithm(self.client.key_url())
                } else {
                    "A256KW"
                };
                let (kid, w) = self.client.wrap_key(alg, secret.as_slice()).await?;
                (kid, alg, w)
            }
        };
        let back = self.client.unwrap_key(&kid, alg, &wrapped).await?;
        if back.as_slice() != secret.as_slice() {
            return Err(KeyVaultError::Malformed {
                operation: "unwrapkey",
                key: self.client.key_url().to_string(),
                reason: "the probe value did not round-trip".into(),
            });
        }
        Ok(())
    }
}

/// How the vault wraps a content key for an object Ferry writes (`at_rest = "customer_key"`):
/// A256KW with a Managed HSM's symmetric key, RSA-OAEP-256 with a vault's RSA key. `ferry check`
/// tries the same, so its `wrap` row fails exactly when shipping would.
pub fn content_key_wrap_algorithm(key_url: &str) -> &'static str {
    if key_url.contains(".managedhsm.") {
        "A256KW"
    } else {
        "RSA-OAEP-256"
    }
}

/// RSA-OAEP (SHA-1) wrap with the JWK's public key; None for non-RSA keys or a bad JWK.
fn local_wrap(bundle: &KeyBundle, value: &[u8]) -> Option<Vec<u8>> {
    if !bundle.key.kty.starts_with("RSA") {
        return None;
    }
    let n = URL_SAFE_NO_PAD
        .decode(bundle.key.n.as_deref()?.trim_end_matches('='))
        .ok()?;
    let e = URL_SAFE_NO_PAD
        .decode(bundle.key.e.as_deref()?.trim_end_matches('='))
        .ok()?;
    let public = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(&n),
        rsa::BigUint::from_bytes_be(&e),
    )
    .ok()?;
    public
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Oaep::new::<sha1::Sha1>(),
            value,
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> KeyVaultClient {
        let tokens = crate::identity::TokenProvider::unreachable_for_tests();
        KeyVaultClient::new(
            reqwest::Client::new(),
            tokens,
            "t1",
            "https://kv.vault.azure.net/keys/k",
            "https://vault.azure.net",
            "https://managedhsm.azure.net",
        )
        .unwrap()
    }

    #[tokio::test]
    async fn foreign_key_ids_are_refused_before_any_call() {
        let key = CustomerKey::new(client(), Duration::from_secs(60));
        let data = EncryptionData::for_upload(
            WrappedContentKey {
                key_id: "https://other.vault.azure.net/keys/k/v1".into(),
                encrypted_key: vec![1; 256],
                algorithm: "RSA-OAEP".into(),
            },
            RegionLayout {
                protocol: Protocol::V2_0,
                data_length: V2_DATA_LENGTH,
            },
        );
        let err = key.content_key(&data).await.unwrap_err();
        assert!(matches!(
            err,
            CustomerKeyError::Blob(CseError::ForeignKeyId { .. })
        ));
        assert_eq!(key.unwrap_calls(), 0);
    }

    #[tokio::test]
    async fn the_latch_refuses_until_reset() {
        let key = CustomerKey::new(client(), Duration::from_secs(60));
        key.revoke();
        assert!(key.is_refused());
        let err = key.new_content_key().await.unwrap_err();
        assert!(
            matches!(err, CustomerKeyError::Vault(ref e) if e.class() == KeyFailure::KeyRevoked)
        );
        key.reset();
        assert!(!key.is_refused());
    }
}
