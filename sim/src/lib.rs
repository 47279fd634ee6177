//! ferry-sim: a faithful local stand-in for the Azure services that have no offline emulator:
//! Entra ID (v2 token endpoint, OpenID metadata, JWKS) for many tenants, the provider's managed
//! identity (IMDS and App Service shapes), Key Vault keys and secrets, and a storage gateway in
//! front of Azurite that enforces role assignments. An admin API onboards and revokes tenants
//! and injects faults. Everything follows `shared/reference/azure-contracts.md`; when the sim and
//! Azure disagree, the sim is wrong.
//!
//! Module map (one owner each):
//! - `ca`: test CA and leaf certificates (rcgen).
//! - `server`: the https listener, routing by `Host`, the plain-http IMDS listener.
//! - `state`: `SimState`, shared by every route.
//! - `jwt`: RS256 signing and verification of the tokens the sim issues.
//! - `directory` / `entra` / `entra_assertion`: tenants, apps, service principals; the token endpoint.
//! - `msi`: managed identity endpoints.
//! - `keyvault`: Key Vault keys and secrets, challenge auth, permissions.
//! - `gateway`: the storage gateway (reverse proxy to Azurite, role checks).
//! - `faults`: fault injection per route.
//! - `admin` / `admin_client`: the admin API and its typed client (plus the pinned sandbox http client).
//! - `sandbox`: starts Azurite and the sim together for tests and the demo; seeds data.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_client;
pub mod ca;
pub mod directory;
pub mod entra;
pub mod entra_assertion;
pub mod faults;
pub mod gateway;
pub mod jwt;
pub mod keyvault;
pub mod msi;
pub mod sandbox;
pub mod server;
pub mod state;

pub use admin_client::{sandbox_http_client, AdminClient, AdminClientError};
pub use faults::{FaultSpec, HostKind};
pub use jwt::{verify_access_token, AccessClaims, AccessTokenError};
pub use server::{serve, serve_ephemeral, RequestHost, RunningSim, ServeConfig, ServeError};
pub use state::{Settings, SimConfig, SimState};
