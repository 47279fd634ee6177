//! `KeyVaultClient`: the customer's key in the customer's Key Vault (or Managed HSM), reached
//! with *that tenant's* token: get key, `wrapkey`, `unwrapkey`.
//!
//! Owns: the Key Vault data-plane calls for one configured key, the tenant check of the vault
//! (a 401 challenge naming another tenant is refused, never followed), retries of throttling and
//! service errors, and the classification of refusals into whose action they are
//! ([`KeyFailure`]). Must not: cache content keys (that is `ContentKeyCache`), decide tenant
//! state, or log key material (wrapped or not).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::identity::{FailureClass, Principal, TokenError, TokenProvider};
use crate::retry::RetryPolicy;
use crate::service_message::shorten_message;

/// Key Vault data-plane api-version.
pub const KEY_VAULT_API_VERSION: &str = "7.5";

/// Whose action a key failure is, and so what the tenant's state becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFailure {
    /// The customer disabled or deleted the key, or removed Ferry's permission on it.
    KeyRevoked,
    /// The vault's network rules refuse Ferry (firewall, public access disabled).
    AccessDenied,
    /// The customer withdrew consent for the app in their tenant.
    ConsentRevoked,
    /// The configuration names a vault or key that cannot be right (foreign tenant, bad URL).
    Misconfigured,
    /// Worth retrying later (429, 5xx, timeouts, token endpoint down).
    Transient,
}

/// A refusal or failure answered by the vault.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// `get key`, `wrapkey` or `unwrapkey`.
    pub operation: &'static str,
    /// The key URL.
    pub key: String,
    /// Tenant whose token was used.
    pub tenant_id: String,
    /// HTTP status.
    pub status: u16,
    /// `innererror.code` when present, else `error.code`.
    pub code: String,
    /// The service's message.
    pub message: String,
    /// Whose action it is.
    pub class: KeyFailure,
    /// What to do.
    pub fix: &'static str,
    /// Server-requested wait.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// What the vault said, without the fix (for places that show the fix on its own line).
    pub fn summary(&self) -> String {
        format!(
            "key vault refused {} on {} for tenant {}: {} {} ({})",
            self.operation, self.key, self.tenant_id, self.status, self.code, self.message
        )
    }
}

/// Why a Key Vault call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyVaultError {
    /// The vault refused or failed with an error body.
    #[error("{}; {}", .0.summary(), .0.fix)]
    Refused(Box<Refusal>),
    /// The vault belongs to another tenant than the one configured (401 challenge).
    #[error("key vault of {key} belongs to tenant {vault_tenant}, not to tenant {tenant_id}; refusing to send that tenant's token elsewhere: check the tenant's decrypt key URL")]
    ForeignVault {
        /// The key URL.
        key: String,
        /// Configured tenant.
        tenant_id: String,
        /// The tenant the challenge named.
        vault_tenant: String,
    },
    /// No token for the tenant.
    #[error("no key vault token for tenant {tenant_id}: {source}")]
    Token {
        /// Tenant.
        tenant_id: String,
        /// The token failure.
        source: Box<TokenError>,
    },
    /// The vault could not be reached, or the connection broke.
    #[error("key vault {key} unreachable for tenant {tenant_id}: {reason}")]
    Unreachable {
        /// The key URL.
        key: String,
        /// Tenant.
        tenant_id: String,
        /// What happened.
        reason: String,
        /// No connection could be made at all (refused, no route, DNS): the vault's endpoint
        /// is gone from Ferry's network, as when its private endpoint was removed; not a busy
        /// vault or a connection that broke.
        no_connection: bool,
    },
    /// A success answer that is not what the contract says.
    #[error("key vault answer for {operation} on {key} is malformed: {reason}")]
    Malformed {
        /// The operation.
        operation: &'static str,
        /// The key URL.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The configured key URL is not `https://<vault>/keys/<name>`.
    #[error("decrypt key {key} is not https://<vault>/keys/<name>[/<version>]; fix the source's decrypt.key")]
    BadKeyUrl {
        /// The value.
        key: String,
    },
}

impl KeyVaultError {
    /// Whose action it is.
    pub fn class(&self) -> KeyFailure {
        match self {
            KeyVaultError::Refused(r) => r.class,
            KeyVaultError::ForeignVault { .. } | KeyVaultError::BadKeyUrl { .. } => {
                KeyFailure::Misconfigured
            }
            KeyVaultError::Token { source, .. } => match source.class() {
                FailureClass::ConsentRevoked => KeyFailure::ConsentRevoked,
                FailureClass::Transient => KeyFailure::Transient,
                FailureClass::CredentialInvalid | FailureClass::Misconfigured => {
                    KeyFailure::Misconfigured
                }
            },
            KeyVaultError::Unreachable { .. } | KeyVaultError::Malformed { .. } => {
                KeyFailure::Transient
            }
        }
    }

