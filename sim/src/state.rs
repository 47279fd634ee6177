//! `SimState`: everything the sim knows, shared by every route behind one `Arc`.
//!
//! Each part sits behind its own lock so Key Vault, the gateway and Entra never wait on each
//! other; no lock is held across an await (every lock is taken and released inside a
//! synchronous block). This module holds data only; behaviour lives with each service.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use crate::directory::Directory;
use crate::faults::Faults;
use crate::jwt::Signer;

/// Settings the admin API may change at run time. `Debug` hides the identity header.
#[derive(Clone, Serialize)]
pub struct Settings {
    /// Lifetime of issued access tokens (`expires_in`), seconds. Default 3599.
    pub token_lifetime_secs: u64,
    /// The value the App Service managed-identity shape expects in `X-IDENTITY-HEADER`.
    #[serde(skip)]
    pub identity_header: String,
    /// Seconds before a new federated credential takes effect (Entra answers AADSTS70021 until
    /// it has propagated). Default 0.
    pub federated_propagation_secs: u64,
    /// Host name used in v2 issuers (`https://{issuer_host}/{tid}/v2.0`). Default `login.sandbox.test`.
    pub issuer_host: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("identity_header", &"<redacted>")
            .field("issuer_host", &self.issuer_host)
            .field(
                "federated_propagation_secs",
                &self.federated_propagation_secs,
            )
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            token_lifetime_secs: 3599,
            identity_header: uuid::Uuid::new_v4().to_string(),
            issuer_host: "login.sandbox.test".to_string(),
            federated_propagation_secs: 0,
        }
    }
}

/// Facts fixed when the sim starts.
#[derive(Debug, Clone, Default)]
pub struct SimConfig {
    /// Base URL of Azurite (`https://127.0.0.1:PORT`), the gateway's upstream; None if not running.
    pub azurite_url: Option<String>,
    /// PEM of the test CA (signs the sim's and Azurite's server certificates).
    pub ca_pem: String,
}

/// Request counts: kind (`token`, `msi`, `vault`, ...) -> tenant -> key (resource, route) -> n.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(transparent)]
pub struct RequestCounters(pub BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>);

impl RequestCounters {
    /// Adds one to `kind / tenant / key`.
    pub fn count(&mut self, kind: &str, tenant: &str, key: &str) {
        *self
            .0
            .entry(kind.to_string())
            .or_default()
            .entry(tenant.to_string())
            .or_default()
            .entry(key.to_string())
            .or_default() += 1;
    }

    /// The count of `kind / tenant / key` (0 if never seen).
    pub fn get(&self, kind: &str, tenant: &str, key: &str) -> u64 {
        self.0
            .get(kind)
            .and_then(|t| t.get(tenant))
            .and_then(|k| k.get(key))
            .copied()
            .unwrap_or(0)
    }
}

/// The sim's whole state.
#[derive(Debug)]
pub struct SimState {
    /// Key Vaults (owned by `keyvault`).
    pub vaults: Mutex<crate::keyvault::Vaults>,
    /// Storage accounts and role assignments (owned by `gateway`).
    pub storage: Mutex<crate::gateway::Storage>,
    /// Tenants, apps, service principals, managed identities.
    pub directory: Mutex<Directory>,
    /// The key every issued token is signed with.
    pub signer: Signer,
    /// Installed fault rules.
    pub faults: Mutex<Faults>,
    /// Run-time settings.
    pub settings: Mutex<Settings>,
    /// Request counters for `GET /admin/requests`.
    pub requests: Mutex<RequestCounters>,
    /// Facts fixed at start.
    pub config: SimConfig,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the sim's state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimState {
    /// A fresh state with a newly generated signing key.
    pub fn new(settings: Settings, config: SimConfig) -> Result<Self, rsa::Error> {
        Ok(Self {
            vaults: Mutex::default(),
            storage: Mutex::default(),
            directory: Mutex::default(),
            signer: Signer::generate()?,
            faults: Mutex::default(),
            settings: Mutex::new(settings),
            requests: Mutex::default(),
            config,
        })
    }

    /// A copy of the current settings.
    pub fn settings(&self) -> Settings {
        lock(&self.settings).clone()
    }

    /// Adds one to a request counter.
    pub fn count_request(&self, kind: &str, tenant: &str, key: &str) {
        lock(&self.requests).count(kind, tenant, key);
    }
}
