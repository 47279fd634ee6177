//! Upload of one destination object: small objects in one Put Blob, larger ones as staged blocks
//! and one Put Block List, so no partial object is ever visible. Memory per upload is bounded by
//! `single_put_max + block_size`, whatever the object's size.
//!
//! Owns: the provider-side write path (token, global byte limit, retries). Must not: name
//! objects (see `naming`) or decide when an object is complete (the pipeline does).

use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};

use crate::blob_api::{BlobError, ContainerClient, UploadOptions};
use crate::identity::{Principal, TokenError, TokenProvider};
use crate::limits::Limits;
use crate::retry::{with_retries, RetryPolicy, RetryStats};

/// Why a destination write failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// No token for the provider's destination identity.
    #[error("no token for the destination: {0}")]
    Token(#[from] TokenError),
    /// The destination refused or failed.
    #[error("destination {0}")]
    Blob(#[from] BlobError),
}

impl SinkError {
    /// True when retrying later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            SinkError::Token(e) => e.class() == crate::identity::FailureClass::Transient,
            SinkError::Blob(e) => e.class == crate::blob_api::BlobErrorClass::Transient,
        }
    }

    /// What the provider's operator should do.
    pub fn fix(&self) -> &'static str {
        match self {
            SinkError::Blob(e) if e.is_role_missing() => {
                "grant the destination identity 'Storage Blob Data Contributor' on the destination container"
            }
            SinkError::Token(_) => "check [destination].credential and the provider identity",
            SinkError::Blob(_) => {
                "provider storage failed (the request is named in the error); Ferry retries every poll, and every tenant waits on it: check the destination account's health, its throttling and the network path to it"
            }
        }
    }
}

/// Provider storage: where every object goes.
#[derive(Debug, Clone)]
pub struct Destination {
    container: ContainerClient,
    tokens: TokenProvider,
    principal: Principal,
    resource: String,
    limits: Arc<Limits>,
    single_put_max: usize,
    block_size: usize,
    policy: RetryPolicy,
    /// Block buffers of finished uploads, kept for the next ones (at most [`SPARE_BLOCKS`]).
    spare_blocks: Arc<Mutex<Vec<BytesMut>>>,
}

/// Block buffers kept between uploads: a new large object reuses one instead of asking the
/// allocator for `block_size` of fresh memory (which the kernel zeroes page by page, ~10 % of
/// the CPU of a large-blob copy in the end-to-end benchmark). Memory kept is at most this many
/// blocks, never more than was in use at once.
const SPARE_BLOCKS: usize = 4;

/// An object starts in a small buffer that grows as needed; past this size (known up front, or
/// reached while growing) it moves into a block buffer (see [`ObjectUpload::grow_into_block_buffer`]).
const GROWN_INTO_BLOCK_AT: usize = 1 << 20;

/// What a commit reports.
#[derive(Debug, Clone, Default)]
pub struct CommitInfo {
    /// Bytes written.
    pub bytes: u64,
    /// Requests made (puts and commit).
    pub requests: u32,
    /// Retry bookkeeping.
    pub retries: u32,
}

impl Destination {
    /// A destination writing into `container` as `principal`.
    pub fn new(
        container: ContainerClient,
        tokens: TokenProvider,
        principal: Principal,
        resource: String,
        limits: Arc<Limits>,
        single_put_max: usize,
        block_size: usize,
    ) -> Destination {
        Destination {
            container,
            tokens,
            principal,
            resource,
            limits,
            single_put_max,
            block_size: block_size.max(64 * 1024),
            policy: RetryPolicy::default(),
            spare_blocks: Arc::default(),
        }
    }

    /// The container client (for checks and tests).
    pub fn container(&self) -> &ContainerClient {
        &self.container
    }

    /// A bearer header value for the destination.
    pub async fn bearer(&self) -> Result<String, SinkError> {
        Ok(self
            .tokens
            .token(&self.principal, &self.resource)
            .await?
            .bearer())
    }

