//! What the sim knows about each vault: kind, tenant, permission model, network flags, keys (with
//! versions), secrets, and who may do what. Plain data with lookups; no HTTP here, no key
//! material in `Debug` output.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::crypto::KeyMaterial;

/// A vault or a Managed HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultKind {
    /// `{name}.vault.<suffix>`: RSA keys.
    Vault,
    /// `{name}.managedhsm.<suffix>`: RSA-HSM and oct-HSM keys.
    ManagedHsm,
}

/// How the vault decides who may do what; it only changes the 403 the caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PermissionModel {
    /// Vault access policies: denial is `ForbiddenByPolicy`.
    AccessPolicy,
    /// Azure RBAC: denial is `ForbiddenByRbac`.
    Rbac,
}

/// Who a permission or role assignment is for, matched against a token's claims.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Principal {
    /// A service principal or managed identity, by object id (`oid`).
    ObjectId(String),
    /// The service principal of `app_id` in `tenant_id` (`tid` + `appid`).
    App { tenant_id: String, app_id: String },
    /// A managed identity by client id (`appid` of its tokens).
    ManagedIdentity { client_id: String },
}

/// The identity a verified token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Tenant of the token (`tid`).
    pub tenant_id: String,
    /// Object id of the caller (`oid`).
    pub object_id: String,
    /// Client id of the calling app or managed identity (`appid`).
    pub app_id: String,
}

impl Principal {
    /// Whether `caller` is this principal.
    pub fn matches(&self, caller: &Caller) -> bool {
        match self {
            Principal::ObjectId(oid) => oid.eq_ignore_ascii_case(&caller.object_id),
            Principal::App { tenant_id, app_id } => {
                tenant_id.eq_ignore_ascii_case(&caller.tenant_id)
                    && app_id.eq_ignore_ascii_case(&caller.app_id)
            }
            Principal::ManagedIdentity { client_id } => {
                client_id.eq_ignore_ascii_case(&caller.app_id)
            }
        }
    }

    /// Builds a principal from the admin API's alternatives; `None` when none is given.
    pub fn from_parts(
        object_id: Option<&str>,
        tenant_id: Option<&str>,
        app_id: Option<&str>,
        managed_identity_client_id: Option<&str>,
    ) -> Option<Principal> {
        match (object_id, tenant_id, app_id, managed_identity_client_id) {
            (Some(oid), _, _, _) => Some(Principal::ObjectId(oid.to_ascii_lowercase())),
            (None, Some(t), Some(a), _) => Some(Principal::App {
                tenant_id: t.to_ascii_lowercase(),
                app_id: a.to_ascii_lowercase(),
            }),
            (None, _, _, Some(c)) => Some(Principal::ManagedIdentity {
                client_id: c.to_ascii_lowercase(),
            }),
            _ => None,
        }
    }
}

/// The operations a principal may perform, as access-policy names (`get`, `unwrapKey`, ...).
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// Key operations, lowercased.
    pub keys: Vec<String>,
    /// Secret operations, lowercased.
    pub secrets: Vec<String>,
}

/// One version of a key.
#[derive(Debug)]
pub struct KeyVersion {
    /// 32 lowercase hex characters.
    pub version: String,
    /// The key material (never serialised).
    pub material: KeyMaterial,
    /// `kty` as reported: `RSA`, `RSA-HSM` or `oct-HSM`.
    pub kty: String,
    /// Allowed operations reported in `key_ops`.
    pub key_ops: Vec<String>,
    /// Whether this version may be used.
    pub enabled: bool,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
    /// Optional not-before (unix seconds); reported, not enforced for unwrap (as in Azure).
    pub nbf: Option<i64>,
    /// Optional expiry (unix seconds); reported, not enforced for unwrap (as in Azure).
    pub exp: Option<i64>,
    /// Free-form tags.
    pub tags: BTreeMap<String, String>,
}

/// A named key: its versions in creation order, and whether it is soft-deleted.
#[derive(Debug, Default)]
pub struct Key {
    /// Oldest first; the last is the current version.
    pub versions: Vec<KeyVersion>,
    /// Soft-deleted keys answer 404 until recovered.
    pub deleted: bool,
}

