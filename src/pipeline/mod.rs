//! Pipeline: the supervisor, one task tree per tenant, the stages (lister, fetch, transform,
//! upload) joined by bounded channels, rate limits, retries, tenant state transitions, shutdown.
//!
//! Owns: ordering of work and the rule that a checkpoint advances only after the destination
//! commit succeeded. Must not: parse wire formats (that is `source`, `cmk`, `sink`).

pub mod decrypt;
mod lister;
mod recovery;
pub mod reload;
pub mod ship;
pub mod supervisor;
pub mod tenant;
pub mod watermark;
pub mod work;

pub use supervisor::{RunOptions, RunSummary, StartError, Supervisor};
