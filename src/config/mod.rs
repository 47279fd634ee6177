//! Configuration: the TOML schema, defaults (written once), loading with source spans, and
//! semantic validation whose errors carry `file:line:col`, the config path
//! (`tenant[contoso].source[audit].container`) and what to do.
//!
//! Owns: everything an operator writes. Must not: do network or file I/O beyond reading the
//! config file itself (secret references are resolved by `identity`).

mod schema;
pub mod units;

pub use schema::*;
pub use units::{ByteSize, HumanDuration};
