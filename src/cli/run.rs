//! `ferry run -c FILE [--once]`: the daemon, or one pass with `--once`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{ConfigArg, EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME};
use crate::config::LogFormat;
use crate::pipeline::{RunOptions, RunSummary, Supervisor};
use crate::telemetry::logging::{self, LogStyle};
use crate::telemetry::server::StatusServer;
use crate::telemetry::{Metrics, StatusBoard};

/// Arguments of `ferry run`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry run -c /etc/ferry/ferry.toml\n  ferry run -c config/local.toml --once\n\n\
Stops gracefully on SIGTERM or SIGINT: no new work, in-flight objects finish within\n\
agent.shutdown_grace, then what is left is abandoned uncommitted (shipped again after restart).\n\
Exit codes: 0 ok; 1 a tenant could not ship (with --once) or a runtime failure; 2 bad config."
)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Ship what is there now, then exit (instead of polling until stopped).
    #[arg(long)]
    pub once: bool,
}

/// The log style the config asks for.
pub(crate) fn log_style(f: LogFormat) -> LogStyle {
    match f {
        LogFormat::Auto => LogStyle::Auto,
        LogFormat::Human => LogStyle::Human,
        LogFormat::Json => LogStyle::Json,
    }
}

/// Runs `ferry run`.
pub fn run(args: RunArgs) -> ExitCode {
    let loaded = match super::load_or_report(&args.config.config) {
        Ok(l) => l,
        Err(code) => return code,
    };
    logging::init(log_style(loaded.config.agent.log_format));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry run: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    runtime.block_on(async move {
        let board = StatusBoard::new();
        let supervisor = match Supervisor::build(loaded, board.clone()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("ferry run: {e}");
                return ExitCode::from(if e.is_config() {
                    EXIT_CONFIG
                } else {
                    EXIT_RUNTIME
                });
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(wait_for_signals(shutdown.clone()));
        // status server and config reload (SIGHUP), daemon mode only
        let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
        let mut status_server = None;
        // the server keeps answering during the graceful stop, and ends after it
        let server_stop = CancellationToken::new();
        if !args.once {
            match start_status_server(&supervisor, &board, server_stop.clone()).await {
                Ok(task) => status_server = Some(task),
                Err(e) => {
                    eprintln!("ferry run: {e}");
                    return ExitCode::from(EXIT_RUNTIME);
                }
            }
            tokio::spawn(forward_sighup(reload_tx));
        }
        let progress =
            (args.once && std::io::stderr().is_terminal()).then(|| spawn_progress(board.clone()));
        let result = supervisor
            .run_with_reload(RunOptions { once: args.once }, shutdown.clone(), reloads)
            .await;
        server_stop.cancel();
        if let Some(task) = status_server {
            let _ = task.await;
        }
        if let Some((bar, task)) = progress {
            task.abort();
            bar.finish_and_clear();
        }
        match result {
            Ok(summary) => {
                // The summary is a report on work already done: a failed write is said on
                // stderr but does not change the exit code, which tells whether shipping did.
                let _ = super::write_stdout("run", summary_text(&summary).as_bytes());
                if args.once && !summary.all_ok() {
                    ExitCode::from(EXIT_RUNTIME)
                } else {
                    ExitCode::from(EXIT_OK)
                }
            }
            Err(e) => {
                eprintln!("ferry run: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        }
    })
}

/// Starts the status server on `agent.status_listen` and wires the scrape-time metric probes.
async fn start_status_server(
    supervisor: &Supervisor,
    board: &StatusBoard,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, crate::telemetry::server::StatusServerError> {
    let tokens = supervisor.tokens().clone();
    Metrics::set_token_totals(move || tokens.totals());
    let dest = supervisor.destination().clone();
    Metrics::set_destination_waited(move || dest.waited());
    let addr = supervisor.config().agent.status_listen;
    let server =
        StatusServer::bind(addr, board.clone(), super::readiness::checks(supervisor)).await?;
    Ok(server.spawn(shutdown))
}

/// Each SIGHUP asks the supervisor to reload the config file.
async fn forward_sighup(reloads: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("SIGHUP cannot be handled here: config reload is unavailable; restart ferry to apply config changes");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config file");
            if reloads.send(()).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    drop(reloads);
}

async fn wait_for_signals(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

fn spawn_progress(board: StatusBoard) -> (indicatif::ProgressBar, tokio::task::JoinHandle<()>) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            let snap = board.snapshot();
            let (mut objects, mut bytes, mut records) = (0u64, 0u64, 0u64);
            for t in snap.values() {
                for s in t.sources.values() {
                    objects += s.objects_shipped;
                    bytes += s.bytes_read;
                    records += s.records_shipped;
                }
            }
            b.set_message(format!(
                "{} tenants · {objects} objects · {records} records · {:.1} MiB read",
                snap.len(),
                bytes as f64 / 1048576.0
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (bar, task)
}

fn summary_text(summary: &RunSummary) -> String {
    use std::fmt::Write as _;
    let total = summary.total();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "shipped {} objects, {} records ({} rejected), {:.1} MiB read, {:.1} MiB written",
        total.objects,
        total.records,
        total.rejected,
        total.bytes_read as f64 / 1048576.0,
        total.bytes_written as f64 / 1048576.0
    );
    for (name, (state, t)) in &summary.tenants {
        let _ = writeln!(
            text,
            "  {name:<20} {:<18} {:>6} objects {:>9} records {:>4} failed",
            state.as_str(),
            t.shipped.objects,
            t.shipped.records,
            t.failed
        );
    }
    text
}
