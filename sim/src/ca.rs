//! The sandbox's test CA and leaf certificates (rcgen), and their PEM files.
//!
//! One CA per sandbox directory (`ca.pem`, `ca-key.pem`); a server leaf for the sim
//! (`server.pem`, `server-key.pem`) with every sandbox and production-style name the sim answers
//! for; a leaf for Azurite (`azurite.pem`, `azurite-key.pem`). Also self-signed RSA client
//! certificates for app credentials. This module must never be used for anything but tests and
//! the local demo: the keys are written unencrypted.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rsa::pkcs8::{EncodePrivateKey as _, LineEnding};
use rsa::RsaPrivateKey;

/// Names the sim's server certificate covers (docs/sandbox.md, "Certificates").
pub const SIM_SERVER_NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "sandbox.test",
    "*.sandbox.test",
    "*.vault.sandbox.test",
    "*.managedhsm.sandbox.test",
    "*.blob.sandbox.test",
    "login.microsoftonline.com",
    "login.windows.net",
    "*.vault.azure.net",
    "*.managedhsm.azure.net",
    "*.blob.core.windows.net",
];

/// Names Azurite's certificate covers: its path-style address, and the production-style account
/// names (`{account}.blob.sandbox.test`, which Azurite maps to the account like Azure does), so
/// a client pinned to Azurite's port with a DNS pin reaches it directly, without the gateway
/// (the end-to-end benchmark's "direct" runs).
pub const AZURITE_NAMES: &[&str] = &["127.0.0.1", "localhost", "*.blob.sandbox.test"];

/// Why certificates could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused.
    #[error("cannot build certificate: {0}")]
    Build(#[from] rcgen::Error),
    /// RSA key generation or encoding failed.
    #[error("cannot make rsa key: {0}")]
    Rsa(String),
    /// A file could not be read or written.
    #[error("{path}: {source}; check the sandbox directory exists and is writable")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct LeafCertificate {
    /// Leaf certificate followed by the CA certificate.
    pub chain_pem: String,
    /// The leaf alone.
    pub cert_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

impl std::fmt::Debug for LeafCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafCertificate").finish_non_exhaustive()
    }
}

/// The test CA, able to issue leaves.
pub struct TestCa {
    /// CA certificate PEM.
    pub cert_pem: String,
    /// CA key (kept to issue more leaves).
    key: KeyPair,
    /// CA certificate as rcgen needs it for signing.
    cert: rcgen::Certificate,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(days);
}

impl TestCa {
    /// A new CA (ECDSA P-256, ten years).
    pub fn generate() -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ferry-sim test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "ferry sandbox");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
            cert,
        })
    }

    /// Loads a CA from its certificate and key PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(key_pem)?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key,
            cert,
        })
    }

    /// The CA key, PEM (to write `ca-key.pem`).
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a server leaf for `names` (DNS names, wildcards or IP addresses), valid two years.
    pub fn issue_server(&self, names: &[&str]) -> Result<LeafCertificate, CaError> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("ferry-sim"),
        );
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 730);
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        let cert_pem = cert.pem();
        Ok(LeafCertificate {
            chain_pem: format!("{cert_pem}{}", self.cert_pem),
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }
}

/// A self-signed RSA-2048 certificate for an app credential, with its key.
pub struct ClientCertificatePair {
    /// Certificate PEM (what `POST /admin/apps/{app}/certificates` takes).
    pub cert_pem: String,
    /// PKCS#8 key PEM.
    pub key_pem: String,
    /// The key, for signing assertions.
    pub key: RsaPrivateKey,
}

impl std::fmt::Debug for ClientCertificatePair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificatePair")
            .finish_non_exhaustive()
    }
}

