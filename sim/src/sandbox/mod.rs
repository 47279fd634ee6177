//! The shared test harness: a sandbox is a test CA, Azurite (https, `--oauth basic`, the
//! sandbox's accounts) and ferry-sim in-process pointed at it, torn down on drop. Every
//! integration test in the repo and the demo start here.
//!
//! Also a small blob seeding client (`seed`), onboarding helpers that provision a customer or
//! the provider in a few calls (`onboard`), and the demo sandbox behind `ferry-sim sandbox up`
//! (`demo`). Must not leave processes behind, and fails loudly (with what to install) when
//! Azurite is missing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_sim::sandbox::SandboxError> {
//! use ferry_sim::sandbox::{CustomerSpec, ProviderSpec, Sandbox, SandboxOptions};
//! let sandbox = Sandbox::start(SandboxOptions::with_accounts(&["contosologs", "provider"])).await?;
//! let provider = sandbox.onboard_provider(&ProviderSpec::default()).await?;
//! let spec = CustomerSpec::new("contoso", "33333333-3333-4333-8333-333333333333", "contosologs", "contoso-kv");
//! let customer = sandbox.onboard_customer(&provider.app_client_id, &spec).await?;
//! let seeder = sandbox.seeder("contosologs").await?;
//! seeder.put_block_blob(&spec.container, "a.json", &b"{}\n"[..]).await?;
//! sandbox.disable_key("contoso-kv", &customer.spec.key).await?; // revoke the key
//! # Ok(()) }
//! ```

mod azurite;
mod demo;
mod demo_data;
mod onboard;
mod provision;
mod seed;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use rand::RngCore as _;
use serde_json::Value;

use crate::ca::SandboxCertificates;
use crate::server::{serve, RunningSim, ServeConfig};
use crate::state::{lock, Settings, SimConfig, SimState};

pub use azurite::{azurite_bin, free_port, repo_root, AzuritePersistence};
pub use demo::{run_demo_sandbox, start_demo_sandbox, DemoIds, DemoPorts};
pub use demo_data::{admin_from_dir, list_container, DemoData, DemoSeeder};
pub use onboard::{Customer, CustomerSpec, Provider, ProviderSpec};
pub use provision::PrincipalRef;
pub use seed::{blob_names, BlobSeeder, CUSTOMER_ADMIN_APP_ID, CUSTOMER_ADMIN_OBJECT_ID};

/// Why the sandbox could not start or a setup call failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Azurite is not installed in the repo.
    #[error("azurite not found at {}: run `npm ci` in {} (scripts/test does this)", path.display(), root.display())]
    AzuriteMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// The repo root.
        root: PathBuf,
    },
    /// `FERRY_AZURITE_BIN` names a missing file.
    #[error("azurite not found at {} (from FERRY_AZURITE_BIN): fix or unset the variable", path.display())]
    AzuriteBinEnv {
        /// The path from the variable.
        path: PathBuf,
    },
    /// Azurite exited while starting.
    #[error("azurite exited while starting ({status}); its log ends with:\n{log}")]
    AzuriteExited {
        /// Exit status.
        status: String,
        /// Last log lines.
        log: String,
    },
    /// Azurite did not answer in time.
    #[error("azurite at {url} did not answer within 60 s; its log ends with:\n{log}")]
    AzuriteTimeout {
        /// Its URL.
        url: String,
        /// Last log lines.
        log: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Certificates could not be made.
    #[error("sandbox certificates: {0}")]
    Ca(#[from] crate::ca::CaError),
    /// The sim could not start.
    #[error("sim: {0}")]
    Serve(#[from] crate::server::ServeError),
    /// Anything else in setup (client building, bad option).
    #[error("sandbox setup: {0}")]
    Setup(String),
    /// An admin API call failed.
    #[error("admin call {method} {path} answered {status}: {body}")]
    Admin {
        /// HTTP method.
        method: String,
        /// Admin path.
        path: String,
        /// Status (0: no answer).
        status: u16,
        /// Body or transport error.
        body: String,
    },
    /// A blob call through the gateway failed.
    #[error("blob call {op} on {target} answered {status} {code}")]
    Blob {
        /// Operation name (`create container`, `put block`, ...).
        op: String,
        /// Account/container/blob.
        target: String,
        /// Status (0: no answer).
        status: u16,
        /// `x-ms-error-code` or the transport error.
        code: String,
    },
}

/// What to start.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Sandbox directory; None: a fresh temp dir removed on drop.
    pub dir: Option<PathBuf>,
    /// Azurite accounts (keys are generated). At least one.
    pub accounts: Vec<String>,
    /// `--inMemoryPersistence` instead of `--location <dir>/azurite`.
    pub in_memory: bool,
    /// Sim https port (0: any free port).
    pub https_port: u16,
    /// Sim plain-http IMDS port (0: any free port; None: no IMDS listener).
    pub imds_port: Option<u16>,
    /// Azurite port (None: any free port).
    pub azurite_port: Option<u16>,
    /// Initial sim settings.
    pub settings: Settings,
    /// The `azurite-blob` executable; None: `FERRY_AZURITE_BIN`, else the repo's `node_modules`.
    pub azurite_bin: Option<PathBuf>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            dir: None,
            accounts: vec!["acct1".into(), "acct2".into(), "provider".into()],
            in_memory: true,
            https_port: 0,
            imds_port: Some(0),
            azurite_port: None,
            settings: Settings::default(),
            azurite_bin: None,
        }
    }
}

