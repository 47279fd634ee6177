//! Access tokens as Ferry holds them: the bearer string kept out of `Debug`, the expiry, and the
//! claims Ferry checks before any use (`tid` is the configured tenant, `aud` the expected resource).
//!
//! Owns: decoding a JWT's claims (no signature check: the token came over TLS from the authority)
//! and the checks. Must not: fetch tokens.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use zeroize::Zeroize;

/// A string that is a secret (client secret, token, assertion). `Debug` and `Display` never show it;
/// it is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> SecretString {
        SecretString(s.into())
    }
    /// The secret, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// The claims of an access token that Ferry looks at.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct TokenClaims {
    /// Tenant that issued the token.
    #[serde(default)]
    pub tid: Option<String>,
    /// Resource the token is for.
    #[serde(default)]
    pub aud: Option<String>,
    /// Object id of the principal (the service principal in that tenant).
    #[serde(default)]
    pub oid: Option<String>,
    /// App id (v1 tokens).
    #[serde(default)]
    pub appid: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default)]
    pub exp: Option<u64>,
}

/// Why a token was refused before use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenCheckError {
    /// Not a JWT with readable claims.
    #[error("the token is not a readable JWT: {0}")]
    Malformed(String),
    /// Issued by another tenant than the configured one.
    #[error("token issued by tenant {actual}, expected {expected}: the tenant id in the config does not match where the token came from")]
    TenantMismatch {
        /// Configured tenant.
        expected: String,
        /// `tid` in the token.
        actual: String,
    },
    /// For another resource.
    #[error("token audience is {actual}, expected {expected}")]
    AudienceMismatch {
        /// Expected resource.
        expected: String,
        /// `aud` in the token.
        actual: String,
    },
}

/// Decodes a JWT's claims without verifying its signature.
pub fn decode_claims(token: &str) -> Result<TokenClaims, TokenCheckError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenCheckError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| TokenCheckError::Malformed(format!("payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| TokenCheckError::Malformed(format!("payload is not JSON claims: {e}")))
}

fn same_resource(a: &str, b: &str) -> bool {
    a.trim_end_matches('/')
        .eq_ignore_ascii_case(b.trim_end_matches('/'))
}

/// Checks `tid` and `aud`. `expected_tenant` None skips the tenant check (managed identity tokens
/// for a tenant Ferry does not configure).
pub fn check_claims(
    claims: &TokenClaims,
    expected_tenant: Option<&str>,
    expected_resource: &str,
) -> Result<(), TokenCheckError> {
    if let Some(expected) = expected_tenant {
        let actual = claims.tid.clone().unwrap_or_default();
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(TokenCheckError::TenantMismatch {
                expected: expected.to_string(),
                actual: if actual.is_empty() {
                    "<none>".into()
                } else {
                    actual
                },
            });
        }
    }
    let aud = claims.aud.clone().unwrap_or_default();
    // Entra issues `aud` either as the resource URI or, for some first-party resources, as the
    // resource's app id; Ferry only accepts the URI it asked for.
    if !same_resource(&aud, expected_resource) {
        return Err(TokenCheckError::AudienceMismatch {
            expected: expected_resource.to_string(),
            actual: if aud.is_empty() { "<none>".into() } else { aud },
        });
    }
    Ok(())
}

/// A bearer token ready to use.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer string.
    pub secret: SecretString,
    /// When it stops being valid.
    pub expires_at: SystemTime,
    /// Claims read from it.
    pub claims: TokenClaims,
}

impl AccessToken {
    /// True while the token has at least `margin` of life left.
    pub fn valid_for(&self, margin: Duration) -> bool {
        SystemTime::now() + margin < self.expires_at
    }

    /// `Bearer <token>` for an Authorization header.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret.expose())
    }

    /// Seconds since the epoch when it expires.
    pub fn expires_unix(&self) -> u64 {
        self.expires_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

#[cfg(test)]
pub(crate) fn fake_jwt(claims: &serde_json::Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.sig",
        b64(br#"{"alg":"RS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let s = SecretString::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn claims_checks() {
        let t =
            fake_jwt(&serde_json::json!({"tid":"T1","aud":"https://storage.azure.com","exp":1}));
        let c = decode_claims(&t).unwrap();
        assert!(check_claims(&c, Some("t1"), "https://storage.azure.com/").is_ok());
        assert!(matches!(
            check_claims(&c, Some("T2"), "https://storage.azure.com"),
            Err(TokenCheckError::TenantMismatch { .. })
        ));
        assert!(matches!(
            check_claims(&c, Some("T1"), "https://vault.azure.net"),
            Err(TokenCheckError::AudienceMismatch { .. })
        ));
        assert!(decode_claims("abc").is_err());
        assert!(decode_claims("a.!!!.c").is_err());
    }
}
