//! Command line: parsing (clap), dispatch to the library, human and JSON output, exit codes.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.
//! Owns: what a person sees. Must not: hold business logic that other entry points would need.
//! One file per command, each exposing `run(args) -> ExitCode`, so wiring a command is a
//! one-file change.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod cat;
mod check;
mod config_schema;
mod consent_url;
mod readiness;
mod run;
mod status;
mod validate;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: a runtime failure (a check failed, a capability is missing, I/O failed).
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code: bad configuration or usage.
pub const EXIT_CONFIG: u8 = 2;

/// Ferry ships logs and data out of many customers' Azure tenants into the provider's storage.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    about,
    after_help = "Examples:\n  ferry validate -c config/local.toml\n  ferry run -c /etc/ferry/ferry.toml\n\nExit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage."
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Ferry's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ship data from every configured tenant until stopped.
    Run(run::RunArgs),
    /// Check a config file and report every problem in it, without contacting anything.
    Validate(validate::ValidateArgs),
    /// Check each tenant against Azure: tokens, listing, keys, endpoints.
    Check(check::CheckArgs),
    /// Print the admin-consent URL a customer's administrator must open.
    ConsentUrl(consent_url::ConsentUrlArgs),
    /// Show the state of a running Ferry.
    Status(status::StatusArgs),
    /// Print a shipped object, decrypted and decompressed.
    Cat(cat::CatArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `ferry config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the config file (for editor completion).
    #[command(after_help = "Example:\n  ferry config schema > ferry.schema.json")]
    Schema,
}

/// The config file argument shared by commands.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Config file (TOML).
    #[arg(
        short = 'c',
        long = "config",
        env = "FERRY_CONFIG",
        value_name = "FILE"
    )]
    pub config: PathBuf,
}

/// Entry point used by `src/main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Check(args) => check::run(args),
        Command::ConsentUrl(args) => consent_url::run(args),
        Command::Status(args) => status::run(args),
        Command::Cat(args) => cat::run(args),
        Command::Config(ConfigCommand::Schema) => config_schema::run(),
    }
}

/// Writes a command's output to stdout in one piece.
///
/// A reader that went away early (`ferry config schema | head`) is not a failure: like `cat` and
/// ripgrep, the command stops writing and exits as it would have. Rust ignores SIGPIPE, so
/// `println!` would panic there instead. Any other write error is reported, naming the command,
/// and comes back as the runtime exit code.
pub(crate) fn write_stdout(command: &str, text: &[u8]) -> Result<(), ExitCode> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            eprintln!("ferry {command}: cannot write to stdout: {e}");
            Err(ExitCode::from(EXIT_RUNTIME))
        }
    }
}

/// [`write_stdout`], then `done` as the command's exit code (or the write's, when it failed).
pub(crate) fn print_then(command: &str, text: impl AsRef<[u8]>, done: ExitCode) -> ExitCode {
    match write_stdout(command, text.as_ref()) {
        Ok(()) => done,
        Err(code) => code,
    }
}

/// Loads a config, printing every problem to stderr; `Err` carries the exit code to return.
pub(crate) fn load_or_report(
    path: &std::path::Path,
) -> Result<crate::config::LoadedConfig, ExitCode> {
    crate::config::load(path).map_err(|errors| {
        for e in &errors.errors {
            eprintln!("{e}");
        }
        let n = errors.len();
        eprintln!(
            "ferry: {n} problem{} in {}; fix {} and run `ferry validate -c {}` again",
            if n == 1 { "" } else { "s" },
            path.display(),
            if n == 1 { "it" } else { "them" },
            path.display()
        );
        ExitCode::from(EXIT_CONFIG)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_shows_an_example_in_its_help() {
        let mut cmd = Cli::command();
        for sub in cmd.get_subcommands_mut() {
            let mut leaves: Vec<clap::Command> = if sub.has_subcommands() {
                sub.get_subcommands().cloned().collect()
            } else {
                vec![sub.clone()]
            };
            for leaf in &mut leaves {
                let help = leaf.render_long_help().to_string();
                assert!(
                    help.contains("Example"),
                    "`ferry {}` --help has no example:\n{help}",
                    leaf.get_name()
                );
                assert!(
                    help.contains("ferry "),
                    "`ferry {}` example does not show ferry",
                    leaf.get_name()
                );
            }
        }
    }

    #[test]
    fn documented_flags_parse() {
        for argv in [
            vec!["ferry", "run", "-c", "f.toml", "--once"],
            vec![
                "ferry", "check", "-c", "f.toml", "--tenant", "contoso", "--json",
            ],
            vec![
                "ferry",
                "status",
                "--url",
                "http://127.0.0.1:9464",
                "--json",
            ],
            vec!["ferry", "status", "-c", "f.toml"],
            vec![
                "ferry",
                "cat",
                "https://a.blob.core.windows.net/c/b",
                "-c",
                "f.toml",
            ],
            vec![
                "ferry",
                "consent-url",
                "-c",
                "f.toml",
                "--tenant",
                "contoso",
            ],
            vec!["ferry", "validate", "-c", "f.toml"],
            vec!["ferry", "config", "schema"],
        ] {
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("{argv:?} did not parse: {e}");
            }
        }
    }
}
