//! Customer-managed keys: the Azure Storage client-side encryption v2/v2.1 format, the Key Vault
//! client that wraps and unwraps content keys with the customer tenant's token, and the
//! content-key cache.
//!
//! Owns: parsing `encryptiondata`, region-by-region decryption and encryption, unwrap/wrap calls,
//! zeroizing key material. Must not: decide tenant state (it reports typed errors that say whether
//! the customer revoked the key), touch checkpoints, or log key material.

mod content_key;
mod content_key_cache;
mod customer_key;
mod decrypt;
mod encrypt;
mod error;
mod format;
mod keyvault;
mod read_back;
mod regions;
mod shipped_object;

#[cfg(test)]
mod cse_tests;
#[cfg(test)]
mod python_interop_tests;

pub use content_key::{
    content_key_from_unwrapped, wrap_payload, ContentKey, CONTENT_KEY_LEN, WRAP_PAYLOAD_LEN,
};
pub use content_key_cache::{
    Clock, ContentKeyCache, TokioClock, DEFAULT_CONTENT_KEY_CACHE_CAPACITY,
};
pub use customer_key::{content_key_wrap_algorithm, CustomerKey, CustomerKeyError};
pub use decrypt::{DecryptSummary, RegionDecryptor};
pub use encrypt::{EncryptSummary, RegionEncryptor};
pub use error::CseError;
pub use format::{
    key_id_matches, parse_encryption_data, parse_encryption_data_capped, EncryptionData, Protocol,
    RegionLayout, WrappedContentKey, DEFAULT_MAX_DATA_LENGTH, ENCRYPTION_DATA_METADATA,
    PLAINTEXT_LENGTH_METADATA, PLAINTEXT_SHA256_METADATA, V2_DATA_LENGTH,
};
pub use keyvault::{
    classify, parse_challenge, JsonWebKey, KeyAttributes, KeyBundle, KeyFailure, KeyVaultClient,
    KeyVaultError, Refusal, KEY_VAULT_API_VERSION,
};
pub use read_back::{read_shipped, split_blob_url, ReadBackError};
pub use regions::{ciphertext_len, plaintext_len, region_aligned_range, NonceScheme};
pub use shipped_object::{
    is_sealed, open_shipped_object, ShippedObjectError, CONTENT_ENCODING_METADATA, LENGTH_METADATA,
    SHA256_METADATA, SOURCE_METADATA, TENANT_ID_METADATA,
};
