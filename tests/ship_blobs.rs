//! End to end: customers' containers shipped to provider storage by the real `ferry` binary,
//! against Azurite and ferry-sim (issue 4). Includes the rate limits: per tenant, measured at the
//! customer's account, and the destination's.

mod common;
mod ops_common;

use common::*;
use ferry_sim::faults::FaultSpec;
use ops_common::{sample, Daemon};

const AUDIT: &str = "insights-logs-auditevent";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_records_and_copy_modes() {
    let w = world(2).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let contoso = w.seeder("contoso").await;
    contoso
        .put_block_blob(
            AUDIT,
            "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json",
            log_lines("c", 0, 100),
        )
        .await
        .unwrap();
    let binary: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    contoso
        .put_block_blob("exports", "dumps/big.bin", binary.clone())
        .await
        .unwrap();
    contoso
        .put_block_blob("exports", "dumps/empty.bin", Vec::<u8>::new())
        .await
        .unwrap();
    let fabrikam = w.seeder("fabrikam").await;
    fabrikam
        .create_append_blob(AUDIT, "resourceId=/X/PT1H.json")
        .await
        .unwrap();
    fabrikam
        .append_block(AUDIT, "resourceId=/X/PT1H.json", log_lines("f", 0, 50))
        .await
        .unwrap();
    let cfg = w.config(
        &[
            (
                "contoso",
                vec![
                    SourceSpec::records("audit"),
                    SourceSpec::copy("exports", "exports"),
                ],
            ),
            (
                "fabrikam",
                vec![SourceSpec {
                    extra: "compression = \"gzip\"\ncompression_level = 9\n".into(),
                    ..SourceSpec::records("audit")
                }],
            ),
        ],
        "",
    );
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    let fabrikam_objects: Vec<_> = dest
        .iter()
        .filter(|(n, _)| n.starts_with("tenant=fabrikam/"))
        .collect();
    assert!(!fabrikam_objects.is_empty());
    for (name, (_, body)) in fabrikam_objects {
        // gzip header (RFC 1952): magic, then XFL = 2 for "maximum compression" (level 9)
        assert!(name.ends_with(".jsonl.gz"), "{name}");
        assert_eq!(&body[..2], &[0x1f, 0x8b], "{name}");
        assert_eq!(body[8], 2, "{name}: not written at compression_level 9");
    }
    for (name, (meta, _)) in &dest {
        let tenant = name
            .split('/')
            .next()
            .unwrap()
            .trim_start_matches("tenant=");
        assert_eq!(
            meta.get("ferry_tenant").map(String::as_str),
            Some(tenant),
            "{name}"
        );
        assert!(
            meta.contains_key("ferry_plaintext_sha256") && meta.contains_key("ferry_source_range"),
            "{name}: {meta:?}"
        );
    }
    let counts = record_counts(&dest);
    expect_each_once(&counts, "c", 100);
    expect_each_once(&counts, "f", 50);
    let big = dest
        .iter()
        .find(|(n, _)| n.starts_with("tenant=contoso/source=exports/") && n.ends_with("big.bin"))
        .expect("copy object");
    assert_eq!(big.1 .1, binary, "copy mode must be byte-exact");
    let empty = dest
        .iter()
        .find(|(n, _)| n.ends_with("empty.bin"))
        .expect("zero-byte blob shipped as an empty object");
    assert!(empty.1 .1.is_empty());
    // nothing new: a second pass ships nothing
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("shipped 0 objects"),
        "{}",
        output_text(&out)
    );
    assert_eq!(w.destination().await.len(), dest.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_blob_growth_with_partial_last_line() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    let blob = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json";
    s.create_append_blob(AUDIT, blob).await.unwrap();
    s.append_block(AUDIT, blob, log_lines("a", 0, 10))
        .await
        .unwrap();
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let run = || w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(run().status.success());
    // the next append ends with half a line: only complete lines ship
    let more = log_lines("a", 10, 5);
    let (head, tail) = more.split_at(more.len() - 40);
    s.append_block(AUDIT, blob, head.to_string()).await.unwrap();
    let out = run();
    assert!(out.status.success(), "{}", output_text(&out));
    let counts = record_counts(&w.destination().await);
    expect_each_once(&counts, "a", 14);
    assert!(!counts.contains_key("a-14"), "a partial line was shipped");
    // a poll with no new bytes does not read the partial line again
    let out = run();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("shipped 0 objects"),
        "{}",
        output_text(&out)
    );
    s.append_block(AUDIT, blob, tail.to_string()).await.unwrap();
    s.append_block(AUDIT, blob, log_lines("a", 15, 5))
        .await
        .unwrap();
    assert!(run().status.success());
    let dest = w.destination().await;
    expect_each_once(&record_counts(&dest), "a", 20);
    assert_eq!(
        dest.len(),
        3,
        "one object per poll that found new lines: {:?}",
        dest.keys().collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_left_without_newline_ships_once_the_blob_is_quiet() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    let blob = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=11/m=00/PT1H.json";
    s.create_append_blob(AUDIT, blob).await.unwrap();
    // a writer that ends its last record without a newline
    let lines = log_lines("q", 0, 3);
    s.append_block(AUDIT, blob, lines.trim_end_matches('\n').to_string())
        .await
        .unwrap();
    let mut audit = SourceSpec::records("audit");
    audit.extra = "  partial_line_wait = \"5s\"\n".into();
    let cfg = w.config(&[("contoso", vec![audit])], "");
    let run = || w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let out = run();
    assert!(out.status.success(), "{}", output_text(&out));
    let counts = record_counts(&w.destination().await);
    expect_each_once(&counts, "q", 2);
    assert!(
        !counts.contains_key("q-2"),
        "the last line shipped while the blob was still being written"
    );
    // not written for partial_line_wait: the line is final
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let out = run();
    assert!(out.status.success(), "{}", output_text(&out));
    expect_each_once(&record_counts(&w.destination().await), "q", 3);
    assert!(
        output_text(&out)
            .contains("has no newline and the blob was not written for partial_line_wait"),
        "the operator is told a line shipped without its newline: {}",
        output_text(&out)
    );
    // the writer goes on with a newline first: nothing is shipped twice, nothing lost
    s.append_block(AUDIT, blob, format!("\n{}", log_lines("q", 3, 2)))
        .await
        .unwrap();
    let out = run();
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    expect_each_once(&record_counts(&dest), "q", 5);
    assert_eq!(dest.len(), 3, "{:?}", dest.keys().collect::<Vec<_>>());
    // shipped to its end: nothing more to do
    let out = run();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("shipped 0 objects"),
        "{}",
        output_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_block_blob_ships_again_and_odd_names_stay_inside_the_tenant() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    s.put_block_blob(AUDIT, "logs/one.json", log_lines("v1", 0, 5))
        .await
        .unwrap();
    // names a URL cannot carry (`../` segments) cannot exist in a container; these can, and each
    // would escape or confuse a naive path join
    // (control characters are left out: Azurite 3.35 answers 500 to a listing that holds one)
    let odd = [
        "..\\..\\..\\win.json",
        "a b/%2e%2e/ü.json",
        "x/.../y.json",
        "tab\there.json",
        "..json",
        "trailing./.hidden",
    ];
    let token = w
        .sandbox
        .mint_token(
            &w.customers["contoso"].spec.tenant_id,
            "https://storage.azure.com",
            ferry_sim::sandbox::CUSTOMER_ADMIN_OBJECT_ID,
            Some(ferry_sim::sandbox::CUSTOMER_ADMIN_APP_ID),
        )
        .await
        .unwrap();
    let client = ferry::blob_api::ContainerClient::new(
        w.sandbox.http().clone(),
        "https://contosologs.blob.sandbox.test",
        AUDIT,
    );
    for (i, name) in odd.iter().enumerate() {
        client
            .put_blob(
                &format!("Bearer {token}"),
                name,
                log_lines(&format!("odd{i}"), 0, 1).into(),
                &Default::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("seeding {name:?}: {e}"));
    }
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    for name in dest.keys() {
        assert!(name.starts_with("tenant=contoso/source=audit/"), "{name}");
        assert!(
            !name
                .split('/')
                .any(|seg| seg == ".." || seg == "." || seg.is_empty()),
            "{name}"
        );
    }
    let counts = record_counts(&dest);
    for i in 0..odd.len() {
        expect_each_once(&counts, &format!("odd{i}"), 1);
    }
    // each object's `ferry_source_url` is the source blob's URL as it is: opening it reads the
    // blob the object came from (a doubly encoded `%252e` would name a blob that is not there)
    for (object, (meta, _)) in &dest {
        let url = &meta["ferry_source_url"];
        let resp = w
            .sandbox
            .http()
            .get(url)
            .header("authorization", format!("Bearer {token}"))
            .header("x-ms-version", ferry::blob_api::API_VERSION)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(resp.status(), 200, "{object}: ferry_source_url {url}");
    }
    s.put_block_blob(AUDIT, "logs/one.json", log_lines("v2", 0, 7))
        .await
        .unwrap();
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    expect_each_once(&record_counts(&w.destination().await), "v2", 7);
}

