//! `WatermarkPublisher`: per (tenant, source), a small JSON object in provider storage that tells
//! the readers of the destination how complete the source is (everything written to the
//! customer's source before `complete_before` has landed) and in what state its tenant is, so a
//! customer's revocation is seen where the data is read, not only on the operator's status page.
//!
//! Owns: when a watermark is rewritten and what it says. Must not: decide what is shipped or
//! behind (the tenant supervisors do, on the status board this reads), or move a published
//! `complete_before` backwards.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::blob_api::{BlobErrorClass, UploadOptions};
use crate::sink::{Destination, PathTemplate, SinkError};
use crate::telemetry::status::{unix_now, SourceStatus};
use crate::telemetry::{StatusBoard, TenantState};

/// How often the board is read for state changes (written at once) and advances (written when
/// they reach the configured interval).
const TICK: Duration = Duration::from_secs(5);

/// The body of one watermark object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Tenant name (as in the object paths).
    pub tenant: String,
    /// The customer's Entra tenant id.
    pub tenant_id: String,
    /// Source name (as in the object paths).
    pub source: String,
    /// Everything written to the source before this time (UTC, RFC 3339) has landed; `None`
    /// until Ferry knows a time it can say this of.
    pub complete_before: Option<String>,
    /// The same, in unix seconds.
    pub complete_before_unix: Option<i64>,
    /// The tenant's state (`active`, `access_denied`, `key_revoked`, ...).
    pub state: TenantState,
    /// Since when the tenant is in that state (UTC, RFC 3339).
    pub state_since: String,
    /// Why nothing ships, when the tenant is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When this object was written (UTC, RFC 3339).
    pub written_at: String,
}

/// What a source's watermark object says (last written, or found when this process started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Published {
    complete_before: Option<i64>,
    state: TenantState,
    /// Unix seconds (0 for an object found, which any state change may replace at once).
    written_at: i64,
}

/// True when `next` is worth a rewrite of `last`: there is none; the tenant stopped, stopped
/// otherwise or ships again (at once); its state changed otherwise (throttled, unreachable:
/// passing states, at most once per `interval`); or `complete_before` moved on by `interval`.
fn due(last: Option<Published>, next: Published, now: i64, interval: i64) -> bool {
    let Some(last) = last else {
        return true;
    };
    let state_changed = last.state != next.state
        && (last.state.is_blocked()
            || next.state.is_blocked()
            || now - last.written_at >= interval);
    let moved_on = match (last.complete_before, next.complete_before) {
        (Some(a), Some(b)) => b >= a + interval,
        (a, b) => a != b,
    };
    state_changed || moved_on
}

/// The time before which everything written to a source has landed, as this process knows it:
/// the oldest data a poll that listed the source to its end left waiting, or else the start of
/// the last poll that caught up. A tenant's stop does not move it (its sources fall behind since
/// their last catch-up). `None` when nothing in this process tells: the source has not caught up
/// since the start, and what it is behind since is only assumed (see `fall_behind`).
pub fn complete_before(source: &SourceStatus) -> Option<i64> {
    if source.behind_since_assumed {
        return None;
    }
    source.behind_since.or(source.caught_up_at)
}

fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Writes the watermark objects of every tenant on the board.
#[derive(Debug)]
pub struct WatermarkPublisher {
    dest: Destination,
    template: Arc<PathTemplate>,
    board: StatusBoard,
    /// Least advance of `complete_before` (seconds) that is worth a rewrite.
    interval: i64,
    published: BTreeMap<(String, String), Published>,
    /// Sources whose last read or write failed.
    failing: BTreeSet<(String, String)>,
}

impl WatermarkPublisher {
    /// A publisher writing through `dest`, named by `template`, rewriting an advancing
    /// watermark at most every `interval`.
    pub fn new(
        dest: Destination,
        template: Arc<PathTemplate>,
        board: StatusBoard,
        interval: Duration,
    ) -> WatermarkPublisher {
        WatermarkPublisher {
            dest,
            template,
            board,
            interval: interval.as_secs().max(1) as i64,
            published: BTreeMap::new(),
            failing: BTreeSet::new(),
        }
    }

