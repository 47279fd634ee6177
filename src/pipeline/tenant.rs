//! `TenantSupervisor`: one customer tenant's task tree. Per source, a poll loop lists the
//! container and queues work into the tenant's bounded channel; the tenant's workers ship it.
//! The first refusal that means "stop" (consent withdrawn, role removed, key revoked) cancels the
//! tenant's in-flight work before its next commit, sets the tenant's state, and the tenant is
//! re-checked every `recheck_interval` until access returns. Other tenants are never touched.
//!
//! Must not: reach into another tenant's state, or retry a refusal that a person must fix.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::blob_api::BlobErrorClass;
use crate::cmk::{KeyFailure, KeyVaultError};
use crate::identity::{FailureClass, Principal, TokenError, TokenProvider, TOKEN_UNAVAILABLE_FIX};
use crate::source::SourceError;
use crate::state::{CheckpointStore, TenantStop};
use crate::telemetry::events::{
    BlobQuarantined, SourceWorkFailed, TenantRefused, TenantStateChanged,
};
use crate::telemetry::metrics::in_scope;
use crate::telemetry::status::{earliest, unix_now, LastError};
use crate::telemetry::{StatusBoard, TenantState};

use super::lister::{Job, SourceLister};
use super::ship::{ShipError, Shipped, SourceContext};
use super::work::WorkItem;

/// Glob filters of one source.
#[derive(Debug, Clone)]
pub struct BlobFilter {
    include: Option<globset::GlobSet>,
    exclude: Option<globset::GlobSet>,
}

impl BlobFilter {
    /// Compiles the source's globs (validated with the config).
    pub fn new(include: &[String], exclude: &[String]) -> Result<BlobFilter, globset::Error> {
        let build = |pats: &[String]| -> Result<Option<globset::GlobSet>, globset::Error> {
            if pats.is_empty() {
                return Ok(None);
            }
            let mut b = globset::GlobSetBuilder::new();
            for p in pats {
                b.add(
                    globset::GlobBuilder::new(p)
                        .literal_separator(false)
                        .build()?,
                );
            }
            Ok(Some(b.build()?))
        };
        Ok(BlobFilter {
            include: build(include)?,
            exclude: build(exclude)?,
        })
    }

    /// True when the blob name passes.
    pub fn accepts(&self, name: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(name))
            && !self.exclude.as_ref().is_some_and(|s| s.is_match(name))
    }
}

/// A source as the tenant runs it.
#[derive(Debug)]
pub struct SourceRuntime {
    /// Shipping context.
    pub ctx: Arc<SourceContext>,
    /// Globs.
    pub filter: BlobFilter,
    /// Listing prefix.
    pub prefix: Option<String>,
    /// Poll interval.
    pub poll_interval: Duration,
    /// Set when the source cannot run (e.g. a public endpoint where a private one is required).
    pub refusal: Option<(TenantState, String, String)>,
    /// How the source's last poll went; the tenant shows the worst of its sources.
    pub health: std::sync::Mutex<PollHealth>,
}

/// How a source's last poll went, mildest first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PollHealth {
    /// Nothing failed.
    #[default]
    Healthy,
    /// Something failed and will be retried: the service was busy or a transfer broke.
    Throttled,
    /// Every failure was a connection that could not be made to the customer's endpoint.
    Unreachable,
}

impl PollHealth {
    /// From one poll's totals.
    fn of(t: &TenantTotals) -> PollHealth {
        if t.failed == 0 {
            PollHealth::Healthy
        } else if t.unreachable == t.failed {
            PollHealth::Unreachable
        } else {
            PollHealth::Throttled
        }
    }

    /// From one failure that is not a refusal.
    fn of_failure(e: &ShipError) -> PollHealth {
        if e.is_source_unreachable() {
            PollHealth::Unreachable
        } else {
            PollHealth::Throttled
        }
    }

    /// The tenant state this health shows as, and what to do about it.
    fn state(self) -> (TenantState, Option<String>) {
        match self {
            PollHealth::Healthy => (TenantState::Active, None),
            PollHealth::Throttled => (TenantState::Throttled, None),
            PollHealth::Unreachable => {
                (TenantState::Unreachable, Some(UNREACHABLE_FIX.to_string()))
            }
        }
    }
}

/// Why a tenant stopped shipping.
#[derive(Debug, Clone)]
pub struct Blocked {
    /// The state it is in.
    pub state: TenantState,
    /// What happened.
    pub reason: String,
    /// What to do.
    pub fix: String,
}

