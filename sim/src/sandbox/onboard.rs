//! Provisioning in a few calls, so tests stay short: the provider (tenant, multi-tenant app with
//! secret, certificate and federated credential for its managed identity, the managed identity,
//! the destination account with Contributor) and customers (tenant, consent, account with a
//! container and Reader on it, vault with an RSA key and get/wrap/unwrap for the app).
//! Uses only the admin API, so it shows what a test could do by hand.

use reqwest::Method;
use serde_json::{json, Value};

use super::{Sandbox, SandboxError};

/// What to provision for the provider. `Default` gives the demo ids of docs/sandbox.md.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Provider tenant id.
    pub tenant_id: String,
    /// App client id (None: the sim picks one).
    pub app_client_id: Option<String>,
    /// App secret value (None: the sim generates one).
    pub app_secret: Option<String>,
    /// Managed identity client id (None: the sim picks one).
    pub managed_identity_client_id: Option<String>,
    /// Destination storage account (one of Azurite's accounts).
    pub account: String,
    /// Destination container.
    pub container: String,
}

impl Default for ProviderSpec {
    fn default() -> Self {
        ProviderSpec {
            tenant_id: super::demo::PROVIDER_TENANT.into(),
            app_client_id: Some(super::demo::APP_CLIENT_ID.into()),
            app_secret: None,
            managed_identity_client_id: Some(super::demo::MI_CLIENT_ID.into()),
            account: "provider".into(),
            container: "shipped".into(),
        }
    }
}

/// The provisioned provider.
#[derive(Clone)]
pub struct Provider {
    /// Provider tenant id.
    pub tenant_id: String,
    /// The multi-tenant app's client id.
    pub app_client_id: String,
    /// Id of the app secret.
    pub app_secret_id: String,
    /// The app secret value (never print it).
    pub app_secret: String,
    /// The app certificate (PEM) registered with the app.
    pub app_certificate_pem: String,
    /// Its PKCS#8 private key (PEM; never print it).
    pub app_certificate_key_pem: String,
    /// SHA-1 thumbprint (hex) of the certificate, as the sim reported it.
    pub app_certificate_thumbprint_sha1: String,
    /// The provider's managed identity client id.
    pub managed_identity_client_id: String,
    /// The managed identity's object id.
    pub managed_identity_object_id: String,
    /// Id of the federated credential trusting the managed identity.
    pub federated_credential_id: String,
    /// Destination account.
    pub account: String,
    /// Destination container.
    pub container: String,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("tenant_id", &self.tenant_id)
            .field("app_client_id", &self.app_client_id)
            .field(
                "managed_identity_client_id",
                &self.managed_identity_client_id,
            )
            .field("account", &self.account)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The head of a Ferry config for this sandbox: `[agent]` (state in `state/`, CA `ca.pem`,
    /// every `*.sandbox.test` host pinned to the sim's https port `sim_port`, json logs, then
    /// `agent_extra` lines), the sandbox's custom cloud, the provider's managed identity (App
    /// Service shape, header in `identity-header`), the app (secret in `app-secret`) and the
    /// destination. Paths are relative to the config file; tenants follow.
    pub fn ferry_config_head(&self, sim_port: u16, agent_extra: &str) -> String {
        format!(
            r#"[agent]
state_dir = "state"
status_listen = "127.0.0.1:0"
cloud = "custom"
ca_file = "ca.pem"
resolve = [{{ host = "*.sandbox.test", address = "127.0.0.1:{sim_port}" }}]
shutdown_grace = "5s"
log_format = "json"
{agent_extra}

[agent.custom_cloud]
authority_host = "https://login.sandbox.test"
blob_suffix = "blob.sandbox.test"
vault_suffix = "vault.sandbox.test"
vault_resource = "https://vault.sandbox.test"
storage_resource = "https://storage.azure.com"
log_analytics_endpoint = "https://api.loganalytics.sandbox.test"

[agent.managed_identity]
shape = "app_service"
endpoint = "https://identity.sandbox.test/msi/token"
header = {{ file = "identity-header" }}

[app]
client_id = "{app}"
home_tenant_id = "{home}"
credential = {{ kind = "secret", file = "app-secret" }}

[destination]
account_url = "https://{account}.blob.sandbox.test"
container = "{container}"
credential = {{ kind = "managed_identity", client_id = "{mi}" }}
"#,
            app = self.app_client_id,
            home = self.tenant_id,
            mi = self.managed_identity_client_id,
            account = self.account,
            container = self.container,
        )
    }
}

/// What to provision for one customer.
#[derive(Debug, Clone)]
pub struct CustomerSpec {
    /// Short name (`contoso`).
    pub name: String,
    /// Customer tenant id.
    pub tenant_id: String,
    /// Source storage account (one of Azurite's accounts).
    pub account: String,
    /// Container the app may read (Reader on it only).
    pub container: String,
    /// Vault name.
    pub vault: String,
    /// Key name.
    pub key: String,
}

impl CustomerSpec {
    /// A spec with container `insights-logs-auditevent` and key `ferry-cmk`.
    pub fn new(name: &str, tenant_id: &str, account: &str, vault: &str) -> Self {
        CustomerSpec {
            name: name.into(),
            tenant_id: tenant_id.into(),
            account: account.into(),
            container: "insights-logs-auditevent".into(),
            vault: vault.into(),
            key: "ferry-cmk".into(),
        }
    }
}

/// The provisioned customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// What was asked for.
    pub spec: CustomerSpec,
    /// Object id of the app's service principal in the customer tenant.
    pub service_principal_object_id: String,
    /// Full versioned key id of the key's first version.
    pub key_id: String,
}