    /// Publishes every `TICK` until `stop` fires.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.publish_due() => {}
            }
        }
    }

    /// Writes the watermarks that are [`due`], reading first what an earlier process left for a
    /// source this one has not written yet. Returns how many were written.
    pub async fn publish_due(&mut self) -> usize {
        let board = self.board.snapshot();
        let on_board =
            |(t, s): &(String, String)| board.get(t).is_some_and(|t| t.sources.contains_key(s));
        self.published.retain(|k, _| on_board(k));
        self.failing.retain(on_board);
        let mut written = 0;
        for (tenant, t) in &board {
            if matches!(t.state, TenantState::Starting | TenantState::Disabled) {
                continue;
            }
            for (source, s) in &t.sources {
                let key = (tenant.clone(), source.clone());
                let name = self.template.watermark_name(tenant, &t.tenant_id, source);
                let last = match self.published.get(&key) {
                    Some(p) => Some(*p),
                    None => match self.read(&name).await {
                        Ok(found) => found,
                        Err(e) => {
                            self.failed(&key, &name, &e);
                            continue;
                        }
                    },
                };
                let known = complete_before(s);
                let next = Published {
                    // never backwards, and never forgetting what an earlier process said
                    complete_before: match (last.and_then(|l| l.complete_before), known) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    },
                    state: t.state,
                    written_at: unix_now(),
                };
                if !due(last, next, next.written_at, self.interval) {
                    self.published.insert(key, last.unwrap_or(next));
                    continue;
                }
                let mark = Watermark {
                    tenant: tenant.clone(),
                    tenant_id: t.tenant_id.clone(),
                    source: source.clone(),
                    complete_before: next.complete_before.map(rfc3339),
                    complete_before_unix: next.complete_before,
                    state: t.state,
                    state_since: rfc3339(t.since),
                    reason: t.state.is_blocked().then(|| t.reason.clone()).flatten(),
                    written_at: rfc3339(unix_now()),
                };
                match self.write(&name, &mark).await {
                    Ok(()) => {
                        if self.failing.remove(&key) && self.failing.is_empty() {
                            tracing::info!(tenant = %tenant, source = %source, object = %name, "Watermarks written again");
                        }
                        self.published.insert(key, next);
                        written += 1;
                    }
                    Err(e) => self.failed(&key, &name, &e),
                }
            }
        }
        written
    }

    /// Logs a failed read or write: a warning for the first source of a failing spell (a
    /// destination that refuses refuses them all), the others at debug level.
    fn failed(&mut self, key: &(String, String), name: &str, e: &SinkError) {
        let first = self.failing.is_empty();
        if !self.failing.insert(key.clone()) {
            return;
        }
        if first {
            tracing::warn!(tenant = %key.0, source = %key.1, object = %name, error = %e, fix = e.fix(), "Watermark not written; retried every 5 s");
        } else {
            tracing::debug!(tenant = %key.0, source = %key.1, object = %name, error = %e, "Watermark not written either");
        }
    }

    /// What the watermark object says now: `None` when there is none, or it is not one Ferry
    /// can read (it is then written anew).
    async fn read(&self, name: &str) -> Result<Option<Published>, SinkError> {
        let bearer = self.dest.bearer().await?;
        let body = match self.dest.container().get_all(&bearer, name).await {
            Ok((_, body)) => body,
            Err(e) if e.class == BlobErrorClass::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match serde_json::from_slice::<Watermark>(&body) {
            Ok(w) => Ok(Some(Published {
                complete_before: w.complete_before_unix,
                state: w.state,
                written_at: 0,
            })),
            Err(e) => {
                tracing::warn!(object = %name, error = %e, "A watermark object Ferry cannot read is written anew");
                Ok(None)
            }
        }
    }

    async fn write(&self, name: &str, mark: &Watermark) -> Result<(), SinkError> {
        let mut body = serde_json::to_vec_pretty(mark).unwrap_or_default();
        body.push(b'\n');
        let mut upload = self.dest.begin(name.to_string());
        upload.write(&body).await?;
        upload
            .commit(UploadOptions {
                content_type: Some("application/json".into()),
                content_encoding: None,
                metadata: BTreeMap::new(),
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(behind_since: Option<i64>, caught_up_at: Option<i64>) -> SourceStatus {
        SourceStatus {
            behind_since,
            caught_up_at,
            ..SourceStatus::default()
        }
    }

    #[test]
    fn a_caught_up_source_is_complete_before_the_start_of_its_last_catch_up() {
        assert_eq!(complete_before(&source(None, Some(500))), Some(500));
        // not polled to the end yet: nothing to say
        assert_eq!(complete_before(&source(None, None)), None);
    }

    #[test]
    fn a_source_behind_is_complete_only_before_its_oldest_waiting_data() {
        assert_eq!(complete_before(&source(Some(450), Some(500))), Some(450));
    }

    #[test]
    fn an_assumed_start_of_the_lag_is_not_claimed() {
        // a first poll that failed in a new process: data written before it may be waiting
        let mut s = source(None, None);
        s.fall_behind(900);
        assert_eq!((s.behind_since, complete_before(&s)), (Some(900), None));
        // after a catch-up, falling behind starts at the catch-up, which is known
        let mut s = source(None, Some(800));
        s.fall_behind(900);
        assert_eq!(complete_before(&s), Some(800));
    }

    #[test]
    fn stops_and_returns_are_written_at_once_passing_states_once_per_interval() {
        let at = |complete_before, state, written_at| Published {
            complete_before,
            state,
            written_at,
        };
        let last = at(Some(1000), TenantState::Active, 1000);
        // nothing new
        assert!(!due(
            Some(last),
            at(Some(1030), TenantState::Active, 1030),
            1030,
            60
        ));
        assert!(due(None, at(None, TenantState::Active, 1030), 1030, 60));
        // moved on by the interval
        assert!(due(
            Some(last),
            at(Some(1060), TenantState::Active, 1060),
            1060,
            60
        ));
        // stopped, or back: at once
        assert!(due(
            Some(last),
            at(Some(1000), TenantState::AccessDenied, 1001),
            1001,
            60
        ));
        let stopped = at(Some(1000), TenantState::AccessDenied, 1001);
        assert!(due(
            Some(stopped),
            at(Some(1000), TenantState::KeyRevoked, 1002),
            1002,
            60
        ));
        assert!(due(
            Some(stopped),
            at(Some(1000), TenantState::Active, 1003),
            1003,
            60
        ));
        // throttled: not at once, but within the interval
        assert!(!due(
            Some(last),
            at(Some(1000), TenantState::Throttled, 1005),
            1005,
            60
        ));
        assert!(due(
            Some(last),
            at(Some(1000), TenantState::Throttled, 1060),
            1060,
            60
        ));
        // a first known time after none
        let unknown = at(None, TenantState::Active, 1000);
        assert!(due(
            Some(unknown),
            at(Some(900), TenantState::Active, 1001),
            1001,
            60
        ));
    }

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
