//! The Key Vault / Managed HSM data plane: one handler that parses the path the way the service
//! does (case-insensitive operation names, optional version, optional trailing slash), then runs
//! challenge auth, network, permission, lookup and the operation, in the service's order.
//! It must not hold the vaults lock across an await, and never echoes key material except the
//! wrap/unwrap results the caller asked for.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::access::{authenticate, check_network, check_permission, VaultHost};
use super::bundle::{
    default_key_ops, deleted_key_bundle, key_bundle, key_id, secret_bundle, CreateKeyBody,
    ImportKeyBody, KeyOperationBody, SetSecretBody, UpdateKeyBody,
};
use super::crypto::{b64url, b64url_decode, CryptoError, KeyMaterial};
use super::errors::KvError;
use super::model::{new_version_id, now_secs, KeyVersion, SecretVersion, Vault, VaultKind};
use super::operation::Operation;
use crate::state::SimState;

/// Request bodies above this are refused (Key Vault bodies are small JSON documents).
const MAX_BODY_BYTES: usize = 1 << 20;

/// Serves every request to a `*.vault.*` or `*.managedhsm.*` host.
pub async fn serve(State(state): State<Arc<SimState>>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(state: &SimState, request: Request) -> Result<Response, KvError> {
    let (parts, body) = request.into_parts();
    let host = VaultHost::from_request(&parts).ok_or_else(|| {
        KvError::new(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "the Host header does not name a vault",
        )
    })?;
    let query = parts.uri.query().unwrap_or_default();
    let has_api_version = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .map(|pairs| {
            pairs
                .iter()
                .any(|(k, v)| k == "api-version" && !v.is_empty())
        })
        .unwrap_or(false);
    let body = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| KvError::bad_parameter("the request body is larger than 1 MiB"))?;

    // Authenticate and authorise under the lock, without awaiting.
    let operation = {
        let vaults = lock(state)?;
        let vault = find_vault(&vaults.by_name, &host)?;
        let caller = authenticate(state, &parts.headers, &host, vault)?;
        // Counted once the token is valid: `GET /admin/requests` -> vault -> tenant -> "vault/op".
        let label = Operation::parse(&parts.method, parts.uri.path())
            .map(|op| op.permission().1)
            .unwrap_or("unknown");
        state.count_request(
            "vault",
            &vault.tenant_id,
            &format!("{}/{label}", vault.name),
        );
        if !has_api_version {
            return Err(KvError::bad_parameter(
                "The api-version query parameter is missing; use api-version=7.5.",
            ));
        }
        check_network(vault, &caller)?;
        let operation = Operation::parse(&parts.method, parts.uri.path()).ok_or_else(|| {
            KvError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!(
                    "{} {} is not a Key Vault operation",
                    parts.method,
                    parts.uri.path()
                ),
            )
        })?;
        let (area, op) = operation.permission();
        check_permission(vault, &caller, area, op)?;
        operation
    };
    run(state, &host, operation, &body)
}

fn lock(state: &SimState) -> Result<std::sync::MutexGuard<'_, super::Vaults>, KvError> {
    state.vaults.lock().map_err(|_| {
        KvError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "vault state is poisoned",
        )
    })
}

fn find_vault<'a>(
    vaults: &'a std::collections::BTreeMap<String, Vault>,
    host: &VaultHost,
) -> Result<&'a Vault, KvError> {
    vaults
        .get(&host.name)
        .filter(|v| v.kind == host.kind)
        .ok_or_else(|| {
            KvError::new(
                StatusCode::NOT_FOUND,
                "VaultNotFound",
                format!(
                    "vault {} is not provisioned in the sim; create it with POST /admin/vaults",
                    host.name
                ),
            )
        })
}

fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, KvError> {
    serde_json::from_slice(body)
        .map_err(|e| KvError::bad_parameter(format!("The request body is not valid: {e}")))
}

