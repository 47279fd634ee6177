//! The configuration schema: serde structs whose field doc comments are the user documentation.
//!
//! Defaults are written once, in the `default_*` functions below. Validation that needs more than
//! one field lives in `validate.rs`; this file only says what may be written.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::{ByteSize, HumanDuration};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-wide settings: state, status server, cloud, DNS pins.
    #[serde(default)]
    pub agent: AgentConfig,
    /// The provider's multi-tenant Entra app that every customer consented to.
    pub app: AppConfig,
    /// Provider storage where everything shipped lands.
    pub destination: DestinationConfig,
    /// Customer tenants, one table each (`[[tenant]]`).
    #[serde(rename = "tenant", default)]
    pub tenants: Vec<TenantConfig>,
}

/// `[agent]`: settings of the Ferry process itself.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Directory for checkpoints (SQLite, WAL). Must be writable and survive restarts.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Address of the status server (`/metrics`, `/healthz`, `/readyz`, `/status`).
    #[serde(default = "default_status_listen")]
    pub status_listen: SocketAddr,
    /// Which Azure cloud: `public`, `usgov`, `china`, or `custom` (then `[agent.custom_cloud]` is required).
    #[serde(default)]
    pub cloud: CloudName,
    /// Endpoints and token resources of a custom cloud (the local sandbox is one).
    #[serde(default)]
    pub custom_cloud: Option<CustomCloudConfig>,
    /// Extra PEM file of CA certificates to trust, in addition to the system roots. TLS
    /// verification is never turned off.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Pin host names to addresses for every connection Ferry makes, for DNS that cannot see a
    /// private zone. `host` may start with `*.` to match any subdomain.
    #[serde(default)]
    pub resolve: Vec<DnsPin>,
    /// How often a revoked, denied or misconfigured tenant is checked again.
    #[serde(default = "default_recheck_interval")]
    pub recheck_interval: HumanDuration,
    /// How long a graceful stop (SIGTERM, SIGINT) may take before in-flight work is abandoned
    /// uncommitted.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// Downloads in flight across all tenants.
    #[serde(default = "default_global_fetches")]
    pub max_concurrent_fetches: usize,
    /// Uploads in flight across all tenants.
    #[serde(default = "default_global_uploads")]
    pub max_concurrent_uploads: usize,
    /// Where the provider's managed identity gets tokens. Detected from the environment
    /// (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER`, else IMDS) when absent.
    #[serde(default)]
    pub managed_identity: Option<ManagedIdentityEndpoint>,
    /// Log format: `auto` (human on a terminal, JSON otherwise), `human` or `json`.
    #[serde(default)]
    pub log_format: LogFormat,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            state_dir: default_state_dir(),
            status_listen: default_status_listen(),
            cloud: CloudName::default(),
            custom_cloud: None,
            ca_file: None,
            resolve: Vec::new(),
            recheck_interval: default_recheck_interval(),
            shutdown_grace: default_shutdown_grace(),
            max_concurrent_fetches: default_global_fetches(),
            max_concurrent_uploads: default_global_uploads(),
            managed_identity: None,
            log_format: LogFormat::default(),
        }
    }
}

/// Named Azure clouds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CloudName {
    /// Azure public cloud (`login.microsoftonline.com`, `*.blob.core.windows.net`).
    #[default]
    Public,
    /// Azure US Government (`login.microsoftonline.us`, `*.blob.core.usgovcloudapi.net`).
    Usgov,
    /// Azure China (`login.chinacloudapi.cn`, `*.blob.core.chinacloudapi.cn`).
    China,
    /// Every endpoint set in `[agent.custom_cloud]`.
    Custom,
}

/// `[agent.custom_cloud]`: every endpoint and token resource of a cloud that is not built in.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomCloudConfig {
    /// Entra authority host, e.g. `https://login.sandbox.test`.
    pub authority_host: String,
    /// Host suffix of blob endpoints, e.g. `blob.sandbox.test`.
    pub blob_suffix: String,
    /// Host suffix of Key Vaults, e.g. `vault.sandbox.test`.
    pub vault_suffix: String,
    /// Token resource for storage (Azurite accepts `https://storage.azure.com`).
    #[serde(default = "default_storage_resource")]
    pub storage_resource: String,
    /// Token resource for Key Vault, e.g. `https://vault.sandbox.test`.
    pub vault_resource: String,
    /// Token resource for Managed HSM, e.g. `https://managedhsm.sandbox.test`. Defaults to
    /// `https://managedhsm.` followed by `vault_suffix` without its first label.
    #[serde(default)]
    pub managed_hsm_resource: Option<String>,
    /// Log Analytics query endpoint, e.g. `https://api.loganalytics.sandbox.test`.
    pub log_analytics_endpoint: String,
    /// Token resource for Log Analytics.
    #[serde(default = "default_log_analytics_resource")]
    pub log_analytics_resource: String,
}

