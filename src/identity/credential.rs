//! App credential material: client secrets from an env var or a file, certificate client
//! assertions (PS256 with `x5t#S256`), and assertion files (AKS workload identity).
//!
//! Everything is read when a token is requested (at most once per tenant and resource per token
//! lifetime), so a rotated secret, certificate or projected token is picked up without a restart.
//!
//! Owns: reading credential material and signing assertions. Must not: call Entra, or let
//! secret material reach a log line or an error message.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha2::{Digest, Sha256};

use super::error::TokenError;
use super::token::SecretString;

/// Where a client secret comes from.
#[derive(Debug, Clone)]
pub enum SecretLocation {
    /// An environment variable.
    Env(String),
    /// A file (trailing whitespace ignored).
    File(PathBuf),
}

impl SecretLocation {
    /// Reads the secret now.
    pub fn read(&self) -> Result<SecretString, TokenError> {
        let value = match self {
            SecretLocation::Env(name) => std::env::var(name).map_err(|_| {
                TokenError::CredentialSource(format!(
                    "environment variable {name} is not set: export it with the app's client secret"
                ))
            })?,
            SecretLocation::File(path) => std::fs::read_to_string(path).map_err(|e| {
                TokenError::CredentialSource(format!(
                    "cannot read secret file {}: {e}",
                    path.display()
                ))
            })?,
        };
        let trimmed = value.trim_end_matches(['\r', '\n', ' ', '\t']);
        if trimmed.is_empty() {
            return Err(TokenError::CredentialSource(format!(
                "the client secret in {} is empty",
                self.describe()
            )));
        }
        Ok(SecretString::new(trimmed))
    }

    /// Where, in words (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretLocation::Env(n) => format!("environment variable {n}"),
            SecretLocation::File(p) => format!("file {}", p.display()),
        }
    }
}

/// A certificate and its private key, loaded from PEM and reloaded when the file changes.
#[derive(Debug)]
pub struct CertificateCredential {
    cert_path: PathBuf,
    key_path: Option<PathBuf>,
    loaded: Mutex<Option<LoadedCertificate>>,
}

struct LoadedCertificate {
    stamp: (Option<SystemTime>, Option<SystemTime>),
    x5t_s256: String,
    key: rsa::RsaPrivateKey,
}

impl std::fmt::Debug for LoadedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedCertificate")
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl CertificateCredential {
    /// A credential reading `cert_path` (and `key_path` when the key is separate).
    pub fn new(cert_path: PathBuf, key_path: Option<PathBuf>) -> CertificateCredential {
        CertificateCredential {
            cert_path,
            key_path,
            loaded: Mutex::new(None),
        }
    }

    fn load(&self) -> Result<LoadedCertificate, TokenError> {
        let err = |m: String| TokenError::CredentialSource(m);
        let cert_text = std::fs::read(&self.cert_path).map_err(|e| {
            err(format!(
                "cannot read certificate file {}: {e}",
                self.cert_path.display()
            ))
        })?;
        let key_text = match &self.key_path {
            Some(p) => std::fs::read(p)
                .map_err(|e| err(format!("cannot read key file {}: {e}", p.display())))?,
            None => cert_text.clone(),
        };
        let blocks = pem::parse_many(&cert_text).map_err(|e| {
            err(format!(
                "certificate file {} is not PEM: {e}",
                self.cert_path.display()
            ))
        })?;
        let cert_der = blocks
            .iter()
            .find(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.contents().to_vec())
            .ok_or_else(|| {
                err(format!(
                    "no CERTIFICATE block in {}",
                    self.cert_path.display()
                ))
            })?;
        let key_blocks =
            pem::parse_many(&key_text).map_err(|e| err(format!("key file is not PEM: {e}")))?;
        let key = key_blocks
            .iter()
            .find_map(|b| match b.tag() {
                "PRIVATE KEY" => Some(rsa::RsaPrivateKey::from_pkcs8_der(b.contents()).map_err(|e| e.to_string())),
                "RSA PRIVATE KEY" => Some(rsa::RsaPrivateKey::from_pkcs1_der(b.contents()).map_err(|e| e.to_string())),
                _ => None,
            })
            .ok_or_else(|| {
                err(format!(
                    "no PRIVATE KEY block in {}: the PEM must hold the certificate and its RSA private key",
                    self.key_path.as_ref().unwrap_or(&self.cert_path).display()
                ))
            })?
            .map_err(|e| err(format!("the private key is not a usable RSA key: {e}")))?;
        let x5t_s256 =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&cert_der));
        Ok(LoadedCertificate {
            stamp: (
                modified(&self.cert_path),
                self.key_path.as_deref().and_then(modified),
            ),
            x5t_s256,
            key,
        })
    }

    /// A signed client assertion for the token endpoint `audience`.
    pub fn assertion(&self, audience: &str, client_id: &str) -> Result<SecretString, TokenError> {
        let stamp = (
            modified(&self.cert_path),
            self.key_path.as_deref().and_then(modified),
        );
        let mut guard = self
            .loaded
            .lock()
            .map_err(|_| TokenError::CredentialSource("certificate cache poisoned".into()))?;
        let stale = match guard.as_ref() {
            Some(l) => l.stamp != stamp,
            None => true,
        };
        if stale {
            *guard = Some(self.load()?);
        }
        let Some(loaded) = guard.as_ref() else {
            return Err(TokenError::CredentialSource(
                "certificate not loaded".into(),
            ));
        };
        sign_assertion(loaded, audience, client_id)
    }
}

fn sign_assertion(
    cert: &LoadedCertificate,
    audience: &str,
    client_id: &str,
) -> Result<SecretString, TokenError> {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": cert.x5t_s256});
    let claims = serde_json::json!({
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signer = rsa::pss::BlindedSigningKey::<Sha256>::new(cert.key.clone());
    let signature = signer
        .try_sign_with_rng(&mut rand::thread_rng(), signing_input.as_bytes())
        .map_err(|e| {
            TokenError::CredentialSource(format!("cannot sign the client assertion: {e}"))
        })?;
    Ok(SecretString::new(format!(
        "{signing_input}.{}",
        b64(&signature.to_bytes())
    )))
}

/// Reads an assertion file (AKS projected service account token) afresh.
pub fn read_assertion_file(path: &Path) -> Result<SecretString, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        TokenError::CredentialSource(format!(
            "cannot read the federated token file {}: {e}; is workload identity enabled on the pod?",
            path.display()
        ))
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(TokenError::CredentialSource(format!(
            "the federated token file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::new(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_file_is_reread_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "one\n").unwrap();
        let loc = SecretLocation::File(p.clone());
        assert_eq!(loc.read().unwrap().expose(), "one");
        std::fs::write(&p, "two").unwrap();
        assert_eq!(loc.read().unwrap().expose(), "two");
        std::fs::write(&p, "\n").unwrap();
        let e = loc.read().unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn missing_certificate_is_a_credential_error() {
        let c = CertificateCredential::new("/nonexistent/app.pem".into(), None);
        let e = c.assertion("aud", "client").unwrap_err();
        assert_eq!(e.class(), super::super::FailureClass::CredentialInvalid);
    }
}
