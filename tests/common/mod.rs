//! Shared harness of Ferry's integration tests: a sandbox (Azurite + ferry-sim on free ports)
//! with the provider and customers onboarded, a Ferry config written for it, the `ferry` binary
//! run against it, and the destination read back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ferry_sim::sandbox::{Customer, CustomerSpec, Provider, ProviderSpec, Sandbox, SandboxOptions};

/// A sandbox with a provider and customers, and a directory for Ferry's files.
pub struct World {
    /// Azurite + sim.
    pub sandbox: Sandbox,
    /// The provider (app, identity, destination).
    pub provider: Provider,
    /// Customers by name.
    pub customers: BTreeMap<String, Customer>,
    /// Directory for configs, secrets and state.
    pub dir: tempfile::TempDir,
}

/// Customer names and their tenant ids used by the tests.
pub const CUSTOMERS: [(&str, &str); 3] = [
    ("contoso", "33333333-3333-4333-8333-333333333333"),
    ("fabrikam", "44444444-4444-4444-8444-444444444444"),
    ("tailspin", "66666666-6666-4666-8666-666666666666"),
];

/// Starts a sandbox with `n` customers (accounts `<name>logs`, vault `<name>-kv`).
pub async fn world(n: usize) -> World {
    let mut accounts: Vec<String> = CUSTOMERS[..n]
        .iter()
        .map(|(name, _)| format!("{name}logs"))
        .collect();
    accounts.push("providerlogs".into());
    let sandbox = Sandbox::start(SandboxOptions {
        accounts,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("sandbox did not start: {e}"));
    let provider = sandbox
        .onboard_provider(&ProviderSpec {
            account: "providerlogs".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("provider onboarding failed: {e}"));
    let mut customers = BTreeMap::new();
    for (name, tid) in &CUSTOMERS[..n] {
        let spec = CustomerSpec::new(name, tid, &format!("{name}logs"), &format!("{name}-kv"));
        let c = sandbox
            .onboard_customer(&provider.app_client_id, &spec)
            .await
            .unwrap_or_else(|e| panic!("onboarding {name} failed: {e}"));
        customers.insert(name.to_string(), c);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("app-secret"), &provider.app_secret).expect("write secret");
    std::fs::write(
        dir.path().join("identity-header"),
        sandbox.state().settings().identity_header,
    )
    .expect("write header");
    std::fs::write(dir.path().join("ca.pem"), sandbox.ca_pem()).expect("write ca");
    World {
        sandbox,
        provider,
        customers,
        dir,
    }
}

/// How each tenant's sources are written into the config.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// Source name.
    pub name: String,
    /// Container.
    pub container: String,
    /// `records` or `copy`.
    pub mode: String,
    /// Extra TOML lines for the source table.
    pub extra: String,
}

impl SourceSpec {
    /// A records-mode source on the customer's default container.
    pub fn records(name: &str) -> SourceSpec {
        SourceSpec {
            name: name.into(),
            container: "insights-logs-auditevent".into(),
            mode: "records".into(),
            extra: String::new(),
        }
    }
    /// A copy-mode source.
    pub fn copy(name: &str, container: &str) -> SourceSpec {
        SourceSpec {
            name: name.into(),
            container: container.into(),
            mode: "copy".into(),
            extra: String::new(),
        }
    }
}

impl World {
    /// Writes a Ferry config for these tenants (name -> sources) and returns its path.
    pub fn config(&self, tenants: &[(&str, Vec<SourceSpec>)], agent_extra: &str) -> PathBuf {
        let mut toml = self.provider.ferry_config_head(
            self.sandbox.https_addr().port(),
            &format!("recheck_interval = \"2s\"\n{agent_extra}"),
        );
        for (name, sources) in tenants {
            let c = &self.customers[*name];
            toml.push_str(&format!(
                "\n[[tenant]]\nname = \"{name}\"\ntenant_id = \"{}\"\n",
                c.spec.tenant_id
            ));
            for s in sources {
                toml.push_str(&format!(
                    "\n  [[tenant.source]]\n  name = \"{}\"\n  kind = \"blob\"\n  account_url = \"https://{}.blob.sandbox.test\"\n  container = \"{}\"\n  mode = \"{}\"\n  poll_interval = \"1s\"\n{}\n",
                    s.name, c.spec.account, s.container, s.mode, s.extra
                ));
            }
        }
        let path = self.dir.path().join("ferry.toml");
        std::fs::write(&path, toml).expect("write config");
        path
    }

    /// Runs the ferry binary with `args` and returns its output.
    pub fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_LOG", "info")
            .output()
            .expect("run ferry")
    }

    /// Every object in the destination container: name -> (metadata, content), read with the
    /// provider identity's role through the gateway.
    pub async fn destination(&self) -> BTreeMap<String, (BTreeMap<String, String>, Vec<u8>)> {
        let token = self
            .sandbox
            .mint_token(
                &self.provider.tenant_id,
                "https://storage.azure.com",
                &self.provider.managed_identity_object_id,
                Some(&self.provider.managed_identity_client_id),
            )
            .await
            .expect("mint token");
        read_container(
            &self.sandbox,
            &format!("Bearer {token}"),
            "https://providerlogs.blob.sandbox.test",
            "shipped",
        )
        .await
    }

    /// A seeder for a customer's account.
    pub async fn seeder(&self, customer: &str) -> ferry_sim::sandbox::BlobSeeder {
        self.sandbox
            .seeder(&self.customers[customer].spec.account)
            .await
            .expect("seeder")
    }
}

