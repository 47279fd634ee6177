//! The status board: every tenant's state and every source's progress, as `/status`,
//! `ferry status` and the metrics show them.
//!
//! Owns: the `TenantState` vocabulary and one shared, cheap-to-update record per tenant and
//! source. Must not: decide transitions (the pipeline does) or do I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Where a tenant stands. Revoked and denied states are re-checked on an interval and return to
/// `active` by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TenantState {
    /// Not started yet (first token and listing pending).
    Starting,
    /// Shipping.
    Active,
    /// Backing off, honouring Retry-After.
    Throttled,
    /// No connection to the customer's endpoint (DNS, private endpoint, firewall); retried
    /// every poll.
    Unreachable,
    /// The customer withdrew consent (AADSTS700016/7000229/7000112).
    ConsentRevoked,
    /// The customer disabled, deleted or withheld the key.
    KeyRevoked,
    /// A storage or workspace role is missing (403).
    AccessDenied,
    /// The provider's own app credential is wrong or expired (every tenant).
    CredentialInvalid,
    /// The configuration names something that does not exist.
    Misconfigured,
    /// `enabled = false` in the config.
    Disabled,
}

impl TenantState {
    /// Every state, for gauges that must show zeros too.
    pub const ALL: [TenantState; 10] = [
        TenantState::Starting,
        TenantState::Active,
        TenantState::Throttled,
        TenantState::Unreachable,
        TenantState::ConsentRevoked,
        TenantState::KeyRevoked,
        TenantState::AccessDenied,
        TenantState::CredentialInvalid,
        TenantState::Misconfigured,
        TenantState::Disabled,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantState::Starting => "starting",
            TenantState::Active => "active",
            TenantState::Throttled => "throttled",
            TenantState::Unreachable => "unreachable",
            TenantState::ConsentRevoked => "consent_revoked",
            TenantState::KeyRevoked => "key_revoked",
            TenantState::AccessDenied => "access_denied",
            TenantState::CredentialInvalid => "credential_invalid",
            TenantState::Misconfigured => "misconfigured",
            TenantState::Disabled => "disabled",
        }
    }

    /// True for states in which nothing is shipped until a re-check succeeds.
    pub fn is_blocked(self) -> bool {
        matches!(
            self,
            TenantState::ConsentRevoked
                | TenantState::KeyRevoked
                | TenantState::AccessDenied
                | TenantState::CredentialInvalid
                | TenantState::Misconfigured
        )
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The earlier of two times, either of which may be unknown (`None` only when both are).
pub fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The last error seen, and what to do about it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastError {
    /// When (unix seconds).
    pub at: i64,
    /// Class (`access_denied`, `transient`, ...).
    pub class: String,
    /// The error, in words.
    pub message: String,
    /// What a person should do; empty when nothing.
    pub fix: String,
    /// When a poll of the source next went through without a failure (unix seconds); `None`
    /// while the error still stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<i64>,
}

impl LastError {
    /// An error seen now.
    pub fn now(
        class: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> LastError {
        LastError {
            at: unix_now(),
            class: class.into(),
            message: message.into(),
            fix: fix.into(),
            resolved_at: None,
        }
    }
}

/// Progress of one source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceStatus {
    /// Last time something was committed (unix seconds).
    pub last_success: Option<i64>,
    /// Last completed poll (unix seconds).
    pub last_poll: Option<i64>,
    /// Age in seconds of the oldest data that may not be shipped yet (0 when caught up): computed
    /// from `behind_since` (and, for a stopped tenant, the time it stopped) when the board is read.
    pub lag_seconds: u64,
    /// Data written since this time (unix seconds) may not be shipped yet: the oldest failed,
    /// waiting or changed-while-read item a poll saw, or, when the source could not be listed,
    /// the start of its last poll that caught up. `None` when caught up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behind_since: Option<i64>,
    /// Start of the last poll that listed the source and left nothing behind (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caught_up_at: Option<i64>,
    /// True while `behind_since` stands in for a time this process does not know: the start of
    /// its first poll (no poll had caught up yet), or a stop kept from an earlier process. Good
    /// enough for the lag; a watermark must not claim it.
    #[serde(skip)]
    pub behind_since_assumed: bool,
    /// Bytes read from the customer.
    pub bytes_read: u64,
    /// Bytes committed to the destination (after compression).
    pub bytes_shipped: u64,
    /// Records committed (records mode).
    pub records_shipped: u64,
    /// Records rejected (over `max_record_size`).
    pub records_rejected: u64,
    /// Destination objects committed.
    pub objects_shipped: u64,
    /// Blobs quarantined.
    pub quarantined: u64,
    /// List Blobs calls made since start.
    #[serde(default)]
    pub list_requests: u64,
    /// Date-partitioned listing: resource roots known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_roots: Option<u64>,
    /// Date-partitioned listing: the oldest hour still listed every poll (`YYYY-MM-DDTHH`, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<String>,
    /// Last error.
    pub last_error: Option<LastError>,
}

impl SourceStatus {
    /// The source may have data waiting since its last catch-up, or, when it has not caught up
    /// in this process, since `started` (assumed). An earlier `behind_since` stays.
    pub fn fall_behind(&mut self, started: i64) {
        if self.behind_since.is_some() {
            return;
        }
        self.behind_since = Some(self.caught_up_at.unwrap_or(started));
        self.behind_since_assumed = self.caught_up_at.is_none();
    }
}

/// One tenant's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantStatus {
    /// Customer tenant id.
    pub tenant_id: String,
    /// Current state.
    pub state: TenantState,
    /// Since when (unix seconds).
    pub since: i64,
    /// Why it is in that state, when not active.
    pub reason: Option<String>,
    /// What a person should do about it.
    pub fix: Option<String>,
    /// Work items queued for the tenant's fetch workers.
    #[serde(default)]
    pub queue_depth: u64,
    /// Seconds the tenant's work waited on its own rate limits (requests/s, bytes/s).
    #[serde(default)]
    pub rate_limit_wait_seconds: f64,
    /// Sources by name.
    pub sources: BTreeMap<String, SourceStatus>,
}

