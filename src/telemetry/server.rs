//! The status HTTP server on `agent.status_listen`: `/healthz` (the process answers), `/readyz`
//! (every readiness check passes: config loaded, state store open, destination reachable),
//! `/status` (the board as JSON) and `/metrics` (Prometheus text).
//!
//! Readiness checks are given by the caller as named `ReadinessCheck`s (telemetry does not know
//! what a destination is); their results are cached for `READY_CACHE` so probes that come often
//! cost the destination one listing every few seconds at most.
//! Must not: change anything in the pipeline; every route only reads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::metrics::{MetricsText, CONTENT_TYPE};
use super::status::{unix_now, StatusBoard, TenantStatus};

/// How long a readiness result is reused.
pub const READY_CACHE: Duration = Duration::from_secs(5);

/// One readiness condition (e.g. "destination reachable").
pub trait ReadinessCheck: Send + Sync + 'static {
    /// `Ok` when ready; otherwise what is wrong and what to do, in words.
    fn check(&self) -> BoxFuture<'static, Result<(), String>>;
}

/// The body of `/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDocument {
    /// When this was generated (unix seconds).
    pub generated_at: i64,
    /// Ferry's version.
    pub version: String,
    /// Tenants by name.
    pub tenants: std::collections::BTreeMap<String, TenantStatus>,
}

/// The body of `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyDocument {
    /// True when every check passed.
    pub ready: bool,
    /// Each check: name -> `null` when it passed, else the problem.
    pub checks: std::collections::BTreeMap<String, Option<String>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StatusServerError {
    /// The address is in use or not ours.
    #[error("agent.status_listen {addr}: cannot listen: {source}; pick a free address or stop what holds it")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

struct Shared {
    board: StatusBoard,
    metrics: MetricsText,
    checks: Vec<(String, Arc<dyn ReadinessCheck>)>,
    cached: tokio::sync::Mutex<Option<(Instant, ReadyDocument)>>,
}

/// A bound status server, not yet serving.
pub struct StatusServer {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StatusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusServer")
            .field("addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl StatusServer {
    /// Binds `addr` (port 0 picks a free port) and logs the bound address.
    pub async fn bind(
        addr: SocketAddr,
        board: StatusBoard,
        checks: Vec<(String, Arc<dyn ReadinessCheck>)>,
    ) -> Result<StatusServer, StatusServerError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StatusServerError::Bind { addr, source })?;
        let server = StatusServer {
            listener,
            shared: Arc::new(Shared {
                metrics: MetricsText::new(board.clone()),
                board,
                checks,
                cached: tokio::sync::Mutex::new(None),
            }),
        };
        if let Some(a) = server.local_addr() {
            tracing::info!(address = %a, "status server listening on {a}");
        }
        Ok(server)
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` fires.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let app = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/status", get(status))
            .route("/metrics", get(metrics))
            .with_state(self.shared);
        tokio::spawn(async move {
            let r = axum::serve(self.listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "Status server stopped: /metrics and /status are unavailable until restart");
            }
        })
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let mut cached = s.cached.lock().await;
    let doc = match cached.as_ref() {
        Some((at, doc)) if at.elapsed() < READY_CACHE => doc.clone(),
        _ => {
            let mut checks = std::collections::BTreeMap::new();
            for (name, c) in &s.checks {
                checks.insert(name.clone(), c.check().await.err());
            }
            let doc = ReadyDocument {
                ready: checks.values().all(Option::is_none),
                checks,
            };
            *cached = Some((Instant::now(), doc.clone()));
            doc
        }
    };
    let code = if doc.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(doc)).into_response()
}

async fn status(State(s): State<Arc<Shared>>) -> Json<StatusDocument> {
    Json(StatusDocument {
        generated_at: unix_now(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        tenants: s.board.snapshot(),
    })
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], s.metrics.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::TenantState;

    struct Fails;
    impl ReadinessCheck for Fails {
        fn check(&self) -> BoxFuture<'static, Result<(), String>> {
            Box::pin(async { Err("destination unreachable".to_string()) })
        }
    }

    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let code = out[9..12].parse().unwrap();
        (code, out)
    }

    #[tokio::test]
    async fn serves_every_route() {
        let board = StatusBoard::new();
        board.register("srv-test", "t", &["audit".into()], TenantState::Active);
        let server = StatusServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            board,
            vec![(
                "destination_reachable".into(),
                Arc::new(Fails) as Arc<dyn ReadinessCheck>,
            )],
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = server.spawn(stop.clone());
        assert_eq!(get_text(addr, "/healthz").await.0, 200);
        let (code, body) = get_text(addr, "/readyz").await;
        assert_eq!(code, 503);
        assert!(body.contains("destination unreachable"), "{body}");
        let (code, body) = get_text(addr, "/status").await;
        assert_eq!(code, 200);
        assert!(body.contains("\"srv-test\""), "{body}");
        let (code, body) = get_text(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            body.contains("ferry_tenant_state{tenant=\"srv-test\",state=\"active\"} 1"),
            "{body}"
        );
        stop.cancel();
        task.await.unwrap();
    }
}
