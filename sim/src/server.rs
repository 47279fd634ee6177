//! The sim's listeners: one https listener (HTTP/1.1 and HTTP/2) that routes every request by its
//! host name (port ignored) to Entra, managed identity, Key Vault, the storage gateway or the admin
//! API, and an optional plain-http listener for the IMDS shape.
//!
//! Every data-plane request passes through the fault rules first (`faults`). Bodies stream both
//! ways (the gateway proxies GiB-sized blobs). This module owns sockets, TLS and routing only: no
//! service behaviour.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt as _;
use hyper::service::Service as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::{FaultAction, HostKind};
use crate::state::{lock, Settings, SimConfig, SimState};

/// Why the sim could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address is taken or not local.
    #[error("cannot listen on {addr}: {source}; pick a free port (0 picks one)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server certificate or key is unusable.
    #[error("server certificate or key unusable: {0}; regenerate with `ferry-sim ca generate`")]
    Tls(String),
    /// Test certificates could not be made.
    #[error("cannot make test certificates: {0}")]
    Certificates(#[from] crate::ca::CaError),
    /// Generating the token-signing key failed.
    #[error("cannot generate the token-signing key: {0}")]
    SigningKey(#[from] rsa::Error),
}

/// What `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// https listener address (port 0: any free port).
    pub https_listen: SocketAddr,
    /// Plain-http IMDS listener address, if wanted.
    pub imds_listen: Option<SocketAddr>,
    /// PEM chain of the server certificate (leaf first).
    pub server_cert_pem: String,
    /// PEM private key of the server certificate.
    pub server_key_pem: String,
    /// Initial run-time settings.
    pub settings: Settings,
    /// Fixed facts (CA, Azurite URL).
    pub config: SimConfig,
}

impl ServeConfig {
    /// Loopback on free ports (https and IMDS) with the given certificates: what tests use.
    pub fn ephemeral(certs: &crate::ca::SandboxCertificates) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            https_listen: any,
            imds_listen: Some(any),
            server_cert_pem: certs.server.chain_pem.clone(),
            server_key_pem: certs.server.key_pem.clone(),
            settings: Settings::default(),
            config: SimConfig {
                azurite_url: None,
                ca_pem: certs.ca_pem.clone(),
            },
        }
    }
}

/// The host a request was sent to, added to every request's extensions before routing.
#[derive(Debug, Clone)]
pub struct RequestHost {
    /// Host name, lower case, without port.
    pub host: String,
    /// Host as sent, with port if any (`login.sandbox.test:18443`).
    pub authority: String,
    /// The service the host belongs to.
    pub kind: HostKind,
}

/// A running sim. Dropping it stops the listeners and closes every connection.
pub struct RunningSim {
    /// Where the https listener is bound.
    https_addr: SocketAddr,
    /// Where the IMDS listener is bound.
    imds_addr: Option<SocketAddr>,
    /// Shared state.
    state: Arc<SimState>,
    /// Tells the accept loops to stop.
    stop: watch::Sender<bool>,
    /// The accept loops (each owns its connections).
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("https_addr", &self.https_addr)
            .field("imds_addr", &self.imds_addr)
            .finish()
    }
}

impl RunningSim {
    /// The https listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The plain-http IMDS listener's address, if started.
    pub fn imds_addr(&self) -> Option<SocketAddr> {
        self.imds_addr
    }

    /// The shared state (direct access for tests).
    pub fn state(&self) -> Arc<SimState> {
        Arc::clone(&self.state)
    }

    /// The test CA's PEM.
    pub fn ca_pem(&self) -> &str {
        &self.state.config.ca_pem
    }

    /// A reqwest client that trusts the test CA and sends every sim host name to this sim.
    pub fn http_client(&self) -> Result<reqwest::Client, crate::admin_client::AdminClientError> {
        crate::admin_client::sandbox_http_client(self.ca_pem(), self.https_addr)
    }

