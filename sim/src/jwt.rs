//! JSON Web Tokens as the sim issues and checks them.
//!
//! Owns the sim's RSA-2048 signing key (generated at start, never written anywhere), RS256
//! signing and verification of the tokens the sim issues, the JWKS document, and verification of
//! client-assertion JWTs against a certificate's public key (PS256 + `x5t#S256`, RS256 + `x5t`).
//! It must not decide *what* a token may do: Entra, Key Vault and the gateway decide that.
//! Implemented directly on the `rsa`, `sha1` and `sha2` crates.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::state::SimState;

/// Why a JWT was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// The token is not three base64url parts of JSON.
    #[error("token is not a well-formed jwt: {0}")]
    Malformed(String),
    /// The header names an algorithm this verifier does not accept here.
    #[error("unsupported jwt algorithm {0:?}; use RS256 or PS256")]
    UnsupportedAlgorithm(String),
    /// The signature does not match the key.
    #[error("jwt signature does not match the signing key")]
    BadSignature,
    /// `exp` is in the past (or missing).
    #[error("jwt expired at {exp} (now {now}); get a new token")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time of the check.
        now: i64,
    },
    /// `nbf` is in the future.
    #[error("jwt not valid before {nbf} (now {now}); check the clock")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
        /// The time of the check.
        now: i64,
    },
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// base64url without padding, as JWTs use it.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The three parts of a compact JWT, decoded but not verified.
#[derive(Debug, Clone)]
pub struct UnverifiedJwt {
    /// The JOSE header.
    pub header: Value,
    /// The claims.
    pub claims: Value,
    /// `header.payload`, the bytes the signature covers.
    signing_input: String,
    /// The raw signature bytes.
    signature: Vec<u8>,
}

impl UnverifiedJwt {
    /// Splits and decodes a compact JWT without checking anything but its shape.
    pub fn parse(token: &str) -> Result<Self, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed(
                "expected three dot-separated parts".into(),
            ));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part.trim_end_matches('='))
                .map_err(|e| JwtError::Malformed(format!("{what} is not base64url: {e}")))
        };
        let header: Value = serde_json::from_slice(&decode(h, "header")?)
            .map_err(|e| JwtError::Malformed(format!("header is not json: {e}")))?;
        let claims: Value = serde_json::from_slice(&decode(p, "payload")?)
            .map_err(|e| JwtError::Malformed(format!("payload is not json: {e}")))?;
        if !header.is_object() || !claims.is_object() {
            return Err(JwtError::Malformed(
                "header and payload must be json objects".into(),
            ));
        }
        Ok(Self {
            header,
            claims,
            signing_input: format!("{h}.{p}"),
            signature: decode(s, "signature")?,
        })
    }

    /// The header's `alg`.
    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or("")
    }

    /// Checks the signature with `key`, for RS256 or PS256 as the header says.
    pub fn verify_signature(&self, key: &RsaPublicKey) -> Result<(), JwtError> {
        let msg = self.signing_input.as_bytes();
        match self.alg() {
            "RS256" => {
                let sig = rsa::pkcs1v15::Signature::try_from(self.signature.as_slice())
                    .map_err(|_| JwtError::BadSignature)?;
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
                    .verify(msg, &sig)
                    .map_err(|_| JwtError::BadSignature)
            }
            "PS256" => {
                let sig = rsa::pss::Signature::try_from(self.signature.as_slice())
                    .map_err(|_| JwtError::BadSignature)?;
                rsa::pss::VerifyingKey::<Sha256>::new(key.clone())
                    .verify(msg, &sig)
                    .map_err(|_| JwtError::BadSignature)
            }
            other => Err(JwtError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    /// An integer claim (`exp`, `nbf`, `iat`), if present.
    pub fn int_claim(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }

    /// A string claim, if present.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Checks `exp` (required, in the future) and `nbf` (if present, not in the future), with
    /// `skew_secs` of tolerance on both.
    pub fn check_times(&self, now: i64, skew_secs: i64) -> Result<(), JwtError> {
        let exp = self
            .int_claim("exp")
            .ok_or(JwtError::Expired { exp: 0, now })?;
        if exp + skew_secs <= now {
            return Err(JwtError::Expired { exp, now });
        }
        if let Some(nbf) = self.int_claim("nbf") {
            if nbf - skew_secs > now {
                return Err(JwtError::NotYetValid { nbf, now });
            }
        }
        Ok(())
    }
}

/// The sim's token-signing key. `Debug` shows only the key id.
pub struct Signer {
    /// The private key; lives in memory only.
    key: RsaPrivateKey,
    /// Key id published in the JWKS and put in every token header.
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Generates a fresh RSA-2048 key; `kid` is the base64url SHA-256 of its modulus.
    pub fn generate() -> Result<Self, rsa::Error> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)?;
        let kid = b64url(&Sha256::digest(key.n().to_bytes_be())[..20]);
        Ok(Self { key, kid })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half of the signing key.
    pub fn public_key(&self) -> RsaPublicKey {
        self.key.to_public_key()
    }

    /// Signs `claims` as an RS256 JWT with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": self.kid, "x5t": self.kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = rsa::pkcs1v15::SigningKey::<Sha256>::new(self.key.clone()).sign(input.as_bytes());
        format!("{input}.{}", b64url(&sig.to_bytes()))
    }

    /// Verifies a token this sim signed: shape, RS256 signature, `exp` and `nbf` (no skew).
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let jwt = UnverifiedJwt::parse(token)?;
        if jwt.alg() != "RS256" {
            return Err(JwtError::UnsupportedAlgorithm(jwt.alg().to_string()));
        }
        jwt.verify_signature(&self.public_key())?;
        jwt.check_times(now_unix(), 0)?;
        Ok(jwt.claims)
    }

    /// The JWKS document (`{"keys":[...]}`) with this key.
    pub fn jwks(&self) -> Value {
        let n = b64url(&self.key.n().to_bytes_be());
        let e = b64url(&self.key.e().to_bytes_be());
        json!({"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "x5t": self.kid, "n": n, "e": e}]})
    }
}

/// Signs `claims` with a client's own RSA key as a client assertion would be (tests and the
/// admin CLI use this to build assertions). `alg` is `RS256` or `PS256`; `thumbprint_header` is
/// the header field (`x5t` or `x5t#S256`) and its base64url value.
pub fn sign_client_assertion(
    key: &RsaPrivateKey,
    alg: &str,
    thumbprint_header: (&str, &str),
    claims: &Value,
) -> Result<String, JwtError> {
    let mut header = json!({"typ": "JWT", "alg": alg});
    header[thumbprint_header.0] = Value::String(thumbprint_header.1.to_string());
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = match alg {
        "RS256" => rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone())
            .sign(input.as_bytes())
            .to_vec(),
        "PS256" => rsa::pss::BlindedSigningKey::<Sha256>::new(key.clone())
            .sign_with_rng(&mut rand::thread_rng(), input.as_bytes())
            .to_vec(),
        other => return Err(JwtError::UnsupportedAlgorithm(other.to_string())),
    };
    Ok(format!("{input}.{}", b64url(&sig)))
}

