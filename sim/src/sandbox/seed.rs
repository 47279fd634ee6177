//! A small blob client for tests and the demo: create container, put block blob, put block +
//! put block list, create append blob + append block, set metadata, get, delete, list. It talks
//! through the storage gateway with a token minted for a "customer admin" principal that holds
//! `Storage Blob Data Owner` on the account. Not a general SDK: no retries, no paging beyond 5000.

use base64::Engine as _;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Sandbox, SandboxError};
use crate::state::lock;

/// Object id of the customer admin principal the seeder acts as, in every tenant.
pub const CUSTOMER_ADMIN_OBJECT_ID: &str = "0a0a0a0a-0000-4000-8000-00000000ad01";
/// Client id the customer admin's tokens carry.
pub const CUSTOMER_ADMIN_APP_ID: &str = "0a0a0a0a-0000-4000-8000-00000000ad02";
/// `x-ms-version` the seeder sends.
const VERSION: &str = "2025-01-05";

/// Seeds blobs in one account through the gateway.
#[derive(Debug, Clone)]
pub struct BlobSeeder {
    http: reqwest::Client,
    endpoint: String,
    account: String,
    token: String,
}

impl Sandbox {
    /// A seeder for `account` (registered with `POST /admin/storage-accounts`): grants the customer
    /// admin `Storage Blob Data Owner` on the whole account and mints its token.
    pub async fn seeder(&self, account: &str) -> Result<BlobSeeder, SandboxError> {
        let account = account.to_ascii_lowercase();
        let tenant = lock(&self.state().storage).accounts.get(&account).cloned().ok_or_else(|| {
            SandboxError::Setup(format!("storage account {account} is not registered; call POST /admin/storage-accounts first"))
        })?;
        self.admin_json(
            Method::PUT,
            "/admin/role-assignments",
            Some(&json!({
                "account": account, "container": "*", "object_id": CUSTOMER_ADMIN_OBJECT_ID,
                "role": "Storage Blob Data Owner"
            })),
        )
        .await?;
        let token = self
            .mint_token(
                &tenant,
                "https://storage.azure.com",
                CUSTOMER_ADMIN_OBJECT_ID,
                Some(CUSTOMER_ADMIN_APP_ID),
            )
            .await?;
        Ok(BlobSeeder {
            http: self.http().clone(),
            endpoint: self.blob_endpoint(&account),
            account,
            token,
        })
    }
}

