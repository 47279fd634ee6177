//! What to ship next from one listed blob, given its checkpoint: the planning rule, pure and
//! tested alone.
//!
//! Rules:
//! - block blobs are shipped once per (name, ETag); a new ETag ships the blob again from byte 0;
//! - append blobs are tailed from the committed offset; their identity is their creation time
//!   (the ETag changes with every append), so a deleted and re-created blob starts again at 0;
//! - an append blob shorter than its committed offset under the same identity was re-created
//!   within the same second (listings give creation times to the second; append blobs never
//!   shrink): it starts again at 0 as the next generation of that identity (`created:<time>#2`,
//!   `#3`, ...), so its objects are named apart from the earlier blob's;
//! - an append blob whose only unshipped bytes are a partial last line is not read again until
//!   it grows, or until it has not been written for the source's `partial_line_wait` (it is then
//!   *quiet*: its last line is final, and ships as a record);
//! - on a decrypt source, an encrypted block blob's checkpoint counts plaintext bytes (the
//!   offsets a decrypted object starts at), so the blob is done once its offset reaches the
//!   plaintext length its listed `encryptiondata` and length give, not the ciphertext length;
//! - page blobs are not shipped.

use crate::blob_api::{BlobItem, BlobKind};
use crate::state::{self, Checkpoint, Versioned};

/// One unit of work: bytes `[start, end)` of one blob version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkItem {
    /// Blob name.
    pub blob: String,
    /// Block or append.
    pub kind: BlobKind,
    /// ETag at listing time.
    pub etag: String,
    /// What identifies this blob version in the checkpoint (`etag` for block blobs,
    /// `created:<time>` for append blobs).
    pub identity: String,
    /// Creation time as listed (RFC 1123).
    pub creation_time: Option<String>,
    /// Last modified as listed (RFC 1123), for lag.
    pub last_modified: Option<String>,
    /// First byte to ship.
    pub start: u64,
    /// Size at listing time: the end of this unit.
    pub end: u64,
    /// The checkpoint this unit continues, with its version (None for a blob seen first).
    pub prior: Option<Versioned<Checkpoint>>,
    /// Blob metadata as listed (names lower-cased).
    pub metadata: std::collections::BTreeMap<String, String>,
    /// An append blob not written for `partial_line_wait`: a last line without `\n` at `end` is
    /// final and ships as a record instead of waiting for its end.
    pub quiet: bool,
    /// Unix seconds, at or before the listing that gave `end`: everything written to the blob
    /// before it lies within `end` (the start of the poll).
    pub seen_at: i64,
}

