//! `ferry status [--url URL | -c FILE] [--json]`: the state of a running Ferry, read from its status
//! server's `/status`; a table for people, the JSON passed through with `--json`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{EXIT_OK, EXIT_RUNTIME};
use crate::telemetry::server::StatusDocument;
use crate::telemetry::status::unix_now;
use crate::telemetry::TenantState;

/// Arguments of `ferry status`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ferry status --url http://127.0.0.1:9464\n  ferry status -c /etc/ferry/ferry.toml --json\n  ferry status --url http://127.0.0.1:9464 --healthz\n\n\
With -c, the status server address is agent.status_listen of that config, read even from a file\n\
that no longer loads (a running Ferry keeps the config it loaded last); agent.status_listen\n\
takes effect when Ferry starts, so after changing it, ask a running Ferry with --url.\n\
Exit codes: 0 the status was shown; 1 no Ferry answered; 2 bad config or usage."
)]
pub struct StatusArgs {
    /// Status server of the running Ferry: http://HOST:PORT (its agent.status_listen; host:port
    /// and a pasted .../status URL are taken too).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Config file whose agent.status_listen names the status server.
    #[arg(
        short = 'c',
        long = "config",
        env = "FERRY_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only ask /healthz: exit 0 when the process answers (container health checks).
    #[arg(long, conflicts_with = "json")]
    pub healthz: bool,
}

