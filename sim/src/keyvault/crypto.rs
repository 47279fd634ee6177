//! Key material and the wrap/unwrap algorithms Key Vault offers: RSA-OAEP (SHA-1), RSA-OAEP-256 and
//! RSA1_5 on RSA keys, A256KW on `oct-HSM` keys. Pure functions over bytes: no HTTP, no state.
//! Must not log or print key material; AES key bytes are zeroed on drop (RSA keys zeroize themselves).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Oaep, Pkcs1v15Encrypt, RsaPrivateKey};

/// Why a cryptographic operation was refused; each maps to a Key Vault `BadParameter` message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The `alg` is not one Key Vault knows, or not valid for this key type.
    #[error("algorithm {alg} is not supported for key type {kty}")]
    UnsupportedAlgorithm { alg: String, kty: String },
    /// The ciphertext or plaintext does not fit the algorithm (wrong size, bad padding, wrong key).
    #[error("the value could not be processed with {alg}: {reason}")]
    BadValue { alg: String, reason: String },
    /// Key generation or import parameters were unusable.
    #[error("invalid key parameters: {0}")]
    BadKey(String),
}

/// A symmetric key held by a Managed HSM; bytes are zeroed when dropped.
pub struct AesKey(Vec<u8>);

impl Drop for AesKey {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&self.0);
    }
}

/// The secret half of one key version.
pub enum KeyMaterial {
    /// An RSA key pair (`RSA` on vaults, `RSA-HSM` on Managed HSMs).
    Rsa(Box<RsaPrivateKey>),
    /// A 256-bit AES key (`oct-HSM`, Managed HSM only).
    Aes(AesKey),
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyMaterial::Rsa(k) => write!(f, "Rsa({} bits, redacted)", k.size() * 8),
            KeyMaterial::Aes(k) => write!(f, "Aes({} bits, redacted)", k.0.len() * 8),
        }
    }
}

/// Decodes base64url (padding tolerated, as the service does).
pub fn b64url_decode(value: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()
}