/// Reads a whole container with Ferry's own blob client.
pub async fn read_container(
    sandbox: &Sandbox,
    bearer: &str,
    account_url: &str,
    container: &str,
) -> BTreeMap<String, (BTreeMap<String, String>, Vec<u8>)> {
    let client =
        ferry::blob_api::ContainerClient::new(sandbox.http().clone(), account_url, container);
    let mut out = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_page(bearer, None, marker.as_deref(), 5000)
            .await
            .expect("list destination");
        for b in page.blobs {
            let (props, body) = client.get_all(bearer, &b.name).await.expect("get object");
            out.insert(b.name, (props.metadata, body.to_vec()));
        }
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    out
}

/// Decompresses a records object (zstd, gzip or plain) by its name.
pub fn decode_records(name: &str, body: &[u8]) -> Vec<String> {
    let text = if name.ends_with(".zst") {
        zstd::decode_all(body).expect("zstd")
    } else if name.ends_with(".gz") {
        let mut d = flate2::read::GzDecoder::new(body);
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut v).expect("gzip");
        v
    } else {
        body.to_vec()
    };
    String::from_utf8(text)
        .expect("utf-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// `n` diagnostic-log-shaped JSON lines tagged with `tag`.
pub fn log_lines(tag: &str, from: usize, n: usize) -> String {
    let mut s = String::new();
    for i in from..from + n {
        s.push_str(&format!(
            "{{\"time\":\"2026-11-27T10:{:02}:00Z\",\"resourceId\":\"/SUBSCRIPTIONS/S/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/{tag}\",\"category\":\"AuditEvent\",\"operationName\":\"VaultGet\",\"resultType\":\"Success\",\"properties\":{{\"seq\":\"{tag}-{i}\"}}}}\n",
            i % 60
        ));
    }
    s
}

/// Rewrites a config written by [`World::config`] for 64 KiB blocks (`block_size` and
/// `single_put_max`), so every object over 64 KiB is staged in blocks and committed with one
/// Put Block List instead of being one Put Blob.
pub fn use_64_kib_blocks(cfg: &Path) {
    let head = std::fs::read_to_string(cfg).expect("read config");
    let toml = head.replacen(
        "[destination]\n",
        "[destination]\nblock_size = \"64KiB\"\nsingle_put_max = \"64KiB\"\n",
        1,
    );
    assert_ne!(toml, head, "no [destination] table to set 64 KiB blocks in");
    std::fs::write(cfg, toml).expect("write config");
}

/// stdout + stderr as text, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A tenant's row in the summary `ferry run --once` prints (empty when there is none).
pub fn summary_row(o: &Output, tenant: &str) -> String {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find(|l| l.trim_start().starts_with(tenant))
        .unwrap_or_default()
        .to_string()
}

/// Path helper.
pub fn p(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

impl World {
    /// Grants the app a role on one of a customer's containers (creating the container).
    pub async fn grant(&self, customer: &str, container: &str, role: &str) {
        let c = &self.customers[customer];
        self.seeder(customer)
            .await
            .create_container(container)
            .await
            .ok();
        self.sandbox
            .admin()
            .put(
                "/role-assignments",
                serde_json::json!({"account": c.spec.account, "container": container, "object_id": c.service_principal_object_id, "role": role}),
            )
            .await
            .expect("grant role");
    }

    /// Every provider write (PUT to `providerlogs`) is answered `ms` late, from now on.
    pub async fn delay_provider_writes(&self, ms: u64) {
        self.sandbox
            .admin()
            .add_fault(&ferry_sim::faults::FaultSpec {
                host: Some("providerlogs.blob.sandbox.test".into()),
                method: Some("PUT".into()),
                response_latency_ms: Some(ms),
                ..Default::default()
            })
            .await
            .expect("add the provider write latency fault");
    }

    /// A config with contoso alone: `audit` in records mode and `exports` in copy mode.
    pub fn contoso_audit_and_exports(&self) -> PathBuf {
        self.config(
            &[(
                "contoso",
                vec![
                    SourceSpec::records("audit"),
                    SourceSpec::copy("exports", "exports"),
                ],
            )],
            "",
        )
    }

    /// Removes the app's role on a customer's container.
    pub async fn revoke(&self, customer: &str, container: &str, role: &str) {
        let c = &self.customers[customer];
        self.sandbox
            .admin()
            .delete(
                "/role-assignments",
                Some(serde_json::json!({"account": c.spec.account, "container": container, "object_id": c.service_principal_object_id, "role": role})),
            )
            .await
            .expect("revoke role");
    }

    /// Starts `ferry run` (the daemon) in the background with stderr to a file. The daemon is
    /// killed when the handle drops, so a failing test leaves no daemon behind.
    pub fn spawn_daemon(&self, config: &Path, log_name: &str) -> BackgroundDaemon {
        let log = std::fs::File::create(self.dir.path().join(log_name)).expect("log file");
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["run", "-c", config.to_str().expect("utf-8 path")])
            .env(
                "FERRY_LOG",
                "debug,hyper=info,reqwest=info,rustls=info,h2=info",
            )
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .map(BackgroundDaemon)
            .expect("start ferry")
    }

    /// The daemon's log so far.
    pub fn log(&self, log_name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(log_name)).unwrap_or_default()
    }

    /// Waits up to `secs` for `needle` to appear in the log `log_name`; fails the test with the
    /// whole log when it does not.
    pub async fn expect_in_log(&self, log_name: &str, needle: &str, secs: u64) {
        let seen = eventually(secs, || async { self.log(log_name).contains(needle) }).await;
        assert!(
            seen,
            "{needle:?} not in {log_name}:\n{}",
            self.log(log_name)
        );
    }
}

