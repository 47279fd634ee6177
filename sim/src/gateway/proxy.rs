//! Forwarding to Azurite: path-style (`{azurite}/{account}{path}?{query}`), request and response
//! bodies streamed both ways (never buffered: blobs are GiBs), headers and status kept.
//! Must not change what the client sent beyond hop-by-hop headers and `Host`.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Response, StatusCode};
use futures::TryStreamExt as _;

use super::errors::StorageError;

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// How long a connection to Azurite stays pooled unused: under Azurite's own keep-alive timeout
/// (5 s, `DEFAULT_BLOB_KEEP_ALIVE_TIMEOUT`), so the gateway never sends a request on a connection
/// Azurite is closing at that moment. With reqwest's default (90 s) that race surfaced as a 502
/// `ServerUnavailable` to whoever the gateway was forwarding for, which Azure itself does not
/// produce for an idle connection.
const UPSTREAM_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The sim was started without an Azurite URL.
    #[error(
        "the storage gateway has no azurite url; start the sim with one (the sandbox does this)"
    )]
    NotConfigured,
    /// The CA PEM could not be used.
    #[error("the test ca pem is unusable for the azurite client: {0}")]
    BadCa(String),
}

/// The client that reaches Azurite.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `https://127.0.0.1:PORT`, no trailing slash.
    pub base_url: String,
    /// Trusts only the test CA; no redirects, no proxy, no decompression.
    pub client: reqwest::Client,
}

impl Upstream {
    /// A client for `base_url` trusting `ca_pem`.
    pub fn new(base_url: &str, ca_pem: &str) -> Result<Upstream, UpstreamError> {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| UpstreamError::BadCa(e.to_string()))?;
        let client = reqwest::Client::builder()
            .tls_certs_only(certs)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(std::time::Duration::from_secs(10))
            .pool_idle_timeout(UPSTREAM_IDLE_TIMEOUT)
            .build()
            .map_err(|e| UpstreamError::BadCa(e.to_string()))?;
        Ok(Upstream {
            base_url: base_url.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// Sends the request to Azurite and streams the answer back.
    pub async fn forward(
        &self,
        method: axum::http::Method,
        account: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: Body,
    ) -> Response<Body> {
        let url = format!("{}/{account}{path_and_query}", self.base_url);
        let mut out = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if !is_hop_by_hop(name) {
                out.append(name.clone(), value.clone());
            }
        }
        let has_body = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
            || headers.contains_key(header::TRANSFER_ENCODING);
        let mut request = self.client.request(method, &url).headers(out);
        if has_body {
            request = request.body(reqwest::Body::wrap_stream(body.into_data_stream()));
        }
        let upstream = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                // Path only: a query string may carry a SAS signature.
                let path = path_and_query.split('?').next().unwrap_or_default();
                tracing::warn!(account, path, error = %e, "Azurite did not answer the gateway");
                return StorageError::new(
                    StatusCode::BAD_GATEWAY,
                    "ServerUnavailable",
                    format!(
                        "the sim's storage gateway could not reach azurite at {}: {e}",
                        self.base_url
                    ),
                )
                .into_response_with(None);
            }
        };
        let status = upstream.status();
        let mut response_headers = HeaderMap::with_capacity(upstream.headers().len());
        for (name, value) in upstream.headers() {
            if !is_hop_by_hop(name) {
                response_headers.append(name.clone(), value.clone());
            }
        }
        let stream = upstream.bytes_stream().map_err(std::io::Error::other);
        let mut response = Response::new(Body::from_stream(stream));
        *response.status_mut() = status;
        *response.headers_mut() = response_headers;
        response
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}
