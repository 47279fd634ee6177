//! The Azure Blob service REST protocol, as both the customer side (`source`) and the provider
//! side (`sink`) speak it: listing, properties, ranged reads, Put Blob, Put Block, Put Block List,
//! and the service's error codes.
//!
//! Ferry calls the REST API with its shared reqwest client instead of `azure_storage_blob`: it
//! needs ranged reads locked to an ETag that resume mid-body, single Put Blob for small objects,
//! conditional commits, its own retry policy, and the `x-ms-error-code` of every refusal to set
//! tenant states; the SDK hides or re-does each of these.
//!
//! Owns: request shapes and response parsing. Must not: retry, decide tenant state, or hold
//! tokens (a bearer string is passed per call).

mod error;
mod list;

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};

pub use error::{BlobError, BlobErrorClass};
pub use list::{BlobItem, BlobKind, ListPage};

/// The `x-ms-version` Ferry speaks (Azurite runs with `--skipApiVersionCheck`).
pub const API_VERSION: &str = "2024-11-04";

/// A container on one account, reached with one HTTP client.
#[derive(Debug, Clone)]
pub struct ContainerClient {
    http: reqwest::Client,
    account_url: String,
    container: String,
}

/// Properties of one blob, from a HEAD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProperties {
    /// ETag, quotes included as the service sends it.
    pub etag: String,
    /// Size in bytes.
    pub content_length: u64,
    /// Block or append.
    pub kind: BlobKind,
    /// Creation time (RFC 1123), stable for the blob's life.
    pub creation_time: Option<String>,
    /// Last modified (RFC 1123).
    pub last_modified: Option<String>,
    /// User metadata, names lower-cased.
    pub metadata: BTreeMap<String, String>,
}

/// What to send with an upload.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// Metadata (names must be C# identifiers; values ASCII).
    pub metadata: BTreeMap<String, String>,
}