fn ok(value: serde_json::Value) -> Response {
    (StatusCode::OK, Json(value)).into_response()
}

fn run(
    state: &SimState,
    host: &VaultHost,
    op: Operation,
    body: &[u8],
) -> Result<Response, KvError> {
    match op {
        Operation::CreateKey { name } => {
            let req: CreateKeyBody = parse_body(body)?;
            let version = build_version(host.kind, &req.kty, req.key_size, req.key_ops, None)?;
            insert_version(
                state,
                host,
                &name,
                version,
                req.attributes.enabled,
                req.attributes.nbf,
                req.attributes.exp,
                req.tags,
            )
        }
        Operation::ImportKey { name } => {
            let req: ImportKeyBody = parse_body(body)?;
            let jwk = req.key;
            let missing = |m: &str| {
                KvError::bad_parameter(format!(
                    "The jwk member {m} is required to import this key."
                ))
            };
            let material = if jwk.kty.starts_with("RSA") {
                KeyMaterial::import_rsa(
                    jwk.n.as_deref().ok_or_else(|| missing("n"))?,
                    jwk.e.as_deref().ok_or_else(|| missing("e"))?,
                    jwk.d.as_deref().ok_or_else(|| missing("d"))?,
                    jwk.p.as_deref().ok_or_else(|| missing("p"))?,
                    jwk.q.as_deref().ok_or_else(|| missing("q"))?,
                )
            } else if jwk.kty.starts_with("oct") {
                KeyMaterial::import_aes(jwk.k.as_deref().ok_or_else(|| missing("k"))?)
            } else {
                return Err(KvError::bad_parameter(format!(
                    "Key type {} is not supported.",
                    jwk.kty
                )));
            }
            .map_err(|e| KvError::bad_parameter(e.to_string()))?;
            let version = build_version(host.kind, &jwk.kty, None, jwk.key_ops, Some(material))?;
            insert_version(
                state,
                host,
                &name,
                version,
                req.attributes.enabled,
                req.attributes.nbf,
                req.attributes.exp,
                req.tags,
            )
        }
        Operation::GetKey { name, version } => {
            let vaults = lock(state)?;
            let vault = find_vault(&vaults.by_name, host)?;
            let v = live_version(vault, &name, &version)?;
            Ok(ok(key_bundle(&host.authority, &name, v)))
        }
        Operation::ListKeys => {
            let vaults = lock(state)?;
            let vault = find_vault(&vaults.by_name, host)?;
            let value: Vec<_> = vault
                .keys
                .iter()
                .filter(|(_, k)| !k.deleted)
                .filter_map(|(n, k)| k.versions.last().map(|v| (n, v)))
                .map(|(n, v)| {
                    let b = key_bundle(&host.authority, n, v);
                    json!({"kid": format!("https://{}/keys/{n}", host.authority), "attributes": b["attributes"], "tags": b["tags"]})
                })
                .collect();
            Ok(ok(json!({ "value": value, "nextLink": null })))
        }
        Operation::UpdateKey { name, version } => {
            let req: UpdateKeyBody = parse_body(body)?;
            let mut vaults = lock(state)?;
            let vault = vaults
                .by_name
                .get_mut(&host.name)
                .ok_or_else(|| KvError::key_not_found(&name))?;
            let key = vault
                .keys
                .get_mut(&name)
                .filter(|k| !k.deleted)
                .ok_or_else(|| KvError::key_not_found(&name))?;
            let v = key
                .version_mut(&version)
                .ok_or_else(|| KvError::key_not_found(&format!("{name}/{version}")))?;
            if let Some(enabled) = req.attributes.enabled {
                v.enabled = enabled;
            }
            if req.attributes.nbf.is_some() {
                v.nbf = req.attributes.nbf;
            }
            if req.attributes.exp.is_some() {
                v.exp = req.attributes.exp;
            }
            if let Some(ops) = req.key_ops {
                v.key_ops = ops;
            }
            if let Some(tags) = req.tags {
                v.tags = tags;
            }
            v.updated = now_secs();
            Ok(ok(key_bundle(&host.authority, &name, v)))
        }
        Operation::DeleteKey { name } => {
            let mut vaults = lock(state)?;
            let vault = vaults
                .by_name
                .get_mut(&host.name)
                .ok_or_else(|| KvError::key_not_found(&name))?;
            let key = vault
                .keys
                .get_mut(&name)
                .filter(|k| !k.deleted)
                .ok_or_else(|| KvError::key_not_found(&name))?;
            key.deleted = true;
            let v = key
                .versions
                .last()
                .ok_or_else(|| KvError::key_not_found(&name))?;
            Ok(ok(deleted_key_bundle(
                &host.authority,
                &name,
                v,
                now_secs(),
            )))
        }
        Operation::Wrap {
            name,
            version,
            unwrap,
        } => {
            let req: KeyOperationBody = parse_body(body)?;
            let value = b64url_decode(&req.value).ok_or_else(|| {
                KvError::bad_parameter("The parameter value is not valid base64url.")
            })?;
            let vaults = lock(state)?;
            let vault = find_vault(&vaults.by_name, host)?;
            let v = live_version(vault, &name, &version)?;
            let op = if unwrap { "unwrapKey" } else { "wrapKey" };
            if !v.enabled {
                return Err(KvError::forbidden(
                    "KeyDisabled",
                    format!("Operation {op} is not allowed on a disabled key."),
                ));
            }
            if !v.key_ops.iter().any(|o| o.eq_ignore_ascii_case(op)) {
                return Err(KvError::bad_parameter(format!(
                    "Operation {op} is not permitted on this key."
                )));
            }
            if host.kind == VaultKind::Vault && req.alg.ends_with("KW") {
                return Err(KvError::bad_parameter(format!(
                    "Algorithm {} is only supported by Managed HSM keys.",
                    req.alg
                )));
            }
            let result = if unwrap {
                v.material.unwrap(&req.alg, &value)
            } else {
                v.material.wrap(&req.alg, &value)
            };
            let out = result.map_err(|e| match e {
                CryptoError::UnsupportedAlgorithm { alg, kty } => KvError::bad_parameter(format!(
                    "Algorithm {alg} is not supported for key type {kty}."
                )),
                other => KvError::bad_parameter(other.to_string()),
            })?;
            Ok(ok(
                json!({ "kid": key_id(&host.authority, &name, &v.version), "value": b64url(&out) }),
            ))
        }
        Operation::GetDeletedKey { name } => {
            let vaults = lock(state)?;
            let vault = find_vault(&vaults.by_name, host)?;
            let v = vault
                .keys
                .get(&name)
                .filter(|k| k.deleted)
                .and_then(|k| k.versions.last())
                .ok_or_else(|| KvError::deleted_key_not_found(&name))?;
            Ok(ok(deleted_key_bundle(&host.authority, &name, v, v.updated)))
        }
        Operation::RecoverDeletedKey { name } => {
            let mut vaults = lock(state)?;
            let vault = vaults
                .by_name
                .get_mut(&host.name)
                .ok_or_else(|| KvError::deleted_key_not_found(&name))?;
            let key = vault
                .keys
                .get_mut(&name)
                .filter(|k| k.deleted)
                .ok_or_else(|| KvError::deleted_key_not_found(&name))?;
            key.deleted = false;
            let v = key
                .versions
                .last()
                .ok_or_else(|| KvError::key_not_found(&name))?;
            Ok(ok(key_bundle(&host.authority, &name, v)))
        }
        Operation::GetSecret { name, version } => {
            let vaults = lock(state)?;
            let vault = find_vault(&vaults.by_name, host)?;
            let versions = vault
                .secrets
                .get(&name)
                .ok_or_else(|| KvError::secret_not_found(&name))?;
            let s = if version.is_empty() {
                versions.last()
            } else {
                versions
                    .iter()
                    .find(|s| s.version.eq_ignore_ascii_case(&version))
            }
            .ok_or_else(|| KvError::secret_not_found(&format!("{name}/{version}")))?;
            Ok(ok(secret_bundle(&host.authority, &name, s, None)))
        }
        Operation::SetSecret { name } => {
            let req: SetSecretBody = parse_body(body)?;
            let mut vaults = lock(state)?;
            let vault = vaults
                .by_name
                .get_mut(&host.name)
                .ok_or_else(|| KvError::secret_not_found(&name))?;
            let s = SecretVersion {
                version: new_version_id(),
                value: req.value,
                created: now_secs(),
            };
            vault
                .secrets
                .entry(name.clone())
                .or_default()
                .push(s.clone());
            Ok(ok(secret_bundle(
                &host.authority,
                &name,
                &s,
                req.content_type.as_deref(),
            )))
        }
    }
}

