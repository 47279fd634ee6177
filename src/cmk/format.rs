//! The `encryptiondata` blob metadata of Azure Storage client-side encryption v2 and v2.1.
//!
//! Owns: parsing that JSON into a validated [`EncryptionData`] (refusing anything Ferry would have to
//! guess at), writing it back in the exact shape the SDKs write, and deciding whether a blob's
//! `KeyId` is the configured key. Must not: unwrap keys, touch the network, or decide what to do
//! with a refused blob (the caller quarantines it).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::error::CseError;

/// Region memory cap applied by [`parse_encryption_data`]: a region is held whole until its tag
/// is verified, so its plaintext size bounds the memory of one blob in flight.
pub const DEFAULT_MAX_DATA_LENGTH: u64 = 64 * 1024 * 1024;
/// Region plaintext size written by protocol 2.0 SDKs (and by Ferry).
pub const V2_DATA_LENGTH: u64 = 4 * 1024 * 1024;
/// Smallest region protocol 2.1 allows.
pub const V21_MIN_DATA_LENGTH: u64 = 16;
/// Largest region protocol 2.1 allows.
pub const V21_MAX_DATA_LENGTH: u64 = 1024 * 1024 * 1024;
/// AES-GCM nonce size, the only `NonceLength` the format uses.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag size.
pub const TAG_LEN: usize = 16;
/// Bytes a region adds to its plaintext: nonce and tag.
pub const REGION_OVERHEAD: u64 = (NONCE_LEN + TAG_LEN) as u64;
/// The only content encryption algorithm of v2.
pub const AES_GCM_256: &str = "AES_GCM_256";
/// The only encryption mode Ferry reads (the whole blob is encrypted).
pub const FULL_BLOB: &str = "FullBlob";
/// Blob metadata name of the encryption data (compare case-insensitively when reading headers).
pub const ENCRYPTION_DATA_METADATA: &str = "encryptiondata";
/// Metadata Ferry writes on every object, next to `encryptiondata` on sealed ones: the plaintext
/// length in decimal, because the format does not authenticate length (dropped trailing regions
/// decrypt "fine").
pub const PLAINTEXT_LENGTH_METADATA: &str = "ferry_plaintext_length";
/// Metadata Ferry writes on every object: lowercase hex SHA-256 of the plaintext.
pub const PLAINTEXT_SHA256_METADATA: &str = "ferry_plaintext_sha256";

/// Standard base64 alphabet, padding optional on input, written padded.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `EncryptionAgent.Protocol`: the versions of CSE v2 Ferry reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `2.0`: Python, .NET and older Java SDKs; regions of 4 MiB.
    V2_0,
    /// `2.1`: Java 12.27+; same format with a configurable region size.
    V2_1,
}

impl Protocol {
    /// The protocol string as written in the metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V2_0 => "2.0",
            Protocol::V2_1 => "2.1",
        }
    }

    /// The 8-byte prefix bound to the content key when it is wrapped: the protocol string padded
    /// with NULs. Checking it after unwrapping defeats relabelling the protocol.
    pub fn key_prefix(self) -> [u8; 8] {
        let mut prefix = [0u8; 8];
        for (slot, byte) in prefix.iter_mut().zip(self.as_str().bytes()) {
            *slot = byte;
        }
        prefix
    }

    fn parse(value: &str) -> Option<Protocol> {
        match value {
            "2.0" => Some(Protocol::V2_0),
            "2.1" => Some(Protocol::V2_1),
            _ => None,
        }
    }
}

/// `WrappedContentKey`: the content key wrapped by the customer's key-encryption key.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedContentKey {
    /// `KeyId`: the key-encryption key's id; for Key Vault the full versioned key URL.
    pub key_id: String,
    /// `EncryptedKey`, base64-decoded: the wrapped 40-byte payload (not secret once wrapped, but
    /// kept out of logs all the same).
    pub encrypted_key: Vec<u8>,
    /// `Algorithm`: passed verbatim to the unwrap call (`RSA-OAEP`, `RSA-OAEP-256`, `A256KW`...).
    pub algorithm: String,
}