    /// The server-requested wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            KeyVaultError::Refused(r) => r.retry_after,
            KeyVaultError::Token { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

/// Classifies a Key Vault error answer (status, `error.code`, `innererror.code`).
pub fn classify(status: u16, code: &str, inner: &str) -> (KeyFailure, &'static str) {
    const REVOKED: &str = "the customer disabled or deleted the key, or removed Ferry's permission on it (get and unwrapKey; wrapKey too where objects are kept under their key): they must restore it; Ferry resumes by itself";
    match (status, inner, code) {
        (429, ..) | (500..=599, ..) => (KeyFailure::Transient, "retried with backoff"),
        (403, "ForbiddenByFirewall" | "ForbiddenByConnection", _) => (
            KeyFailure::AccessDenied,
            "the vault's network rules refuse Ferry: the customer must allow Ferry's address or private endpoint",
        ),
        (403, ..) | (404, ..) => (KeyFailure::KeyRevoked, REVOKED),
        (401, ..) => (
            KeyFailure::ConsentRevoked,
            "the vault refused the tenant's token: check the app's consent in the customer's tenant",
        ),
        _ => (
            KeyFailure::Misconfigured,
            "check the decrypt key URL, the key type and the wrap algorithm",
        ),
    }
}

/// A key as `GET /keys/{name}` returns it (public parts only).
#[derive(Debug, Clone, Deserialize)]
pub struct KeyBundle {
    /// The JSON web key.
    pub key: JsonWebKey,
    /// Attributes.
    #[serde(default)]
    pub attributes: KeyAttributes,
}

/// Public JWK fields.
#[derive(Debug, Clone, Deserialize)]
pub struct JsonWebKey {
    /// Full versioned key id.
    pub kid: String,
    /// `RSA`, `RSA-HSM`, `oct-HSM`, ...
    pub kty: String,
    /// Permitted operations.
    #[serde(default)]
    pub key_ops: Vec<String>,
    /// RSA modulus (base64url).
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent (base64url).
    #[serde(default)]
    pub e: Option<String>,
}

/// Key attributes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct KeyAttributes {
    /// False when the customer disabled the key.
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Deserialize)]
struct KeyOperationResult {
    kid: String,
    value: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    innererror: Option<Box<ErrorDetail>>,
}

/// The configured key split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyLocation {
    /// `https://<host>` without a trailing slash.
    vault: String,
    /// Lower-cased vault host.
    host: String,
    /// Key name.
    name: String,
}

fn key_location(key_url: &str) -> Option<KeyLocation> {
    let url = url::Url::parse(key_url).ok()?;
    if url.scheme() != "https" || url.query().is_some() || !url.username().is_empty() {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let name = match segments.as_slice() {
        ["keys", name] | ["keys", name, _] => (*name).to_string(),
        _ => return None,
    };
    let vault = match url.port() {
        Some(p) if p != 443 => format!("https://{host}:{p}"),
        _ => format!("https://{host}"),
    };
    Some(KeyLocation { vault, host, name })
}

/// The version segment of a key id that `key_id_matches` accepted (None: unversioned).
fn version_of(key_id: &str) -> Option<String> {
    let url = url::Url::parse(key_id).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["keys", _, v] => Some((*v).to_string()),
        _ => None,
    }
}

/// Parses `Bearer authorization="https://login.../{tenant}", resource="..."`: (tenant, resource).
pub fn parse_challenge(value: &str) -> (Option<String>, Option<String>) {
    let mut tenant = None;
    let mut resource = None;
    let rest = value.trim();
    let rest = rest
        .strip_prefix("Bearer")
        .or_else(|| rest.strip_prefix("bearer"))
        .unwrap_or(rest);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "authorization" | "authorization_uri" => {
                tenant = url::Url::parse(v).ok().and_then(|u| {
                    u.path_segments()
                        .and_then(|mut s| s.next().map(str::to_string))
                        .filter(|s| !s.is_empty())
                });
            }
            "resource" => resource = Some(v.to_string()),
            "scope" if resource.is_none() => {
                resource = Some(v.trim_end_matches("/.default").to_string())
            }
            _ => {}
        }
    }
    (tenant, resource)
}

/// One configured key of one customer tenant.
#[derive(Debug, Clone)]
pub struct KeyVaultClient {
    http: reqwest::Client,
    tokens: TokenProvider,
    tenant_id: String,
    key_url: String,
    location: KeyLocation,
    resource: String,
    policy: RetryPolicy,
}

