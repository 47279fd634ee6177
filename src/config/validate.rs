//! Semantic validation: what serde cannot see. Unique names and ids, GUIDs, https URLs, container
//! names, key ids, the path template, cloud settings, limits, DNS pins, secret references and the
//! fields one choice requires of another.
//!
//! Owns: the rules across fields. Must not: do network or file I/O (`ferry check` does that).
//! Validation runs over whatever parts of the file deserialized, so one broken tenant does not hide
//! the problems of the others.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::checks::{self, Problem, UrlPath};
use super::error::{ConfigPath, Issue};
use super::schema::*;
use super::units::{ByteSize, HumanDuration};

/// The parts of a config that deserialized, for validation.
#[derive(Debug, Default)]
pub(crate) struct ConfigView<'a> {
    pub agent: Option<&'a AgentConfig>,
    pub app: Option<&'a AppConfig>,
    pub destination: Option<&'a DestinationConfig>,
    pub tenants: Vec<TenantView<'a>>,
    /// Paths already reported as inline secrets: their reference checks would only repeat that.
    pub reported_secrets: HashSet<String>,
}

/// A tenant that deserialized, with its position and the sources that deserialized.
#[derive(Debug)]
pub(crate) struct TenantView<'a> {
    pub index: usize,
    pub tenant: &'a TenantConfig,
    pub sources: Vec<(usize, &'a SourceConfig)>,
}

impl<'a> ConfigView<'a> {
    /// A view of a whole, deserialized config.
    pub fn of(config: &'a Config) -> Self {
        ConfigView {
            agent: Some(&config.agent),
            app: Some(&config.app),
            destination: Some(&config.destination),
            tenants: config
                .tenants
                .iter()
                .enumerate()
                .map(|(index, tenant)| TenantView {
                    index,
                    tenant,
                    sources: tenant.sources.iter().enumerate().collect(),
                })
                .collect(),
            reported_secrets: HashSet::new(),
        }
    }
}

impl Config {
    /// Every semantic problem in this config (empty when it is valid). Pure: no network, no files.
    pub fn validate(&self) -> Vec<Issue> {
        validate_view(&ConfigView::of(self))
    }
}

struct Out<'v> {
    issues: Vec<Issue>,
    reported_secrets: &'v HashSet<String>,
}

impl Out<'_> {
    fn push(&mut self, path: ConfigPath, message: impl Into<String>, help: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
            help: Some(help.into()),
        });
    }
    fn problem(&mut self, path: ConfigPath, p: Problem) {
        self.push(path, p.message, p.help);
    }
    fn check<T>(&mut self, path: ConfigPath, r: Result<T, Problem>) {
        if let Err(p) = r {
            self.problem(path, p);
        }
    }
}

pub(crate) fn validate_view(view: &ConfigView<'_>) -> Vec<Issue> {
    let mut out = Out {
        issues: Vec::new(),
        reported_secrets: &view.reported_secrets,
    };
    let root = ConfigPath::root();
    if let Some(agent) = view.agent {
        check_agent(&root.key("agent"), agent, &mut out);
    }
    if let Some(app) = view.app {
        check_app(&root.key("app"), app, &mut out);
    }
    if let Some(dest) = view.destination {
        check_destination(&root.key("destination"), dest, view.app, &mut out);
    }
    check_tenants(view, &mut out);
    out.issues
}