/// What a resource server learns from a valid sim-issued access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// Tenant that issued the token.
    pub tid: String,
    /// Object id of the caller (service principal in `tid`, or managed identity).
    pub oid: String,
    /// Client id of the calling app (or managed identity).
    pub appid: String,
    /// The audience as written in the token.
    pub aud: String,
}

/// Why an access token was refused by a resource.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessTokenError {
    /// Signature, shape or time check failed.
    #[error("access token invalid: {0}")]
    Invalid(#[from] JwtError),
    /// Token is for another resource.
    #[error("access token audience {actual:?} does not match {expected:?}; request a token for {expected}/.default")]
    WrongAudience {
        /// What the token says.
        actual: String,
        /// What this resource needs.
        expected: String,
    },
    /// A required claim is missing.
    #[error("access token has no {0} claim")]
    MissingClaim(&'static str),
}

/// Verifies a sim-issued access token for a resource: RS256 signature by the sim's key, `exp` and
/// `nbf`, and `aud` equal to `expected_aud` (a trailing slash on either side is ignored).
pub fn verify_access_token(
    state: &SimState,
    token: &str,
    expected_aud: &str,
) -> Result<AccessClaims, AccessTokenError> {
    let claims = state.signer.verify(token)?;
    let get = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(AccessTokenError::MissingClaim(name))
    };
    let aud = get("aud")?;
    if aud.trim_end_matches('/') != expected_aud.trim_end_matches('/') {
        return Err(AccessTokenError::WrongAudience {
            actual: aud,
            expected: expected_aud.to_string(),
        });
    }
    let appid = get("appid").or_else(|_| get("azp"))?;
    Ok(AccessClaims {
        tid: get("tid")?,
        oid: get("oid")?,
        appid,
        aud,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::generate().expect("rsa keygen")
    }

    #[test]
    fn sign_then_verify_round_trips_and_rejects_tampering() {
        let s = signer();
        let now = now_unix();
        let token = s.sign(&json!({"aud": "x", "exp": now + 60, "nbf": now - 1}));
        assert_eq!(s.verify(&token).expect("valid")["aud"], "x");
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = b64url(json!({"aud": "y", "exp": now + 60}).to_string().as_bytes());
        parts[1] = &other;
        assert_eq!(s.verify(&parts.join(".")), Err(JwtError::BadSignature));
        assert!(matches!(s.verify("a.b"), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn expired_and_future_tokens_are_refused() {
        let s = signer();
        let now = now_unix();
        assert!(matches!(
            s.verify(&s.sign(&json!({"exp": now - 1}))),
            Err(JwtError::Expired { .. })
        ));
        let future = s.sign(&json!({"exp": now + 600, "nbf": now + 300}));
        assert!(matches!(
            s.verify(&future),
            Err(JwtError::NotYetValid { .. })
        ));
    }

    #[test]
    fn client_assertions_verify_with_both_algorithms() {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
        let claims = json!({"exp": now_unix() + 60});
        for alg in ["RS256", "PS256"] {
            let t = sign_client_assertion(&key, alg, ("x5t", "abc"), &claims).expect("sign");
            let jwt = UnverifiedJwt::parse(&t).expect("parse");
            assert_eq!(jwt.header["x5t"], "abc");
            jwt.verify_signature(&key.to_public_key())
                .expect("verifies");
            let other = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("keygen");
            assert_eq!(
                jwt.verify_signature(&other.to_public_key()),
                Err(JwtError::BadSignature)
            );
        }
    }

    #[test]
    fn jwks_has_the_kid() {
        let s = signer();
        assert_eq!(s.jwks()["keys"][0]["kid"], s.kid());
    }
}
