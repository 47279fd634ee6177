//! Key Vault keys and secrets (owned by sim-kv-gateway; placeholder until it lands).

use std::sync::Arc;

use axum::Router;

use crate::state::SimState;

/// Every vault the sim serves, with keys, secrets and permissions.
#[derive(Debug, Default)]
pub struct Vaults {}

/// Data-plane routes for `*.vault.*` and `*.managedhsm.*` hosts.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
}

/// Admin routes, mounted under `/admin` on the admin host.
pub fn admin_router() -> Router<Arc<SimState>> {
    Router::new()
}
