//! Key Vault and Managed HSM data plane (api-version 7.4/7.5) and its admin routes.
//!
//! Owns vaults, keys (versions, enable/disable, soft delete), secrets, per-principal permissions
//! under either permission model, and network flags; answers with the status codes, error codes
//! and `WWW-Authenticate` challenge of the real service (`shared/reference/azure-contracts.md`,
//! section 2). It must not issue tokens (that is `entra`) or log key material.
//!
//! - `access`: host parsing, challenge, token, network and permission checks.
//! - `data_plane`: the routes clients call.
//! - `admin`: `/admin/vaults/...`.
//! - `model`, `bundle`, `crypto`, `errors`: data, JSON shapes, algorithms, error answers.

mod access;
mod admin;
mod bundle;
mod crypto;
mod data_plane;
mod errors;
mod model;
mod operation;

use std::sync::Arc;

use axum::Router;

use crate::state::SimState;

pub use access::bearer as bearer_token;
pub use crypto::{b64url, b64url_decode, CryptoError, KeyMaterial};
pub use errors::KvError;
pub use model::{
    Area, Caller, Grant, Key, KeyVersion, NetworkFlags, PermissionModel, Principal, SecretVersion,
    Vault, VaultKind, Vaults,
};

/// Data-plane routes for `*.vault.*` and `*.managedhsm.*` hosts: every path goes to one handler
/// that parses it the way the service does.
pub fn router() -> Router<Arc<SimState>> {
    Router::new().fallback(data_plane::serve)
}

/// Admin routes, mounted under `/admin` on the admin host.
pub fn admin_router() -> Router<Arc<SimState>> {
    admin::router()
}