impl Key {
    /// The version named `version`, or the current one when `version` is empty.
    pub fn version(&self, version: &str) -> Option<&KeyVersion> {
        if version.is_empty() {
            self.versions.last()
        } else {
            self.versions
                .iter()
                .find(|v| v.version.eq_ignore_ascii_case(version))
        }
    }

    /// Mutable form of [`Key::version`].
    pub fn version_mut(&mut self, version: &str) -> Option<&mut KeyVersion> {
        if version.is_empty() {
            self.versions.last_mut()
        } else {
            self.versions
                .iter_mut()
                .find(|v| v.version.eq_ignore_ascii_case(version))
        }
    }
}

/// One version of a secret.
#[derive(Debug, Clone)]
pub struct SecretVersion {
    /// 32 lowercase hex characters.
    pub version: String,
    /// The value (never logged).
    pub value: String,
    /// Unix seconds.
    pub created: i64,
}

/// Network restrictions of a vault.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkFlags {
    /// The vault firewall refuses the caller's address: `ForbiddenByFirewall`.
    pub firewall_denied: bool,
    /// Public network access is disabled and the caller is not on a private link: `ForbiddenByConnection`.
    pub public_access_disabled: bool,
}

/// One vault or Managed HSM.
#[derive(Debug)]
pub struct Vault {
    /// Vault name (first label of its host).
    pub name: String,
    /// The tenant whose tokens the vault accepts.
    pub tenant_id: String,
    /// Vault or Managed HSM.
    pub kind: VaultKind,
    /// Access policy or RBAC.
    pub permission_model: PermissionModel,
    /// Network flags.
    pub network: NetworkFlags,
    /// Keys by lowercased name.
    pub keys: BTreeMap<String, Key>,
    /// Secrets by lowercased name, oldest version first.
    pub secrets: BTreeMap<String, Vec<SecretVersion>>,
    /// Who may do what.
    pub grants: Vec<(Principal, Grant)>,
}

impl Vault {
    /// Whether `caller` holds `op` (an access-policy operation name) on keys or secrets.
    pub fn permits(&self, caller: &Caller, area: Area, op: &str) -> bool {
        self.grants.iter().any(|(p, g)| {
            p.matches(caller) && {
                let ops = match area {
                    Area::Keys => &g.keys,
                    Area::Secrets => &g.secrets,
                };
                ops.iter().any(|o| o == "all" || o.eq_ignore_ascii_case(op))
            }
        })
    }
}

/// Keys or secrets: the two permission areas of a vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Key operations.
    Keys,
    /// Secret operations.
    Secrets,
}

impl Area {
    /// `keys` or `secrets`, as in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Area::Keys => "keys",
            Area::Secrets => "secrets",
        }
    }
}

/// Every vault the sim serves, by lowercased name.
#[derive(Debug, Default)]
pub struct Vaults {
    /// Vaults and Managed HSMs by lowercased name.
    pub by_name: BTreeMap<String, Vault>,
}

/// A fresh version id: 32 lowercase hex characters, like Key Vault's.
pub fn new_version_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            tenant_id: "t1".into(),
            object_id: "o1".into(),
            app_id: "a1".into(),
        }
    }

    #[test]
    fn principals_match_by_object_id_app_or_managed_identity() {
        assert!(Principal::ObjectId("O1".into()).matches(&caller()));
        assert!(!Principal::ObjectId("o2".into()).matches(&caller()));
        let app = Principal::from_parts(None, Some("T1"), Some("A1"), None).expect("principal");
        assert!(app.matches(&caller()));
        let other_tenant =
            Principal::from_parts(None, Some("t2"), Some("a1"), None).expect("principal");
        assert!(!other_tenant.matches(&caller()));
        assert!(Principal::ManagedIdentity {
            client_id: "a1".into()
        }
        .matches(&caller()));
        assert!(Principal::from_parts(None, Some("t1"), None, None).is_none());
    }
}