fn check_agent(p: &ConfigPath, agent: &AgentConfig, out: &mut Out<'_>) {
    match (agent.cloud, &agent.custom_cloud) {
        (CloudName::Custom, None) => out.push(
            p.key("cloud"),
            "cloud = \"custom\" needs an [agent.custom_cloud] table",
            "add [agent.custom_cloud] with authority_host, blob_suffix, vault_suffix, vault_resource and log_analytics_endpoint, or pick cloud = \"public\", \"usgov\" or \"china\"",
        ),
        (CloudName::Custom, Some(cc)) => check_custom_cloud(&p.key("custom_cloud"), cc, out),
        (cloud, Some(_)) => out.push(
            p.key("custom_cloud"),
            format!("[agent.custom_cloud] is only read when cloud = \"custom\", but cloud is {:?}", cloud_word(cloud)),
            "remove [agent.custom_cloud], or set cloud = \"custom\"",
        ),
        (_, None) => {}
    }
    for (i, pin) in agent.resolve.iter().enumerate() {
        let pp = p.key("resolve").item(i, None);
        out.check(pp.key("host"), checks::check_pin_host(&pin.host));
        out.check(pp.key("address"), checks::check_pin(&pin.address));
    }
    min_duration(out, p.key("recheck_interval"), agent.recheck_interval, 1);
    at_least_one(
        out,
        p.key("max_concurrent_fetches"),
        agent.max_concurrent_fetches,
    );
    at_least_one(
        out,
        p.key("max_concurrent_uploads"),
        agent.max_concurrent_uploads,
    );
    if let Some(mi) = &agent.managed_identity {
        let mp = p.key("managed_identity");
        match mi {
            ManagedIdentityEndpoint::Imds { endpoint } => out.check(
                mp.key("endpoint"),
                checks::check_identity_endpoint(endpoint),
            ),
            ManagedIdentityEndpoint::AppService { endpoint, header } => {
                out.check(
                    mp.key("endpoint"),
                    checks::check_identity_endpoint(endpoint),
                );
                check_secret_ref(
                    out,
                    mp.key("header"),
                    header.env.as_deref(),
                    header.file.is_some(),
                );
            }
        }
    }
    if agent.state_dir.as_os_str().is_empty() {
        out.push(
            p.key("state_dir"),
            "state_dir is empty",
            "set a directory that survives restarts, e.g. \"/var/lib/ferry\"",
        );
    }
}

fn cloud_word(cloud: CloudName) -> &'static str {
    match cloud {
        CloudName::Public => "public",
        CloudName::Usgov => "usgov",
        CloudName::China => "china",
        CloudName::Custom => "custom",
    }
}

fn check_custom_cloud(p: &ConfigPath, cc: &CustomCloudConfig, out: &mut Out<'_>) {
    let urls = [
        ("authority_host", &cc.authority_host, UrlPath::None),
        ("storage_resource", &cc.storage_resource, UrlPath::Any),
        ("vault_resource", &cc.vault_resource, UrlPath::Any),
        (
            "log_analytics_endpoint",
            &cc.log_analytics_endpoint,
            UrlPath::None,
        ),
        (
            "log_analytics_resource",
            &cc.log_analytics_resource,
            UrlPath::Any,
        ),
    ];
    for (key, value, path) in urls {
        out.check(p.key(key), checks::check_https_url(value, key, path));
    }
    if let Some(hsm) = &cc.managed_hsm_resource {
        out.check(
            p.key("managed_hsm_resource"),
            checks::check_https_url(hsm, "managed_hsm_resource", UrlPath::Any),
        );
    }
    for (key, value) in [
        ("blob_suffix", &cc.blob_suffix),
        ("vault_suffix", &cc.vault_suffix),
    ] {
        if value.contains("://") || value.starts_with('.') || checks::check_pin_host(value).is_err()
        {
            out.push(
                p.key(key),
                format!("{key} {value:?} is not a host suffix"),
                format!(
                    "write only the DNS suffix, without scheme or leading dot, e.g. {:?}",
                    if key == "blob_suffix" {
                        "blob.sandbox.test"
                    } else {
                        "vault.sandbox.test"
                    }
                ),
            );
        }
    }
}

