//! Decrypting sources end to end (sandbox + `ferry` binary): hand-built CSE v2 and v2.1 blobs
//! with each SDK's nonces ship decrypted byte for byte; every kind of bad ciphertext is
//! quarantined with nothing of it committed, and is not read again until its ETag changes.

mod cmk_support;
mod common;
mod ops_common;

use cmk_support::{bytes, key_url, quarantined, seal, shipped_from, upload, Nonces};
use common::{output_text, summary_row, world, SourceSpec};
use ops_common::{sample, Daemon};

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_blobs_ship_decrypted_and_bad_ones_are_quarantined() {
    let w = world(1).await;
    let c = "insights-logs-auditevent";

    // good blobs: name -> plaintext
    let mut good: Vec<(&str, Vec<u8>)> = Vec::new();
    let cases: [(&str, usize, &str, usize, Nonces, usize); 8] = [
        ("py-empty", 0, "2.0", 4 * MIB, Nonces::Python, 1),
        ("py-one-byte", 1, "2.0", 4 * MIB, Nonces::Python, 1),
        ("py-one-region", 4 * MIB, "2.0", 4 * MIB, Nonces::Python, 1),
        ("py-regions", 9 * MIB + 3, "2.0", 4 * MIB, Nonces::Python, 1),
        ("py-staged", 5 * MIB + 17, "2.0", 4 * MIB, Nonces::Python, 4),
        ("java-v21-small", 10_000, "2.1", 1000, Nonces::Java, 1),
        ("java-v21-16b", 100, "2.1", 16, Nonces::Java, 3),
        ("dotnet-v2", 4 * MIB + 5, "2.0", 4 * MIB, Nonces::DotNet, 2),
    ];
    for (i, (name, len, proto, dl, nonces, blocks)) in cases.iter().enumerate() {
        let plain = bytes(*len, i as u8);
        let s = seal(&w, "contoso", &plain, proto, *dl, *nonces).await;
        upload(
            &w,
            "contoso",
            c,
            name,
            &s.body,
            Some(&s.encryption_data),
            &[],
            *blocks,
        )
        .await;
        good.push((name, plain));
    }

    // bad blobs
    let plain = bytes(3000, 7);
    let base = seal(&w, "contoso", &plain, "2.1", 1000, Nonces::Python).await;
    let region = 1000 + 28;
    let mut flipped = base.body.clone();
    flipped[region + 40] ^= 0x01;
    upload(
        &w,
        "contoso",
        c,
        "bad-flipped",
        &flipped,
        Some(&base.encryption_data),
        &[],
        1,
    )
    .await;
    let mut swapped = base.body[region..2 * region].to_vec();
    swapped.extend_from_slice(&base.body[..region]);
    swapped.extend_from_slice(&base.body[2 * region..]);
    upload(
        &w,
        "contoso",
        c,
        "bad-swapped",
        &swapped,
        Some(&base.encryption_data),
        &[],
        1,
    )
    .await;
    let mut missing = base.body[..region].to_vec();
    missing.extend_from_slice(&base.body[2 * region..]);
    upload(
        &w,
        "contoso",
        c,
        "bad-missing-region",
        &missing,
        Some(&base.encryption_data),
        &[],
        1,
    )
    .await;
    let partial = &base.body[..2 * region + 20];
    upload(
        &w,
        "contoso",
        c,
        "bad-partial",
        partial,
        Some(&base.encryption_data),
        &[],
        1,
    )
    .await;
    let last_tag = {
        let mut b = base.body.clone();
        let n = b.len();
        b[n - 1] ^= 0x80;
        b
    };
    upload(
        &w,
        "contoso",
        c,
        "bad-last-tag",
        &last_tag,
        Some(&base.encryption_data),
        &[],
        1,
    )
    .await;
    let v20 = seal(&w, "contoso", &plain, "2.1", 4 * MIB, Nonces::Python).await;
    let relabelled_v20 = v20
        .encryption_data
        .replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"2.0\"");
    upload(
        &w,
        "contoso",
        c,
        "bad-relabelled",
        &v20.body,
        Some(&relabelled_v20),
        &[],
        1,
    )
    .await;
    upload(
        &w,
        "contoso",
        c,
        "bad-malformed",
        &base.body,
        Some("{\"WrappedContentKey\":"),
        &[],
        1,
    )
    .await;
    let foreign = base.encryption_data.replace(
        "contoso-kv.vault.sandbox.test/keys/ferry-cmk",
        "evil-kv.vault.sandbox.test/keys/ferry-cmk",
    );
    upload(
        &w,
        "contoso",
        c,
        "bad-foreign-key",
        &base.body,
        Some(&foreign),
        &[],
        1,
    )
    .await;
    upload(
        &w,
        "contoso",
        c,
        "bad-plaintext",
        b"{\"not\":\"encrypted\"}\n",
        None,
        &[],
        1,
    )
    .await;
    upload(
        &w,
        "contoso",
        c,
        "bad-length",
        &base.body,
        Some(&base.encryption_data),
        &[("ferry_plaintext_length", "2999")],
        1,
    )
    .await;
    let bad = [
        "bad-flipped",
        "bad-swapped",
        "bad-missing-region",
        "bad-partial",
        "bad-last-tag",
        "bad-relabelled",
        "bad-malformed",
        "bad-foreign-key",
        "bad-plaintext",
        "bad-length",
    ];

    let mut src = SourceSpec::copy("enc", c);
    src.extra = format!(
        "  decrypt = {{ key = \"{}\", content_key_ttl = \"5m\" }}\n",
        key_url("contoso")
    );
    let cfg = w.config(&[("contoso", vec![src])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);

    let dest = w.destination().await;
    for (name, plain) in &good {
        let shipped = shipped_from(&dest, name);
        assert_eq!(shipped.len(), 1, "{name} not shipped once\n{text}");
        assert!(
            shipped[0].1 == *plain,
            "{name}: plaintext differs ({} vs {} bytes)",
            shipped[0].1.len(),
            plain.len()
        );
    }
    for name in bad {
        assert!(
            shipped_from(&dest, name).is_empty(),
            "{name} was shipped\n{text}"
        );
    }
    let rows = quarantined(&w, "contoso", "enc");
    let names: Vec<&str> = rows.iter().map(|(o, _)| o.as_str()).collect();
    for name in bad {
        assert!(
            names.contains(&name),
            "{name} not quarantined: {rows:?}\n{text}"
        );
    }
    assert_eq!(rows.len(), bad.len(), "{rows:?}");
    for (o, reason) in &rows {
        println!("quarantined {o}: {reason}");
    }
    let log_lines = text.matches("Blob quarantined").count();
    assert_eq!(
        log_lines,
        bad.len(),
        "one log line per quarantined blob\n{text}"
    );

    // not retried until the ETag changes; and nothing shipped is read again: an encrypted
    // blob's checkpoint counts plaintext bytes, fewer than the listed (ciphertext) length, and
    // once counted so, a second run makes no request but its one listing
    let (again, requests) = w.run_once_counting(&cfg, "contoso").await;
    let again_text = output_text(&again);
    assert!(again.status.success(), "{again_text}");
    assert_eq!(
        again_text.matches("Blob quarantined").count(),
        0,
        "{again_text}"
    );
    assert_eq!(
        requests,
        1,
        "a second run over shipped and quarantined blobs should list once and read nothing\n{again_text}"
    );
    assert!(
        summary_row(&again, "contoso").contains(" 0 objects"),
        "{again_text}"
    );
    // a new version of a quarantined blob is read again (and ships when good)
    let fixed = seal(&w, "contoso", &plain, "2.1", 1000, Nonces::Java).await;
    upload(
        &w,
        "contoso",
        c,
        "bad-flipped",
        &fixed.body,
        Some(&fixed.encryption_data),
        &[],
        1,
    )
    .await;
    let third = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let dest = w.destination().await;
    let shipped = shipped_from(&dest, "bad-flipped");
    assert_eq!(shipped.len(), 1, "{}", output_text(&third));
    assert!(shipped[0].1 == plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_region_late_in_a_records_blob_commits_nothing_of_it() {
    let w = world(1).await;
    let c = "insights-logs-auditevent";
    let lines = common::log_lines("late", 0, 400);
    let good = seal(&w, "contoso", lines.as_bytes(), "2.1", 512, Nonces::Python).await;
    upload(
        &w,
        "contoso",
        c,
        "records-good.json",
        &good.body,
        Some(&good.encryption_data),
        &[],
        1,
    )
    .await;
    let bad = seal(&w, "contoso", lines.as_bytes(), "2.1", 512, Nonces::Python).await;
    let mut body = bad.body.clone();
    let n = body.len();
    body[n - 3] ^= 0x10;
    upload(
        &w,
        "contoso",
        c,
        "records-bad.json",
        &body,
        Some(&bad.encryption_data),
        &[],
        1,
    )
    .await;

    let mut src = SourceSpec::records("rec");
    src.extra = format!(
        "  batch_max_bytes = \"4KiB\"\n  max_record_size = \"1KiB\"\n  decrypt = {{ key = \"{}\" }}\n",
        key_url("contoso")
    );
    let cfg = w.config(&[("contoso", vec![src])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    let dest = w.destination().await;
    let from_good = shipped_from(&dest, "records-good.json");
    assert!(
        from_good.len() > 5,
        "several batches expected: {}\n{text}",
        from_good.len()
    );
    let total: usize = from_good
        .iter()
        .map(|(n, b)| common::decode_records(n, b).len())
        .sum();
    assert_eq!(total, 400, "{text}");
    assert!(shipped_from(&dest, "records-bad.json").is_empty(), "{text}");
    assert_eq!(quarantined(&w, "contoso", "rec").len(), 1, "{text}");

    // shipped in records mode, the good blob's checkpoint counts plaintext bytes (400 lines),
    // fewer than its listed ciphertext length: a second run lists once and reads nothing (it
    // read and decrypted the blob again on every poll before)
    let (again, requests) = w.run_once_counting(&cfg, "contoso").await;
    assert_eq!(requests, 1, "{}", output_text(&again));

    // the daemon counts a quarantine where the operator guide's alert looks
    // (`ferry_blobs_quarantined_total`, `ferry_errors_total{class="quarantined"}`) and shows it
    // as the source's last error, naming the blob
    let mut again = body.clone();
    again[n - 40] ^= 0x01;
    upload(
        &w,
        "contoso",
        c,
        "records-bad-2.json",
        &again,
        Some(&bad.encryption_data),
        &[],
        1,
    )
    .await;
    let d = Daemon::start(&cfg);
    let labels = r#"tenant="contoso",source="rec""#;
    d.wait_for(60, "the second bad blob counted as quarantined", || async {
        sample(&d.metrics().await, "ferry_blobs_quarantined_total", labels) == Some(1.0)
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        sample(
            &m,
            "ferry_errors_total",
            r#"tenant="contoso",source="rec",class="quarantined""#
        ),
        Some(1.0),
        "{m}"
    );
    let status = d.status().await;
    let last = &status["tenants"]["contoso"]["sources"]["rec"]["last_error"];
    assert_eq!(last["class"], "quarantined", "{status}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("records-bad-2.json")),
        "{status}"
    );
    let out = d.stop();
    assert_eq!(
        out.matches("Blob quarantined").count(),
        1,
        "one log line for the one new bad blob\n{out}"
    );
    assert_eq!(quarantined(&w, "contoso", "rec").len(), 2);
}

/// A customer's Key Vault that Ferry cannot connect to (its private endpoint removed: here the
/// source's `decrypt.resolve` points at a port nothing listens on) makes that tenant
/// `unreachable`, not `throttled`, and says which vault to look at; nothing of its encrypted
/// blobs ships, decrypted or not; the other tenant ships; `ferry check` names the same cause and
/// lists the key's later checks as not attempted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_key_vault_is_reported_as_such_and_nothing_of_that_tenant_ships() {
    let w = world(2).await;
    let c = "insights-logs-auditevent";
    let mut plains = Vec::new();
    for (i, t) in ["contoso", "fabrikam"].into_iter().enumerate() {
        let plain = bytes(5_000 + i, i as u8);
        let s = seal(&w, t, &plain, "2.0", 4 * MIB, Nonces::Python).await;
        let name = format!("{t}-sealed");
        upload(&w, t, c, &name, &s.body, Some(&s.encryption_data), &[], 1).await;
        plains.push((name, plain));
    }
    let port = ferry_sim::sandbox::free_port().expect("a free port");
    let mut cut = SourceSpec::copy("enc", c);
    cut.extra = format!(
        "  decrypt = {{ key = \"{}\", resolve = \"127.0.0.1:{port}\" }}\n  at_rest = \"customer_key\"\n",
        key_url("contoso")
    );
    let mut fine = SourceSpec::copy("enc", c);
    fine.extra = format!("  decrypt = {{ key = \"{}\" }}\n", key_url("fabrikam"));
    let cfg = w.config(&[("contoso", vec![cut]), ("fabrikam", vec![fine])], "");

    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        summary_row(&out, "contoso").contains("unreachable"),
        "{text}"
    );
    assert!(summary_row(&out, "fabrikam").contains("active"), "{text}");
    assert!(
        text.contains("no connection to the customer's storage endpoint or key vault"),
        "{text}"
    );
    assert!(text.contains("connection failed"), "{text}");
    let dest = w.destination().await;
    assert!(shipped_from(&dest, &plains[0].0).is_empty(), "{text}");
    let shipped = shipped_from(&dest, &plains[1].0);
    assert_eq!(shipped.len(), 1, "{text}");
    assert!(
        shipped[0].1 == plains[1].1,
        "fabrikam's blob ships decrypted"
    );

    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap(), "--tenant", "contoso"]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("[unreachable] no connection to vault"),
        "{text}"
    );
    // every later check of the key is listed as skipped, the wrap of `at_rest` included
    for check in ["key", "unwrap", "wrap"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("- {check} "))
                    && l.contains("not attempted: no answer from the vault")),
            "no skipped {check} row:\n{text}"
        );
    }
}