/// The requested version of a key that exists and is not deleted, else 404 `KeyNotFound`.
fn live_version<'a>(
    vault: &'a Vault,
    name: &str,
    version: &str,
) -> Result<&'a KeyVersion, KvError> {
    let key = vault
        .keys
        .get(name)
        .filter(|k| !k.deleted)
        .ok_or_else(|| KvError::key_not_found(name))?;
    key.version(version)
        .ok_or_else(|| KvError::key_not_found(&format!("{name}/{version}")))
}

/// Makes a new key version (generating material unless imported), checking the key type fits the vault kind.
pub fn build_version(
    kind: VaultKind,
    kty: &str,
    key_size: Option<usize>,
    key_ops: Option<Vec<String>>,
    material: Option<KeyMaterial>,
) -> Result<KeyVersion, KvError> {
    let reported = match (kind, kty) {
        (VaultKind::Vault, "RSA" | "RSA-HSM") => "RSA",
        (VaultKind::ManagedHsm, "RSA" | "RSA-HSM") => "RSA-HSM",
        (VaultKind::ManagedHsm, "oct" | "oct-HSM") => "oct-HSM",
        _ => {
            return Err(KvError::bad_parameter(format!(
                "Key type {kty} is not supported by this {}.",
                if kind == VaultKind::Vault {
                    "vault"
                } else {
                    "managed HSM"
                }
            )))
        }
    };
    let material = match material {
        Some(m) => Ok(m),
        None if reported.starts_with("RSA") => KeyMaterial::generate_rsa(key_size.unwrap_or(2048)),
        None => KeyMaterial::generate_aes(key_size.unwrap_or(256)),
    }
    .map_err(|e| KvError::bad_parameter(e.to_string()))?;
    let now = now_secs();
    Ok(KeyVersion {
        version: new_version_id(),
        material,
        kty: reported.to_string(),
        key_ops: key_ops.unwrap_or_else(|| default_key_ops(reported)),
        enabled: true,
        created: now,
        updated: now,
        nbf: None,
        exp: None,
        tags: Default::default(),
    })
}

#[allow(clippy::too_many_arguments)]
fn insert_version(
    state: &SimState,
    host: &VaultHost,
    name: &str,
    mut version: KeyVersion,
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
    tags: std::collections::BTreeMap<String, String>,
) -> Result<Response, KvError> {
    version.enabled = enabled.unwrap_or(true);
    version.nbf = nbf;
    version.exp = exp;
    version.tags = tags;
    let mut vaults = lock(state)?;
    let vault = vaults
        .by_name
        .get_mut(&host.name)
        .ok_or_else(|| KvError::key_not_found(name))?;
    let key = vault.keys.entry(name.to_string()).or_default();
    if key.deleted {
        return Err(KvError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("Key {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."),
        ));
    }
    let bundle = key_bundle(&host.authority, name, &version);
    key.versions.push(version);
    Ok(ok(bundle))
}
