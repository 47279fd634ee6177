//! Log setup: human-readable on a terminal, JSON lines otherwise (or as configured), level from
//! `FERRY_LOG` (an `EnvFilter` directive, default `info`). Logs go to stderr; stdout is for
//! command output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStyle {
    /// Human on a terminal, JSON otherwise.
    Auto,
    /// Always human.
    Human,
    /// Always JSON lines.
    Json,
}

/// Installs the global subscriber once; later calls do nothing.
pub fn init(style: LogStyle) {
    let filter = EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match style {
        LogStyle::Json => true,
        LogStyle::Human => false,
        LogStyle::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
