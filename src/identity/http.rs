//! The one HTTP client Ferry uses for every Azure endpoint: TLS verification always on (system
//! roots plus an optional extra CA file), connect and read timeouts, and DNS pins for hosts whose
//! private zone the provider's DNS cannot see.
//!
//! Owns: building `reqwest::Client`s and deciding which address a host name goes to. Must not:
//! retry, authenticate or log request bodies.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// Errors building the HTTP client or resolving a pinned host.
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The CA file could not be read.
    #[error("cannot read CA file {path}: {source}; check agent.ca_file")]
    CaFileUnreadable {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error(
        "CA file {path} holds no usable PEM certificate: {reason}; agent.ca_file must be a PEM bundle of the CA that signed the endpoints' certificates"
    )]
    CaFileInvalid {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A DNS pin is not `ip` or `ip:port`.
    #[error("DNS pin for {host} has address {address:?}, which is not `ip` or `ip:port`")]
    BadPin {
        /// The pinned host pattern.
        host: String,
        /// The address text.
        address: String,
    },
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// One host-to-address pin; `*.suffix` matches every subdomain of `suffix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPin {
    pattern: String,
    address: SocketAddr,
}

impl HostPin {
    /// Parses `address` (`10.1.2.3` or `10.1.2.3:443`; a missing port means "the URL's port").
    pub fn new(host: &str, address: &str) -> Result<HostPin, HttpSetupError> {
        let bad = || HttpSetupError::BadPin {
            host: host.to_string(),
            address: address.to_string(),
        };
        let address = match address.parse::<SocketAddr>() {
            Ok(sa) => sa,
            Err(_) => SocketAddr::new(address.parse::<IpAddr>().map_err(|_| bad())?, 0),
        };
        Ok(HostPin {
            pattern: host.trim_end_matches('.').to_ascii_lowercase(),
            address,
        })
    }

    /// The pinned address (port 0 when the URL's port applies).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    fn matches(&self, host: &str) -> bool {
        match self.pattern.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == self.pattern,
        }
    }
}

/// The DNS pins in force: exact hosts win over wildcards, longer wildcards over shorter ones.
#[derive(Debug, Clone, Default)]
pub struct DnsPins {
    pins: Vec<HostPin>,
}

impl DnsPins {
    /// Pins from `(host, address)` pairs.
    pub fn new(pins: Vec<HostPin>) -> DnsPins {
        let mut pins = pins;
        // exact names first, then wildcards from the most specific down
        pins.sort_by_key(|p| {
            (
                p.pattern.starts_with("*."),
                std::cmp::Reverse(p.pattern.len()),
            )
        });
        DnsPins { pins }
    }

    /// Adds a pin for one exact host (used for per-endpoint `resolve`).
    pub fn with_exact(mut self, host: &str, address: &str) -> Result<DnsPins, HttpSetupError> {
        self.pins.push(HostPin::new(host, address)?);
        Ok(DnsPins::new(self.pins))
    }

    /// The address a host is pinned to, if any.
    pub fn lookup(&self, host: &str) -> Option<SocketAddr> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.pins
            .iter()
            .find(|p| p.matches(&host))
            .map(|p| p.address)
    }

    /// True when no pin is configured.
    pub fn is_empty(&self) -> bool {
        self.pins.is_empty()
    }
}

/// Resolver that answers pinned hosts from the pins and everything else from the system.
#[derive(Debug)]
struct PinnedResolver {
    pins: DnsPins,
}

impl Resolve for PinnedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        if let Some(addr) = self.pins.lookup(name.as_str()) {
            let addrs: Addrs = Box::new(std::iter::once(addr));
            return Box::pin(async move { Ok(addrs) });
        }
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let addrs: Addrs = Box::new(addrs.collect::<Vec<_>>().into_iter());
            Ok(addrs)
        })
    }
}