/// Percent-encodes a blob name for a URL path. A name with a `.` or `..` segment (possible in
/// Azure, and in Azurite through `\`) would be resolved away by URL parsing, reaching another blob
/// or container: such a name has its `/` sent as `%2F`, which the service decodes back.
fn percent_encode_path(name: &str) -> String {
    let dot_segment = name.split('/').any(|seg| seg == "." || seg == "..");
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'/' if dot_segment => out.push_str("%2F"),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes a metadata value so it is a valid header value: printable ASCII passes as it is,
/// anything else (non-ASCII, control characters) is percent-encoded as UTF-8.
///
/// `%` passes too: the value Ferry writes that can hold one is `ferry_source_url`, a URL already
/// percent-encoded, and it must stay a URL a reader can open (escaping `%` turned `%3D` into
/// `%253D`). Ferry's other values are names, ids, numbers and hex, printable ASCII without `%`.
pub fn encode_metadata_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        if ch.is_ascii_graphic() || ch == ' ' {
            out.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

impl ContainerClient {
    /// A client for `container` on `account_url` (e.g. `https://acct.blob.core.windows.net`).
    pub fn new(http: reqwest::Client, account_url: &str, container: &str) -> ContainerClient {
        ContainerClient {
            http,
            account_url: account_url.trim_end_matches('/').to_string(),
            container: container.to_string(),
        }
    }

    /// The account URL.
    pub fn account_url(&self) -> &str {
        &self.account_url
    }

    /// The container name.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The URL of a blob (for metadata and messages; names percent-encoded).
    pub fn blob_url(&self, name: &str) -> String {
        format!(
            "{}/{}/{}",
            self.account_url,
            self.container,
            percent_encode_path(name)
        )
    }

    fn container_url(&self) -> String {
        format!("{}/{}", self.account_url, self.container)
    }

    fn request(&self, method: reqwest::Method, url: &str, bearer: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header("x-ms-version", API_VERSION)
            .header("Authorization", bearer)
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        what: &'static str,
        blob: Option<&str>,
    ) -> Result<reqwest::Response, BlobError> {
        let resp = req
            .send()
            .await
            .map_err(|e| BlobError::network(what, blob, &e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(BlobError::from_response(what, blob, resp).await)
    }

    /// One page of List Blobs (flat), with metadata.
    pub async fn list_page(
        &self,
        bearer: &str,
        prefix: Option<&str>,
        marker: Option<&str>,
        max_results: u32,
    ) -> Result<ListPage, BlobError> {
        self.list_page_in(bearer, prefix, None, marker, max_results)
            .await
    }

    /// One page of List Blobs, with metadata; with a `delimiter` the page holds the blobs directly
    /// under `prefix` and the next-level prefixes in [`ListPage::prefixes`] (a directory walk).
    pub async fn list_page_in(
        &self,
        bearer: &str,
        prefix: Option<&str>,
        delimiter: Option<&str>,
        marker: Option<&str>,
        max_results: u32,
    ) -> Result<ListPage, BlobError> {
        let mut query: Vec<(&str, String)> = vec![
            ("restype", "container".into()),
            ("comp", "list".into()),
            ("include", "metadata".into()),
            ("maxresults", max_results.to_string()),
        ];
        if let Some(p) = prefix.filter(|p| !p.is_empty()) {
            query.push(("prefix", p.to_string()));
        }
        if let Some(d) = delimiter.filter(|d| !d.is_empty()) {
            query.push(("delimiter", d.to_string()));
        }
        if let Some(m) = marker.filter(|m| !m.is_empty()) {
            query.push(("marker", m.to_string()));
        }
        let resp = self
            .send(
                self.request(reqwest::Method::GET, &self.container_url(), bearer)
                    .query(&query),
                "list blobs",
                None,
            )
            .await?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| BlobError::network("list blobs", None, &e))?;
        list::parse_list(&body).map_err(|reason| BlobError::malformed("list blobs", None, reason))
    }

    /// Get Blob Properties.
    pub async fn properties(&self, bearer: &str, name: &str) -> Result<BlobProperties, BlobError> {
        let resp = self
            .send(
                self.request(reqwest::Method::HEAD, &self.blob_url(name), bearer),
                "get blob properties",
                Some(name),
            )
            .await?;
        properties_from_headers(resp.headers())
            .map_err(|r| BlobError::malformed("get blob properties", Some(name), r))
    }

    /// Get Blob of bytes `[start, end)` (end None = to the end), locked to `etag` when given.
    /// Returns None when there is nothing at `start` (Azure answers 416; Azurite 206 with an
    /// empty body at the end of an append blob: both mean "no new bytes").
    pub async fn get_range(
        &self,
        bearer: &str,
        name: &str,
        start: u64,
        end: Option<u64>,
        etag: Option<&str>,
    ) -> Result<Option<reqwest::Response>, BlobError> {
        let range = match end {
            Some(e) if e <= start => return Ok(None),
            Some(e) => format!("bytes={}-{}", start, e - 1),
            None => format!("bytes={start}-"),
        };
        let mut req = self
            .request(reqwest::Method::GET, &self.blob_url(name), bearer)
            .header("x-ms-range", range);
        if let Some(etag) = etag {
            req = req.header("If-Match", etag);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| BlobError::network("get blob", Some(name), &e))?;
        if resp.status().as_u16() == 416 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(BlobError::from_response("get blob", Some(name), resp).await);
        }
        if resp.content_length() == Some(0) {
            return Ok(None);
        }
        Ok(Some(resp))
    }

    fn upload_headers(opts: &UploadOptions) -> Result<HeaderMap, BlobError> {
        let mut h = HeaderMap::new();
        let bad = |what: &str| {
            BlobError::malformed("upload", None, format!("invalid header value for {what}"))
        };
        if let Some(ct) = &opts.content_type {
            h.insert(
                "x-ms-blob-content-type",
                HeaderValue::from_str(ct).map_err(|_| bad("content type"))?,
            );
        }
        if let Some(ce) = &opts.content_encoding {
            h.insert(
                "x-ms-blob-content-encoding",
                HeaderValue::from_str(ce).map_err(|_| bad("content encoding"))?,
            );
        }
        for (k, v) in &opts.metadata {
            let name = reqwest::header::HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes())
                .map_err(|_| bad(k))?;
            h.insert(
                name,
                HeaderValue::from_str(&encode_metadata_value(v)).map_err(|_| bad(k))?,
            );
        }
        Ok(h)
    }

    /// Put Blob (block blob) in one request; overwrites.
    pub async fn put_blob(
        &self,
        bearer: &str,
        name: &str,
        body: Bytes,
        opts: &UploadOptions,
    ) -> Result<String, BlobError> {
        let resp = self
            .send(
                self.request(reqwest::Method::PUT, &self.blob_url(name), bearer)
                    .header("x-ms-blob-type", "BlockBlob")
                    .headers(Self::upload_headers(opts)?)
                    // Put Blob requires Content-Length, also for an empty blob (HTTP/1.1 would
                    // otherwise send none for an empty body)
                    .header(reqwest::header::CONTENT_LENGTH, body.len())
                    .body(body),
                "put blob",
                Some(name),
            )
            .await?;
        Ok(header_string(resp.headers(), "etag").unwrap_or_default())
    }

    /// Put Block (staged, invisible until committed).
    pub async fn put_block(
        &self,
        bearer: &str,
        name: &str,
        block_id: &str,
        body: Bytes,
    ) -> Result<(), BlobError> {
        self.send(
            self.request(reqwest::Method::PUT, &self.blob_url(name), bearer)
                .query(&[("comp", "block"), ("blockid", block_id)])
                .body(body),
            "put block",
            Some(name),
        )
        .await?;
        Ok(())
    }

    /// Put Block List: commits the staged blocks as the blob's content; overwrites.
    pub async fn put_block_list(
        &self,
        bearer: &str,
        name: &str,
        block_ids: &[String],
        opts: &UploadOptions,
    ) -> Result<String, BlobError> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in block_ids {
            xml.push_str("<Latest>");
            xml.push_str(id);
            xml.push_str("</Latest>");
        }
        xml.push_str("</BlockList>");
        let resp = self
            .send(
                self.request(reqwest::Method::PUT, &self.blob_url(name), bearer)
                    .query(&[("comp", "blocklist")])
                    .headers(Self::upload_headers(opts)?)
                    .header("Content-Type", "application/xml")
                    .body(xml),
                "put block list",
                Some(name),
            )
            .await?;
        Ok(header_string(resp.headers(), "etag").unwrap_or_default())
    }

    /// Create Container; an existing container is fine.
    pub async fn create_if_missing(&self, bearer: &str) -> Result<(), BlobError> {
        match self
            .send(
                self.request(reqwest::Method::PUT, &self.container_url(), bearer)
                    .query(&[("restype", "container")]),
                "create container",
                None,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code.as_deref() == Some("ContainerAlreadyExists") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Downloads a whole blob into memory (small objects: tests, `ferry cat` metadata checks).
    pub async fn get_all(
        &self,
        bearer: &str,
        name: &str,
    ) -> Result<(BlobProperties, Bytes), BlobError> {
        let resp = self
            .send(
                self.request(reqwest::Method::GET, &self.blob_url(name), bearer),
                "get blob",
                Some(name),
            )
            .await?;
        let props = properties_from_headers(resp.headers())
            .map_err(|r| BlobError::malformed("get blob", Some(name), r))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| BlobError::network("get blob", Some(name), &e))?;
        Ok((props, body))
    }
}

fn header_string(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads blob properties from response headers.
pub fn properties_from_headers(h: &HeaderMap) -> Result<BlobProperties, String> {
    let etag = header_string(h, "etag").ok_or("response has no ETag")?;
    let content_length = match header_string(h, "content-range")
        .and_then(|r| r.rsplit('/').next().and_then(|t| t.parse::<u64>().ok()))
    {
        Some(total) => total,
        None => header_string(h, "content-length")
            .and_then(|v| v.parse().ok())
            .ok_or("response has no Content-Length")?,
    };
    let kind = match header_string(h, "x-ms-blob-type").as_deref() {
        Some("AppendBlob") => BlobKind::Append,
        Some("PageBlob") => BlobKind::Page,
        _ => BlobKind::Block,
    };
    let mut metadata = BTreeMap::new();
    for (k, v) in h {
        if let Some(name) = k.as_str().strip_prefix("x-ms-meta-") {
            if let Ok(v) = v.to_str() {
                metadata.insert(name.to_ascii_lowercase(), v.to_string());
            }
        }
    }
    Ok(BlobProperties {
        etag,
        content_length,
        kind,
        creation_time: header_string(h, "x-ms-creation-time"),
        last_modified: header_string(h, "last-modified"),
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_in_urls() {
        let c = ContainerClient::new(reqwest::Client::new(), "https://a.blob.x/", "c");
        assert_eq!(
            c.blob_url("a b/ü?x#"),
            "https://a.blob.x/c/a%20b/%C3%BC%3Fx%23"
        );
    }

    #[test]
    fn metadata_values_are_header_safe() {
        assert_eq!(encode_metadata_value("a/b c%ü\n"), "a/b c%%C3%BC%0A");
        let url = "https://acct.blob.core.windows.net/c/resourceId%3D/SUBSCRIPTIONS/a%20b.json";
        assert_eq!(encode_metadata_value(url), url);
    }
}
