//! `TokenProvider`: tokens per (principal, resource), cached and refreshed ahead of expiry off the
//! hot path, one request in flight per key however many callers ask, with jitter so a thousand
//! tenants do not refresh in the same second, and a global cap on concurrent token requests.
//!
//! Rules it keeps:
//! - a caller never waits on a refresh while the old token is still valid;
//! - while the token endpoint is down, valid tokens keep being served;
//! - a refusal that means "stop" (consent withdrawn, tenant not found) drops the cached token at once;
//! - every token is checked (`tid`, `aud`) before it is handed out.
//!
//! Must not: log tokens, assertions or secrets; know what the tokens are used for.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::credential::{read_assertion_file, CertificateCredential, SecretLocation};
use super::entra::{request_token, token_endpoint, ClientAuth, TokenRequest};
use super::error::{FailureClass, TokenError};
use super::managed::{request_managed_identity_token, ManagedIdentityEndpoint};
use super::refresh::{backoff, refresh_point};
use super::token::{check_claims, AccessToken, SecretString};
use super::vault_secret::fetch_key_vault_secret;

/// The resource whose token is the federated-credential assertion.
pub const TOKEN_EXCHANGE_RESOURCE: &str = "api://AzureADTokenExchange";
/// A token with less life than this is not handed out (a tenth of its lifetime for short tokens,
/// so that the refresh ahead of expiry, not a caller, is what replaces it).
const MIN_LIFE: Duration = Duration::from_secs(30);
/// How long AADSTS70021 is treated as propagation delay after it is first seen.
const FEDERATION_PROPAGATION: Duration = Duration::from_secs(300);
/// Token requests in flight at once, across all tenants.
const MAX_CONCURRENT_REQUESTS: usize = 16;

/// Tunables of a [`TokenProvider`]; `Default` is what `ferry run` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderTuning {
    /// How long AADSTS70021 (no matching federated credential) counts as propagation delay
    /// (transient) after it is first seen, before it becomes `credential_invalid`. Entra needs
    /// a few minutes to propagate a new federated credential.
    pub federation_propagation: Duration,
    /// Token requests in flight at once, across all tenants.
    pub max_concurrent_requests: usize,
}

impl Default for ProviderTuning {
    fn default() -> Self {
        ProviderTuning {
            federation_propagation: FEDERATION_PROPAGATION,
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// How the app authenticates to customer tenants.
#[derive(Debug)]
pub enum AppAuthMethod {
    /// A client secret.
    Secret(SecretLocation),
    /// A client secret fetched from the provider's Key Vault with a provider identity.
    KeyVaultSecret {
        /// Vault URL.
        vault_url: String,
        /// Secret name.
        name: String,
        /// Identity that reads the secret.
        via: Principal,
    },
    /// A certificate assertion.
    Certificate(Box<CertificateCredential>),
    /// The provider managed identity's token for `api://AzureADTokenExchange` as the assertion.
    FederatedManagedIdentity {
        /// Client id of the user-assigned managed identity.
        managed_identity_client_id: String,
    },
    /// A projected token file as the assertion.
    WorkloadIdentity {
        /// The token file.
        token_file: PathBuf,
    },
}

impl AppAuthMethod {
    /// The kind, as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            AppAuthMethod::Secret(_) => "secret",
            AppAuthMethod::KeyVaultSecret { .. } => "key_vault_secret",
            AppAuthMethod::Certificate(_) => "certificate",
            AppAuthMethod::FederatedManagedIdentity { .. } => "federated_managed_identity",
            AppAuthMethod::WorkloadIdentity { .. } => "workload_identity",
        }
    }
}

/// Who a token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// The multi-tenant app, in a given tenant (a customer's, or the provider's home tenant).
    App {
        /// Tenant id.
        tenant_id: String,
    },
    /// The provider's managed identity (user-assigned when `client_id` is set).
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
    /// AKS workload identity in the provider tenant.
    Workload {
        /// Provider tenant.
        tenant_id: String,
        /// The identity's client id.
        client_id: String,
        /// Projected token file.
        token_file: PathBuf,
    },
}

impl Principal {
    fn expected_tenant(&self) -> Option<&str> {
        match self {
            Principal::App { tenant_id } | Principal::Workload { tenant_id, .. } => Some(tenant_id),
            Principal::ManagedIdentity { .. } => None,
        }
    }
}