fn check_app(p: &ConfigPath, app: &AppConfig, out: &mut Out<'_>) {
    out.check(
        p.key("client_id"),
        checks::check_guid(&app.client_id, "client_id"),
    );
    if let Some(home) = &app.home_tenant_id {
        out.check(
            p.key("home_tenant_id"),
            checks::check_guid(home, "home_tenant_id"),
        );
    }
    let cp = p.key("credential");
    match &app.credential {
        AppCredential::Secret { env, file } => {
            check_secret_ref(out, cp.clone(), env.as_deref(), file.is_some())
        }
        AppCredential::KeyVaultSecret {
            vault,
            name,
            identity,
        } => {
            out.check(
                cp.key("vault"),
                checks::check_https_url(vault, "vault", UrlPath::None),
            );
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                out.push(
                    cp.key("name"),
                    format!("secret name {name:?} is not a Key Vault secret name"),
                    "use the secret's name as the vault shows it: letters, digits and hyphens",
                );
            }
            if app.home_tenant_id.is_none() {
                out.push(cp.clone(), "credential kind \"key_vault_secret\" needs app.home_tenant_id (the provider tenant that holds the vault)", "add home_tenant_id = \"<provider tenant GUID>\" to [app]");
            }
            match identity {
                Some(ProviderCredential::App) => out.push(cp.key("identity"), "the app's secret cannot be fetched with the app itself", "use identity = { kind = \"managed_identity\" } or { kind = \"workload_identity\" }"),
                Some(other) => check_provider_credential(&cp.key("identity"), other, out),
                None => {}
            }
        }
        AppCredential::Certificate { path, .. } => {
            if path.as_os_str().is_empty() {
                out.push(
                    cp.key("path"),
                    "certificate path is empty",
                    "set path to the PEM file with the certificate and its private key",
                );
            }
        }
        AppCredential::FederatedManagedIdentity {
            managed_identity_client_id,
        } => out.check(
            cp.key("managed_identity_client_id"),
            checks::check_guid(managed_identity_client_id, "managed_identity_client_id"),
        ),
        AppCredential::WorkloadIdentity { .. } => {}
    }
}

/// Exactly one of `env` / `file`, and `env` a plausible variable name.
fn check_secret_ref(out: &mut Out<'_>, p: ConfigPath, env: Option<&str>, has_file: bool) {
    if out.reported_secrets.contains(&p.to_string()) {
        return;
    }
    match (env, has_file) {
        (Some(_), true) => out.push(
            p,
            "a secret reference names both env and file",
            "keep one: env = \"FERRY_APP_SECRET\" or file = \"/etc/ferry/app-secret\"",
        ),
        (None, false) => out.push(
            p,
            "a secret reference must name env or file",
            "add env = \"FERRY_APP_SECRET\" or file = \"/etc/ferry/app-secret\"",
        ),
        (Some(var), false) => {
            let ok = var
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                // the value is not shown: what is not a variable name may well be the secret itself
                out.push(p.key("env"), "this is not an environment variable name (letters, digits and _, not starting with a digit); the value is not shown, in case it is the secret", "name the variable that holds the secret, e.g. env = \"FERRY_APP_SECRET\"; never the secret itself");
            }
        }
        (None, true) => {}
    }
}

fn check_provider_credential(p: &ConfigPath, cred: &ProviderCredential, out: &mut Out<'_>) {
    match cred {
        ProviderCredential::ManagedIdentity {
            client_id: Some(id),
        }
        | ProviderCredential::WorkloadIdentity {
            client_id: Some(id),
            ..
        } => out.check(p.key("client_id"), checks::check_guid(id, "client_id")),
        _ => {}
    }
}

fn check_destination(
    p: &ConfigPath,
    d: &DestinationConfig,
    app: Option<&AppConfig>,
    out: &mut Out<'_>,
) {
    out.check(
        p.key("account_url"),
        checks::check_https_url(&d.account_url, "account_url", UrlPath::None),
    );
    out.check(
        p.key("container"),
        checks::check_container(&d.container, false),
    );
    for problem in checks::check_template(&d.path) {
        out.problem(p.key("path"), problem);
    }
    check_provider_credential(&p.key("credential"), &d.credential, out);
    if matches!(d.credential, ProviderCredential::App)
        && app.is_some_and(|a| a.home_tenant_id.is_none())
    {
        out.push(p.key("credential"), "destination credential kind \"app\" needs app.home_tenant_id (the provider tenant that owns the destination)", "add home_tenant_id = \"<provider tenant GUID>\" to [app], or use credential = { kind = \"managed_identity\" }");
    }
    positive_rate(out, p.key("max_bytes_per_sec"), d.max_bytes_per_sec);
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if !(64 * KIB..=4000 * MIB).contains(&d.block_size.get()) {
        out.push(p.key("block_size"), format!("block_size {} is outside 64KiB..4000MiB", d.block_size), "Azure blocks are at most 4000MiB and small blocks make large objects slow; \"8MiB\" is a good value");
    }
    if d.single_put_max.get() == 0 || d.single_put_max.get() > 5000 * MIB {
        out.push(
            p.key("single_put_max"),
            format!("single_put_max {} is outside 1B..5000MiB", d.single_put_max),
            "Azure's Put Blob takes at most 5000MiB; \"8MiB\" is a good value",
        );
    }
    if let Some(pin) = &d.resolve {
        out.check(p.key("resolve"), checks::check_pin(pin));
    }
    if let Some(every) = d.watermark_interval {
        min_duration(out, p.key("watermark_interval"), every, 10);
    }
}