/// Unix seconds of an RFC 1123 time as the service lists it.
pub fn http_time(t: Option<&str>) -> Option<i64> {
    let t = httpdate::parse_http_date(t?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

impl WorkItem {
    /// Since when the bytes this unit has not shipped may have been written, and whether that
    /// time is only assumed (see `SourceStatus::behind_since_assumed`). A block blob version is
    /// written whole at its last-modified time. An append blob's unshipped bytes come after its
    /// checkpoint, so after the poll that shipped to it (`seen_at`), or after its creation when
    /// nothing of this version shipped; its last-modified time is only its newest append.
    pub fn unshipped_since(&self) -> Option<(i64, bool)> {
        let modified = http_time(self.last_modified.as_deref());
        if self.kind != BlobKind::Append {
            return modified.map(|t| (t, false));
        }
        let prior = self
            .prior
            .as_ref()
            .map(|p| &p.value)
            .filter(|p| p.etag == self.identity);
        let known = match prior {
            Some(p) => p.seen_at,
            None => http_time(self.creation_time.as_deref()),
        };
        match known {
            Some(t) => Some((t, false)),
            None => modified.map(|t| (t, true)),
        }
    }
}

/// What a listed blob needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: shipped, filtered by kind, or a page blob.
    Nothing,
    /// Only a partial last line of an append blob is unshipped, nothing was appended since, and
    /// the blob is not quiet yet: it waits for its end (or for `partial_line_wait`).
    PartialLineWaits,
    /// Ship this unit.
    Ship(Box<WorkItem>),
}

#[cfg(test)]
impl Plan {
    /// The unit to ship, if any.
    fn work(self) -> Option<WorkItem> {
        match self {
            Plan::Ship(item) => Some(*item),
            _ => None,
        }
    }
}

/// The identity under which a blob's progress is checkpointed.
pub fn identity_of(item: &BlobItem) -> String {
    match item.kind {
        Some(BlobKind::Append) => format!(
            "created:{}",
            item.creation_time.as_deref().unwrap_or("unknown")
        ),
        _ => item.etag.clone(),
    }
}

/// Which generation of the listed identity a checkpointed identity is: 1 when they are equal,
/// `n` for `{listed}#n` (an append blob re-created within the same second), None for another
/// blob version.
fn generation_of(checkpointed: &str, listed: &str) -> Option<u64> {
    match checkpointed.strip_prefix(listed)? {
        "" => Some(1),
        rest => rest.strip_prefix('#')?.parse().ok().filter(|n| *n >= 2),
    }
}

/// The state module's name for a blob kind.
pub fn state_kind(kind: BlobKind) -> state::BlobKind {
    match kind {
        BlobKind::Append => state::BlobKind::Append,
        _ => state::BlobKind::Block,
    }
}

/// Where a listed blob ends in the bytes its checkpoint counts: the plaintext length of a block
/// blob a decrypt source decrypts (CSE regions each carry a nonce and a tag), else its length.
/// Metadata that does not describe a whole number of regions gives the ciphertext length: the
/// blob is quarantined when read, with its checkpoint at that length.
fn checkpointed_len(item: &BlobItem, kind: BlobKind, decrypting: bool) -> u64 {
    let size = item.content_length;
    if !decrypting || kind != BlobKind::Block {
        return size;
    }
    super::decrypt::encryption_metadata(&item.metadata)
        .and_then(|json| crate::cmk::parse_encryption_data(json).ok())
        .and_then(|data| crate::cmk::plaintext_len(size, data.layout.data_length))
        .unwrap_or(size)
}

/// Plans the next unit of a listed blob. `quiet`: the blob has not been written for the
/// source's `partial_line_wait` (see [`WorkItem::quiet`]); only append blobs use it.
/// `decrypting`: the source has `decrypt` set (see [`checkpointed_len`]).
pub fn plan(
    item: &BlobItem,
    prior: Option<Versioned<Checkpoint>>,
    quiet: bool,
    decrypting: bool,
    seen_at: i64,
) -> Plan {
    let kind = item.kind.unwrap_or(BlobKind::Block);
    if kind == BlobKind::Page {
        return Plan::Nothing;
    }
    let quiet = quiet && kind == BlobKind::Append;
    let listed = identity_of(item);
    let size = item.content_length;
    // the checkpoint, when it is about this blob (any generation of its identity)
    let same_blob = prior
        .as_ref()
        .and_then(|cp| Some((&cp.value, generation_of(&cp.value.etag, &listed)?)));
    let (start, identity) = match same_blob {
        None => (0, listed),
        Some((c, generation)) if kind == BlobKind::Append && c.offset > size => {
            // shorter than what was shipped of it: not the blob the checkpoint is about
            (0, format!("{listed}#{}", generation + 1))
        }
        Some((c, _)) => {
            // (the listed length first: it settles every blob but a decrypted one without
            // reading metadata, and a checkpointed length is never longer)
            if c.offset >= size || c.offset >= checkpointed_len(item, kind, decrypting) {
                return Plan::Nothing;
            }
            if kind == BlobKind::Append && c.size_seen >= size && !quiet {
                // only a partial last line is pending and nothing was appended since
                return Plan::PartialLineWaits;
            }
            // the checkpoint's identity, with its generation
            (c.offset, c.etag.clone())
        }
    };
    Plan::Ship(Box::new(WorkItem {
        blob: item.name.clone(),
        kind,
        etag: item.etag.clone(),
        identity,
        creation_time: item.creation_time.clone(),
        last_modified: item.last_modified.clone(),
        start,
        end: size,
        prior,
        metadata: item.metadata.clone(),
        quiet,
        seen_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that does not decrypt.
    fn plan(item: &BlobItem, prior: Option<Versioned<Checkpoint>>, quiet: bool) -> Plan {
        super::plan(item, prior, quiet, false, 0)
    }

    fn blob(kind: BlobKind, etag: &str, size: u64) -> BlobItem {
        BlobItem {
            name: "b".into(),
            etag: etag.into(),
            content_length: size,
            kind: Some(kind),
            creation_time: Some("Mon, 02 Nov 2026 10:00:00 GMT".into()),
            ..Default::default()
        }
    }

    fn cp(identity: &str, offset: u64, size_seen: u64) -> Option<Versioned<Checkpoint>> {
        Some(Versioned {
            version: 3,
            value: Checkpoint {
                etag: identity.into(),
                offset,
                blob_kind: state::BlobKind::Block,
                size_seen,
                records_shipped: 0,
                rejected_records: 0,
                last_shipped_at: 0,
                seen_at: None,
            },
        })
    }

    #[test]
    fn unshipped_bytes_are_as_old_as_what_tells_where_they_start() {
        // created 10:00 (1_793_613_600), appended to last at 13:00
        let mut b = blob(BlobKind::Append, "e1", 300);
        b.last_modified = Some("Mon, 02 Nov 2026 13:00:00 GMT".into());
        let created = 1_793_613_600;
        let item = |prior| plan(&b, prior, false).work().unwrap();
        // nothing of it shipped: its bytes are no older than the blob
        assert_eq!(item(None).unshipped_since(), Some((created, false)));
        // shipped up to a checkpoint: its other bytes came after the poll that shipped it
        let mut prior = cp(&identity_of(&b), 100, 100);
        prior.as_mut().unwrap().value.seen_at = Some(created + 600);
        assert_eq!(item(prior).unshipped_since(), Some((created + 600, false)));
        // a checkpoint that does not say: the newest append, assumed
        let prior = cp(&identity_of(&b), 100, 100);
        assert_eq!(
            item(prior).unshipped_since(),
            Some((created + 3 * 3600, true))
        );
        // a block blob version is written whole, when it was last modified
        let mut k = blob(BlobKind::Block, "e1", 300);
        k.last_modified = b.last_modified.clone();
        assert_eq!(
            plan(&k, None, false).work().unwrap().unshipped_since(),
            Some((created + 3 * 3600, false))
        );
    }

    #[test]
    fn block_blobs_ship_once_per_etag() {
        let b = blob(BlobKind::Block, "e1", 100);
        assert_eq!(plan(&b, None, false).work().unwrap().start, 0);
        assert!(plan(&b, cp("e1", 100, 100), false).work().is_none());
        let rewritten = blob(BlobKind::Block, "e2", 50);
        let w = plan(&rewritten, cp("e1", 100, 100), false).work().unwrap();
        assert_eq!((w.start, w.end), (0, 50));
        // a large blob committed in part resumes where it stopped
        assert_eq!(plan(&b, cp("e1", 40, 100), false).work().unwrap().start, 40);
    }

    #[test]
    fn an_encrypted_block_blob_is_done_at_its_plaintext_length_on_a_decrypt_source() {
        // two regions of 1,000 plaintext bytes, each with a 12-byte nonce and a 16-byte tag
        let json = r#"{"WrappedContentKey":{"KeyId":"https://v.vault.azure.net/keys/k/1","EncryptedKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw==","Algorithm":"RSA-OAEP-256"},"EncryptionAgent":{"Protocol":"2.0","EncryptionAlgorithm":"AES_GCM_256"},"EncryptedRegionInfo":{"DataLength":1000,"NonceLength":12},"EncryptionMode":"FullBlob"}"#;
        let mut b = blob(BlobKind::Block, "e1", 2 * 1028);
        b.metadata.insert("encryptiondata".into(), json.into());
        let decrypting = |prior| super::plan(&b, prior, false, true, 0);
        // shipped whole: the checkpoint holds the plaintext length, 56 bytes under the listing's
        assert_eq!(decrypting(cp("e1", 2000, 2056)), Plan::Nothing);
        // committed in part (a records batch): resumes from there, to the ciphertext's end
        let w = decrypting(cp("e1", 1500, 2056)).work().unwrap();
        assert_eq!((w.start, w.end), (1500, 2056));
        // a new version ships again from the start
        assert_eq!(decrypting(cp("e0", 2000, 2056)).work().unwrap().start, 0);
        // quarantined (checkpoint at the ciphertext's end), metadata that does not fit the
        // length, or a blob without metadata: done at the listed length
        assert_eq!(decrypting(cp("e1", 2056, 2056)), Plan::Nothing);
        let mut odd = b.clone();
        odd.content_length = 1030;
        assert_eq!(
            super::plan(&odd, cp("e1", 1030, 1030), false, true, 0),
            Plan::Nothing
        );
        assert!(super::plan(&odd, cp("e1", 1000, 1030), false, true, 0)
            .work()
            .is_some());
        let plain = blob(BlobKind::Block, "e1", 2056);
        assert_eq!(
            super::plan(&plain, cp("e1", 2056, 2056), false, true, 0),
            Plan::Nothing
        );
        assert!(super::plan(&plain, cp("e1", 2000, 2056), false, true, 0)
            .work()
            .is_some());
        // a source that does not decrypt counts the bytes as listed
        assert!(super::plan(&b, cp("e1", 2000, 2056), false, false, 0)
            .work()
            .is_some());
    }

    #[test]
    fn append_blobs_are_tailed() {
        let b = blob(BlobKind::Append, "x", 100);
        let id = identity_of(&b);
        assert!(id.starts_with("created:"));
        let w = plan(&b, cp(&id, 60, 80), false).work().unwrap();
        assert_eq!((w.start, w.end), (60, 100));
        // partial last line pending, nothing new: not read again
        assert_eq!(plan(&b, cp(&id, 60, 100), false), Plan::PartialLineWaits);
        // re-created blob (other creation time) starts over
        assert_eq!(
            plan(&b, cp("created:other", 60, 100), false)
                .work()
                .unwrap()
                .start,
            0
        );
    }

    #[test]
    fn a_quiet_append_blob_ships_its_partial_last_line() {
        let b = blob(BlobKind::Append, "x", 100);
        let id = identity_of(&b);
        // nothing appended since the partial line was seen, but the blob is quiet: read it again
        let w = plan(&b, cp(&id, 60, 100), true).work().unwrap();
        assert_eq!((w.start, w.end, w.quiet), (60, 100, true));
        // growth of a quiet blob is final too; of a blob still written, it is not
        assert!(plan(&b, cp(&id, 60, 80), true).work().unwrap().quiet);
        assert!(!plan(&b, cp(&id, 60, 80), false).work().unwrap().quiet);
        // once shipped to its end, nothing more
        assert_eq!(plan(&b, cp(&id, 100, 100), true), Plan::Nothing);
        // block blobs are never "quiet": their end is always final
        let k = blob(BlobKind::Block, "e1", 100);
        assert!(!plan(&k, None, true).work().unwrap().quiet);
    }

    #[test]
    fn an_append_blob_recreated_within_the_same_second_is_a_new_generation() {
        let b = blob(BlobKind::Append, "x", 100);
        let id = identity_of(&b);
        // 150 bytes were shipped of a blob with this creation time; this one holds 100
        let w = plan(&b, cp(&id, 150, 150), false).work().unwrap();
        assert_eq!((w.start, w.end), (0, 100));
        assert_eq!(w.identity, format!("{id}#2"));
        // its own checkpoint then goes on as usual, under the generation's identity
        let w = plan(&b, cp(&format!("{id}#2"), 40, 60), false)
            .work()
            .unwrap();
        assert_eq!(
            (w.start, w.identity.as_str()),
            (40, format!("{id}#2").as_str())
        );
        assert!(plan(&b, cp(&format!("{id}#2"), 100, 100), false)
            .work()
            .is_none());
        // and a third blob in the same second is generation 3
        assert_eq!(
            plan(&b, cp(&format!("{id}#2"), 120, 120), false)
                .work()
                .unwrap()
                .identity,
            format!("{id}#3")
        );
        // another creation time is another blob, whatever the generation
        assert_eq!(
            plan(&b, cp("created:other#2", 10, 10), false)
                .work()
                .unwrap()
                .identity,
            id
        );
        // block blobs: a shorter blob under the same ETag cannot happen; it is not a generation
        let k = blob(BlobKind::Block, "e1", 100);
        assert!(plan(&k, cp("e1", 150, 150), false).work().is_none());
    }

    #[test]
    fn generations_match_only_their_own_identity() {
        assert_eq!(generation_of("created:T", "created:T"), Some(1));
        assert_eq!(generation_of("created:T#2", "created:T"), Some(2));
        assert_eq!(generation_of("created:T#1", "created:T"), None);
        assert_eq!(generation_of("created:T#x", "created:T"), None);
        assert_eq!(generation_of("created:T2", "created:T"), None);
        assert_eq!(generation_of("created:S", "created:T"), None);
    }

    #[test]
    fn zero_byte_and_page_blobs() {
        let z = blob(BlobKind::Block, "z", 0);
        let w = plan(&z, None, false).work().unwrap();
        assert_eq!((w.start, w.end), (0, 0));
        assert!(plan(&z, cp("z", 0, 0), false).work().is_none());
        assert_eq!(
            plan(&blob(BlobKind::Page, "p", 512), None, true),
            Plan::Nothing
        );
    }
}
