//! Streaming CSE v2 encryption for objects Ferry writes under the customer's key.
//!
//! Owns: generating the content key, cutting plaintext into regions with Python-style nonces
//! (`BE96(i)`), encrypting in place, and measuring the plaintext's length and SHA-256 as it goes
//! (the writer records both in metadata, because the format does not authenticate length).
//! Must not: wrap the key (the caller does, with [`wrap_payload`](super::content_key::wrap_payload)
//! and Key Vault), upload, or log key material.

use aes_gcm::aead::{AeadInPlace as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest as _, Sha256};

use super::content_key::ContentKey;
use super::error::CseError;
use super::format::{
    Protocol, RegionLayout, NONCE_LEN, TAG_LEN, V21_MAX_DATA_LENGTH, V21_MIN_DATA_LENGTH,
    V2_DATA_LENGTH,
};
use super::regions::NonceScheme;

/// What a completed encryption produced; record `plaintext_len` and `sha256` in metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptSummary {
    /// Plaintext bytes consumed.
    pub plaintext_len: u64,
    /// SHA-256 of the plaintext.
    pub sha256: [u8; 32],
    /// Ciphertext bytes emitted.
    pub ciphertext_len: u64,
    /// Regions emitted.
    pub regions: u64,
}

/// Encrypts one object's plaintext, fed in arbitrary chunks, into CSE v2 regions.
pub struct RegionEncryptor {
    /// The object's content key; wrap it for the metadata.
    key: ContentKey,
    /// AES-256-GCM with `key`.
    cipher: Aes256Gcm,
    /// Protocol and region size written in the metadata.
    layout: RegionLayout,
    /// Plaintext bytes per region.
    data_length: usize,
    /// 12 nonce bytes followed by the plaintext of the region being assembled.
    region: Vec<u8>,
    /// Index of the region being assembled.
    next_index: u64,
    /// Plaintext digest so far.
    sha256: Sha256,
    /// Plaintext bytes so far.
    plaintext_len: u64,
    /// Ciphertext bytes emitted so far.
    ciphertext_len: u64,
}

impl std::fmt::Debug for RegionEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionEncryptor")
            .field("layout", &self.layout)
            .field("next_index", &self.next_index)
            .field("plaintext_len", &self.plaintext_len)
            .finish_non_exhaustive()
    }
}

impl RegionEncryptor {
    /// Protocol 2.0, 4 MiB regions, a fresh random content key.
    pub fn new() -> Self {
        RegionEncryptor::build(
            ContentKey::generate(),
            RegionLayout {
                protocol: Protocol::V2_0,
                data_length: V2_DATA_LENGTH,
            },
        )
    }

    /// A chosen key and layout (protocol 2.0 must use 4 MiB; 2.1 allows 16 B to 1 GiB).
    pub fn with_key(key: ContentKey, layout: RegionLayout) -> Result<Self, CseError> {
        let valid = match layout.protocol {
            Protocol::V2_0 => layout.data_length == V2_DATA_LENGTH,
            Protocol::V2_1 => {
                (V21_MIN_DATA_LENGTH..=V21_MAX_DATA_LENGTH).contains(&layout.data_length)
            }
        };
        if !valid {
            return Err(CseError::UnsupportedValue {
                field: "EncryptedRegionInfo.DataLength",
                value: layout.data_length.to_string(),
                expected: "4194304 for protocol 2.0, 16 to 1073741824 for 2.1",
            });
        }
        Ok(RegionEncryptor::build(key, layout))
    }

    fn build(key: ContentKey, layout: RegionLayout) -> Self {
        // Bounded by the checks above (at most 1 GiB), so the cast cannot truncate on 64-bit.
        let data_length = usize::try_from(layout.data_length).unwrap_or(usize::MAX / 2);
        let mut region = Vec::with_capacity(NONCE_LEN + data_length + TAG_LEN);
        region.extend_from_slice(&[0u8; NONCE_LEN]);
        RegionEncryptor {
            cipher: Aes256Gcm::new(key.expose_secret().into()),
            key,
            layout,
            data_length,
            region,
            next_index: 0,
            sha256: Sha256::new(),
            plaintext_len: 0,
            ciphertext_len: 0,
        }
    }

    /// The content key, to wrap with the customer's key for the metadata.
    pub fn content_key(&self) -> &ContentKey {
        &self.key
    }

    /// Protocol and region size, for the metadata.
    pub fn layout(&self) -> RegionLayout {
        self.layout
    }

    /// Feeds plaintext; `out` receives each complete region (nonce, ciphertext, tag).
    pub fn push<E: From<CseError>>(
        &mut self,
        mut bytes: &[u8],
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.sha256.update(bytes);
        self.plaintext_len += bytes.len() as u64;
        let full = NONCE_LEN + self.data_length;
        while !bytes.is_empty() {
            let take = (full - self.region.len()).min(bytes.len());
            let (now, later) = bytes.split_at(take);
            self.region.extend_from_slice(now);
            bytes = later;
            if self.region.len() == full {
                self.seal_region(out)?;
            }
        }
        Ok(())
    }

    /// Ends the plaintext: emits the short last region, if any (an empty plaintext is an empty
    /// body), and reports length and digest.
    pub fn finish<E: From<CseError>>(
        mut self,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<EncryptSummary, E> {
        if self.region.len() > NONCE_LEN {
            self.seal_region(out)?;
        }
        Ok(EncryptSummary {
            plaintext_len: self.plaintext_len,
            sha256: self.sha256.finalize_reset().into(),
            ciphertext_len: self.ciphertext_len,
            regions: self.next_index,
        })
    }

    fn seal_region<E: From<CseError>>(
        &mut self,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let overflow = CseError::Overflow {
            data_length: self.layout.data_length,
        };
        let nonce = NonceScheme::Python
            .nonce(self.next_index)
            .ok_or(overflow.clone())?;
        let (head, text) = self.region.split_at_mut(NONCE_LEN);
        head.copy_from_slice(&nonce);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", text)
            .map_err(|_| overflow)?;
        self.region.extend_from_slice(&tag);
        debug_assert!(self.region.len() <= NONCE_LEN + self.data_length + TAG_LEN);
        self.next_index += 1;
        self.ciphertext_len += self.region.len() as u64;
        let result = out(&self.region);
        self.region.clear();
        self.region.extend_from_slice(&[0u8; NONCE_LEN]);
        result
    }
}

impl Default for RegionEncryptor {
    fn default() -> Self {
        RegionEncryptor::new()
    }
}