    /// Starts an object; nothing is visible until `commit`.
    pub fn begin(&self, name: String) -> ObjectUpload {
        ObjectUpload {
            dest: self.clone(),
            name,
            buf: BytesMut::new(),
            staging: false,
            blocks: Vec::new(),
            written: 0,
            info: CommitInfo::default(),
        }
    }

    /// An empty buffer of one block, reused when one is spare.
    fn block_buffer(&self) -> BytesMut {
        let spare = self
            .spare_blocks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        spare.unwrap_or_else(|| BytesMut::with_capacity(self.block_size))
    }

    /// Keeps a block buffer for a later upload, when there is room.
    fn give_back(&self, mut buf: BytesMut) {
        if buf.capacity() < self.block_size {
            return;
        }
        buf.clear();
        let mut spare = self.spare_blocks.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_BLOCKS {
            spare.push(buf);
        }
    }

    /// Time spent waiting on the destination's byte limit.
    pub fn waited(&self) -> std::time::Duration {
        self.limits.waited()
    }

    /// Runs one upload request of object `name` with retries. A request cut off without an
    /// answer is followed by a Get Blob Properties of `name` (no body): a service that refuses
    /// an upload may answer before reading its body and close the connection, so the refusal
    /// (a removed role, an expired token) would otherwise be seen only as a broken pipe,
    /// retried in vain and reported as a network fault.
    async fn retried<T, F, Fut>(
        &self,
        name: &str,
        info: &mut CommitInfo,
        mut call: F,
    ) -> Result<T, SinkError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, BlobError>>,
    {
        let mut unauthorized_once = false;
        let probes = std::sync::atomic::AtomicU32::new(0);
        loop {
            let bearer = self.bearer().await?;
            let (result, stats): (Result<T, BlobError>, RetryStats) =
                with_retries(self.policy, |_| {
                    let request = call(bearer.clone());
                    let (bearer, probes) = (bearer.clone(), &probes);
                    async move {
                        match request.await {
                            Err(e) if e.is_cut_off() => {
                                let probe = self.container.properties(&bearer, name).await;
                                probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                Err(e.explained_by(probe.map(|_| ())))
                            }
                            other => other,
                        }
                    }
                })
                .await;
            info.requests +=
                1 + stats.retries + probes.swap(0, std::sync::atomic::Ordering::Relaxed);
            info.retries += stats.retries;
            match result {
                Err(e)
                    if e.class == crate::blob_api::BlobErrorClass::Unauthorized
                        && !unauthorized_once =>
                {
                    // an expired or revoked token: get a new one once
                    unauthorized_once = true;
                    self.tokens.invalidate(&self.principal, &self.resource);
                }
                other => return other.map_err(SinkError::from),
            }
        }
    }
}

/// One object being written.
#[derive(Debug)]
pub struct ObjectUpload {
    dest: Destination,
    name: String,
    /// Bytes not sent yet: the whole object while it may still fit one Put Blob; once staging,
    /// the block being assembled (capacity `block_size`, reused from one block to the next, so
    /// a large object costs neither buffer regrowth copies nor fresh zeroed pages per block).
    buf: BytesMut,
    /// True once the object is known to need staged blocks.
    staging: bool,
    blocks: Vec<String>,
    written: u64,
    info: CommitInfo,
}

/// Bytes hashed and then copied at a time by [`append_hashing`]: small enough that the copy's
/// stores into a block buffer (memory not in cache any more, the buffer is megabytes long) drain
/// while the next piece is hashed, large enough that the per-call cost of both stays small. In
/// alternating pairs of the large copy, 1,024 used 5 to 7 % less CPU than 4,096 and 4 to 15 %
/// less than hashing each downloaded chunk whole before copying it; 256 cost 8 % more than 1,024
/// (docs/BENCHMARKS.md, "Runs 22 to 24").
const HASHED_COPY_PIECE: usize = 1024;

