//! Admin routes for vaults (mounted under `/admin` on the admin host): create vaults, create,
//! disable, enable, delete and recover keys, grant and revoke permissions, set network flags and
//! secrets. JSON in, JSON out; errors are `{"error":"<what to fix>"}` with 400/404/409.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::bundle::{key_bundle, secret_bundle};
use super::data_plane::build_version;
use super::model::{
    new_version_id, now_secs, Grant, NetworkFlags, PermissionModel, Principal, SecretVersion,
    Vault, VaultKind,
};
use crate::state::SimState;

/// An admin failure: status and a message naming the input and the fix.
#[derive(Debug)]
pub struct AdminError(pub StatusCode, pub String);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

fn not_found(what: String) -> AdminError {
    AdminError(StatusCode::NOT_FOUND, what)
}

/// Admin routes for vaults, relative to `/admin`.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/vaults", post(create_vault))
        .route(
            "/vaults/{vault}/keys/{name}",
            post(create_key).delete(delete_key),
        )
        .route("/vaults/{vault}/keys/{name}/disable", post(disable_key))
        .route("/vaults/{vault}/keys/{name}/enable", post(enable_key))
        .route("/vaults/{vault}/keys/{name}/recover", post(recover_key))
        .route(
            "/vaults/{vault}/access",
            put(grant_access).delete(revoke_access),
        )
        .route("/vaults/{vault}/network", put(set_network))
        .route("/vaults/{vault}/secrets/{name}", put(set_secret))
}

/// Body of `POST /admin/vaults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVault {
    name: String,
    tenant_id: String,
    #[serde(default = "default_kind")]
    kind: VaultKind,
    #[serde(default = "default_model")]
    permission_model: PermissionModel,
}

fn default_kind() -> VaultKind {
    VaultKind::Vault
}

fn default_model() -> PermissionModel {
    PermissionModel::AccessPolicy
}

/// `{vault}.vault.sandbox.test[:port]`, the port taken from the admin request's `Host`.
fn vault_authority(headers: &HeaderMap, name: &str, kind: VaultKind) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let port = host
        .rsplit_once(':')
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    let label = if kind == VaultKind::Vault {
        "vault"
    } else {
        "managedhsm"
    };
    format!("{name}.{label}.sandbox.test{port}")
}

fn lock(state: &SimState) -> Result<std::sync::MutexGuard<'_, super::Vaults>, AdminError> {
    state.vaults.lock().map_err(|_| {
        AdminError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "vault state is poisoned".into(),
        )
    })
}

fn with_vault<T>(
    state: &SimState,
    vault: &str,
    f: impl FnOnce(&mut Vault) -> Result<T, AdminError>,
) -> Result<T, AdminError> {
    let mut vaults = lock(state)?;
    let v = vaults
        .by_name
        .get_mut(&vault.to_ascii_lowercase())
        .ok_or_else(|| {
            not_found(format!(
                "vault {vault} does not exist; create it with POST /admin/vaults"
            ))
        })?;
    f(v)
}

async fn create_vault(
    State(state): State<Arc<SimState>>,
    Json(req): Json<CreateVault>,
) -> Result<Response, AdminError> {
    let name = req.name.to_ascii_lowercase();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(AdminError(
            StatusCode::BAD_REQUEST,
            format!(
                "vault name {:?} is invalid; use letters, digits and '-'",
                req.name
            ),
        ));
    }
    let mut vaults = lock(&state)?;
    if vaults.by_name.contains_key(&name) {
        return Err(AdminError(
            StatusCode::CONFLICT,
            format!("vault {name} already exists"),
        ));
    }
    vaults.by_name.insert(
        name.clone(),
        Vault {
            name: name.clone(),
            tenant_id: req.tenant_id.to_ascii_lowercase(),
            kind: req.kind,
            permission_model: req.permission_model,
            network: NetworkFlags::default(),
            keys: Default::default(),
            secrets: Default::default(),
            grants: Vec::new(),
        },
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "tenant_id": req.tenant_id })),
    )
        .into_response())
}

/// Body of `POST /admin/vaults/{vault}/keys/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    kty: String,
    key_size: Option<usize>,
}

async fn create_key(
    State(state): State<Arc<SimState>>,
    Path((vault, name)): Path<(String, String)>,
    headers: HeaderMap,
    Json(req): Json<CreateKey>,
) -> Result<Response, AdminError> {
    let kind = with_vault(&state, &vault, |v| Ok(v.kind))?;
    // Generate outside the lock: RSA key generation takes a while.
    let version = build_version(kind, &req.kty, req.key_size, None, None)
        .map_err(|e| AdminError(StatusCode::BAD_REQUEST, e.message))?;
    let authority = vault_authority(&headers, &vault.to_ascii_lowercase(), kind);
    let name = name.to_ascii_lowercase();
    with_vault(&state, &vault, |v| {
        let key = v.keys.entry(name.clone()).or_default();
        key.deleted = false;
        let bundle = key_bundle(&authority, &name, &version);
        key.versions.push(version);
        Ok(Json(bundle).into_response())
    })
}

