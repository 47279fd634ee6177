//! Metrics: the counters that only exist as events (errors by class, retries, unwraps, content-key
//! cache hits, quarantined blobs, config reloads), and the Prometheus text of `/metrics`, which
//! adds what the `StatusBoard` already knows (bytes, records, objects, lag, states, queue depths,
//! checkpoint age) at scrape time.
//!
//! Labels are only tenant and source names (and fixed vocabularies: error class, tenant state,
//! reload result), so cardinality is bounded by the config, never by blob names.
//!
//! The counters live in one process-wide `Metrics` (`Metrics::global()`), so any module can count
//! without plumbing: `Metrics::unwrap("contoso")`, `Metrics::cache_hit("contoso")`.
//! Must not: decide anything, or block (every call is a few atomic operations).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::status::{unix_now, StatusBoard, TenantState};

/// Label set: a tenant.
type TenantLabels = Vec<(String, String)>;

fn tenant_labels(tenant: &str) -> TenantLabels {
    vec![("tenant".into(), tenant.into())]
}

fn source_labels(tenant: &str, source: &str) -> TenantLabels {
    vec![
        ("tenant".into(), tenant.into()),
        ("source".into(), source.into()),
    ]
}

/// A counter of seconds (fractional).
type SecondsCounter = Counter<f64, AtomicU64>;

/// Reads a value owned by another module at scrape time (token totals, destination waits).
type Probe<T> = Arc<dyn Fn() -> T + Send + Sync>;

/// Process-wide event counters. Cheap to update from any task.
pub struct Metrics {
    errors: Family<TenantLabels, Counter>,
    retries: Family<TenantLabels, Counter>,
    retry_wait: Family<TenantLabels, SecondsCounter>,
    unwraps: Family<TenantLabels, Counter>,
    cache_hits: Family<TenantLabels, Counter>,
    quarantined: Family<TenantLabels, Counter>,
    state_changes: Family<TenantLabels, Counter>,
    reloads: Family<TenantLabels, Counter>,
    token_totals: Mutex<Option<Probe<(u64, u64)>>>,
    destination_waited: Mutex<Option<Probe<Duration>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

tokio::task_local! {
    /// The (tenant, source) a task works for, so shared code (retries) can label what it counts.
    static SCOPE: (String, String);
}

/// Runs `fut` with (tenant, source) as the labels of what shared code counts inside it
/// (retries and their waits). Tasks spawned inside do not inherit it.
pub async fn in_scope<F: std::future::Future>(tenant: &str, source: &str, fut: F) -> F::Output {
    SCOPE
        .scope((tenant.to_string(), source.to_string()), fut)
        .await
}

/// The labels of the current scope; `("", "")` outside any (agent-level work).
fn current_scope() -> (String, String) {
    SCOPE.try_with(|s| s.clone()).unwrap_or_default()
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            errors: Family::default(),
            retries: Family::default(),
            retry_wait: Family::default(),
            unwraps: Family::default(),
            cache_hits: Family::default(),
            quarantined: Family::default(),
            state_changes: Family::default(),
            reloads: Family::default(),
            token_totals: Mutex::new(None),
            destination_waited: Mutex::new(None),
        }
    }

    /// The process-wide counters.
    pub fn global() -> &'static Metrics {
        GLOBAL.get_or_init(Metrics::new)
    }

    /// One content key unwrapped through the tenant's Key Vault.
    pub fn unwrap(tenant: &str) {
        Metrics::global()
            .unwraps
            .get_or_create(&tenant_labels(tenant))
            .inc();
    }

    /// One content key served from the tenant's cache (no Key Vault call).
    pub fn cache_hit(tenant: &str) {
        Metrics::global()
            .cache_hits
            .get_or_create(&tenant_labels(tenant))
            .inc();
    }

    /// One blob quarantined. Prefer the `BlobQuarantined` event, which also logs and updates
    /// the status board.
    pub fn quarantined(tenant: &str, source: &str) {
        Metrics::global()
            .quarantined
            .get_or_create(&source_labels(tenant, source))
            .inc();
    }

    /// One error of `class` (`transient`, `access_denied`, `destination`, ...).
    pub fn error(tenant: &str, source: &str, class: &str) {
        let mut l = source_labels(tenant, source);
        l.push(("class".into(), class.into()));
        Metrics::global().errors.get_or_create(&l).inc();
    }

    /// One retry after waiting `waited`, labelled with the current scope.
    pub fn retry(waited: Duration) {
        let (tenant, source) = current_scope();
        let l = source_labels(&tenant, &source);
        let m = Metrics::global();
        m.retries.get_or_create(&l).inc();
        m.retry_wait.get_or_create(&l).inc_by(waited.as_secs_f64());
    }

    /// One tenant state change into `to`.
    pub fn state_change(tenant: &str, to: TenantState) {
        let mut l = tenant_labels(tenant);
        l.push(("to".into(), to.as_str().into()));
        Metrics::global().state_changes.get_or_create(&l).inc();
    }

    /// One config reload, `ok` or `refused`.
    pub fn reload(result: &str) {
        Metrics::global()
            .reloads
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }

    /// Where token request and failure totals are read at scrape time.
    pub fn set_token_totals(f: impl Fn() -> (u64, u64) + Send + Sync + 'static) {
        *lock(&Metrics::global().token_totals) = Some(Arc::new(f));
    }

    /// Where the time spent waiting on the destination's byte limit is read at scrape time.
    pub fn set_destination_waited(f: impl Fn() -> Duration + Send + Sync + 'static) {
        *lock(&Metrics::global().destination_waited) = Some(Arc::new(f));
    }

    /// A counter's current value (tests and `ferry status`).
    pub fn unwraps_of(tenant: &str) -> u64 {
        Metrics::global()
            .unwraps
            .get_or_create(&tenant_labels(tenant))
            .get()
    }
}

