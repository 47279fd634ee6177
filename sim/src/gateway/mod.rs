//! The storage gateway: `{account}.blob.<suffix>` hosts, in front of Azurite.
//!
//! For each request it checks the bearer token with the sim's verifier (`aud`
//! `https://storage.azure.com` or the account URL), that the token's tenant owns the account
//! (else `403 AuthenticationFailed`) and the blob data role assignments held in the sim (else
//! `403 AuthorizationPermissionMismatch`), in Azure's XML error shape; then proxies path-style to
//! Azurite, streaming both ways. Faults are applied by `server` before this module runs.
//! It must not buffer bodies or rewrite what Azurite answers.
//!
//! - `roles`: accounts, role assignments, the allow decision.
//! - `proxy`: the streaming forwarder.
//! - `errors`: XML error answers.
//! - `admin`: `/admin/storage-accounts`, `/admin/role-assignments`.

mod admin;
mod errors;
mod proxy;
mod roles;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Response, StatusCode};
use axum::Router;

use crate::jwt::{verify_access_token, AccessTokenError, JwtError};
use crate::keyvault::Caller;
use crate::state::{lock, SimState};

pub use errors::StorageError;
pub use proxy::{Upstream, UpstreamError};
pub use roles::{Access, BlobRole, RoleAssignment, Storage};

/// Data-plane routes for `*.blob.*` hosts (everything is checked, then proxied to Azurite).
pub fn router() -> Router<Arc<SimState>> {
    Router::new().fallback(serve)
}

/// Admin routes, mounted under `/admin` on the admin host.
pub fn admin_router() -> Router<Arc<SimState>> {
    admin::router()
}

/// `{account}.blob.{suffix}` from the request (server-recorded authority, else `Host`).
fn account_of(parts: &axum::http::request::Parts) -> Option<(String, String)> {
    let authority = match parts.extensions.get::<crate::server::RequestHost>() {
        Some(h) => h.host.clone(),
        None => parts
            .headers
            .get(header::HOST)?
            .to_str()
            .ok()?
            .to_ascii_lowercase(),
    };
    let hostname = authority.split(':').next()?.to_string();
    let (account, rest) = hostname.split_once(".blob.")?;
    (!account.is_empty() && !rest.is_empty()).then(|| (account.to_string(), rest.to_string()))
}

async fn serve(State(state): State<Arc<SimState>>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let version = parts.headers.get("x-ms-version").cloned();
    match authorize(&state, &parts) {
        Ok((account, upstream)) => {
            let path_and_query = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            upstream
                .forward(
                    parts.method.clone(),
                    &account,
                    path_and_query,
                    &parts.headers,
                    body,
                )
                .await
        }
        Err(e) => e.into_response_with(version.as_ref()),
    }
}

/// Every check before the proxy; returns the account and the upstream client.
fn authorize(
    state: &SimState,
    parts: &axum::http::request::Parts,
) -> Result<(String, Upstream), StorageError> {
    let (account, suffix) = account_of(parts).ok_or_else(|| {
        StorageError::new(
            StatusCode::BAD_REQUEST,
            "InvalidUri",
            "the Host header does not name a storage account",
        )
    })?;
    let (tenant, upstream) = {
        let mut storage = lock(&state.storage);
        let tenant = storage.accounts.get(&account).cloned().ok_or_else(|| {
            StorageError::new(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("storage account {account} is not provisioned in the sim; create it with POST /admin/storage-accounts"),
            )
        })?;
        let upstream = match &storage.upstream {
            Some(u) => u.clone(),
            None => {
                let url = state
                    .config
                    .azurite_url
                    .as_deref()
                    .ok_or_else(|| unavailable(UpstreamError::NotConfigured))?;
                let u = Upstream::new(url, &state.config.ca_pem).map_err(unavailable)?;
                storage.upstream = Some(u.clone());
                u
            }
        };
        (tenant, upstream)
    };
    let caller = authenticate(state, parts, &account, &suffix, &tenant)?;
    let container = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let access = Access::of(&parts.method);
    if !lock(&state.storage).allows(&account, &container, &caller, access) {
        return Err(StorageError::permission_mismatch());
    }
    state.count_request("blob", &caller.tenant_id, &account);
    Ok((account, upstream))
}

fn unavailable(e: UpstreamError) -> StorageError {
    StorageError::new(StatusCode::BAD_GATEWAY, "ServerUnavailable", e.to_string())
}

/// Checks the bearer token: 401 without or with a bad token, 403 `AuthenticationFailed` for a
/// token from another tenant than the account's.
fn authenticate(
    state: &SimState,
    parts: &axum::http::request::Parts,
    account: &str,
    suffix: &str,
    tenant: &str,
) -> Result<Caller, StorageError> {
    let authority_host = if suffix == "core.windows.net" {
        "login.microsoftonline.com".to_string()
    } else {
        format!("login.{suffix}")
    };
    let challenge = format!("Bearer authorization_uri=https://{authority_host}/{tenant}/oauth2/authorize resource_id=https://storage.azure.com");
    let token = crate::keyvault::bearer_token(&parts.headers).ok_or_else(|| StorageError {
        challenge: Some(challenge.clone()),
        ..StorageError::new(
            StatusCode::UNAUTHORIZED,
            "NoAuthenticationInformation",
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        )
    })?;
    // Exactly the audiences Azurite accepts (it checks the token again behind us): the storage
    // resource, or the account's production URL. An `https://{account}.blob.sandbox.test` token
    // would pass here and fail there, so it is refused here.
    let audiences = [
        "https://storage.azure.com".to_string(),
        format!("https://{account}.blob.core.windows.net"),
    ];
    let mut last = None;
    let mut claims = None;
    for aud in &audiences {
        match verify_access_token(state, token, aud) {
            Ok(c) => {
                claims = Some(c);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(claims) = claims else {
        let detail = match last {
            Some(AccessTokenError::WrongAudience { .. }) => {
                "Audience validation failed. Audience did not match."
            }
            Some(AccessTokenError::Invalid(JwtError::Expired { .. })) => {
                "Lifetime validation failed. The token is expired."
            }
            Some(AccessTokenError::Invalid(JwtError::NotYetValid { .. })) => {
                "Lifetime validation failed. The token is not yet valid."
            }
            Some(AccessTokenError::Invalid(JwtError::BadSignature)) => {
                "Signature validation failed."
            }
            _ => "The access token is malformed.",
        };
        return Err(StorageError {
            detail: Some(detail.to_string()),
            challenge: Some(challenge),
            ..StorageError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationInfo",
                "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
            )
        });
    };
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err(StorageError::authentication_failed(
            "Issuer validation failed. Issuer did not match.",
        ));
    }
    Ok(Caller {
        tenant_id: claims.tid.to_ascii_lowercase(),
        object_id: claims.oid,
        app_id: claims.appid,
    })
}