fn set_key_state(
    state: &SimState,
    vault: &str,
    name: &str,
    f: impl Fn(&mut super::Key),
) -> Result<Response, AdminError> {
    with_vault(state, vault, |v| {
        let key = v.keys.get_mut(&name.to_ascii_lowercase()).ok_or_else(|| {
            not_found(format!("key {name} does not exist in vault {vault}; create it with POST /admin/vaults/{vault}/keys/{name}"))
        })?;
        f(key);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn disable_key(
    State(state): State<Arc<SimState>>,
    Path((vault, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_key_state(&state, &vault, &name, |k| {
        for v in &mut k.versions {
            v.enabled = false;
            v.updated = now_secs();
        }
    })
}

async fn enable_key(
    State(state): State<Arc<SimState>>,
    Path((vault, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_key_state(&state, &vault, &name, |k| {
        for v in &mut k.versions {
            v.enabled = true;
            v.updated = now_secs();
        }
    })
}

async fn delete_key(
    State(state): State<Arc<SimState>>,
    Path((vault, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_key_state(&state, &vault, &name, |k| k.deleted = true)
}

async fn recover_key(
    State(state): State<Arc<SimState>>,
    Path((vault, name)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    set_key_state(&state, &vault, &name, |k| k.deleted = false)
}

/// Body of `PUT|DELETE /admin/vaults/{vault}/access`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessBody {
    object_id: Option<String>,
    tenant_id: Option<String>,
    app_id: Option<String>,
    managed_identity_client_id: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
}

impl AccessBody {
    fn principal(&self) -> Result<Principal, AdminError> {
        Principal::from_parts(
            self.object_id.as_deref(),
            self.tenant_id.as_deref(),
            self.app_id.as_deref(),
            self.managed_identity_client_id.as_deref(),
        )
        .ok_or_else(|| {
            AdminError(
                StatusCode::BAD_REQUEST,
                "name the principal: object_id, or tenant_id and app_id, or managed_identity_client_id".into(),
            )
        })
    }
}

async fn grant_access(
    State(state): State<Arc<SimState>>,
    Path(vault): Path<String>,
    Json(req): Json<AccessBody>,
) -> Result<Response, AdminError> {
    let principal = req.principal()?;
    let lower = |ops: &[String]| {
        ops.iter()
            .map(|o| o.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let grant = Grant {
        keys: lower(&req.keys),
        secrets: lower(&req.secrets),
    };
    with_vault(&state, &vault, |v| {
        v.grants.retain(|(p, _)| p != &principal);
        v.grants.push((principal, grant));
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn revoke_access(
    State(state): State<Arc<SimState>>,
    Path(vault): Path<String>,
    Json(req): Json<AccessBody>,
) -> Result<Response, AdminError> {
    let principal = req.principal()?;
    with_vault(&state, &vault, |v| {
        v.grants.retain(|(p, _)| p != &principal);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// Body of `PUT /admin/vaults/{vault}/network`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkBody {
    firewall_denied: Option<bool>,
    public_access_disabled: Option<bool>,
}

async fn set_network(
    State(state): State<Arc<SimState>>,
    Path(vault): Path<String>,
    Json(req): Json<NetworkBody>,
) -> Result<Response, AdminError> {
    with_vault(&state, &vault, |v| {
        if let Some(f) = req.firewall_denied {
            v.network.firewall_denied = f;
        }
        if let Some(p) = req.public_access_disabled {
            v.network.public_access_disabled = p;
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// Body of `PUT /admin/vaults/{vault}/secrets/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    value: String,
}

async fn set_secret(
    State(state): State<Arc<SimState>>,
    Path((vault, name)): Path<(String, String)>,
    headers: HeaderMap,
    Json(req): Json<SecretBody>,
) -> Result<Response, AdminError> {
    let name = name.to_ascii_lowercase();
    with_vault(&state, &vault, |v| {
        let s = SecretVersion {
            version: new_version_id(),
            value: req.value,
            created: now_secs(),
        };
        v.secrets.entry(name.clone()).or_default().push(s.clone());
        let authority = vault_authority(&headers, &v.name, v.kind);
        let mut bundle = secret_bundle(&authority, &name, &s, None);
        // The admin answer does not echo the value back.
        bundle["value"] = json!(null);
        Ok(Json(bundle).into_response())
    })
}
