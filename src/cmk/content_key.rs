//! The content key (CEK) of one blob and the 40-byte payload that is wrapped by the customer's key.
//!
//! Owns: holding the 32-byte key zeroized, building the wrap payload (protocol padded to 8 bytes,
//! then the key) and checking an unwrapped payload's length and protocol prefix (downgrade
//! protection). Must not: print key bytes (its `Debug` is redacted), call Key Vault.

use rand::RngCore as _;
use zeroize::Zeroizing;

use super::error::CseError;
use super::format::Protocol;

/// Length of a content key: AES-256.
pub const CONTENT_KEY_LEN: usize = 32;
/// Length of the wrapped payload: 8-byte protocol prefix and the key.
pub const WRAP_PAYLOAD_LEN: usize = 8 + CONTENT_KEY_LEN;

/// One blob's AES-256-GCM content key, zeroized when dropped. Clones are independent copies,
/// each zeroized on its own drop.
#[derive(Clone)]
pub struct ContentKey(Zeroizing<[u8; CONTENT_KEY_LEN]>);

impl ContentKey {
    /// A fresh random key from the operating system's generator (`OsRng`).
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        ContentKey(key)
    }

    /// Takes ownership of raw key bytes (tests, and keys from a trusted unwrap).
    pub fn from_bytes(bytes: [u8; CONTENT_KEY_LEN]) -> Self {
        ContentKey(Zeroizing::new(bytes))
    }

    /// The key bytes, for the cipher only. Never log or persist them.
    pub fn expose_secret(&self) -> &[u8; CONTENT_KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(<redacted>)")
    }
}

/// The payload to hand to the key-encryption key's wrap: `protocol` padded with NULs to 8 bytes,
/// then the 32-byte content key.
pub fn wrap_payload(protocol: Protocol, cek: &ContentKey) -> Zeroizing<[u8; WRAP_PAYLOAD_LEN]> {
    let mut payload = Zeroizing::new([0u8; WRAP_PAYLOAD_LEN]);
    let (prefix, key) = payload.split_at_mut(8);
    prefix.copy_from_slice(&protocol.key_prefix());
    key.copy_from_slice(cek.expose_secret());
    payload
}

/// Recovers the content key from what the key-encryption key unwrapped, refusing a payload that
/// is not 40 bytes or whose 8-byte prefix is not `protocol` (the metadata was relabelled).
pub fn content_key_from_unwrapped(
    protocol: Protocol,
    unwrapped: &[u8],
) -> Result<ContentKey, CseError> {
    if unwrapped.len() != WRAP_PAYLOAD_LEN {
        return Err(CseError::UnwrappedKeyLength {
            len: unwrapped.len(),
        });
    }
    let (prefix, key) = unwrapped.split_at(8);
    let expected = protocol.key_prefix();
    // Constant-time is not needed: the prefix is public, only equality matters.
    if prefix != expected.as_slice() {
        return Err(CseError::ProtocolMismatch {
            protocol: protocol.as_str(),
        });
    }
    let mut bytes = Zeroizing::new([0u8; CONTENT_KEY_LEN]);
    bytes.copy_from_slice(key);
    Ok(ContentKey(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_nothing_secret() {
        let key = ContentKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?} {key:#?}");
        assert_eq!(format!("{key:?}"), "ContentKey(<redacted>)");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn payload_is_padded_protocol_then_key() {
        let key = ContentKey::from_bytes([7; 32]);
        let payload = wrap_payload(Protocol::V2_0, &key);
        assert_eq!(&payload[..8], b"2.0\0\0\0\0\0");
        assert_eq!(&payload[8..], &[7u8; 32]);
        let payload = wrap_payload(Protocol::V2_1, &key);
        assert_eq!(&payload[..8], b"2.1\0\0\0\0\0");
    }

    #[test]
    fn unwrapped_round_trip() {
        let key = ContentKey::generate();
        let payload = wrap_payload(Protocol::V2_1, &key);
        let back = content_key_from_unwrapped(Protocol::V2_1, payload.as_slice());
        assert_eq!(back.map(|k| *k.expose_secret()), Ok(*key.expose_secret()));
    }

    #[test]
    fn relabelled_protocol_is_refused() {
        let key = ContentKey::from_bytes([1; 32]);
        let payload = wrap_payload(Protocol::V2_1, &key);
        let err = content_key_from_unwrapped(Protocol::V2_0, payload.as_slice()).map(|_| ());
        assert_eq!(err, Err(CseError::ProtocolMismatch { protocol: "2.0" }));
        let mut other = *payload;
        other[3] = b'x';
        let err = content_key_from_unwrapped(Protocol::V2_1, &other).map(|_| ());
        assert_eq!(err, Err(CseError::ProtocolMismatch { protocol: "2.1" }));
    }

    #[test]
    fn wrong_length_is_refused() {
        for len in [0usize, 32, 39, 41, 256] {
            let bytes = vec![0u8; len];
            let err = content_key_from_unwrapped(Protocol::V2_0, &bytes).map(|_| ());
            assert_eq!(err, Err(CseError::UnwrappedKeyLength { len }));
        }
    }

    #[test]
    fn generated_keys_differ() {
        let a = ContentKey::generate();
        let b = ContentKey::generate();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }
}
