//! End-to-end benchmark driver (run by `benches/e2e/run`, not by `cargo bench` alone): starts a
//! fresh sandbox per run (Azurite pinned to one core), seeds several tenants, then times one
//! tool moving the data into a fresh destination: `ferry run --once` in copy or records mode, or
//! rclone between the same Azurite accounts. Prints one JSON line per run. `idle` measures a
//! Ferry daemon over many tenants with nothing to ship.
//! Measures the tool's own process only (Azurite and the sim excluded); never part of CI.

mod listing;
mod measure;
mod sas;
mod world;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use serde_json::json;

use world::{World, DEST_ACCOUNT, DEST_CONTAINER, SOURCE_CONTAINER};

#[derive(Parser)]
#[command(about = "Ferry end-to-end benchmark driver")]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

/// Where a run works and which cores it uses (every subcommand takes these).
#[derive(clap::Args)]
pub struct Placement {
    /// Work directory (removed and recreated).
    #[arg(long)]
    pub work: PathBuf,
    /// Cores Azurite is pinned to (a `taskset -c` list: `0`, or `0-1` for every core of this
    /// machine, i.e. not pinned).
    #[arg(long, default_value = "0")]
    pub azurite_core: String,
    /// Cores the measured tool (Ferry or rclone) is pinned to (a `taskset -c` list).
    #[arg(long, default_value = "1")]
    pub tool_core: String,
}

#[derive(Subcommand)]
enum Cmd {
    /// One throughput run: fresh sandbox, seed, ship with one tool, print a JSON line.
    Throughput {
        /// The ferry binary (release build).
        #[arg(long)]
        ferry: String,
        /// The rclone binary.
        #[arg(long, default_value = "rclone")]
        rclone: String,
        /// small (2,000 x 64 KiB), large (8 x 64 MiB), huge (1 x 1 GiB, one tenant) or tiny (one
        /// 1 KiB blob per tenant: what a run costs a tool before and after its data).
        #[arg(long)]
        set: String,
        /// copy, records or rclone; copy-direct and records-direct pin Ferry's account hosts
        /// to Azurite (no gateway hop), as rclone reaches it.
        #[arg(long)]
        tool: String,
        /// Tenants the set is spread over.
        #[arg(long, default_value_t = 4)]
        tenants: usize,
        #[command(flatten)]
        place: Placement,
    },
    /// Idle scale: many tenants, nothing to ship; Ferry's CPU and token requests.
    Idle {
        /// The ferry binary (release build).
        #[arg(long)]
        ferry: String,
        /// Configured tenants.
        #[arg(long, default_value_t = 1000)]
        tenants: usize,
        /// Per-source poll interval.
        #[arg(long, default_value = "60s")]
        poll: String,
        /// Seconds to let Ferry start and do its first polls.
        #[arg(long, default_value_t = 90)]
        warmup: u64,
        /// Seconds measured.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        #[command(flatten)]
        place: Placement,
    },
    /// Listing cost: a growing archive container polled with flat and with date-partitioned
    /// listing, nothing new to ship.
    Listing {
        /// The ferry binary (release build).
        #[arg(long)]
        ferry: String,
        /// Resources (partition roots).
        #[arg(long, default_value_t = 20)]
        resources: usize,
        /// Hours of archives per resource.
        #[arg(long, default_value_t = 500)]
        hours: u64,
        /// Poll interval in seconds.
        #[arg(long, default_value_t = 10)]
        poll_secs: u64,
        /// Seconds measured per mode.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[command(flatten)]
        place: Placement,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Cmd::Listing {
            ferry,
            resources,
            hours,
            poll_secs,
            seconds,
            place,
        } => listing::listing(&ferry, resources, hours, poll_secs, seconds, &place).await,
        Cmd::Throughput {
            ferry,
            rclone,
            set,
            tool,
            tenants,
            place,
        } => throughput(&ferry, &rclone, &set, &tool, tenants, &place).await,
        Cmd::Idle {
            ferry,
            tenants,
            poll,
            warmup,
            seconds,
            place,
        } => idle(&ferry, tenants, &poll, warmup, seconds, &place).await,
    }
}

/// Empties (or creates) the work directory of a run.
pub fn fresh_dir(work: &std::path::Path) -> anyhow::Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    std::fs::create_dir_all(work)?;
    Ok(())
}

