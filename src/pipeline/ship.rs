//! Shipping one `WorkItem`: stream the source range, split and compress (records) or pass
//! through (copy), upload, commit, and only then advance the checkpoint.
//!
//! The destination name depends only on (tenant, source, blob, blob creation time, blob
//! version, start offset), so a re-ship after a crash rewrites the same object with the same or
//! a longer range, and in records mode a new version of a blob never overwrites what an earlier
//! one shipped. A copy of a block blob is named by the blob alone (byte-exact objects under the
//! path template), so a rewritten blob's copy replaces the earlier one whole.
//! Per blob, objects are committed in order, each followed by its checkpoint.
//!
//! Must not: list, or change tenant state (errors go back to the tenant supervisor).

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::blob_api::{BlobErrorClass, BlobKind, UploadOptions};
use crate::cmk::{CustomerKey, KeyVaultError};
use crate::config::{AtRest, BlobSourceConfig, Compression, ShipMode, UnencryptedPolicy};
use crate::sink::{
    content_encoding, extension, BatchEncoder, BatchRange, CommitInfo, CompressError, Destination,
    EndKind, NameContext, PathTemplate, RecordSplitter, SinkError, SplitterConfig,
    JSONL_CONTENT_TYPE,
};
use crate::source::{BlobSource, SourceError};
use crate::state::{
    Checkpoint, CheckpointCommitter, CheckpointStore, CommitComing, CommitRequest, ObjectKey,
    StateError,
};
use crate::telemetry::status::unix_now;
use crate::telemetry::StatusBoard;

use super::decrypt::{bad_blob, encryption_metadata, DecryptingReader, PlainReader, SealedUpload};
use super::recovery::{common_prefix, covered, EarlierShipments};
use super::work::{state_kind, WorkItem};

/// Everything the jobs of one source share.
#[derive(Debug)]
pub struct SourceContext {
    /// Tenant name.
    pub tenant: String,
    /// Tenant id.
    pub tenant_id: String,
    /// The source's configuration.
    pub cfg: BlobSourceConfig,
    /// The customer container.
    pub reader: BlobSource,
    /// Provider storage.
    pub dest: Destination,
    /// Destination path template.
    pub template: Arc<PathTemplate>,
    /// Checkpoints (loads, quarantine).
    pub store: Arc<dyn CheckpointStore>,
    /// Checkpoint commits, grouped with other workers' into shared transactions.
    pub commits: CheckpointCommitter,
    /// Status.
    pub board: StatusBoard,
    /// The customer's key, on a source with `decrypt` (also used by `at_rest = "customer_key"`).
    pub key: Option<Arc<CustomerKey>>,
    /// When this process started shipping the source, to tell checkpoints that may trail.
    pub earlier: EarlierShipments,
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Reading the customer's data failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing to provider storage failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The checkpoint store failed.
    #[error("checkpoint store: {0}")]
    State(#[from] StateError),
    /// The tenant was stopped (revocation, shutdown) before the commit: nothing was committed.
    #[error("stopped before commit; the object was abandoned uncommitted")]
    Stopped,
    /// The customer's Key Vault refused or failed.
    #[error(transparent)]
    Key(KeyVaultError),
    /// The blob cannot be shipped as it is (bad ciphertext, metadata, foreign key, plaintext on a
    /// decrypt source): it is to be quarantined.
    #[error("{reason}")]
    BadBlob {
        /// Why.
        reason: String,
    },
    /// The blob was quarantined (row written, checkpoint set to its ETag): nothing of it was
    /// committed, and it is not read again until its ETag changes.
    #[error("quarantined: {reason}")]
    Quarantined {
        /// Why.
        reason: String,
    },
}

impl ShipError {
    /// True when the blob changed or vanished while being read: try again next poll.
    pub fn is_blob_changed(&self) -> bool {
        matches!(self, ShipError::Source(SourceError::Blob(e)) if matches!(e.class, BlobErrorClass::Changed | BlobErrorClass::NotFound))
    }