    /// A typed admin API client for this sim.
    pub fn admin(
        &self,
    ) -> Result<crate::admin_client::AdminClient, crate::admin_client::AdminClientError> {
        crate::admin_client::AdminClient::new(self.ca_pem(), self.https_addr)
    }

    /// Stops accepting, closes connections and waits for the listeners to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The routers per host kind, each with the state applied.
struct Routes {
    state: Arc<SimState>,
    login: Router,
    identity: Router,
    vault: Router,
    blob: Router,
    admin: Router,
}

/// Starts a sim for a test: fresh in-memory CA and certificates, loopback, free ports (https
/// and IMDS), default settings, no Azurite.
pub async fn serve_ephemeral() -> Result<RunningSim, ServeError> {
    let (certs, _ca) = crate::ca::SandboxCertificates::generate()?;
    serve(ServeConfig::ephemeral(&certs)).await
}

/// Starts the sim: binds the listeners and returns at once.
pub async fn serve(config: ServeConfig) -> Result<RunningSim, ServeError> {
    let tls = tls_acceptor(&config.server_cert_pem, &config.server_key_pem)?;
    let state = Arc::new(SimState::new(config.settings, config.config)?);
    let admin = crate::admin::router()
        .merge(crate::keyvault::admin_router())
        .merge(crate::gateway::admin_router());
    let routes = Arc::new(Routes {
        state: Arc::clone(&state),
        login: crate::entra::router().with_state(Arc::clone(&state)),
        identity: crate::msi::router().with_state(Arc::clone(&state)),
        vault: crate::keyvault::router().with_state(Arc::clone(&state)),
        blob: crate::gateway::router().with_state(Arc::clone(&state)),
        admin: Router::new()
            .nest("/admin", admin)
            .with_state(Arc::clone(&state)),
    });
    let (stop, stop_rx) = watch::channel(false);
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })
    };
    let https = bind(config.https_listen).await?;
    let https_addr = https.local_addr().map_err(|source| ServeError::Bind {
        addr: config.https_listen,
        source,
    })?;
    let mut tasks = vec![tokio::spawn(accept_loop(
        https,
        Some(tls),
        false,
        Arc::clone(&routes),
        stop_rx.clone(),
    ))];
    let mut imds_addr = None;
    if let Some(addr) = config.imds_listen {
        let imds = bind(addr).await?;
        imds_addr = Some(
            imds.local_addr()
                .map_err(|source| ServeError::Bind { addr, source })?,
        );
        tasks.push(tokio::spawn(accept_loop(imds, None, true, routes, stop_rx)));
    }
    tracing::info!(%https_addr, ?imds_addr, "Sim listening");
    Ok(RunningSim {
        https_addr,
        imds_addr,
        state,
        stop,
        tasks,
    })
}

fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("certificate pem: {e}")))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(
            "no CERTIFICATE block in the server certificate pem".into(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| ServeError::Tls(format!("key pem: {e}")))?
        .ok_or_else(|| ServeError::Tls("no private key block in the server key pem".into()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    imds: bool,
    routes: Arc<Routes>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                tracing::warn!(%error, "Accept failed");
                continue;
            }
        };
        let routes = Arc::clone(&routes);
        let tls = tls.clone();
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |req| handle(Arc::clone(&routes), imds, req));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(tls) => match tls.accept(tcp).await {
                    Ok(stream) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(error) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "Connection ended with an error");
            }
        });
    }
}

/// The service error that makes hyper drop the connection without answering (an injected outage).
#[derive(Debug, thiserror::Error)]
#[error("injected outage: connection closed without a response")]
pub struct InjectedOutage;

/// The connection reset an injected `reset_after_bytes` fault produces mid-body.
#[derive(Debug, thiserror::Error)]
#[error("injected connection reset after {0} body bytes")]
pub struct InjectedReset(u64);

