//! Streaming CSE v2 decryption, region by region, from chunks of any size.
//!
//! Owns: cutting the body into regions, checking each region's nonce against its position,
//! authenticating and decrypting it in place, and handing out plaintext only after its tag
//! verified. Holds at most one region. Must not: fetch bytes, unwrap keys, or decide what a
//! refusal means for the tenant. It cannot detect whole regions missing at the end (the format
//! does not authenticate length): [`DecryptSummary::plaintext_len`] lets the caller check a
//! recorded length.

use aes_gcm::aead::{AeadInPlace as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use sha2::{Digest as _, Sha256};

use super::content_key::ContentKey;
use super::error::CseError;
use super::format::{RegionLayout, NONCE_LEN, REGION_OVERHEAD, TAG_LEN, V21_MAX_DATA_LENGTH};
use super::regions::{NonceScheme, NonceSchemes};

/// What a completed decryption produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecryptSummary {
    /// Plaintext bytes handed out (from the starting region on). Compare with a recorded length:
    /// dropped trailing regions are invisible otherwise.
    pub plaintext_len: u64,
    /// Regions decrypted.
    pub regions: u64,
    /// SHA-256 of the plaintext handed out, when requested with [`RegionDecryptor::with_sha256`].
    pub sha256: Option<[u8; 32]>,
    /// The nonce scheme, once the regions made it unambiguous.
    pub nonce_scheme: Option<NonceScheme>,
}

/// Decrypts one blob's body fed in arbitrary chunks; see the module doc.
pub struct RegionDecryptor {
    /// AES-256-GCM with the blob's content key.
    cipher: Aes256Gcm,
    /// Plaintext bytes per full region.
    data_length: usize,
    /// Nonce, ciphertext and tag of the region being assembled; capacity one full region.
    region: Vec<u8>,
    /// Index of the region being assembled.
    next_index: u64,
    /// Nonce schemes still consistent with the regions seen.
    schemes: NonceSchemes,
    /// Regions decrypted so far.
    regions: u64,
    /// Plaintext bytes handed out so far.
    plaintext_len: u64,
    /// Running digest of the plaintext, when requested.
    sha256: Option<Sha256>,
    /// Set at the first refusal; every later call is refused.
    failed_at: Option<u64>,
}

impl std::fmt::Debug for RegionDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegionDecryptor")
            .field("data_length", &self.data_length)
            .field("next_index", &self.next_index)
            .field("schemes", &self.schemes)
            .field("plaintext_len", &self.plaintext_len)
            .field("failed_at", &self.failed_at)
            .finish_non_exhaustive()
    }
}

impl RegionDecryptor {
    /// A decryptor for a body starting at region 0, with the layout from a parsed
    /// [`EncryptionData`](super::format::EncryptionData) (whose `DataLength` the parser capped).
    /// A layout built by hand is checked again here: `DataLength` must be 1 B to 1 GiB, since
    /// one region of that size is allocated up front.
    pub fn new(key: &ContentKey, layout: RegionLayout) -> Result<Self, CseError> {
        let data_length = usize::try_from(layout.data_length)
            .ok()
            .filter(|&d| d > 0 && d as u64 <= V21_MAX_DATA_LENGTH)
            .ok_or(CseError::UnsupportedValue {
                field: "EncryptedRegionInfo.DataLength",
                value: layout.data_length.to_string(),
                expected: "1 to 1073741824",
            })?;
        let region_len =
            data_length
                .checked_add(NONCE_LEN + TAG_LEN)
                .ok_or(CseError::Overflow {
                    data_length: layout.data_length,
                })?;
        Ok(RegionDecryptor {
            cipher: Aes256Gcm::new(key.expose_secret().into()),
            data_length,
            region: Vec::with_capacity(region_len),
            next_index: 0,
            schemes: NonceSchemes::any(),
            regions: 0,
            plaintext_len: 0,
            sha256: None,
            failed_at: None,
        })
    }