/// Encodes base64url without padding, as Key Vault answers.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl KeyMaterial {
    /// Generates an RSA key of `bits` (2048, 3072 or 4096).
    pub fn generate_rsa(bits: usize) -> Result<Self, CryptoError> {
        if ![2048, 3072, 4096].contains(&bits) {
            return Err(CryptoError::BadKey(format!(
                "key_size {bits} is not supported for RSA; use 2048, 3072 or 4096"
            )));
        }
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), bits)
            .map_err(|e| CryptoError::BadKey(format!("rsa key generation failed: {e}")))?;
        Ok(KeyMaterial::Rsa(Box::new(key)))
    }

    /// Generates a 256-bit AES key (only 256 is offered for `oct-HSM` here).
    pub fn generate_aes(bits: usize) -> Result<Self, CryptoError> {
        if bits != 256 {
            return Err(CryptoError::BadKey(format!(
                "key_size {bits} is not supported for oct-HSM in the sim; use 256"
            )));
        }
        let mut bytes = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Ok(KeyMaterial::Aes(AesKey(bytes)))
    }

    /// Imports an RSA private key from JWK members (base64url `n`, `e`, `d`, `p`, `q`).
    pub fn import_rsa(n: &str, e: &str, d: &str, p: &str, q: &str) -> Result<Self, CryptoError> {
        let int = |name: &str, v: &str| {
            b64url_decode(v)
                .map(|b| BigUint::from_bytes_be(&b))
                .ok_or_else(|| CryptoError::BadKey(format!("jwk member {name} is not base64url")))
        };
        let key = RsaPrivateKey::from_components(
            int("n", n)?,
            int("e", e)?,
            int("d", d)?,
            vec![int("p", p)?, int("q", q)?],
        )
        .map_err(|e| CryptoError::BadKey(format!("rsa key rejected: {e}")))?;
        key.validate()
            .map_err(|e| CryptoError::BadKey(format!("rsa key rejected: {e}")))?;
        Ok(KeyMaterial::Rsa(Box::new(key)))
    }

    /// Imports an AES key from the JWK member `k` (must be 32 bytes).
    pub fn import_aes(k: &str) -> Result<Self, CryptoError> {
        let bytes = b64url_decode(k)
            .ok_or_else(|| CryptoError::BadKey("jwk member k is not base64url".into()))?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey(format!(
                "jwk member k is {} bytes; an oct-HSM key here must be 32",
                bytes.len()
            )));
        }
        Ok(KeyMaterial::Aes(AesKey(bytes)))
    }

    /// The public JWK members: `n` and `e` for RSA, nothing for AES (never exported).
    pub fn public_members(&self) -> Vec<(&'static str, String)> {
        match self {
            KeyMaterial::Rsa(k) => vec![
                ("n", b64url(&k.n().to_bytes_be())),
                ("e", b64url(&k.e().to_bytes_be())),
            ],
            KeyMaterial::Aes(_) => Vec::new(),
        }
    }

    /// `RSA` or `oct`: the family, for error messages and algorithm checks.
    pub fn family(&self) -> &'static str {
        match self {
            KeyMaterial::Rsa(_) => "RSA",
            KeyMaterial::Aes(_) => "oct",
        }
    }

    /// Wraps `value` with `alg` (`wrapkey`).
    pub fn wrap(&self, alg: &str, value: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let bad = |reason: String| CryptoError::BadValue {
            alg: alg.to_string(),
            reason,
        };
        match (self, alg) {
            (KeyMaterial::Rsa(k), "RSA-OAEP") => k
                .to_public_key()
                .encrypt(&mut rand::thread_rng(), Oaep::new::<sha1::Sha1>(), value)
                .map_err(|e| bad(e.to_string())),
            (KeyMaterial::Rsa(k), "RSA-OAEP-256") => k
                .to_public_key()
                .encrypt(&mut rand::thread_rng(), Oaep::new::<sha2::Sha256>(), value)
                .map_err(|e| bad(e.to_string())),
            (KeyMaterial::Rsa(k), "RSA1_5") => k
                .to_public_key()
                .encrypt(&mut rand::thread_rng(), Pkcs1v15Encrypt, value)
                .map_err(|e| bad(e.to_string())),
            (KeyMaterial::Aes(k), "A256KW") => {
                let kek =
                    aes_kw::KekAes256::try_from(k.0.as_slice()).map_err(|e| bad(e.to_string()))?;
                let mut out = vec![0u8; value.len() + 8];
                kek.wrap(value, &mut out).map_err(|e| bad(e.to_string()))?;
                Ok(out)
            }
            _ => Err(self.unsupported(alg)),
        }
    }

    /// Unwraps `value` with `alg` (`unwrapkey`).
    pub fn unwrap(&self, alg: &str, value: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let bad = |reason: String| CryptoError::BadValue {
            alg: alg.to_string(),
            reason,
        };
        match (self, alg) {
            (KeyMaterial::Rsa(k), "RSA-OAEP") => k
                .decrypt(Oaep::new::<sha1::Sha1>(), value)
                .map_err(|e| bad(e.to_string())),
            (KeyMaterial::Rsa(k), "RSA-OAEP-256") => k
                .decrypt(Oaep::new::<sha2::Sha256>(), value)
                .map_err(|e| bad(e.to_string())),
            (KeyMaterial::Rsa(k), "RSA1_5") => k
                .decrypt(Pkcs1v15Encrypt, value)
                .map_err(|e| bad(e.to_string())),
            (KeyMaterial::Aes(k), "A256KW") => {
                let kek =
                    aes_kw::KekAes256::try_from(k.0.as_slice()).map_err(|e| bad(e.to_string()))?;
                if value.len() < 24 {
                    return Err(bad(format!("{} bytes is too short", value.len())));
                }
                let mut out = vec![0u8; value.len() - 8];
                kek.unwrap(value, &mut out)
                    .map_err(|e| bad(e.to_string()))?;
                Ok(out)
            }
            _ => Err(self.unsupported(alg)),
        }
    }

    fn unsupported(&self, alg: &str) -> CryptoError {
        CryptoError::UnsupportedAlgorithm {
            alg: alg.to_string(),
            kty: self.family().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_round_trips_every_algorithm_and_refuses_aes_kw() {
        let key = KeyMaterial::generate_rsa(2048).expect("keygen");
        let cek = [7u8; 32];
        for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
            let wrapped = key.wrap(alg, &cek).expect("wrap");
            assert_eq!(wrapped.len(), 256, "{alg}");
            assert_eq!(key.unwrap(alg, &wrapped).expect("unwrap"), cek, "{alg}");
        }
        assert!(matches!(
            key.wrap("A256KW", &cek),
            Err(CryptoError::UnsupportedAlgorithm { .. })
        ));
        let wrapped = key.wrap("RSA-OAEP", &cek).expect("wrap");
        assert!(matches!(
            key.unwrap("RSA-OAEP-256", &wrapped),
            Err(CryptoError::BadValue { .. })
        ));
    }

    #[test]
    fn aes_kw_round_trips_and_detects_tampering() {
        let key = KeyMaterial::generate_aes(256).expect("keygen");
        let cek = [9u8; 32];
        let mut wrapped = key.wrap("A256KW", &cek).expect("wrap");
        assert_eq!(key.unwrap("A256KW", &wrapped).expect("unwrap"), cek);
        wrapped[3] ^= 1;
        assert!(key.unwrap("A256KW", &wrapped).is_err());
        assert!(key.unwrap("A256KW", &[0u8; 4]).is_err());
        assert!(key.wrap("RSA-OAEP", &cek).is_err());
    }

    #[test]
    fn base64url_has_no_padding_and_accepts_padding() {
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64url_decode("-_8=").expect("decode"), vec![0xfb, 0xff]);
        assert!(b64url_decode("not base64!").is_none());
    }
}