/// A `ferry run` started by [`World::spawn_daemon`]: a `Child` that is killed on drop.
pub struct BackgroundDaemon(std::process::Child);

impl std::ops::Deref for BackgroundDaemon {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for BackgroundDaemon {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl BackgroundDaemon {
    /// SIGTERM, then waits up to `limit` for the exit: its status, or None if it is still
    /// running then (the drop kills it).
    pub async fn terminate(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let ok = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill(1) is needed to signal ferry: install procps")
            .success();
        assert!(ok, "kill -TERM {} failed", self.0.id());
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.0.try_wait().expect("wait for ferry") {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for BackgroundDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Asserts that the copy-mode objects `pieces` selects from a destination listing tile a growing
/// blob: sorted by their `ferry_source_range`, each starts where the one before ended, holds as
/// many bytes as its range says, and together they are `expected`. Returns how many there are.
/// `label` starts every failure message (a seed, a tenant, a blob).
pub fn assert_ranges_tile(
    dest: &BTreeMap<String, (BTreeMap<String, String>, Vec<u8>)>,
    pieces: impl Fn(&str) -> bool,
    expected: &[u8],
    label: &str,
) -> usize {
    let mut ranges: Vec<(u64, u64, &Vec<u8>)> = dest
        .iter()
        .filter(|(n, _)| pieces(n))
        .map(|(n, (meta, body))| {
            let (a, b) = meta["ferry_source_range"]
                .split_once('-')
                .unwrap_or_else(|| panic!("{label}: {n} has no byte range"));
            (a.parse().unwrap(), b.parse().unwrap(), body)
        })
        .collect();
    ranges.sort();
    let spans: Vec<(u64, u64)> = ranges.iter().map(|r| (r.0, r.1)).collect();
    let mut at = 0;
    let mut joined = Vec::new();
    for (start, end, body) in &ranges {
        assert_eq!(
            *start, at,
            "{label}: a gap or an overlap at {at}: {spans:?}"
        );
        assert_eq!(body.len() as u64, end - start, "{label}: {spans:?}");
        joined.extend_from_slice(body);
        at = *end;
    }
    assert!(
        joined == expected,
        "{label}: {} bytes landed of {}, or bytes differ",
        joined.len(),
        expected.len()
    );
    ranges.len()
}

/// Every record of every records-mode object in a destination listing, by `properties.seq`.
pub fn record_counts(
    dest: &BTreeMap<String, (BTreeMap<String, String>, Vec<u8>)>,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (name, (_, body)) in dest {
        if !(name.ends_with(".zst") || name.ends_with(".gz") || name.ends_with(".jsonl")) {
            continue;
        }
        for line in decode_records(name, body) {
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {line}"));
            let seq = v["properties"]["seq"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no seq in {line}"))
                .to_string();
            *counts.entry(seq).or_insert(0) += 1;
        }
    }
    counts
}

/// Asserts that records `{tag}-0` .. `{tag}-{n-1}` each appear exactly once in `counts`.
pub fn expect_each_once(counts: &BTreeMap<String, usize>, tag: &str, n: usize) {
    for i in 0..n {
        let seq = format!("{tag}-{i}");
        assert_eq!(
            counts.get(&seq).copied().unwrap_or(0),
            1,
            "record {seq} shipped {:?} times",
            counts.get(&seq)
        );
    }
}

/// Polls `f` every 200 ms until it is true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    false
}

impl World {
    /// Blob requests the sim's storage gateway counted for `customer`'s tenant (all its
    /// accounts) in `requests`, an answer of `GET /admin/requests`.
    pub fn blob_requests(&self, requests: &serde_json::Value, customer: &str) -> u64 {
        requests["blob"][&self.customers[customer].spec.tenant_id]
            .as_object()
            .map(|accounts| accounts.values().filter_map(|n| n.as_u64()).sum())
            .unwrap_or(0)
    }

    /// `ferry run --once -c config`, and the blob requests it made to `customer`'s accounts.
    pub async fn run_once_counting(&self, config: &Path, customer: &str) -> (Output, u64) {
        let admin = self.sandbox.admin();
        let before = admin.requests().await.expect("request counters");
        let out = self.ferry(&["run", "--once", "-c", config.to_str().expect("utf-8 path")]);
        let after = admin.requests().await.expect("request counters");
        let made = self.blob_requests(&after, customer) - self.blob_requests(&before, customer);
        (out, made)
    }

    /// Ferry's checkpoint store in `dir/state` (no Ferry may be running on it).
    pub fn state_store(&self) -> ferry::state::SqliteCheckpointStore {
        ferry::state::SqliteCheckpointStore::open(&self.dir.path().join("state"))
            .expect("open the state store")
    }

    /// The checkpoint Ferry keeps for one source blob.
    pub fn checkpoint_of(
        &self,
        tenant: &str,
        source: &str,
        blob: &str,
    ) -> ferry::state::Checkpoint {
        use ferry::state::CheckpointStore as _;
        self.state_store()
            .load(&ferry::state::ObjectKey::new(tenant, source, blob))
            .expect("load a checkpoint")
            .unwrap_or_else(|| panic!("no checkpoint for {tenant}/{source}/{blob}"))
            .value
    }
}
