//! The Entra ID v2 token endpoint, called directly with reqwest.
//!
//! `azure_identity` hides the AADSTS code behind an opaque credential error and retries on its own
//! schedule; Ferry needs the code to turn a refusal into a tenant state, and its own retry policy,
//! so the client-credentials call is made here (contracts page, section 1).
//!
//! Owns: one token request and the parsing of its answer. Must not: cache, or log the form body.

use std::time::{Duration, SystemTime};

use crate::service_message::{describe_reqwest, shorten_message};

use super::error::{classify_aadsts, retry_after, FailureClass, TokenError};
use super::token::{decode_claims, AccessToken, SecretString};

/// How the app proves itself in one request.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// `client_secret=...`
    Secret(SecretString),
    /// `client_assertion=<JWT>` (certificate, federated managed identity, workload identity).
    Assertion(SecretString),
}

/// One client-credentials request.
#[derive(Debug)]
pub struct TokenRequest<'a> {
    /// e.g. `https://login.microsoftonline.com`.
    pub authority_host: &'a str,
    /// Tenant id to ask.
    pub tenant_id: &'a str,
    /// The app's client id.
    pub client_id: &'a str,
    /// Resource, without `/.default`.
    pub resource: &'a str,
    /// Credential.
    pub auth: &'a ClientAuth,
}

/// The token endpoint URL for a tenant.
pub fn token_endpoint(authority_host: &str, tenant_id: &str) -> String {
    format!(
        "{}/{}/oauth2/v2.0/token",
        authority_host.trim_end_matches('/'),
        tenant_id
    )
}

/// The `.default` scope of a resource.
pub fn default_scope(resource: &str) -> String {
    format!("{}/.default", resource.trim_end_matches('/'))
}

#[derive(serde::Deserialize)]
struct Success {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Failure {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// Parses `expires_in` given as a number or a string.
pub(crate) fn seconds_value(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Sends one request. No retry here.
pub async fn request_token(
    http: &reqwest::Client,
    req: &TokenRequest<'_>,
) -> Result<AccessToken, TokenError> {
    let url = token_endpoint(req.authority_host, req.tenant_id);
    let scope = default_scope(req.resource);
    let mut form: Vec<(&str, &str)> = vec![
        ("client_id", req.client_id),
        ("scope", &scope),
        ("grant_type", "client_credentials"),
    ];
    match req.auth {
        ClientAuth::Secret(s) => form.push(("client_secret", s.expose())),
        ClientAuth::Assertion(a) => {
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ));
            form.push(("client_assertion", a.expose()));
        }
    }
    let resp = http
        .post(&url)
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenError::Unavailable {
            endpoint: url.clone(),
            reason: describe_reqwest(&e),
            retry_after: None,
        })?;
    let status = resp.status();
    let wait = retry_after(resp.headers());
    let body = resp.bytes().await.map_err(|e| TokenError::Unavailable {
        endpoint: url.clone(),
        reason: describe_reqwest(&e),
        retry_after: wait,
    })?;
    if status.is_success() {
        let ok: Success = serde_json::from_slice(&body).map_err(|e| TokenError::Unavailable {
            endpoint: url.clone(),
            reason: format!("unreadable token response: {e}"),
            retry_after: None,
        })?;
        let expires_in = ok
            .expires_in
            .as_ref()
            .and_then(seconds_value)
            .unwrap_or(3599);
        let claims = decode_claims(&ok.access_token).map_err(|e| TokenError::Rejected {
            tenant_id: req.tenant_id.to_string(),
            reason: e.to_string(),
        })?;
        return Ok(AccessToken {
            secret: SecretString::new(ok.access_token),
            expires_at: SystemTime::now() + Duration::from_secs(expires_in),
            claims,
        });
    }
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(TokenError::Unavailable {
            endpoint: url,
            reason: format!("HTTP {status}"),
            retry_after: wait,
        });
    }
    match serde_json::from_slice::<Failure>(&body) {
        Ok(f) if !f.error_codes.is_empty() || !f.error.is_empty() => {
            let code = f.error_codes.first().copied().unwrap_or(0);
            let class = if code == 0 {
                if f.error == "invalid_client" {
                    FailureClass::CredentialInvalid
                } else {
                    FailureClass::Misconfigured
                }
            } else {
                classify_aadsts(code)
            };
            Err(TokenError::Entra {
                tenant_id: req.tenant_id.to_string(),
                code,
                error: f.error,
                summary: summary_line(&f.error_description),
                class,
                retry_after: wait,
            })
        }
        _ => Err(TokenError::Unavailable {
            endpoint: url,
            reason: format!("HTTP {status} without an OAuth error body"),
            retry_after: wait,
        }),
    }
}

/// The first line of an `error_description`, without the `AADSTSnnn: ` prefix and trace ids.
fn summary_line(description: &str) -> String {
    let first = description.lines().next().unwrap_or("").trim();
    let first = match first.split_once(": ") {
        Some((prefix, rest)) if prefix.starts_with("AADSTS") => rest,
        _ => first,
    };
    // the first sentence names the problem; the rest is advice written for interactive sign-ins
    let sentence = match first.find(". ") {
        Some(i) => &first[..=i],
        None => first,
    };
    shorten_message(sentence, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_strips_code_and_trace() {
        let d =
            "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y";
        assert_eq!(summary_line(d), "Invalid client secret provided.");
        let d = "AADSTS700016: Application with identifier 'a' was not found in the directory 'fabrikam'. This can happen if the application has not been installed.\r\nTrace ID: x";
        assert_eq!(
            summary_line(d),
            "Application with identifier 'a' was not found in the directory 'fabrikam'."
        );
        assert!(summary_line(&"x".repeat(400)).ends_with("..."));
    }

    #[test]
    fn scope_and_endpoint() {
        assert_eq!(
            default_scope("https://storage.azure.com/"),
            "https://storage.azure.com/.default"
        );
        assert_eq!(
            token_endpoint("https://login.sandbox.test/", "t"),
            "https://login.sandbox.test/t/oauth2/v2.0/token"
        );
    }
}
