//! The few Key Vault requests `ferry check` makes, and what their refusals mean: the 401
//! challenge (which tenant the vault belongs to), `GET {vault}/keys/{name}` (exists, enabled,
//! key_ops) and an `unwrapkey` of a throwaway value wrapped locally with the key's public part
//! (RSA-OAEP, SHA-1), so no wrap permission is needed. The pipeline's Key Vault client lives in
//! `cmk`; these requests are kept here so the check can tell each refusal apart.
//!
//! Must not: send anything but the made-up value, or keep it.

use base64::Engine;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::identity::AccessToken;
use crate::telemetry::TenantState;

use super::Failure;

/// Key Vault API version used.
const API_VERSION: &str = "7.5";

/// A key identifier split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUrl {
    /// `https://<vault host>` (no trailing slash).
    pub vault: String,
    /// Vault host, lower-cased.
    pub host: String,
    /// Key name.
    pub name: String,
    /// Version, when the URL names one.
    pub version: Option<String>,
}

/// Parses `https://<vault>/keys/<name>[/<version>]`.
pub fn parse_key_url(key: &str) -> Option<KeyUrl> {
    let u = url::Url::parse(key).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    let segs: Vec<&str> = u.path_segments()?.filter(|s| !s.is_empty()).collect();
    let (name, version) = match segs.as_slice() {
        ["keys", name] => (name.to_string(), None),
        ["keys", name, version] => (name.to_string(), Some(version.to_string())),
        _ => return None,
    };
    let vault = match u.port() {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    };
    Some(KeyUrl {
        vault,
        host,
        name,
        version,
    })
}

/// What the vault's 401 challenge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Tenant named by `authorization` / `authorization_uri`.
    pub tenant_id: Option<String>,
    /// `resource` or `scope` (without `/.default`).
    pub resource: Option<String>,
}

/// Parses a `WWW-Authenticate: Bearer k="v", ...` value (with the parser Ferry's Key Vault
/// client uses), the resource without a trailing `/`.
pub fn parse_challenge(header: &str) -> Challenge {
    let (tenant_id, resource) = crate::cmk::parse_challenge(header);
    Challenge {
        tenant_id,
        resource: resource.map(|r| r.trim_end_matches('/').to_string()),
    }
}

/// A Key Vault refusal: status, `error.code`, `error.innererror.code`, first message line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRefusal {
    /// HTTP status (0: no answer).
    pub status: u16,
    /// `error.code`.
    pub code: String,
    /// `error.innererror.code`.
    pub inner: Option<String>,
    /// First line of `error.message`, or the network error.
    pub message: String,
}

impl VaultRefusal {
    /// The most specific code.
    pub fn code(&self) -> &str {
        self.inner.as_deref().unwrap_or(&self.code)
    }
}

async fn refusal(resp: reqwest::Response) -> VaultRefusal {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    let text = |p: &str| body.pointer(p).and_then(|v| v.as_str()).map(str::to_string);
    VaultRefusal {
        status,
        code: text("/error/code").unwrap_or_else(|| format!("HTTP{status}")),
        inner: text("/error/innererror/code"),
        message: text("/error/message")
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .unwrap_or_default(),
    }
}

fn network(e: &reqwest::Error) -> VaultRefusal {
    VaultRefusal {
        status: 0,
        // no connection at all (refused, no route, DNS) against one that broke or timed out
        code: if e.is_connect() {
            "NoConnection"
        } else {
            "Network"
        }
        .into(),
        inner: None,
        message: crate::service_message::describe_reqwest(e),
    }
}

/// Asks the vault, without a token, for its challenge.
pub async fn challenge(http: &reqwest::Client, key: &KeyUrl) -> Result<Challenge, VaultRefusal> {
    let url = format!("{}/keys/{}?api-version={API_VERSION}", key.vault, key.name);
    let resp = http.get(&url).send().await.map_err(|e| network(&e))?;
    if resp.status().as_u16() != 401 {
        return Err(refusal(resp).await);
    }
    let header = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok(parse_challenge(&header))
}

/// The parts of a key bundle the check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    /// Full versioned key id.
    pub kid: String,
    /// `RSA`, `RSA-HSM`, `oct-HSM`, ...
    pub kty: String,
    /// Permitted operations.
    pub key_ops: Vec<String>,
    /// `attributes.enabled`.
    pub enabled: bool,
    /// RSA modulus and exponent (big-endian), when RSA.
    pub rsa: Option<(Vec<u8>, Vec<u8>)>,
}