    /// True when no connection could be made to one of the customer's endpoints: the storage
    /// account, or the Key Vault of a decrypting source (the provider's own destination does not
    /// count: that is every tenant's trouble, not this one's).
    pub fn is_source_unreachable(&self) -> bool {
        match self {
            ShipError::Source(SourceError::Blob(e)) => e.no_connection,
            ShipError::Key(KeyVaultError::Unreachable { no_connection, .. }) => *no_connection,
            _ => false,
        }
    }
}

/// What a finished job did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    /// Objects committed.
    pub objects: u64,
    /// Source bytes read.
    pub bytes_read: u64,
    /// Bytes committed to the destination.
    pub bytes_written: u64,
    /// Records committed.
    pub records: u64,
    /// Records rejected.
    pub rejected: u64,
}

impl std::ops::AddAssign for Shipped {
    fn add_assign(&mut self, o: Shipped) {
        self.objects += o.objects;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.records += o.records;
        self.rejected += o.rejected;
    }
}

fn compress_error(item: &WorkItem, e: CompressError) -> ShipError {
    ShipError::Sink(SinkError::Blob(crate::blob_api::BlobError::malformed(
        "compress",
        Some(&item.blob),
        e.to_string(),
    )))
}

fn parse_created(item: &WorkItem) -> OffsetDateTime {
    item.creation_time
        .as_deref()
        .and_then(|t| httpdate::parse_http_date(t).ok())
        .map(OffsetDateTime::from)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl SourceContext {
    fn key(&self, item: &WorkItem) -> ObjectKey {
        ObjectKey::new(&self.tenant, &self.cfg.name, &item.blob)
    }

    fn name_for(&self, item: &WorkItem, start: Option<u64>, ext: &str) -> String {
        self.template.render(&NameContext {
            tenant: &self.tenant,
            tenant_id: &self.tenant_id,
            source: &self.cfg.name,
            blob_name: &item.blob,
            blob_created: parse_created(item),
            blob_version: &item.identity,
            start_offset: start,
            ext,
        })
    }

    fn metadata(
        &self,
        item: &WorkItem,
        start: u64,
        end: u64,
        records: Option<u64>,
        sha: &[u8],
        plain_len: u64,
    ) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("ferry_tenant".into(), self.tenant.clone());
        m.insert("ferry_tenant_id".into(), self.tenant_id.clone());
        m.insert("ferry_source".into(), self.cfg.name.clone());
        m.insert(
            "ferry_source_url".into(),
            self.reader.container().blob_url(&item.blob),
        );
        m.insert("ferry_source_etag".into(), item.etag.clone());
        m.insert("ferry_source_range".into(), format!("{start}-{end}"));
        if let Some(r) = records {
            m.insert("ferry_records".into(), r.to_string());
        }
        m.insert(
            crate::cmk::PLAINTEXT_SHA256_METADATA.into(),
            hex::encode(sha),
        );
        m.insert(
            crate::cmk::PLAINTEXT_LENGTH_METADATA.into(),
            plain_len.to_string(),
        );
        m
    }

    /// Commits the checkpoint for `item` at `offset` (after a destination commit). `records`
    /// and `rejected` count this job's records from `item.start` up to `offset` (all its objects
    /// so far, not only the last); the checkpoint adds them to what the prior checkpoint of the
    /// same version counted. `coming`: the announcement taken when the destination commit
    /// started, if any (see [`commit_object`](SourceContext::commit_object)).
    async fn checkpoint(
        &self,
        item: &WorkItem,
        version: &mut Option<u64>,
        offset: u64,
        records: u64,
        rejected: u64,
        coming: Option<CommitComing>,
    ) -> Result<(), ShipError> {
        let prior = item.prior.as_ref().map(|p| &p.value);
        let same_version = prior.is_some_and(|p| p.etag == item.identity);
        let (base_records, base_rejected) = match prior {
            Some(p) if same_version => (p.records_shipped, p.rejected_records),
            _ => (0, 0),
        };
        let cp = Checkpoint {
            etag: item.identity.clone(),
            offset,
            blob_kind: state_kind(item.kind),
            size_seen: item.end,
            records_shipped: base_records + records,
            rejected_records: base_rejected + rejected,
            last_shipped_at: unix_now(),
            // shipped to the listed end: whatever lies past it was written after this poll
            // began; short of it (a batch of many, a partial last line), only what the prior
            // checkpoint of this version knew still holds
            seen_at: if offset >= item.end {
                Some(item.seen_at)
            } else {
                prior.filter(|_| same_version).and_then(|p| p.seen_at)
            },
        };
        let request = CommitRequest {
            key: self.key(item),
            expected_version: *version,
            checkpoint: cp,
        };
        let new_version = match coming {
            Some(coming) => self.commits.commit_announced(request, coming).await?,
            None => self.commits.commit(request).await?,
        };
        *version = Some(new_version);
        Ok(())
    }

    /// Commits one destination object, then its checkpoint at `(offset, records, rejected)` (as
    /// [`checkpoint`](SourceContext::checkpoint) counts them). The checkpoint is announced when
    /// the object's commit starts, so that other jobs' checkpoints wait for it and share its
    /// transaction (`state::committer`).
    async fn commit_object(
        &self,
        object: SealedUpload,
        opts: UploadOptions,
        item: &WorkItem,
        version: &mut Option<u64>,
        (offset, records, rejected): (u64, u64, u64),
    ) -> Result<CommitInfo, ShipError> {
        let coming = self.commits.commit_coming();
        let info = object.commit(opts).await?;
        self.checkpoint(item, version, offset, records, rejected, Some(coming))
            .await?;
        Ok(info)
    }

    /// Ships one unit. `stop` is checked before every commit: once it fires, nothing more of
    /// this unit is committed. A blob refused as such (bad ciphertext...) is quarantined.
    pub async fn ship(
        &self,
        item: &WorkItem,
        stop: &CancellationToken,
    ) -> Result<Shipped, ShipError> {
        let recovered = self.recover(item).await?;
        let item = match &recovered {
            Some(r) if r.start >= r.end => return Ok(Shipped::default()),
            Some(r) => r,
            None => item,
        };
        let result = match self.cfg.mode {
            ShipMode::Copy => self.ship_copy(item, stop).await,
            ShipMode::Records => self.ship_records(item, stop).await,
        };
        match result {
            Err(ShipError::BadBlob { reason }) => {
                if self.halted(stop) {
                    return Err(ShipError::Stopped);
                }
                self.quarantine(item, &reason).await?;
                Err(ShipError::Quarantined { reason })
            }
            other => other,
        }
    }

    /// For an append blob whose checkpoint may trail what an earlier process shipped (see
    /// `recovery`): the item continued after the gapless run of objects the destination already
    /// holds from its start (the checkpoint committed there first), so no second object overlaps
    /// them. None when there is nothing to skip.
    async fn recover(&self, item: &WorkItem) -> Result<Option<WorkItem>, ShipError> {
        if item.kind != BlobKind::Append {
            return Ok(None);
        }
        let same_version = item
            .prior
            .as_ref()
            .filter(|p| p.value.etag == item.identity);
        // an unknown creation time reads as the epoch: older than any process, so it may trail
        let created = parse_created(item).unix_timestamp();
        if !self
            .earlier
            .may_trail(same_version.map(|p| p.value.last_shipped_at), created)
        {
            return Ok(None);
        }
        let ext = match self.cfg.mode {
            ShipMode::Copy => "",
            ShipMode::Records => extension(self.cfg.compression),
        };
        if !self
            .earlier
            .destination_had_objects(&self.dest, &self.source_prefix(ext))
            .await?
        {
            return Ok(None);
        }
        let at = |start: u64| self.name_for(item, Some(start), ext);
        let prefix = common_prefix(&at(0), &at(u64::MAX));
        let have = covered(&self.dest, &prefix, item.start, at).await?;
        if have.objects == 0 {
            return Ok(None);
        }
        let end = have.end.min(item.end);
        let mut version = item.prior.as_ref().map(|p| p.version);
        self.checkpoint(item, &mut version, end, have.records, 0, None)
            .await?;
        let prior = self.store.load(&self.key(item))?;
        tracing::info!(tenant = %self.tenant, source = %self.cfg.name, blob = %item.blob, objects = have.objects, from = item.start, offset = end, "The destination already holds objects past this blob's checkpoint (written by an earlier process); continuing after them");
        Ok(Some(WorkItem {
            start: end,
            prior,
            ..item.clone()
        }))
    }

    /// The part of every object name of this source that no blob decides (up to its last `/`).
    fn source_prefix(&self, ext: &str) -> String {
        let render = |blob: &str, created: i64, version: &str, start: u64| {
            self.template.render(&NameContext {
                tenant: &self.tenant,
                tenant_id: &self.tenant_id,
                source: &self.cfg.name,
                blob_name: blob,
                blob_created: OffsetDateTime::from_unix_timestamp(created)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                blob_version: version,
                start_offset: Some(start),
                ext,
            })
        };
        // 2000-01-01 and 2099-12-31: different in every date field
        let common = common_prefix(
            &render("a", 946_684_800, "x", 0),
            &render("b", 4_102_358_400, "y", u64::MAX),
        );
        match common.rfind('/') {
            Some(i) => common[..=i].to_string(),
            None => String::new(),
        }
    }

    /// True once nothing more may be committed: the tenant stopped, or its key was refused
    /// (latched at the refusal itself, before the tenant supervisor hears of it).
    fn halted(&self, stop: &CancellationToken) -> bool {
        stop.is_cancelled() || self.key.as_ref().is_some_and(|k| k.is_refused())
    }

    /// Puts the blob version aside: a quarantine row with the reason, and a checkpoint at its
    /// end under its ETag so it is not read again until the ETag changes.
    async fn quarantine(&self, item: &WorkItem, reason: &str) -> Result<(), ShipError> {
        let store = self.store.clone();
        let (tenant, source, blob, etag, why) = (
            self.tenant.clone(),
            self.cfg.name.clone(),
            item.blob.clone(),
            item.etag.clone(),
            reason.to_string(),
        );
        tokio::task::spawn_blocking(move || store.quarantine(&tenant, &source, &blob, &etag, &why))
            .await
            .map_err(|e| StateError::TaskFailed {
                detail: e.to_string(),
            })??;
        let mut version = item.prior.as_ref().map(|p| p.version);
        self.checkpoint(item, &mut version, item.end, 0, 0, None)
            .await
    }

    /// The plaintext of the unit from plaintext offset `start`: decrypted on a decrypt source
    /// (block blobs only), as-is otherwise; with the plaintext end.
    async fn plain_reader(
        &self,
        item: &WorkItem,
        start: u64,
        lock: Option<String>,
    ) -> Result<(PlainReader, u64), ShipError> {
        let Some(key) = self.key.as_ref().filter(|_| self.cfg.decrypt.is_some()) else {
            let r = self.reader.read_range(&item.blob, start, item.end, lock);
            return Ok((PlainReader::Raw(Box::new(r)), item.end));
        };
        if encryption_metadata(&item.metadata).is_none() {
            let ship_plain = self
                .cfg
                .decrypt
                .as_ref()
                .is_some_and(|d| d.unencrypted == UnencryptedPolicy::Ship);
            if ship_plain {
                let r = self.reader.read_range(&item.blob, start, item.end, lock);
                return Ok((PlainReader::Raw(Box::new(r)), item.end));
            }
            return Err(bad_blob(
                "the blob has no encryptiondata metadata on a decrypt source (set decrypt.unencrypted = \"ship\" to ship such blobs as they are)",
            ));
        }
        if item.kind == BlobKind::Append {
            return Err(bad_blob(
                "client-side encryption applies to block blobs only; this append blob carries encryptiondata",
            ));
        }
        let (r, plain_end) = DecryptingReader::open(
            &self.reader,
            key,
            &item.blob,
            &item.metadata,
            item.end,
            start,
            lock,
        )
        .await?;
        Ok((PlainReader::Decrypting(Box::new(r)), plain_end))
    }

    /// Opens a destination object, sealed under the customer's key with `at_rest = "customer_key"`.
    async fn begin_object(&self, name: String) -> Result<SealedUpload, ShipError> {
        let upload = self.dest.begin(name);
        match (&self.key, self.cfg.at_rest) {
            (Some(key), AtRest::CustomerKey) => SealedUpload::sealed(upload, key).await,
            _ => Ok(SealedUpload::plain(upload)),
        }
    }

    async fn ship_copy(
        &self,
        item: &WorkItem,
        stop: &CancellationToken,
    ) -> Result<Shipped, ShipError> {
        let mut version = item.prior.as_ref().map(|p| p.version);
        // block blobs are copied whole (a partial copy is never committed); append blobs ship
        // their new bytes as a range object of their own
        let (start, name) = match item.kind {
            BlobKind::Append => (item.start, self.name_for(item, Some(item.start), "")),
            _ => (0, self.name_for(item, None, "")),
        };
        let lock = (item.kind != BlobKind::Append).then(|| item.etag.clone());
        let (mut reader, plain_end) = self.plain_reader(item, start, lock).await?;
        let mut upload = self.begin_object(name).await?;
        upload.expect_len(plain_end.saturating_sub(start));
        let mut sha = Sha256::new();
        let mut read = 0u64;
        while let Some(chunk) = reader.next_chunk().await? {
            read += chunk.len() as u64;
            upload.write_hashing(&chunk, &mut sha).await?;
            if self.halted(stop) {
                return Err(ShipError::Stopped);
            }
        }
        let digest = sha.finalize();
        let opts = UploadOptions {
            content_type: Some("application/octet-stream".into()),
            content_encoding: None,
            metadata: self.metadata(item, start, plain_end, None, &digest, read),
        };
        if self.halted(stop) {
            return Err(ShipError::Stopped);
        }
        let info = self
            .commit_object(upload, opts, item, &mut version, (item.end, 0, 0))
            .await?;
        Ok(Shipped {
            objects: 1,
            bytes_read: read,
            bytes_written: info.bytes,
            records: 0,
            rejected: 0,
        })
    }

    async fn ship_records(
        &self,
        item: &WorkItem,
        stop: &CancellationToken,
    ) -> Result<Shipped, ShipError> {
        let mut version = item.prior.as_ref().map(|p| p.version);
        let compression: Compression = self.cfg.compression;
        let split_cfg = SplitterConfig {
            max_record_size: self.cfg.max_record_size.get() as usize,
            batch_max_bytes: self.cfg.batch_max_bytes.get(),
            ..SplitterConfig::default()
        };
        // an append blob's end is final only once the blob is quiet (not written for
        // partial_line_wait): until then a last line without `\n` waits for its end
        let end_kind = if item.kind == BlobKind::Append && !item.quiet {
            EndKind::Growing
        } else {
            EndKind::Immutable
        };
        let lock = (item.kind != BlobKind::Append).then(|| item.etag.clone());
        let (mut reader, plain_end) = self.plain_reader(item, item.start, lock).await?;
        // a decrypted blob is authenticated region by region: nothing of it is committed until
        // its last region verified, so a bad region later on abandons every object uncommitted
        let defer = matches!(reader, PlainReader::Decrypting(_));
        let mut pending: Vec<Pending> = Vec::new();
        let mut splitter = RecordSplitter::new(split_cfg, item.start);
        if item.kind != BlobKind::Append {
            // the pre-2018 `{"records":[...]}` documents were block blobs; append blobs are
            // JSON Lines from their first byte
            splitter = splitter.with_legacy_detection(plain_end);
        }

        let mut out = Shipped::default();
        let mut batches = BatchEncoder::new(compression, self.cfg.compression_level)
            .map_err(|e| compress_error(item, e))?;
        let mut open: Option<SealedUpload> = None;
        let mut checkpointed = false;

        loop {
            let chunk = reader.next_chunk().await?;
            let at_end = chunk.is_none();
            let result = match &chunk {
                Some(chunk) => {
                    out.bytes_read += chunk.len() as u64;
                    batches.push(&mut splitter, chunk).map(|()| None)
                }
                None => {
                    let finished =
                        std::mem::replace(&mut splitter, RecordSplitter::new(split_cfg, 0));
                    batches.finish(finished, end_kind).map(Some)
                }
            };
            let summary = result.map_err(|e| compress_error(item, e))?;
            // commit every batch the splitter closed, in order
            for (range, tail) in batches.take_closed() {
                if range.records == 0 {
                    // only rejected or empty lines: nothing to write, but the bytes are consumed
                    drop(open.take());
                    let p = Pending::Skip(range);
                    if defer {
                        pending.push(p);
                    } else {
                        self.finalize(item, &mut version, p, stop, &mut out).await?;
                        checkpointed = true;
                    }
                    continue;
                }
                let mut obj = match open.take() {
                    Some(o) => o,
                    None => self.open_object(item, range.start, compression).await?,
                };
                obj.write(&tail.tail).await?;
                if self.halted(stop) {
                    return Err(ShipError::Stopped);
                }
                let opts = UploadOptions {
                    content_type: Some(JSONL_CONTENT_TYPE.into()),
                    content_encoding: content_encoding(compression).map(str::to_string),
                    metadata: self.metadata(
                        item,
                        range.start,
                        range.end,
                        Some(range.records),
                        &tail.plaintext_sha256,
                        tail.plaintext_len,
                    ),
                };
                let p = Pending::Object(Box::new(obj), Box::new(opts), range);
                if defer {
                    pending.push(p);
                } else {
                    self.finalize(item, &mut version, p, stop, &mut out).await?;
                    checkpointed = true;
                }
            }
            // stream what the open batch has encoded so far
            if let Some(ready) = batches.take_ready(64 * 1024) {
                if open.is_none() {
                    let start = splitter.batch_start();
                    open = Some(self.open_object(item, start, compression).await?);
                }
                if let Some(obj) = open.as_mut() {
                    obj.write(&ready).await?;
                }
            }
            if at_end {
                if item.quiet && summary.as_ref().is_some_and(|s| s.unterminated_end) {
                    tracing::info!(tenant = %self.tenant, source = %self.cfg.name, blob = %item.blob, offset = item.end, wait = %self.cfg.partial_line_wait, "The last line of this append blob has no newline and the blob was not written for partial_line_wait: it ships as a record as it is (a later append continuing it would ship as a record of its own)");
                }
                // every region verified: commit what was held back, in order
                for p in pending.drain(..) {
                    self.finalize(item, &mut version, p, stop, &mut out).await?;
                    checkpointed = true;
                }
                if !checkpointed {
                    // nothing closed: a zero-byte blob, or only a partial last line of a growing
                    // blob; remember the version and size seen so it is not read again for nothing
                    let at = summary.map(|s| s.consumed).unwrap_or(item.start);
                    self.checkpoint(item, &mut version, at, 0, 0, None).await?;
                }
                break;
            }
        }
        Ok(out)
    }

    async fn open_object(
        &self,
        item: &WorkItem,
        start: u64,
        compression: Compression,
    ) -> Result<SealedUpload, ShipError> {
        self.begin_object(self.name_for(item, Some(start), extension(compression)))
            .await
    }

    /// Commits one closed batch (or only its checkpoint) unless the tenant halted.
    async fn finalize(
        &self,
        item: &WorkItem,
        version: &mut Option<u64>,
        p: Pending,
        stop: &CancellationToken,
        out: &mut Shipped,
    ) -> Result<(), ShipError> {
        if self.halted(stop) {
            return Err(ShipError::Stopped);
        }
        match p {
            Pending::Skip(range) => {
                self.checkpoint(
                    item,
                    version,
                    range.end,
                    out.records,
                    out.rejected + range.rejected,
                    None,
                )
                .await?;
                out.rejected += range.rejected;
            }
            Pending::Object(obj, opts, range) => {
                let counts = (
                    range.end,
                    out.records + range.records,
                    out.rejected + range.rejected,
                );
                let info = self
                    .commit_object(*obj, *opts, item, version, counts)
                    .await?;
                out.objects += 1;
                out.bytes_written += info.bytes;
                out.records += range.records;
                out.rejected += range.rejected;
            }
        }
        Ok(())
    }
}

/// A closed batch waiting for its commit.
enum Pending {
    /// Only rejected or empty lines: a checkpoint, no object.
    Skip(BatchRange),
    /// An object with its upload options.
    Object(Box<SealedUpload>, Box<UploadOptions>, BatchRange),
}
