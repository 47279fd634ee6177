//! Who is calling which vault: the vault host (name, kind, challenge values), the bearer token
//! (checked with the sim's verifier), the vault's network flags and the caller's permissions.
//! Produces `KvError`s exactly as Key Vault answers; never touches keys.

use axum::http::{header, HeaderMap};

use super::errors::KvError;
use super::model::{Area, Caller, PermissionModel, Vault, VaultKind};
use crate::jwt::{verify_access_token, AccessTokenError, JwtError};
use crate::state::SimState;

/// What the `Host` header says about the vault being called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultHost {
    /// Vault name (first label), lowercased.
    pub name: String,
    /// Vault or Managed HSM, from the second label.
    pub kind: VaultKind,
    /// The host as sent (lowercased, with port if any): the authority of `kid`s.
    pub authority: String,
    /// Everything after `vault.`/`managedhsm.`: `sandbox.test`, `azure.net`, ...
    pub suffix: String,
}

impl VaultHost {
    /// Parses `{name}.vault.{suffix}` or `{name}.managedhsm.{suffix}` (port allowed).
    pub fn parse(host: &str) -> Option<VaultHost> {
        let authority = host.trim().to_ascii_lowercase();
        let hostname = authority.split(':').next().unwrap_or_default();
        let mut labels = hostname.splitn(3, '.');
        let name = labels.next()?.to_string();
        let kind = match labels.next()? {
            "vault" => VaultKind::Vault,
            "managedhsm" => VaultKind::ManagedHsm,
            _ => return None,
        };
        let suffix = labels.next()?.to_string();
        if name.is_empty() || suffix.is_empty() {
            return None;
        }
        Some(VaultHost {
            name,
            kind,
            authority,
            suffix,
        })
    }

    /// From the request: the authority the server recorded (HTTP/2 has no `Host`), else `Host`.
    pub fn from_request(parts: &axum::http::request::Parts) -> Option<VaultHost> {
        if let Some(host) = parts.extensions.get::<crate::server::RequestHost>() {
            return VaultHost::parse(&host.authority);
        }
        parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(VaultHost::parse)
    }

    /// The token audience the vault accepts: `https://vault.{suffix}` or `https://managedhsm.{suffix}`.
    pub fn resource(&self) -> String {
        match self.kind {
            VaultKind::Vault => format!("https://vault.{}", self.suffix),
            VaultKind::ManagedHsm => format!("https://managedhsm.{}", self.suffix),
        }
    }

    /// The authority named in the challenge: `https://login.windows.net/{tid}` for Azure names,
    /// `https://login.{suffix}/{tid}` otherwise (`https://login.sandbox.test/{tid}`).
    pub fn authorization(&self, tenant_id: &str) -> String {
        if self.suffix == "azure.net" {
            format!("https://login.windows.net/{tenant_id}")
        } else {
            format!("https://login.{}/{tenant_id}", self.suffix)
        }
    }