    /// Starts at region `index`, for a download resumed at a region boundary (the bytes fed
    /// must begin at ciphertext offset `index * (DataLength + 28)`).
    pub fn starting_at_region(mut self, index: u64) -> Self {
        self.next_index = index;
        self
    }

    /// Requires one nonce scheme (learnt from [`DecryptSummary::nonce_scheme`] or
    /// [`RegionDecryptor::nonce_scheme`] before a resume).
    pub fn with_nonce_scheme(mut self, scheme: NonceScheme) -> Self {
        self.schemes = NonceSchemes::only(scheme);
        self
    }

    /// Also computes the SHA-256 of the plaintext (to check a digest recorded by the writer).
    pub fn with_sha256(mut self) -> Self {
        self.sha256 = Some(Sha256::new());
        self
    }

    /// The nonce scheme, once unambiguous.
    pub fn nonce_scheme(&self) -> Option<NonceScheme> {
        self.schemes.resolved()
    }

    /// Index of the next region expected (the region to resume at after a broken download;
    /// bytes of a partly received region are discarded).
    pub fn next_region(&self) -> u64 {
        self.next_index
    }

    /// Plaintext bytes handed out so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Feeds ciphertext bytes; `out` receives each region's plaintext once its tag verified.
    /// An error from `out` stops decryption and is returned as is.
    pub fn push<E: From<CseError>>(
        &mut self,
        mut bytes: &[u8],
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.check_not_failed()?;
        let region_len = self.data_length + NONCE_LEN + TAG_LEN;
        while !bytes.is_empty() {
            let take = (region_len - self.region.len()).min(bytes.len());
            let (now, later) = bytes.split_at(take);
            self.region.extend_from_slice(now);
            bytes = later;
            if self.region.len() == region_len {
                self.decrypt_region(out)?;
            }
        }
        Ok(())
    }

    /// Ends the body: decrypts a short last region, refuses a partial one, and reports what was
    /// produced.
    pub fn finish<E: From<CseError>>(
        mut self,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<DecryptSummary, E> {
        self.check_not_failed()?;
        if !self.region.is_empty() {
            if (self.region.len() as u64) <= REGION_OVERHEAD {
                return Err(self
                    .fail(CseError::PartialRegion {
                        region: self.next_index,
                        bytes: self.region.len(),
                    })
                    .into());
            }
            self.decrypt_region(out)?;
        }
        Ok(DecryptSummary {
            plaintext_len: self.plaintext_len,
            regions: self.regions,
            sha256: self.sha256.take().map(|h| h.finalize().into()),
            nonce_scheme: self.schemes.resolved(),
        })
    }

    fn check_not_failed(&self) -> Result<(), CseError> {
        match self.failed_at {
            Some(region) => Err(CseError::AlreadyFailed { region }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: CseError) -> CseError {
        self.failed_at = Some(self.next_index);
        self.region.clear();
        error
    }

    /// Authenticates and decrypts the assembled region in place, then hands it out.
    fn decrypt_region<E: From<CseError>>(
        &mut self,
        out: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let index = self.next_index;
        let (nonce, rest) = self.region.split_at_mut(NONCE_LEN);
        if !self.schemes.narrow(index, nonce) {
            return Err(self
                .fail(CseError::RegionOutOfOrder { region: index })
                .into());
        }
        let text_len = rest.len().saturating_sub(TAG_LEN);
        let (text, tag) = rest.split_at_mut(text_len);
        let verified = self.cipher.decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            b"",
            text,
            Tag::from_slice(tag),
        );
        if verified.is_err() {
            return Err(self.fail(CseError::BadTag { region: index }).into());
        }
        if let Some(hash) = self.sha256.as_mut() {
            hash.update(&*text);
        }
        self.next_index = index.saturating_add(1);
        self.regions += 1;
        self.plaintext_len += text.len() as u64;
        let result = out(text);
        self.region.clear();
        if result.is_err() {
            self.failed_at = Some(index);
        }
        result
    }
}
