//! `Supervisor`: builds the shared parts (HTTP client, token provider, destination, checkpoint
//! store, global limits) from a loaded config, starts one `TenantSupervisor` per enabled tenant,
//! and stops them honestly: first no new work (drain), then, when the grace period is over,
//! in-flight work is abandoned before its commit, so checkpoints stay consistent.
//!
//! Ownership of a (tenant, source) lives here, in one place, so a later blob-lease store can
//! decide which replica runs which tenant.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::blob_api::ContainerClient;
use crate::config::{LoadedConfig, SourceConfig, TenantConfig};
use crate::identity::from_config::{
    http_settings, identity_settings, pins_with, provider_principal,
};
use crate::identity::http::{resolve_host, HttpSettings, HttpSetupError};
use crate::identity::{TokenError, TokenProvider};
use crate::limits::Limits;
use crate::sink::{Destination, PathTemplate, TemplateError};
use crate::source::BlobSource;
use crate::state::{CheckpointCommitter, CheckpointStore, SqliteCheckpointStore, StateError};
use crate::telemetry::{StatusBoard, TenantState};

use super::ship::{Shipped, SourceContext};
use super::tenant::{BlobFilter, SourceRuntime, Stops, TenantSupervisor, TenantTotals};
use super::watermark::WatermarkPublisher;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// HTTP client settings are unusable.
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    /// The app or provider credential cannot be set up.
    #[error(transparent)]
    Identity(#[from] TokenError),
    /// The checkpoint store cannot be opened.
    #[error(transparent)]
    State(#[from] StateError),
    /// The destination path template is invalid.
    #[error("destination.path: {0}")]
    Template(#[from] TemplateError),
    /// A decrypt key URL is unusable.
    #[error("decrypt key: {0}")]
    Key(#[from] crate::cmk::KeyVaultError),
    /// A glob is invalid.
    #[error("tenant[{tenant}].source[{source_name}]: invalid glob: {error}")]
    Glob {
        /// Tenant.
        tenant: String,
        /// Source.
        source_name: String,
        /// The glob error.
        error: globset::Error,
    },
}

impl StartError {
    /// True when the configuration must change (a CA file, pin, template, key URL or glob), as
    /// against the host (the state directory) or the credential's source at this moment.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            StartError::Http(_)
                | StartError::Template(_)
                | StartError::Key(_)
                | StartError::Glob { .. }
        )
    }
}

/// What `run` does.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Ship what is there now, then return.
    pub once: bool,
}

/// What a run did, per tenant.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    /// Per tenant: final state and totals.
    pub tenants: BTreeMap<String, (TenantState, TenantTotals)>,
}

impl RunSummary {
    /// Totals over every tenant.
    pub fn total(&self) -> Shipped {
        let mut total = Shipped::default();
        for (_, t) in self.tenants.values() {
            total += t.shipped;
        }
        total
    }

    /// True when every tenant ended active with no failed job.
    pub fn all_ok(&self) -> bool {
        self.tenants
            .values()
            .all(|(s, t)| matches!(s, TenantState::Active | TenantState::Disabled) && t.failed == 0)
    }
}

/// The running agent's shared parts.
#[derive(Debug)]
pub struct Supervisor {
    loaded: LoadedConfig,
    http: HttpSettings,
    /// The client every source and vault without its own `resolve` shares: one connection pool,
    /// one TLS configuration (root store) for all tenants instead of one per source.
    shared_client: reqwest::Client,
    tokens: TokenProvider,
    destination: Destination,
    store: Arc<dyn CheckpointStore>,
    /// Every source's checkpoint commits, grouped into shared transactions.
    commits: CheckpointCommitter,
    template: Arc<PathTemplate>,
    fetch_slots: Arc<Semaphore>,
    board: StatusBoard,
}

impl Supervisor {
    /// Builds everything that does not need the network.
    pub fn build(loaded: LoadedConfig, board: StatusBoard) -> Result<Supervisor, StartError> {
        let http = http_settings(&loaded)?;
        let client = http.build()?;
        let tokens = TokenProvider::new(identity_settings(&loaded, client.clone())?);
        let cfg = &loaded.config;
        let dest_cfg = &cfg.destination;
        let dest_http = http.build_with_pins(pins_with(
            &http,
            &dest_cfg.account_url,
            dest_cfg.resolve.as_deref(),
        )?)?;
        let destination = Destination::new(
            ContainerClient::new(dest_http, &dest_cfg.account_url, &dest_cfg.container),
            tokens.clone(),
            provider_principal(&loaded, &dest_cfg.credential)?,
            loaded.endpoints.storage_resource.clone(),
            Arc::new(Limits::new(
                dest_cfg.max_bytes_per_sec.map(|b| b.get()),
                None,
            )),
            dest_cfg.single_put_max.get() as usize,
            dest_cfg.block_size.get() as usize,
        );
        let store: Arc<dyn CheckpointStore> =
            Arc::new(SqliteCheckpointStore::open(&cfg.agent.state_dir)?);
        let commits = CheckpointCommitter::start(store.clone())?;
        let template = Arc::new(PathTemplate::parse(&dest_cfg.path)?);
        Ok(Supervisor {
            fetch_slots: Arc::new(Semaphore::new(cfg.agent.max_concurrent_fetches.max(1))),
            http,
            shared_client: client,
            tokens,
            destination,
            store,
            commits,
            template,
            board,
            loaded,
        })
    }

