//! Telemetry: tracing setup (human on a terminal, JSON otherwise), typed events that log and
//! count, metrics, and the status HTTP server (`/metrics`, `/healthz`, `/readyz`, `/status`).
//!
//! Owns: how Ferry reports. Must not: make decisions about tenants or data.

pub mod events;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod status;

pub use metrics::Metrics;
pub use status::{StatusBoard, TenantState};
