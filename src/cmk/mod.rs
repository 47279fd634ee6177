//! Customer-managed keys: the Azure Storage client-side encryption v2/v2.1 format, the Key Vault
//! client that wraps and unwraps content keys with the customer tenant's token, and the
//! content-key cache.
//!
//! Owns: parsing `encryptiondata`, region-by-region decryption and encryption, unwrap/wrap calls,
//! zeroizing key material. Must not: decide tenant state (it reports typed errors that say whether
//! the customer revoked the key), touch checkpoints, or log key material.