impl KeyFacts {
    /// True when `op` is among the key's permitted operations.
    pub fn allows(&self, op: &str) -> bool {
        self.key_ops.iter().any(|o| o.eq_ignore_ascii_case(op))
    }

    /// The version from `kid`.
    pub fn version(&self) -> Option<&str> {
        self.kid.rsplit('/').next().filter(|v| !v.is_empty())
    }
}

/// `GET {vault}/keys/{name}[/{version}]?api-version=7.5`.
pub async fn get_key(
    http: &reqwest::Client,
    key: &KeyUrl,
    token: &AccessToken,
) -> Result<KeyFacts, VaultRefusal> {
    let url = match &key.version {
        Some(v) => format!(
            "{}/keys/{}/{v}?api-version={API_VERSION}",
            key.vault, key.name
        ),
        None => format!("{}/keys/{}?api-version={API_VERSION}", key.vault, key.name),
    };
    let resp = http
        .get(&url)
        .header("Authorization", token.bearer())
        .send()
        .await
        .map_err(|e| network(&e))?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.map_err(|e| VaultRefusal {
        status,
        code: "Unreadable".into(),
        inner: None,
        message: format!("the key bundle is not JSON: {e}"),
    })?;
    let s = |p: &str| {
        v.pointer(p)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string()
    };
    let b64 = |p: &str| {
        v.pointer(p).and_then(|x| x.as_str()).and_then(|x| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(x.trim_end_matches('='))
                .ok()
        })
    };
    let rsa = match (b64("/key/n"), b64("/key/e")) {
        (Some(n), Some(e)) => Some((n, e)),
        _ => None,
    };
    Ok(KeyFacts {
        kid: s("/key/kid"),
        kty: s("/key/kty"),
        key_ops: v
            .pointer("/key/key_ops")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|o| o.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        enabled: v
            .pointer("/attributes/enabled")
            .and_then(|x| x.as_bool())
            .unwrap_or(true),
        rsa,
    })
}

/// Wraps a random 40-byte value with the key's public part (RSA-OAEP, SHA-1), asks the vault to
/// unwrap it, and compares. `Ok(false)` means the vault answered with another value.
pub async fn unwrap_round_trip(
    http: &reqwest::Client,
    key: &KeyUrl,
    facts: &KeyFacts,
    token: &AccessToken,
) -> Result<bool, VaultRefusal> {
    let local = |m: String| VaultRefusal {
        status: 0,
        code: "LocalWrap".into(),
        inner: None,
        message: m,
    };
    let (n, e) = facts
        .rsa
        .as_ref()
        .ok_or_else(|| local("the key has no RSA public part".into()))?;
    let public = rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(n),
        rsa::BigUint::from_bytes_be(e),
    )
    .map_err(|e| local(format!("the key's public part is not usable: {e}")))?;
    let value = throwaway_value();
    let wrapped = public
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Oaep::new::<sha1::Sha1>(),
            &value,
        )
        .map_err(|e| local(format!("cannot wrap locally: {e}")))?;
    let back = key_operation(http, key, facts, "unwrapkey", "RSA-OAEP", &wrapped, token).await?;
    Ok(back.is_some_and(|b| b.as_slice() == value.as_slice()))
}

/// Has the vault wrap a random 40-byte value as Ferry wraps a content key for
/// `at_rest = "customer_key"` ([`crate::cmk::content_key_wrap_algorithm`]), then unwrap it, and
/// compares. `Ok(false)` means the vault answered with another value.
pub async fn wrap_round_trip(
    http: &reqwest::Client,
    key: &KeyUrl,
    facts: &KeyFacts,
    token: &AccessToken,
) -> Result<bool, VaultRefusal> {
    let alg = crate::cmk::content_key_wrap_algorithm(&key.vault);
    let value = throwaway_value();
    let Some(wrapped) = key_operation(http, key, facts, "wrapkey", alg, &value, token).await?
    else {
        return Ok(false);
    };
    let back = key_operation(http, key, facts, "unwrapkey", alg, &wrapped, token).await?;
    Ok(back.is_some_and(|b| b.as_slice() == value.as_slice()))
}

/// 40 random bytes (the size of a wrapped CSE v2 content key payload), zeroized when dropped.
fn throwaway_value() -> Zeroizing<Vec<u8>> {
    let mut value = Zeroizing::new(vec![0u8; 40]);
    rand::thread_rng().fill_bytes(&mut value);
    value
}