/// One tenant's runtime.
#[derive(Debug)]
pub struct TenantSupervisor {
    /// Tenant name.
    pub name: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Sources.
    pub sources: Vec<SourceRuntime>,
    /// Workers for this tenant.
    pub concurrency: usize,
    /// Global download slots shared by every tenant.
    pub fetch_slots: Arc<Semaphore>,
    /// Status.
    pub board: StatusBoard,
    /// Tokens.
    pub tokens: TokenProvider,
    /// Storage token resource.
    pub storage_resource: String,
    /// How often a blocked tenant is re-checked.
    pub recheck_interval: Duration,
    /// Checkpoints.
    pub store: Arc<dyn CheckpointStore>,
    /// Admin-consent URL, for fixes.
    pub consent_url: String,
    /// The stop kept in the state store for this tenant, if it is stopped (see
    /// [`TenantSupervisor::keep_stop`]).
    pub kept_stop: std::sync::Mutex<Option<TenantStop>>,
}

/// Signals shared by every tenant.
#[derive(Debug, Clone)]
pub struct Stops {
    /// Stop taking new work (graceful stop begins).
    pub drain: CancellationToken,
    /// Abandon in-flight work before its next commit (grace period over).
    pub abort: CancellationToken,
}

/// What one tenant did in a run.
#[derive(Debug, Default, Clone, Copy)]
pub struct TenantTotals {
    /// Sum over its jobs.
    pub shipped: Shipped,
    /// Jobs that failed (to be retried next poll).
    pub failed: u64,
    /// Of those, the ones (and failed listings) that could not connect to the customer's endpoint.
    pub unreachable: u64,
    /// Jobs whose blob was rewritten or deleted between the listing and the read (read again,
    /// in its newer version if any, next poll). Not failures, but not shipped either.
    pub changed: u64,
    /// Since when (unix seconds) the oldest data of a failed or changed job may have waited
    /// (`WorkItem::unshipped_since`): the poll did not catch up to it.
    pub oldest_unshipped: Option<i64>,
    /// True when one of those times was only assumed.
    pub unshipped_since_assumed: bool,
    /// A refusal that stops the tenant was met (the tenant's blocked state is being set).
    pub refused: bool,
}

impl TenantTotals {
    /// Adds what a later run of the same tenant did (a reload restarted it).
    pub fn absorb(&mut self, later: TenantTotals) {
        self.shipped += later.shipped;
        self.failed += later.failed;
        self.unreachable += later.unreachable;
        self.changed += later.changed;
        self.oldest_unshipped = earliest(self.oldest_unshipped, later.oldest_unshipped);
        self.refused |= later.refused;
        self.unshipped_since_assumed |= later.unshipped_since_assumed;
    }

    /// Notes that `item` did not ship this poll, so the poll has not caught up to its data.
    fn left_unshipped(&mut self, item: &WorkItem) {
        if let Some((t, assumed)) = item.unshipped_since() {
            self.oldest_unshipped = earliest(self.oldest_unshipped, Some(t));
            self.unshipped_since_assumed |= assumed;
        }
    }
}

/// True when a growing blob's new bytes should wait for the next poll: it was shipped less than
/// `batch_max_age` ago and its pending bytes do not fill `batch_max_bytes`. The first bytes of a
/// blob, a quiet blob's (no longer growing), and anything in `--once` runs, ship at once.
pub fn defer_for_batch_age(
    item: &WorkItem,
    cfg: &crate::config::BlobSourceConfig,
    now: i64,
) -> bool {
    if item.kind != crate::blob_api::BlobKind::Append || item.quiet {
        return false;
    }
    let Some(prior) = item
        .prior
        .as_ref()
        .filter(|p| p.value.etag == item.identity)
    else {
        return false;
    };
    let young = now - prior.value.last_shipped_at < cfg.batch_max_age.get().as_secs() as i64;
    young && item.end - item.start < cfg.batch_max_bytes.get()
}

