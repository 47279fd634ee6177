//! `SimState`: everything the sim knows, shared by every route behind one `Arc`.
//!
//! Each part sits behind its own lock so Key Vault, the gateway and Entra never wait on each
//! other; no lock is held across an await.

use std::sync::Mutex;

/// The sim's whole state.
#[derive(Debug, Default)]
pub struct SimState {
    /// Key Vaults (owned by `keyvault`).
    pub vaults: Mutex<crate::keyvault::Vaults>,
    /// Storage accounts and role assignments (owned by `gateway`).
    pub storage: Mutex<crate::gateway::Storage>,
    // sim-core adds: directory, signer, faults, settings, request counters.
}
