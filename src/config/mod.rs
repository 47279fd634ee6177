//! Configuration: the TOML schema, defaults (written once), loading with source spans, and
//! semantic validation whose errors carry `file:line:col`, the config path
//! (`tenant[contoso].source[audit].container`) and what to do.
//!
//! Owns: everything an operator writes. Must not: do network or file I/O beyond reading the
//! config file itself (secret references are resolved by `identity`).
//!
//! Use [`load`] (or [`load_str`] in tests) to get a [`LoadedConfig`]; on failure every problem
//! in the file comes back in [`ConfigErrors`].

mod checks;
mod cloud;
mod error;
mod load;
mod schema;
mod secrets;
pub mod units;
mod validate;

pub use checks::{
    check_template, parse_template, Problem, TemplatePart, TemplateSyntaxError,
    TEMPLATE_PLACEHOLDERS,
};
pub use cloud::{consent_url, CloudEndpoints};
pub use error::{did_you_mean, ConfigError, ConfigErrors, ConfigPath, Issue, PathSeg};
pub use load::{load, load_bytes, load_str, LoadedConfig};
pub use schema::*;
pub use units::{ByteSize, HumanDuration};