/// Checkpoints that trail what was shipped by more than one object: the state directory restored
/// from an older copy, then lost altogether, while provider storage kept every object. Growing
/// append blobs continue after the objects the destination already holds, in both modes, instead
/// of re-shipping from the checkpoint into an object that overlaps the later ones: every record
/// stays exactly once, and the copy-mode ranges still tile the blob without overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_restored_from_an_older_copy_or_lost_do_not_ship_growing_blobs_twice() {
    let w = world(1).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let s = w.seeder("contoso").await;
    let archive = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json";
    let stream = "stream/growing.bin";
    s.create_append_blob(AUDIT, archive).await.unwrap();
    s.create_append_blob("exports", stream).await.unwrap();
    let cfg = w.contoso_audit_and_exports();
    let state = w.dir.path().join("state");
    let backup = w.dir.path().join("state-backup");
    let mut bytes = Vec::new();
    let mut records = 0;
    // each round appends and ships: one more object per blob, cut where the blob ended then
    for round in 0..5usize {
        match round {
            // an older copy of the state directory comes back, two objects behind
            3 => {
                std::fs::remove_dir_all(&state).unwrap();
                std::fs::rename(&backup, &state).unwrap();
            }
            // the state directory is lost
            4 => std::fs::remove_dir_all(&state).unwrap(),
            _ => {}
        }
        let n = 10 + 5 * round;
        s.append_block(AUDIT, archive, log_lines("trail", records, n))
            .await
            .unwrap();
        records += n;
        let chunk: Vec<u8> = (0..1000 + 500 * round)
            .map(|i| (i * 7 + round) as u8)
            .collect();
        s.append_block("exports", stream, chunk.clone())
            .await
            .unwrap();
        bytes.extend_from_slice(&chunk);
        let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
        let text = output_text(&out);
        assert!(out.status.success(), "round {round}: {text}");
        if round >= 3 {
            assert!(
                text.contains("The destination already holds objects past this blob's checkpoint"),
                "round {round}: {text}"
            );
        }
        if round == 0 {
            copy_dir(&state, &backup);
        }
    }

    let dest = w.destination().await;
    expect_each_once(&record_counts(&dest), "trail", records);
    // the copy objects' ranges tile the blob: no overlap, no gap, the same bytes
    let objects = assert_ranges_tile(
        &dest,
        |n| n.contains("source=exports/"),
        &bytes,
        "growing.bin",
    );
    assert_eq!(objects, 5, "one object per round");
}

