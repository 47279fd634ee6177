//! Date-partitioned listing of Azure Monitor archives (issue 4, "listing stays cheap on containers
//! with millions of blobs"): after one full listing, each poll lists only the days that still have
//! open hours per resource; closed hours are not listed again; new resources are found by the
//! directory walk; the cursor survives a SIGKILL; `run --once` lists everything and picks up a late
//! write into a closed hour. Every record lands exactly once. A reload to `flat` clears the
//! partition roots from status and metrics.

mod common;
mod ops_common;

use std::time::Duration;

use common::*;
use ops_common::*;

const AUDIT: &str = "insights-logs-auditevent";
const ROOT: &str =
    "resourceId=/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/";

/// `y=YYYY/m=MM/d=DD/` of `t`.
fn day_path(t: time::OffsetDateTime) -> String {
    format!(
        "y={:04}/m={:02}/d={:02}/",
        t.year(),
        t.month() as u8,
        t.day()
    )
}

/// `{root}y=../m=../d=../h=../m=00/PT1H.json` of the hour of `t`.
fn archive(vault: &str, t: time::OffsetDateTime) -> String {
    format!(
        "{ROOT}{vault}/{}h={:02}/m=00/PT1H.json",
        day_path(t),
        t.hour()
    )
}

/// The `prefix` of every `List Blobs` debug line in `log` (JSON log format), with its delimiter.
fn listings(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "List Blobs")
        .map(|v| {
            (
                v["prefix"].as_str().unwrap_or("").to_string(),
                v["delimiter"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_listing_skips_closed_hours_and_finds_new_resources() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    let now = time::OffsetDateTime::now_utc();
    let old = now - Duration::from_secs(3 * 86_400);
    let earlier = now - Duration::from_secs(5 * 3600);
    // the next hour: open for the whole test, whenever it runs
    let next = now + Duration::from_secs(3600);
    let blobs = [
        ("a0", archive("KVA", old)),
        ("a1", archive("KVA", earlier)),
        ("an", archive("KVA", next)),
        ("bn", archive("KVB", next)),
    ];
    for (tag, name) in &blobs {
        s.create_append_blob(AUDIT, name).await.unwrap();
        s.append_block(AUDIT, name, log_lines(tag, 0, 10))
            .await
            .unwrap();
    }
    s.put_block_blob(AUDIT, &archive("KVB", earlier), log_lines("b1", 0, 10))
        .await
        .unwrap();

    let mut spec = SourceSpec::records("audit");
    spec.extra = "  listing = \"date_partitioned\"\n  partition_settle = \"2s\"\n  partition_discovery_interval = \"4s\"\n  full_listing_interval = \"1h\"\n  batch_max_age = \"1s\"\n".into();
    let cfg = w.config(&[("contoso", vec![spec])], "");
    let mut daemon = w.spawn_daemon(&cfg, "first.log");

    let shipped = eventually(90, || async {
        let c = record_counts(&w.destination().await);
        ["a0", "a1", "an", "bn", "b1"]
            .iter()
            .all(|t| c.get(&format!("{t}-9")) == Some(&1))
    })
    .await;
    assert!(shipped, "first pass did not ship:\n{}", w.log("first.log"));

    // once every hour settled (2 s after its last write) and shipped, polls list only the day of
    // the open hours, never the closed old day again
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mark = listings(&w.log("first.log")).len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let log = w.log("first.log");
    let all = listings(&log);
    assert!(
        all.first()
            .is_some_and(|(p, d)| p.is_empty() && d.is_empty()),
        "the first pass is a full listing: {all:?}"
    );
    let recent = &all[mark..];
    assert!(recent.len() >= 2, "polls kept listing: {all:?}");
    let old_day = format!("{ROOT}KVA/{}", day_path(old));
    let next_day = format!("{ROOT}KVA/{}", day_path(next));
    for (prefix, delimiter) in recent {
        assert!(
            !prefix.is_empty() || delimiter == "/",
            "a full listing inside full_listing_interval: {recent:?}"
        );
        assert!(
            !prefix.starts_with(&old_day),
            "a closed day was listed again: {recent:?}"
        );
        assert!(
            delimiter == "/" || prefix.contains("/y="),
            "a partition listing that is not a day prefix: {prefix}"
        );
    }
    assert!(
        recent.iter().any(|(p, _)| p == &next_day),
        "the open day of KVA was not listed: {recent:?}"
    );

    // an open hour keeps being tailed
    s.append_block(AUDIT, &blobs[2].1, log_lines("an", 10, 5))
        .await
        .unwrap();
    // a new resource is found by the directory walk
    let new_root = archive("KVC", next);
    s.put_block_blob(AUDIT, &new_root, log_lines("cn", 0, 7))
        .await
        .unwrap();
    let more = eventually(60, || async {
        let c = record_counts(&w.destination().await);
        c.get("an-14") == Some(&1) && c.get("cn-6") == Some(&1)
    })
    .await;
    assert!(
        more,
        "tail or new resource not shipped:\n{}",
        w.log("first.log")
    );

    // a late write into a closed hour waits for the next full listing
    s.append_block(AUDIT, &blobs[0].1, log_lines("a0", 10, 3))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        record_counts(&w.destination().await).get("a0-10"),
        None,
        "a closed hour was listed by a partition pass"
    );

    // SIGKILL, then a restart resumes from the stored cursor: no full listing first
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let mut again = w.spawn_daemon(&cfg, "second.log");
    let listed = eventually(30, || async { listings(&w.log("second.log")).len() >= 2 }).await;
    again.kill().unwrap();
    again.wait().unwrap();
    let second = listings(&w.log("second.log"));
    assert!(
        listed,
        "no listing after the restart:\n{}",
        w.log("second.log")
    );
    assert!(
        !second[0].0.is_empty() || second[0].1 == "/",
        "the restart began with a full listing instead of the stored cursor: {second:?}"
    );

    // `run --once` lists everything: the late lines ship, and every record is there once
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let counts = record_counts(&w.destination().await);
    expect_each_once(&counts, "a0", 13);
    expect_each_once(&counts, "a1", 10);
    expect_each_once(&counts, "an", 15);
    expect_each_once(&counts, "bn", 10);
    expect_each_once(&counts, "b1", 10);
    expect_each_once(&counts, "cn", 7);
    assert_eq!(counts.values().sum::<usize>(), 13 + 10 + 15 + 10 + 10 + 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_lists_by_partition_once_a_full_listing_takes_more_than_one_page() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    let now = time::OffsetDateTime::now_utc();
    // one resource, six hours: with two blobs a page the full listing takes three pages
    for h in 0..6u64 {
        let t = now - Duration::from_secs(h * 3600 + 7200);
        s.put_block_blob(AUDIT, &archive("KVA", t), log_lines(&format!("h{h}"), 0, 4))
            .await
            .unwrap();
    }
    let mut spec = SourceSpec::records("audit");
    spec.extra = "  list_page_size = 2\n  partition_settle = \"2s\"\n".into();
    let cfg = w.config(&[("contoso", vec![spec])], "");
    let mut daemon = w.spawn_daemon(&cfg, "auto.log");
    let switched = eventually(60, || async {
        let all = listings(&w.log("auto.log"));
        all.iter().any(|(p, d)| d.is_empty() && p.contains("/y="))
    })
    .await;
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let all = listings(&w.log("auto.log"));
    assert!(switched, "auto never listed by partition: {all:?}");
    assert!(
        all.iter()
            .take(3)
            .all(|(p, d)| p.is_empty() && d.is_empty()),
        "the first pass lists everything, page by page: {all:?}"
    );
    let counts = record_counts(&w.destination().await);
    for h in 0..6 {
        expect_each_once(&counts, &format!("h{h}"), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flat_listing_resumes_at_its_stored_marker_after_sigkill() {
    let w = world(1).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let s = w.seeder("contoso").await;
    for i in 0..8 {
        s.put_block_blob(
            "exports",
            &format!("daily/part-{i:02}.csv"),
            format!("row,{i}\n"),
        )
        .await
        .unwrap();
    }
    // every read of the container is slow, so the first pass is still running when it is killed
    let fault = w
        .sandbox
        .admin()
        .add_fault(&ferry_sim::faults::FaultSpec {
            host: Some("contosologs.blob.sandbox.test".into()),
            method: Some("GET".into()),
            path_prefix: Some("/exports".into()),
            latency_ms: Some(1500),
            ..Default::default()
        })
        .await
        .expect("add fault");
    let mut spec = SourceSpec::copy("exports", "exports");
    spec.extra = "  list_page_size = 2\n".into();
    let cfg = w.config(&[("contoso", vec![spec])], "");
    let mut first = w.spawn_daemon(&cfg, "flat1.log");
    let second_page = eventually(60, || async { listings(&w.log("flat1.log")).len() >= 2 }).await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(second_page, "no second page:\n{}", w.log("flat1.log"));
    w.sandbox
        .admin()
        .remove_fault(&fault)
        .await
        .expect("remove fault");

    let mut second = w.spawn_daemon(&cfg, "flat2.log");
    let done = eventually(60, || async {
        w.destination()
            .await
            .keys()
            .filter(|k| k.contains("source=exports"))
            .count()
            >= 8
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    let log = w.log("flat2.log");
    assert!(done, "not everything shipped after the restart:\n{log}");
    assert!(
        log.contains("Listing resumes where the last pass stopped"),
        "the restart did not resume at the stored marker:\n{log}"
    );
    let shipped: Vec<String> = w
        .destination()
        .await
        .keys()
        .filter(|k| k.contains("source=exports"))
        .cloned()
        .collect();
    assert_eq!(shipped.len(), 8, "each blob exactly once: {shipped:?}");
}

/// A reload from `date_partitioned` to `flat` leaves nothing of the partitions in `ferry status`
/// or `ferry_partition_roots`: the roots and the open hour are the listing's, and flat has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_to_flat_listing_clears_the_partition_roots() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    let next = time::OffsetDateTime::now_utc() + Duration::from_secs(3600);
    s.put_block_blob(AUDIT, &archive("KVA", next), log_lines("r", 0, 3))
        .await
        .unwrap();
    let spec = |listing: &str| {
        let mut spec = SourceSpec::records("audit");
        spec.extra = format!("  listing = \"{listing}\"\n  batch_max_age = \"1s\"\n");
        spec
    };
    let cfg = w.config(&[("contoso", vec![spec("date_partitioned")])], "");
    let d = Daemon::start(&cfg);
    let roots = |s: &serde_json::Value| {
        s["tenants"]["contoso"]["sources"]["audit"]["partition_roots"].clone()
    };
    d.wait_for(60, "one partition root listed", || async {
        roots(&d.status().await) == serde_json::json!(1)
    })
    .await;
    let gauge = || async {
        let m = d.metrics().await;
        sample(
            &m,
            "ferry_partition_roots",
            r#"tenant="contoso",source="audit""#,
        )
    };
    assert_eq!(gauge().await, Some(1.0));

    w.config(&[("contoso", vec![spec("flat")])], "");
    d.signal("HUP");
    d.wait_for(60, "partition roots cleared by a flat listing", || async {
        let s = d.status().await;
        roots(&s).is_null() && s["tenants"]["contoso"]["sources"]["audit"]["open_since"].is_null()
    })
    .await;
    assert_eq!(gauge().await, None, "the gauge of a flat listing");
    let out = d.stop();
    assert!(out.contains("Config reloaded"), "{out}");
}