impl KeyVaultClient {
    /// A client for `key_url` (`https://<vault>/keys/<name>`) in `tenant_id`. Managed HSM hosts
    /// (`*.managedhsm.*`) use `managed_hsm_resource`, vaults `vault_resource`.
    pub fn new(
        http: reqwest::Client,
        tokens: TokenProvider,
        tenant_id: &str,
        key_url: &str,
        vault_resource: &str,
        managed_hsm_resource: &str,
    ) -> Result<KeyVaultClient, KeyVaultError> {
        let location = key_location(key_url).ok_or_else(|| KeyVaultError::BadKeyUrl {
            key: key_url.to_string(),
        })?;
        let resource = if location.host.contains(".managedhsm.") {
            managed_hsm_resource
        } else {
            vault_resource
        };
        Ok(KeyVaultClient {
            http,
            tokens,
            tenant_id: tenant_id.to_string(),
            key_url: key_url.trim_end_matches('/').to_string(),
            location,
            resource: resource.trim_end_matches('/').to_string(),
            policy: RetryPolicy {
                max_attempts: 4,
                base: Duration::from_millis(200),
                cap: Duration::from_secs(10),
            },
        })
    }

    /// With another retry policy (tests).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The configured key URL.
    pub fn key_url(&self) -> &str {
        &self.key_url
    }

    /// The tenant whose token is used.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// `GET {vault}/keys/{name}` (current version).
    pub async fn get_key(&self) -> Result<KeyBundle, KeyVaultError> {
        let url = format!(
            "{}/keys/{}?api-version={KEY_VAULT_API_VERSION}",
            self.location.vault, self.location.name
        );
        let body = self
            .call("get key", reqwest::Method::GET, &url, None)
            .await?;
        serde_json::from_slice(&body).map_err(|e| self.malformed("get key", e.to_string()))
    }

    /// Wraps `value` with the key's current version; returns (versioned kid, wrapped bytes).
    pub async fn wrap_key(
        &self,
        alg: &str,
        value: &[u8],
    ) -> Result<(String, Vec<u8>), KeyVaultError> {
        let url = format!(
            "{}/keys/{}/wrapkey?api-version={KEY_VAULT_API_VERSION}",
            self.location.vault, self.location.name
        );
        let body = serde_json::json!({"alg": alg, "value": URL_SAFE_NO_PAD.encode(value)});
        let out = self
            .call("wrapkey", reqwest::Method::POST, &url, Some(&body))
            .await?;
        let r: KeyOperationResult =
            serde_json::from_slice(&out).map_err(|e| self.malformed("wrapkey", e.to_string()))?;
        let wrapped = URL_SAFE_NO_PAD
            .decode(r.value.trim_end_matches('='))
            .map_err(|e| self.malformed("wrapkey", e.to_string()))?;
        Ok((r.kid, wrapped))
    }

