//! Reading one customer container: listing pages, and ranged reads that resume from the last
//! byte received after a broken connection, locked to the blob's ETag where the blob must not
//! change underneath (block blobs), all within the tenant's request and byte limits.
//!
//! Owns: the customer side of Blob storage. Must not: decrypt, write anywhere, or decide the
//! tenant's state (it returns errors whose class says what happened).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;

use crate::blob_api::{BlobError, BlobErrorClass, BlobProperties, ContainerClient, ListPage};
use crate::identity::{FailureClass, TokenError, TokenProvider};
use crate::limits::Limits;
use crate::retry::{with_retries, RetryPolicy};

/// Why reading the customer's data failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// No token from the customer's tenant.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The customer's storage refused or failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The download broke more often than the retry policy allows.
    #[error("download of {blob} kept breaking at byte {at}: {reason}")]
    Interrupted {
        /// The blob.
        blob: String,
        /// Where it stopped.
        at: u64,
        /// Last error.
        reason: String,
    },
}

impl SourceError {
    /// True when a later retry of the same work may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Token(e) => e.class() == FailureClass::Transient,
            SourceError::Blob(e) => e.class == BlobErrorClass::Transient,
            SourceError::Interrupted { .. } => true,
        }
    }
}

/// A container of one customer, read as one tenant.
#[derive(Debug, Clone)]
pub struct BlobSource {
    container: ContainerClient,
    tokens: TokenProvider,
    tenant_id: String,
    resource: String,
    limits: Arc<Limits>,
    policy: RetryPolicy,
}

impl BlobSource {
    /// A reader of `container` as the app in `tenant_id`.
    pub fn new(
        container: ContainerClient,
        tokens: TokenProvider,
        tenant_id: String,
        resource: String,
        limits: Arc<Limits>,
    ) -> BlobSource {
        BlobSource {
            container,
            tokens,
            tenant_id,
            resource,
            limits,
            policy: RetryPolicy::default(),
        }
    }

    /// The container client.
    pub fn container(&self) -> &ContainerClient {
        &self.container
    }

    /// The tenant's limits (for metrics).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn bearer(&self) -> Result<String, SourceError> {
        Ok(self
            .tokens
            .app_token(&self.tenant_id, &self.resource)
            .await?
            .bearer())
    }

    /// Runs one request with the tenant's request limit, retries, and one token renewal on 401.
    async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, SourceError>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, BlobError>>,
    {
        let mut renewed = false;
        loop {
            let bearer = self.bearer().await?;
            let (res, _stats) = with_retries(self.policy, |_| {
                let bearer = bearer.clone();
                let fut = f(bearer);
                async move {
                    self.limits.request().await;
                    fut.await
                }
            })
            .await;
            match res {
                Err(e) if e.class == BlobErrorClass::Unauthorized && !renewed => {
                    renewed = true;
                    self.tokens.invalidate(
                        &crate::identity::Principal::App {
                            tenant_id: self.tenant_id.clone(),
                        },
                        &self.resource,
                    );
                }
                other => return other.map_err(SourceError::from),
            }
        }
    }

    /// One page of the flat listing.
    pub async fn list_page(
        &self,
        prefix: Option<&str>,
        marker: Option<&str>,
        max: u32,
    ) -> Result<ListPage, SourceError> {
        self.list_page_in(prefix, None, marker, max).await
    }

    /// One page of the listing; with a `delimiter`, one directory level (blobs and prefixes).
    pub async fn list_page_in(
        &self,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max: u32,
    ) -> Result<ListPage, SourceError> {
        self.call(|bearer| {
            let c = self.container.clone();
            let (prefix, delimiter, marker) = (
                prefix.map(str::to_string),
                delimiter.map(str::to_string),
                marker.map(str::to_string),
            );
            async move {
                c.list_page_in(
                    &bearer,
                    prefix.as_deref(),
                    delimiter.as_deref(),
                    marker.as_deref(),
                    max,
                )
                .await
            }
        })
        .await
    }

    /// A blob's properties.
    pub async fn properties(&self, name: &str) -> Result<BlobProperties, SourceError> {
        self.call(|bearer| {
            let c = self.container.clone();
            let name = name.to_string();
            async move { c.properties(&bearer, &name).await }
        })
        .await
    }

    /// Streams bytes `[start, end)` of a blob. `etag` locks every request (and every resume) to
    /// one version of the blob.
    pub fn read_range(
        &self,
        name: &str,
        start: u64,
        end: u64,
        etag: Option<String>,
    ) -> RangeReader {
        RangeReader {
            source: self.clone(),
            name: name.to_string(),
            pos: start,
            end,
            etag,
            body: None,
            resumes: 0,
        }
    }
}

