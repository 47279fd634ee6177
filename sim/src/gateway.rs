//! Storage gateway in front of Azurite (owned by sim-kv-gateway; placeholder until it lands).

use std::sync::Arc;

use axum::Router;

use crate::state::SimState;

/// Storage accounts (which tenant owns each) and role assignments.
#[derive(Debug, Default)]
pub struct Storage {}

/// Data-plane routes for `*.blob.*` hosts (everything is proxied to Azurite).
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
}

/// Admin routes, mounted under `/admin` on the admin host.
pub fn admin_router() -> Router<Arc<SimState>> {
    Router::new()
}