async fn throughput(
    ferry: &str,
    rclone: &str,
    set: &str,
    tool: &str,
    tenants: usize,
    place: &Placement,
) -> anyhow::Result<()> {
    let work = place.work.as_path();
    let (tenants, per_tenant, size) = match set {
        "small" => (tenants, 2000 / tenants, 64 << 10),
        "large" => (tenants, 8 / tenants, 64 << 20),
        "huge" => (1, 1, 1 << 30),
        "tiny" => (tenants, 1, 1 << 10),
        other => bail!("unknown set {other}: small, large, huge or tiny"),
    };
    fresh_dir(work)?;
    let world = World::start(work, tenants, &place.azurite_core).await?;
    let seed_start = std::time::Instant::now();
    let concurrency = if size > (8 << 20) { 2 } else { 16 };
    let bytes = world.seed(per_tenant, size, concurrency).await?;
    eprintln!(
        "seeded {} blobs, {bytes} bytes over {tenants} tenants in {:.1}s",
        per_tenant * tenants,
        seed_start.elapsed().as_secs_f64()
    );
    let log = work.join(format!("{tool}.log"));
    // Azurite's own CPU over the measured run: both tools are bound by its one core on the large
    // set, so this says whether a tool's requests cost Azurite more per byte or leave it idle.
    let azurite_before = measure::proc_cpu_secs(world.azurite_pid)?;
    let cost = match tool {
        "copy" | "records" | "copy-direct" | "records-direct" => {
            let (mode, direct) = match tool.strip_suffix("-direct") {
                Some(mode) => (mode, true),
                None => (tool, false),
            };
            let config = world.ferry_config(mode, "60s", "", direct)?;
            measure::run_measured(
                &place.tool_core,
                ferry,
                &[
                    "run".into(),
                    "--once".into(),
                    "-c".into(),
                    config.display().to_string(),
                ],
                &[("FERRY_LOG".into(), "info".into())],
                &log,
            )?
        }
        "rclone" => {
            let (args, env) = rclone_command(&world)?;
            measure::run_measured(&place.tool_core, rclone, &args, &env, &log)?
        }
        other => {
            bail!("unknown tool {other}: copy, records, copy-direct, records-direct or rclone")
        }
    };
    let azurite_cpu = measure::proc_cpu_secs(world.azurite_pid)? - azurite_before;
    let names = world.destination_names().await?;
    if !tool.starts_with("records") && names.len() != per_tenant * tenants {
        bail!(
            "{tool} left {} objects in the destination, expected {}",
            names.len(),
            per_tenant * tenants
        );
    }
    if names.is_empty() {
        bail!("{tool} left nothing in the destination");
    }
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let cpu = cost.user_secs + cost.sys_secs;
    let line = json!({
        "set": set,
        "tool": tool,
        "tenants": tenants,
        "blobs": per_tenant * tenants,
        "bytes": bytes,
        "dest_objects": names.len(),
        "wall_secs": round(cost.wall_secs, 2),
        "mb_per_s": round(bytes as f64 / 1e6 / cost.wall_secs, 1),
        "cpu_secs": round(cpu, 2),
        "user_secs": cost.user_secs,
        "sys_secs": cost.sys_secs,
        "cpu_secs_per_gib": round(cpu / gib, 2),
        "max_rss_mib": round(cost.max_rss_kib as f64 / 1024.0, 1),
        "azurite_cpu_secs": round(azurite_cpu, 2),
    });
    println!("{line}");
    Ok(())
}

/// Environment variables for a child process.
type EnvVars = Vec<(String, String)>;