/// Everything the provider needs that does not change while running.
#[derive(Debug)]
pub struct IdentitySettings {
    /// Entra authority host of the cloud.
    pub authority_host: String,
    /// The app's client id.
    pub client_id: String,
    /// How the app authenticates.
    pub app_auth: AppAuthMethod,
    /// The provider's managed identity endpoint.
    pub managed_identity: ManagedIdentityEndpoint,
    /// Token resource of Key Vault in this cloud (for `key_vault_secret`).
    pub vault_resource: String,
    /// The HTTP client.
    pub http: reqwest::Client,
}

/// Counters about one (principal, resource).
#[derive(Debug, Default)]
pub struct TokenStats {
    /// Token requests sent.
    pub requests: AtomicU64,
    /// Token requests that failed.
    pub failures: AtomicU64,
}

#[derive(Debug, Default)]
struct EntryState {
    token: Option<Arc<AccessToken>>,
    min_life: Option<Duration>,
    refresh_at: Option<SystemTime>,
    retry_at: Option<Instant>,
    failures_in_row: u32,
    refreshing: bool,
    last_error: Option<TokenError>,
}

#[derive(Debug, Default)]
struct Entry {
    state: Mutex<EntryState>,
    fetch: tokio::sync::Mutex<()>,
    stats: TokenStats,
}

type Key = (Principal, String);

#[derive(Debug)]
struct Inner {
    settings: IdentitySettings,
    entries: Mutex<HashMap<Key, Arc<Entry>>>,
    key_vault_secret: Mutex<Option<SecretString>>,
    federation_first_refused: Mutex<Option<Instant>>,
    request_slots: tokio::sync::Semaphore,
    tuning: ProviderTuning,
}

/// Tokens for every principal and resource Ferry uses. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TokenProvider {
    /// A provider with an empty cache.
    pub fn new(settings: IdentitySettings) -> TokenProvider {
        TokenProvider::with_tuning(settings, ProviderTuning::default())
    }

    /// A provider for unit tests that never reach a token endpoint: every endpoint is unroutable.
    #[cfg(test)]
    pub(crate) fn unreachable_for_tests() -> TokenProvider {
        TokenProvider::new(IdentitySettings {
            authority_host: "https://login.invalid".into(),
            client_id: "c".into(),
            app_auth: AppAuthMethod::Secret(crate::identity::SecretLocation::Env(
                "FERRY_TEST_UNSET_SECRET".into(),
            )),
            managed_identity: ManagedIdentityEndpoint::Imds {
                url: "http://127.0.0.1:9/metadata/identity/oauth2/token".into(),
            },
            vault_resource: "https://vault.azure.net".into(),
            http: reqwest::Client::new(),
        })
    }

    /// A provider with an empty cache and non-default tunables.
    pub fn with_tuning(settings: IdentitySettings, tuning: ProviderTuning) -> TokenProvider {
        TokenProvider {
            inner: Arc::new(Inner {
                settings,
                entries: Mutex::new(HashMap::new()),
                key_vault_secret: Mutex::new(None),
                federation_first_refused: Mutex::new(None),
                request_slots: tokio::sync::Semaphore::new(tuning.max_concurrent_requests.max(1)),
                tuning,
            }),
        }
    }

    /// The last failure recorded for a key (cleared by the next success), for status displays.
    pub fn last_error(&self, principal: &Principal, resource: &str) -> Option<TokenError> {
        let entries = lock(&self.inner.entries);
        entries
            .get(&(principal.clone(), resource.to_string()))
            .and_then(|e| lock(&e.state).last_error.clone())
    }

    /// The app's client id.
    pub fn client_id(&self) -> &str {
        &self.inner.settings.client_id
    }

    /// The authority host.
    pub fn authority_host(&self) -> &str {
        &self.inner.settings.authority_host
    }

    /// The app credential kind.
    pub fn app_auth_kind(&self) -> &'static str {
        self.inner.settings.app_auth.kind()
    }

    /// A token for the app in a customer tenant.
    pub async fn app_token(
        &self,
        tenant_id: &str,
        resource: &str,
    ) -> Result<Arc<AccessToken>, TokenError> {
        self.token(
            &Principal::App {
                tenant_id: tenant_id.to_string(),
            },
            resource,
        )
        .await
    }

    /// A token for any principal. Never waits on a refresh while the cached token is valid.
    pub async fn token(
        &self,
        principal: &Principal,
        resource: &str,
    ) -> Result<Arc<AccessToken>, TokenError> {
        self.inner
            .clone()
            .token(principal.clone(), resource.to_string())
            .await
    }

    /// Forgets the cached token (after a data-plane 401 that says the token is no longer good); the
    /// next caller asks the token endpoint at once, whatever backoff was in force.
    pub fn invalidate(&self, principal: &Principal, resource: &str) {
        let entry = self.inner.entry(&(principal.clone(), resource.to_string()));
        let mut st = lock(&entry.state);
        st.token = None;
        st.refresh_at = None;
        st.retry_at = None;
    }

    /// Request and failure counts for a key, if it was ever asked for.
    pub fn stats(&self, principal: &Principal, resource: &str) -> Option<(u64, u64)> {
        let entries = lock(&self.inner.entries);
        entries
            .get(&(principal.clone(), resource.to_string()))
            .map(|e| {
                (
                    e.stats.requests.load(Ordering::Relaxed),
                    e.stats.failures.load(Ordering::Relaxed),
                )
            })
    }

    /// Sum of token requests and failures over every key.
    pub fn totals(&self) -> (u64, u64) {
        let entries = lock(&self.inner.entries);
        entries.values().fold((0, 0), |(r, f), e| {
            (
                r + e.stats.requests.load(Ordering::Relaxed),
                f + e.stats.failures.load(Ordering::Relaxed),
            )
        })
    }
}

