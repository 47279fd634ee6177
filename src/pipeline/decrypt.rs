//! The plaintext side of a decrypt source: `PlainReader` yields a blob's plaintext whether it is
//! read as-is or decrypted region by region from Azure Storage client-side encryption v2/v2.1,
//! and `SealedUpload` writes an object either plain or sealed under the customer's key.
//!
//! Reads of encrypted blobs start at a region boundary (a plaintext offset maps to the region
//! holding it; the bytes before it in that region are skipped), memory stays at one region, and
//! a broken download resumes from the last byte received, which the decryptor continues from.
//!
//! Must not: commit anything (ship.rs decides when), or decide tenant state.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::cmk::{
    parse_encryption_data, plaintext_len, region_aligned_range, ContentKey, CseError, CustomerKey,
    EncryptionData, RegionDecryptor, RegionEncryptor, ENCRYPTION_DATA_METADATA,
};
use crate::sink::{ObjectUpload, SinkError};
use crate::source::{BlobSource, RangeReader};

use super::ship::ShipError;

/// Metadata naming the plaintext length an object must decrypt to (Ferry's own objects; the
/// second spelling is what Ferry's format notes named it before, still accepted on read).
pub const PLAINTEXT_LENGTH_KEYS: [&str; 2] = [
    crate::cmk::PLAINTEXT_LENGTH_METADATA,
    "ferryplaintextlength",
];

/// The `encryptiondata` value of a listed blob, found case-insensitively.
pub fn encryption_metadata(metadata: &BTreeMap<String, String>) -> Option<&str> {
    metadata
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(ENCRYPTION_DATA_METADATA))
        .map(|(_, v)| v.as_str())
}

/// A blob-level refusal: the blob is quarantined, never retried until its ETag changes.
pub fn bad_blob(reason: impl Into<String>) -> ShipError {
    ShipError::BadBlob {
        reason: reason.into(),
    }
}

impl From<CseError> for ShipError {
    fn from(e: CseError) -> Self {
        bad_blob(e.to_string())
    }
}

/// The plaintext of `[start, end)` of a blob.
#[derive(Debug)]
pub enum PlainReader {
    /// A plaintext blob read as-is.
    Raw(Box<RangeReader>),
    /// A client-side encrypted blob decrypted while streaming.
    Decrypting(Box<DecryptingReader>),
}

impl PlainReader {
    /// The next plaintext chunk, or None at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ShipError> {
        match self {
            PlainReader::Raw(r) => Ok(r.next_chunk().await?),
            PlainReader::Decrypting(d) => d.next_chunk().await,
        }
    }
}

/// Decrypts one blob version while it streams.
#[derive(Debug)]
pub struct DecryptingReader {
    inner: RangeReader,
    decryptor: Option<RegionDecryptor>,
    skip: u64,
    ready: VecDeque<Bytes>,
    done: bool,
    expected_len: Option<u64>,
    blob: String,
}

impl DecryptingReader {
    /// Opens `blob` (ciphertext length `cipher_len`, locked to `etag`) for plaintext from
    /// `plain_start`: unwraps its content key through `key` and reads from the region holding
    /// `plain_start`.
    pub async fn open(
        source: &BlobSource,
        key: &Arc<CustomerKey>,
        blob: &str,
        metadata: &BTreeMap<String, String>,
        cipher_len: u64,
        plain_start: u64,
        etag: Option<String>,
    ) -> Result<(DecryptingReader, u64), ShipError> {
        let json = encryption_metadata(metadata)
            .ok_or_else(|| bad_blob("the blob has no encryptiondata metadata"))?;
        let data: EncryptionData = parse_encryption_data(json)?;
        let dl = data.layout.data_length;
        let plain_total = plaintext_len(cipher_len, dl).ok_or_else(|| {
            bad_blob(format!(
                "ciphertext length {cipher_len} ends in a partial region (data length {dl}); the blob is truncated or padded"
            ))
        })?;
        let expected_len = match PLAINTEXT_LENGTH_KEYS.iter().find_map(|k| metadata.get(*k)) {
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                bad_blob(format!("plaintext length metadata {v:?} is not a number"))
            })?),
            None => None,
        };
        if let Some(expected) = expected_len {
            if expected != plain_total {
                return Err(bad_blob(format!(
                    "the blob decrypts to {plain_total} bytes but its metadata says {expected}: regions are missing or added"
                )));
            }
        }
        let content_key: ContentKey = key.content_key(&data).await.map_err(|e| match e {
            crate::cmk::CustomerKeyError::Blob(c) => ShipError::from(c),
            crate::cmk::CustomerKeyError::Vault(v) => ShipError::Key(v),
        })?;
        let plain_start = plain_start.min(plain_total);
        let (cipher_start, region) = region_aligned_range(plain_start, dl)
            .ok_or_else(|| bad_blob("region offsets overflow"))?;
        let decryptor = RegionDecryptor::new(&content_key, data.layout)?.starting_at_region(region);
        let skip = plain_start - region.saturating_mul(dl);
        let inner = source.read_range(blob, cipher_start.min(cipher_len), cipher_len, etag);
        Ok((
            DecryptingReader {
                inner,
                decryptor: Some(decryptor),
                skip,
                ready: VecDeque::new(),
                done: false,
                expected_len: if plain_start == 0 { expected_len } else { None },
                blob: blob.to_string(),
            },
            plain_total,
        ))
    }

    fn emit(ready: &mut VecDeque<Bytes>, skip: &mut u64, text: &[u8]) {
        let cut = (*skip).min(text.len() as u64) as usize;
        *skip -= cut as u64;
        if let Some(rest) = text.get(cut..) {
            if !rest.is_empty() {
                ready.push_back(Bytes::copy_from_slice(rest));
            }
        }
    }

    /// The next plaintext chunk (only authenticated bytes), or None at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ShipError> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                return Ok(Some(b));
            }
            if self.done {
                return Ok(None);
            }
            let chunk = self.inner.next_chunk().await?;
            let (ready, skip) = (&mut self.ready, &mut self.skip);
            let mut out = |text: &[u8]| {
                Self::emit(ready, skip, text);
                Ok::<(), CseError>(())
            };
            match chunk {
                Some(c) => {
                    let Some(d) = self.decryptor.as_mut() else {
                        return Ok(None);
                    };
                    d.push(&c, &mut out)?;
                }
                None => {
                    self.done = true;
                    let Some(d) = self.decryptor.take() else {
                        return Ok(None);
                    };
                    let summary = d.finish(&mut out)?;
                    if let Some(expected) = self.expected_len {
                        if expected != summary.plaintext_len {
                            return Err(bad_blob(format!(
                                "blob {} decrypted to {} bytes, its metadata says {expected}",
                                self.blob, summary.plaintext_len
                            )));
                        }
                    }
                }
            }
        }
    }
}