impl BlobSeeder {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(
                method,
                format!("{}/{}", self.endpoint, path.trim_start_matches('/')),
            )
            .bearer_auth(&self.token)
            .header("x-ms-version", VERSION)
    }

    async fn send(
        &self,
        op: &str,
        target: &str,
        request: reqwest::RequestBuilder,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response, SandboxError> {
        let fail = |status: u16, code: String| SandboxError::Blob {
            op: op.to_string(),
            target: format!("{}/{target}", self.account),
            status,
            code,
        };
        let response = request.send().await.map_err(|e| fail(0, e.to_string()))?;
        if ok.contains(&response.status()) {
            return Ok(response);
        }
        let status = response.status();
        let mut code = response
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(no x-ms-error-code)")
            .to_string();
        if status == StatusCode::BAD_GATEWAY {
            // the gateway's own failure to reach Azurite: its message says why
            let body = response.text().await.unwrap_or_default();
            if let Some(message) = body
                .split_once("<Message>")
                .and_then(|(_, rest)| rest.split_once("</Message>"))
            {
                code = format!("{code} ({})", message.0);
            }
        }
        Err(fail(status.as_u16(), code))
    }

    /// Creates `container` (an existing one is fine).
    pub async fn create_container(&self, container: &str) -> Result<(), SandboxError> {
        let r = self.request(Method::PUT, &format!("{container}?restype=container"));
        let response = self
            .send(
                "create container",
                container,
                r,
                &[StatusCode::CREATED, StatusCode::CONFLICT],
            )
            .await?;
        if response.status() == StatusCode::CONFLICT {
            let code = response
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if code != "ContainerAlreadyExists" {
                return Err(SandboxError::Blob {
                    op: "create container".into(),
                    target: format!("{}/{container}", self.account),
                    status: 409,
                    code: code.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Put Blob (block blob) with `data`.
    pub async fn put_block_blob(
        &self,
        container: &str,
        blob: &str,
        data: impl Into<Bytes>,
    ) -> Result<(), SandboxError> {
        let data: Bytes = data.into();
        let r = self
            .request(Method::PUT, &format!("{container}/{blob}"))
            .header("x-ms-blob-type", "BlockBlob")
            .header("content-length", data.len())
            .body(data);
        self.send(
            "put blob",
            &format!("{container}/{blob}"),
            r,
            &[StatusCode::CREATED],
        )
        .await
        .map(|_| ())
    }

    /// Put Block: stages `data` under `block_id` (raw id; base64-encoded here).
    pub async fn put_block(
        &self,
        container: &str,
        blob: &str,
        block_id: &str,
        data: impl Into<Bytes>,
    ) -> Result<(), SandboxError> {
        let data: Bytes = data.into();
        let id = base64::engine::general_purpose::STANDARD.encode(block_id);
        let r = self
            .request(Method::PUT, &format!("{container}/{blob}"))
            .query(&[("comp", "block"), ("blockid", id.as_str())])
            .header("content-length", data.len())
            .body(data);
        self.send(
            "put block",
            &format!("{container}/{blob}"),
            r,
            &[StatusCode::CREATED],
        )
        .await
        .map(|_| ())
    }

    /// Put Block List: commits `block_ids` (raw ids, latest versions) in order.
    pub async fn put_block_list(
        &self,
        container: &str,
        blob: &str,
        block_ids: &[&str],
    ) -> Result<(), SandboxError> {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
        for id in block_ids {
            xml.push_str(&format!(
                "<Latest>{}</Latest>",
                base64::engine::general_purpose::STANDARD.encode(id)
            ));
        }
        xml.push_str("</BlockList>");
        let r = self
            .request(Method::PUT, &format!("{container}/{blob}?comp=blocklist"))
            .header("content-type", "application/xml")
            .body(xml);
        self.send(
            "put block list",
            &format!("{container}/{blob}"),
            r,
            &[StatusCode::CREATED],
        )
        .await
        .map(|_| ())
    }

    /// Creates an empty append blob.
    pub async fn create_append_blob(
        &self,
        container: &str,
        blob: &str,
    ) -> Result<(), SandboxError> {
        let r = self
            .request(Method::PUT, &format!("{container}/{blob}"))
            .header("x-ms-blob-type", "AppendBlob")
            .header("content-length", 0);
        self.send(
            "create append blob",
            &format!("{container}/{blob}"),
            r,
            &[StatusCode::CREATED],
        )
        .await
        .map(|_| ())
    }

    /// Append Block, exactly once. It is conditional on the blob's length before it
    /// (`x-ms-blob-condition-appendpos`), so when the gateway answers 502 (it lost its connection
    /// to Azurite, not knowing whether Azurite applied the block) it is sent again safely: a
    /// refusal of the condition then means the first one landed, which the length confirms.
    pub async fn append_block(
        &self,
        container: &str,
        blob: &str,
        data: impl Into<Bytes>,
    ) -> Result<(), SandboxError> {
        let data: Bytes = data.into();
        let target = format!("{container}/{blob}");
        let before = self.blob_length(container, blob).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self
                .request(Method::PUT, &format!("{container}/{blob}?comp=appendblock"))
                .header("content-length", data.len())
                .header("x-ms-blob-condition-appendpos", before)
                .body(data.clone());
            match self
                .send("append block", &target, r, &[StatusCode::CREATED])
                .await
            {
                Ok(_) => return Ok(()),
                Err(SandboxError::Blob { status: 502, .. }) if attempt < 4 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e @ SandboxError::Blob { status: 412, .. }) if attempt > 1 => {
                    let now = self.blob_length(container, blob).await?;
                    return if now == before + data.len() as u64 {
                        Ok(())
                    } else {
                        Err(e)
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Get Blob Properties: the blob's length (asked again when the gateway answers 502).
    async fn blob_length(&self, container: &str, blob: &str) -> Result<u64, SandboxError> {
        let target = format!("{container}/{blob}");
        let mut attempt = 0;
        let response = loop {
            attempt += 1;
            let r = self.request(Method::HEAD, &target);
            match self
                .send("get blob properties", &target, r, &[StatusCode::OK])
                .await
            {
                Err(SandboxError::Blob { status: 502, .. }) if attempt < 4 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                other => break other?,
            }
        };
        response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| SandboxError::Blob {
                op: "get blob properties".into(),
                target: format!("{}/{target}", self.account),
                status: 200,
                code: "no Content-Length".into(),
            })
    }

    /// Set Blob Metadata (replaces all metadata).
    pub async fn set_metadata(
        &self,
        container: &str,
        blob: &str,
        metadata: &[(&str, &str)],
    ) -> Result<(), SandboxError> {
        let mut r = self
            .request(Method::PUT, &format!("{container}/{blob}?comp=metadata"))
            .header("content-length", 0);
        for (k, v) in metadata {
            r = r.header(format!("x-ms-meta-{k}"), *v);
        }
        self.send(
            "set metadata",
            &format!("{container}/{blob}"),
            r,
            &[StatusCode::OK],
        )
        .await
        .map(|_| ())
    }

    /// Get Blob: the whole body.
    pub async fn get_blob(&self, container: &str, blob: &str) -> Result<Bytes, SandboxError> {
        let r = self.request(Method::GET, &format!("{container}/{blob}"));
        let response = self
            .send(
                "get blob",
                &format!("{container}/{blob}"),
                r,
                &[StatusCode::OK],
            )
            .await?;
        response.bytes().await.map_err(|e| SandboxError::Blob {
            op: "get blob".into(),
            target: format!("{}/{container}/{blob}", self.account),
            status: 200,
            code: e.to_string(),
        })
    }

    /// Delete Blob.
    pub async fn delete_blob(&self, container: &str, blob: &str) -> Result<(), SandboxError> {
        let r = self.request(Method::DELETE, &format!("{container}/{blob}"));
        self.send(
            "delete blob",
            &format!("{container}/{blob}"),
            r,
            &[StatusCode::ACCEPTED],
        )
        .await
        .map(|_| ())
    }

    /// List Blobs: names under `prefix`, in service order (first 5000).
    pub async fn list_blobs(
        &self,
        container: &str,
        prefix: &str,
    ) -> Result<Vec<String>, SandboxError> {
        let r = self.request(Method::GET, container).query(&[
            ("restype", "container"),
            ("comp", "list"),
            ("prefix", prefix),
            ("maxresults", "5000"),
        ]);
        let response = self
            .send("list blobs", container, r, &[StatusCode::OK])
            .await?;
        let text = response.text().await.map_err(|e| SandboxError::Blob {
            op: "list blobs".into(),
            target: format!("{}/{container}", self.account),
            status: 200,
            code: e.to_string(),
        })?;
        Ok(blob_names(&text))
    }
}

/// The `<Name>` of every `<Blob>` in a List Blobs answer.
pub fn blob_names(xml: &str) -> Vec<String> {
    xml.split("<Blob>")
        .skip(1)
        .filter_map(|b| {
            let start = b.find("<Name>")? + "<Name>".len();
            let end = b[start..].find("</Name>")? + start;
            Some(unescape(&b[start..end]))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_come_from_list_xml() {
        let xml = "<?xml version=\"1.0\"?><EnumerationResults><Blobs><Blob><Name>a/b.json</Name><Properties/></Blob><Blob><Name>x&amp;y</Name></Blob></Blobs><NextMarker/></EnumerationResults>";
        assert_eq!(
            blob_names(xml),
            vec!["a/b.json".to_string(), "x&y".to_string()]
        );
        assert!(blob_names("<EnumerationResults/>").is_empty());
    }
}
