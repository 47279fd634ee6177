//! Token failures, classified by whose problem they are and what the tenant's state becomes.
//!
//! Owns: the mapping from AADSTS codes and HTTP statuses to a `FailureClass`. Must not: decide
//! retries for the pipeline (it only says whether a retry can help).

use std::time::Duration;

/// What a failure means for a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The customer withdrew consent or never gave it; the customer's admin must consent.
    ConsentRevoked,
    /// The provider's own app credential is wrong or expired: affects every tenant.
    CredentialInvalid,
    /// The configuration names something that does not exist (tenant not found, ...).
    Misconfigured,
    /// Worth retrying later (5xx, 429, timeouts, connection errors).
    Transient,
}

impl FailureClass {
    /// The name used in logs, metrics and `ferry status`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::ConsentRevoked => "consent_revoked",
            FailureClass::CredentialInvalid => "credential_invalid",
            FailureClass::Misconfigured => "misconfigured",
            FailureClass::Transient => "transient",
        }
    }
}

/// Classifies an Entra error code (the number after `AADSTS`).
pub fn classify_aadsts(code: u64) -> FailureClass {
    match code {
        // app not found in the tenant, service principal missing, app disabled
        700016 | 7000229 | 7000112 => FailureClass::ConsentRevoked,
        // invalid or expired secret, assertion signature/time, no federated record,
        // assertion missing or malformed, certificate unknown
        7000215 | 7000222 | 700027 | 700024 | 70021 | 700021 | 7000218 | 50012 | 700023 | 50027
        | 700025 | 7000274 | 70002 | 7000232 => FailureClass::CredentialInvalid,
        // tenant not found, tenant id malformed, resource not found in tenant
        90002 | 900023 | 500011 | 90013 => FailureClass::Misconfigured,
        // throttling / service errors reported with a code
        50196 | 90033 | 50076 => FailureClass::Transient,
        _ => FailureClass::Misconfigured,
    }
}

/// Why a token could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// Entra refused with an AADSTS code.
    #[error(
        "entra refused the token request for tenant {tenant_id}: AADSTS{code} ({error}): {summary}"
    )]
    Entra {
        /// Tenant asked.
        tenant_id: String,
        /// The AADSTS number.
        code: u64,
        /// The OAuth `error` value.
        error: String,
        /// First line of `error_description`, without trace ids.
        summary: String,
        /// Its class.
        class: FailureClass,
        /// Server-requested wait, if any.
        retry_after: Option<Duration>,
    },
    /// The token endpoint or managed identity endpoint could not be reached or failed.
    #[error("token endpoint {endpoint} unavailable: {reason}")]
    Unavailable {
        /// The endpoint (no secrets).
        endpoint: String,
        /// What happened.
        reason: String,
        /// Server-requested wait, if any.
        retry_after: Option<Duration>,
    },
    /// The managed identity endpoint refused.
    #[error("managed identity endpoint {endpoint} refused ({status}): {reason}; check the identity is assigned to this host and the client id is right")]
    ManagedIdentity {
        /// The endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// Its message.
        reason: String,
    },
    /// The app credential could not be loaded (file missing, bad PEM, env var unset...).
    #[error("cannot load the app credential: {0}")]
    CredentialSource(String),
    /// A token arrived but is for another tenant or resource.
    #[error("token for tenant {tenant_id} refused before use: {reason}")]
    Rejected {
        /// Configured tenant.
        tenant_id: String,
        /// The failed check.
        reason: String,
    },
}

impl TokenError {
    /// The failure class.
    pub fn class(&self) -> FailureClass {
        match self {
            TokenError::Entra { class, .. } => *class,
            TokenError::Unavailable { .. } => FailureClass::Transient,
            TokenError::ManagedIdentity { status, .. } if *status >= 500 || *status == 429 => {
                FailureClass::Transient
            }
            TokenError::ManagedIdentity { .. } => FailureClass::CredentialInvalid,
            TokenError::CredentialSource(_) => FailureClass::CredentialInvalid,
            TokenError::Rejected { .. } => FailureClass::Misconfigured,
        }
    }

