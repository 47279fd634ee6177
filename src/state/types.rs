//! Value types and errors of the checkpoint store. Plain data: no I/O here.

use std::fmt;
use std::path::PathBuf;

/// Identifies one source object: a blob of a tenant's source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Tenant name from the configuration.
    pub tenant: String,
    /// Source name, unique within its tenant.
    pub source: String,
    /// Source object name (the blob name, unsanitised).
    pub object: String,
}

impl ObjectKey {
    /// Builds a key from its three parts.
    pub fn new(
        tenant: impl Into<String>,
        source: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        ObjectKey {
            tenant: tenant.into(),
            source: source.into(),
            object: object.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tenant {} source {} object {}",
            self.tenant, self.source, self.object
        )
    }
}

/// Kind of source blob: decides whether a checkpoint is final (block) or a tail position (append).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// Immutable once written; a new ETag means new content from offset 0.
    Block,
    /// Grows by appends; shipped from the committed offset onwards.
    Append,
}

impl BlobKind {
    /// Stable text form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Block => "block",
            BlobKind::Append => "append",
        }
    }

    /// Parses the stored text form.
    pub fn parse(s: &str) -> Option<BlobKind> {
        match s {
            "block" => Some(BlobKind::Block),
            "append" => Some(BlobKind::Append),
            _ => None,
        }
    }
}

/// Progress of one source object: everything before `offset` is in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// ETag of the source blob the offset refers to; a different ETag on a block blob means
    /// rewritten content that ships again from 0.
    pub etag: String,
    /// End of the last committed destination range (exclusive byte offset in the source blob).
    pub offset: u64,
    /// Block or append blob.
    pub blob_kind: BlobKind,
    /// Size of the blob when it was last looked at (for lag: `size_seen - offset` bytes wait).
    pub size_seen: u64,
    /// Records shipped from this object so far (records mode; 0 in copy mode).
    pub records_shipped: u64,
    /// Over-long lines rejected and skipped in this object so far.
    pub rejected_records: u64,
    /// Unix seconds of the last destination commit for this object.
    pub last_shipped_at: i64,
    /// Unix seconds of the start of the poll that listed the blob for the range ending at
    /// `offset`: what was written to this blob version before it is shipped, anything past
    /// `offset` was written after it. `None` when unknown (a checkpoint of a Ferry before schema
    /// 3, or one taken over from objects an earlier process left in the destination).
    pub seen_at: Option<i64>,
}

/// A value with the version the store gave it; pass the version back to `commit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// Monotonic per key, starting at 1 on the first commit.
    pub version: u64,
    /// The stored value.
    pub value: T,
}

/// One checkpoint write: `checkpoint` for `key` when its stored version is `expected_version`
/// (see [`CheckpointStore::commit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    /// The object.
    pub key: ObjectKey,
    /// Version the writer read (`None`: the checkpoint must not exist yet).
    pub expected_version: Option<u64>,
    /// What to store.
    pub checkpoint: Checkpoint,
}

/// One page of a source's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckpointPage {
    /// `(object name, checkpoint)` ordered by object name.
    pub entries: Vec<(String, Versioned<Checkpoint>)>,
    /// Pass as `after` to get the next page; `None` when this was the last page.
    pub next_after: Option<String>,
}

/// A source object put aside (for example undecryptable), with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// Source object name.
    pub object: String,
    /// ETag of the quarantined version: a new ETag may be tried again.
    pub etag: String,
    /// Human-readable reason, shown by `ferry status`.
    pub reason: String,
    /// Unix seconds when it was quarantined.
    pub quarantined_at: i64,
}

/// A tenant that stopped shipping (refused by its customer, or misconfigured), kept so that a
/// restarted process goes on reporting the stop from when it began, not from its own start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStop {
    /// The state the tenant stopped in, as the pipeline names it (`access_denied`, ...); opaque
    /// to the store.
    pub state: String,
    /// Since when (unix seconds).
    pub since: i64,
    /// Per source: since when data written to it may not be shipped (unix seconds), ordered by
    /// source name.
    pub behind_since: Vec<(String, i64)>,
}

/// Totals of one (tenant, source) for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SourceSummary {
    /// Number of objects with a checkpoint.
    pub objects: u64,
    /// Sum of `records_shipped`.
    pub records_shipped: u64,
    /// Sum of `rejected_records`.
    pub rejected_records: u64,
    /// Sum over objects of `size_seen - offset` (bytes known but not yet shipped).
    pub bytes_pending: u64,
    /// Newest `last_shipped_at`, `None` when nothing was shipped.
    pub last_shipped_at: Option<i64>,
}

/// Errors of the checkpoint store; each says what the operator or caller must do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Someone else committed first: reload the checkpoint and decide again.
    #[error("checkpoint of {key} changed concurrently (expected version {expected:?}, found {found:?}); reload it and retry")]
    Conflict {
        /// The object whose checkpoint changed.
        key: ObjectKey,
        /// Version the caller expected.
        expected: Option<u64>,
        /// Version found in the store.
        found: Option<u64>,
    },
    /// The state directory cannot be created or written.
    #[error("state directory {} is not writable ({detail}); fix its permissions or point agent.state_dir elsewhere", dir.display())]
    NotWritable {
        /// The configured state directory.
        dir: PathBuf,
        /// What the system said.
        detail: String,
    },
    /// Another process owns the state directory: two Ferry processes must never share one
    /// (each would ship what the other ships).
    #[error("state directory {} is in use by another ferry process{}; stop that one, or give this one its own agent.state_dir", dir.display(), holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    InUse {
        /// The configured state directory.
        dir: PathBuf,
        /// Who holds it, when the lock file says (`pid 1234`).
        holder: Option<String>,
    },
    /// The database file is damaged or is not a Ferry state database.
    #[error("state database {} is corrupt or not a ferry state database ({detail}); move it aside and restart (ferry will re-ship from the destination's deterministic names)", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The database was written by a newer Ferry with a schema this one does not know.
    #[error("state directory {} was written by a newer ferry (schema {found}); upgrade ferry or point state_dir elsewhere", dir.display())]
    NewerSchema {
        /// The configured state directory.
        dir: PathBuf,
        /// Schema version found in the database.
        found: u32,
        /// Highest schema version this Ferry knows.
        supported: u32,
    },
    /// A value does not fit the store (for example an offset above `i64::MAX` for SQLite).
    #[error("cannot store {what} = {value} for {context}: above the store's limit of {limit}")]
    OutOfRange {
        /// Field name.
        what: &'static str,
        /// Offending value.
        value: u64,
        /// Which row.
        context: String,
        /// Largest value accepted.
        limit: u64,
    },
    /// The blocking task that ran a store operation died (a bug): the operation's outcome is unknown.
    #[error("checkpoint store task failed ({detail}); the checkpoint is re-read on the next poll")]
    TaskFailed {
        /// What the runtime said.
        detail: String,
    },
    /// Any other database failure (disk full, I/O error): retry later or check the disk.
    #[error("state database {} failed during {op}: {source}; check the disk under the state directory", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
}

impl StateError {
    /// True for [`StateError::Conflict`]: the caller lost a race and should reload.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StateError::Conflict { .. })
    }
}