/// How long an idle connection stays in the pool. Longer than the default 60 s poll interval
/// (plus the poll's own duration), so an idle source's next List Blobs reuses its kept-alive TLS
/// connection instead of paying a new TCP + TLS handshake (about 1 ms of CPU, the bulk of an idle
/// poll's cost with 1,000 tenants). Azure Storage keeps HTTP/1.1 connections alive; a connection
/// the server closed meanwhile is noticed by its connection task and dropped from the pool, and a
/// request lost to a close race is retried like any connection reset.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Timeouts and trust for the shared client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The TLS configuration every client built from these settings shares, made on the first
    /// build: the system's root store (about 140 certificates read from disk and parsed) plus the
    /// extra CA, loaded once per process instead of once per client (one client per source or
    /// vault with its own `resolve`).
    tls: Arc<OnceLock<rustls::ClientConfig>>,
    /// PEM bundle of extra trusted CAs.
    pub ca_pem: Option<Vec<u8>>,
    /// DNS pins.
    pub pins: DnsPins,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
}

impl HttpSettings {
    /// Settings with Ferry's default timeouts (connect 10 s, read 60 s).
    pub fn new(ca_pem: Option<Vec<u8>>, pins: DnsPins) -> HttpSettings {
        HttpSettings {
            tls: Arc::default(),
            ca_pem,
            pins,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }

    /// Reads the extra CA file, if any.
    pub fn load_ca(path: Option<&Path>) -> Result<Option<Vec<u8>>, HttpSetupError> {
        let Some(path) = path else { return Ok(None) };
        let bytes = std::fs::read(path).map_err(|source| HttpSetupError::CaFileUnreadable {
            path: path.display().to_string(),
            source,
        })?;
        // refused here, where the file's name is known (a build would name the setting only)
        let invalid = |reason: String| HttpSetupError::CaFileInvalid {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        if certs.is_empty() {
            return Err(invalid("no certificate found".into()));
        }
        Ok(Some(bytes))
    }

    /// Builds a client with these settings.
    pub fn build(&self) -> Result<reqwest::Client, HttpSetupError> {
        self.build_with_pins(self.pins.clone())
    }

    /// Builds a client with other pins (a source or vault with its own `resolve`).
    pub fn build_with_pins(&self, pins: DnsPins) -> Result<reqwest::Client, HttpSetupError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .https_only(false)
            .redirect(reqwest::redirect::Policy::none())
            // Ferry retries by its own policy (`crate::retry`), by the service's error codes and
            // Retry-After. reqwest's default layer only retries HTTP/2 and HTTP/3 refusals, which
            // an HTTP/1.1 client never sees, yet it cloned every request's headers to be ready
            // for them; with no retries allowed it clones nothing
            .retry(reqwest::retry::never().max_retries_per_request(0))
            // Azure Storage, Key Vault and Entra speak HTTP/1.1; h2 (offered by the sandbox)
            // cost 15-27 % more CPU per GiB in the end-to-end benchmark
            .http1_only()
            .dns_resolver(Arc::new(PinnedResolver { pins }));
        builder = builder.tls_backend_preconfigured(self.tls_config()?);
        builder
            .build()
            .map_err(|e| HttpSetupError::Build(e.to_string()))
    }

    /// The shared TLS configuration: what reqwest builds by default (the platform verifier over
    /// the system roots plus the extra CA, TLS 1.2 and 1.3, SNI), with ALPN `http/1.1`.
    fn tls_config(&self) -> Result<rustls::ClientConfig, HttpSetupError> {
        if let Some(config) = self.tls.get() {
            return Ok(config.clone());
        }
        let invalid = |reason: String| HttpSetupError::CaFileInvalid {
            path: "of agent.ca_file".into(),
            reason,
        };
        let extra = match &self.ca_pem {
            None => Vec::new(),
            Some(pem) => {
                let certs = CertificateDer::pem_slice_iter(pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| invalid(e.to_string()))?;
                if certs.is_empty() {
                    return Err(invalid("no certificate found".into()));
                }
                certs
            }
        };
        let provider = Arc::new(tls_crypto_provider());
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
                .map_err(|e| invalid(e.to_string()))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpSetupError::Build(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // a racing first build made the same configuration: either is fine
        let _ = self.tls.set(config.clone());
        Ok(config)
    }
}

/// The cryptography behind every TLS connection: aws-lc-rs for the handshake (key exchange,
/// including the post-quantum hybrid X25519MLKEM768, and certificate signatures), ring for the
/// record layer's AES-GCM and ChaCha20-Poly1305.
///
/// Why two: every shipped byte is decrypted once coming from the customer and encrypted once going
/// to the provider, so the record cipher is the largest single CPU cost of a large copy. ring 0.17.14
/// has a VAES/AVX2 AES-GCM that aws-lc 0.47 lacks: 2.1x faster on a CPU with VAES (4.1 to 6.6 against
/// 2.0 to 3.2 GB/s sealing 16 KiB records, docs/BENCHMARKS.md "TLS record cipher"), and the same
/// AES-NI code where VAES is missing. The suites are rustls's defaults, in the order of
/// [`record_cipher_suites`].
pub fn tls_crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::CryptoProvider {
        cipher_suites: record_cipher_suites(),
        ..rustls::crypto::aws_lc_rs::default_provider()
    }
}

/// rustls's default suites from ring, TLS 1.3's AES-128-GCM offered first, as Go's TLS client and
/// BoringSSL do on CPUs with AES instructions; rustls offers AES-256-GCM first. A server that picks
/// by the client's order (Azurite's Node.js does) then spends 10 AES rounds per block instead of 14
/// on every byte Ferry moves, and so does Ferry: the large copy moved 3 % faster for 3 % less CPU
/// (docs/BENCHMARKS.md, "Runs 22 to 24"). Servers that pick by their own order are not
/// affected. Both suites stay offered; TLS_AES_128_GCM_SHA256 is the one TLS 1.3 requires of every
/// implementation (RFC 8446, section 9.1).
fn record_cipher_suites() -> Vec<rustls::SupportedCipherSuite> {
    let mut suites = rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec();
    if let Some(at) = suites
        .iter()
        .position(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
    {
        let aes128 = suites.remove(at);
        suites.insert(0, aes128);
    }
    suites
}

/// Whether an address is on a private network (RFC 1918, CGNAT, unique-local, loopback, link-local):
/// what a private endpoint resolves to.
pub fn is_private_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xfe00) == 0xfc00 || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Where a host name goes, and whether that is a private address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// The addresses (pinned or from DNS).
    pub addresses: Vec<IpAddr>,
    /// True when the address came from a pin.
    pub pinned: bool,
    /// The port a pin sends requests to, when it is not HTTPS's 443 (`10.1.2.3:8443`).
    pub pinned_port: Option<u16>,
}