/// Renders everything as Prometheus (OpenMetrics) text.
#[derive(Debug)]
pub struct MetricsText {
    registry: Registry,
}

/// The content type of `MetricsText::render`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl MetricsText {
    /// A renderer over the global counters and `board`.
    pub fn new(board: StatusBoard) -> MetricsText {
        let m = Metrics::global();
        let mut r = Registry::default();
        r.register(
            "ferry_errors",
            "Errors by tenant, source and class",
            m.errors.clone(),
        );
        r.register(
            "ferry_retries",
            "Requests retried after a transient failure or throttling",
            m.retries.clone(),
        );
        r.register_with_unit(
            "ferry_retry_wait",
            "Time spent waiting between retries (honouring Retry-After)",
            Unit::Seconds,
            m.retry_wait.clone(),
        );
        r.register(
            "ferry_key_unwraps",
            "Content keys unwrapped through the customer's Key Vault",
            m.unwraps.clone(),
        );
        r.register(
            "ferry_content_key_cache_hits",
            "Content keys served from the cache without a Key Vault call",
            m.cache_hits.clone(),
        );
        r.register(
            "ferry_blobs_quarantined",
            "Blobs refused (bad ciphertext or metadata) and never shipped",
            m.quarantined.clone(),
        );
        r.register(
            "ferry_tenant_state_changes",
            "Tenant state changes, by the state entered",
            m.state_changes.clone(),
        );
        r.register(
            "ferry_config_reloads",
            "Config reloads (SIGHUP), by result",
            m.reloads.clone(),
        );
        r.register_collector(Box::new(BoardCollector { board }));
        MetricsText { registry: r }
    }

    /// The text of `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Reads the board (and the probes) at scrape time.
#[derive(Debug)]
struct BoardCollector {
    board: StatusBoard,
}

/// One metric family derived at scrape time.
struct Derived<'a> {
    name: &'a str,
    help: &'a str,
    unit: Option<Unit>,
    counter: bool,
    values: Vec<(TenantLabels, f64)>,
}