/// The tenant state a failure leads to, when it is one that stops the tenant.
fn blocking_state(err: &ShipError, consent_url: &str, container: &str) -> Option<Blocked> {
    match err {
        ShipError::Source(SourceError::Token(e)) => {
            let state = match e.class() {
                FailureClass::ConsentRevoked => TenantState::ConsentRevoked,
                FailureClass::CredentialInvalid => TenantState::CredentialInvalid,
                FailureClass::Misconfigured => TenantState::Misconfigured,
                FailureClass::Transient => return None,
            };
            Some(Blocked {
                state,
                reason: e.to_string(),
                fix: e.fix(consent_url),
            })
        }
        ShipError::Source(SourceError::Blob(e)) => match e.class {
            BlobErrorClass::AccessDenied => Some(Blocked {
                state: TenantState::AccessDenied,
                reason: format!("container {container}: {e}"),
                fix: format!(
                    "role missing: the customer must assign 'Storage Blob Data Reader' on container {container} to the app's service principal"
                ),
            }),
            BlobErrorClass::NotFound if e.blob.is_none() => Some(Blocked {
                state: TenantState::Misconfigured,
                reason: e.to_string(),
                fix: format!("container {container} does not exist: check the source's account_url and container"),
            }),
            _ => None,
        },
        ShipError::Key(e) => {
            let state = match e.class() {
                KeyFailure::KeyRevoked => TenantState::KeyRevoked,
                KeyFailure::AccessDenied => TenantState::AccessDenied,
                KeyFailure::ConsentRevoked => TenantState::ConsentRevoked,
                KeyFailure::Misconfigured => TenantState::Misconfigured,
                KeyFailure::Transient => return None,
            };
            let fix = match e {
                KeyVaultError::Refused(r) => r.fix.to_string(),
                KeyVaultError::Token { source, .. } => source.fix(consent_url),
                other => other.to_string(),
            };
            let reason = match e {
                KeyVaultError::Refused(r) => r.summary(),
                other => other.to_string(),
            };
            Some(Blocked { state, reason, fix })
        }
        _ => None,
    }
}

fn list_error(e: SourceError) -> ShipError {
    ShipError::Source(e)
}