/// SIGKILL while a decrypted records blob's batches are being committed (each provider write
/// acknowledged late, so the kill lands between commits), then a restart: each record lands
/// exactly once, the blob resuming from its plaintext checkpoint; once the blob is done, a
/// further run lists and reads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_committing_a_decrypted_blob_resumes_exactly_once() {
    let w = world(1).await;
    let c = "insights-logs-auditevent";
    let lines = common::log_lines("kd", 0, 2000);
    let sealed = seal(
        &w,
        "contoso",
        lines.as_bytes(),
        "2.1",
        64 * 1024,
        Nonces::Python,
    )
    .await;
    upload(
        &w,
        "contoso",
        c,
        "big.json",
        &sealed.body,
        Some(&sealed.encryption_data),
        &[],
        1,
    )
    .await;
    w.delay_provider_writes(250).await;
    let mut src = SourceSpec::records("rec");
    src.extra = format!(
        "  batch_max_bytes = \"16KiB\"\n  max_record_size = \"4KiB\"\n  decrypt = {{ key = \"{}\" }}\n",
        key_url("contoso")
    );
    let cfg = w.config(&[("contoso", vec![src])], "");
    let mut daemon = w.spawn_daemon(&cfg, "killed.log");
    let committing = common::eventually(60, || async {
        shipped_from(&w.destination().await, "big.json").len() >= 3
    })
    .await;
    daemon.kill().expect("SIGKILL ferry");
    let _ = daemon.wait();
    assert!(committing, "no batch committed:\n{}", w.log("killed.log"));
    let before_restart = shipped_from(&w.destination().await, "big.json").len();

    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let dest = w.destination().await;
    let objects = shipped_from(&dest, "big.json").len();
    assert!(
        objects > before_restart,
        "the restart should have committed the rest ({before_restart} before, {objects} after)"
    );
    let counts = common::record_counts(&dest);
    common::expect_each_once(&counts, "kd", 2000);
    assert_eq!(counts.values().sum::<usize>(), 2000, "extra records");
    let cp = w.checkpoint_of("contoso", "rec", "big.json");
    assert_eq!(
        (cp.offset, cp.records_shipped),
        (lines.len() as u64, 2000),
        "{cp:?}"
    );

    let (again, requests) = w.run_once_counting(&cfg, "contoso").await;
    assert_eq!(requests, 1, "{}", output_text(&again));
}
