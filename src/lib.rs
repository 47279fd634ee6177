//! Ferry ships logs and data out of many customers' Azure tenants into the provider's storage.
//!
//! A provider owns one multi-tenant Entra app; each customer consents to it once. Ferry then,
//! per customer tenant, gets tokens from that tenant as the app, pulls blobs and Log Analytics
//! records over private endpoints, optionally decrypts them with the customer's Key Vault key,
//! and streams them into provider storage through a bounded, rate-limited pipeline. A customer
//! revoking consent or the key is a first-class tenant state, not an error to retry.
//!
//! Modules, with dependencies pointing downwards only:
//!
//! | module      | owns                                                               |
//! |-------------|--------------------------------------------------------------------|
//! | `cli`       | commands, exit codes, human output                                 |
//! | `pipeline`  | supervisor, tenant tasks, stages, channels, limits, retries        |
//! | `source`    | blob listing and reading (block + append tail), Log Analytics      |
//! | `cmk`       | CSE v2 format, Key Vault client, content-key cache                 |
//! | `sink`      | destination naming, batching, compression, block upload            |
//! | `check`     | tenant diagnostics behind `ferry check` (tokens, listing, keys, endpoints) |
//! | `identity`  | per-tenant token providers, credential kinds, error classes        |
//! | `state`     | checkpoints (SQLite, WAL) behind a small trait                     |
//! | `config`    | schema, loading, validation, secret references                     |
//! | `telemetry` | tracing setup, metrics, status HTTP server                         |
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations, rust_2018_idioms)]

pub mod blob_api;
pub mod check;
pub mod cli;
pub mod cmk;
pub mod config;
pub mod identity;
pub mod limits;
pub mod pipeline;
pub mod retry;
pub mod service_message;
pub mod sink;
pub mod source;
pub mod state;
pub mod telemetry;