/// Appends `data` to `buf`, feeding it to `hash` on the way when one is given, piece by piece.
fn append_hashing(buf: &mut BytesMut, data: &[u8], hash: Option<&mut Sha256>) {
    match hash {
        None => buf.extend_from_slice(data),
        Some(hash) => {
            buf.reserve(data.len());
            for piece in data.chunks(HASHED_COPY_PIECE) {
                hash.update(piece);
                buf.extend_from_slice(piece);
            }
        }
    }
}

fn block_id(index: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("ferry-block-{index:010}"))
}

impl ObjectUpload {
    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Largest object sent as one Put Blob.
    fn threshold(&self) -> usize {
        self.dest.single_put_max.max(self.dest.block_size)
    }

    /// Says how long the object will be, when the caller knows (copy mode): a short object gets
    /// its buffer at once, a long one is staged in blocks from its first byte. A hint only: a
    /// wrong length still ships the bytes written, exactly.
    pub fn expect_len(&mut self, len: u64) {
        if self.staging || !self.buf.is_empty() || !self.blocks.is_empty() {
            return;
        }
        if len > self.threshold() as u64 {
            self.staging = true;
            self.buf = self.dest.block_buffer();
        } else if len as usize > GROWN_INTO_BLOCK_AT {
            // len <= threshold, a usize
            self.grow_into_block_buffer();
        } else {
            self.buf.reserve(len as usize);
        }
    }

