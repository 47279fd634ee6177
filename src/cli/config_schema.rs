//! `ferry config schema`: the JSON Schema of the config file, for editor completion.

use std::process::ExitCode;

use crate::config::Config;

/// The config's JSON Schema, pretty-printed.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Config);
    serde_json::to_string_pretty(&schema).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Runs `ferry config schema`.
pub fn run() -> ExitCode {
    super::print_then(
        "config schema",
        format!("{}\n", schema_json()),
        ExitCode::SUCCESS,
    )
}