/// Makes a self-signed RSA client certificate with common name `cn`, valid one year.
pub fn client_certificate(cn: &str) -> Result<ClientCertificatePair, CaError> {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| CaError::Rsa(e.to_string()))?;
    let key_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CaError::Rsa(e.to_string()))?
        .to_string();
    let signing = KeyPair::from_pem(&key_pem)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    validity(&mut params, 365);
    let cert = params.self_signed(&signing)?;
    Ok(ClientCertificatePair {
        cert_pem: cert.pem(),
        key_pem,
        key,
    })
}

/// Everything a sandbox directory holds.
#[derive(Debug, Clone)]
pub struct SandboxCertificates {
    /// `ca.pem`.
    pub ca_pem: String,
    /// The sim's server certificate.
    pub server: LeafCertificate,
    /// Azurite's certificate.
    pub azurite: LeafCertificate,
}

impl SandboxCertificates {
    /// A new CA and both leaves, in memory.
    pub fn generate() -> Result<(Self, TestCa), CaError> {
        let ca = TestCa::generate()?;
        let server = ca.issue_server(SIM_SERVER_NAMES)?;
        let azurite = ca.issue_server(AZURITE_NAMES)?;
        Ok((
            Self {
                ca_pem: ca.cert_pem.clone(),
                server,
                azurite,
            },
            ca,
        ))
    }

    /// Generates everything and writes it into `dir` (created if missing), replacing what is there.
    pub fn generate_into(dir: &Path) -> Result<Self, CaError> {
        let (certs, ca) = Self::generate()?;
        std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = [
            ("ca.pem", certs.ca_pem.as_str()),
            ("ca-key.pem", &ca.key_pem()),
            ("server.pem", &certs.server.chain_pem),
            ("server-key.pem", &certs.server.key_pem),
            ("azurite.pem", &certs.azurite.chain_pem),
            ("azurite-key.pem", &certs.azurite.key_pem),
        ];
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| CaError::Io { path, source })?;
        }
        Ok(certs)
    }

    /// Loads the files `generate_into` wrote.
    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| CaError::Io { path, source })
        };
        let ca_pem = read("ca.pem")?;
        let leaf = |cert: &str, key: &str| -> Result<LeafCertificate, CaError> {
            let chain_pem = read(cert)?;
            let cert_pem = chain_pem
                .split_inclusive("-----END CERTIFICATE-----")
                .next()
                .unwrap_or("")
                .to_string();
            Ok(LeafCertificate {
                chain_pem,
                cert_pem,
                key_pem: read(key)?,
            })
        };
        Ok(Self {
            server: leaf("server.pem", "server-key.pem")?,
            azurite: leaf("azurite.pem", "azurite-key.pem")?,
            ca_pem,
        })
    }

    /// Loads `dir` if it holds a CA, else generates into it.
    pub fn load_or_generate(dir: &Path) -> Result<Self, CaError> {
        if dir.join("ca.pem").exists() && dir.join("server.pem").exists() {
            Self::load(dir)
        } else {
            Self::generate_into(dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_load_back_and_a_loaded_ca_issues() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = SandboxCertificates::generate_into(dir.path()).expect("generate");
        let loaded = SandboxCertificates::load(dir.path()).expect("load");
        assert_eq!(made.ca_pem, loaded.ca_pem);
        assert_eq!(made.server.key_pem, loaded.server.key_pem);
        assert!(loaded
            .server
            .cert_pem
            .ends_with("-----END CERTIFICATE-----"));
        let key = std::fs::read_to_string(dir.path().join("ca-key.pem")).expect("key");
        let ca = TestCa::from_pem(&loaded.ca_pem, &key).expect("ca loads");
        ca.issue_server(&["x.sandbox.test"]).expect("issues");
    }

    #[test]
    fn client_certificates_are_rsa() {
        let pair = client_certificate("ferry app").expect("cert");
        let parsed =
            crate::directory::ClientCertificate::from_pem(&pair.cert_pem).expect("rsa cert");
        assert_eq!(parsed.thumbprint_sha1.len(), 40);
    }
}