    /// Adds bytes; stages full blocks once the object is too large for one Put Blob.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), SinkError> {
        self.write_inner(data, None).await
    }

    /// Adds bytes as [`write`](Self::write) does, feeding them to `hash` as they are copied into
    /// the buffer (see [`append_hashing`]): cheaper than hashing them first and copying after.
    pub async fn write_hashing(&mut self, data: &[u8], hash: &mut Sha256) -> Result<(), SinkError> {
        self.write_inner(data, Some(hash)).await
    }

    async fn write_inner(
        &mut self,
        mut data: &[u8],
        mut hash: Option<&mut Sha256>,
    ) -> Result<(), SinkError> {
        self.written += data.len() as u64;
        if !self.staging {
            let wanted = self.buf.len() + data.len();
            if wanted <= self.threshold() {
                if wanted > self.buf.capacity() && wanted > GROWN_INTO_BLOCK_AT {
                    self.grow_into_block_buffer();
                }
                append_hashing(&mut self.buf, data, hash);
                return Ok(());
            }
            self.start_staging().await?;
        }
        let block_size = self.dest.block_size;
        while !data.is_empty() {
            // staging keeps buf shorter than one block between writes
            let n = block_size.saturating_sub(self.buf.len()).min(data.len());
            let (now, later) = data.split_at(n);
            append_hashing(&mut self.buf, now, hash.as_deref_mut());
            data = later;
            if self.buf.len() >= block_size {
                self.stage_buffer().await?;
            }
        }
        Ok(())
    }

    /// Moves an object of unknown length that outgrew [`GROWN_INTO_BLOCK_AT`] into its final
    /// buffer in one copy: a block buffer (reused memory) when a single Put Blob is no larger
    /// than a block, the way it must be for staging anyway; otherwise room for a whole single
    /// Put Blob at once. Without this the buffer doubles its way up (64 KiB, 128 KiB, ... 8 MiB),
    /// copying what it holds and touching fresh pages at every step.
    fn grow_into_block_buffer(&mut self) {
        let mut bigger = if self.threshold() <= self.dest.block_size {
            self.dest.block_buffer()
        } else {
            BytesMut::with_capacity(self.threshold())
        };
        bigger.extend_from_slice(&self.buf);
        self.buf = bigger;
    }

    /// Switches to staged blocks: a buffer of one block that is not full yet simply goes on
    /// filling (it is staged when full); otherwise every full block buffered so far is staged
    /// and the rest moves into a buffer of one block.
    async fn start_staging(&mut self) -> Result<(), SinkError> {
        self.staging = true;
        let block_size = self.dest.block_size;
        if self.buf.len() < block_size && self.buf.capacity() >= block_size {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.buf).freeze();
        let mut at = 0;
        while pending.len() - at >= block_size {
            self.stage(pending.slice(at..at + block_size)).await?;
            at += block_size;
        }
        let mut buf = self.dest.block_buffer();
        buf.extend_from_slice(&pending[at..]);
        self.buf = buf;
        Ok(())
    }

    /// Stages the buffered block, then takes its memory back for the next one.
    async fn stage_buffer(&mut self) -> Result<(), SinkError> {
        let block = std::mem::take(&mut self.buf).freeze();
        self.stage(block.clone()).await?;
        self.buf = match block.try_into_mut() {
            Ok(mut reused) => {
                reused.clear();
                reused
            }
            // the HTTP stack still holds it: another buffer
            Err(_) => self.dest.block_buffer(),
        };
        Ok(())
    }

    async fn stage(&mut self, block: Bytes) -> Result<(), SinkError> {
        let id = block_id(self.blocks.len());
        self.dest.limits.bytes(block.len() as u64).await;
        let dest = self.dest.clone();
        let name = self.name.clone();
        let mut info = std::mem::take(&mut self.info);
        let res = dest
            .retried(&name, &mut info, |bearer| {
                let (dest, name, id, block) =
                    (dest.clone(), name.clone(), id.clone(), block.clone());
                async move { dest.container.put_block(&bearer, &name, &id, block).await }
            })
            .await;
        self.info = info;
        res?;
        self.blocks.push(id);
        Ok(())
    }

    /// Makes the object visible with its metadata, all at once.
    pub async fn commit(mut self, opts: UploadOptions) -> Result<CommitInfo, SinkError> {
        let dest = self.dest.clone();
        let name = self.name.clone();
        if self.blocks.is_empty() && self.buf.len() <= dest.single_put_max.max(dest.block_size) {
            let body = std::mem::take(&mut self.buf).freeze();
            dest.limits.bytes(body.len() as u64).await;
            let mut info = std::mem::take(&mut self.info);
            dest.retried(&name, &mut info, |bearer| {
                let (dest, name, body, opts) =
                    (dest.clone(), name.clone(), body.clone(), opts.clone());
                async move { dest.container.put_blob(&bearer, &name, body, &opts).await }
            })
            .await?;
            info.bytes = self.written;
            // the HTTP stack has let go of the body by now: keep its memory when it is a block
            if let Ok(buf) = body.try_into_mut() {
                dest.give_back(buf);
            }
            return Ok(info);
        }
        if !self.buf.is_empty() {
            self.stage_buffer().await?;
        }
        let blocks = std::mem::take(&mut self.blocks);
        let mut info = std::mem::take(&mut self.info);
        dest.retried(&name, &mut info, |bearer| {
            let (dest, name, blocks, opts) =
                (dest.clone(), name.clone(), blocks.clone(), opts.clone());
            async move {
                dest.container
                    .put_block_list(&bearer, &name, &blocks, &opts)
                    .await
            }
        })
        .await?;
        info.bytes = self.written;
        Ok(info)
    }
}