    /// The token provider (for metrics).
    pub fn tokens(&self) -> &TokenProvider {
        &self.tokens
    }

    /// The status board.
    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    /// The configuration the agent was started with.
    pub fn config(&self) -> &crate::config::Config {
        &self.loaded.config
    }

    /// The destination (for readiness checks).
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The checkpoint store (for readiness checks).
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.store
    }

    async fn tenant(
        &self,
        loaded: &LoadedConfig,
        t: &TenantConfig,
    ) -> Result<Arc<TenantSupervisor>, StartError> {
        let limits = Arc::new(Limits::new(
            t.max_bytes_per_sec.map(|b| b.get()),
            t.max_requests_per_sec,
        ));
        let mut sources = Vec::new();
        for s in &t.sources {
            let SourceConfig::Blob(b) = s else {
                tracing::warn!(tenant = %t.name, source = %s.name(), "Log Analytics sources are validated but not shipped by this version of ferry");
                continue;
            };
            let pins = pins_with(&self.http, &b.account_url, b.resolve.as_deref())?;
            let refusal = if b.require_private_endpoint {
                private_endpoint_refusal(&pins, &b.account_url).await
            } else {
                None
            };
            let client = if b.resolve.is_some() {
                self.http.build_with_pins(pins)?
            } else {
                self.shared_client.clone()
            };
            let reader = BlobSource::new(
                ContainerClient::new(client, &b.account_url, &b.container),
                self.tokens.clone(),
                t.tenant_id.clone(),
                loaded.endpoints.storage_resource.clone(),
                limits.clone(),
            );
            let filter =
                BlobFilter::new(&b.include, &b.exclude).map_err(|error| StartError::Glob {
                    tenant: t.name.clone(),
                    source_name: b.name.clone(),
                    error,
                })?;
            let key = match &b.decrypt {
                Some(d) => {
                    let http = match d.resolve.as_deref() {
                        Some(r) => {
                            self.http
                                .build_with_pins(pins_with(&self.http, &d.key, Some(r))?)?
                        }
                        None => self.shared_client.clone(),
                    };
                    let client = crate::cmk::KeyVaultClient::new(
                        http,
                        self.tokens.clone(),
                        &t.tenant_id,
                        &d.key,
                        &self.loaded.endpoints.vault_resource,
                        &self.loaded.endpoints.managed_hsm_resource,
                    )?;
                    Some(Arc::new(crate::cmk::CustomerKey::new(
                        client,
                        d.content_key_ttl.get(),
                    )))
                }
                None => None,
            };
            sources.push(SourceRuntime {
                ctx: Arc::new(SourceContext {
                    tenant: t.name.clone(),
                    tenant_id: t.tenant_id.clone(),
                    cfg: b.clone(),
                    reader,
                    dest: self.destination.clone(),
                    template: self.template.clone(),
                    store: self.store.clone(),
                    commits: self.commits.clone(),
                    board: self.board.clone(),
                    key,
                    earlier: super::recovery::EarlierShipments::starting_at(
                        crate::telemetry::status::unix_now(),
                    ),
                }),
                filter,
                prefix: b.prefix.clone(),
                poll_interval: b.poll_interval.get(),
                refusal,
                health: Default::default(),
            });
        }
        Ok(Arc::new(TenantSupervisor {
            name: t.name.clone(),
            tenant_id: t.tenant_id.clone(),
            sources,
            concurrency: t.max_concurrent_fetches.max(1),
            fetch_slots: self.fetch_slots.clone(),
            board: self.board.clone(),
            tokens: self.tokens.clone(),
            storage_resource: loaded.endpoints.storage_resource.clone(),
            recheck_interval: loaded.config.agent.recheck_interval.get(),
            store: self.store.clone(),
            consent_url: loaded.consent_url(t),
            kept_stop: Default::default(),
        }))
    }

    /// Runs every enabled tenant until `shutdown` fires (or, with `once`, one pass each).
    /// After `shutdown`, new work stops at once and in-flight work may finish within the
    /// configured grace period.
    pub async fn run(
        &self,
        opts: RunOptions,
        shutdown: CancellationToken,
    ) -> Result<RunSummary, StartError> {
        let (_never, reloads) = tokio::sync::mpsc::channel(1);
        self.run_with_reload(opts, shutdown, reloads).await
    }

    /// Like `run`, and each message on `reloads` re-reads the config file (see `super::reload`).
    pub async fn run_with_reload(
        &self,
        opts: RunOptions,
        shutdown: CancellationToken,
        mut reloads: tokio::sync::mpsc::Receiver<()>,
    ) -> Result<RunSummary, StartError> {
        let global = Stops {
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
        };
        let mut fleet = Fleet::default();
        let mut current = self.loaded.clone();
        // watermarks: written all along by a task of their own, or once at the end of a --once
        let watermarks_stop = CancellationToken::new();
        let _watermarks_stop = watermarks_stop.clone().drop_guard();
        let mut final_watermarks = None;
        if let Some(every) = current.config.destination.watermark_interval {
            let publisher = WatermarkPublisher::new(
                self.destination.clone(),
                self.template.clone(),
                self.board.clone(),
                every.get(),
            );
            if opts.once {
                final_watermarks = Some(publisher);
            } else {
                tokio::spawn(publisher.run(watermarks_stop));
            }
        }
        for t in &current.config.tenants {
            self.start_tenant(&current, t, &global, &mut fleet, opts.once)
                .await?;
            tokio::time::sleep(TENANT_START_SPREAD).await;
        }
        let mut summary = RunSummary::default();
        loop {
            if fleet.tasks.is_empty()
                && fleet.pending.is_empty()
                && (opts.once || global.drain.is_cancelled())
            {
                // a reload may have changed a tenant's state after its task ended (disabled)
                for (name, (state, _)) in summary.tenants.iter_mut() {
                    if let Some(now) = self.board.state(name) {
                        *state = now;
                    }
                }
                if let Some(mut publisher) = final_watermarks {
                    publisher.publish_due().await;
                }
                return Ok(summary);
            }
            tokio::select! {
                r = fleet.tasks.join_next(), if !fleet.tasks.is_empty() => match r {
                    Some(Ok(ended)) => {
                        self.tenant_ended(ended, &current, &global, &mut fleet, &mut summary, opts.once)
                            .await?;
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "A tenant task ended abnormally; restart ferry to run that tenant again");
                    }
                    None => {}
                },
                Some(()) = reloads.recv(), if !opts.once && !global.drain.is_cancelled() => {
                    if let Some(next) = super::reload::reload(&current) {
                        self.apply_reload(&current, &next, &global, &mut fleet).await?;
                        current = next;
                    }
                }
                _ = shutdown.cancelled(), if !global.drain.is_cancelled() => {
                    let grace = current.config.agent.shutdown_grace.get();
                    tracing::info!(grace_seconds = grace.as_secs(), "Stopping: no new work; in-flight objects may finish within the grace period");
                    fleet.pending.clear();
                    stop_after_grace(&global, grace, None);
                }
            }
        }
    }

    /// A tenant task ended: record its totals, start its pending restart, or forget a removed
    /// tenant.
    async fn tenant_ended(
        &self,
        (name, generation, totals): (String, u64, TenantTotals),
        current: &LoadedConfig,
        global: &Stops,
        fleet: &mut Fleet,
        summary: &mut RunSummary,
        once: bool,
    ) -> Result<(), StartError> {
        let state = self.board.state(&name).unwrap_or(TenantState::Starting);
        // a tenant restarted by a reload ends more than once in a run: its totals add up
        let (last_state, sum) = summary
            .tenants
            .entry(name.clone())
            .or_insert((state, TenantTotals::default()));
        *last_state = state;
        sum.absorb(totals);
        if let Some(ended) = fleet
            .running
            .get(&name)
            .filter(|r| r.generation == generation)
        {
            // nothing is left in flight: a grace timer started for this task abandons nothing
            ended.stops.abort.cancel();
            fleet.running.remove(&name);
        }
        if let Some(t) = fleet.pending.remove(&name) {
            if !global.drain.is_cancelled() {
                self.start_tenant(current, &t, global, fleet, once).await?;
            }
        } else if !fleet.running.contains_key(&name)
            && !current.config.tenants.iter().any(|t| t.name == name)
        {
            self.board.remove(&name);
        }
        Ok(())
    }

    /// Starts one tenant (or registers it as disabled), as its own task with its own stops.
    async fn start_tenant(
        &self,
        loaded: &LoadedConfig,
        t: &TenantConfig,
        global: &Stops,
        fleet: &mut Fleet,
        once: bool,
    ) -> Result<(), StartError> {
        if !t.enabled {
            self.board
                .register(&t.name, &t.tenant_id, &[], TenantState::Disabled);
            // a tenant disabled by a reload was registered before, in another state
            self.board
                .set_state(&t.name, TenantState::Disabled, None, None);
            return Ok(());
        }
        let tenant = self.tenant(loaded, t).await?;
        let stops = Stops {
            drain: global.drain.child_token(),
            abort: global.abort.child_token(),
        };
        fleet.generation += 1;
        let generation = fleet.generation;
        fleet.running.insert(
            t.name.clone(),
            RunningTenant {
                generation,
                stops: stops.clone(),
            },
        );
        let name = t.name.clone();
        // every line logged inside the tenant's own task carries its name in the span
        let span = tracing::info_span!("tenant", tenant = %t.name);
        fleet.tasks.spawn(
            async move { (name, generation, tenant.run(stops, once).await) }.instrument(span),
        );
        Ok(())
    }

    /// Applies a validated new config: removed tenants stop, added ones start, changed ones
    /// restart (after the old task ended), unchanged ones are left alone.
    async fn apply_reload(
        &self,
        current: &LoadedConfig,
        next: &LoadedConfig,
        global: &Stops,
        fleet: &mut Fleet,
    ) -> Result<(), StartError> {
        let plan = super::reload::plan(current, next);
        let grace = next.config.agent.shutdown_grace.get();
        for name in plan.removed.iter().chain(plan.changed.iter()) {
            if let Some(r) = fleet.running.get(name) {
                stop_after_grace(&r.stops, grace, Some(name));
            } else if plan.removed.contains(name) {
                self.board.remove(name);
            }
        }
        for name in &plan.changed {
            if let Some(t) = next.tenant(name) {
                if fleet.running.contains_key(name) {
                    fleet.pending.insert(name.clone(), t.clone());
                } else {
                    self.start_tenant(next, t, global, fleet, false).await?;
                }
            }
        }
        for name in &plan.added {
            if let Some(t) = next.tenant(name) {
                self.start_tenant(next, t, global, fleet, false).await?;
            }
        }
        Ok(())
    }
}