fn check_tenants(view: &ConfigView<'_>, out: &mut Out<'_>) {
    let root = ConfigPath::root();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<String, &str> = HashMap::new();
    for tv in &view.tenants {
        let t = tv.tenant;
        let tp = root.key("tenant").item(tv.index, Some(&t.name));
        out.check(tp.key("name"), checks::check_name(&t.name));
        if let Some(first) = names.insert(&t.name, tv.index) {
            out.push(
                tp.key("name"),
                format!(
                    "tenant name {:?} is used twice: by this [[tenant]] (number {} in the file) and by number {}",
                    t.name,
                    tv.index + 1,
                    first + 1
                ),
                "give each [[tenant]] its own name: names choose where its data lands",
            );
        }
        match checks::check_guid(&t.tenant_id, "tenant_id") {
            Err(problem) => out.problem(tp.key("tenant_id"), problem),
            Ok(()) => {
                if let Some(other) = ids.insert(t.tenant_id.to_lowercase(), &t.name) {
                    out.push(tp.key("tenant_id"), format!("tenant_id {} is also used by tenant {other:?}", t.tenant_id), "configure each Entra tenant once, with all its sources under one [[tenant]]");
                }
            }
        }
        positive_rate(out, tp.key("max_bytes_per_sec"), t.max_bytes_per_sec);
        if t.max_requests_per_sec == Some(0) {
            out.push(
                tp.key("max_requests_per_sec"),
                "max_requests_per_sec must be at least 1",
                "remove it for no limit, or set a positive number",
            );
        }
        at_least_one(
            out,
            tp.key("max_concurrent_fetches"),
            t.max_concurrent_fetches,
        );
        let mut source_names: HashSet<&str> = HashSet::new();
        for (si, source) in &tv.sources {
            let sp = tp.key("source").item(*si, Some(source.name()));
            out.check(sp.key("name"), checks::check_name(source.name()));
            if !source_names.insert(source.name()) {
                out.push(sp.key("name"), format!("source name {:?} is used twice in tenant {:?}", source.name(), t.name), "give each [[tenant.source]] of a tenant its own name: names choose where its data lands");
            }
            match source {
                SourceConfig::Blob(b) => check_blob_source(&sp, b, out),
                SourceConfig::LogAnalytics(l) => check_la_source(&sp, l, out),
            }
        }
    }
}

