//! The provider's managed identity endpoints, in two shapes:
//! - App Service: `GET /msi/token?api-version=2019-08-01&resource=..&client_id=..` with
//!   `X-IDENTITY-HEADER` equal to the configured header (else 401);
//! - IMDS: `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=..&client_id=..`
//!   with `Metadata: true` (else 400).
//!
//! `client_id` (or `object_id` / `principal_id`) selects a user-assigned identity; with none given
//! and exactly one identity, that one is used. Tokens come from `entra::mint_access_token`. This
//! module owns only the request and response shapes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::directory::ManagedIdentity;
use crate::entra::{mint_access_token, ClientAuth};
use crate::jwt::now_unix;
use crate::state::{lock, SimState};

/// Routes of the identity host (and of the plain-http IMDS listener).
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/msi/token", get(app_service))
        .route("/metadata/identity/oauth2/token", get(imds))
}

/// Which identity a request names, or why none fits.
fn select(state: &SimState, q: &HashMap<String, String>) -> Result<ManagedIdentity, &'static str> {
    let dir = lock(&state.directory);
    let mis = &dir.managed_identities;
    let by = |f: &dyn Fn(&ManagedIdentity) -> bool| {
        mis.values()
            .find(|m| f(m))
            .cloned()
            .ok_or("Identity not found")
    };
    if let Some(c) = q.get("client_id") {
        let c = c.to_ascii_lowercase();
        return by(&|m| m.client_id == c);
    }
    if let Some(o) = q.get("object_id").or_else(|| q.get("principal_id")) {
        let o = o.to_ascii_lowercase();
        return by(&|m| m.object_id == o);
    }
    match mis.len() {
        1 => mis.values().next().cloned().ok_or("Identity not found"),
        0 => Err("Identity not found"),
        _ => Err("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"),
    }
}

fn token_for(state: &SimState, mi: &ManagedIdentity, resource: &str) -> (String, i64, u64) {
    state.count_request("msi", &mi.tenant_id, resource);
    let lifetime = state.settings().token_lifetime_secs;
    let resource = resource.strip_suffix("/.default").unwrap_or(resource);
    let token = mint_access_token(
        state,
        &mi.tenant_id,
        resource,
        &mi.object_id,
        &mi.client_id,
        ClientAuth::Assertion,
        lifetime,
    );
    (token, now_unix(), lifetime)
}

async fn app_service(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fail = |status: StatusCode, message: &str| {
        let body = json!({"statusCode": status.as_u16(), "message": message, "correlationId": uuid::Uuid::new_v4().to_string()});
        (status, Json(body)).into_response()
    };
    let expected = state.settings().identity_header;
    let given = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if given != Some(expected.as_str()) {
        return fail(
            StatusCode::UNAUTHORIZED,
            "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.",
        );
    }
    if q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return fail(
            StatusCode::BAD_REQUEST,
            "The api-version parameter is missing or not supported; use 2019-08-01.",
        );
    }
    let Some(resource) = q.get("resource").filter(|r| !r.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The resource parameter is missing.",
        );
    };
    let mi = match select(&state, &q) {
        Ok(mi) => mi,
        Err(_) => {
            return fail(
                StatusCode::BAD_REQUEST,
                "Unable to load the proper Managed Identity.",
            )
        }
    };
    let (token, now, lifetime) = token_for(&state, &mi, resource);
    let expires_on = now + i64::try_from(lifetime).unwrap_or(3599);
    Json(json!({
        "access_token": token,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": mi.client_id,
    }))
    .into_response()
}

async fn imds(
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fail = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    if headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .as_deref()
        != Some("true")
    {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    if q.get("api-version").is_none_or(|v| v.is_empty()) {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required query variable 'api-version' is missing",
        );
    }
    let Some(resource) = q.get("resource").filter(|r| !r.is_empty()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required audience parameter not specified",
        );
    };
    let mi = match select(&state, &q) {
        Ok(mi) => mi,
        Err(message) => return fail(StatusCode::BAD_REQUEST, "invalid_request", message),
    };
    let (token, now, lifetime) = token_for(&state, &mi, resource);
    Json(json!({
        "access_token": token,
        "refresh_token": "",
        "expires_in": lifetime.to_string(),
        "expires_on": (now + i64::try_from(lifetime).unwrap_or(3599)).to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": mi.client_id,
    }))
    .into_response()
}