fn str_field(v: &Value, field: &str, call: &str) -> Result<String, SandboxError> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            SandboxError::Setup(format!(
                "{call} answered without {field}: the sim and the sandbox disagree"
            ))
        })
}

impl Sandbox {
    /// Provisions the provider: tenant, app (secret, certificate, federated credential for the
    /// managed identity), managed identity, destination account + container with Contributor for
    /// the managed identity and the app.
    pub async fn onboard_provider(&self, spec: &ProviderSpec) -> Result<Provider, SandboxError> {
        let tid = spec.tenant_id.to_ascii_lowercase();
        self.admin_json(
            Method::POST,
            "/admin/tenants",
            Some(&json!({"tenant_id": tid, "display_name": "provider"})),
        )
        .await?;
        let mut app_req = json!({"home_tenant_id": tid, "display_name": "ferry"});
        if let Some(id) = &spec.app_client_id {
            app_req["client_id"] = json!(id);
        }
        let app = self
            .admin_json(Method::POST, "/admin/apps", Some(&app_req))
            .await?;
        let app_id = str_field(&app, "client_id", "POST /admin/apps")?;
        let mut secret_req = json!({});
        if let Some(v) = &spec.app_secret {
            secret_req["value"] = json!(v);
        }
        let secret = self
            .admin_json(
                Method::POST,
                &format!("/admin/apps/{app_id}/secrets"),
                Some(&secret_req),
            )
            .await?;
        let cert = crate::ca::client_certificate("ferry provider app")?;
        let thumbs = self
            .admin_json(
                Method::POST,
                &format!("/admin/apps/{app_id}/certificates"),
                Some(&json!({"pem": cert.cert_pem})),
            )
            .await?;
        let mut mi_req = json!({"tenant_id": tid});
        if let Some(id) = &spec.managed_identity_client_id {
            mi_req["client_id"] = json!(id);
        }
        let mi = self
            .admin_json(Method::POST, "/admin/managed-identities", Some(&mi_req))
            .await?;
        let mi_client = str_field(&mi, "client_id", "POST /admin/managed-identities")?;
        let mi_object = str_field(&mi, "object_id", "POST /admin/managed-identities")?;
        let fic = self
            .admin_json(
                Method::POST,
                &format!("/admin/apps/{app_id}/federated-credentials"),
                Some(&json!({
                    "issuer": format!("https://login.sandbox.test/{tid}/v2.0"),
                    "subject": mi_object,
                    "audiences": ["api://AzureADTokenExchange"],
                })),
            )
            .await?;
        self.admin_json(
            Method::POST,
            "/admin/storage-accounts",
            Some(&json!({"name": spec.account, "tenant_id": tid})),
        )
        .await?;
        for principal in [
            json!({"managed_identity_client_id": mi_client}),
            json!({"tenant_id": tid, "app_id": app_id}),
        ] {
            let mut body = json!({"account": spec.account, "container": spec.container, "role": "Storage Blob Data Contributor"});
            if let (Some(b), Some(p)) = (body.as_object_mut(), principal.as_object()) {
                b.extend(p.clone());
            }
            self.admin_json(Method::PUT, "/admin/role-assignments", Some(&body))
                .await?;
        }
        self.seeder(&spec.account)
            .await?
            .create_container(&spec.container)
            .await?;
        Ok(Provider {
            tenant_id: tid,
            app_secret_id: str_field(&secret, "id", "POST /admin/apps/{app}/secrets")?,
            app_secret: str_field(&secret, "value", "POST /admin/apps/{app}/secrets")?,
            app_certificate_pem: cert.cert_pem.clone(),
            app_certificate_key_pem: cert.key_pem.clone(),
            app_certificate_thumbprint_sha1: str_field(
                &thumbs,
                "thumbprint_sha1",
                "POST /admin/apps/{app}/certificates",
            )?,
            app_client_id: app_id,
            managed_identity_client_id: mi_client,
            managed_identity_object_id: mi_object,
            federated_credential_id: str_field(
                &fic,
                "id",
                "POST /admin/apps/{app}/federated-credentials",
            )?,
            account: spec.account.clone(),
            container: spec.container.clone(),
        })
    }

