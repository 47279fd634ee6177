//! Listing cost on a growing Azure Monitor archive container: one tenant, `roots` resources with
//! one small `PT1H.json` per hour over `hours` hours (the newest in the current hour), shipped once
//! with `ferry run --once`, then polled by a Ferry daemon with nothing new to ship, first with
//! `listing = "flat"`, then with `listing = "date_partitioned"`. Per mode: List Blobs calls and
//! Ferry CPU per poll in steady state. Never part of CI.

use std::time::Duration;

use anyhow::{anyhow, bail};
use futures::StreamExt as _;
use serde_json::json;

use crate::measure;
use crate::world::{json_lines, World, SOURCE_CONTAINER};

/// The blob of resource `r` for the hour `h` hours before `now`.
fn archive(r: usize, now: time::OffsetDateTime, h: u64) -> String {
    let t = now - Duration::from_secs(h * 3600);
    format!(
        "resourceId=/SUBSCRIPTIONS/0B2E5E5C-1111-4222-8333-444455556666/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV{r:04}/y={:04}/m={:02}/d={:02}/h={:02}/m=00/PT1H.json",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour()
    )
}

/// Runs the listing benchmark and prints one JSON line per listing mode.
pub async fn listing(
    ferry: &str,
    roots: usize,
    hours: u64,
    poll_secs: u64,
    seconds: u64,
    place: &crate::Placement,
) -> anyhow::Result<()> {
    let work = place.work.as_path();
    crate::fresh_dir(work)?;
    let world = World::start(work, 1, &place.azurite_core).await?;
    let tenant = world
        .tenants
        .first()
        .ok_or_else(|| anyhow!("no tenant"))?
        .clone();
    let seeder = world
        .sandbox
        .seeder(&tenant.account)
        .await
        .map_err(|e| anyhow!("seeder: {e}"))?;
    let now = time::OffsetDateTime::now_utc();
    let start = std::time::Instant::now();
    let jobs: Vec<(usize, u64)> = (0..roots)
        .flat_map(|r| (0..hours).map(move |h| (r, h)))
        .collect();
    let blobs = jobs.len();
    let seeded: Vec<anyhow::Result<()>> = futures::stream::iter(jobs)
        .map(|(r, h)| {
            let seeder = seeder.clone();
            async move {
                let name = archive(r, now, h);
                seeder
                    .put_block_blob(
                        SOURCE_CONTAINER,
                        &name,
                        json_lines(&format!("r{r}h{h}"), 0, 2000),
                    )
                    .await
                    .map_err(|e| anyhow!("seeding {name}: {e}"))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for s in seeded {
        s?;
    }
    eprintln!(
        "seeded {blobs} blobs ({roots} resources x {hours} hours) in {:.1}s",
        start.elapsed().as_secs_f64()
    );

    let poll = format!("{poll_secs}s");
    let base = world.ferry_config("copy", &poll, "", false)?;
    let base_text = std::fs::read_to_string(&base)?;
    let start = std::time::Instant::now();
    let out = std::process::Command::new(ferry)
        .args(["run", "--once", "-c"])
        .arg(&base)
        .env("FERRY_LOG", "warn")
        .output()?;
    if !out.status.success() {
        bail!(
            "ferry run --once failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprintln!(
        "shipped them once in {:.1}s: {}",
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
    );

    for mode in ["flat", "date_partitioned"] {
        // the source table is the last one in the file
        let config = work.join(format!("ferry-{mode}.toml"));
        // the seeded blobs were all written minutes ago; a short settle models an archive whose
        // old hours were written long ago (as a real one's are)
        std::fs::write(
            &config,
            format!("{base_text}  listing = \"{mode}\"\n  partition_settle = \"1s\"\n"),
        )?;
        let log = work.join(format!("ferry-{mode}.log"));
        let mut child = measure::spawn_daemon(ferry, &config, &place.tool_core, &log)?;
        let pid = child.id();
        let result = async {
            // the first pass of date_partitioned is a full listing: let it and one more poll pass
            tokio::time::sleep(Duration::from_secs(poll_secs * 2 + 10)).await;
            if let Some(status) = child.try_wait()? {
                bail!("ferry exited during warm-up ({status})");
            }
            let cpu0 = measure::proc_cpu_secs(pid)?;
            let req0 = crate::blob_requests(&world.request_counters().await?);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let cpu1 = measure::proc_cpu_secs(pid)?;
            let req1 = crate::blob_requests(&world.request_counters().await?);
            let polls = seconds as f64 / poll_secs as f64;
            let line = json!({
                "bench": "listing",
                "listing": mode,
                "blobs": blobs,
                "resources": roots,
                "hours": hours,
                "poll_interval": poll,
                "measured_secs": seconds,
                "list_calls_per_poll": crate::round((req1 - req0) as f64 / polls, 1),
                "ferry_cpu_ms_per_poll": crate::round((cpu1 - cpu0) * 1000.0 / polls, 1),
                "ferry_cpu_percent_of_core": crate::round((cpu1 - cpu0) / seconds as f64 * 100.0, 2),
                "ferry_vmhwm_mib": crate::round(measure::proc_vmhwm_kib(pid)? as f64 / 1024.0, 1),
            });
            println!("{line}");
            Ok(())
        }
        .await;
        measure::stop_daemon(child).await;
        result?;
    }
    Ok(())
}