impl Inner {
    fn entry(&self, key: &Key) -> Arc<Entry> {
        let mut entries = lock(&self.entries);
        entries.entry(key.clone()).or_default().clone()
    }

    fn token(
        self: Arc<Self>,
        principal: Principal,
        resource: String,
    ) -> BoxFuture<'static, Result<Arc<AccessToken>, TokenError>> {
        Box::pin(async move {
            let key = (principal, resource);
            let entry = self.entry(&key);
            {
                let mut st = lock(&entry.state);
                if let Some(tok) = st.token.clone() {
                    if tok.valid_for(st.min_life.unwrap_or(MIN_LIFE)) {
                        let due = st.refresh_at.is_none_or(|r| SystemTime::now() >= r);
                        let may_retry = st.retry_at.is_none_or(|r| Instant::now() >= r);
                        if due && may_retry && !st.refreshing {
                            st.refreshing = true;
                            let inner = self.clone();
                            let entry = entry.clone();
                            let key = key.clone();
                            tokio::spawn(async move {
                                let _one = entry.fetch.lock().await;
                                let result = inner.clone().fetch(&key, &entry).await;
                                // the outcome is recorded in the entry; nobody waits on it
                                let _ = inner.store(&entry, &key, result, true);
                            });
                        }
                        return Ok(tok);
                    }
                }
            }
            let _one = entry.fetch.lock().await;
            {
                let st = lock(&entry.state);
                if let Some(tok) = st.token.clone() {
                    if tok.valid_for(st.min_life.unwrap_or(MIN_LIFE)) {
                        return Ok(tok);
                    }
                }
                // the server asked for a pause (429/503 with Retry-After): honour it for every caller
                if let (Some(e), Some(at)) = (&st.last_error, st.retry_at) {
                    if e.class() == FailureClass::Transient
                        && e.retry_after().is_some()
                        && Instant::now() < at
                    {
                        return Err(e.clone());
                    }
                }
            }
            let result = self.clone().fetch(&key, &entry).await;
            self.store(&entry, &key, result, false)
        })
    }

    /// Records a fetch result and returns what the caller gets.
    fn store(
        &self,
        entry: &Entry,
        key: &Key,
        result: Result<AccessToken, TokenError>,
        background: bool,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let mut st = lock(&entry.state);
        st.refreshing = false;
        let checked = result.and_then(|tok| {
            check_claims(&tok.claims, key.0.expected_tenant(), &key.1)
                .map(|()| tok)
                .map_err(|e| TokenError::Rejected {
                    tenant_id: key.0.expected_tenant().unwrap_or("<provider>").to_string(),
                    reason: e.to_string(),
                })
        });
        match checked {
            Ok(tok) => {
                let tok = Arc::new(tok);
                let life = tok
                    .expires_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                st.min_life = Some(MIN_LIFE.min(life / 10));
                st.refresh_at = Some(refresh_point(&tok));
                st.token = Some(tok.clone());
                st.retry_at = None;
                st.failures_in_row = 0;
                st.last_error = None;
                if matches!(key.0, Principal::App { .. }) {
                    *lock(&self.federation_first_refused) = None;
                }
                Ok(tok)
            }
            Err(e) => {
                entry.stats.failures.fetch_add(1, Ordering::Relaxed);
                st.failures_in_row = st.failures_in_row.saturating_add(1);
                let backoff = backoff(st.failures_in_row, e.retry_after());
                st.retry_at = Some(Instant::now() + backoff);
                match e.class() {
                    FailureClass::ConsentRevoked | FailureClass::Misconfigured => {
                        // "stop" answers: the cached token must not outlive the refusal
                        st.token = None;
                    }
                    FailureClass::CredentialInvalid | FailureClass::Transient => {}
                }
                st.last_error = Some(e.clone());
                if !background {
                    // a foreground caller gets a still-valid token rather than a transient error
                    if let Some(tok) = st.token.clone() {
                        if tok.valid_for(Duration::ZERO) && e.class() == FailureClass::Transient {
                            return Ok(tok);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    async fn fetch(self: Arc<Self>, key: &Key, entry: &Entry) -> Result<AccessToken, TokenError> {
        let _slot = self
            .request_slots
            .acquire()
            .await
            .map_err(|_| TokenError::CredentialSource("token provider shut down".into()))?;
        entry.stats.requests.fetch_add(1, Ordering::Relaxed);
        let s = &self.settings;
        let (principal, resource) = key;
        match principal {
            Principal::ManagedIdentity { client_id } => {
                request_managed_identity_token(
                    &s.http,
                    &s.managed_identity,
                    resource,
                    client_id.as_deref(),
                )
                .await
            }
            Principal::Workload {
                tenant_id,
                client_id,
                token_file,
            } => {
                let auth = ClientAuth::Assertion(read_assertion_file(token_file)?);
                request_token(
                    &s.http,
                    &TokenRequest {
                        authority_host: &s.authority_host,
                        tenant_id,
                        client_id,
                        resource,
                        auth: &auth,
                    },
                )
                .await
            }
            Principal::App { tenant_id } => {
                let auth = self.clone().client_auth(tenant_id.clone()).await?;
                let result = request_token(
                    &s.http,
                    &TokenRequest {
                        authority_host: &s.authority_host,
                        tenant_id,
                        client_id: &s.client_id,
                        resource,
                        auth: &auth,
                    },
                )
                .await;
                self.after_app_request(result)
            }
        }
    }

    /// Credential bookkeeping after an app token request: forget a fetched secret that was
    /// refused, and treat AADSTS70021 as propagation delay for a while after it first appears.
    fn after_app_request(
        &self,
        result: Result<AccessToken, TokenError>,
    ) -> Result<AccessToken, TokenError> {
        match result {
            Err(TokenError::Entra {
                tenant_id,
                code,
                error,
                summary,
                class: FailureClass::CredentialInvalid,
                retry_after,
            }) => {
                *lock(&self.key_vault_secret) = None;
                let mut class = FailureClass::CredentialInvalid;
                if code == 70021 {
                    let mut first = lock(&self.federation_first_refused);
                    let since = *first.get_or_insert_with(Instant::now);
                    if since.elapsed() < self.tuning.federation_propagation {
                        class = FailureClass::Transient;
                    }
                }
                Err(TokenError::Entra {
                    tenant_id,
                    code,
                    error,
                    summary,
                    class,
                    retry_after,
                })
            }
            other => other,
        }
    }

    fn client_auth(
        self: Arc<Self>,
        tenant_id: String,
    ) -> BoxFuture<'static, Result<ClientAuth, TokenError>> {
        Box::pin(async move {
            let s = &self.settings;
            match &s.app_auth {
                AppAuthMethod::Secret(loc) => Ok(ClientAuth::Secret(loc.read()?)),
                AppAuthMethod::Certificate(cert) => Ok(ClientAuth::Assertion(
                    cert.assertion(&token_endpoint(&s.authority_host, &tenant_id), &s.client_id)?,
                )),
                AppAuthMethod::WorkloadIdentity { token_file } => {
                    Ok(ClientAuth::Assertion(read_assertion_file(token_file)?))
                }
                AppAuthMethod::FederatedManagedIdentity {
                    managed_identity_client_id,
                } => {
                    let tok = self
                        .clone()
                        .token(
                            Principal::ManagedIdentity {
                                client_id: Some(managed_identity_client_id.clone()),
                            },
                            TOKEN_EXCHANGE_RESOURCE.to_string(),
                        )
                        .await?;
                    Ok(ClientAuth::Assertion(tok.secret.clone()))
                }
                AppAuthMethod::KeyVaultSecret {
                    vault_url,
                    name,
                    via,
                } => {
                    if let Some(secret) = lock(&self.key_vault_secret).clone() {
                        return Ok(ClientAuth::Secret(secret));
                    }
                    let tok = self
                        .clone()
                        .token(via.clone(), s.vault_resource.clone())
                        .await?;
                    let secret = fetch_key_vault_secret(&s.http, vault_url, name, &tok).await?;
                    *lock(&self.key_vault_secret) = Some(secret.clone());
                    Ok(ClientAuth::Secret(secret))
                }
            }
        })
    }
}
