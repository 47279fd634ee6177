//! A typed client for the sim's admin API, and the reqwest client every sandbox test uses: it
//! trusts only the test CA and sends every sim host name (`*.sandbox.test` and the
//! production-style names the sim answers for) to the sim's https address. Other names fail to
//! resolve, so a test can never reach a real Azure endpoint.
//!
//! One method per admin route in docs/sandbox.md. Routes owned by sim-kv-gateway are reached through
//! the same client with the generic `post`/`put`/`delete` methods and typed helpers below.

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::faults::FaultSpec;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The http client could not be built (bad CA PEM).
    #[error("cannot build the sandbox http client: {0}; check the CA pem")]
    Client(reqwest::Error),
    /// The request did not complete.
    #[error("{route}: request failed: {source}; is the sim running?")]
    Request {
        /// Method and path.
        route: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The sim refused.
    #[error("{route}: sim answered {status}: {body}")]
    Status {
        /// Method and path.
        route: String,
        /// HTTP status.
        status: u16,
        /// Response body (the admin API's error text).
        body: String,
    },
    /// The answer was not the expected JSON.
    #[error("{route}: unexpected answer: {detail}")]
    Decode {
        /// Method and path.
        route: String,
        /// What was wrong.
        detail: String,
    },
}

/// Host names the sandbox pins to the sim.
pub fn is_sim_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "sandbox.test"
        || h.ends_with(".sandbox.test")
        || h == "login.microsoftonline.com"
        || h == "login.windows.net"
        || h.ends_with(".vault.azure.net")
        || h.ends_with(".managedhsm.azure.net")
        || h.ends_with(".blob.core.windows.net")
}

/// Resolves sim host names to the sim's address and refuses every other name.
#[derive(Debug, Clone, Copy)]
pub struct SandboxResolver {
    /// The sim's https address.
    pub sim: SocketAddr,
}

impl Resolve for SandboxResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let sim = self.sim;
        let host = name.as_str().to_string();
        Box::pin(async move {
            if is_sim_host(&host) || host == "localhost" {
                let addrs: Addrs = Box::new(std::iter::once(sim));
                Ok(addrs)
            } else {
                Err(format!("{host} is not a sandbox host; only *.sandbox.test and pinned production names resolve").into())
            }
        })
    }
}

/// A reqwest client trusting only `ca_pem` and pinning sim host names to `sim`.
pub fn sandbox_http_client(
    ca_pem: &str,
    sim: SocketAddr,
) -> Result<reqwest::Client, AdminClientError> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(AdminClientError::Client)?;
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .dns_resolver(Arc::new(SandboxResolver { sim }))
        .build()
        .map_err(AdminClientError::Client)
}

/// A new secret: its id and value (the value is shown once). `Debug` hides the value.
#[derive(Clone, Deserialize)]
pub struct AddedSecret {
    /// Secret id.
    pub id: String,
    /// The secret.
    pub value: String,
}

impl std::fmt::Debug for AddedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddedSecret")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .finish()
    }
}

/// Thumbprints of a registered certificate.
#[derive(Debug, Clone, Deserialize)]
pub struct CertificateThumbprints {
    /// Hex SHA-1.
    pub thumbprint_sha1: String,
    /// Hex SHA-256.
    pub thumbprint_sha256: String,
}

/// Ids of a managed identity.
#[derive(Debug, Clone, Deserialize)]
pub struct ManagedIdentityIds {
    /// Client id.
    pub client_id: String,
    /// Object id.
    pub object_id: String,
}

/// The admin API client.
#[derive(Debug, Clone)]
pub struct AdminClient {
    /// Pinned, CA-trusting client.
    http: reqwest::Client,
    /// `https://admin.sandbox.test/admin`.
    base: String,
}

fn field(route: &str, v: &Value, name: &str) -> Result<String, AdminClientError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AdminClientError::Decode {
            route: route.to_string(),
            detail: format!("no {name} in {v}"),
        })
}

impl AdminClient {
    /// A client for the sim at `sim` whose CA is `ca_pem`.
    pub fn new(ca_pem: &str, sim: SocketAddr) -> Result<Self, AdminClientError> {
        Ok(Self {
            http: sandbox_http_client(ca_pem, sim)?,
            base: "https://admin.sandbox.test/admin".into(),
        })
    }

