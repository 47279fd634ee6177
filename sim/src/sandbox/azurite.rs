//! Azurite as a child process: found in the repo's `node_modules` (or `FERRY_AZURITE_BIN`),
//! started over https with `--oauth basic` and the sandbox's accounts, waited for, and killed
//! (and reaped) on drop. Must not leave a process behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::SandboxError;

/// Where Azurite keeps its data.
#[derive(Debug, Clone)]
pub enum AzuritePersistence {
    /// `--location <dir>`.
    Location(PathBuf),
    /// `--inMemoryPersistence`.
    InMemory,
}

/// How to start Azurite.
#[derive(Debug, Clone)]
pub struct AzuriteLaunch {
    /// The `azurite-blob` executable.
    pub bin: PathBuf,
    /// Port (must be free).
    pub port: u16,
    /// Server certificate chain PEM file.
    pub cert: PathBuf,
    /// Server key PEM file.
    pub key: PathBuf,
    /// Data location.
    pub persistence: AzuritePersistence,
    /// `AZURITE_ACCOUNTS` value (`name:key;name:key`); empty: Azurite's default account.
    pub accounts: String,
    /// Where Azurite's stdout/stderr go.
    pub log: PathBuf,
}

/// A running Azurite; killed and reaped on drop.
#[derive(Debug)]
pub struct AzuriteProcess {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its log file.
    pub log: PathBuf,
}

/// The repo root: the nearest ancestor of `start` holding `package.json`.
pub fn repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("package.json").is_file())
        .map(Path::to_path_buf)
}

/// The Azurite executable: `FERRY_AZURITE_BIN`, else `<repo root>/node_modules/.bin/azurite-blob`.
pub fn azurite_bin() -> Result<PathBuf, SandboxError> {
    if let Some(bin) = std::env::var_os("FERRY_AZURITE_BIN") {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        return Err(SandboxError::AzuriteBinEnv { path: bin });
    }
    let starts = [
        option_env!("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
    ];
    let root = starts.iter().flatten().find_map(|s| repo_root(s));
    let root = root.unwrap_or_else(|| std::env::current_dir().unwrap_or_default());
    let bin = root.join("node_modules").join(".bin").join("azurite-blob");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(SandboxError::AzuriteMissing { path: bin, root })
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> Result<u16, SandboxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| SandboxError::Io {
        what: "finding a free local port".into(),
        source: e,
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| SandboxError::Io {
            what: "finding a free local port".into(),
            source: e,
        })
}

impl AzuriteProcess {
    /// Starts Azurite and waits (up to 60 s) until it answers https.
    pub async fn start(
        launch: &AzuriteLaunch,
        ca_pem: &str,
    ) -> Result<AzuriteProcess, SandboxError> {
        let log = std::fs::File::create(&launch.log).map_err(|e| SandboxError::Io {
            what: format!("creating {}", launch.log.display()),
            source: e,
        })?;
        let log_err = log.try_clone().map_err(|e| SandboxError::Io {
            what: format!("opening {}", launch.log.display()),
            source: e,
        })?;
        let mut command = Command::new(&launch.bin);
        command
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &launch.port.to_string(),
                "--oauth",
                "basic",
            ])
            .arg("--cert")
            .arg(&launch.cert)
            .arg("--key")
            .arg(&launch.key)
            .args(["--skipApiVersionCheck", "--silent"]);
        match &launch.persistence {
            AzuritePersistence::Location(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| SandboxError::Io {
                    what: format!("creating {}", dir.display()),
                    source: e,
                })?;
                command.arg("--location").arg(dir);
            }
            AzuritePersistence::InMemory => {
                command.arg("--inMemoryPersistence");
            }
        }
        if !launch.accounts.is_empty() {
            command.env("AZURITE_ACCOUNTS", &launch.accounts);
        }
        command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        let child = command.spawn().map_err(|e| SandboxError::Io {
            what: format!(
                "starting azurite ({}); is node installed?",
                launch.bin.display()
            ),
            source: e,
        })?;
        let mut process = AzuriteProcess {
            child,
            url: format!("https://127.0.0.1:{}", launch.port),
            log: launch.log.clone(),
        };
        process.wait_ready(launch.port, ca_pem).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, port: u16, ca_pem: &str) -> Result<(), SandboxError> {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| SandboxError::Setup(format!("ca pem unusable: {e}")))?;
        let client = reqwest::Client::builder()
            .tls_certs_only(certs)
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| SandboxError::Setup(format!("http client: {e}")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(SandboxError::AzuriteExited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                // Any HTTP answer (401 without a token) means it is serving.
                if client
                    .get(format!("{}/?comp=list", self.url))
                    .send()
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(SandboxError::AzuriteTimeout {
                    url: self.url.clone(),
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of Azurite's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for AzuriteProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_is_the_nearest_dir_with_package_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("mkdir");
        assert_eq!(repo_root(&nested), None);
        std::fs::write(dir.path().join("package.json"), "{}").expect("write");
        assert_eq!(repo_root(&nested).as_deref(), Some(dir.path()));
    }
}