type Body = futures::stream::BoxStream<'static, reqwest::Result<Bytes>>;

/// A ranged download that resumes after breaks.
pub struct RangeReader {
    source: BlobSource,
    name: String,
    pos: u64,
    end: u64,
    etag: Option<String>,
    body: Option<Body>,
    resumes: u32,
}

impl std::fmt::Debug for RangeReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeReader")
            .field("name", &self.name)
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl RangeReader {
    /// The next byte to be returned.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// How often the download was resumed.
    pub fn resumes(&self) -> u32 {
        self.resumes
    }

    /// The next chunk, or None at the end of the range.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, SourceError> {
        loop {
            if self.pos >= self.end {
                return Ok(None);
            }
            if self.body.is_none() {
                let (pos, end, etag, name) =
                    (self.pos, self.end, self.etag.clone(), self.name.clone());
                let resp = self
                    .source
                    .call(|bearer| {
                        let c = self.source.container.clone();
                        let (etag, name) = (etag.clone(), name.clone());
                        async move {
                            c.get_range(&bearer, &name, pos, Some(end), etag.as_deref())
                                .await
                        }
                    })
                    .await?;
                match resp {
                    None => {
                        // nothing at `pos`: the blob is shorter than listed (Azure 416 / Azurite empty 206)
                        return Err(SourceError::Blob(BlobError {
                            operation: "get blob",
                            blob: Some(self.name.clone()),
                            status: Some(416),
                            code: Some("InvalidRange".into()),
                            message: format!(
                                "no bytes at offset {pos}: the blob shrank or was replaced"
                            ),
                            class: BlobErrorClass::Changed,
                            retry_after: None,
                            no_connection: false,
                        }));
                    }
                    Some(r) => self.body = Some(r.bytes_stream().boxed()),
                }
            }
            let Some(body) = self.body.as_mut() else {
                continue;
            };
            match body.next().await {
                Some(Ok(chunk)) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    let room = (self.end - self.pos) as usize;
                    let chunk = if chunk.len() > room {
                        chunk.slice(..room)
                    } else {
                        chunk
                    };
                    self.source.limits.bytes(chunk.len() as u64).await;
                    self.pos += chunk.len() as u64;
                    self.resumes = 0;
                    return Ok(Some(chunk));
                }
                Some(Err(e)) => {
                    self.body = None;
                    self.resumes += 1;
                    if self.resumes >= self.source.policy.max_attempts {
                        return Err(SourceError::Interrupted {
                            blob: self.name.clone(),
                            at: self.pos,
                            reason: e.to_string(),
                        });
                    }
                    tokio::time::sleep(self.source.policy.delay(self.resumes, None)).await;
                }
                None => {
                    // the server ended the body early: resume from where it stopped
                    self.body = None;
                    if self.pos < self.end {
                        self.resumes += 1;
                        if self.resumes >= self.source.policy.max_attempts {
                            return Err(SourceError::Interrupted {
                                blob: self.name.clone(),
                                at: self.pos,
                                reason: "response body ended early".into(),
                            });
                        }
                    }
                }
            }
        }
    }
}