/// rclone: one azureblob remote per account, given as an account SAS URL on Azurite's path-style
/// https endpoint (rclone 1.60 puts `--azureblob-endpoint` after `{account}.`, so a key cannot
/// reach a path-style endpoint; a SAS URL can), the sources joined with the `combine` backend
/// so one process copies all tenants.
fn rclone_command(world: &World) -> anyhow::Result<(Vec<String>, EnvVars)> {
    let mut env = Vec::new();
    let mut remote = |name: &str, account: &str| -> anyhow::Result<()> {
        let key = world.account_key(account)?;
        let up = name.to_ascii_uppercase();
        env.push((format!("RCLONE_CONFIG_{up}_TYPE"), "azureblob".into()));
        env.push((
            format!("RCLONE_CONFIG_{up}_SAS_URL"),
            format!(
                "{}/{account}?{}",
                world.azurite_url(),
                sas::account_sas(account, &key)?
            ),
        ));
        Ok(())
    };
    let mut upstreams = Vec::new();
    for (i, t) in world.tenants.iter().enumerate() {
        remote(&format!("src{i}"), &t.account)?;
        upstreams.push(format!("{}=src{i}:{SOURCE_CONTAINER}", t.name));
    }
    remote("dst", DEST_ACCOUNT)?;
    env.push(("RCLONE_CONFIG_ALL_TYPE".into(), "combine".into()));
    env.push(("RCLONE_CONFIG_ALL_UPSTREAMS".into(), upstreams.join(" ")));
    let conf = world.dir.join("rclone.conf");
    std::fs::write(&conf, "")?;
    let args = vec![
        "copy".into(),
        "all:".into(),
        format!("dst:{DEST_CONTAINER}"),
        "--config".into(),
        conf.display().to_string(),
        "--ca-cert".into(),
        world.dir.join("ca.pem").display().to_string(),
        "--log-level".into(),
        "NOTICE".into(),
    ];
    Ok((args, env))
}

async fn idle(
    ferry: &str,
    tenants: usize,
    poll: &str,
    warmup: u64,
    seconds: u64,
    place: &Placement,
) -> anyhow::Result<()> {
    let work = place.work.as_path();
    fresh_dir(work)?;
    let start = std::time::Instant::now();
    let world = World::start(work, tenants, &place.azurite_core).await?;
    eprintln!(
        "onboarded {tenants} tenants in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let config = world.ferry_config("records", poll, "", false)?;
    let mut child = measure::spawn_daemon(
        ferry,
        &config,
        &place.tool_core,
        &work.join("ferry-idle.log"),
    )?;
    let pid = child.id();
    let result = async {
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        if let Some(status) = child.try_wait()? {
            bail!(
                "ferry exited during warm-up ({status}); see {}/ferry-idle.log",
                work.display()
            );
        }
        let cpu0 = measure::proc_cpu_secs(pid)?;
        let blob0 = blob_requests(&world.request_counters().await?);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let cpu1 = measure::proc_cpu_secs(pid)?;
        let counters = world.request_counters().await?;
        let blob1 = blob_requests(&counters);
        let (token_max, token_pairs, token_total) = token_stats(&counters);
        let line = json!({
            "bench": "idle",
            "tenants": tenants,
            "poll_interval": poll,
            "warmup_secs": warmup,
            "measured_secs": seconds,
            "ferry_cpu_secs": round(cpu1 - cpu0, 3),
            "ferry_cpu_percent_of_core": round((cpu1 - cpu0) / seconds as f64 * 100.0, 3),
            "ferry_cpu_secs_total": round(cpu1, 2),
            "ferry_vmhwm_mib": round(measure::proc_vmhwm_kib(pid)? as f64 / 1024.0, 1),
            "blob_requests_per_sec": round((blob1 - blob0) as f64 / seconds as f64, 2),
            "token_requests_total": token_total,
            "token_tenant_resource_pairs": token_pairs,
            "token_requests_max_per_pair": token_max,
            "token_lifetime_secs": world.sandbox.state().settings().token_lifetime_secs,
        });
        println!("{line}");
        Ok(())
    }
    .await;
    measure::stop_daemon(child).await;
    result
}

/// Total gateway (blob) requests in the sim's counters.
fn blob_requests(counters: &serde_json::Value) -> u64 {
    sum_kind(counters, "blob")
}

fn sum_kind(counters: &serde_json::Value, kind: &str) -> u64 {
    counters
        .get(kind)
        .and_then(|t| t.as_object())
        .map(|tenants| {
            tenants
                .values()
                .filter_map(|k| k.as_object())
                .flat_map(|k| k.values().filter_map(|v| v.as_u64()))
                .sum()
        })
        .unwrap_or(0)
}

/// (max per tenant+resource, number of pairs, total) over token and msi requests.
fn token_stats(counters: &serde_json::Value) -> (u64, usize, u64) {
    let mut max = 0;
    let mut pairs = 0;
    let mut total = 0;
    for kind in ["token", "msi"] {
        if let Some(tenants) = counters.get(kind).and_then(|t| t.as_object()) {
            for resources in tenants.values().filter_map(|r| r.as_object()) {
                for n in resources.values().filter_map(|v| v.as_u64()) {
                    max = max.max(n);
                    pairs += 1;
                    total += n;
                }
            }
        }
    }
    (max, pairs, total)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