/// An object being written, plain or sealed under the customer's key (CSE v2).
#[derive(Debug)]
pub struct SealedUpload {
    upload: ObjectUpload,
    seal: Option<(RegionEncryptor, EncryptionData)>,
}

impl SealedUpload {
    /// A plain object.
    pub fn plain(upload: ObjectUpload) -> SealedUpload {
        SealedUpload { upload, seal: None }
    }

    /// An object sealed with a fresh content key wrapped by `key` (one `wrapkey` call).
    pub async fn sealed(
        upload: ObjectUpload,
        key: &CustomerKey,
    ) -> Result<SealedUpload, ShipError> {
        let (content_key, data) = key.new_content_key().await.map_err(|e| match e {
            crate::cmk::CustomerKeyError::Blob(c) => ShipError::from(c),
            crate::cmk::CustomerKeyError::Vault(v) => ShipError::Key(v),
        })?;
        let encryptor = RegionEncryptor::with_key(content_key, data.layout)?;
        Ok(SealedUpload {
            upload,
            seal: Some((encryptor, data)),
        })
    }

    /// Says how much plaintext will follow (see [`ObjectUpload::expect_len`]); a sealed object
    /// is a little longer, which the hint tolerates.
    pub fn expect_len(&mut self, plain_len: u64) {
        self.upload.expect_len(plain_len);
    }

    /// Adds plaintext, feeding it to `hash` (see [`ObjectUpload::write_hashing`]).
    pub async fn write_hashing(
        &mut self,
        data: &[u8],
        hash: &mut sha2::Sha256,
    ) -> Result<(), ShipError> {
        match self.seal {
            None => Ok(self.upload.write_hashing(data, hash).await?),
            Some(_) => {
                sha2::Digest::update(hash, data);
                self.write(data).await
            }
        }
    }

    /// Adds plaintext.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ShipError> {
        match self.seal.as_mut() {
            None => Ok(self.upload.write(data).await?),
            Some((enc, _)) => {
                let mut sealed = Vec::with_capacity(data.len() + 64);
                enc.push(data, &mut |c: &[u8]| {
                    sealed.extend_from_slice(c);
                    Ok::<(), CseError>(())
                })?;
                if !sealed.is_empty() {
                    self.upload.write(&sealed).await?;
                }
                Ok(())
            }
        }
    }

    /// Seals the last region, adds `encryptiondata` (and moves Content-Encoding into metadata:
    /// the stored bytes are ciphertext), then commits.
    pub async fn commit(
        self,
        mut opts: crate::blob_api::UploadOptions,
    ) -> Result<crate::sink::CommitInfo, ShipError> {
        let SealedUpload { mut upload, seal } = self;
        if let Some((enc, data)) = seal {
            let mut sealed = Vec::new();
            enc.finish(&mut |c: &[u8]| {
                sealed.extend_from_slice(c);
                Ok::<(), CseError>(())
            })?;
            upload.write(&sealed).await?;
            opts.metadata
                .insert(ENCRYPTION_DATA_METADATA.to_string(), data.to_json());
            if let Some(ce) = opts.content_encoding.take() {
                opts.metadata.insert("ferry_content_encoding".into(), ce);
            }
            opts.content_type = Some("application/octet-stream".into());
        }
        upload.commit(opts).await.map_err(|e: SinkError| e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encryption_metadata_is_found_case_insensitively() {
        let mut m = BTreeMap::new();
        m.insert("EncryptionData".to_string(), "{}".to_string());
        assert_eq!(encryption_metadata(&m), Some("{}"));
        assert_eq!(encryption_metadata(&BTreeMap::new()), None);
    }

    #[test]
    fn skipped_bytes_are_cut_from_the_first_regions() {
        let mut ready = VecDeque::new();
        let mut skip = 5;
        DecryptingReader::emit(&mut ready, &mut skip, b"abc");
        DecryptingReader::emit(&mut ready, &mut skip, b"defgh");
        assert_eq!(skip, 0);
        assert_eq!(ready.pop_front().as_deref(), Some(&b"fgh"[..]));
        assert!(ready.is_empty());
    }
}