impl std::fmt::Debug for WrappedContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedContentKey")
            .field("key_id", &self.key_id)
            .field("encrypted_key_len", &self.encrypted_key.len())
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// `EncryptedRegionInfo` plus the protocol: everything needed to cut the body into regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionLayout {
    /// `EncryptionAgent.Protocol`.
    pub protocol: Protocol,
    /// `EncryptedRegionInfo.DataLength`: plaintext bytes per region (the last may be shorter).
    /// Validated: non-zero, within the protocol's bounds and under the memory cap.
    pub data_length: u64,
}

/// A validated `encryptiondata` document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionData {
    /// The wrapped content key and which key wraps it.
    pub wrapped_content_key: WrappedContentKey,
    /// Protocol and region size.
    pub layout: RegionLayout,
    /// `KeyWrappingMetadata`, kept as written (e.g. `{"EncryptionLibrary":"Python 12.31.1"}`).
    pub key_wrapping_metadata: Option<Map<String, Value>>,
    /// Whether `EncryptionMode` was present (it is always `FullBlob` when it is).
    pub encryption_mode_present: bool,
}

/// Parses `encryptiondata` with the default region memory cap ([`DEFAULT_MAX_DATA_LENGTH`]).
pub fn parse_encryption_data(json: &str) -> Result<EncryptionData, CseError> {
    parse_encryption_data_capped(json, DEFAULT_MAX_DATA_LENGTH)
}