    /// The AADSTS code, if Entra gave one.
    pub fn aadsts(&self) -> Option<u64> {
        match self {
            TokenError::Entra { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// How long the server asked to wait.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenError::Entra { retry_after, .. } | TokenError::Unavailable { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// What a person should do, in words, naming the step that works on real Azure (empty for
    /// an answer from Entra ID that is only busy, which needs nothing but time; for an endpoint
    /// that gives no token at all, [`TOKEN_UNAVAILABLE_FIX`]).
    pub fn fix(&self, consent_url: &str) -> String {
        let tenant = match self {
            TokenError::Entra { tenant_id, .. } | TokenError::Rejected { tenant_id, .. } => {
                tenant_id.as_str()
            }
            _ => "the tenant",
        };
        match self {
            TokenError::Rejected { .. } => {
                return format!(
                    "the token did not come from the configured tenant or resource: check tenant_id {tenant} in the config against the customer's directory (Entra ID > Overview > Tenant ID)"
                )
            }
            TokenError::ManagedIdentity { .. } if self.class() != FailureClass::Transient => {
                return "the provider's managed identity cannot get a token: assign the user-assigned identity to this host (VM, App Service or AKS) and check its client id in the config".into()
            }
            TokenError::Unavailable { .. } => return TOKEN_UNAVAILABLE_FIX.into(),
            TokenError::CredentialSource(_) => {
                return "the app credential cannot be loaded on this host: fix the file, variable or vault secret that [app].credential names (this affects every tenant)".into()
            }
            _ => {}
        }
        match self.class() {
            FailureClass::ConsentRevoked => match self.aadsts() {
                Some(7000229) => format!(
                    "service principal missing: the app's service principal was deleted from tenant {tenant}; the customer's admin must open {consent_url} to create it again"
                ),
                Some(7000112) => format!(
                    "app disabled: the app is disabled for tenant {tenant}; the customer's admin must set 'Enabled for users to sign-in' to Yes on the app's enterprise application (or the provider must re-enable its app registration), then consent again at {consent_url} if asked"
                ),
                _ => format!(
                    "consent missing: the customer's admin must open {consent_url} and grant admin consent to the app"
                ),
            },
            FailureClass::CredentialInvalid => match self.aadsts() {
                Some(7000215) => "client secret invalid: put the secret's value (not its id) where [app].credential points; this affects every tenant".into(),
                Some(7000222) => "client secret expired: add a new client secret to the app registration (Certificates & secrets), store its value where [app].credential points; this affects every tenant".into(),
                Some(700027) => "client assertion not accepted: with a certificate credential, upload the certificate in [app].credential to the app registration (Certificates & secrets) or point [app].credential at the registered one; with a federated credential, check the identity's issuer; this affects every tenant".into(),
                Some(700021) => "client assertion names another app: its iss and sub must be the app's client id; check app.client_id against the certificate's app registration".into(),
                Some(700024) => "client assertion outside its time window: check this host's clock (NTP); this affects every tenant".into(),
                Some(70021) => "federated credential missing: add a federated credential to the app registration with issuer https://login.microsoftonline.com/<provider tenant>/v2.0, subject = the managed identity's object id, audience api://AzureADTokenExchange (allow a few minutes to propagate)".into(),
                _ => "the provider's app credential is not accepted: fix [app].credential (this affects every tenant)".into(),
            },
            FailureClass::Misconfigured => match self.aadsts() {
                Some(90002) | Some(900023) => format!(
                    "tenant not found: tenant_id {tenant} does not exist in this cloud; check tenant_id and agent.cloud in the config"
                ),
                Some(500011) => "resource not found in the tenant: check agent.cloud / custom_cloud resources in the config".into(),
                _ => "check the tenant's settings in the config".into(),
            },
            FailureClass::Transient => String::new(),
        }
    }
}

/// What to do when the token endpoint (Entra ID or the managed identity endpoint) gives no token
/// at all: one text for `ferry check` and for a tenant's status in the daemon.
pub const TOKEN_UNAVAILABLE_FIX: &str = "no token from the token endpoint named in the error; if that lasts, check this host's outbound HTTPS to the authority host of agent.cloud (every tenant needs it) and, with a managed identity credential, that the identity endpoint answers";

/// Parses `Retry-After` (seconds or HTTP date) and `x-ms-retry-after-ms`.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("x-ms-retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(Duration::from_millis(ms));
    }
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_codes_map_to_states() {
        for c in [700016, 7000229, 7000112] {
            assert_eq!(classify_aadsts(c), FailureClass::ConsentRevoked, "{c}");
        }
        for c in [7000215, 7000222, 700027, 700024, 70021] {
            assert_eq!(classify_aadsts(c), FailureClass::CredentialInvalid, "{c}");
        }
        assert_eq!(classify_aadsts(90002), FailureClass::Misconfigured);
    }

    fn entra(code: u64) -> TokenError {
        TokenError::Entra {
            tenant_id: "t1".into(),
            code,
            error: "invalid_client".into(),
            summary: "s".into(),
            class: classify_aadsts(code),
            retry_after: None,
        }
    }

    #[test]
    fn every_contract_code_has_its_own_fix() {
        let url = "https://login.microsoftonline.com/t1/adminconsent?client_id=a";
        let cases = [
            (700016, "consent missing"),
            (7000229, "service principal missing"),
            (7000112, "app disabled"),
            (7000215, "client secret invalid"),
            (7000222, "client secret expired"),
            (700027, "client assertion not accepted"),
            (700024, "clock"),
            (70021, "federated credential missing"),
            (90002, "tenant not found"),
        ];
        for (code, needle) in cases {
            let fix = entra(code).fix(url);
            assert!(fix.contains(needle), "{code}: {fix}");
        }
        assert!(entra(700016).fix(url).contains(url));
        assert!(entra(7000229).fix(url).contains(url));
        let unavailable = TokenError::Unavailable {
            endpoint: "e".into(),
            reason: "r".into(),
            retry_after: None,
        };
        assert_eq!(unavailable.fix(url), TOKEN_UNAVAILABLE_FIX);
        let rejected = TokenError::Rejected {
            tenant_id: "t1".into(),
            reason: "r".into(),
        };
        assert!(rejected.fix(url).contains("check tenant_id t1"));
    }

    #[test]
    fn retry_after_forms() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("x-ms-retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }
}