impl Resolution {
    /// True when every address is private.
    pub fn is_private(&self) -> bool {
        !self.addresses.is_empty() && self.addresses.iter().all(|ip| is_private_address(*ip))
    }
}

/// Resolves a host the way the client will.
pub async fn resolve_host(pins: &DnsPins, host: &str) -> std::io::Result<Resolution> {
    if let Some(addr) = pins.lookup(host) {
        return Ok(Resolution {
            addresses: vec![addr.ip()],
            pinned: true,
            pinned_port: (addr.port() != 443).then_some(addr.port()),
        });
    }
    let addrs = tokio::net::lookup_host((host, 443)).await?;
    let mut addresses: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
    addresses.dedup();
    Ok(Resolution {
        addresses,
        pinned: false,
        pinned_port: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA file that is not a PEM bundle is refused when it is read, naming the file; and, for
    /// PEM given otherwise, when the first client is built, naming the setting; nothing is
    /// cached, so every later build says so too.
    #[test]
    fn unusable_ca_files_are_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "just some text").expect("write");
        let e = HttpSettings::load_ca(Some(&file)).expect_err("not PEM");
        let text = e.to_string();
        assert!(
            text.contains(&file.display().to_string()) && text.contains("agent.ca_file"),
            "{text}"
        );
        let broken_base64 =
            b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n";
        for pem in [&b"just some text"[..], &broken_base64[..]] {
            let settings = HttpSettings::new(Some(pem.to_vec()), DnsPins::default());
            for _ in 0..2 {
                match settings.build() {
                    Err(e @ HttpSetupError::CaFileInvalid { .. }) => {
                        assert!(e.to_string().contains("agent.ca_file"), "{e}")
                    }
                    other => panic!("expected CaFileInvalid, got {other:?}"),
                }
            }
        }
    }

    /// Clients built from one settings value share one TLS configuration, made once.
    #[test]
    fn clients_share_one_tls_configuration() {
        let settings = HttpSettings::new(None, DnsPins::default());
        settings.build().unwrap();
        let first = settings.tls.get().map(|c| c as *const _);
        settings.build_with_pins(DnsPins::default()).unwrap();
        assert!(first.is_some());
        assert_eq!(settings.tls.get().map(|c| c as *const _), first);
        assert_eq!(
            settings.tls.get().unwrap().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn tls_keeps_the_post_quantum_handshake_and_offers_aes_128_gcm_first() {
        let ours = tls_crypto_provider();
        let aws = rustls::crypto::aws_lc_rs::default_provider();
        let names = |p: &rustls::crypto::CryptoProvider| {
            p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>()
        };
        // the handshake is aws-lc's, hybrid post-quantum group first
        assert_eq!(names(&ours), names(&aws));
        assert_eq!(names(&ours)[0], rustls::NamedGroup::X25519MLKEM768);
        // the same suites in the same order, only from ring
        let suites = |p: &rustls::crypto::CryptoProvider| {
            p.cipher_suites
                .iter()
                .map(|s| s.suite())
                .collect::<Vec<_>>()
        };
        // the same suites, only from ring, AES-128-GCM first, the rest in rustls's order
        let (mut ours_sorted, mut aws_sorted) = (suites(&ours), suites(&aws));
        ours_sorted.sort_by_key(|s| u16::from(*s));
        aws_sorted.sort_by_key(|s| u16::from(*s));
        assert_eq!(ours_sorted, aws_sorted);
        const AES_128: rustls::CipherSuite = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
        let mut expected = vec![AES_128];
        expected.extend(
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES
                .iter()
                .map(|s| s.suite())
                .filter(|s| *s != AES_128),
        );
        assert_eq!(suites(&ours), expected);
    }

    #[test]
    fn exact_pins_win_over_wildcards() {
        let pins = DnsPins::new(vec![
            HostPin::new("*.sandbox.test", "127.0.0.1:8443").unwrap(),
            HostPin::new("kv.vault.sandbox.test", "10.0.0.5").unwrap(),
            HostPin::new("*.vault.sandbox.test", "10.0.0.9:443").unwrap(),
        ]);
        assert_eq!(
            pins.lookup("kv.vault.sandbox.test").unwrap(),
            "10.0.0.5:0".parse().unwrap()
        );
        assert_eq!(
            pins.lookup("other.vault.sandbox.test").unwrap(),
            "10.0.0.9:443".parse().unwrap()
        );
        assert_eq!(
            pins.lookup("Login.Sandbox.Test.").unwrap(),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert!(pins.lookup("sandbox.test").is_none());
        assert!(pins.lookup("evil-sandbox.test").is_none());
    }

    #[test]
    fn bad_pins_are_refused() {
        assert!(HostPin::new("x", "not-an-ip").is_err());
        assert!(HostPin::new("x", "10.0.0.1:99999").is_err());
    }

    #[test]
    fn private_addresses() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(is_private_address(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["20.60.1.1", "8.8.8.8", "2603:1000::1"] {
            assert!(!is_private_address(ip.parse().unwrap()), "{ip}");
        }
    }
}