/// Shared status of every tenant. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard {
    tenants: Arc<Mutex<BTreeMap<String, TenantStatus>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StatusBoard {
    /// An empty board.
    pub fn new() -> StatusBoard {
        StatusBoard::default()
    }

    /// Registers a tenant (idempotent; keeps existing counters).
    pub fn register(&self, tenant: &str, tenant_id: &str, sources: &[String], state: TenantState) {
        let mut t = lock(&self.tenants);
        let entry = t.entry(tenant.to_string()).or_insert_with(|| TenantStatus {
            tenant_id: tenant_id.to_string(),
            state,
            since: unix_now(),
            reason: None,
            fix: None,
            queue_depth: 0,
            rate_limit_wait_seconds: 0.0,
            sources: BTreeMap::new(),
        });
        entry.tenant_id = tenant_id.to_string();
        entry.sources.retain(|k, _| sources.contains(k));
        for s in sources {
            entry.sources.entry(s.clone()).or_default();
        }
    }

    /// Removes a tenant (config reload).
    pub fn remove(&self, tenant: &str) {
        lock(&self.tenants).remove(tenant);
    }

    /// Sets a tenant's state; returns the previous state when it changed.
    pub fn set_state(
        &self,
        tenant: &str,
        state: TenantState,
        reason: Option<String>,
        fix: Option<String>,
    ) -> Option<TenantState> {
        let mut t = lock(&self.tenants);
        let entry = t.get_mut(tenant)?;
        let previous = entry.state;
        if previous != state {
            entry.state = state;
            entry.since = unix_now();
        }
        entry.reason = reason;
        entry.fix = fix;
        (previous != state).then_some(previous)
    }

    /// A tenant's state.
    pub fn state(&self, tenant: &str) -> Option<TenantState> {
        lock(&self.tenants).get(tenant).map(|t| t.state)
    }

    /// Updates one source's record.
    pub fn update_source(&self, tenant: &str, source: &str, f: impl FnOnce(&mut SourceStatus)) {
        let mut t = lock(&self.tenants);
        if let Some(s) = t.get_mut(tenant).and_then(|t| t.sources.get_mut(source)) {
            f(s);
        }
    }

    /// A source's last error, if it had one.
    pub fn last_error(&self, tenant: &str, source: &str) -> Option<LastError> {
        lock(&self.tenants)
            .get(tenant)
            .and_then(|t| t.sources.get(source))
            .and_then(|s| s.last_error.clone())
    }

    /// Updates a tenant's record (queue depth, waits).
    pub fn update_tenant(&self, tenant: &str, f: impl FnOnce(&mut TenantStatus)) {
        if let Some(t) = lock(&self.tenants).get_mut(tenant) {
            f(t);
        }
    }

    /// Names of the registered tenants.
    pub fn tenants(&self) -> Vec<String> {
        lock(&self.tenants).keys().cloned().collect()
    }

    /// Every tenant as of now, each source's `lag_seconds` computed for this moment: a source
    /// that cannot be listed, or whose tenant is stopped, falls further behind while that lasts.
    pub fn snapshot(&self) -> BTreeMap<String, TenantStatus> {
        let now = unix_now();
        let mut tenants = lock(&self.tenants).clone();
        for t in tenants.values_mut() {
            let stopped_since = t.state.is_blocked().then_some(t.since);
            for s in t.sources.values_mut() {
                // stopped: whatever was written since the stop waits too
                let behind = earliest(s.behind_since, stopped_since);
                s.lag_seconds = behind.map_or(0, |t| (now - t).max(0) as u64);
            }
        }
        tenants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_ignores_an_unknown_time() {
        assert_eq!(earliest(Some(5), Some(3)), Some(3));
        assert_eq!(earliest(Some(5), None), Some(5));
        assert_eq!(earliest(None, Some(3)), Some(3));
        assert_eq!(earliest(None, None), None);
    }

    #[test]
    fn state_changes_are_reported_once() {
        let b = StatusBoard::new();
        b.register("contoso", "t", &["audit".into()], TenantState::Starting);
        assert_eq!(
            b.set_state("contoso", TenantState::Active, None, None),
            Some(TenantState::Starting)
        );
        assert_eq!(
            b.set_state("contoso", TenantState::Active, None, None),
            None
        );
        b.update_source("contoso", "audit", |s| s.objects_shipped += 2);
        assert_eq!(b.snapshot()["contoso"].sources["audit"].objects_shipped, 2);
        b.register("contoso", "t", &[], TenantState::Starting);
        assert!(b.snapshot()["contoso"].sources.is_empty());
    }

    /// Lag is read at the moment the board is: it grows while a source is behind or its tenant
    /// is stopped, and is 0 for a source that caught up and runs.
    #[test]
    fn lag_grows_while_a_source_is_behind_or_its_tenant_stopped() {
        let b = StatusBoard::new();
        b.register(
            "contoso",
            "t",
            &["audit".into(), "exports".into()],
            TenantState::Active,
        );
        let lag =
            |b: &StatusBoard, source: &str| b.snapshot()["contoso"].sources[source].lag_seconds;
        assert_eq!(lag(&b, "audit"), 0);
        b.update_source("contoso", "audit", |s| {
            s.behind_since = Some(unix_now() - 120)
        });
        assert!((120..125).contains(&lag(&b, "audit")));
        assert_eq!(lag(&b, "exports"), 0);
        // stopped 30 s ago: the caught-up source is 30 s behind, the other keeps its 120 s
        b.set_state(
            "contoso",
            TenantState::KeyRevoked,
            Some("r".into()),
            Some("f".into()),
        );
        lock(&b.tenants).get_mut("contoso").unwrap().since -= 30;
        assert!(
            (30..35).contains(&lag(&b, "exports")),
            "{}",
            lag(&b, "exports")
        );
        assert!((120..125).contains(&lag(&b, "audit")));
    }
}