    /// Unwraps `value` with the version named by `key_id` (which the caller checked is a version
    /// of the configured key). The request goes to the configured vault, never to a host taken
    /// from blob metadata.
    pub async fn unwrap_key(
        &self,
        key_id: &str,
        alg: &str,
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyVaultError> {
        let version = version_of(key_id)
            .map(|v| format!("/{v}"))
            .unwrap_or_default();
        let url = format!(
            "{}/keys/{}{version}/unwrapkey?api-version={KEY_VAULT_API_VERSION}",
            self.location.vault, self.location.name
        );
        let body = serde_json::json!({"alg": alg, "value": URL_SAFE_NO_PAD.encode(value)});
        let out = Zeroizing::new(
            self.call("unwrapkey", reqwest::Method::POST, &url, Some(&body))
                .await?,
        );
        let r: KeyOperationResult = serde_json::from_slice(&out)
            .map_err(|_| self.malformed("unwrapkey", "not the documented json".into()))?;
        let value = Zeroizing::new(r.value);
        let _ = r.kid;
        URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .map(Zeroizing::new)
            .map_err(|_| self.malformed("unwrapkey", "value is not base64url".into()))
    }

    fn malformed(&self, operation: &'static str, reason: String) -> KeyVaultError {
        KeyVaultError::Malformed {
            operation,
            key: self.key_url.clone(),
            reason,
        }
    }

    /// One call with retries of transient failures.
    async fn call(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, KeyVaultError> {
        let mut attempt = 1;
        loop {
            match self.call_once(operation, method.clone(), url, body).await {
                Err(e)
                    if e.class() == KeyFailure::Transient && attempt < self.policy.max_attempts =>
                {
                    tokio::time::sleep(self.policy.delay(attempt, e.retry_after())).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn call_once(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Vec<u8>, KeyVaultError> {
        let mut refreshed = false;
        loop {
            let token = self
                .tokens
                .app_token(&self.tenant_id, &self.resource)
                .await
                .map_err(|source| KeyVaultError::Token {
                    tenant_id: self.tenant_id.clone(),
                    source: Box::new(source),
                })?;
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(reqwest::header::AUTHORIZATION, token.bearer());
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| KeyVaultError::Unreachable {
                key: self.key_url.clone(),
                tenant_id: self.tenant_id.clone(),
                reason: crate::service_message::describe_reqwest(&e),
                no_connection: e.is_connect(),
            })?;
            let status = resp.status().as_u16();
            let retry_after = crate::identity::retry_after(resp.headers());
            let challenge = resp
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = resp.bytes().await.map_err(|e| KeyVaultError::Unreachable {
                key: self.key_url.clone(),
                tenant_id: self.tenant_id.clone(),
                reason: crate::service_message::describe_reqwest(&e),
                no_connection: false,
            })?;
            if (200..300).contains(&status) {
                return Ok(bytes.to_vec());
            }
            if status == 401 {
                let (vault_tenant, _) = challenge
                    .as_deref()
                    .map(parse_challenge)
                    .unwrap_or_default();
                if let Some(vt) = vault_tenant {
                    if !vt.eq_ignore_ascii_case(&self.tenant_id) {
                        return Err(KeyVaultError::ForeignVault {
                            key: self.key_url.clone(),
                            tenant_id: self.tenant_id.clone(),
                            vault_tenant: vt,
                        });
                    }
                }
                if !refreshed {
                    // the token may have expired or been revoked: get a fresh one once
                    refreshed = true;
                    self.tokens.invalidate(
                        &Principal::App {
                            tenant_id: self.tenant_id.clone(),
                        },
                        &self.resource,
                    );
                    continue;
                }
            }
            let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let inner = parsed
                .error
                .innererror
                .as_ref()
                .map(|i| i.code.clone())
                .unwrap_or_default();
            let (class, fix) = classify(status, &parsed.error.code, &inner);
            let code = if inner.is_empty() {
                parsed.error.code.clone()
            } else {
                inner
            };
            let message = shorten_message(&parsed.error.message, 300);
            return Err(KeyVaultError::Refused(Box::new(Refusal {
                operation,
                key: self.key_url.clone(),
                tenant_id: self.tenant_id.clone(),
                status,
                code,
                message,
                class,
                fix,
                retry_after,
            })));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_whose_action_they_are() {
        assert_eq!(
            classify(403, "Forbidden", "ForbiddenByPolicy").0,
            KeyFailure::KeyRevoked
        );
        assert_eq!(
            classify(403, "Forbidden", "ForbiddenByRbac").0,
            KeyFailure::KeyRevoked
        );
        assert_eq!(
            classify(403, "Forbidden", "KeyDisabled").0,
            KeyFailure::KeyRevoked
        );
        assert_eq!(classify(404, "KeyNotFound", "").0, KeyFailure::KeyRevoked);
        assert_eq!(
            classify(403, "Forbidden", "ForbiddenByFirewall").0,
            KeyFailure::AccessDenied
        );
        assert_eq!(
            classify(403, "Forbidden", "ForbiddenByConnection").0,
            KeyFailure::AccessDenied
        );
        assert_eq!(classify(429, "Throttled", "").0, KeyFailure::Transient);
        assert_eq!(classify(503, "", "").0, KeyFailure::Transient);
        assert_eq!(
            classify(400, "BadParameter", "").0,
            KeyFailure::Misconfigured
        );
    }

    #[test]
    fn challenges_name_the_tenant_and_resource() {
        let (t, r) = parse_challenge(
            "Bearer authorization=\"https://login.sandbox.test/3333\", resource=\"https://vault.sandbox.test\"",
        );
        assert_eq!(t.as_deref(), Some("3333"));
        assert_eq!(r.as_deref(), Some("https://vault.sandbox.test"));
        let (t, r) = parse_challenge("Bearer authorization_uri=\"https://login.windows.net/abc\", scope=\"https://vault.azure.net/.default\"");
        assert_eq!(t.as_deref(), Some("abc"));
        assert_eq!(r.as_deref(), Some("https://vault.azure.net"));
        assert_eq!(parse_challenge("garbage"), (None, None));
    }

    #[test]
    fn key_urls_are_split_and_versions_found() {
        let l = key_location("https://Contoso-KV.vault.sandbox.test/keys/ferry-cmk").unwrap();
        assert_eq!(l.vault, "https://contoso-kv.vault.sandbox.test");
        assert_eq!(l.name, "ferry-cmk");
        assert!(key_location("http://x.vault.azure.net/keys/k").is_none());
        assert!(key_location("https://x.vault.azure.net/secrets/k").is_none());
        assert!(key_location("not a url").is_none());
        assert_eq!(
            version_of("https://x.vault.azure.net/keys/k/abc123").as_deref(),
            Some("abc123")
        );
        assert_eq!(version_of("https://x.vault.azure.net/keys/k"), None);
    }
}
