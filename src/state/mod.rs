//! State: checkpoints per (tenant, source, object), listing cursors, quarantine rows,
//! rejected-record counts and the stops of tenants that are not shipping, kept in SQLite (WAL) under `agent.state_dir`, behind the small
//! [`CheckpointStore`] trait so that a blob-backed store with leases can replace it later.
//!
//! Owns: durability of progress. Must not: know about Azure, HTTP or tenants' credentials, nor
//! decide what to ship (the pipeline reads and commits checkpoints; this module only keeps them).
//!
//! Every operation is small and maps onto a blob store: one key read, one conditional write
//! ([`CheckpointStore::commit`] with an expected version, like an ETag condition), paged listing.
//! The methods are blocking; call them from async code through `tokio::task::spawn_blocking`
//! (the store is `Send + Sync`; wrap it in an `Arc`), or, for the hot path of checkpoint commits,
//! through [`CheckpointCommitter`], which groups concurrent commits into one store call.

mod committer;
mod memory;
mod sqlite;
mod types;

#[cfg(test)]
mod conformance;

pub use committer::{CheckpointCommitter, CommitComing};
pub use memory::MemoryCheckpointStore;
pub use sqlite::{SqliteCheckpointStore, SCHEMA_VERSION, STATE_FILE_NAME};
pub use types::{
    BlobKind, Checkpoint, CheckpointPage, CommitRequest, ObjectKey, QuarantineEntry, SourceSummary,
    StateError, TenantStop, Versioned,
};

/// Durable progress of a source, per object, with optimistic concurrency.
///
/// All methods block; from async code call them inside `tokio::task::spawn_blocking`.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// The checkpoint of one source object and its version, or `None` when it was never committed.
    fn load(&self, key: &ObjectKey) -> Result<Option<Versioned<Checkpoint>>, StateError>;

    /// Writes `cp` when the stored version equals `expected_version` (`None`: the checkpoint must
    /// not exist yet) and returns the new version; otherwise [`StateError::Conflict`].
    fn commit(
        &self,
        key: &ObjectKey,
        expected_version: Option<u64>,
        cp: &Checkpoint,
    ) -> Result<u64, StateError>;

    /// Several [`commit`](CheckpointStore::commit)s at once: one outcome per request, in order,
    /// each exactly what `commit` alone would return (a conflict fails only its own request).
    /// A store may make them durable together (SQLite: one transaction, one WAL write); this
    /// default commits them one by one. Requests must name distinct objects.
    fn commit_many(&self, batch: &[CommitRequest]) -> Vec<Result<u64, StateError>> {
        commit_each(self, batch)
    }

    /// One page of a source's checkpoints, ordered by object name, starting strictly after
    /// `after` (`None`: from the first). At most `limit` entries; `next_after` continues.
    fn list(
        &self,
        tenant: &str,
        source: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CheckpointPage, StateError>;

    /// Forgets everything about a (tenant, source): checkpoints, cursor, quarantine rows.
    /// Returns the number of checkpoints removed.
    fn delete_tenant_source(&self, tenant: &str, source: &str) -> Result<u64, StateError>;

    /// Where listing of a (tenant, source) can resume (opaque to the store).
    fn load_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StateError>;

    /// Remembers where listing of a (tenant, source) can resume.
    fn save_cursor(&self, tenant: &str, source: &str, cursor: &str) -> Result<(), StateError>;

    /// Puts one source object aside (not shipped until released), replacing an earlier row.
    fn quarantine(
        &self,
        tenant: &str,
        source: &str,
        object: &str,
        etag: &str,
        reason: &str,
    ) -> Result<(), StateError>;

    /// The quarantined objects of a (tenant, source), ordered by object name.
    fn quarantined(&self, tenant: &str, source: &str) -> Result<Vec<QuarantineEntry>, StateError>;

    /// Releases a quarantined object; `false` when it was not quarantined.
    fn release(&self, tenant: &str, source: &str, object: &str) -> Result<bool, StateError>;

    /// Totals of a (tenant, source): objects, records shipped, rejected records, oldest unshipped.
    fn summary(&self, tenant: &str, source: &str) -> Result<SourceSummary, StateError>;

    /// Remembers that a tenant stopped shipping, replacing what was saved for it before.
    fn save_tenant_stop(&self, tenant: &str, stop: &TenantStop) -> Result<(), StateError>;

    /// The stop saved for a tenant, `None` when it ships (or never stopped).
    fn tenant_stop(&self, tenant: &str) -> Result<Option<TenantStop>, StateError>;

    /// Forgets a tenant's stop: it ships again.
    fn clear_tenant_stop(&self, tenant: &str) -> Result<(), StateError>;

    /// Records rejected (over-long lines) in a (tenant, source), over all its checkpoints.
    fn rejected_count(&self, tenant: &str, source: &str) -> Result<u64, StateError> {
        Ok(self.summary(tenant, source)?.rejected_records)
    }
}

/// Every request of `batch` through [`CheckpointStore::commit`], one after the other: the default
/// `commit_many`, and the fallback of a store whose grouped write failed.
pub(crate) fn commit_each<S: CheckpointStore + ?Sized>(
    store: &S,
    batch: &[CommitRequest],
) -> Vec<Result<u64, StateError>> {
    batch
        .iter()
        .map(|r| store.commit(&r.key, r.expected_version, &r.checkpoint))
        .collect()
}