    /// The `WWW-Authenticate` value of every 401.
    pub fn challenge(&self, tenant_id: &str) -> String {
        format!(
            "Bearer authorization=\"{}\", resource=\"{}\"",
            self.authorization(tenant_id),
            self.resource()
        )
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Checks the token of a request to `vault` reached as `host`: 401 challenge without a token,
/// 401 `Unauthorized` for a bad signature, time, audience or tenant.
pub fn authenticate(
    state: &SimState,
    headers: &HeaderMap,
    host: &VaultHost,
    vault: &Vault,
) -> Result<Caller, KvError> {
    let challenge = host.challenge(&vault.tenant_id);
    let Some(token) = bearer(headers) else {
        return Err(KvError::unauthorized(
            challenge,
            "AKV10000: Request is missing a Bearer or PoP token.",
        ));
    };
    let resource = host.resource();
    let claims = verify_access_token(state, token, &resource).map_err(|e| {
        let message = match e {
            AccessTokenError::WrongAudience { actual, expected } => {
                format!("AKV10022: Invalid audience. Expected {expected}, found: {actual}.")
            }
            AccessTokenError::Invalid(JwtError::Expired { .. }) => {
                "AKV10013: Token expired. Get a new token and retry.".to_string()
            }
            AccessTokenError::Invalid(JwtError::NotYetValid { .. }) => {
                "AKV10014: Token is not yet valid.".to_string()
            }
            AccessTokenError::Invalid(JwtError::BadSignature) => {
                "AKV10031: Token signature could not be validated.".to_string()
            }
            other => format!("AKV10000: Request is missing a valid Bearer token ({other})."),
        };
        KvError::unauthorized(challenge.clone(), message)
    })?;
    if !claims.tid.eq_ignore_ascii_case(&vault.tenant_id) {
        return Err(KvError::unauthorized(
            challenge,
            format!(
                "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{tid}/, https://login.microsoftonline.com/{tid}/v2.0, found https://sts.windows.net/{other}/.",
                tid = vault.tenant_id,
                other = claims.tid
            ),
        ));
    }
    Ok(Caller {
        tenant_id: claims.tid,
        object_id: claims.oid,
        app_id: claims.appid,
    })
}

/// The vault's network flags: `ForbiddenByFirewall`, then `ForbiddenByConnection`.
pub fn check_network(vault: &Vault, caller: &Caller) -> Result<(), KvError> {
    if vault.network.public_access_disabled {
        return Err(KvError::forbidden(
            "ForbiddenByConnection",
            format!(
                "Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\nCaller: {}\r\nVault: {};location=sandbox",
                caller_label(caller),
                vault.name
            ),
        ));
    }
    if vault.network.firewall_denied {
        return Err(KvError::forbidden(
            "ForbiddenByFirewall",
            format!(
                "Client address is not authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: {}\r\nVault: {};location=sandbox",
                caller_label(caller),
                vault.name
            ),
        ));
    }
    Ok(())
}

/// Whether `caller` may perform `op` (access-policy name, e.g. `unwrapKey`) on `area`.
pub fn check_permission(
    vault: &Vault,
    caller: &Caller,
    area: Area,
    op: &str,
) -> Result<(), KvError> {
    if vault.permits(caller, area, op) {
        return Ok(());
    }
    Err(match vault.permission_model {
        PermissionModel::AccessPolicy => KvError::forbidden(
            "ForbiddenByPolicy",
            format!(
                "The user, group or application '{}' does not have {} {} permission on key vault '{};location=sandbox'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                caller_label(caller),
                area.as_str(),
                op,
                vault.name
            ),
        ),
        PermissionModel::Rbac => KvError::forbidden(
            "ForbiddenByRbac",
            format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: {}\r\nAction: '{}'\r\nResource: '/vaults/{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {};location=sandbox",
                caller_label(caller),
                rbac_action(area, op),
                vault.name,
                vault.name
            ),
        ),
    })
}

fn caller_label(caller: &Caller) -> String {
    format!(
        "appid={};oid={};iss=https://sts.windows.net/{}/",
        caller.app_id, caller.object_id, caller.tenant_id
    )
}

fn rbac_action(area: Area, op: &str) -> String {
    let verb = match op.to_ascii_lowercase().as_str() {
        "get" | "list" if area == Area::Secrets => "getSecret/action",
        "get" | "list" => "read",
        "set" => "setSecret/action",
        "update" => "write",
        "wrapkey" => "wrap/action",
        "unwrapkey" => "unwrap/action",
        "create" => "create/action",
        "import" => "import/action",
        "delete" => "delete",
        _ => "action",
    };
    format!("Microsoft.KeyVault/vaults/{}/{verb}", area.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_give_name_kind_resource_and_challenge() {
        let h = VaultHost::parse("Contoso-KV.vault.sandbox.test:18443").expect("host");
        assert_eq!(h.name, "contoso-kv");
        assert_eq!(h.kind, VaultKind::Vault);
        assert_eq!(h.authority, "contoso-kv.vault.sandbox.test:18443");
        assert_eq!(
            h.challenge("t1"),
            "Bearer authorization=\"https://login.sandbox.test/t1\", resource=\"https://vault.sandbox.test\""
        );
        let p = VaultHost::parse("kv.vault.azure.net").expect("host");
        assert_eq!(
            p.challenge("t1"),
            "Bearer authorization=\"https://login.windows.net/t1\", resource=\"https://vault.azure.net\""
        );
        let m = VaultHost::parse("h1.managedhsm.sandbox.test").expect("host");
        assert_eq!(m.resource(), "https://managedhsm.sandbox.test");
        assert!(VaultHost::parse("acct.blob.sandbox.test").is_none());
        assert!(VaultHost::parse("vault").is_none());
    }

    #[test]
    fn bearer_needs_the_scheme_and_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }
}
