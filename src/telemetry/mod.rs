//! Telemetry: tracing setup (human on a terminal, JSON otherwise), typed metrics, and the status
//! HTTP server (`/metrics`, `/healthz`, `/readyz`, `/status`).
//!
//! Owns: how Ferry reports. Must not: make decisions about tenants or data.

pub mod logging;
pub mod status;

pub use status::{StatusBoard, TenantState};
