//! The app's client secret read from the provider's Key Vault (`key_vault_secret` credential):
//! one `GET {vault}/secrets/{name}` with a provider identity's token.
//!
//! Must not: log or put the secret's value in an error.

use super::error::TokenError;
use super::token::{AccessToken, SecretString};

/// `GET {vault}/secrets/{name}` with a provider token.
pub(super) async fn fetch_key_vault_secret(
    http: &reqwest::Client,
    vault_url: &str,
    name: &str,
    token: &AccessToken,
) -> Result<SecretString, TokenError> {
    let url = format!(
        "{}/secrets/{}?api-version=7.5",
        vault_url.trim_end_matches('/'),
        name
    );
    let resp = http
        .get(&url)
        .header("Authorization", token.bearer())
        .send()
        .await
        .map_err(|e| TokenError::Unavailable {
            endpoint: vault_url.to_string(),
            reason: crate::service_message::describe_reqwest(&e),
            retry_after: None,
        })?;
    let status = resp.status();
    let wait = super::error::retry_after(resp.headers());
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return body
            .get("value")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(SecretString::new)
            .ok_or_else(|| {
                TokenError::CredentialSource(format!("secret {name} in {vault_url} has no value"))
            });
    }
    if status.as_u16() == 429 || status.is_server_error() {
        return Err(TokenError::Unavailable {
            endpoint: vault_url.to_string(),
            reason: format!("HTTP {status}"),
            retry_after: wait,
        });
    }
    let code = body
        .pointer("/error/innererror/code")
        .or_else(|| body.pointer("/error/code"))
        .and_then(|c| c.as_str())
        .unwrap_or("unknown");
    Err(TokenError::CredentialSource(format!(
        "cannot read the app secret {name} from {vault_url}: HTTP {status} {code}; grant the provider identity 'Key Vault Secrets User' on the secret"
    )))
}
