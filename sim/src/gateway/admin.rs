//! Admin routes for storage (relative to `/admin`): register accounts (with their owning tenant)
//! and grant or remove blob data roles. JSON in, JSON out; errors are `{"error":"<what to fix>"}`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::roles::{BlobRole, RoleAssignment};
use crate::keyvault::Principal;
use crate::state::{lock, SimState};

/// Admin routes for storage.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/storage-accounts", post(create_account))
        .route("/role-assignments", put(assign).delete(unassign))
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Body of `POST /admin/storage-accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateAccount {
    name: String,
    tenant_id: String,
}

async fn create_account(
    State(state): State<Arc<SimState>>,
    Json(req): Json<CreateAccount>,
) -> Response {
    let name = req.name.to_ascii_lowercase();
    let mut storage = lock(&state.storage);
    if let Some(known) = &storage.azurite_accounts {
        if !known.iter().any(|a| a.eq_ignore_ascii_case(&name)) {
            return error(
                StatusCode::BAD_REQUEST,
                format!("storage account {name} is not one of azurite's accounts ({}); add it to the sandbox options", known.join(", ")),
            );
        }
    }
    storage
        .accounts
        .insert(name.clone(), req.tenant_id.to_ascii_lowercase());
    (
        StatusCode::CREATED,
        Json(json!({ "name": name, "tenant_id": req.tenant_id })),
    )
        .into_response()
}

/// Body of `PUT|DELETE /admin/role-assignments`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentBody {
    account: String,
    container: Option<String>,
    object_id: Option<String>,
    tenant_id: Option<String>,
    app_id: Option<String>,
    managed_identity_client_id: Option<String>,
    role: BlobRole,
}

impl AssignmentBody {
    fn assignment(&self) -> Result<RoleAssignment, String> {
        let principal = Principal::from_parts(
            self.object_id.as_deref(),
            self.tenant_id.as_deref(),
            self.app_id.as_deref(),
            self.managed_identity_client_id.as_deref(),
        )
        .ok_or_else(|| {
            "name the principal: object_id, or tenant_id and app_id, or managed_identity_client_id"
                .to_string()
        })?;
        Ok(RoleAssignment {
            account: self.account.to_ascii_lowercase(),
            container: self.container.clone().unwrap_or_else(|| "*".into()),
            principal,
            role: self.role,
        })
    }
}

async fn assign(State(state): State<Arc<SimState>>, Json(req): Json<AssignmentBody>) -> Response {
    let a = match req.assignment() {
        Ok(a) => a,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let mut storage = lock(&state.storage);
    if !storage.accounts.contains_key(&a.account) {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "storage account {} does not exist; create it with POST /admin/storage-accounts",
                a.account
            ),
        );
    }
    if !storage.assignments.contains(&a) {
        storage.assignments.push(a);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn unassign(State(state): State<Arc<SimState>>, Json(req): Json<AssignmentBody>) -> Response {
    let a = match req.assignment() {
        Ok(a) => a,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    lock(&state.storage).assignments.retain(|x| x != &a);
    StatusCode::NO_CONTENT.into_response()
}