/// One running tenant task.
#[derive(Debug)]
struct RunningTenant {
    /// Which start of the tenant this is (a restart gets a new one).
    generation: u64,
    /// Its own stop signals (children of the agent's).
    stops: Stops,
}

/// Every tenant task of the agent.
#[derive(Debug, Default)]
struct Fleet {
    tasks: tokio::task::JoinSet<(String, u64, TenantTotals)>,
    running: BTreeMap<String, RunningTenant>,
    /// Changed tenants waiting for their old task to end before they start again.
    pending: BTreeMap<String, TenantConfig>,
    generation: u64,
}

/// Drains now; abandons in-flight work when `grace` is over, unless the work ended first (a
/// tenant task cancels its own `abort` when it ends, see `Supervisor::tenant_ended`).
/// `tenant` is `None` for the whole agent.
fn stop_after_grace(stops: &Stops, grace: Duration, tenant: Option<&str>) {
    stops.drain.cancel();
    let abort = stops.abort.clone();
    let tenant = tenant.map(str::to_string);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        if abort.is_cancelled() {
            return;
        }
        match tenant {
            Some(tenant) => tracing::warn!(%tenant, "Grace period over: abandoning the tenant's in-flight objects uncommitted; they are shipped again when it starts"),
            None => tracing::warn!("Grace period over: abandoning in-flight objects uncommitted; they are shipped again after restart"),
        }
        abort.cancel();
    });
}

/// Refuses an endpoint that resolves to a public address when a private endpoint is required.
async fn private_endpoint_refusal(
    pins: &crate::identity::http::DnsPins,
    url: &str,
) -> Option<(TenantState, String, String)> {
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    match resolve_host(pins, &host).await {
        Ok(r) if r.is_private() => None,
        Ok(r) => Some((
            TenantState::Misconfigured,
            format!("{host} resolves to public address {:?} but require_private_endpoint is set; nothing was sent", r.addresses),
            format!("point DNS for {host} at the private endpoint, or set resolve = \"<private ip>\" on the source"),
        )),
        Err(e) => Some((
            TenantState::Misconfigured,
            format!("{host} cannot be resolved: {e}"),
            format!("check DNS for {host} or set resolve = \"<private ip>\" on the source"),
        )),
    }
}

/// A short pause between tenant starts so a thousand tenants do not ask for tokens at once.
pub const TENANT_START_SPREAD: Duration = Duration::from_millis(5);