/// Parses `encryptiondata`, refusing a `DataLength` above `max_data_length` bytes.
pub fn parse_encryption_data_capped(
    json: &str,
    max_data_length: u64,
) -> Result<EncryptionData, CseError> {
    let root: Value = serde_json::from_str(json).map_err(|e| CseError::MalformedMetadata {
        reason: e.to_string(),
    })?;
    let root = root
        .as_object()
        .ok_or_else(|| CseError::MalformedMetadata {
            reason: "the top level is not an object".to_owned(),
        })?;

    let agent = object(root, "EncryptionAgent", "EncryptionAgent")?;
    let protocol_text = string(agent, "Protocol", "EncryptionAgent.Protocol")?;
    let protocol = Protocol::parse(protocol_text).ok_or_else(|| CseError::UnsupportedValue {
        field: "EncryptionAgent.Protocol",
        value: shown(&Value::String(protocol_text.to_owned())),
        expected: "\"2.0\" or \"2.1\" (v1 AES-CBC blobs are not read)",
    })?;
    let algorithm = string(
        agent,
        "EncryptionAlgorithm",
        "EncryptionAgent.EncryptionAlgorithm",
    )?;
    if algorithm != AES_GCM_256 {
        return Err(CseError::UnsupportedValue {
            field: "EncryptionAgent.EncryptionAlgorithm",
            value: shown(&Value::String(algorithm.to_owned())),
            expected: "\"AES_GCM_256\"",
        });
    }

    let encryption_mode_present = match root.get("EncryptionMode") {
        None => false,
        Some(Value::String(mode)) if mode == FULL_BLOB => true,
        Some(other) => {
            return Err(CseError::UnsupportedValue {
                field: "EncryptionMode",
                value: shown(other),
                expected: "\"FullBlob\" or absent",
            })
        }
    };

    let regions = object(root, "EncryptedRegionInfo", "EncryptedRegionInfo")?;
    let nonce_length = integer(regions, "NonceLength", "EncryptedRegionInfo.NonceLength")?;
    if nonce_length != NONCE_LEN as u64 {
        return Err(CseError::UnsupportedValue {
            field: "EncryptedRegionInfo.NonceLength",
            value: nonce_length.to_string(),
            expected: "12",
        });
    }
    let data_length = integer(regions, "DataLength", "EncryptedRegionInfo.DataLength")?;
    let (bounds_ok, expected) = match protocol {
        Protocol::V2_0 => (
            data_length > 0,
            "a positive integer (4194304 for protocol 2.0)",
        ),
        Protocol::V2_1 => (
            (V21_MIN_DATA_LENGTH..=V21_MAX_DATA_LENGTH).contains(&data_length),
            "16 to 1073741824 for protocol 2.1",
        ),
    };
    if !bounds_ok {
        return Err(CseError::UnsupportedValue {
            field: "EncryptedRegionInfo.DataLength",
            value: data_length.to_string(),
            expected,
        });
    }
    if data_length > max_data_length {
        return Err(CseError::DataLengthOverCap {
            data_length,
            cap: max_data_length,
        });
    }

    let wrapped = object(root, "WrappedContentKey", "WrappedContentKey")?;
    let key_id = string(wrapped, "KeyId", "WrappedContentKey.KeyId")?;
    let encrypted_key_b64 = string(wrapped, "EncryptedKey", "WrappedContentKey.EncryptedKey")?;
    let encrypted_key = BASE64
        .decode(encrypted_key_b64)
        .map_err(|_| CseError::BadBase64 {
            field: "WrappedContentKey.EncryptedKey",
        })?;
    let wrap_algorithm = string(wrapped, "Algorithm", "WrappedContentKey.Algorithm")?;
    for (field, value, empty) in [
        ("WrappedContentKey.KeyId", key_id, key_id.is_empty()),
        (
            "WrappedContentKey.EncryptedKey",
            encrypted_key_b64,
            encrypted_key.is_empty(),
        ),
        (
            "WrappedContentKey.Algorithm",
            wrap_algorithm,
            wrap_algorithm.is_empty(),
        ),
    ] {
        if empty {
            return Err(CseError::UnsupportedValue {
                field,
                value: shown(&Value::String(value.to_owned())),
                expected: "a non-empty value",
            });
        }
    }

    let key_wrapping_metadata = match root.get("KeyWrappingMetadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map.clone()),
        Some(other) => {
            return Err(CseError::UnsupportedValue {
                field: "KeyWrappingMetadata",
                value: shown(other),
                expected: "an object",
            })
        }
    };

    Ok(EncryptionData {
        wrapped_content_key: WrappedContentKey {
            key_id: key_id.to_owned(),
            encrypted_key,
            algorithm: wrap_algorithm.to_owned(),
        },
        layout: RegionLayout {
            protocol,
            data_length,
        },
        key_wrapping_metadata,
        encryption_mode_present,
    })
}

impl EncryptionData {
    /// The metadata Ferry writes for an object it encrypts: `FullBlob`, AES_GCM_256, and
    /// `KeyWrappingMetadata.EncryptionLibrary` naming Ferry.
    pub fn for_upload(wrapped_content_key: WrappedContentKey, layout: RegionLayout) -> Self {
        let mut library = Map::new();
        library.insert(
            "EncryptionLibrary".to_owned(),
            Value::String(format!("Ferry {}", env!("CARGO_PKG_VERSION"))),
        );
        EncryptionData {
            wrapped_content_key,
            layout,
            key_wrapping_metadata: Some(library),
            encryption_mode_present: true,
        }
    }