    /// The underlying pinned http client (also good for data-plane calls).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AdminClientError> {
        let route = format!("{method} /admin{path}");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| AdminClientError::Request {
                route: route.clone(),
                source,
            })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|source| AdminClientError::Request {
                route: route.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(AdminClientError::Status {
                route,
                status: status.as_u16(),
                body: text,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| AdminClientError::Decode {
            route,
            detail: e.to_string(),
        })
    }

    /// `POST /admin{path}` with a JSON body (any admin route, including sim-kv-gateway's).
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, AdminClientError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// `PUT /admin{path}`.
    pub async fn put(&self, path: &str, body: Value) -> Result<Value, AdminClientError> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    /// `DELETE /admin{path}`, with an optional JSON body.
    pub async fn delete(&self, path: &str, body: Option<Value>) -> Result<Value, AdminClientError> {
        self.call(reqwest::Method::DELETE, path, body).await
    }

    /// `GET /admin{path}`.
    pub async fn get(&self, path: &str) -> Result<Value, AdminClientError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// `POST /admin/tenants`.
    pub async fn add_tenant(
        &self,
        tenant_id: &str,
        display_name: Option<&str>,
    ) -> Result<(), AdminClientError> {
        self.post(
            "/tenants",
            json!({"tenant_id": tenant_id, "display_name": display_name}),
        )
        .await
        .map(drop)
    }

    /// `POST /admin/apps`; returns the client id.
    pub async fn add_app(
        &self,
        client_id: Option<&str>,
        home_tenant_id: &str,
        display_name: Option<&str>,
    ) -> Result<String, AdminClientError> {
        let v = self
            .post("/apps", json!({"client_id": client_id, "home_tenant_id": home_tenant_id, "display_name": display_name}))
            .await?;
        field("POST /admin/apps", &v, "client_id")
    }

    /// `POST /admin/apps/{app}/secrets`.
    pub async fn add_secret(
        &self,
        app: &str,
        value: Option<&str>,
        expires_in_secs: Option<i64>,
    ) -> Result<AddedSecret, AdminClientError> {
        let v = self
            .post(
                &format!("/apps/{app}/secrets"),
                json!({"value": value, "expires_in_secs": expires_in_secs}),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| AdminClientError::Decode {
            route: "POST secrets".into(),
            detail: e.to_string(),
        })
    }

    /// `DELETE /admin/apps/{app}/secrets/{id}`.
    pub async fn remove_secret(&self, app: &str, id: &str) -> Result<(), AdminClientError> {
        self.delete(&format!("/apps/{app}/secrets/{id}"), None)
            .await
            .map(drop)
    }

    /// `POST /admin/apps/{app}/secrets/{id}/expire`.
    pub async fn expire_secret(&self, app: &str, id: &str) -> Result<(), AdminClientError> {
        self.post(&format!("/apps/{app}/secrets/{id}/expire"), json!({}))
            .await
            .map(drop)
    }

    /// `POST /admin/apps/{app}/certificates`.
    pub async fn add_certificate(
        &self,
        app: &str,
        pem: &str,
    ) -> Result<CertificateThumbprints, AdminClientError> {
        let v = self
            .post(&format!("/apps/{app}/certificates"), json!({"pem": pem}))
            .await?;
        serde_json::from_value(v).map_err(|e| AdminClientError::Decode {
            route: "POST certificates".into(),
            detail: e.to_string(),
        })
    }

    /// `DELETE /admin/apps/{app}/certificates/{thumbprint_sha1}`.
    pub async fn remove_certificate(
        &self,
        app: &str,
        thumbprint_sha1: &str,
    ) -> Result<(), AdminClientError> {
        self.delete(&format!("/apps/{app}/certificates/{thumbprint_sha1}"), None)
            .await
            .map(drop)
    }

    /// `POST /admin/apps/{app}/federated-credentials`; returns the credential id.
    pub async fn add_federated_credential(
        &self,
        app: &str,
        issuer: &str,
        subject: &str,
        audiences: &[&str],
    ) -> Result<String, AdminClientError> {
        let body = json!({"issuer": issuer, "subject": subject, "audiences": audiences});
        let v = self
            .post(&format!("/apps/{app}/federated-credentials"), body)
            .await?;
        field("POST federated-credentials", &v, "id")
    }

    /// `DELETE /admin/apps/{app}/federated-credentials/{id}`.
    pub async fn remove_federated_credential(
        &self,
        app: &str,
        id: &str,
    ) -> Result<(), AdminClientError> {
        self.delete(&format!("/apps/{app}/federated-credentials/{id}"), None)
            .await
            .map(drop)
    }

    /// `POST /admin/apps/{app}/disable`.
    pub async fn disable_app(&self, app: &str) -> Result<(), AdminClientError> {
        self.post(&format!("/apps/{app}/disable"), json!({}))
            .await
            .map(drop)
    }

    /// `POST /admin/apps/{app}/enable`.
    pub async fn enable_app(&self, app: &str) -> Result<(), AdminClientError> {
        self.post(&format!("/apps/{app}/enable"), json!({}))
            .await
            .map(drop)
    }

    /// `PUT /admin/tenants/{tid}/consent/{app}`; returns the service principal's object id.
    pub async fn consent(&self, tenant_id: &str, app: &str) -> Result<String, AdminClientError> {
        let v = self
            .put(&format!("/tenants/{tenant_id}/consent/{app}"), json!({}))
            .await?;
        field("PUT consent", &v, "object_id")
    }

    /// `DELETE /admin/tenants/{tid}/consent/{app}`.
    pub async fn revoke_consent(&self, tenant_id: &str, app: &str) -> Result<(), AdminClientError> {
        self.delete(&format!("/tenants/{tenant_id}/consent/{app}"), None)
            .await
            .map(drop)
    }

    /// `POST /admin/tenants/{tid}/consent/{app}/orphan`.
    pub async fn orphan_service_principal(
        &self,
        tenant_id: &str,
        app: &str,
    ) -> Result<(), AdminClientError> {
        self.post(
            &format!("/tenants/{tenant_id}/consent/{app}/orphan"),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// `POST /admin/managed-identities`.
    pub async fn add_managed_identity(
        &self,
        tenant_id: &str,
        client_id: Option<&str>,
    ) -> Result<ManagedIdentityIds, AdminClientError> {
        let v = self
            .post(
                "/managed-identities",
                json!({"tenant_id": tenant_id, "client_id": client_id}),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| AdminClientError::Decode {
            route: "POST managed-identities".into(),
            detail: e.to_string(),
        })
    }

    /// `PUT /admin/settings`.
    pub async fn update_settings(
        &self,
        token_lifetime_secs: Option<u64>,
        identity_header: Option<&str>,
    ) -> Result<(), AdminClientError> {
        let body =
            json!({"token_lifetime_secs": token_lifetime_secs, "identity_header": identity_header});
        self.put("/settings", body).await.map(drop)
    }

    /// `PUT /admin/settings {federated_propagation_secs}`: new federated credentials answer
    /// AADSTS70021 for this long, as Entra does while they propagate.
    pub async fn set_federated_propagation_secs(&self, secs: u64) -> Result<(), AdminClientError> {
        self.put("/settings", json!({ "federated_propagation_secs": secs }))
            .await
            .map(drop)
    }

    /// `POST /admin/workload-tokens`: an AKS-style projected token signed by the sim.
    pub async fn workload_token(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        lifetime_secs: Option<i64>,
    ) -> Result<String, AdminClientError> {
        let body = json!({"issuer": issuer, "subject": subject, "audience": audience, "lifetime_secs": lifetime_secs});
        let v = self.post("/workload-tokens", body).await?;
        field("POST workload-tokens", &v, "token")
    }

    /// `POST /admin/tokens`: an access token minted directly (test and demo setup only).
    pub async fn mint_token(
        &self,
        tenant_id: &str,
        resource: &str,
        object_id: &str,
        app_id: Option<&str>,
    ) -> Result<String, AdminClientError> {
        let body = json!({"tenant_id": tenant_id, "resource": resource, "object_id": object_id, "app_id": app_id});
        let v = self.post("/tokens", body).await?;
        field("POST tokens", &v, "access_token")
    }

    /// `GET /admin/requests`: kind -> tenant -> key -> count.
    pub async fn requests(&self) -> Result<Value, AdminClientError> {
        self.get("/requests").await
    }

    /// The number of token requests for (tenant, resource) seen so far.
    pub async fn token_request_count(
        &self,
        tenant_id: &str,
        resource: &str,
    ) -> Result<u64, AdminClientError> {
        let v = self.requests().await?;
        Ok(v["token"][tenant_id][resource].as_u64().unwrap_or(0))
    }

    /// `POST /admin/faults`; returns the rule id.
    pub async fn add_fault(&self, spec: &FaultSpec) -> Result<String, AdminClientError> {
        let body = serde_json::to_value(spec).map_err(|e| AdminClientError::Decode {
            route: "POST faults".into(),
            detail: e.to_string(),
        })?;
        let v = self.post("/faults", body).await?;
        field("POST faults", &v, "id")
    }

    /// `DELETE /admin/faults/{id}`.
    pub async fn remove_fault(&self, id: &str) -> Result<(), AdminClientError> {
        self.delete(&format!("/faults/{id}"), None).await.map(drop)
    }

    /// `DELETE /admin/faults`.
    pub async fn clear_faults(&self) -> Result<(), AdminClientError> {
        self.delete("/faults", None).await.map(drop)
    }
}
