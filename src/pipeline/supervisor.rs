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
use crate::state::{CheckpointStore, SqliteCheckpointStore, StateError};
use crate::telemetry::{StatusBoard, TenantState};

use super::ship::{Shipped, SourceContext};
use super::tenant::{BlobFilter, SourceRuntime, Stops, TenantSupervisor, TenantTotals};

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
        self.tenants
            .values()
            .fold(Shipped::default(), |a, (_, t)| Shipped {
                objects: a.objects + t.shipped.objects,
                bytes_read: a.bytes_read + t.shipped.bytes_read,
                bytes_written: a.bytes_written + t.shipped.bytes_written,
                records: a.records + t.shipped.records,
                rejected: a.rejected + t.shipped.rejected,
            })
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
    tokens: TokenProvider,
    destination: Destination,
    store: Arc<dyn CheckpointStore>,
    template: Arc<PathTemplate>,
    fetch_slots: Arc<Semaphore>,
    board: StatusBoard,
}

impl Supervisor {
    /// Builds everything that does not need the network.
    pub fn build(loaded: LoadedConfig, board: StatusBoard) -> Result<Supervisor, StartError> {
        let http = http_settings(&loaded)?;
        let client = http.build()?;
        let tokens = TokenProvider::new(identity_settings(&loaded, client)?);
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
        let template = Arc::new(PathTemplate::parse(&dest_cfg.path)?);
        Ok(Supervisor {
            fetch_slots: Arc::new(Semaphore::new(cfg.agent.max_concurrent_fetches.max(1))),
            http,
            tokens,
            destination,
            store,
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

    async fn tenant(&self, t: &TenantConfig) -> Result<Arc<TenantSupervisor>, StartError> {
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
                self.http.build()?
            };
            let reader = BlobSource::new(
                ContainerClient::new(client, &b.account_url, &b.container),
                self.tokens.clone(),
                t.tenant_id.clone(),
                self.loaded.endpoints.storage_resource.clone(),
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
                        None => self.http.build()?,
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
                    board: self.board.clone(),
                    key,
                }),
                filter,
                prefix: b.prefix.clone(),
                poll_interval: b.poll_interval.get(),
                refusal,
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
            storage_resource: self.loaded.endpoints.storage_resource.clone(),
            recheck_interval: self.loaded.config.agent.recheck_interval.get(),
            store: self.store.clone(),
            consent_url: self.loaded.consent_url(t),
        }))
    }

    /// Runs every enabled tenant until `shutdown` fires (or, with `once`, one pass each).
    /// After `shutdown`, new work stops at once and in-flight work may finish within the
    /// configured grace period.
    pub async fn run(
        &self,
        opts: RunOptions,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<RunSummary, StartError> {
        let stops = Stops {
            drain: tokio_util::sync::CancellationToken::new(),
            abort: tokio_util::sync::CancellationToken::new(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        for t in &self.loaded.config.tenants {
            if !t.enabled {
                self.board
                    .register(&t.name, &t.tenant_id, &[], TenantState::Disabled);
                continue;
            }
            let tenant = self.tenant(t).await?;
            let name = t.name.clone();
            let stops = stops.clone();
            tasks.spawn(async move { (name, tenant.run(stops, opts.once).await) });
            tokio::time::sleep(TENANT_START_SPREAD).await;
        }
        let grace = self.loaded.config.agent.shutdown_grace.get();
        let mut summary = RunSummary::default();
        let collect = |r: Result<(String, TenantTotals), tokio::task::JoinError>,
                       summary: &mut RunSummary| {
            if let Ok((name, totals)) = r {
                let state = self.board.state(&name).unwrap_or(TenantState::Starting);
                summary.tenants.insert(name, (state, totals));
            }
        };
        loop {
            tokio::select! {
                r = tasks.join_next() => match r {
                    Some(r) => collect(r, &mut summary),
                    None => return Ok(summary),
                },
                _ = shutdown.cancelled(), if !stops.drain.is_cancelled() => {
                    tracing::info!(grace_seconds = grace.as_secs(), "Stopping: no new work; in-flight objects may finish within the grace period");
                    stops.drain.cancel();
                    let abort = stops.abort.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(grace).await;
                        if !abort.is_cancelled() {
                            tracing::warn!("Grace period over: abandoning in-flight objects uncommitted; they are shipped again after restart");
                            abort.cancel();
                        }
                    });
                }
            }
        }
    }
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