    /// Serialises in the SDKs' shape and field order: `WrappedContentKey`, `EncryptionAgent`,
    /// `EncryptedRegionInfo`, `KeyWrappingMetadata`, `EncryptionMode`.
    pub fn to_json(&self) -> String {
        let wrapped = &self.wrapped_content_key;
        let mut out = String::with_capacity(512);
        out.push_str("{\"WrappedContentKey\":{\"KeyId\":");
        out.push_str(&Value::String(wrapped.key_id.clone()).to_string());
        out.push_str(",\"EncryptedKey\":\"");
        out.push_str(&BASE64.encode(&wrapped.encrypted_key));
        out.push_str("\",\"Algorithm\":");
        out.push_str(&Value::String(wrapped.algorithm.clone()).to_string());
        out.push_str("},\"EncryptionAgent\":{\"Protocol\":\"");
        out.push_str(self.layout.protocol.as_str());
        out.push_str(
            "\",\"EncryptionAlgorithm\":\"AES_GCM_256\"},\"EncryptedRegionInfo\":{\"DataLength\":",
        );
        out.push_str(&self.layout.data_length.to_string());
        out.push_str(",\"NonceLength\":12}");
        if let Some(metadata) = &self.key_wrapping_metadata {
            out.push_str(",\"KeyWrappingMetadata\":");
            out.push_str(&Value::Object(metadata.clone()).to_string());
        }
        if self.encryption_mode_present {
            out.push_str(",\"EncryptionMode\":\"FullBlob\"");
        }
        out.push('}');
        out
    }
}

/// True when `key_id` is the configured key `https://<vault>/keys/<name>` itself or one of its
/// versions `https://<vault>/keys/<name>/<version>`. The host compares case-insensitively (and
/// an explicit `:443` equals none); everything else must match exactly: https only, no user
/// info, query or fragment, no extra path segments, a version of ASCII letters and digits.
pub fn key_id_matches(configured: &str, key_id: &str) -> bool {
    let Some((vault, name)) = split_key_url(configured.strip_suffix('/').unwrap_or(configured))
    else {
        return false;
    };
    let Ok(url) = url::Url::parse(key_id) else {
        return false;
    };
    let Some((blob_vault, segments)) = vault_and_segments(&url) else {
        return false;
    };
    if blob_vault != vault {
        return false;
    }
    match segments.as_slice() {
        ["keys", n] => *n == name,
        ["keys", n, version] => {
            *n == name && !version.is_empty() && version.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

/// `(host[:port], name)` of a configured key URL without version.
fn split_key_url(configured: &str) -> Option<(String, String)> {
    let url = url::Url::parse(configured).ok()?;
    let (vault, segments) = vault_and_segments(&url)?;
    match segments.as_slice() {
        ["keys", name] if !name.is_empty() => Some((vault, (*name).to_owned())),
        _ => None,
    }
}

fn vault_and_segments(url: &url::Url) -> Option<(String, Vec<&str>)> {
    if url.scheme() != "https"
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let vault = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    Some((vault, url.path_segments()?.collect()))
}

fn object<'a>(
    parent: &'a Map<String, Value>,
    name: &str,
    field: &'static str,
) -> Result<&'a Map<String, Value>, CseError> {
    match parent.get(name) {
        None | Some(Value::Null) => Err(CseError::MissingField { field }),
        Some(Value::Object(map)) => Ok(map),
        Some(other) => Err(CseError::UnsupportedValue {
            field,
            value: shown(other),
            expected: "an object",
        }),
    }
}

fn string<'a>(
    parent: &'a Map<String, Value>,
    name: &str,
    field: &'static str,
) -> Result<&'a str, CseError> {
    match parent.get(name) {
        None | Some(Value::Null) => Err(CseError::MissingField { field }),
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(CseError::UnsupportedValue {
            field,
            value: shown(other),
            expected: "a string",
        }),
    }
}

fn integer(parent: &Map<String, Value>, name: &str, field: &'static str) -> Result<u64, CseError> {
    match parent.get(name) {
        None | Some(Value::Null) => Err(CseError::MissingField { field }),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| CseError::UnsupportedValue {
            field,
            value: n.to_string(),
            expected: "a non-negative integer",
        }),
        Some(other) => Err(CseError::UnsupportedValue {
            field,
            value: shown(other),
            expected: "a non-negative integer",
        }),
    }
}

/// A JSON value as text, cut to 80 characters so a hostile document cannot flood a log line.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