fn check_blob_source(p: &ConfigPath, b: &BlobSourceConfig, out: &mut Out<'_>) {
    out.check(
        p.key("account_url"),
        checks::check_https_url(&b.account_url, "account_url", UrlPath::None),
    );
    out.check(
        p.key("container"),
        checks::check_container(&b.container, true),
    );
    for (key, globs) in [("include", &b.include), ("exclude", &b.exclude)] {
        for (i, g) in globs.iter().enumerate() {
            if let Err(e) = globset::Glob::new(g) {
                out.push(
                    p.key(key).item(i, None),
                    format!("{g:?} is not a glob pattern ({e})"),
                    "write a pattern such as \"*.json\" or \"y=2026/**\"",
                );
            }
        }
    }
    min_duration(out, p.key("poll_interval"), b.poll_interval, 1);
    min_duration(
        out,
        p.key("partition_discovery_interval"),
        b.partition_discovery_interval,
        1,
    );
    min_duration(
        out,
        p.key("full_listing_interval"),
        b.full_listing_interval,
        1,
    );
    min_duration(out, p.key("batch_max_age"), b.batch_max_age, 1);
    min_duration(out, p.key("partial_line_wait"), b.partial_line_wait, 1);
    if !(1..=5000).contains(&b.list_page_size) {
        out.push(
            p.key("list_page_size"),
            format!(
                "list_page_size {} is outside 1 to 5000 (List Blobs returns at most 5,000 blobs a page)",
                b.list_page_size
            ),
            "remove it for the default 5000, or set a number from 1 to 5000",
        );
    }
    if b.batch_max_bytes.get() == 0 {
        out.push(
            p.key("batch_max_bytes"),
            "batch_max_bytes must be positive",
            "use e.g. \"64MiB\"",
        );
    }
    if b.max_record_size.get() == 0 {
        out.push(
            p.key("max_record_size"),
            "max_record_size must be positive",
            "use e.g. \"1MiB\"",
        );
    } else if b.max_record_size > b.batch_max_bytes {
        out.push(
            p.key("max_record_size"),
            format!(
                "max_record_size {} is larger than batch_max_bytes {}",
                b.max_record_size, b.batch_max_bytes
            ),
            "a record must fit in one batch: lower max_record_size or raise batch_max_bytes",
        );
    }
    if let Some(level) = b.compression_level {
        let key = p.key("compression_level");
        // in a copy-mode source the loader already refused it (`RECORDS_ONLY_KEYS`)
        if b.compression == Compression::None {
            out.push(
                key,
                "compression_level is set but compression = \"none\"",
                "remove compression_level, or set compression = \"zstd\" or \"gzip\"",
            );
        } else if !b.compression.accepts_level(level) {
            out.push(
                key,
                format!(
                    "compression_level {level} is not a {} level",
                    b.compression.as_str()
                ),
                format!(
                    "use {}, or remove it for the default (1)",
                    b.compression.levels_text()
                ),
            );
        }
    }
    if let Some(d) = &b.decrypt {
        let dp = p.key("decrypt");
        out.check(dp.key("key"), checks::check_key_id(&d.key));
        if let Some(pin) = &d.resolve {
            out.check(dp.key("resolve"), checks::check_pin(pin));
        }
    } else if b.at_rest == AtRest::CustomerKey {
        out.push(p.key("at_rest"), "at_rest = \"customer_key\" needs the customer's key, set by decrypt", "add decrypt = { key = \"https://<vault>.vault.azure.net/keys/<name>\" }, or use at_rest = \"plain\"");
    }
    if let Some(pin) = &b.resolve {
        out.check(p.key("resolve"), checks::check_pin(pin));
    }
}

fn check_la_source(p: &ConfigPath, l: &LogAnalyticsSourceConfig, out: &mut Out<'_>) {
    out.check(
        p.key("workspace_id"),
        checks::check_guid(&l.workspace_id, "workspace_id"),
    );
    if l.query.trim().is_empty() {
        out.push(
            p.key("query"),
            "query is empty",
            "write the KQL to run, e.g. query = \"SigninLogs\"; Ferry adds the time window",
        );
    }
    min_duration(out, p.key("poll_interval"), l.poll_interval, 1);
    if let Some(pin) = &l.resolve {
        out.check(p.key("resolve"), checks::check_pin(pin));
    }
}

fn min_duration(out: &mut Out<'_>, p: ConfigPath, d: HumanDuration, secs: u64) {
    if d.get() < Duration::from_secs(secs) {
        let key = last_key(&p);
        out.push(
            p,
            format!("{key} is {d}, below the minimum of {secs}s"),
            format!("set {key} to at least \"{secs}s\", e.g. \"60s\""),
        );
    }
}

fn at_least_one(out: &mut Out<'_>, p: ConfigPath, n: usize) {
    if n == 0 {
        let key = last_key(&p);
        out.push(
            p,
            format!("{key} must be at least 1"),
            format!("set {key} to a positive number; 0 would stop all work"),
        );
    }
}

fn positive_rate(out: &mut Out<'_>, p: ConfigPath, rate: Option<ByteSize>) {
    if rate.is_some_and(|r| r.get() == 0) {
        let key = last_key(&p);
        out.push(
            p,
            format!("{key} must be positive"),
            format!("remove {key} for no limit, or set e.g. \"50MiB\""),
        );
    }
}

