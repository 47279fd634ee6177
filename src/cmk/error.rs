//! Typed refusals of the CSE v2 reader and writer.
//!
//! Owns: the one error enum of the format, content-key and region code. Every variant is a reason to
//! quarantine one blob (never to retry it): the bytes or the metadata are what they are. Must not:
//! carry key material, plaintext or wrapped-key bytes in any message.

/// Why a CSE v2 blob (its `encryptiondata` metadata, its content key or its body) was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CseError {
    /// The `encryptiondata` metadata is not a JSON object.
    #[error("encryptiondata metadata is not valid json ({reason}); the blob was not written by an azure storage sdk with client-side encryption v2")]
    MalformedMetadata {
        /// What the JSON parser said.
        reason: String,
    },
    /// A required field is absent.
    #[error("encryptiondata metadata lacks {field}; the blob was not written with client-side encryption v2")]
    MissingField {
        /// Dotted path of the field, e.g. `WrappedContentKey.KeyId`.
        field: &'static str,
    },
    /// A field has the wrong JSON type or an unsupported value.
    #[error("encryptiondata field {field} is {value}, expected {expected}")]
    UnsupportedValue {
        /// Dotted path of the field.
        field: &'static str,
        /// The value found, as JSON (truncated).
        value: String,
        /// What Ferry accepts there.
        expected: &'static str,
    },
    /// A base64 field does not decode.
    #[error("encryptiondata field {field} is not valid base64")]
    BadBase64 {
        /// Dotted path of the field.
        field: &'static str,
    },
    /// The region size is larger than the memory Ferry may hold for one region.
    #[error("encryptiondata DataLength {data_length} bytes is above the region memory cap of {cap} bytes; a region must be held whole until its tag is verified (raise the cap or refuse the blob)")]
    DataLengthOverCap {
        /// Region plaintext size written in the metadata.
        data_length: u64,
        /// The configured cap.
        cap: u64,
    },
    /// `WrappedContentKey.KeyId` is not the configured key or a version of it.
    #[error("blob content key is wrapped by {key_id}, not by the configured key {configured} or a version of it; refusing to unwrap with a foreign key")]
    ForeignKeyId {
        /// The key id written in the blob metadata.
        key_id: String,
        /// The key configured for the source.
        configured: String,
    },
    /// The unwrapped payload is not 8 bytes of protocol plus a 32-byte key.
    #[error("unwrapped content key is {len} bytes, expected 40 (8-byte protocol prefix and a 32-byte key)")]
    UnwrappedKeyLength {
        /// Length returned by the unwrap.
        len: usize,
    },
    /// The unwrapped payload's protocol prefix differs from `EncryptionAgent.Protocol`.
    #[error("unwrapped content key is bound to another protocol than the metadata's {protocol}; the metadata was relabelled (downgrade attempt)")]
    ProtocolMismatch {
        /// The protocol the metadata claims.
        protocol: &'static str,
    },
    /// A region's nonce is not the counter value expected at its position in any SDK encoding.
    #[error("region {region} carries a nonce that does not match its position; regions are out of order, swapped or spliced from another blob")]
    RegionOutOfOrder {
        /// Zero-based index of the region in the blob.
        region: u64,
    },
    /// A region failed AES-GCM authentication.
    #[error("region {region} failed authentication (altered or truncated ciphertext, or a wrong content key)")]
    BadTag {
        /// Zero-based index of the region in the blob.
        region: u64,
    },
    /// The body ends with fewer bytes than a nonce, one plaintext byte and a tag.
    #[error("the body ends with a partial region {region} of {bytes} bytes (at least 29 needed); the blob is truncated or has trailing bytes")]
    PartialRegion {
        /// Zero-based index of the partial region.
        region: u64,
        /// Bytes of that region that were present.
        bytes: usize,
    },
    /// A decryptor or encryptor was used after it had refused its input.
    #[error("the region stream was already refused at region {region}; start the blob again")]
    AlreadyFailed {
        /// Region at which the first refusal happened.
        region: u64,
    },
    /// Region arithmetic overflowed (absurd offsets or lengths).
    #[error("region offsets overflow for data length {data_length}; the metadata or requested range is not plausible")]
    Overflow {
        /// Region plaintext size.
        data_length: u64,
    },
}