/// Runs `ferry status`.
pub fn run(args: StatusArgs) -> ExitCode {
    let base = match (&args.url, &args.config) {
        (Some(url), _) => match status_base(url) {
            Ok(base) => base,
            Err(msg) => {
                eprintln!("ferry status: {msg}");
                return ExitCode::from(super::EXIT_CONFIG);
            }
        },
        (None, Some(path)) => {
            let mut addr = match super::load_or_report(path) {
                Ok(l) => l.config.agent.status_listen,
                // a running Ferry keeps its config when a reload is refused: a file with
                // problems still names where it listens, unless the problem is that address
                Err(code) => match status_listen_of_broken_file(path) {
                    Some(addr) => {
                        eprintln!("ferry status: asking {addr}, the agent.status_listen of that file, all the same (a running Ferry keeps the config it loaded last)");
                        addr
                    }
                    None => return code,
                },
            };
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
        (None, None) => {
            eprintln!("ferry status: say which Ferry to ask\n  help: pass --url http://127.0.0.1:9464 or -c FILE (or set FERRY_CONFIG)");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferry status: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if args.healthz {
        return match runtime.block_on(fetch(&base, "/healthz")) {
            Ok(_) => ExitCode::from(EXIT_OK),
            Err(msg) => {
                eprintln!("ferry status: {msg}");
                ExitCode::from(EXIT_RUNTIME)
            }
        };
    }
    let body = match runtime.block_on(fetch(&base, "/status")) {
        Ok(b) => b,
        Err(msg) => {
            let hint = if args.url.is_none() {
                "\n  help: agent.status_listen is read when Ferry starts; if it changed since, that Ferry still listens on the old address: pass --url"
            } else {
                ""
            };
            eprintln!("ferry status: {msg}{hint}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if args.json {
        return super::print_then(
            "status",
            format!("{}\n", body.trim_end()),
            ExitCode::from(EXIT_OK),
        );
    }
    match serde_json::from_str::<StatusDocument>(&body) {
        Ok(doc) => super::print_then(
            "status",
            render_table(&doc, unix_now()),
            ExitCode::from(EXIT_OK),
        ),
        Err(e) => {
            eprintln!("ferry status: {base}/status did not answer a Ferry status document ({e}); is that address a Ferry status server?");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// `agent.status_listen` of a config file that does not load (or its default), when that one
/// value can be read: from the TOML, or, when the file is not even TOML any more, from its one
/// `status_listen = "..."` line (no other table has that key).
fn status_listen_of_broken_file(path: &std::path::Path) -> Option<std::net::SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    let written: Option<String> = match toml::from_str::<toml::Table>(&text) {
        Ok(doc) => match doc.get("agent").and_then(|a| a.get("status_listen")) {
            Some(v) => Some(v.as_str()?.to_string()),
            None => None,
        },
        Err(_) => {
            let mut lines = text.lines().filter_map(|l| {
                let value = l.trim().strip_prefix("status_listen")?.trim_start();
                let value = value.strip_prefix('=')?.trim();
                Some(value.strip_prefix('"')?.split('"').next()?.to_string())
            });
            let first = lines.next();
            if lines.next().is_some() {
                return None;
            }
            first
        }
    };
    match written {
        Some(addr) => addr.parse().ok(),
        None => Some(crate::config::AgentConfig::default().status_listen),
    }
}

/// The base URL of a status server from `--url`: `host:port` gets `http://`, a pasted endpoint
/// (`.../status`, `/healthz`, `/readyz`, `/metrics`) loses its path; anything else that is not
/// `http://host[:port]` is refused with what to write.
fn status_base(url: &str) -> Result<String, String> {
    let mut text = url.trim().trim_end_matches('/').to_string();
    if !text.contains("://") {
        text = format!("http://{text}");
    }
    for endpoint in ["/status", "/healthz", "/readyz", "/metrics"] {
        if let Some(base) = text.strip_suffix(endpoint) {
            text = base.to_string();
            break;
        }
    }
    let help = "write it as http://HOST:PORT, the agent.status_listen of that Ferry (e.g. http://127.0.0.1:9464)";
    let parsed =
        url::Url::parse(&text).map_err(|e| format!("--url {url:?} is not a URL ({e}); {help}"))?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "--url {url:?}: the status server speaks plain http, not {}; {help}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty)
        || parsed.path() != "/"
        || parsed.query().is_some()
    {
        return Err(format!(
            "--url {url:?} is not the address of a status server; {help}"
        ));
    }
    Ok(text)
}

async fn fetch(base: &str, path: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = format!("{base}{path}");
    let resp = client.get(&url).send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            format!("no ferry is listening on {base}: is it running? (`ferry run -c FILE` serves agent.status_listen)")
        } else {
            format!(
                "{url}: no HTTP answer ({}); is that address a Ferry status server? (it speaks plain http)",
                crate::service_message::describe_reqwest(&e)
            )
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!(
            "{url} answered {}; is that address a Ferry status server?",
            resp.status()
        ));
    }
    resp.text().await.map_err(|e| format!("{url}: {e}"))
}

/// "3m ago", "2h", ... for a duration in seconds.
fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The table `ferry status` prints: one line per source (tenant columns repeated), then the
/// reason and fix of every tenant that is not shipping, and the last error of every source.
pub fn render_table(doc: &StatusDocument, now: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:<18} {:>7} {:<14} {:>9} {:>7} {:>8} {:>10} {:>9}",
        "TENANT", "STATE", "SINCE", "SOURCE", "LAST OK", "LAG", "OBJECTS", "SHIPPED", "ERRORS"
    );
    let mut notes = Vec::new();
    for (name, t) in &doc.tenants {
        let since = ago(now - t.since);
        if t.sources.is_empty() {
            let _ = writeln!(
                out,
                "{name:<18} {:<18} {since:>7} {:<14}",
                t.state.as_str(),
                "-"
            );
        }
        for (sname, s) in &t.sources {
            let last_ok = s
                .last_success
                .map(|at| format!("{} ago", ago(now - at)))
                .unwrap_or_else(|| "never".into());
            let _ = writeln!(
                out,
                "{name:<18} {:<18} {since:>7} {sname:<14} {last_ok:>9} {:>7} {:>8} {:>10} {:>9}",
                t.state.as_str(),
                ago(s.lag_seconds as i64),
                s.objects_shipped,
                bytes(s.bytes_shipped),
                match &s.last_error {
                    Some(e) if e.resolved_at.is_some() => "resolved",
                    Some(_) => "yes",
                    None => "-",
                },
            );
            if let Some(roots) = s.partition_roots {
                notes.push(format!(
                    "{name}/{sname}: date-partitioned listing, {roots} resource roots, open since {}, {} List Blobs calls",
                    s.open_since.as_deref().unwrap_or("-"),
                    s.list_requests
                ));
            }
            // the error the tenant's reason already quotes is shown once, with the tenant
            let said = t.state != TenantState::Active
                && s.last_error.as_ref().is_some_and(|e| {
                    e.resolved_at.is_none()
                        && t.reason.as_deref().is_some_and(|r| r.contains(&e.message))
                });
            if let Some(e) = s.last_error.as_ref().filter(|_| !said) {
                // a resolved error is history: when it ended, and no fix to follow
                let (resolved, fix) = match e.resolved_at {
                    Some(at) => (format!(", resolved {} ago", ago(now - at)), String::new()),
                    None if e.fix.is_empty() => (String::new(), String::new()),
                    None => (String::new(), format!("\n    fix: {}", e.fix)),
                };
                notes.push(format!(
                    "{name}/{sname}: last error {} ago [{}]{resolved}: {}{fix}",
                    ago(now - e.at),
                    e.class,
                    e.message
                ));
            }
        }
        // every tenant that is not shipping normally says why: stopped (blocked) or slowed
        // (throttled, unreachable: a destination that refuses writes shows here too)
        if t.state.is_blocked() || t.reason.is_some() && t.state != TenantState::Active {
            let fix = match (t.fix.as_deref(), t.state.is_blocked()) {
                (Some(fix), _) => format!("\n    fix: {fix}"),
                (None, true) => "\n    fix: -".to_string(),
                (None, false) => String::new(),
            };
            notes.insert(
                0,
                format!(
                    "{name}: {}: {}{fix}",
                    t.state.as_str(),
                    t.reason.as_deref().unwrap_or("-"),
                ),
            );
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::status::LastError;
    use crate::telemetry::{StatusBoard, TenantState};

    #[test]
    fn status_urls_are_taken_as_people_write_them() {
        for (given, base) in [
            ("http://127.0.0.1:9464", "http://127.0.0.1:9464"),
            ("http://127.0.0.1:9464/", "http://127.0.0.1:9464"),
            ("localhost:9464", "http://localhost:9464"),
            ("http://127.0.0.1:9464/status", "http://127.0.0.1:9464"),
            ("127.0.0.1:9464/healthz/", "http://127.0.0.1:9464"),
            ("http://[::1]:9464/metrics", "http://[::1]:9464"),
        ] {
            assert_eq!(status_base(given).as_deref(), Ok(base), "{given}");
        }
        for (given, says) in [
            ("https://127.0.0.1:9464", "plain http, not https"),
            (
                "http://127.0.0.1:9464/other",
                "not the address of a status server",
            ),
            ("http://:9464", "not a URL"),
            ("http://127.0.0.1:99999", "not a URL"),
        ] {
            let e = status_base(given).expect_err(given);
            assert!(
                e.contains(says) && e.contains("http://HOST:PORT"),
                "{given}: {e}"
            );
        }
    }

    #[test]
    fn the_table_names_states_and_fixes() {
        let b = StatusBoard::new();
        b.register("contoso", "t1", &["audit".into()], TenantState::Active);
        b.register("fabrikam", "t2", &["audit".into()], TenantState::Starting);
        b.set_state(
            "fabrikam",
            TenantState::AccessDenied,
            Some("403 AuthorizationPermissionMismatch".into()),
            Some("assign Storage Blob Data Reader".into()),
        );
        b.update_source("contoso", "audit", |s| {
            s.objects_shipped = 4;
            s.bytes_shipped = 2048;
            s.last_success = Some(unix_now() - 30);
        });
        let doc = StatusDocument {
            generated_at: unix_now(),
            version: "x".into(),
            tenants: b.snapshot(),
        };
        let json = serde_json::to_string(&doc).unwrap();
        let back: StatusDocument = serde_json::from_str(&json).unwrap();
        let table = render_table(&back, unix_now());
        assert!(table.contains("contoso"), "{table}");
        assert!(table.contains("2.0 KiB"), "{table}");
        assert!(table.contains("access_denied"), "{table}");
        assert!(
            table.contains("fix: assign Storage Blob Data Reader"),
            "{table}"
        );
    }

    /// A throttled tenant (here: provider storage refusing writes) says why too, and its
    /// source's error is not printed a second time.
    #[test]
    fn a_throttled_tenant_says_why() {
        let b = StatusBoard::new();
        b.register("contoso", "t1", &["audit".into()], TenantState::Active);
        let message = "destination put blob failed: HTTP 403 AuthorizationPermissionMismatch";
        b.update_source("contoso", "audit", |s| {
            s.last_error = Some(LastError::now("destination", message, "grant the role"));
        });
        b.set_state(
            "contoso",
            TenantState::Throttled,
            Some(format!("source audit: {message}; retried every poll")),
            Some("grant the role".into()),
        );
        let doc = StatusDocument {
            generated_at: unix_now(),
            version: "x".into(),
            tenants: b.snapshot(),
        };
        let table = render_table(&doc, unix_now());
        assert!(
            table.contains(&format!(
                "contoso: throttled: source audit: {message}; retried every poll\n    fix: grant the role"
            )),
            "{table}"
        );
        assert_eq!(table.matches(message).count(), 1, "{table}");
    }

    /// An error the source got past stays visible as history, without a fix to follow; one
    /// that still stands keeps its fix.
    #[test]
    fn a_resolved_error_reads_as_history() {
        let b = StatusBoard::new();
        b.register(
            "contoso",
            "t1",
            &["audit".into(), "exports".into()],
            TenantState::Active,
        );
        b.update_source("contoso", "audit", |s| {
            let mut e = LastError::now("transient", "list blobs failed: HTTP 503 ServerBusy", "");
            e.at -= 300;
            e.resolved_at = Some(unix_now() - 240);
            s.last_error = Some(e);
        });
        b.update_source("contoso", "exports", |s| {
            s.last_error = Some(LastError::now(
                "unreachable",
                "no connection",
                "check the private endpoint",
            ));
        });
        let doc = StatusDocument {
            generated_at: unix_now(),
            version: "x".into(),
            tenants: b.snapshot(),
        };
        let back: StatusDocument =
            serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
        let table = render_table(&back, unix_now());
        let row = |source: &str| {
            table
                .lines()
                .find(|l| l.contains(source) && l.starts_with("contoso"))
                .unwrap_or_default()
                .to_string()
        };
        assert!(row("audit").ends_with("resolved"), "{table}");
        assert!(row("exports").ends_with("yes"), "{table}");
        assert!(
            table.contains(
                "contoso/audit: last error 5m ago [transient], resolved 4m ago: list blobs failed"
            ),
            "{table}"
        );
        assert!(table.contains("contoso/exports: last error 0s ago [unreachable]: no connection\n    fix: check the private endpoint"), "{table}");
        assert_eq!(table.matches("fix:").count(), 1, "{table}");
    }

    #[test]
    fn a_broken_file_still_names_its_status_address() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ferry.toml");
        let at = |text: &str| {
            std::fs::write(&file, text).unwrap();
            status_listen_of_broken_file(&file).map(|a| a.to_string())
        };
        let default = crate::config::AgentConfig::default()
            .status_listen
            .to_string();
        assert_eq!(
            at("[agent]\nstatus_listen = \"127.0.0.1:9470\"\n[app]\nbogus = 1\n").as_deref(),
            Some("127.0.0.1:9470")
        );
        assert_eq!(
            at("[agent\n  status_listen = \"127.0.0.1:9471\"  # x\n").as_deref(),
            Some("127.0.0.1:9471")
        );
        assert_eq!(at("[app]\nbogus = 1\n").as_deref(), Some(default.as_str()));
        assert_eq!(at("[agent\n").as_deref(), Some(default.as_str()));
        assert_eq!(at("[agent]\nstatus_listen = \"nowhere\"\n"), None);
        assert_eq!(
            at("[agent\nstatus_listen = \"127.0.0.1:1\"\nstatus_listen = \"127.0.0.1:2\"\n"),
            None
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(600), "10m");
        assert_eq!(ago(3 * 3600), "3h");
        assert_eq!(ago(-4), "0s");
    }
}