impl SandboxOptions {
    /// Default options with these Azurite accounts.
    pub fn with_accounts(accounts: &[&str]) -> Self {
        SandboxOptions {
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            ..Default::default()
        }
    }
}

/// A running sandbox: Azurite + the sim. Dropping it stops both (Azurite is killed and reaped).
pub struct Sandbox {
    // Field order is drop order: the sim first, then Azurite, then the temp dir.
    sim: RunningSim,
    azurite: azurite::AzuriteProcess,
    http: reqwest::Client,
    admin: crate::admin_client::AdminClient,
    dir: PathBuf,
    accounts: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("dir", &self.dir)
            .field("sim", &self.sim.https_addr())
            .field("azurite", &self.azurite.url)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Makes certificates, starts Azurite and waits for it, then starts the sim pointed at it.
    pub async fn start(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        let bin = match &options.azurite_bin {
            Some(bin) if bin.is_file() => bin.clone(),
            Some(bin) => {
                let root = std::env::current_dir()
                    .ok()
                    .and_then(|d| repo_root(&d))
                    .unwrap_or_default();
                return Err(SandboxError::AzuriteMissing {
                    path: bin.clone(),
                    root,
                });
            }
            None => azurite_bin()?,
        };
        if options.accounts.is_empty() {
            return Err(SandboxError::Setup(
                "no azurite accounts given; name at least one in SandboxOptions.accounts".into(),
            ));
        }
        let (temp, dir) = match &options.dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| SandboxError::Io {
                    what: format!("creating {}", d.display()),
                    source: e,
                })?;
                (None, d.clone())
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("ferry-sandbox-")
                    .tempdir()
                    .map_err(|e| SandboxError::Io {
                        what: "creating a temp dir".into(),
                        source: e,
                    })?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let certs = SandboxCertificates::load_or_generate(&dir)?;
        let accounts: Vec<String> = options
            .accounts
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        let account_keys = accounts
            .iter()
            .map(|a| format!("{a}:{}", account_key()))
            .collect::<Vec<_>>()
            .join(";");
        let persistence = if options.in_memory {
            AzuritePersistence::InMemory
        } else {
            AzuritePersistence::Location(dir.join("azurite"))
        };
        let mut attempt = 0;
        let azurite = loop {
            let port = match options.azurite_port {
                Some(p) => p,
                None => azurite::free_port()?,
            };
            let launch = azurite::AzuriteLaunch {
                bin: bin.clone(),
                port,
                cert: dir.join("azurite.pem"),
                key: dir.join("azurite-key.pem"),
                persistence: persistence.clone(),
                accounts: account_keys.clone(),
                log: dir.join("azurite.log"),
            };
            match azurite::AzuriteProcess::start(&launch, &certs.ca_pem).await {
                Ok(p) => break p,
                // A free port can be taken between the probe and the start: try another.
                Err(SandboxError::AzuriteExited { .. })
                    if options.azurite_port.is_none() && attempt < 2 =>
                {
                    attempt += 1
                }
                Err(e) => return Err(e),
            }
        };
        let sim = serve(ServeConfig {
            https_listen: SocketAddr::from(([127, 0, 0, 1], options.https_port)),
            imds_listen: options
                .imds_port
                .map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            server_cert_pem: certs.server.chain_pem.clone(),
            server_key_pem: certs.server.key_pem.clone(),
            settings: options.settings.clone(),
            config: SimConfig {
                azurite_url: Some(azurite.url.clone()),
                ca_pem: certs.ca_pem.clone(),
            },
        })
        .await?;
        lock(&sim.state().storage).azurite_accounts = Some(accounts.clone());
        let http = sim
            .http_client()
            .map_err(|e| SandboxError::Setup(format!("sandbox http client: {e}")))?;
        let admin = sim
            .admin()
            .map_err(|e| SandboxError::Setup(format!("admin client: {e}")))?;
        Ok(Sandbox {
            sim,
            azurite,
            http,
            admin,
            dir,
            accounts,
            _temp: temp,
        })
    }

    /// The sim's https address (every `*.sandbox.test` host is served there).
    pub fn https_addr(&self) -> SocketAddr {
        self.sim.https_addr()
    }

    /// `http://127.0.0.1:PORT/metadata/identity/oauth2/token`, when the IMDS listener runs.
    pub fn imds_url(&self) -> Option<String> {
        self.sim
            .imds_addr()
            .map(|a| format!("http://{a}/metadata/identity/oauth2/token"))
    }

    /// `<dir>/ca.pem`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA PEM text.
    pub fn ca_pem(&self) -> &str {
        self.sim.ca_pem()
    }

    /// The sandbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The typed admin client.
    pub fn admin(&self) -> &crate::admin_client::AdminClient {
        &self.admin
    }

    /// A client that trusts the CA and sends every `*.sandbox.test` host to the sim.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Azurite's own URL (`https://127.0.0.1:PORT`); tests should go through the gateway.
    pub fn azurite_url(&self) -> &str {
        &self.azurite.url
    }

    /// Azurite's process id (it is killed and reaped when the sandbox drops).
    pub fn azurite_pid(&self) -> u32 {
        self.azurite.pid()
    }

    /// Azurite's accounts.
    pub fn accounts(&self) -> &[String] {
        &self.accounts
    }

    /// The sim's shared state (for white-box assertions).
    pub fn state(&self) -> Arc<SimState> {
        self.sim.state()
    }

    /// `https://{account}.blob.sandbox.test` (reachable with [`Sandbox::http`]).
    pub fn blob_endpoint(&self, account: &str) -> String {
        format!("https://{account}.blob.sandbox.test")
    }

    /// `https://{vault}.vault.sandbox.test`.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.vault.sandbox.test")
    }

    /// `https://login.sandbox.test`.
    pub fn authority_host(&self) -> &'static str {
        "https://login.sandbox.test"
    }

    /// Calls the admin API with JSON and returns the JSON answer (`null` for 204).
    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SandboxError> {
        let url = format!("https://admin.sandbox.test{path}");
        let mut request = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            request = request.json(b);
        }
        let fail = |status: u16, body: String| SandboxError::Admin {
            method: method.to_string(),
            path: path.to_string(),
            status,
            body,
        };
        let response = request.send().await.map_err(|e| fail(0, e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| fail(status.as_u16(), e.to_string()))?;
        if !status.is_success() {
            return Err(fail(status.as_u16(), text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| fail(status.as_u16(), format!("not json: {e}")))
    }

    /// A storage access token minted by the admin API (`POST /admin/tokens`).
    pub async fn mint_token(
        &self,
        tenant_id: &str,
        resource: &str,
        object_id: &str,
        app_id: Option<&str>,
    ) -> Result<String, SandboxError> {
        let mut body = serde_json::json!({ "tenant_id": tenant_id, "resource": resource, "object_id": object_id });
        if let Some(app) = app_id {
            body["app_id"] = Value::from(app);
        }
        let answer = self
            .admin_json(reqwest::Method::POST, "/admin/tokens", Some(&body))
            .await?;
        answer
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                SandboxError::Setup("POST /admin/tokens answered without access_token".into())
            })
    }
}

/// A random Azurite account key (64 bytes, base64).
fn account_key() -> String {
    let mut bytes = [0u8; 64];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
