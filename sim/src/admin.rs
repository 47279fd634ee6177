//! The admin API's Entra, managed identity, settings, tokens, request-count and fault routes
//! (mounted under `/admin` on `admin.sandbox.test`; JSON; no auth, loopback only). Key Vault and
//! storage admin routes live with `keyvault` and `gateway`; the typed client is `admin_client`.
//!
//! Errors are `{"error": "..."}` with 400 (bad input), 404 (unknown thing) or 409 (exists).
//! This module must not serve data-plane routes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::directory::DirectoryError;
use crate::entra::{mint_access_token, ClientAuth};
use crate::faults::FaultSpec;
use crate::jwt::now_unix;
use crate::state::{lock, SimState};

/// An admin API error: status and message.
#[derive(Debug)]
pub struct AdminError(pub StatusCode, pub String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<DirectoryError> for AdminError {
    fn from(e: DirectoryError) -> Self {
        let status = match e {
            DirectoryError::UnknownTenant(_)
            | DirectoryError::UnknownApp(_)
            | DirectoryError::UnknownCredential { .. }
            | DirectoryError::NotConsented { .. }
            | DirectoryError::UnknownManagedIdentity(_) => StatusCode::NOT_FOUND,
            DirectoryError::AlreadyExists(_) => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        Self(status, e.to_string())
    }
}

type AdminResult = Result<Json<Value>, AdminError>;

/// Parses a JSON request body, naming the route on failure (shared with the other admin routers).
pub fn parse_body<T: DeserializeOwned>(route: &str, body: &Bytes) -> Result<T, AdminError> {
    let text: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(text).map_err(|e| {
        AdminError(
            StatusCode::BAD_REQUEST,
            format!("{route}: bad json body: {e}"),
        )
    })
}

/// The Entra/MI/settings/tokens/requests/faults admin routes (relative to `/admin`).
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/tenants", post(add_tenant))
        .route("/apps", post(add_app))
        .route("/apps/{app}/secrets", post(add_secret))
        .route("/apps/{app}/secrets/{id}", delete(remove_secret))
        .route("/apps/{app}/secrets/{id}/expire", post(expire_secret))
        .route("/apps/{app}/certificates", post(add_certificate))
        .route(
            "/apps/{app}/certificates/{thumbprint}",
            delete(remove_certificate),
        )
        .route("/apps/{app}/federated-credentials", post(add_federated))
        .route(
            "/apps/{app}/federated-credentials/{id}",
            delete(remove_federated),
        )
        .route("/apps/{app}/disable", post(disable_app))
        .route("/apps/{app}/enable", post(enable_app))
        .route(
            "/tenants/{tid}/consent/{app}",
            put(consent).delete(revoke_consent),
        )
        .route("/tenants/{tid}/consent/{app}/orphan", post(orphan))
        .route("/managed-identities", post(add_managed_identity))
        .route("/settings", put(update_settings).get(get_settings))
        .route("/workload-tokens", post(workload_token))
        .route("/tokens", post(mint_token))
        .route("/requests", get(requests))
        .route(
            "/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/faults/{id}", delete(remove_fault))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    tenant_id: String,
    display_name: Option<String>,
}

async fn add_tenant(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let b: NewTenant = parse_body("POST /admin/tenants", &body)?;
    let id = lock(&s.directory).add_tenant(&b.tenant_id, b.display_name.as_deref())?;
    Ok(Json(json!({"tenant_id": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApp {
    client_id: Option<String>,
    home_tenant_id: String,
    display_name: Option<String>,
}

async fn add_app(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let b: NewApp = parse_body("POST /admin/apps", &body)?;
    let id = lock(&s.directory).add_app(
        b.client_id.as_deref(),
        &b.home_tenant_id,
        b.display_name.as_deref(),
    )?;
    Ok(Json(json!({"client_id": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSecret {
    value: Option<String>,
    expires_in_secs: Option<i64>,
}

async fn add_secret(
    State(s): State<Arc<SimState>>,
    Path(app): Path<String>,
    body: Bytes,
) -> AdminResult {
    let b: NewSecret = parse_body("POST /admin/apps/{app}/secrets", &body)?;
    let expires_at = b.expires_in_secs.map(|secs| now_unix() + secs);
    let (id, value) = lock(&s.directory).add_secret(&app, b.value, expires_at)?;
    Ok(Json(json!({"id": id, "value": value})))
}

async fn remove_secret(
    State(s): State<Arc<SimState>>,
    Path((app, id)): Path<(String, String)>,
) -> AdminResult {
    lock(&s.directory).remove_secret(&app, &id)?;
    Ok(Json(json!({})))
}

async fn expire_secret(
    State(s): State<Arc<SimState>>,
    Path((app, id)): Path<(String, String)>,
) -> AdminResult {
    lock(&s.directory).expire_secret(&app, &id, now_unix())?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCertificate {
    pem: String,
}

async fn add_certificate(
    State(s): State<Arc<SimState>>,
    Path(app): Path<String>,
    body: Bytes,
) -> AdminResult {
    let b: NewCertificate = parse_body("POST /admin/apps/{app}/certificates", &body)?;
    let c = lock(&s.directory).add_certificate(&app, &b.pem)?;
    Ok(Json(
        json!({"thumbprint_sha1": c.thumbprint_sha1, "thumbprint_sha256": c.thumbprint_sha256}),
    ))
}

async fn remove_certificate(
    State(s): State<Arc<SimState>>,
    Path((app, t)): Path<(String, String)>,
) -> AdminResult {
    lock(&s.directory).remove_certificate(&app, &t)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewFederated {
    issuer: String,
    subject: String,
    audiences: Vec<String>,
}

async fn add_federated(
    State(s): State<Arc<SimState>>,
    Path(app): Path<String>,
    body: Bytes,
) -> AdminResult {
    let b: NewFederated = parse_body("POST /admin/apps/{app}/federated-credentials", &body)?;
    let id = lock(&s.directory).add_federated(&app, &b.issuer, &b.subject, b.audiences)?;
    Ok(Json(json!({"id": id})))
}

async fn remove_federated(
    State(s): State<Arc<SimState>>,
    Path((app, id)): Path<(String, String)>,
) -> AdminResult {
    lock(&s.directory).remove_federated(&app, &id)?;
    Ok(Json(json!({})))
}

async fn disable_app(State(s): State<Arc<SimState>>, Path(app): Path<String>) -> AdminResult {
    lock(&s.directory).app_mut(&app)?.disabled = true;
    Ok(Json(json!({})))
}

async fn enable_app(State(s): State<Arc<SimState>>, Path(app): Path<String>) -> AdminResult {
    lock(&s.directory).app_mut(&app)?.disabled = false;
    Ok(Json(json!({})))
}

async fn consent(
    State(s): State<Arc<SimState>>,
    Path((tid, app)): Path<(String, String)>,
) -> AdminResult {
    let object_id = lock(&s.directory).consent(&tid, &app)?;
    Ok(Json(json!({"object_id": object_id})))
}

async fn revoke_consent(
    State(s): State<Arc<SimState>>,
    Path((tid, app)): Path<(String, String)>,
) -> AdminResult {
    lock(&s.directory).revoke_consent(&tid, &app)?;
    Ok(Json(json!({})))
}

async fn orphan(
    State(s): State<Arc<SimState>>,
    Path((tid, app)): Path<(String, String)>,
) -> AdminResult {
    lock(&s.directory).orphan(&tid, &app)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewManagedIdentity {
    tenant_id: String,
    client_id: Option<String>,
}

async fn add_managed_identity(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let b: NewManagedIdentity = parse_body("POST /admin/managed-identities", &body)?;
    let mi = lock(&s.directory).add_managed_identity(&b.tenant_id, b.client_id.as_deref())?;
    Ok(Json(
        json!({"client_id": mi.client_id, "object_id": mi.object_id}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsUpdate {
    token_lifetime_secs: Option<u64>,
    identity_header: Option<String>,
    federated_propagation_secs: Option<u64>,
}

async fn update_settings(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let b: SettingsUpdate = parse_body("PUT /admin/settings", &body)?;
    let mut settings = lock(&s.settings);
    if let Some(secs) = b.token_lifetime_secs {
        if secs == 0 {
            return Err(AdminError(
                StatusCode::BAD_REQUEST,
                "token_lifetime_secs must be at least 1".into(),
            ));
        }
        settings.token_lifetime_secs = secs;
    }
    if let Some(secs) = b.federated_propagation_secs {
        settings.federated_propagation_secs = secs;
    }
    if let Some(h) = b.identity_header {
        settings.identity_header = h;
    }
    Ok(Json(json!(*settings)))
}

async fn get_settings(State(s): State<Arc<SimState>>) -> AdminResult {
    Ok(Json(json!(s.settings())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadToken {
    issuer: String,
    subject: String,
    audience: String,
    lifetime_secs: Option<i64>,
}

async fn workload_token(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let b: WorkloadToken = parse_body("POST /admin/workload-tokens", &body)?;
    let now = now_unix();
    let claims = json!({
        "iss": b.issuer, "sub": b.subject, "aud": [b.audience],
        "iat": now, "nbf": now, "exp": now + b.lifetime_secs.unwrap_or(3600),
        "kubernetes.io": {"namespace": "ferry", "serviceaccount": {"name": "ferry"}},
    });
    Ok(Json(json!({"token": s.signer.sign(&claims)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MintToken {
    tenant_id: String,
    resource: String,
    object_id: String,
    app_id: Option<String>,
}

async fn mint_token(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let b: MintToken = parse_body("POST /admin/tokens", &body)?;
    let tid = crate::directory::parse_guid("tenant_id", &b.tenant_id)?;
    let app_id = b.app_id.unwrap_or_else(|| b.object_id.clone());
    let lifetime = s.settings().token_lifetime_secs;
    let token = mint_access_token(
        &s,
        &tid,
        &b.resource,
        &b.object_id,
        &app_id,
        ClientAuth::Secret,
        lifetime,
    );
    Ok(Json(json!({"access_token": token, "expires_in": lifetime})))
}

async fn requests(State(s): State<Arc<SimState>>) -> AdminResult {
    Ok(Json(json!(*lock(&s.requests))))
}

async fn add_fault(State(s): State<Arc<SimState>>, body: Bytes) -> AdminResult {
    let spec: FaultSpec = parse_body("POST /admin/faults", &body)?;
    let id = lock(&s.faults)
        .add(spec)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(Json(json!({"id": id})))
}

async fn list_faults(State(s): State<Arc<SimState>>) -> AdminResult {
    Ok(Json(json!({"faults": lock(&s.faults).list()})))
}

async fn remove_fault(State(s): State<Arc<SimState>>, Path(id): Path<String>) -> AdminResult {
    if lock(&s.faults).remove(&id) {
        Ok(Json(json!({})))
    } else {
        Err(AdminError(
            StatusCode::NOT_FOUND,
            format!("fault {id} does not exist (count-limited faults vanish once used)"),
        ))
    }
}

async fn clear_faults(State(s): State<Arc<SimState>>) -> AdminResult {
    lock(&s.faults).clear();
    Ok(Json(json!({})))
}