    /// Provisions a customer for `app_client_id`: tenant, admin consent, account + container with
    /// Reader for the app's service principal on that container, vault (access policies) with an
    /// RSA key `spec.key` and `get`, `wrapKey`, `unwrapKey` for the service principal.
    pub async fn onboard_customer(
        &self,
        app_client_id: &str,
        spec: &CustomerSpec,
    ) -> Result<Customer, SandboxError> {
        let tid = spec.tenant_id.to_ascii_lowercase();
        self.admin_json(
            Method::POST,
            "/admin/tenants",
            Some(&json!({"tenant_id": tid, "display_name": spec.name})),
        )
        .await?;
        let consent = self
            .admin_json(
                Method::PUT,
                &format!("/admin/tenants/{tid}/consent/{app_client_id}"),
                None,
            )
            .await?;
        let sp = str_field(
            &consent,
            "object_id",
            "PUT /admin/tenants/{tid}/consent/{app}",
        )?;
        self.admin_json(
            Method::POST,
            "/admin/storage-accounts",
            Some(&json!({"name": spec.account, "tenant_id": tid})),
        )
        .await?;
        self.admin_json(
            Method::PUT,
            "/admin/role-assignments",
            Some(&json!({"account": spec.account, "container": spec.container, "object_id": sp, "role": "Storage Blob Data Reader"})),
        )
        .await?;
        self.admin_json(
            Method::POST,
            "/admin/vaults",
            Some(&json!({"name": spec.vault, "tenant_id": tid, "kind": "vault", "permission_model": "access_policy"})),
        )
        .await?;
        let key = self
            .admin_json(
                Method::POST,
                &format!("/admin/vaults/{}/keys/{}", spec.vault, spec.key),
                Some(&json!({"kty": "RSA"})),
            )
            .await?;
        let key_id = key
            .pointer("/key/kid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SandboxError::Setup("the key bundle has no key.kid".into()))?;
        self.admin_json(
            Method::PUT,
            &format!("/admin/vaults/{}/access", spec.vault),
            Some(&json!({"object_id": sp, "keys": ["get", "wrapKey", "unwrapKey"], "secrets": []})),
        )
        .await?;
        self.seeder(&spec.account)
            .await?
            .create_container(&spec.container)
            .await?;
        Ok(Customer {
            spec: spec.clone(),
            service_principal_object_id: sp,
            key_id,
        })
    }
}