/// `POST {vault}/keys/{name}/{version}/{operation}` (`wrapkey` or `unwrapkey`) with `value`;
/// the `value` of the answer, `None` when it has none.
async fn key_operation(
    http: &reqwest::Client,
    key: &KeyUrl,
    facts: &KeyFacts,
    operation: &str,
    alg: &str,
    value: &[u8],
    token: &AccessToken,
) -> Result<Option<Zeroizing<Vec<u8>>>, VaultRefusal> {
    let version = facts.version().unwrap_or("");
    let url = format!(
        "{}/keys/{}/{version}/{operation}?api-version={API_VERSION}",
        key.vault, key.name
    );
    let body = serde_json::json!({
        "alg": alg,
        "value": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
    });
    let resp = http
        .post(&url)
        .header("Authorization", token.bearer())
        .json(&body)
        .send()
        .await
        .map_err(|e| network(&e))?;
    if !resp.status().is_success() {
        return Err(refusal(resp).await);
    }
    let v: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    Ok(v.get("value")
        .and_then(|x| x.as_str())
        .and_then(|x| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(x.trim_end_matches('='))
                .ok()
        })
        .map(Zeroizing::new))
}

/// What a refusal of `operation` (`read`, `unwrap` or `wrap`) on `key` means.
pub fn explain(r: &VaultRefusal, key: &KeyUrl, operation: &str) -> Failure {
    let (k, v) = (&key.name, &key.host);
    let f = |state, fix: String| Failure {
        state,
        code: Some(r.code().to_string()),
        reason: if r.status == 0 {
            format!("vault {v} {operation}: {}", r.message)
        } else {
            format!(
                "vault {v} refused {operation} of key {k}: HTTP {} {}: {}",
                r.status,
                r.code(),
                r.message
            )
        },
        fix,
    };
    let unwrap = operation == "unwrap";
    let wrap = operation == "wrap";
    match (r.status, r.code()) {
        (403, "ForbiddenByPolicy") if wrap => f(
            TenantState::KeyRevoked,
            format!("wrap permission missing: at_rest = \"customer_key\" keeps objects under key {k}, so the customer must grant the app's service principal the 'Wrap Key' key permission in the access policies of vault {v} (after a switch to Azure RBAC: assign 'Key Vault Crypto Service Encryption User' on key {k}); or set at_rest = \"plain\""),
        ),
        (403, "ForbiddenByRbac") if wrap => f(
            TenantState::KeyRevoked,
            format!("wrap permission missing: at_rest = \"customer_key\" keeps objects under key {k}, so assign 'Key Vault Crypto Service Encryption User' on key {k} (vault {v}) to the app's service principal; or set at_rest = \"plain\""),
        ),
        (400, _) if wrap => f(
            TenantState::KeyRevoked,
            format!("the customer must allow wrapKey in the permitted operations of key {k} in vault {v} (at_rest = \"customer_key\" needs it), or set at_rest = \"plain\""),
        ),
        (403, "KeyDisabled") => f(
            TenantState::KeyRevoked,
            format!("key disabled: the customer must enable key {k} in vault {v}"),
        ),
        (403, "ForbiddenByPolicy") if unwrap => f(
            TenantState::KeyRevoked,
            format!("unwrap permission missing: the customer must grant the app's service principal the 'Unwrap Key' key permission in the access policies of vault {v} (after a switch to Azure RBAC: assign 'Key Vault Crypto Service Encryption User' on key {k})"),
        ),
        (403, "ForbiddenByPolicy") => f(
            TenantState::KeyRevoked,
            format!("key read permission missing: the customer must grant the app's service principal the 'Get' and 'Unwrap Key' key permissions in the access policies of vault {v} (after a switch to Azure RBAC: assign 'Key Vault Crypto Service Encryption User' on key {k})"),
        ),
        (403, "ForbiddenByRbac") if unwrap => f(
            TenantState::KeyRevoked,
            format!("unwrap permission missing: assign 'Key Vault Crypto Service Encryption User' on key {k} (vault {v}) to the app's service principal"),
        ),
        (403, "ForbiddenByRbac") => f(
            TenantState::KeyRevoked,
            format!("key read permission missing: assign 'Key Vault Crypto Service Encryption User' on key {k} (vault {v}) to the app's service principal"),
        ),
        (403, "ForbiddenByFirewall") => f(
            TenantState::KeyRevoked,
            format!("vault firewall: the customer must allow the provider's egress address in vault {v}'s networking, or the provider must reach it through a private endpoint (decrypt.resolve)"),
        ),
        (403, "ForbiddenByConnection") => f(
            TenantState::KeyRevoked,
            format!("public access to vault {v} is disabled: reach it through a private endpoint (create one and set decrypt.resolve = \"<private endpoint ip>\")"),
        ),
        (403, _) => f(
            TenantState::KeyRevoked,
            format!("the customer must allow the app's service principal to get and unwrap key {k} in vault {v}"),
        ),
        (404, "KeyNotFound") => f(
            TenantState::KeyRevoked,
            format!("key not found: key {k} is deleted or was never created in vault {v}; the customer must recover it (Keys > Manage deleted keys) or the config must name the right key"),
        ),
        (404, _) => f(
            TenantState::Misconfigured,
            format!("vault {v} not found: check decrypt.key in the config"),
        ),
        (401, _) => f(
            TenantState::Misconfigured,
            format!("vault {v} refused the token: check that the vault belongs to the configured tenant and that decrypt.key names the right vault"),
        ),
        (400, _) if unwrap => f(
            TenantState::KeyRevoked,
            format!("the customer must allow unwrapKey in the permitted operations of key {k} in vault {v}"),
        ),
        (0, "NoConnection") => f(
            TenantState::Unreachable,
            format!("no connection to vault {v}: check its DNS name (or decrypt.resolve), its private endpoint and the network path from Ferry, then run ferry check again"),
        ),
        (429, _) | (500..=599, _) | (0, _) => f(
            TenantState::Throttled,
            format!("vault {v} is unreachable or busy: check the network path (and decrypt.resolve), then run ferry check again"),
        ),
        _ => f(
            TenantState::Misconfigured,
            format!("check decrypt.key ({}/keys/{k}) in the config", key.vault),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_urls() {
        let k = parse_key_url("https://Contoso-KV.vault.azure.net/keys/ferry-cmk").unwrap();
        assert_eq!(k.vault, "https://contoso-kv.vault.azure.net");
        assert_eq!(k.name, "ferry-cmk");
        assert_eq!(k.version, None);
        let k = parse_key_url("https://kv.vault.sandbox.test:8443/keys/k/abc").unwrap();
        assert_eq!(k.vault, "https://kv.vault.sandbox.test:8443");
        assert_eq!(k.version.as_deref(), Some("abc"));
        assert!(parse_key_url("https://kv.vault.azure.net/secrets/k").is_none());
        assert!(parse_key_url("not a url").is_none());
    }

    #[test]
    fn challenges() {
        let c = parse_challenge(
            "Bearer authorization=\"https://login.windows.net/T1\", resource=\"https://vault.azure.net\"",
        );
        assert_eq!(c.tenant_id.as_deref(), Some("T1"));
        assert_eq!(c.resource.as_deref(), Some("https://vault.azure.net"));
        let c = parse_challenge(
            "Bearer authorization_uri=\"https://login.sandbox.test/t2/\", scope=\"https://vault.sandbox.test/.default\"",
        );
        assert_eq!(c.tenant_id.as_deref(), Some("t2"));
        assert_eq!(c.resource.as_deref(), Some("https://vault.sandbox.test"));
        assert_eq!(parse_challenge("garbage").tenant_id, None);
    }

    #[test]
    fn refusals_name_the_fix() {
        let key = parse_key_url("https://kv.vault.azure.net/keys/k").unwrap();
        let r = |status, code: &str, inner: Option<&str>| VaultRefusal {
            status,
            code: code.into(),
            inner: inner.map(str::to_string),
            message: "m".into(),
        };
        let f = explain(&r(403, "Forbidden", Some("KeyDisabled")), &key, "unwrap");
        assert!(f.fix.starts_with("key disabled"), "{}", f.fix);
        let f = explain(
            &r(403, "Forbidden", Some("ForbiddenByRbac")),
            &key,
            "unwrap",
        );
        assert!(f.fix.contains("Key Vault Crypto Service Encryption User"));
        let f = explain(
            &r(403, "Forbidden", Some("ForbiddenByPolicy")),
            &key,
            "unwrap",
        );
        assert!(f.fix.starts_with("unwrap permission missing"));
        let f = explain(&r(404, "KeyNotFound", None), &key, "read");
        assert_eq!(f.state, TenantState::KeyRevoked);
        let f = explain(&r(503, "ServiceUnavailable", None), &key, "read");
        assert_eq!(f.state, TenantState::Throttled);
        // a connection that could not be made is told apart from one that broke
        let f = explain(&r(0, "NoConnection", None), &key, "read");
        assert_eq!(f.state, TenantState::Unreachable);
        assert!(
            f.fix
                .starts_with("no connection to vault kv.vault.azure.net"),
            "{}",
            f.fix
        );
        let f = explain(&r(0, "Network", None), &key, "read");
        assert_eq!(f.state, TenantState::Throttled);
    }
}