impl Drop for ObjectUpload {
    fn drop(&mut self) {
        // `give_back` keeps only buffers of a whole block
        self.dest.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    /// A destination that is never called: these tests stay below the first request.
    fn destination(single_put_max: usize, block_size: usize) -> Destination {
        let tokens = TokenProvider::unreachable_for_tests();
        Destination::new(
            ContainerClient::new(reqwest::Client::new(), "https://p.blob.invalid", "c"),
            tokens,
            Principal::ManagedIdentity { client_id: None },
            "https://storage.azure.com".into(),
            Arc::new(Limits::new(None, None)),
            single_put_max,
            block_size,
        )
    }

    fn spare(dest: &Destination) -> Vec<usize> {
        dest.spare_blocks
            .lock()
            .unwrap()
            .iter()
            .map(|b| b.as_ptr() as usize)
            .collect()
    }

    #[tokio::test]
    async fn a_growing_object_moves_into_a_reused_block_buffer() {
        let dest = destination(8 * MIB, 8 * MIB);
        let chunk = vec![7u8; 256 * 1024];
        let mut first = dest.begin("a".into());
        for _ in 0..3 {
            first.write(&chunk).await.unwrap();
        }
        // under a MiB: a small buffer of its own, nothing taken from the pool
        assert!(first.buf.capacity() <= MIB);
        first.write(&chunk).await.unwrap();
        first.write(&chunk).await.unwrap();
        // past a MiB: one block buffer, holding every byte written, in order
        assert_eq!(first.buf.capacity(), 8 * MIB);
        assert_eq!(first.buf.len(), 5 * chunk.len());
        assert!(first.buf.iter().all(|&b| b == 7));
        let block = first.buf.as_ptr() as usize;
        drop(first);
        assert_eq!(
            spare(&dest),
            vec![block],
            "the block buffer goes back to the pool"
        );

        // the next object of unknown length reuses that memory instead of fresh pages
        let mut second = dest.begin("b".into());
        for _ in 0..5 {
            second.write(&chunk).await.unwrap();
        }
        assert_eq!(second.buf.as_ptr() as usize, block);
        assert!(spare(&dest).is_empty());

        // so does an object whose length is known (copy mode)
        drop(second);
        let mut third = dest.begin("c".into());
        third.expect_len(3 * MIB as u64);
        assert_eq!(third.buf.as_ptr() as usize, block);
        // a small one never takes a block
        let mut small = dest.begin("d".into());
        small.expect_len(64 * 1024);
        assert!(small.buf.capacity() <= MIB);
    }

    #[tokio::test]
    async fn a_single_put_larger_than_a_block_gets_its_whole_buffer_at_once() {
        let dest = destination(16 * MIB, 4 * MIB);
        let mut up = dest.begin("a".into());
        up.write(&vec![1u8; 2 * MIB]).await.unwrap();
        // room for the whole single Put Blob: no doubling, and no block buffer that is too small
        assert_eq!(up.buf.capacity(), 16 * MIB);
        up.write(&vec![2u8; 10 * MIB]).await.unwrap();
        assert_eq!(up.buf.capacity(), 16 * MIB);
        assert_eq!(up.buf.len(), 12 * MIB);
        assert!(!up.staging);
    }

    #[tokio::test]
    async fn hashed_writes_hash_every_byte_they_buffer_in_order() {
        // blocks of 100,000 bytes: 9,000 bytes written stay below the first request, either
        // buffered for one Put Blob or, announced as longer, in the first block being staged
        let dest = destination(3_000, 100_000);
        let data: Vec<u8> = (0..9_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for sizes in [
            &[1usize, 1023, 1025, 2048, 3, 4900][..],
            &[9_000],
            &[2_999, 1, 6_000],
        ] {
            for staged in [false, true] {
                let mut up = dest.begin("a".into());
                if staged {
                    up.expect_len(200_000);
                }
                let mut hash = Sha256::new();
                let mut at = 0;
                for &n in sizes {
                    up.write_hashing(&data[at..at + n], &mut hash)
                        .await
                        .unwrap();
                    at += n;
                }
                assert_eq!(at, data.len());
                assert_eq!(up.staging, staged, "{sizes:?}");
                assert_eq!(&up.buf[..], &data[..], "{sizes:?} staged {staged}");
                assert_eq!(
                    hash.finalize(),
                    Sha256::digest(&data),
                    "{sizes:?} staged {staged}"
                );
            }
        }
        // unhashed writes are unchanged
        let mut up = dest.begin("b".into());
        up.write(&data[..100]).await.unwrap();
        up.write(&data[100..]).await.unwrap();
        assert_eq!(&up.buf[..], &data[..]);
    }

    #[test]
    fn block_ids_have_equal_length() {
        let a = block_id(0);
        let b = block_id(49_999);
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
    }
}
