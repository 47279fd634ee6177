//! The provider's own identity: managed identity in its IMDS and App Service shapes.
//!
//! Owns: one token request to the managed identity endpoint. Must not: cache (the token cache
//! does), or ever be used for a customer tenant (a managed identity lives in the provider tenant).

use std::time::{Duration, SystemTime};

use super::entra::seconds_value;
use super::error::TokenError;
use super::token::{decode_claims, AccessToken, SecretString};
use crate::service_message::describe_reqwest;

/// Where and how the managed identity endpoint is called.
#[derive(Debug, Clone)]
pub enum ManagedIdentityEndpoint {
    /// VM IMDS: `Metadata: true`, api-version 2018-02-01.
    Imds {
        /// Full token URL.
        url: String,
    },
    /// App Service / Functions / Container Apps: `X-IDENTITY-HEADER`, api-version 2019-08-01.
    AppService {
        /// Full token URL (`IDENTITY_ENDPOINT`).
        url: String,
        /// `IDENTITY_HEADER`.
        header: SecretString,
    },
}

impl ManagedIdentityEndpoint {
    /// From the process environment: App Service variables when present, else IMDS.
    pub fn from_environment() -> ManagedIdentityEndpoint {
        match (
            std::env::var("IDENTITY_ENDPOINT"),
            std::env::var("IDENTITY_HEADER"),
        ) {
            (Ok(url), Ok(header)) if !url.is_empty() => ManagedIdentityEndpoint::AppService {
                url,
                header: SecretString::new(header),
            },
            _ => ManagedIdentityEndpoint::Imds {
                url: "http://169.254.169.254/metadata/identity/oauth2/token".into(),
            },
        }
    }

    fn url(&self) -> &str {
        match self {
            ManagedIdentityEndpoint::Imds { url }
            | ManagedIdentityEndpoint::AppService { url, .. } => url,
        }
    }
}

#[derive(serde::Deserialize)]
struct MiResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

/// Asks the managed identity endpoint for a token for `resource`.
pub async fn request_managed_identity_token(
    http: &reqwest::Client,
    endpoint: &ManagedIdentityEndpoint,
    resource: &str,
    client_id: Option<&str>,
) -> Result<AccessToken, TokenError> {
    let url = endpoint.url().to_string();
    let mut query: Vec<(&str, &str)> = vec![("resource", resource)];
    let req = match endpoint {
        ManagedIdentityEndpoint::Imds { .. } => {
            query.push(("api-version", "2018-02-01"));
            http.get(&url).header("Metadata", "true")
        }
        ManagedIdentityEndpoint::AppService { header, .. } => {
            query.push(("api-version", "2019-08-01"));
            http.get(&url).header("X-IDENTITY-HEADER", header.expose())
        }
    };
    if let Some(id) = client_id {
        query.push(("client_id", id));
    }
    let resp = req
        .query(&query)
        .send()
        .await
        .map_err(|e| TokenError::Unavailable {
            endpoint: url.clone(),
            reason: describe_reqwest(&e),
            retry_after: None,
        })?;
    let status = resp.status();
    let wait = super::error::retry_after(resp.headers());
    let body = resp.bytes().await.map_err(|e| TokenError::Unavailable {
        endpoint: url.clone(),
        reason: describe_reqwest(&e),
        retry_after: wait,
    })?;
    if !status.is_success() {
        if status.as_u16() == 429 || status.is_server_error() {
            return Err(TokenError::Unavailable {
                endpoint: url,
                reason: format!("HTTP {status}"),
                retry_after: wait,
            });
        }
        let reason = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("error_description")
                    .or_else(|| v.get("message"))
                    .or_else(|| v.get("error"))
                    .and_then(|m| m.as_str().map(str::to_string))
            })
            .unwrap_or_else(|| "no error description".into());
        return Err(TokenError::ManagedIdentity {
            endpoint: url,
            status: status.as_u16(),
            reason,
        });
    }
    let ok: MiResponse = serde_json::from_slice(&body).map_err(|e| TokenError::Unavailable {
        endpoint: url.clone(),
        reason: format!("unreadable managed identity response: {e}"),
        retry_after: None,
    })?;
    let now = SystemTime::now();
    let expires_at = match ok.expires_in.as_ref().and_then(seconds_value) {
        Some(s) => now + Duration::from_secs(s),
        None => match ok.expires_on.as_ref().and_then(seconds_value) {
            Some(on) => std::time::UNIX_EPOCH + Duration::from_secs(on),
            None => now + Duration::from_secs(3600),
        },
    };
    let claims = decode_claims(&ok.access_token).map_err(|e| TokenError::Rejected {
        tenant_id: "<provider>".into(),
        reason: e.to_string(),
    })?;
    Ok(AccessToken {
        secret: SecretString::new(ok.access_token),
        expires_at,
        claims,
    })
}