/// A DNS pin: connections to `host` go to `address` instead of what DNS says.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsPin {
    /// Host name, or `*.suffix` for every subdomain of `suffix`.
    pub host: String,
    /// `10.1.2.3` or `10.1.2.3:443` (a port here overrides the URL's default port).
    pub address: String,
}

/// Where the provider's managed identity asks for tokens.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "shape", rename_all = "snake_case")]
pub enum ManagedIdentityEndpoint {
    /// VM instance metadata service: `GET {endpoint}?api-version=2018-02-01&resource=..` with `Metadata: true`.
    Imds {
        /// Defaults to `http://169.254.169.254/metadata/identity/oauth2/token`.
        #[serde(default = "default_imds_endpoint")]
        endpoint: String,
    },
    /// App Service / Functions / Container Apps: `GET {endpoint}?api-version=2019-08-01` with
    /// `X-IDENTITY-HEADER`.
    AppService {
        /// The `IDENTITY_ENDPOINT` value.
        endpoint: String,
        /// The `IDENTITY_HEADER` value, by reference (it is a secret).
        header: SecretRef,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Always human-readable.
    Human,
    /// Always JSON lines.
    Json,
}

/// `[app]`: the provider's multi-tenant Entra app.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// The app's client id (a GUID).
    pub client_id: String,
    /// The provider's own tenant, where the app is registered (needed for `key_vault_secret`
    /// and for `destination.credential = { kind = "app" }`).
    #[serde(default)]
    pub home_tenant_id: Option<String>,
    /// How the app proves who it is to each customer tenant.
    pub credential: AppCredential,
}

/// How the app authenticates. Secrets are only ever referenced, never written inline.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum AppCredential {
    /// A client secret read from an environment variable or a file (re-read when rejected).
    Secret {
        /// Environment variable that holds the secret.
        #[serde(default)]
        env: Option<String>,
        /// File that holds the secret (trailing newline ignored).
        #[serde(default)]
        file: Option<PathBuf>,
    },
    /// A client secret kept in the provider's Key Vault, fetched with the provider identity.
    KeyVaultSecret {
        /// Vault URL, e.g. `https://provider-kv.vault.azure.net`.
        vault: String,
        /// Secret name.
        name: String,
        /// Provider identity used to read the secret.
        #[serde(default)]
        identity: Option<ProviderCredential>,
    },
    /// A certificate: PEM file with the certificate and its private key (reloaded when it changes).
    Certificate {
        /// PEM file with `CERTIFICATE` and `PRIVATE KEY` blocks.
        path: PathBuf,
        /// Separate PEM file for the private key, when not in `path`.
        #[serde(default)]
        key_path: Option<PathBuf>,
    },
    /// Secretless: a provider user-assigned managed identity's token for
    /// `api://AzureADTokenExchange` is the client assertion.
    FederatedManagedIdentity {
        /// Client id of the user-assigned managed identity.
        managed_identity_client_id: String,
    },
    /// AKS workload identity: the projected service account token file is the client assertion.
    WorkloadIdentity {
        /// Defaults to `$AZURE_FEDERATED_TOKEN_FILE`.
        #[serde(default)]
        token_file: Option<PathBuf>,
    },
}

/// A provider-side identity (destination storage, provider Key Vault).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum ProviderCredential {
    /// The provider's managed identity (system-assigned, or user-assigned by `client_id`).
    ManagedIdentity {
        /// Client id of a user-assigned managed identity.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// AKS workload identity in the provider tenant.
    WorkloadIdentity {
        /// Defaults to `$AZURE_FEDERATED_TOKEN_FILE`.
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// Defaults to `$AZURE_CLIENT_ID`.
        #[serde(default)]
        client_id: Option<String>,
    },
    /// The multi-tenant app itself, in `app.home_tenant_id`.
    App,
}

