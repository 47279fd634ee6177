//! In-memory [`CheckpointStore`] for tests and dry runs: same semantics as the SQLite store,
//! nothing survives the process.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{
    Checkpoint, CheckpointPage, CheckpointStore, ObjectKey, QuarantineEntry, SourceSummary,
    StateError, TenantStop, Versioned,
};

/// (tenant, source) pair used as map key.
type SourceKey = (String, String);

/// Everything the memory store holds, behind one lock.
#[derive(Debug, Default)]
struct Tables {
    /// Checkpoints per (tenant, source), then per object name.
    checkpoints: BTreeMap<SourceKey, BTreeMap<String, Versioned<Checkpoint>>>,
    /// Listing cursor per (tenant, source).
    cursors: BTreeMap<SourceKey, String>,
    /// Quarantine rows per (tenant, source), then per object name.
    quarantine: BTreeMap<SourceKey, BTreeMap<String, QuarantineEntry>>,
    /// Stopped tenants.
    stops: BTreeMap<String, TenantStop>,
}

/// A [`CheckpointStore`] kept in a `Mutex<BTreeMap>`; for tests.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    /// All rows.
    tables: Mutex<Tables>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tables; a poisoned lock is recovered since every mutation is a single map operation.
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn skey(tenant: &str, source: &str) -> SourceKey {
    (tenant.to_string(), source.to_string())
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl CheckpointStore for MemoryCheckpointStore {
    fn load(&self, key: &ObjectKey) -> Result<Option<Versioned<Checkpoint>>, StateError> {
        let t = self.tables();
        Ok(t.checkpoints
            .get(&skey(&key.tenant, &key.source))
            .and_then(|m| m.get(&key.object))
            .cloned())
    }

    fn commit(
        &self,
        key: &ObjectKey,
        expected_version: Option<u64>,
        cp: &Checkpoint,
    ) -> Result<u64, StateError> {
        let mut t = self.tables();
        let objects = t
            .checkpoints
            .entry(skey(&key.tenant, &key.source))
            .or_default();
        let found = objects.get(&key.object).map(|v| v.version);
        if found != expected_version {
            return Err(StateError::Conflict {
                key: key.clone(),
                expected: expected_version,
                found,
            });
        }
        let version = found.map_or(1, |v| v.saturating_add(1));
        objects.insert(
            key.object.clone(),
            Versioned {
                version,
                value: cp.clone(),
            },
        );
        Ok(version)
    }

    fn list(
        &self,
        tenant: &str,
        source: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CheckpointPage, StateError> {
        let t = self.tables();
        let Some(objects) = t.checkpoints.get(&skey(tenant, source)) else {
            return Ok(CheckpointPage::default());
        };
        let range = match after {
            Some(a) => {
                objects.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))
            }
            None => objects.range::<str, _>(..),
        };
        let mut entries: Vec<(String, Versioned<Checkpoint>)> = range
            .take(limit.saturating_add(1))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let next_after = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(CheckpointPage {
            entries,
            next_after,
        })
    }

    fn delete_tenant_source(&self, tenant: &str, source: &str) -> Result<u64, StateError> {
        let mut t = self.tables();
        let k = skey(tenant, source);
        t.cursors.remove(&k);
        t.quarantine.remove(&k);
        if let Some(stop) = t.stops.get_mut(tenant) {
            stop.behind_since.retain(|(s, _)| s != source);
        }
        Ok(t.checkpoints.remove(&k).map_or(0, |m| m.len() as u64))
    }

    fn load_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StateError> {
        Ok(self.tables().cursors.get(&skey(tenant, source)).cloned())
    }

    fn save_tenant_stop(&self, tenant: &str, stop: &TenantStop) -> Result<(), StateError> {
        let mut stop = stop.clone();
        stop.behind_since.sort();
        stop.behind_since.dedup_by(|a, b| a.0 == b.0);
        self.tables().stops.insert(tenant.to_string(), stop);
        Ok(())
    }

    fn tenant_stop(&self, tenant: &str) -> Result<Option<TenantStop>, StateError> {
        Ok(self.tables().stops.get(tenant).cloned())
    }

    fn clear_tenant_stop(&self, tenant: &str) -> Result<(), StateError> {
        self.tables().stops.remove(tenant);
        Ok(())
    }

    fn save_cursor(&self, tenant: &str, source: &str, cursor: &str) -> Result<(), StateError> {
        self.tables()
            .cursors
            .insert(skey(tenant, source), cursor.to_string());
        Ok(())
    }

    fn quarantine(
        &self,
        tenant: &str,
        source: &str,
        object: &str,
        etag: &str,
        reason: &str,
    ) -> Result<(), StateError> {
        self.tables()
            .quarantine
            .entry(skey(tenant, source))
            .or_default()
            .insert(
                object.to_string(),
                QuarantineEntry {
                    object: object.to_string(),
                    etag: etag.to_string(),
                    reason: reason.to_string(),
                    quarantined_at: now_unix(),
                },
            );
        Ok(())
    }

    fn quarantined(&self, tenant: &str, source: &str) -> Result<Vec<QuarantineEntry>, StateError> {
        Ok(self
            .tables()
            .quarantine
            .get(&skey(tenant, source))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    fn release(&self, tenant: &str, source: &str, object: &str) -> Result<bool, StateError> {
        Ok(self
            .tables()
            .quarantine
            .get_mut(&skey(tenant, source))
            .and_then(|m| m.remove(object))
            .is_some())
    }

    fn summary(&self, tenant: &str, source: &str) -> Result<SourceSummary, StateError> {
        let t = self.tables();
        let mut s = SourceSummary::default();
        for v in t
            .checkpoints
            .get(&skey(tenant, source))
            .into_iter()
            .flat_map(|m| m.values())
        {
            let cp = &v.value;
            s.objects += 1;
            s.records_shipped = s.records_shipped.saturating_add(cp.records_shipped);
            s.rejected_records = s.rejected_records.saturating_add(cp.rejected_records);
            s.bytes_pending = s
                .bytes_pending
                .saturating_add(cp.size_seen.saturating_sub(cp.offset));
            s.last_shipped_at = s.last_shipped_at.max(Some(cp.last_shipped_at));
        }
        Ok(s)
    }
}
