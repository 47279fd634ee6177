//! Typed wrappers over the Key Vault and storage admin routes, for tests that revoke or change
//! one thing (disable a key, drop a role, close a vault's firewall) without writing JSON.

use reqwest::Method;
use serde_json::{json, Map, Value};

use super::{Sandbox, SandboxError};

/// Who a permission or role is for, as the admin API names principals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalRef {
    /// A service principal or managed identity by object id.
    ObjectId(String),
    /// The service principal of `app_id` in `tenant_id`.
    App {
        /// Tenant of the service principal.
        tenant_id: String,
        /// The app's client id.
        app_id: String,
    },
    /// A managed identity by client id.
    ManagedIdentity(String),
}

impl PrincipalRef {
    fn fields(&self) -> Map<String, Value> {
        let v = match self {
            PrincipalRef::ObjectId(o) => json!({ "object_id": o }),
            PrincipalRef::App { tenant_id, app_id } => {
                json!({ "tenant_id": tenant_id, "app_id": app_id })
            }
            PrincipalRef::ManagedIdentity(c) => json!({ "managed_identity_client_id": c }),
        };
        v.as_object().cloned().unwrap_or_default()
    }
}

fn with_principal(mut body: Value, principal: &PrincipalRef) -> Value {
    if let Some(b) = body.as_object_mut() {
        b.extend(principal.fields());
    }
    body
}

impl Sandbox {
    /// `POST /admin/vaults`; `kind` is `vault` or `managed_hsm`, `model` `access_policy` or `rbac`.
    pub async fn create_vault(
        &self,
        name: &str,
        tenant_id: &str,
        kind: &str,
        model: &str,
    ) -> Result<(), SandboxError> {
        let body =
            json!({"name": name, "tenant_id": tenant_id, "kind": kind, "permission_model": model});
        self.admin_json(Method::POST, "/admin/vaults", Some(&body))
            .await
            .map(drop)
    }

    /// `POST /admin/vaults/{vault}/keys/{name}`: a new version; returns its full key id.
    pub async fn create_key(
        &self,
        vault: &str,
        name: &str,
        kty: &str,
    ) -> Result<String, SandboxError> {
        let bundle = self
            .admin_json(
                Method::POST,
                &format!("/admin/vaults/{vault}/keys/{name}"),
                Some(&json!({"kty": kty})),
            )
            .await?;
        bundle
            .pointer("/key/kid")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SandboxError::Setup("the key bundle has no key.kid".into()))
    }

    /// Disables every version of a key (unwrap then answers 403 `KeyDisabled`).
    pub async fn disable_key(&self, vault: &str, name: &str) -> Result<(), SandboxError> {
        self.admin_json(
            Method::POST,
            &format!("/admin/vaults/{vault}/keys/{name}/disable"),
            None,
        )
        .await
        .map(drop)
    }

    /// Enables every version of a key.
    pub async fn enable_key(&self, vault: &str, name: &str) -> Result<(), SandboxError> {
        self.admin_json(
            Method::POST,
            &format!("/admin/vaults/{vault}/keys/{name}/enable"),
            None,
        )
        .await
        .map(drop)
    }

    /// Soft-deletes a key (404 `KeyNotFound` until recovered).
    pub async fn delete_key(&self, vault: &str, name: &str) -> Result<(), SandboxError> {
        self.admin_json(
            Method::DELETE,
            &format!("/admin/vaults/{vault}/keys/{name}"),
            None,
        )
        .await
        .map(drop)
    }

    /// Recovers a soft-deleted key.
    pub async fn recover_key(&self, vault: &str, name: &str) -> Result<(), SandboxError> {
        self.admin_json(
            Method::POST,
            &format!("/admin/vaults/{vault}/keys/{name}/recover"),
            None,
        )
        .await
        .map(drop)
    }

    /// Grants key and secret operations (access-policy names: `get`, `wrapKey`, `unwrapKey`, ...),
    /// replacing the principal's previous grant.
    pub async fn grant_vault_access(
        &self,
        vault: &str,
        principal: &PrincipalRef,
        keys: &[&str],
        secrets: &[&str],
    ) -> Result<(), SandboxError> {
        let body = with_principal(json!({"keys": keys, "secrets": secrets}), principal);
        self.admin_json(
            Method::PUT,
            &format!("/admin/vaults/{vault}/access"),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// Removes the principal's grant (403 `ForbiddenByPolicy` / `ForbiddenByRbac` afterwards).
    pub async fn revoke_vault_access(
        &self,
        vault: &str,
        principal: &PrincipalRef,
    ) -> Result<(), SandboxError> {
        let body = with_principal(json!({}), principal);
        self.admin_json(
            Method::DELETE,
            &format!("/admin/vaults/{vault}/access"),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// Sets the vault's network flags (`ForbiddenByFirewall`, `ForbiddenByConnection`).
    pub async fn set_vault_network(
        &self,
        vault: &str,
        firewall_denied: bool,
        public_access_disabled: bool,
    ) -> Result<(), SandboxError> {
        let body = json!({"firewall_denied": firewall_denied, "public_access_disabled": public_access_disabled});
        self.admin_json(
            Method::PUT,
            &format!("/admin/vaults/{vault}/network"),
            Some(&body),
        )
        .await
        .map(drop)
    }

    /// Stores a secret value (a new version).
    pub async fn set_vault_secret(
        &self,
        vault: &str,
        name: &str,
        value: &str,
    ) -> Result<(), SandboxError> {
        self.admin_json(
            Method::PUT,
            &format!("/admin/vaults/{vault}/secrets/{name}"),
            Some(&json!({"value": value})),
        )
        .await
        .map(drop)
    }

    /// Registers one of Azurite's accounts as owned by `tenant_id`.
    pub async fn register_storage_account(
        &self,
        account: &str,
        tenant_id: &str,
    ) -> Result<(), SandboxError> {
        let body = json!({"name": account, "tenant_id": tenant_id});
        self.admin_json(Method::POST, "/admin/storage-accounts", Some(&body))
            .await
            .map(drop)
    }

    /// Assigns a blob data role (`Storage Blob Data Reader|Contributor|Owner`) on a container or `*`.
    pub async fn assign_role(
        &self,
        account: &str,
        container: &str,
        principal: &PrincipalRef,
        role: &str,
    ) -> Result<(), SandboxError> {
        let body = with_principal(
            json!({"account": account, "container": container, "role": role}),
            principal,
        );
        self.admin_json(Method::PUT, "/admin/role-assignments", Some(&body))
            .await
            .map(drop)
    }

    /// Removes a role assignment (403 `AuthorizationPermissionMismatch` afterwards).
    pub async fn remove_role(
        &self,
        account: &str,
        container: &str,
        principal: &PrincipalRef,
        role: &str,
    ) -> Result<(), SandboxError> {
        let body = with_principal(
            json!({"account": account, "container": container, "role": role}),
            principal,
        );
        self.admin_json(Method::DELETE, "/admin/role-assignments", Some(&body))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_become_the_admin_fields() {
        let app = PrincipalRef::App {
            tenant_id: "t".into(),
            app_id: "a".into(),
        };
        assert_eq!(
            with_principal(json!({"x": 1}), &app),
            json!({"x": 1, "tenant_id": "t", "app_id": "a"})
        );
        let mi = PrincipalRef::ManagedIdentity("c".into());
        assert_eq!(
            with_principal(json!({}), &mi),
            json!({"managed_identity_client_id": "c"})
        );
    }
}