/// A reference to a secret; the value itself never appears in the config.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Environment variable holding the value.
    #[serde(default)]
    pub env: Option<String>,
    /// File holding the value.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// `[destination]`: provider storage.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Blob endpoint, e.g. `https://providerlogs.blob.core.windows.net`.
    pub account_url: String,
    /// Container that receives everything.
    pub container: String,
    /// Object path template. Must contain `{tenant}` and `{source}`. Placeholders: `{tenant}`,
    /// `{tenant_id}`, `{source}`, `{yyyy}`, `{MM}`, `{dd}`, `{HH}`, `{name}` (sanitised source
    /// blob name), `{offset}`, `{version}` (required with `{offset}`), `{ext}`.
    #[serde(default = "default_path_template")]
    pub path: String,
    /// Identity used to write.
    #[serde(default = "default_destination_credential")]
    pub credential: ProviderCredential,
    /// Global limit on bytes per second into provider storage.
    #[serde(default)]
    pub max_bytes_per_sec: Option<ByteSize>,
    /// Objects up to this size go in one Put Blob; larger ones as staged blocks and one commit.
    #[serde(default = "default_single_put_max")]
    pub single_put_max: ByteSize,
    /// Size of each staged block for large objects.
    #[serde(default = "default_block_size")]
    pub block_size: ByteSize,
    /// DNS pin for the destination endpoint (`10.1.2.3` or `10.1.2.3:443`).
    #[serde(default)]
    pub resolve: Option<String>,
    /// When set, `ferry run` writes a watermark object per source (`_ferry~watermark.json` in
    /// the source's folder): everything written to the source before its `complete_before` has
    /// landed, and the tenant's state. Rewritten at once when the tenant stops or ships again,
    /// otherwise at most this often. Unset (the default): none are written.
    #[serde(default)]
    pub watermark_interval: Option<HumanDuration>,
}

/// `[[tenant]]`: one customer tenant.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Short name used in paths, metrics and logs (`[a-z0-9-]`, unique).
    pub name: String,
    /// The customer's Entra tenant id (a GUID).
    pub tenant_id: String,
    /// Limit on bytes per second read from this customer's services.
    #[serde(default)]
    pub max_bytes_per_sec: Option<ByteSize>,
    /// Limit on requests per second to this customer's services.
    #[serde(default)]
    pub max_requests_per_sec: Option<u32>,
    /// Downloads in flight for this tenant.
    #[serde(default = "default_tenant_fetches")]
    pub max_concurrent_fetches: usize,
    /// Set to false to keep the tenant configured but idle.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The tenant's sources (`[[tenant.source]]`).
    #[serde(rename = "source", default)]
    pub sources: Vec<SourceConfig>,
}

/// `[[tenant.source]]`: one place data is pulled from.
// A few hundred bytes per configured source, parsed once: boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A blob container.
    Blob(BlobSourceConfig),
    /// A Log Analytics workspace query.
    LogAnalytics(LogAnalyticsSourceConfig),
}

impl SourceConfig {
    /// The source's name, unique within its tenant.
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::Blob(b) => &b.name,
            SourceConfig::LogAnalytics(l) => &l.name,
        }
    }
}