/// Copies a directory's files (the state directory: no subdirectories).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A rewritten block blob (new ETag) and a deleted and re-created append blob ship again into
/// objects of their own: every record of every version exactly once, however differently the
/// versions are cut into objects. (Before version tokens in names, the new version's first
/// object replaced the old one's and left its later objects behind: half of each.) A block blob
/// in copy mode is replaced whole by its new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_of_a_rewritten_blob_lands_whole() {
    let w = world(1).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let s = w.seeder("contoso").await;
    let archive = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json";
    // 600 records of ~230 bytes: three objects of at most 64 KiB
    s.put_block_blob(AUDIT, "logs/one.json", log_lines("v1", 0, 600))
        .await
        .unwrap();
    s.create_append_blob(AUDIT, archive).await.unwrap();
    s.append_block(AUDIT, archive, log_lines("g1", 0, 300))
        .await
        .unwrap();
    s.put_block_blob("exports", "dumps/a.bin", vec![1u8; 5000])
        .await
        .unwrap();
    let mut audit = SourceSpec::records("audit");
    audit.extra = "  batch_max_bytes = \"64KiB\"\n  max_record_size = \"16KiB\"\n".into();
    let cfg = w.config(
        &[(
            "contoso",
            vec![audit, SourceSpec::copy("exports", "exports")],
        )],
        "",
    );
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let first = w.destination().await;
    let one = |dest: &std::collections::BTreeMap<String, _>| {
        dest.keys()
            .filter(|n: &&String| n.contains("/logs/one.json@"))
            .count()
    };
    assert_eq!(one(&first), 3, "{:?}", first.keys());

    // the new versions: a shorter block blob (one object), an append blob created again (its
    // creation time, which is its identity, is a new second), a copy of another length
    s.put_block_blob(AUDIT, "logs/one.json", log_lines("v2", 0, 100))
        .await
        .unwrap();
    s.delete_blob(AUDIT, archive).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    s.create_append_blob(AUDIT, archive).await.unwrap();
    s.append_block(AUDIT, archive, log_lines("g2", 0, 50))
        .await
        .unwrap();
    s.put_block_blob("exports", "dumps/a.bin", vec![2u8; 3000])
        .await
        .unwrap();
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));

    let dest = w.destination().await;
    let counts = record_counts(&dest);
    for (tag, n) in [("v1", 600), ("v2", 100), ("g1", 300), ("g2", 50)] {
        expect_each_once(&counts, tag, n);
    }
    assert_eq!(counts.values().sum::<usize>(), 1050);
    assert_eq!(one(&dest), 4, "{:?}", dest.keys());
    // every object of a version says which: the ETag it was read under
    let etags: std::collections::BTreeSet<&str> = dest
        .iter()
        .filter(|(n, _)| n.contains("/logs/one.json@"))
        .map(|(_, (meta, _))| meta["ferry_source_etag"].as_str())
        .collect();
    assert_eq!(etags.len(), 2, "{:?}", dest.keys());
    let copies: Vec<_> = dest
        .iter()
        .filter(|(n, _)| n.ends_with("/dumps/a.bin"))
        .collect();
    assert_eq!(copies.len(), 1, "{:?}", dest.keys());
    assert!(
        copies[0].1 .1 == vec![2u8; 3000],
        "the copy is not the new version"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_container_ships_nothing_and_succeeds() {
    let w = world(1).await;
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("shipped 0 objects"),
        "{}",
        output_text(&out)
    );
    assert!(w.destination().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_connection_resets_are_retried() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    for i in 0..4 {
        s.put_block_blob(
            AUDIT,
            &format!("b{i}.json"),
            log_lines(&format!("t{i}"), 0, 2000),
        )
        .await
        .unwrap();
    }
    let admin = w.sandbox.admin();
    admin
        .add_fault(&FaultSpec {
            host: Some("contosologs.blob.sandbox.test".into()),
            status: Some(503),
            error_code: Some("ServerBusy".into()),
            retry_after_secs: Some(1),
            count: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .add_fault(&FaultSpec {
            host: Some("contosologs.blob.sandbox.test".into()),
            method: Some("GET".into()),
            path_prefix: Some(format!("/{AUDIT}/b")),
            reset_after_bytes: Some(10_000),
            count: Some(3),
            ..Default::default()
        })
        .await
        .unwrap();
    admin
        .add_fault(&FaultSpec {
            host: Some("providerlogs.blob.sandbox.test".into()),
            method: Some("PUT".into()),
            status: Some(500),
            error_code: Some("OperationTimedOut".into()),
            count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    // provider writes cut without an answer: the bodyless probe that follows each finds the
    // destination authorised, so the cut stays a network fault and the write is retried
    admin
        .add_fault(&FaultSpec {
            host: Some("providerlogs.blob.sandbox.test".into()),
            method: Some("PUT".into()),
            outage: true,
            count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let counts = record_counts(&w.destination().await);
    for i in 0..4 {
        expect_each_once(&counts, &format!("t{i}"), 2000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_removed_mid_run_stops_only_that_tenant_and_resumes() {
    let w = world(2).await;
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    let mut daemon = w.spawn_daemon(&cfg, "daemon.log");
    let (c, f) = one_blob_each(&w).await;
    assert!(
        eventually(30, || async {
            record_counts(&w.destination().await).len() == 20
        })
        .await,
        "first data not shipped:\n{}",
        w.log("daemon.log")
    );
    w.revoke("contoso", AUDIT, "Storage Blob Data Reader").await;
    c.put_block_blob(AUDIT, "two.json", log_lines("c2", 0, 10))
        .await
        .unwrap();
    f.put_block_blob(AUDIT, "two.json", log_lines("f2", 0, 10))
        .await
        .unwrap();
    assert!(
        eventually(30, || async {
            record_counts(&w.destination().await)
                .keys()
                .filter(|k| k.starts_with("f2-"))
                .count()
                == 10
        })
        .await,
        "fabrikam stalled while contoso was denied:\n{}",
        w.log("daemon.log")
    );
    w.expect_in_log("daemon.log", "access_denied", 10).await;
    assert!(!record_counts(&w.destination().await)
        .keys()
        .any(|k| k.starts_with("c2-")));
    w.grant("contoso", AUDIT, "Storage Blob Data Reader").await;
    assert!(
        eventually(30, || async {
            record_counts(&w.destination().await)
                .keys()
                .filter(|k| k.starts_with("c2-"))
                .count()
                == 10
        })
        .await,
        "contoso did not resume:\n{}",
        w.log("daemon.log")
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    let counts = record_counts(&w.destination().await);
    for tag in ["c1", "c2", "f1", "f2"] {
        expect_each_once(&counts, tag, 10);
    }
}

/// The provider's own destination role removed: a Put Block of 8 MiB is refused before its
/// body is read and the connection closed, so the client usually sees a broken pipe, not the
/// 403. The upload asks once more without a body and reports the refusal with the
/// destination's fix (not "provider storage failed ... network"), like the small Put Blob
/// refused directly; with the role back, both objects land whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_refusing_a_large_upload_is_named_as_a_refusal() {
    use sha2::Digest;
    let w = world(1).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let s = w.seeder("contoso").await;
    let big: Vec<u8> = (0..(20u32 << 20)).map(|k| (k % 251) as u8).collect();
    s.put_block_blob("exports", "big.bin", big.clone())
        .await
        .unwrap();
    s.put_block_blob("exports", "small.bin", vec![7u8; 1000])
        .await
        .unwrap();
    let role = serde_json::json!({"account": "providerlogs", "container": "shipped",
        "managed_identity_client_id": w.provider.managed_identity_client_id,
        "role": "Storage Blob Data Contributor"});
    w.sandbox
        .admin()
        .delete("/role-assignments", Some(role.clone()))
        .await
        .expect("remove the destination role");
    let cfg = w.config(
        &[("contoso", vec![SourceSpec::copy("exports", "exports")])],
        "",
    );
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failures: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "Shipping failed; it is retried next poll")
        .collect();
    for blob in ["big.bin", "small.bin"] {
        let f = failures
            .iter()
            .find(|v| v["blob"] == blob)
            .unwrap_or_else(|| panic!("no failure logged for {blob}:\n{text}"));
        let error = f["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("HTTP 403 AuthorizationPermissionMismatch"),
            "{blob}: {error}"
        );
        assert_eq!(
            f["fix"],
            "grant the destination identity 'Storage Blob Data Contributor' on the destination container",
            "{blob}: {f}"
        );
    }
    let big_error = failures.iter().find(|v| v["blob"] == "big.bin").unwrap()["error"].to_string();
    // (whether the 403 itself reached the client before the connection closed, or only the
    // probe's answer did, depends on timing; either way the refusal is what is reported)
    assert!(
        big_error.contains("put block of"),
        "the large upload should be a refused Put Block: {big_error}"
    );

    w.sandbox
        .admin()
        .put("/role-assignments", role)
        .await
        .expect("give the destination role back");
    assert!(w.destination().await.is_empty(), "nothing may land");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    let (meta, got) = dest
        .iter()
        .find(|(n, _)| n.ends_with("big.bin"))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("big.bin not shipped: {:?}", dest.keys()));
    assert!(*got == big, "big.bin differs");
    assert_eq!(
        meta.get("ferry_plaintext_sha256").map(String::as_str),
        Some(hex::encode(sha2::Sha256::digest(&big)).as_str())
    );
    assert_eq!(dest.len(), 2, "{:?}", dest.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_then_restart_ships_every_record_exactly_once() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    // 12 blobs of 3,000 records (~700 KB each), cut into ~64 KiB objects: many commits to interrupt
    for i in 0..12 {
        s.put_block_blob(
            AUDIT,
            &format!("block{i:02}.json"),
            log_lines(&format!("k{i}"), 0, 3000),
        )
        .await
        .unwrap();
    }
    let growing = "resourceId=/G/PT1H.json";
    s.create_append_blob(AUDIT, growing).await.unwrap();
    let mut source = SourceSpec::records("audit");
    source.extra = "  batch_max_bytes = \"64KiB\"\n  max_record_size = \"16KiB\"\n".into();
    let cfg = w.config(&[("contoso", vec![source])], "");
    let mut appended = 0;
    for round in 0..5u64 {
        s.append_block(AUDIT, growing, log_lines("g", appended, 400))
            .await
            .unwrap();
        appended += 400;
        let mut daemon = w.spawn_daemon(&cfg, &format!("run{round}.log"));
        // a different moment each round: 300 ms .. 1.5 s into the run
        tokio::time::sleep(std::time::Duration::from_millis(300 + round * 300)).await;
        daemon.kill().expect("SIGKILL ferry");
        let _ = daemon.wait();
    }
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let counts = record_counts(&w.destination().await);
    for i in 0..12 {
        expect_each_once(&counts, &format!("k{i}"), 3000);
    }
    expect_each_once(&counts, "g", appended);
    assert_eq!(
        counts.values().sum::<usize>(),
        12 * 3000 + appended,
        "unexpected extra records"
    );
    // each checkpoint counts its blob's records once, whatever the kills cut it into
    for i in 0..12 {
        let cp = w.checkpoint_of("contoso", "audit", &format!("block{i:02}.json"));
        assert_eq!(cp.records_shipped, 3000, "block{i:02}.json: {cp:?}");
    }
    let cp = w.checkpoint_of("contoso", "audit", growing);
    assert_eq!(cp.records_shipped, appended as u64, "{cp:?}");
}

/// With 64 KiB blocks, copies of every size around a block boundary, an append blob copied as
/// it grows, and a records object that needs several blocks land byte for byte (Put Block and
/// Put Block List, not one Put Blob), with the metadata hash of the content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_objects_are_exact_at_every_block_boundary() {
    use sha2::Digest;
    const BLOCK: usize = 64 * 1024;
    let w = world(1).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let s = w.seeder("contoso").await;
    let sizes = [
        0,
        1,
        BLOCK - 1,
        BLOCK,
        BLOCK + 1,
        3 * BLOCK,
        3 * BLOCK + 17,
        1_048_576 + 3,
    ];
    let mut sources = std::collections::BTreeMap::new();
    for (i, n) in sizes.iter().enumerate() {
        let body: Vec<u8> = (0..*n as u32)
            .map(|k| (k.wrapping_mul(31).wrapping_add(i as u32) % 253) as u8)
            .collect();
        let name = format!("dumps/size-{n}.bin");
        s.put_block_blob("exports", &name, body.clone())
            .await
            .unwrap();
        sources.insert(format!("size-{n}.bin"), body);
    }
    // an append blob copied as it grows: each poll's new bytes are one object of their own
    s.create_append_blob("exports", "dumps/growing.bin")
        .await
        .unwrap();
    let grown: Vec<u8> = (0..(2 * BLOCK + 5) as u32)
        .map(|k| (k % 241) as u8)
        .collect();
    s.append_block("exports", "dumps/growing.bin", grown.clone())
        .await
        .unwrap();
    // records: 6,000 lines with 64 random hex digits each, several blocks even compressed
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let lines: String = (0..6_000)
        .map(|i| {
            let nonce: String = (0..4)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            format!("{{\"category\":\"AuditEvent\",\"properties\":{{\"seq\":\"staged-{i}\",\"nonce\":\"{nonce}\"}}}}\n")
        })
        .collect();
    s.put_block_blob(
        AUDIT,
        "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json",
        lines.clone(),
    )
    .await
    .unwrap();

    let cfg = w.contoso_audit_and_exports();
    // without the small blocks every object here would be one Put Blob and nothing staged
    use_64_kib_blocks(&cfg);
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));

    let dest = w.destination().await;
    for (name, body) in &sources {
        let (meta, got) = dest
            .iter()
            .find(|(n, _)| n.contains("source=exports/") && n.ends_with(name.as_str()))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("{name} not shipped: {:?}", dest.keys()));
        assert_eq!(got.len(), body.len(), "{name}");
        assert!(got == body, "{name}: bytes differ");
        assert_eq!(
            meta.get("ferry_plaintext_sha256").map(String::as_str),
            Some(hex::encode(sha2::Sha256::digest(body)).as_str()),
            "{name}"
        );
    }
    let growing: Vec<_> = dest
        .iter()
        .filter(|(n, _)| n.contains("growing.bin"))
        .collect();
    assert_eq!(growing.len(), 1, "{:?}", dest.keys());
    assert!(growing[0].1 .1 == grown, "append blob copy differs");
    expect_each_once(&record_counts(&dest), "staged", 6_000);
    let records_object = dest
        .iter()
        .find(|(n, _)| n.contains("source=audit/"))
        .expect("records object");
    let plain: String = decode_records(records_object.0, &records_object.1 .1)
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        plain == lines,
        "records object differs from the source lines"
    );
    assert_eq!(
        records_object
            .1
             .0
            .get("ferry_plaintext_sha256")
            .map(String::as_str),
        Some(hex::encode(sha2::Sha256::digest(plain.as_bytes())).as_str())
    );
    assert!(
        records_object.1 .1.len() > 2 * BLOCK,
        "the records object should need several blocks, it is {} bytes",
        records_object.1 .1.len()
    );

    // more bytes on the append blob: only they ship, as a second object
    let more: Vec<u8> = (0..(BLOCK + 9) as u32).map(|k| (k % 239) as u8).collect();
    s.append_block("exports", "dumps/growing.bin", more.clone())
        .await
        .unwrap();
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    let mut pieces: Vec<_> = dest
        .iter()
        .filter(|(n, _)| n.contains("growing.bin"))
        .map(|(_, (meta, body))| (meta["ferry_source_range"].clone(), body.clone()))
        .collect();
    pieces.sort_by_key(|(range, _)| range.split('-').next().unwrap().parse::<u64>().unwrap());
    assert_eq!(pieces.len(), 2, "{:?}", dest.keys());
    assert!(
        pieces[0].1 == grown && pieces[1].1 == more,
        "append pieces differ"
    );
}

/// Ten records (`c1`, `f1`) in one blob in each of contoso's and fabrikam's audit containers;
/// returns their seeders.
async fn one_blob_each(
    w: &World,
) -> (
    ferry_sim::sandbox::BlobSeeder,
    ferry_sim::sandbox::BlobSeeder,
) {
    let (c, f) = (w.seeder("contoso").await, w.seeder("fabrikam").await);
    c.put_block_blob(AUDIT, "one.json", log_lines("c1", 0, 10))
        .await
        .unwrap();
    f.put_block_blob(AUDIT, "one.json", log_lines("f1", 0, 10))
        .await
        .unwrap();
    (c, f)
}

/// Forwards every connection on `listener` to `to` (the customer's endpoint coming back).
async fn forward(listener: tokio::net::TcpListener, to: std::net::SocketAddr) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_customer_endpoint_is_reported_as_such_and_resumes_when_it_is_back() {
    let w = world(2).await;
    let (_, f) = one_blob_each(&w).await;
    f.put_block_blob(AUDIT, "two.json", log_lines("f2", 0, 10))
        .await
        .unwrap();
    // fabrikam's `audit` source reaches its account at an address where nothing listens, as
    // when its private endpoint is gone; its `second` source (other blobs) still connects
    // a port nothing listens on (free a moment ago)
    let port = ferry_sim::sandbox::free_port().expect("a free port");
    let mut cut = SourceSpec::records("audit");
    cut.extra = format!("  prefix = \"one\"\n  resolve = \"127.0.0.1:{port}\"\n");
    let mut second = SourceSpec::records("second");
    second.extra = "  prefix = \"two\"\n".into();
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![cut, second]),
        ],
        "",
    );

    // one pass: contoso and fabrikam's second source ship; fabrikam is `unreachable` (not
    // `throttled`, and not `active` because its other source is), with what to check
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(summary_row(&out, "contoso").contains("active"), "{text}");
    assert!(
        summary_row(&out, "fabrikam").contains("unreachable"),
        "{text}"
    );
    assert!(
        text.contains("no connection to the customer's storage endpoint"),
        "{text}"
    );
    let counts = record_counts(&w.destination().await);
    expect_each_once(&counts, "c1", 10);
    expect_each_once(&counts, "f2", 10);
    assert!(!counts.keys().any(|k| k.starts_with("f1-")), "{counts:?}");

    // `ferry check` names the same cause
    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap(), "--tenant", "fabrikam"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("[unreachable] no connection to"), "{text}");

    // the daemon reports it, then resumes by itself once the endpoint answers again
    let mut daemon = w.spawn_daemon(&cfg, "daemon.log");
    w.expect_in_log("daemon.log", "\"to\":\"unreachable\"", 30)
        .await;
    // and stays so while its healthy source goes on polling (every second) beside it
    let last_change = || {
        w.log("daemon.log")
            .lines()
            .rfind(|l| l.contains("\"tenant\":\"fabrikam\"") && l.contains("\"to\":"))
            .map(str::to_string)
            .unwrap_or_default()
    };
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(
        last_change().contains("\"to\":\"unreachable\""),
        "{}",
        w.log("daemon.log")
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("listen on the cut port again");
    let proxy = tokio::spawn(forward(listener, w.sandbox.https_addr()));
    assert!(
        eventually(30, || async {
            record_counts(&w.destination().await)
                .keys()
                .any(|k| k.starts_with("f1-"))
        })
        .await,
        "fabrikam did not resume:\n{}",
        w.log("daemon.log")
    );
    assert!(
        eventually(10, || async { last_change().contains("\"to\":\"active\"") }).await,
        "{}",
        w.log("daemon.log")
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    proxy.abort();
    let counts = record_counts(&w.destination().await);
    for tag in ["c1", "f1", "f2"] {
        expect_each_once(&counts, tag, 10);
    }
}

/// SIGTERM gives objects in flight `shutdown_grace` to finish; once it is over Ferry drops them
/// where they are, requests included, and exits, instead of waiting on a destination that does
/// not answer. Nothing of the abandoned object is committed; the next run ships it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drops_uploads_still_in_flight_when_the_grace_is_over() {
    let w = world(1).await;
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    w.seeder("contoso")
        .await
        .put_block_blob(AUDIT, "big.bin", body.clone())
        .await
        .unwrap();
    // the destination holds the object's upload for a minute before it answers
    let admin = w.sandbox.admin();
    admin
        .add_fault(&FaultSpec {
            host: Some("providerlogs.blob.sandbox.test".into()),
            method: Some("PUT".into()),
            latency_ms: Some(60_000),
            count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    // the test configuration's `shutdown_grace` is 5 s
    let cfg = w.config(&[("contoso", vec![SourceSpec::copy("exports", AUDIT)])], "");
    let mut daemon = w.spawn_daemon(&cfg, "daemon.log");
    // a count-limited fault is gone from the list once a request met it: the upload is held
    assert!(
        eventually(30, || async {
            admin.get("/faults").await.unwrap()["faults"]
                .as_array()
                .is_some_and(|f| f.is_empty())
        })
        .await,
        "the upload never started:\n{}",
        w.log("daemon.log")
    );
    let asked = std::time::Instant::now();
    let status = daemon
        .terminate(std::time::Duration::from_secs(40))
        .await
        .unwrap_or_else(|| panic!("ferry did not stop:\n{}", w.log("daemon.log")));
    let took = asked.elapsed();
    assert!(status.success(), "{status}\n{}", w.log("daemon.log"));
    assert!(
        took < std::time::Duration::from_secs(15),
        "stopped {took:?} after SIGTERM with a 5 s grace:\n{}",
        w.log("daemon.log")
    );
    assert!(w.log("daemon.log").contains("Grace period over"));
    assert!(w.destination().await.is_empty(), "nothing is committed");

    // the next run ships it, once and whole
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    assert_eq!(dest.len(), 1, "{:?}", dest.keys());
    assert!(dest.values().next().unwrap().1 == body);
}

/// Per-tenant limits hold against the customer's account and delay only that tenant: contoso
/// (4 requests/s) sends no more requests to its account than the limit allows over the time it
/// took, fabrikam (32 KiB/s) reads no faster than its limit, and tailspin (no limit) has shipped
/// everything while both are still at it. Bounds only: a slow machine cannot make them fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_limits_hold_against_the_customers_account_and_delay_only_that_tenant() {
    const REQUESTS_PER_SEC: f64 = 4.0;
    const BYTES_PER_SEC: f64 = 32.0 * 1024.0;
    let w = world(3).await;
    // contoso and tailspin: 40 small blobs (about 41 requests: 10 s at 4/s);
    // fabrikam and tailspin: 12 blobs of 120 lines (about 360 KB: 10 s at 32 KiB/s)
    let mut expected = std::collections::BTreeMap::new();
    for (t, small, large) in [
        ("contoso", 40, 0),
        ("fabrikam", 0, 12),
        ("tailspin", 40, 12),
    ] {
        let s = w.seeder(t).await;
        // (prefix, blobs, lines each): small ones cost requests, large ones bytes
        for (kind, blobs, lines) in [("s", small, 2), ("l", large, 120)] {
            for i in 0..blobs {
                let body = log_lines(&format!("{t}{kind}{i}"), 0, lines);
                s.put_block_blob(
                    "insights-logs-auditevent",
                    &format!("{kind}/{i:02}/PT1H.json"),
                    body,
                )
                .await
                .unwrap();
            }
        }
        expected.insert(t, (small * 2 + large * 120) as u64);
    }
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![SourceSpec::records("audit")]),
            ("tailspin", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replacen(
            "name = \"contoso\"\n",
            "name = \"contoso\"\nmax_requests_per_sec = 4\n",
            1,
        )
        .replacen(
            "name = \"fabrikam\"\n",
            "name = \"fabrikam\"\nmax_bytes_per_sec = \"32KiB\"\n",
            1,
        );
    assert!(text.contains("max_requests_per_sec") && text.contains("max_bytes_per_sec"));
    std::fs::write(&cfg, text).unwrap();

    let admin = w.sandbox.admin();
    let before = admin.requests().await.unwrap();
    let started = std::time::Instant::now();
    let d = Daemon::start(&cfg);
    let records = |s: &serde_json::Value, t: &str| {
        s["tenants"][t]["sources"]["audit"]["records_shipped"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut done: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
    let mut at_tailspin_done = None;
    let mut contoso_requests = None;
    let mut fabrikam_bytes = None;
    while done.len() < 3 && started.elapsed() < std::time::Duration::from_secs(120) {
        let s = d.status().await;
        let now = started.elapsed().as_secs_f64();
        for t in ["contoso", "fabrikam", "tailspin"] {
            if done.contains_key(t) || records(&s, t) < expected[t] {
                continue;
            }
            done.insert(t, now);
            match t {
                "tailspin" => {
                    at_tailspin_done = Some((records(&s, "contoso"), records(&s, "fabrikam")))
                }
                "contoso" => {
                    let v = admin.requests().await.unwrap();
                    let n = w.blob_requests(&v, "contoso") - w.blob_requests(&before, "contoso");
                    contoso_requests = Some((n, started.elapsed().as_secs_f64()));
                }
                _ => {
                    let read = s["tenants"]["fabrikam"]["sources"]["audit"]["bytes_read"]
                        .as_u64()
                        .unwrap_or(0);
                    fabrikam_bytes = Some((read, now));
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let m = d.metrics().await;
    let output = d.stop();
    assert_eq!(
        done.len(),
        3,
        "not every tenant finished in 120 s: {done:?}\n{output}"
    );

    // contoso: every request counted by the account's gateway fits the token bucket (one
    // second of burst, then the rate) over the time measured, which includes Ferry's start
    let (n, secs) = contoso_requests.unwrap();
    assert!(n >= 41, "contoso read its 40 blobs with {n} requests");
    let allowed = REQUESTS_PER_SEC * (secs + 1.0) + 1.0;
    assert!(
        n as f64 <= allowed,
        "contoso sent {n} requests in {secs:.1} s; its limit allows {allowed:.0}"
    );
    // fabrikam: the bytes it read fit its byte bucket the same way
    let (read, secs) = fabrikam_bytes.unwrap();
    assert!(read >= 300_000, "fabrikam read {read} bytes");
    let allowed = BYTES_PER_SEC * (secs + 1.0);
    assert!(
        read as f64 <= allowed,
        "fabrikam read {read} bytes in {secs:.1} s; its limit allows {allowed:.0}"
    );
    // tailspin, unlimited, was done while both limited tenants still had records to ship
    let (c, f) = at_tailspin_done.unwrap();
    assert!(
        c < expected["contoso"] && f < expected["fabrikam"],
        "tailspin finished at {:.1} s, after contoso ({c} records) or fabrikam ({f}): {done:?}",
        done["tailspin"]
    );
    // and the waiting shows where it happened
    for (t, waited) in [("contoso", true), ("fabrikam", true), ("tailspin", false)] {
        let w = sample(
            &m,
            "ferry_rate_limit_wait_seconds_total",
            &format!("tenant=\"{t}\""),
        )
        .unwrap_or(0.0);
        assert_eq!(w > 0.0, waited, "{t} waited {w} s on its limits:\n{m}");
    }
}

/// `destination.max_bytes_per_sec` holds for what is written into provider storage, and the
/// wait shows in `ferry_destination_rate_limit_wait_seconds_total`. A bound only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destination_byte_limit_holds_for_what_is_written() {
    const BYTES_PER_SEC: f64 = 32.0 * 1024.0;
    let w = world(1).await;
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let s = w.seeder("contoso").await;
    // 10 objects of 30 KiB that do not compress (copy mode writes them as they are): 10 s
    let mut total = 0u64;
    for i in 0..10u8 {
        let body: Vec<u8> = (0..30 * 1024u32)
            .map(|j| (j.wrapping_mul(2_654_435_761).rotate_left(u32::from(i)) >> 13) as u8)
            .collect();
        total += body.len() as u64;
        s.put_block_blob("exports", &format!("part-{i:02}.bin"), body)
            .await
            .unwrap();
    }
    let cfg = w.config(
        &[("contoso", vec![SourceSpec::copy("exports", "exports")])],
        "",
    );
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[destination]\n",
        "[destination]\nmax_bytes_per_sec = \"32KiB\"\n",
        1,
    );
    assert!(text.contains("max_bytes_per_sec"), "{text}");
    std::fs::write(&cfg, text).unwrap();

    let started = std::time::Instant::now();
    let d = Daemon::start(&cfg);
    let written = |s: &serde_json::Value| {
        s["tenants"]["contoso"]["sources"]["exports"]["bytes_shipped"]
            .as_u64()
            .unwrap_or(0)
    };
    let mut finished = None;
    while started.elapsed() < std::time::Duration::from_secs(120) {
        let s = d.status().await;
        if written(&s) >= total {
            finished = Some((written(&s), started.elapsed().as_secs_f64()));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let m = d.metrics().await;
    let output = d.stop();
    let (bytes, secs) = finished.unwrap_or_else(|| panic!("not shipped in 120 s:\n{output}"));
    let allowed = BYTES_PER_SEC * (secs + 1.0);
    assert!(
        bytes as f64 <= allowed,
        "{bytes} bytes written in {secs:.1} s; the destination's limit allows {allowed:.0}"
    );
    let waited = sample(&m, "ferry_destination_rate_limit_wait_seconds_total", "").unwrap_or(0.0);
    assert!(waited > 0.0, "no wait on the destination's limit:\n{m}");
}