fn request_host<B>(req: &Request<B>, imds: bool) -> RequestHost {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority.as_str(),
    }
    .to_ascii_lowercase();
    let kind = if imds {
        HostKind::Identity
    } else {
        HostKind::of(&host)
    };
    RequestHost {
        host,
        authority,
        kind,
    }
}

async fn handle(
    routes: Arc<Routes>,
    imds: bool,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, InjectedOutage> {
    let mut req = req.map(Body::new);
    let host = request_host(&req, imds);
    let fault =
        lock(&routes.state.faults).take_match(&host.host, req.method().as_str(), req.uri().path());
    let kind = host.kind;
    req.extensions_mut().insert(host);
    let Some(fault) = fault else {
        return Ok(route(&routes, kind, req).await);
    };
    if let Some(delay) = fault.latency() {
        tokio::time::sleep(delay).await;
    }
    if fault.spec.outage {
        return Err(InjectedOutage);
    }
    let response = match fault.error_response(kind) {
        Some(r) => r,
        None => route(&routes, kind, req).await,
    };
    if let Some(delay) = fault.response_latency() {
        tokio::time::sleep(delay).await;
    }
    Ok(truncate(response, &fault))
}

async fn route(routes: &Routes, kind: HostKind, req: Request<Body>) -> Response<Body> {
    let router = match kind {
        HostKind::Login => &routes.login,
        HostKind::Identity => &routes.identity,
        HostKind::Vault | HostKind::ManagedHsm => &routes.vault,
        HostKind::Blob => &routes.blob,
        HostKind::Admin => &routes.admin,
        HostKind::Unknown => {
            let mut r = Response::new(Body::from(
                "{\"error\":\"the sim serves no service at this host name\"}",
            ));
            *r.status_mut() = StatusCode::MISDIRECTED_REQUEST;
            return r;
        }
    };
    let result: Result<Response<Body>, Infallible> =
        TowerToHyperService::new(router.clone()).call(req).await;
    match result {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Applies `reset_after_bytes`: the body stops after that many bytes with an error, so the
/// connection is reset before the response completes.
fn truncate(response: Response<Body>, fault: &FaultAction) -> Response<Body> {
    let Some(limit) = fault.spec.reset_after_bytes else {
        return response;
    };
    let (parts, body) = response.into_parts();
    let stream = futures::stream::unfold(
        (body.into_data_stream(), limit, false),
        move |(mut inner, left, done)| async move {
            if done {
                return None;
            }
            if left == 0 {
                // Let the bytes already sent (and the headers) reach the wire first: an HTTP/2 reset
                // discards frames still queued for the stream.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                return Some((Err(InjectedReset(limit)), (inner, 0, true)));
            }
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
                    let piece: Bytes = chunk.slice(..take);
                    Some((Ok(piece), (inner, left - take as u64, false)))
                }
                // The real body ended (or failed) before the limit: reset anyway.
                _ => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Some((Err(InjectedReset(limit)), (inner, 0, true)))
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(uri: &str, host_header: Option<&str>) -> RequestHost {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host_header {
            b = b.header("host", h);
        }
        request_host(&b.body(()).expect("request"), false)
    }

    #[test]
    fn hosts_come_from_the_authority_or_the_host_header_without_port() {
        let h = host_of("https://Login.Sandbox.Test:8443/x", None);
        assert_eq!(
            (h.host.as_str(), h.kind),
            ("login.sandbox.test", HostKind::Login)
        );
        assert_eq!(h.authority, "Login.Sandbox.Test:8443");
        let h = host_of("/x", Some("contosologs.blob.sandbox.test:18443"));
        assert_eq!(
            (h.host.as_str(), h.kind),
            ("contosologs.blob.sandbox.test", HostKind::Blob)
        );
        let h = host_of("/x", Some("admin.sandbox.test"));
        assert_eq!(h.kind, HostKind::Admin);
        assert_eq!(host_of("/x", None).kind, HostKind::Unknown);
    }
}