impl Derived<'_> {
    fn encode(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let kind = if self.counter {
            prometheus_client::metrics::MetricType::Counter
        } else {
            prometheus_client::metrics::MetricType::Gauge
        };
        // whole numbers for everything but seconds
        let integer = !matches!(self.unit, Some(Unit::Seconds));
        let mut d = enc.encode_descriptor(self.name, self.help, self.unit.as_ref(), kind)?;
        for (labels, v) in &self.values {
            let one =
                |e: prometheus_client::encoding::MetricEncoder<'_>| match (self.counter, integer) {
                    (true, true) => ConstCounter::new(*v as u64).encode(e),
                    (true, false) => ConstCounter::new(*v).encode(e),
                    (false, true) => ConstGauge::new(*v as i64).encode(e),
                    (false, false) => ConstGauge::new(*v).encode(e),
                };
            if labels.is_empty() {
                one(d)?;
                return Ok(());
            }
            one(d.encode_family(labels)?)?;
        }
        Ok(())
    }
}

impl Collector for BoardCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let snap = self.board.snapshot();
        let now = unix_now();
        let per_source = |f: &dyn Fn(&super::status::SourceStatus) -> Option<f64>| {
            let mut v = Vec::new();
            for (t, ts) in &snap {
                for (s, ss) in &ts.sources {
                    if let Some(x) = f(ss) {
                        v.push((source_labels(t, s), x));
                    }
                }
            }
            v
        };
        let counter = |name, help, unit, values| Derived {
            name,
            help,
            unit,
            counter: true,
            values,
        };
        let gauge = |name, help, unit, values| Derived {
            name,
            help,
            unit,
            counter: false,
            values,
        };
        let mut families = vec![
            counter(
                "ferry_read",
                "Bytes read from customers' sources",
                Some(Unit::Bytes),
                per_source(&|s| Some(s.bytes_read as f64)),
            ),
            counter(
                "ferry_shipped",
                "Bytes committed to provider storage (after compression)",
                Some(Unit::Bytes),
                per_source(&|s| Some(s.bytes_shipped as f64)),
            ),
            counter(
                "ferry_records_shipped",
                "Records committed (records mode)",
                None,
                per_source(&|s| Some(s.records_shipped as f64)),
            ),
            counter(
                "ferry_records_rejected",
                "Records skipped for exceeding max_record_size",
                None,
                per_source(&|s| Some(s.records_rejected as f64)),
            ),
            counter(
                "ferry_objects_shipped",
                "Destination objects committed",
                None,
                per_source(&|s| Some(s.objects_shipped as f64)),
            ),
            counter(
                "ferry_list_requests",
                "List Blobs calls made against customers' containers",
                None,
                per_source(&|s| Some(s.list_requests as f64)),
            ),
            gauge(
                "ferry_partition_roots",
                "Date-partitioned sources: resource roots listed hour by hour",
                None,
                per_source(&|s| s.partition_roots.map(|n| n as f64)),
            ),
            gauge(
                "ferry_lag",
                "Age of the oldest data that may not be shipped yet (0 when caught up); grows while the source cannot be listed or its tenant is stopped",
                Some(Unit::Seconds),
                per_source(&|s| Some(s.lag_seconds as f64)),
            ),
            gauge(
                "ferry_checkpoint_age",
                "Seconds since the source last committed a checkpoint",
                Some(Unit::Seconds),
                per_source(&|s| s.last_success.map(|t| (now - t).max(0) as f64)),
            ),
            gauge(
                "ferry_source_last_poll_age",
                "Seconds since the source's last completed listing",
                Some(Unit::Seconds),
                per_source(&|s| s.last_poll.map(|t| (now - t).max(0) as f64)),
            ),
        ];
        let mut states = Vec::new();
        let mut depths = Vec::new();
        let mut waits = Vec::new();
        let mut since = Vec::new();
        for (t, ts) in &snap {
            for st in TenantState::ALL {
                let mut l = tenant_labels(t);
                l.push(("state".into(), st.as_str().into()));
                states.push((l, if ts.state == st { 1.0 } else { 0.0 }));
            }
            depths.push((tenant_labels(t), ts.queue_depth as f64));
            waits.push((tenant_labels(t), ts.rate_limit_wait_seconds));
            since.push((tenant_labels(t), (now - ts.since).max(0) as f64));
        }
        families.push(gauge(
            "ferry_tenant_state",
            "1 for the state the tenant is in, 0 for every other state",
            None,
            states,
        ));
        families.push(gauge(
            "ferry_tenant_state_age",
            "Seconds since the tenant entered its current state",
            Some(Unit::Seconds),
            since,
        ));
        families.push(gauge(
            "ferry_tenant_queue_depth",
            "Work items queued for the tenant's fetch workers",
            None,
            depths,
        ));
        families.push(counter(
            "ferry_rate_limit_wait",
            "Time the tenant's work waited on its own rate limits",
            Some(Unit::Seconds),
            waits,
        ));
        let m = Metrics::global();
        if let Some(f) = lock(&m.destination_waited).clone() {
            families.push(counter(
                "ferry_destination_rate_limit_wait",
                "Time spent waiting on the global destination byte limit",
                Some(Unit::Seconds),
                vec![(Vec::new(), f().as_secs_f64())],
            ));
        }
        if let Some(f) = lock(&m.token_totals).clone() {
            let (requests, failures) = f();
            families.push(counter(
                "ferry_token_requests",
                "Token requests sent to Entra ID and managed identity endpoints",
                None,
                vec![(Vec::new(), requests as f64)],
            ));
            families.push(counter(
                "ferry_token_failures",
                "Token requests that failed",
                None,
                vec![(Vec::new(), failures as f64)],
            ));
        }
        for f in &families {
            f.encode(&mut enc)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_board_and_event_counters_with_bounded_labels() {
        let board = StatusBoard::new();
        board.register("m-test", "tid", &["audit".into()], TenantState::Active);
        board.update_source("m-test", "audit", |s| {
            s.bytes_shipped = 42;
            s.objects_shipped = 3;
            s.behind_since = Some(crate::telemetry::status::unix_now() - 7);
        });
        Metrics::unwrap("m-test");
        Metrics::cache_hit("m-test");
        Metrics::error("m-test", "audit", "transient");
        Metrics::set_token_totals(|| (5, 1));
        let text = MetricsText::new(board).render();
        // the lag is computed when the board is read: 7 s, or 8 if a second turned meanwhile
        let lag = "ferry_lag_seconds{tenant=\"m-test\",source=\"audit\"} ";
        assert!(
            text.contains(&format!("{lag}7.0\n")) || text.contains(&format!("{lag}8.0\n")),
            "{text}"
        );
        for want in [
            "ferry_shipped_bytes_total{tenant=\"m-test\",source=\"audit\"} 42",
            "ferry_objects_shipped_total{tenant=\"m-test\",source=\"audit\"} 3",
            "ferry_tenant_state{tenant=\"m-test\",state=\"active\"} 1",
            "ferry_tenant_state{tenant=\"m-test\",state=\"key_revoked\"} 0",
            "ferry_key_unwraps_total{tenant=\"m-test\"} 1",
            "ferry_content_key_cache_hits_total{tenant=\"m-test\"} 1",
            "ferry_errors_total{tenant=\"m-test\",source=\"audit\",class=\"transient\"} 1",
            "ferry_token_requests_total 5",
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn retries_are_labelled_with_the_scope() {
        in_scope("r-test", "audit", async {
            Metrics::retry(Duration::from_millis(1500));
        })
        .await;
        let text = MetricsText::new(StatusBoard::new()).render();
        assert!(
            text.contains("ferry_retries_total{tenant=\"r-test\",source=\"audit\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ferry_retry_wait_seconds_total{tenant=\"r-test\",source=\"audit\"} 1.5"),
            "{text}"
        );
    }
}