impl TenantSupervisor {
    fn source_names(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|s| s.ctx.cfg.name.clone())
            .collect()
    }

    fn set_state(&self, state: TenantState, reason: Option<String>, fix: Option<String>) {
        if let Some(previous) = self
            .board
            .set_state(&self.name, state, reason.clone(), fix.clone())
        {
            self.keep_stop(state);
            TenantStateChanged {
                tenant: &self.name,
                from: previous,
                to: state,
                reason: reason.as_deref().unwrap_or_default(),
                fix: fix.as_deref().unwrap_or_default(),
            }
            .emit();
        }
    }

    /// Runs until `stops.drain` fires (or, with `once`, until every source made one pass).
    pub async fn run(self: Arc<Self>, stops: Stops, once: bool) -> TenantTotals {
        self.board.register(
            &self.name,
            &self.tenant_id,
            &self.source_names(),
            TenantState::Starting,
        );
        self.show_last_success_from_checkpoints();
        self.resume_kept_stop();
        let mut totals = TenantTotals::default();
        loop {
            if stops.drain.is_cancelled() {
                return totals;
            }
            let (blocked, pass) = self.clone().run_until_blocked(&stops, once).await;
            totals.shipped += pass.shipped;
            totals.failed += pass.failed;
            totals.unreachable += pass.unreachable;
            let Some(b) = blocked else {
                return totals;
            };
            // forget every unwrapped content key of this tenant (zeroized) until access is back
            self.purge_keys();
            self.set_state(b.state, Some(b.reason.clone()), Some(b.fix.clone()));
            if once {
                return totals;
            }
            // re-check on an interval until access returns
            loop {
                tokio::select! {
                    _ = stops.drain.cancelled() => return totals,
                    _ = tokio::time::sleep(self.recheck_interval) => {}
                }
                match self.probe().await {
                    Ok(()) => {
                        for s in &self.sources {
                            if let Some(k) = &s.ctx.key {
                                k.reset();
                            }
                        }
                        tracing::info!(tenant = %self.name, "Access is back; resuming from the checkpoints");
                        self.set_state(TenantState::Active, None, None);
                        break;
                    }
                    Err(b) => self.set_state(b.state, Some(b.reason), Some(b.fix)),
                }
            }
        }
    }

    /// A stop survives restarts: while a tenant is stopped, its state, since when, and since when
    /// each source is behind are kept in the state store, so that a restarted process that finds
    /// it stopped the same way goes on counting its state's age and its sources' lag from then
    /// (an upgrade or a crash loop must not hide a tenant stopped for hours from `FerryLagHigh`).
    /// Written only when the state changes; forgotten once the tenant ships again.
    fn keep_stop(&self, state: TenantState) {
        let mut kept = self.kept_stop.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = if state.is_blocked() {
            if let Some(k) = kept.as_ref().filter(|k| k.state == state.as_str()) {
                // stopped again as before the restart: the stop began then
                let since = k.since;
                self.board.update_tenant(&self.name, |t| t.since = since);
                return;
            }
            let mut stop = None;
            self.board.update_tenant(&self.name, |t| {
                stop = Some(TenantStop {
                    state: state.as_str().to_string(),
                    since: t.since,
                    behind_since: t
                        .sources
                        .iter()
                        .filter_map(|(name, s)| {
                            s.behind_since.or(s.caught_up_at).map(|b| (name.clone(), b))
                        })
                        .collect(),
                })
            });
            let Some(stop) = stop else {
                return;
            };
            let saved = self.store.save_tenant_stop(&self.name, &stop);
            *kept = Some(stop);
            saved
        } else if state == TenantState::Active && kept.take().is_some() {
            // shipping again (a re-check that cannot connect, `unreachable`, is still the stop)
            self.store.clear_tenant_stop(&self.name)
        } else {
            return;
        };
        if let Err(e) = outcome {
            tracing::warn!(tenant = %self.name, error = %e, "Cannot keep the tenant's stop in the state store; after a restart its state age and lag count from the restart");
        }
    }

    /// After a restart: the stop kept for this tenant, if any. Its sources are behind since the
    /// times kept; its state's age continues if it stops the same way again.
    fn resume_kept_stop(&self) {
        let stop = match self.store.tenant_stop(&self.name) {
            Ok(Some(stop)) => stop,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(tenant = %self.name, error = %e, "Cannot read the tenant's stop from the state store; its state age and lag count from this start");
                return;
            }
        };
        for (source, behind) in &stop.behind_since {
            self.board.update_source(&self.name, source, |st| {
                st.behind_since = Some(st.behind_since.map_or(*behind, |b| b.min(*behind)));
                // kept by an earlier process, which may itself have assumed it
                st.behind_since_assumed = true;
            });
        }
        *self.kept_stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop);
    }

    /// A source's last success survives restarts: it is the newest checkpoint's time until this
    /// process ships something (the counters next to it count since start).
    fn show_last_success_from_checkpoints(&self) {
        for s in &self.sources {
            let source = &s.ctx.cfg.name;
            match self.store.summary(&self.name, source) {
                Ok(summary) => self.board.update_source(&self.name, source, |st| {
                    st.last_success = st.last_success.max(summary.last_shipped_at);
                }),
                Err(e) => {
                    tracing::warn!(tenant = %self.name, source = %source, error = %e, "Cannot read the source's checkpoints for its last success; status shows it once something ships")
                }
            }
        }
    }

    /// Latches every customer key of the tenant as refused and purges its content keys.
    fn purge_keys(&self) {
        for s in &self.sources {
            if let Some(k) = &s.ctx.key {
                k.revoke();
            }
        }
    }

    /// Token and one listing page per source, with a fresh token (so a withdrawn consent shows),
    /// and on a decrypt source the key itself (get key, unwrap of a throwaway value).
    async fn probe(&self) -> Result<(), Blocked> {
        self.tokens.invalidate(
            &Principal::App {
                tenant_id: self.tenant_id.clone(),
            },
            &self.storage_resource,
        );
        for s in &self.sources {
            if let Some((state, reason, fix)) = &s.refusal {
                return Err(Blocked {
                    state: *state,
                    reason: reason.clone(),
                    fix: fix.clone(),
                });
            }
            let container = s.ctx.reader.container().container();
            if let Err(e) = s.ctx.reader.list_page(s.prefix.as_deref(), None, 1).await {
                return Err(self.probe_failure(&list_error(e), &s.ctx.cfg.name, container));
            }
            if let Some(key) = &s.ctx.key {
                let wraps = s.ctx.cfg.at_rest == crate::config::AtRest::CustomerKey;
                if let Err(e) = key.probe(wraps).await {
                    return Err(self.probe_failure(&ShipError::Key(e), &s.ctx.cfg.name, container));
                }
            }
        }
        Ok(())
    }

    /// What a failed re-check shows: the refusal's state when it is one, else what a poll with
    /// this one failure would show (`unreachable` or `throttled`). It becomes the source's last
    /// error too, so that `ferry status` does not show the refusal that first stopped the tenant
    /// when the re-check now finds another one.
    fn probe_failure(&self, e: &ShipError, source: &str, container: &str) -> Blocked {
        let blocked = blocking_state(e, &self.consent_url, container).unwrap_or_else(|| {
            let (state, fix) = PollHealth::of_failure(e).state();
            Blocked {
                state,
                reason: e.to_string(),
                fix: fix.unwrap_or_else(|| error_class(e).1.to_string()),
            }
        });
        let class = if blocked.state.is_blocked() {
            blocked.state.as_str()
        } else {
            error_class(e).0
        };
        self.board.update_source(&self.name, source, |st| {
            st.last_error = Some(LastError::now(class, &blocked.reason, &blocked.fix))
        });
        blocked
    }

    /// The state, reason and fix a tenant whose worst source polled with `worst` shows. The
    /// reason is the latest error of a source in that condition, so that `throttled` and
    /// `unreachable` say what failed, where, and (when more than time is needed) what to do.
    fn health_state(&self, worst: PollHealth) -> (TenantState, Option<String>, Option<String>) {
        let (state, fix) = worst.state();
        if worst == PollHealth::Healthy {
            return (state, None, None);
        }
        let latest = self
            .sources
            .iter()
            .filter(|s| *s.health.lock().unwrap_or_else(|e| e.into_inner()) == worst)
            .filter_map(|s| {
                let name = &s.ctx.cfg.name;
                self.board
                    .last_error(&self.name, name)
                    .map(|e| (name.clone(), e))
            })
            .max_by_key(|(_, e)| e.at);
        match latest {
            Some((source, e)) => (
                state,
                Some(format!(
                    "source {source}: {}; retried every poll",
                    e.message
                )),
                fix.or_else(|| (!e.fix.is_empty()).then_some(e.fix)),
            ),
            None => (state, None, fix),
        }
    }

    /// One stretch of shipping, until a blocking refusal, the drain signal, or (once) one pass.
    async fn run_until_blocked(
        self: Arc<Self>,
        stops: &Stops,
        once: bool,
    ) -> (Option<Blocked>, TenantTotals) {
        let tenant_stop = stops.abort.child_token();
        let tenant_drain = stops.drain.child_token();
        let (work_tx, work_rx) = flume::bounded::<Job>(self.concurrency * 2);
        let (block_tx, block_rx) = flume::bounded::<Blocked>(1);

        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.concurrency {
            let rx = work_rx.clone();
            let slots = self.fetch_slots.clone();
            let stop = tenant_stop.clone();
            let drain = tenant_drain.clone();
            let (board, name) = (self.board.clone(), self.name.clone());
            workers.spawn(
                async move {
                    while let Ok(job) = rx.recv_async().await {
                        board.update_tenant(&name, |t| t.queue_depth = rx.len() as u64);
                        if drain.is_cancelled() || stop.is_cancelled() {
                            let _ = job.done.send((job.ctx, job.item, Err(ShipError::Stopped)));
                            continue;
                        }
                        let Ok(_slot) = slots.acquire().await else {
                            return;
                        };
                        // once the tenant stops (a refusal, or the shutdown grace is over) an
                        // object in flight is dropped where it is, its requests with it: nothing
                        // more of it is sent, and an abandoned object was never committed
                        let ship =
                            in_scope(&name, &job.ctx.cfg.name, job.ctx.ship(&job.item, &stop));
                        let result = tokio::select! {
                            r = ship => r,
                            _ = stop.cancelled() => Err(ShipError::Stopped),
                        };
                        if let Err(e) = &result {
                            if blocking_state(e, "", "").is_some() {
                                // a refusal that stops the tenant: the other workers' jobs must
                                // not commit while the news travels to the supervisor
                                stop.cancel();
                            }
                        }
                        let _ = job.done.send((job.ctx, job.item, result));
                    }
                }
                .instrument(tracing::Span::current()),
            );
        }
        drop(work_rx);

        let mut loops = tokio::task::JoinSet::new();
        for (index, _) in self.sources.iter().enumerate() {
            let this = self.clone();
            let work_tx = work_tx.clone();
            let block_tx = block_tx.clone();
            let drain = tenant_drain.clone();
            // lines logged by the source's loop carry the tenant and source spans
            let span = tracing::info_span!("source", source = %self.sources[index].ctx.cfg.name);
            loops.spawn(
                async move {
                    this.source_loop(index, work_tx, block_tx, drain, once)
                        .await
                }
                .instrument(span),
            );
        }
        drop(work_tx);
        drop(block_tx);

        let mut totals = TenantTotals::default();
        let blocked = tokio::select! {
            // Err: every source loop ended without a block
            b = block_rx.recv_async() => b.ok(),
            _ = stops.drain.cancelled() => None,
        };
        if blocked.is_some() {
            // stop at once: nothing more of this tenant is committed
            tenant_stop.cancel();
        }
        tenant_drain.cancel();
        while let Some(r) = loops.join_next().await {
            if let Ok(t) = r {
                totals.shipped += t.shipped;
                totals.failed += t.failed;
                totals.unreachable += t.unreachable;
            }
        }
        while workers.join_next().await.is_some() {}
        (blocked, totals)
    }

    async fn source_loop(
        self: Arc<Self>,
        index: usize,
        work_tx: flume::Sender<Job>,
        block_tx: flume::Sender<Blocked>,
        drain: CancellationToken,
        once: bool,
    ) -> TenantTotals {
        let source = &self.sources[index];
        let mut totals = TenantTotals::default();
        if let Some((state, reason, fix)) = &source.refusal {
            let _ = block_tx.try_send(Blocked {
                state: *state,
                reason: reason.clone(),
                fix: fix.clone(),
            });
            return totals;
        }
        loop {
            let cycle = self.poll_cycle(source, &work_tx, &block_tx, &drain, once);
            let cycle = in_scope(&self.name, &source.ctx.cfg.name, cycle).await;
            let waited = source.ctx.reader.limits().waited().as_secs_f64();
            self.board
                .update_tenant(&self.name, |t| t.rate_limit_wait_seconds = waited);
            match cycle {
                Ok(t) => {
                    totals.shipped += t.shipped;
                    totals.failed += t.failed;
                    totals.unreachable += t.unreachable;
                    if t.refused {
                        // the blocked state comes from the refusal itself, not "throttled"
                        return totals;
                    }
                    if drain.is_cancelled() {
                        // a pass cut short (another source's refusal, or a stop) says nothing
                        // of health: it would show the tenant `active` on its way to stopping
                        return totals;
                    }
                    *source.health.lock().unwrap_or_else(|e| e.into_inner()) = PollHealth::of(&t);
                    // the worst of the tenant's sources, so that one healthy source does not
                    // hide another that cannot connect
                    let worst = self
                        .sources
                        .iter()
                        .map(|s| *s.health.lock().unwrap_or_else(|e| e.into_inner()))
                        .max()
                        .unwrap_or_default();
                    if self
                        .board
                        .state(&self.name)
                        .is_some_and(|s| !s.is_blocked())
                    {
                        let (state, reason, fix) = self.health_state(worst);
                        self.set_state(state, reason, fix);
                    }
                }
                Err(b) => {
                    let _ = block_tx.try_send(b);
                    return totals;
                }
            }
            if once {
                return totals;
            }
            tokio::select! {
                _ = drain.cancelled() => return totals,
                _ = tokio::time::sleep(source.poll_interval) => {}
            }
        }
    }

    /// Lists the source once and ships what is new; returns when every queued job finished.
    async fn poll_cycle(
        &self,
        source: &SourceRuntime,
        work_tx: &flume::Sender<Job>,
        block_tx: &flume::Sender<Blocked>,
        drain: &CancellationToken,
        once: bool,
    ) -> Result<TenantTotals, Blocked> {
        let ctx = &source.ctx;
        let started = unix_now();
        let container = ctx.reader.container().container().to_string();
        let (done_tx, done_rx) = flume::unbounded();
        let store = self.store.clone();
        let lister = async {
            let lister = SourceLister::new(
                &self.name,
                source,
                store.as_ref(),
                work_tx,
                done_tx,
                drain,
                once,
                unix_now(),
            );
            lister.run().await
        };
        let collector = async {
            let mut totals = TenantTotals::default();
            let mut blocked = false;
            while let Ok((ctx, item, result)) = done_rx.recv_async().await {
                match result {
                    Ok(s) => {
                        totals.shipped += s;
                        self.board.update_source(&self.name, &ctx.cfg.name, |st| {
                            st.bytes_read += s.bytes_read;
                            st.bytes_shipped += s.bytes_written;
                            st.records_shipped += s.records;
                            st.records_rejected += s.rejected;
                            st.objects_shipped += s.objects;
                            if s.objects > 0 {
                                st.last_success = Some(unix_now());
                            }
                        });
                        if s.rejected > 0 {
                            tracing::warn!(tenant = %self.name, source = %ctx.cfg.name, blob = %item.blob, rejected = s.rejected, "Records longer than max_record_size were skipped");
                        }
                    }
                    Err(ShipError::Stopped) => {}
                    Err(ShipError::Quarantined { reason }) => {
                        BlobQuarantined {
                            tenant: &self.name,
                            source: &ctx.cfg.name,
                            blob: &item.blob,
                            etag: &item.etag,
                            reason: &reason,
                        }
                        .emit(&self.board);
                    }
                    Err(e) if e.is_blob_changed() => {
                        // the version listed is gone; its data (written before this poll) has
                        // not landed, so the poll must not claim it caught up: a watermark
                        // waits for the newer version's shipment, next poll
                        totals.changed += 1;
                        totals.left_unshipped(&item);
                        tracing::info!(tenant = %self.name, source = %ctx.cfg.name, blob = %item.blob, error = %e, "Blob changed while being read; it is read again next poll");
                    }
                    Err(e) => {
                        totals.failed += 1;
                        totals.unreachable += u64::from(e.is_source_unreachable());
                        totals.left_unshipped(&item);
                        if let Some(b) = blocking_state(&e, &self.consent_url, &container) {
                            if !blocked {
                                blocked = true;
                                TenantRefused {
                                    tenant: &self.name,
                                    source: &ctx.cfg.name,
                                    blob: Some(&item.blob),
                                    state: b.state,
                                    error: &b.reason,
                                    fix: &b.fix,
                                }
                                .emit(&self.board);
                                // the tenant cancels its in-flight work at once; the remaining
                                // jobs come back Stopped
                                let _ = block_tx.try_send(b);
                            }
                            continue;
                        }
                        let (class, fix) = error_class(&e);
                        SourceWorkFailed {
                            tenant: &self.name,
                            source: &ctx.cfg.name,
                            blob: Some(&item.blob),
                            class,
                            error: &e,
                            fix,
                        }
                        .emit(&self.board);
                    }
                }
            }
            (totals, blocked)
        };
        let (listed, (totals, blocked)) = tokio::join!(lister, collector);
        tracing::debug!(tenant = %self.name, source = %ctx.cfg.name, objects = totals.shipped.objects, failed = totals.failed, blocked, "Poll finished");
        // not listed to the end, or stopped: data written since the last poll that caught up
        // may be waiting
        let fell_behind = || {
            self.board
                .update_source(&self.name, &ctx.cfg.name, |st| st.fall_behind(started))
        };
        if blocked {
            fell_behind();
            return Ok(TenantTotals {
                refused: true,
                ..totals
            });
        }
        // a pass cut short (another source's refusal stopped the tenant, a reload, a stop) may
        // have left work unqueued or unshipped: it did not catch up
        let cut_short = drain.is_cancelled();
        if listed.is_err() || cut_short {
            fell_behind();
        }
        match listed {
            Ok(report) if cut_short => {
                self.board.update_source(&self.name, &ctx.cfg.name, |st| {
                    st.list_requests += report.requests;
                });
                Ok(totals)
            }
            Ok(report) => {
                // the oldest data seen but not shipped: deferred tails, failed and changed items
                let oldest = earliest(report.oldest_deferred, totals.oldest_unshipped);
                self.board.update_source(&self.name, &ctx.cfg.name, |st| {
                    st.last_poll = Some(unix_now());
                    match oldest {
                        Some(t) => {
                            st.behind_since = Some(t);
                            st.behind_since_assumed =
                                report.deferred_since_assumed || totals.unshipped_since_assumed;
                        }
                        // failed or changed items without a write time: as old as the last
                        // catch-up
                        None if totals.failed > 0 || totals.changed > 0 => st.fall_behind(started),
                        None => {
                            st.caught_up_at = Some(started);
                            st.behind_since = None;
                            st.behind_since_assumed = false;
                        }
                    }
                    if totals.failed == 0 {
                        if let Some(e) = st.last_error.as_mut() {
                            e.resolved_at.get_or_insert(unix_now());
                        }
                    }
                    st.list_requests += report.requests;
                    // a reload may have switched the listing mode: flat leaves nothing to show
                    let (roots, open) = report.partitions.unzip();
                    st.partition_roots = roots.map(|r| r as u64);
                    st.open_since = open.flatten().map(crate::source::partitions::hour_label);
                });
                Ok(totals)
            }
            Err(e) => match blocking_state(&e, &self.consent_url, &container) {
                Some(b) => {
                    TenantRefused {
                        tenant: &self.name,
                        source: &ctx.cfg.name,
                        blob: None,
                        state: b.state,
                        error: &b.reason,
                        fix: &b.fix,
                    }
                    .emit(&self.board);
                    Err(b)
                }
                None => {
                    let (class, fix) = error_class(&e);
                    SourceWorkFailed {
                        tenant: &self.name,
                        source: &ctx.cfg.name,
                        blob: None,
                        class,
                        error: &e,
                        fix,
                    }
                    .emit(&self.board);
                    Ok(TenantTotals {
                        failed: totals.failed + 1,
                        unreachable: totals.unreachable + u64::from(e.is_source_unreachable()),
                        ..totals
                    })
                }
            },
        }
    }
}