fn last_key(p: &ConfigPath) -> String {
    match p.0.last() {
        Some(super::error::PathSeg::Key(k)) => k.clone(),
        _ => "value".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[app]
client_id = "11111111-1111-4111-8111-111111111111"
credential = { kind = "secret", env = "FERRY_APP_SECRET" }

[destination]
account_url = "https://providerlogs.blob.core.windows.net"
container = "shipped"

[[tenant]]
name = "contoso"
tenant_id = "33333333-3333-4333-8333-333333333333"

[[tenant.source]]
name = "audit"
kind = "blob"
account_url = "https://contosologs.blob.core.windows.net"
container = "insights-logs-auditevent"
"#;

    fn minimal() -> Config {
        match toml::from_str(MINIMAL) {
            Ok(c) => c,
            Err(e) => panic!("the minimal config does not parse: {e}"),
        }
    }

    fn issues(c: &Config) -> Vec<(String, String)> {
        c.validate()
            .into_iter()
            .map(|i| (i.path.to_string(), i.message))
            .collect()
    }

    fn blob(c: &mut Config) -> &mut BlobSourceConfig {
        match c.tenants[0].sources.get_mut(0) {
            Some(SourceConfig::Blob(b)) => b,
            _ => panic!("the minimal config's first source is a blob source"),
        }
    }

    #[test]
    fn the_minimal_config_is_valid() {
        assert_eq!(issues(&minimal()), vec![]);
    }

    #[test]
    fn tenant_ids_are_unique_whatever_their_case() {
        let mut c = minimal();
        let mut second = c.tenants[0].clone();
        second.name = "fabrikam".into();
        second.tenant_id = second.tenant_id.to_uppercase();
        c.tenants.push(second);
        let found = issues(&c);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "tenant[fabrikam].tenant_id");
        assert!(found[0].1.contains("also used by tenant \"contoso\""));
    }

    #[test]
    fn secret_references_name_exactly_one_place() {
        let mut c = minimal();
        c.app.credential = AppCredential::Secret {
            env: Some("A".into()),
            file: Some("/x".into()),
        };
        assert!(issues(&c)[0].1.contains("both env and file"));
        c.app.credential = AppCredential::Secret {
            env: None,
            file: None,
        };
        assert!(issues(&c)[0].1.contains("must name env or file"));
        // a secret pasted where the variable's name belongs is not repeated in the message
        c.app.credential = AppCredential::Secret {
            env: Some("Sup3r~Secret.Value".into()),
            file: None,
        };
        let issue = c.validate().remove(0);
        assert!(
            issue
                .message
                .contains("is not an environment variable name"),
            "{}",
            issue.message
        );
        assert!(!format!("{issue:?}").contains("Sup3r"), "{issue:?}");
    }

    #[test]
    fn key_vault_secret_and_app_destination_need_the_home_tenant() {
        let mut c = minimal();
        c.app.credential = AppCredential::KeyVaultSecret {
            vault: "https://provider-kv.vault.azure.net".into(),
            name: "ferry-app".into(),
            identity: None,
        };
        c.destination.credential = ProviderCredential::App;
        let found = issues(&c);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found
            .iter()
            .any(|(p, m)| p == "app.credential" && m.contains("home_tenant_id")));
        assert!(found
            .iter()
            .any(|(p, m)| p == "destination.credential" && m.contains("home_tenant_id")));
        c.app.home_tenant_id = Some("22222222-2222-4222-8222-222222222222".into());
        assert_eq!(issues(&c), vec![]);
    }

    #[test]
    fn list_page_size_is_what_list_blobs_accepts() {
        let mut c = minimal();
        for ok in [1, 5000] {
            blob(&mut c).list_page_size = ok;
            assert_eq!(issues(&c), vec![], "{ok}");
        }
        for bad in [0, 5001, 99_999] {
            blob(&mut c).list_page_size = bad;
            let found = issues(&c);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].0, "tenant[contoso].source[audit].list_page_size");
            assert!(
                found[0].1.contains(&format!("{bad} is outside 1 to 5000")),
                "{found:?}"
            );
        }
    }

    #[test]
    fn compression_level_is_one_the_codec_has() {
        const KEY: &str = "tenant[contoso].source[audit].compression_level";
        let mut c = minimal();
        for (codec, ok) in [
            (Compression::Zstd, vec![-7, -1, 1, 3, 19]),
            (Compression::Gzip, vec![1, 6, 9]),
        ] {
            blob(&mut c).compression = codec;
            for level in ok {
                blob(&mut c).compression_level = Some(level);
                assert_eq!(issues(&c), vec![], "{codec:?} {level}");
            }
        }
        for (codec, bad, says) in [
            (Compression::Zstd, 0, "is not a zstd level"),
            (Compression::Zstd, 20, "is not a zstd level"),
            (Compression::Zstd, -8, "is not a zstd level"),
            (Compression::Gzip, 0, "is not a gzip level"),
            (Compression::Gzip, 10, "is not a gzip level"),
            (Compression::None, 1, "compression = \"none\""),
        ] {
            blob(&mut c).compression = codec;
            blob(&mut c).compression_level = Some(bad);
            let found = issues(&c);
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].0, KEY);
            assert!(found[0].1.contains(says), "{codec:?} {bad}: {found:?}");
        }
    }

    #[test]
    fn customer_key_at_rest_needs_decrypt() {
        let mut c = minimal();
        blob(&mut c).at_rest = AtRest::CustomerKey;
        assert_eq!(issues(&c)[0].0, "tenant[contoso].source[audit].at_rest");
        blob(&mut c).decrypt = Some(DecryptConfig {
            key: "https://contoso-kv.vault.azure.net/keys/ferry-cmk".into(),
            content_key_ttl: HumanDuration::from_secs(300),
            unencrypted: UnencryptedPolicy::Refuse,
            resolve: Some("10.1.2.3:443".into()),
        });
        assert_eq!(issues(&c), vec![]);
    }

    #[test]
    fn pins_and_globs_are_checked() {
        let mut c = minimal();
        blob(&mut c).resolve = Some("contoso.internal".into());
        blob(&mut c).include = vec!["[".into()];
        c.destination.resolve = Some("10.0.0.1:443".into());
        let found = issues(&c);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "tenant[contoso].source[audit].include[0]");
        assert_eq!(found[1].0, "tenant[contoso].source[audit].resolve");
    }

    #[test]
    fn named_clouds_refuse_a_custom_cloud_table() {
        let mut c = minimal();
        c.agent.custom_cloud = Some(CustomCloudConfig {
            authority_host: "https://login.sandbox.test".into(),
            blob_suffix: "blob.sandbox.test".into(),
            vault_suffix: "vault.sandbox.test".into(),
            storage_resource: "https://storage.azure.com".into(),
            vault_resource: "https://vault.sandbox.test".into(),
            managed_hsm_resource: None,
            log_analytics_endpoint: "https://api.loganalytics.sandbox.test".into(),
            log_analytics_resource: "https://api.loganalytics.io".into(),
        });
        assert_eq!(issues(&c)[0].0, "agent.custom_cloud");
        c.agent.cloud = CloudName::Custom;
        assert_eq!(issues(&c), vec![]);
        if let Some(cc) = &mut c.agent.custom_cloud {
            cc.authority_host = "http://login.sandbox.test".into();
            cc.blob_suffix = "https://blob.sandbox.test".into();
        }
        let found = issues(&c);
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn log_analytics_sources_need_a_workspace_guid_and_a_query() {
        let mut c = minimal();
        c.tenants[0]
            .sources
            .push(SourceConfig::LogAnalytics(LogAnalyticsSourceConfig {
                name: "signins".into(),
                workspace_id: "workspace".into(),
                query: " ".into(),
                lag: HumanDuration::from_secs(600),
                poll_interval: HumanDuration::from_secs(60),
                compression: Compression::Zstd,
                resolve: None,
                require_private_endpoint: false,
            }));
        let paths: Vec<String> = issues(&c).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            vec![
                "tenant[contoso].source[signins].workspace_id",
                "tenant[contoso].source[signins].query"
            ]
        );
    }
}