/// A blob container source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlobSourceConfig {
    /// Short name used in paths, metrics and logs (`[a-z0-9-]`, unique in the tenant).
    pub name: String,
    /// Customer blob endpoint, e.g. `https://contosologs.blob.core.windows.net`.
    pub account_url: String,
    /// Container to read.
    pub container: String,
    /// Only blobs whose names start with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Glob patterns; when present, only matching blob names are shipped.
    #[serde(default)]
    pub include: Vec<String>,
    /// Glob patterns of blob names never shipped.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `records` (JSON Lines, batched and compressed) or `copy` (byte-exact objects).
    #[serde(default)]
    pub mode: ShipMode,
    /// How often the container is listed for new data.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// How the container is listed: `auto` (`date_partitioned` for Azure Monitor `insights-*`
    /// containers that outgrew one listing page, `flat` otherwise), `flat` (every blob every poll,
    /// resuming after a restart where the last pass stopped), or `date_partitioned` (only the open
    /// `y=/m=/d=/h=` hours of each resource).
    #[serde(default)]
    pub listing: ListingMode,
    /// Blobs asked for per List Blobs page (1 to 5000; Azure's maximum is the default).
    #[serde(default = "default_list_page_size")]
    pub list_page_size: u32,
    /// `date_partitioned`: an hour is closed, and no longer listed every poll, once it ended this
    /// long ago, its blobs were last written this long ago and all of them are shipped.
    #[serde(default = "default_partition_settle")]
    pub partition_settle: HumanDuration,
    /// `date_partitioned`: how often the directory tree is walked for new resources.
    #[serde(default = "default_partition_discovery_interval")]
    pub partition_discovery_interval: HumanDuration,
    /// `date_partitioned`: how often the whole container is listed anyway, to catch writes into
    /// closed hours and blobs outside the date layout.
    #[serde(default = "default_full_listing_interval")]
    pub full_listing_interval: HumanDuration,
    /// Records mode: close a destination object at this size (uncompressed).
    #[serde(default = "default_batch_max_bytes")]
    pub batch_max_bytes: ByteSize,
    /// Records mode: close a destination object after this age.
    #[serde(default = "default_batch_max_age")]
    pub batch_max_age: HumanDuration,
    /// Records mode: compression of destination objects.
    #[serde(default)]
    pub compression: Compression,
    /// Records mode: the codec's level, when not its default (zstd 1, gzip 1). zstd takes -7 to
    /// -1 (faster, larger objects) and 1 to 19 (slower, smaller); gzip 1 to 9.
    #[serde(default)]
    pub compression_level: Option<i32>,
    /// Records mode: a line longer than this is rejected and skipped, never cut.
    #[serde(default = "default_max_record_size")]
    pub max_record_size: ByteSize,
    /// Records mode: an append blob's last line without `\n` waits for its end; once the blob has
    /// not been written for this long, that line is shipped as a record.
    #[serde(default = "default_partial_line_wait")]
    pub partial_line_wait: HumanDuration,
    /// Decrypt client-side encrypted blobs with the customer's Key Vault key.
    #[serde(default)]
    pub decrypt: Option<DecryptConfig>,
    /// `plain` or `customer_key` (re-encrypt shipped objects under the customer's key).
    #[serde(default)]
    pub at_rest: AtRest,
    /// DNS pin for this endpoint (`10.1.2.3` or `10.1.2.3:443`).
    #[serde(default)]
    pub resolve: Option<String>,
    /// Refuse to send anything to this endpoint when it resolves to a public address.
    #[serde(default)]
    pub require_private_endpoint: bool,
}

/// How a blob container is listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListingMode {
    /// `date_partitioned` for containers named `insights-logs-*` or `insights-metrics-*`
    /// (Azure Monitor diagnostic-log archives) once a full listing takes more than one page and
    /// finds only date-layout blobs, `flat` for the others.
    #[default]
    Auto,
    /// One listing of the whole prefix per poll.
    Flat,
    /// Walk the `.../y=YYYY/m=MM/d=DD/h=HH/...` layout: each poll lists only the days that still
    /// have open hours, per resource.
    DatePartitioned,
}

impl ListingMode {
    /// The mode in effect for `container` (`auto` resolved).
    pub fn resolve(self, container: &str) -> ListingMode {
        match self {
            ListingMode::Auto
                if container.starts_with("insights-logs-")
                    || container.starts_with("insights-metrics-") =>
            {
                ListingMode::DatePartitioned
            }
            ListingMode::Auto => ListingMode::Flat,
            other => other,
        }
    }
}

/// How blob contents are shipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipMode {
    /// JSON Lines split on line boundaries, batched and compressed.
    #[default]
    Records,
    /// Byte-exact objects.
    Copy,
}

/// Compression of records-mode objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd level 1 (`.jsonl.zst`, `Content-Encoding: zstd`).
    #[default]
    Zstd,
    /// gzip level 1 (`.jsonl.gz`, `Content-Encoding: gzip`).
    Gzip,
    /// No compression (`.jsonl`).
    None,
}

impl Compression {
    /// The name the config uses (`zstd`, `gzip`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }

    /// The levels `compression_level` may name for this codec, each span with what it trades
    /// (empty for a codec with one span); none for no compression. zstd's 0 (its library
    /// default, 3) is not one: write 3. Its levels 20 to 22 need windows far larger than
    /// Ferry's 128 KiB.
    pub fn level_spans(self) -> &'static [(i32, i32, &'static str)] {
        match self {
            Compression::Zstd => &[
                (-7, -1, "faster, larger objects"),
                (1, 19, "slower, smaller"),
            ],
            Compression::Gzip => &[(1, 9, "")],
            Compression::None => &[],
        }
    }

    /// Whether `level` lies in one of [`level_spans`](Self::level_spans).
    pub fn accepts_level(self, level: i32) -> bool {
        self.level_spans()
            .iter()
            .any(|&(low, high, _)| (low..=high).contains(&level))
    }

    /// [`level_spans`](Self::level_spans) as an operator reads them: `-7 to -1 (faster, larger
    /// objects) or 1 to 19 (slower, smaller)`.
    pub fn levels_text(self) -> String {
        self.level_spans()
            .iter()
            .map(|&(low, high, trade)| match trade {
                "" => format!("{low} to {high}"),
                _ => format!("{low} to {high} ({trade})"),
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// Whether shipped objects stay under the customer's key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AtRest {
    /// Plain objects in provider storage.
    #[default]
    Plain,
    /// CSE v2 objects with a fresh content key wrapped by the customer's key.
    CustomerKey,
}

/// `decrypt = { key = "https://<vault>/keys/<name>" }`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptConfig {
    /// The customer's key-encryption key, `https://<vault>/keys/<name>` (any version of it is accepted).
    pub key: String,
    /// How long an unwrapped content key is kept in memory; `0s` unwraps for every blob.
    #[serde(default = "default_content_key_ttl")]
    pub content_key_ttl: HumanDuration,
    /// What to do with a blob that has no `encryptiondata`: `refuse` (quarantine) or `ship` as-is.
    #[serde(default)]
    pub unencrypted: UnencryptedPolicy,
    /// DNS pin for the vault (`10.1.2.3` or `10.1.2.3:443`).
    #[serde(default)]
    pub resolve: Option<String>,
}

/// Policy for plaintext blobs on a decrypt source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnencryptedPolicy {
    /// Quarantine the blob.
    #[default]
    Refuse,
    /// Ship the blob as it is.
    Ship,
}

/// A Log Analytics workspace source.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogAnalyticsSourceConfig {
    /// Short name used in paths, metrics and logs.
    pub name: String,
    /// Workspace id (a GUID).
    pub workspace_id: String,
    /// KQL query; Ferry adds the time window.
    pub query: String,
    /// Query windows end this long before now (data arrives late).
    #[serde(default = "default_la_lag")]
    pub lag: HumanDuration,
    /// How often a new window is queried.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Compression of destination objects.
    #[serde(default)]
    pub compression: Compression,
    /// DNS pin for the query endpoint.
    #[serde(default)]
    pub resolve: Option<String>,
    /// Refuse to query when the endpoint resolves to a public address.
    #[serde(default)]
    pub require_private_endpoint: bool,
}

// Defaults, written once.

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/ferry")
}
fn default_status_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_recheck_interval() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_shutdown_grace() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_global_fetches() -> usize {
    32
}
fn default_global_uploads() -> usize {
    16
}
fn default_tenant_fetches() -> usize {
    8
}
fn default_true() -> bool {
    true
}
fn default_storage_resource() -> String {
    "https://storage.azure.com".to_string()
}
fn default_log_analytics_resource() -> String {
    "https://api.loganalytics.io".to_string()
}
fn default_imds_endpoint() -> String {
    "http://169.254.169.254/metadata/identity/oauth2/token".to_string()
}
fn default_path_template() -> String {
    "tenant={tenant}/source={source}/date={yyyy}-{MM}-{dd}/hour={HH}/{name}".to_string()
}
fn default_destination_credential() -> ProviderCredential {
    ProviderCredential::ManagedIdentity { client_id: None }
}
fn default_single_put_max() -> ByteSize {
    ByteSize::mib(8)
}
fn default_block_size() -> ByteSize {
    ByteSize::mib(8)
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_list_page_size() -> u32 {
    5000
}
fn default_partition_settle() -> HumanDuration {
    HumanDuration::from_secs(2 * 3600)
}
fn default_partition_discovery_interval() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_full_listing_interval() -> HumanDuration {
    HumanDuration::from_secs(24 * 3600)
}
fn default_batch_max_bytes() -> ByteSize {
    ByteSize::mib(64)
}
fn default_batch_max_age() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_max_record_size() -> ByteSize {
    ByteSize::mib(1)
}
fn default_partial_line_wait() -> HumanDuration {
    HumanDuration::from_secs(15 * 60)
}
fn default_content_key_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_la_lag() -> HumanDuration {
    HumanDuration::from_secs(600)
}