/// What an operator does about a customer endpoint Ferry cannot connect to.
const UNREACHABLE_FIX: &str = "no connection to the customer's storage endpoint or key vault named in the error: check its DNS name (or the source's `resolve` or `decrypt.resolve` pin), its private endpoint and the network path from Ferry to it; Ferry retries every poll and resumes by itself";

fn error_class(e: &ShipError) -> (&'static str, &'static str) {
    match e {
        // provider storage, busy or refusing: every tenant ships there, so it is counted apart
        // from the customer's side (the `FerryDestinationErrors` alert), transient or not
        ShipError::Sink(s) => ("destination", s.fix()),
        e if e.is_source_unreachable() => ("unreachable", UNREACHABLE_FIX),
        ShipError::Source(SourceError::Token(TokenError::Unavailable { .. })) => {
            ("transient", TOKEN_UNAVAILABLE_FIX)
        }
        ShipError::Source(s) if s.is_transient() => ("transient", ""),
        ShipError::Source(_) => ("source", ""),
        ShipError::State(_) => ("state", "check agent.state_dir: disk space and permissions"),
        ShipError::Stopped => ("stopped", ""),
        ShipError::Key(_) => (
            "key_vault",
            "transient key vault failure; retried next poll",
        ),
        ShipError::BadBlob { .. } | ShipError::Quarantined { .. } => ("quarantined", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_storage_failures_count_as_destination_errors_busy_or_refusing() {
        let sink = |status: u16, code: &str, class| {
            ShipError::Sink(crate::sink::SinkError::Blob(crate::blob_api::BlobError {
                operation: "put block",
                blob: Some("tenant=contoso/source=audit/x".into()),
                status: Some(status),
                code: Some(code.into()),
                message: String::new(),
                class,
                retry_after: None,
                no_connection: false,
            }))
        };
        let busy = error_class(&sink(503, "ServerBusy", BlobErrorClass::Transient));
        assert_eq!(busy.0, "destination");
        assert!(busy.1.contains("destination account's health"), "{busy:?}");
        let refused = error_class(&sink(
            403,
            "AuthorizationPermissionMismatch",
            BlobErrorClass::AccessDenied,
        ));
        assert_eq!(refused.0, "destination");
        assert!(
            refused.1.contains("Storage Blob Data Contributor"),
            "{refused:?}"
        );
    }

    #[test]
    fn a_poll_is_unreachable_only_when_every_failure_was_a_missing_connection() {
        let poll = |failed, unreachable| TenantTotals {
            failed,
            unreachable,
            ..TenantTotals::default()
        };
        assert_eq!(PollHealth::of(&poll(0, 0)), PollHealth::Healthy);
        assert_eq!(PollHealth::of(&poll(3, 3)), PollHealth::Unreachable);
        assert_eq!(PollHealth::of(&poll(3, 2)), PollHealth::Throttled);
        assert_eq!(PollHealth::of(&poll(1, 0)), PollHealth::Throttled);
        // the tenant shows its worst source
        let worst = [
            PollHealth::Healthy,
            PollHealth::Unreachable,
            PollHealth::Throttled,
        ]
        .into_iter()
        .max();
        assert_eq!(worst, Some(PollHealth::Unreachable));
        assert_eq!(PollHealth::Unreachable.state().0, TenantState::Unreachable);
        assert!(PollHealth::Unreachable.state().1.is_some());
        assert_eq!(PollHealth::Healthy.state(), (TenantState::Active, None));
    }

    #[test]
    fn growing_blobs_wait_for_a_batch_but_not_forever() {
        use crate::state::{Checkpoint, Versioned};
        let cfg: crate::config::BlobSourceConfig = toml::from_str(
            "name = \"a\"\naccount_url = \"https://a.blob.core.windows.net\"\ncontainer = \"c\"\nbatch_max_age = \"60s\"\nbatch_max_bytes = \"1MiB\"",
        )
        .unwrap();
        let mut item = WorkItem {
            blob: "b".into(),
            kind: crate::blob_api::BlobKind::Append,
            etag: "e".into(),
            identity: "created:x".into(),
            creation_time: None,
            last_modified: None,
            start: 100,
            end: 200,
            prior: Some(Versioned {
                version: 1,
                value: Checkpoint {
                    etag: "created:x".into(),
                    offset: 100,
                    blob_kind: crate::state::BlobKind::Append,
                    size_seen: 100,
                    records_shipped: 1,
                    rejected_records: 0,
                    last_shipped_at: 1000,
                    seen_at: Some(990),
                },
            }),
            metadata: Default::default(),
            quiet: false,
            seen_at: 1020,
        };
        assert!(defer_for_batch_age(&item, &cfg, 1030));
        // a quiet blob is not growing: nothing to batch up with
        item.quiet = true;
        assert!(!defer_for_batch_age(&item, &cfg, 1030));
        item.quiet = false;
        assert!(
            !defer_for_batch_age(&item, &cfg, 1061),
            "older than batch_max_age"
        );
        item.end = 100 + (1 << 20);
        assert!(
            !defer_for_batch_age(&item, &cfg, 1030),
            "a full batch ships at once"
        );
        item.end = 200;
        item.prior = None;
        assert!(
            !defer_for_batch_age(&item, &cfg, 1030),
            "first bytes ship at once"
        );
    }

    #[test]
    fn globs_filter_names() {
        let f = BlobFilter::new(&["**/PT1H.json".into()], &["**/tmp/**".into()]).unwrap();
        assert!(f.accepts("resourceId=/A/y=2026/PT1H.json"));
        assert!(!f.accepts("resourceId=/A/tmp/PT1H.json"));
        assert!(!f.accepts("other.txt"));
        let all = BlobFilter::new(&[], &[]).unwrap();
        assert!(all.accepts("anything"));
    }
}
