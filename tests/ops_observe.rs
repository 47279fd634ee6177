//! Operating Ferry, end to end against the sandbox: a `ferry run` daemon observed only through
//! its status server (`/metrics`, `/status`, `/healthz`, `/readyz`) and `ferry status`, while a
//! customer's account is throttled and then a customer removes Ferry's storage role. Ends with
//! the log-secrets scan over everything the run printed.

mod common;
mod ops_common;

use common::*;
use ops_common::*;
use serde_json::json;

const BLOB: &str = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=10/m=00/PT1H.json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_status_follow_shipping_throttling_and_revocation() {
    let w = world(2).await;
    let contoso = w.seeder("contoso").await;
    contoso
        .put_block_blob("insights-logs-auditevent", BLOB, log_lines("c", 0, 100))
        .await
        .unwrap();
    let fabrikam = w.seeder("fabrikam").await;
    fabrikam
        .put_block_blob("insights-logs-auditevent", BLOB, log_lines("f", 0, 40))
        .await
        .unwrap();
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    let d = Daemon::start(&cfg);

    // shipping
    d.wait_for(60, "both tenants active with objects shipped", || async {
        let s = d.status().await;
        ["contoso", "fabrikam"].iter().all(|t| {
            state_of(&s, t).as_deref() == Some("active") && objects_of(&s, t, "audit") >= 1
        })
    })
    .await;
    assert_no_transparent_huge_pages(d.pid());
    let m = d.metrics().await;
    let c = CONTOSO_AUDIT;
    assert_eq!(
        sample(&m, "ferry_records_shipped_total", c),
        Some(100.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "ferry_records_shipped_total",
            r#"tenant="fabrikam",source="audit""#
        ),
        Some(40.0),
        "{m}"
    );
    assert!(
        sample(&m, "ferry_objects_shipped_total", c).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
    assert!(
        sample(&m, "ferry_read_bytes_total", c).unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert!(
        sample(&m, "ferry_shipped_bytes_total", c).unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert_eq!(sample(&m, "ferry_lag_seconds", c), Some(0.0), "{m}");
    assert!(
        sample(&m, "ferry_checkpoint_age_seconds", c).is_some(),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="contoso",state="active""#
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="contoso",state="access_denied""#
        ),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(&m, "ferry_token_requests_total", "").unwrap_or(0.0) >= 3.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "ferry_token_failures_total", ""),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(&m, "ferry_tenant_queue_depth", r#"tenant="contoso""#).is_some(),
        "{m}"
    );
    assert!(
        !m.contains("PT1H.json"),
        "blob names must never be labels:\n{m}"
    );
    assert_eq!(d.get("/healthz").await.0, 200);
    let out = w.ferry(&["status", "--url", &d.base, "--healthz"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let (code, body) = d.get("/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("destination_reachable"), "{body}");

    // ferry status renders the same
    let out = w.ferry(&["status", "--url", &d.base]);
    assert!(out.status.success(), "{}", output_text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("contoso") && table.contains("active"),
        "{table}"
    );
    let out = w.ferry(&["status", "--url", &d.base, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(state_of(&j, "fabrikam").as_deref(), Some("active"));

    // throttling: every request to contoso's account answers 503 with Retry-After
    let fault = w
        .sandbox
        .admin_json(
            reqwest::Method::POST,
            "/admin/faults",
            Some(&json!({"host": "contosologs.blob.sandbox.test", "status": 503, "error_code": "ServerBusy", "retry_after_secs": 1})),
        )
        .await
        .expect("add fault");
    let fault_id = fault["id"].as_str().expect("fault id").to_string();
    let f_before = objects_of(&d.status().await, "fabrikam", "audit");
    fabrikam
        .put_block_blob(
            "insights-logs-auditevent",
            "resourceId=/SECOND/PT1H.json",
            log_lines("f2", 0, 10),
        )
        .await
        .unwrap();
    d.wait_for(90, "contoso throttled with retries counted", || async {
        let m = d.metrics().await;
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="contoso",state="throttled""#,
        ) == Some(1.0)
            && sample(&m, "ferry_retries_total", c).unwrap_or(0.0) >= 1.0
    })
    .await;
    let m = d.metrics().await;
    assert!(
        sample(&m, "ferry_retry_wait_seconds_total", c).unwrap_or(0.0) >= 1.0,
        "Retry-After honoured:\n{m}"
    );
    // what is written meanwhile cannot be seen: the lag grows from the last poll that caught up
    let contoso_lag = || async { sample(&d.metrics().await, "ferry_lag_seconds", c) };
    d.wait_for(
        30,
        "contoso's lag growing while it cannot be listed",
        || async { contoso_lag().await.unwrap_or(0.0) >= 3.0 },
    )
    .await;
    assert!(
        sample(
            &m,
            "ferry_errors_total",
            r#"tenant="contoso",source="audit",class="transient""#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    d.wait_for(
        30,
        "fabrikam shipping while contoso is throttled",
        || async {
            let s = d.status().await;
            state_of(&s, "fabrikam").as_deref() == Some("active")
                && objects_of(&s, "fabrikam", "audit") > f_before
        },
    )
    .await;
    let s = d.status().await;
    assert_eq!(
        s["tenants"]["contoso"]["sources"]["audit"]["last_error"]["class"], "transient",
        "{s}"
    );
    // the tenant says why it is throttled: which source, and the answer that keeps failing
    let reason = s["tenants"]["contoso"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("source audit: ") && reason.contains("ServerBusy"),
        "{s}"
    );
    w.sandbox
        .admin_json(
            reqwest::Method::DELETE,
            &format!("/admin/faults/{fault_id}"),
            None,
        )
        .await
        .expect("remove fault");
    d.wait_for(
        60,
        "contoso active again after the throttling ends",
        || async { state_of(&d.status().await, "contoso").as_deref() == Some("active") },
    )
    .await;
    d.wait_for(30, "contoso's lag back to 0 once it caught up", || async {
        contoso_lag().await == Some(0.0)
    })
    .await;
    // the error stays as history, marked resolved once a poll went through without one
    let s = d.status().await;
    let last = &s["tenants"]["contoso"]["sources"]["audit"]["last_error"];
    assert_eq!(last["class"], "transient", "{s}");
    assert!(
        last["resolved_at"].as_i64() >= last["at"].as_i64() && last["resolved_at"].is_i64(),
        "{s}"
    );

    // revocation: the customer removes the storage role
    let sp = &w.customers["contoso"].service_principal_object_id;
    w.sandbox
        .admin_json(
            reqwest::Method::DELETE,
            "/admin/role-assignments",
            Some(&json!({"account": "contosologs", "container": "insights-logs-auditevent", "object_id": sp, "role": "Storage Blob Data Reader"})),
        )
        .await
        .expect("remove role");
    d.wait_for(60, "contoso access_denied", || async {
        let m = d.metrics().await;
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="contoso",state="access_denied""#,
        ) == Some(1.0)
    })
    .await;
    let m = d.metrics().await;
    assert_eq!(
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="contoso",state="active""#
        ),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "ferry_errors_total",
            r#"tenant="contoso",source="audit",class="access_denied""#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="fabrikam",state="active""#
        ),
        Some(1.0),
        "{m}"
    );
    d.wait_for(30, "contoso's lag growing while it is stopped", || async {
        contoso_lag().await.unwrap_or(0.0) >= 3.0
    })
    .await;
    let s = d.status().await;
    let fix = s["tenants"]["contoso"]["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("Storage Blob Data Reader"), "{s}");
    let reason = s["tenants"]["contoso"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("container insights-logs-auditevent: ")
            && reason.contains("AuthorizationPermissionMismatch"),
        "{s}"
    );
    assert!(s["tenants"]["contoso"]["since"].as_i64().is_some(), "{s}");
    let out = w.ferry(&["status", "--url", &d.base]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("ferry status after the revocation:\n{table}");
    assert!(
        table.contains("access_denied") && table.contains("fix: "),
        "{table}"
    );

    // while it is re-checked, the customer withdraws consent too: the re-check finds the new
    // refusal, and the source's last error says so (not the role that went missing first)
    w.sandbox
        .admin()
        .revoke_consent(
            &w.customers["contoso"].spec.tenant_id,
            &w.provider.app_client_id,
        )
        .await
        .expect("revoke consent");
    d.wait_for(30, "contoso consent_revoked on re-check", || async {
        state_of(&d.status().await, "contoso").as_deref() == Some("consent_revoked")
    })
    .await;
    let s = d.status().await;
    assert_eq!(
        s["tenants"]["contoso"]["sources"]["audit"]["last_error"]["class"], "consent_revoked",
        "{s}"
    );

    let output = d.stop();
    assert!(output.contains("Tenant stopped shipping"), "{output}");
    // lines of a source's work carry the tenant and source spans
    assert!(
        output.lines().any(|l| l.contains("Listing failed")
            && l.contains(r#""name":"tenant""#)
            && l.contains(r#""name":"source""#)
            && l.contains(r#""source":"audit""#)),
        "{output}"
    );
    assert_no_secrets(
        &output,
        &w.provider.app_secret,
        &w.sandbox.state().settings().identity_header,
    );
}

/// After a restart, a caught-up source's last success is its newest checkpoint, not "never".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_success_survives_a_restart() {
    let w = world(1).await;
    w.seeder("contoso")
        .await
        .put_block_blob("insights-logs-auditevent", BLOB, log_lines("c", 0, 10))
        .await
        .unwrap();
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    let d = Daemon::start(&cfg);
    d.wait_for(30, "contoso active after its first poll", || async {
        state_of(&d.status().await, "contoso").as_deref() == Some("active")
    })
    .await;
    let s = d.status().await;
    let source = &s["tenants"]["contoso"]["sources"]["audit"];
    assert_eq!(
        objects_of(&s, "contoso", "audit"),
        0,
        "nothing new to ship: {s}"
    );
    assert!(source["last_success"].as_i64().is_some(), "{s}");
    let _ = d.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_last_line_shows_as_lag_until_the_quiet_blob_ships_it() {
    let w = world(1).await;
    let s = w.seeder("contoso").await;
    s.create_append_blob("insights-logs-auditevent", BLOB)
        .await
        .unwrap();
    let lines = log_lines("p", 0, 2);
    s.append_block(
        "insights-logs-auditevent",
        BLOB,
        lines.trim_end_matches('\n').to_string(),
    )
    .await
    .unwrap();
    let mut audit = SourceSpec::records("audit");
    audit.extra = "  partial_line_wait = \"8s\"\n".into();
    let cfg = w.config(&[("contoso", vec![audit])], "");
    let d = Daemon::start(&cfg);
    let c = CONTOSO_AUDIT;
    d.wait_for(
        30,
        "the complete line shipped, the partial one counted as lag",
        || async {
            let m = d.metrics().await;
            sample(&m, "ferry_records_shipped_total", c) == Some(1.0)
                && sample(&m, "ferry_lag_seconds", c).unwrap_or(0.0) >= 1.0
        },
    )
    .await;
    d.wait_for(
        30,
        "the partial line shipped once the blob was quiet, lag back to 0",
        || async {
            let m = d.metrics().await;
            sample(&m, "ferry_records_shipped_total", c) == Some(2.0)
                && sample(&m, "ferry_lag_seconds", c) == Some(0.0)
        },
    )
    .await;
    let _ = d.stop();
    expect_each_once(&record_counts(&w.destination().await), "p", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_when_no_ferry_is_listening() {
    let addr = format!("127.0.0.1:{}", ferry_sim::sandbox::free_port().unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["status", "--url", &format!("http://{addr}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "no ferry is listening on http://{addr}: is it running?"
        )),
        "{err}"
    );
}

/// Ferry's allocator must not ask for transparent huge pages (mimalloc's `no_thp` feature in
/// Cargo.toml): each first touch of one zeroed a whole 2 MiB page (docs/BENCHMARKS.md, "Runs 13
/// to 15"). Asking is `madvise(MADV_HUGEPAGE)`, which the kernel shows as `hg` in a mapping's
/// `VmFlags` whatever its system-wide THP setting, so this holds on every kernel. (Where that
/// setting is `always`, the kernel hands out huge pages unasked: the operator's choice,
/// `MIMALLOC_ALLOW_THP=0`, in the operator guide.)
fn assert_no_transparent_huge_pages(pid: u32) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .expect("read the daemon's /proc/<pid>/smaps");
    let asked = smaps
        .lines()
        .filter_map(|l| l.strip_prefix("VmFlags:"))
        .filter(|flags| flags.split_whitespace().any(|f| f == "hg"))
        .count();
    assert!(
        smaps.contains("VmFlags:"),
        "no VmFlags in /proc/{pid}/smaps: {smaps}"
    );
    assert_eq!(
        asked, 0,
        "the ferry daemon asked for transparent huge pages on {asked} mapping(s) (VmFlags 'hg'): \
         is mimalloc's `no_thp` feature still on in Cargo.toml?"
    );
}

/// A restart does not reset a stopped tenant's clock: its state's age and its sources' lag go on
/// counting from when the customer removed the role, so `FerryLagHigh` still fires for a tenant
/// stopped across upgrades or a crash loop. Once access is back the kept stop is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_counting_a_stopped_tenants_age_and_lag() {
    let w = world(1).await;
    let contoso = w.seeder("contoso").await;
    contoso
        .put_block_blob("insights-logs-auditevent", BLOB, log_lines("c", 0, 20))
        .await
        .unwrap();
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let c = CONTOSO_AUDIT;
    let age = |m: &str| sample(m, "ferry_tenant_state_age_seconds", r#"tenant="contoso""#);
    let d = Daemon::start(&cfg);
    d.wait_for(60, "contoso active with its records shipped", || async {
        let m = d.metrics().await;
        sample(&m, "ferry_records_shipped_total", c) == Some(20.0)
    })
    .await;

    revoke_audit_role_until_denied(&w, &d).await;
    let since = d.status().await["tenants"]["contoso"]["since"]
        .as_i64()
        .expect("since");
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    drop(d); // SIGKILL

    let d = Daemon::start(&cfg);
    d.wait_for(
        60,
        "contoso access_denied again after the restart",
        || async { state_of(&d.status().await, "contoso").as_deref() == Some("access_denied") },
    )
    .await;
    let s = d.status().await;
    assert_eq!(
        s["tenants"]["contoso"]["since"].as_i64(),
        Some(since),
        "the stop began before the restart:\n{s}"
    );
    let m = d.metrics().await;
    let stopped_for = (now_unix() - since) as f64;
    assert!(stopped_for >= 6.0, "{stopped_for}");
    for (what, v) in [
        ("state age", age(&m)),
        ("lag", sample(&m, "ferry_lag_seconds", c)),
    ] {
        let v = v.unwrap_or_else(|| panic!("no {what} sample:\n{m}"));
        assert!(
            v >= stopped_for - 2.0,
            "{what} {v} s counts from the restart, not from the stop {stopped_for} s ago:\n{m}"
        );
    }

    w.grant(
        "contoso",
        "insights-logs-auditevent",
        "Storage Blob Data Reader",
    )
    .await;
    d.wait_for(60, "contoso active again, caught up", || async {
        let m = d.metrics().await;
        sample(
            &m,
            "ferry_tenant_state",
            r#"tenant="contoso",state="active""#,
        ) == Some(1.0)
            && sample(&m, "ferry_lag_seconds", c) == Some(0.0)
    })
    .await;
    let _ = d.stop();
    use ferry::state::CheckpointStore as _;
    assert_eq!(
        w.state_store()
            .tenant_stop("contoso")
            .expect("read the stop"),
        None,
        "a tenant shipping again keeps no stop"
    );
}

/// One source's refusal stops the tenant while another source's pass is still shipping: that
/// pass was cut short, so the other source is behind, not caught up (it counted as caught up
/// before, and its lag restarted from the stop).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_cut_short_by_the_tenants_stop_is_not_a_catch_up() {
    let w = world(1).await;
    let contoso = w.seeder("contoso").await;
    contoso
        .put_block_blob("insights-logs-auditevent", BLOB, log_lines("c", 0, 20))
        .await
        .unwrap();
    w.grant("contoso", "exports", "Storage Blob Data Reader")
        .await;
    let d = Daemon::start(&w.contoso_audit_and_exports());
    d.wait_for(60, "contoso active, both sources caught up", || async {
        let s = d.status().await;
        let sources = &s["tenants"]["contoso"]["sources"];
        objects_of(&s, "contoso", "audit") >= 1
            && ["audit", "exports"]
                .iter()
                .all(|n| sources[n]["caught_up_at"].is_i64())
    })
    .await;
    // every provider write now takes 8 s to be answered: the export's pass stays in flight
    w.delay_provider_writes(8_000).await;
    let provider_writes = || async {
        let v = w
            .sandbox
            .admin()
            .requests()
            .await
            .expect("request counters");
        v["blob"][&w.provider.tenant_id]["providerlogs"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = provider_writes().await;
    contoso
        .put_block_blob("exports", "big.bin", vec![7u8; 1 << 20])
        .await
        .unwrap();
    d.wait_for(30, "big.bin's upload in flight", || async {
        provider_writes().await > before
    })
    .await;
    revoke_audit_role_until_denied(&w, &d).await;
    let s = d.status().await;
    let exports = &s["tenants"]["contoso"]["sources"]["exports"];
    assert_eq!(exports["objects_shipped"], 0, "{s}");
    assert!(
        exports["behind_since"].as_i64().is_some(),
        "the cut pass left big.bin unshipped: the source is behind\n{s}"
    );
    drop(d);
}

/// Removes contoso's role on the audit container and waits (up to 60 s) for `access_denied`.
async fn revoke_audit_role_until_denied(w: &World, d: &Daemon) {
    w.revoke(
        "contoso",
        "insights-logs-auditevent",
        "Storage Blob Data Reader",
    )
    .await;
    d.wait_for(60, "contoso access_denied", || async {
        state_of(&d.status().await, "contoso").as_deref() == Some("access_denied")
    })
    .await;
}

/// With `destination.watermark_interval` set, each source gets a watermark object beside its
/// data: written at the end of a `--once`, then by the daemon; it names the customer's refusal
/// at once, never moves `complete_before` past the stop, nor past data written while Ferry was
/// down (a new process refused at its first poll knows of no catch-up), and moves on when
/// access returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_say_how_complete_a_source_is_and_why_it_stopped() {
    let w = world(1).await;
    let contoso = w.seeder("contoso").await;
    contoso
        .put_block_blob("insights-logs-auditevent", BLOB, log_lines("c", 0, 20))
        .await
        .unwrap();
    let seeded = now_unix();
    let cfg = with_watermarks(w.config(&[("contoso", vec![SourceSpec::records("audit")])], ""));
    let mark = || watermark_and_objects(&w, MARK);

    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (v, data) = mark().await.expect("a watermark after --once");
    assert_eq!(data, 1, "the watermark is not a data object");
    assert_eq!(v["tenant"], "contoso");
    assert_eq!(
        v["tenant_id"],
        w.customers["contoso"].spec.tenant_id.as_str()
    );
    assert_eq!(v["source"], "audit");
    assert_eq!(v["state"], "active");
    let first = v["complete_before_unix"]
        .as_i64()
        .expect("complete_before_unix");
    assert!(
        first >= seeded && first <= now_unix(),
        "complete_before {first} is not between the seeding {seeded} and now:\n{v}"
    );
    assert!(v["complete_before"].as_str().unwrap().ends_with('Z'), "{v}");

    let d = Daemon::start(&cfg);
    d.wait_for(60, "the daemon's watermark moved on", || async {
        mark()
            .await
            .and_then(|(v, _)| v["complete_before_unix"].as_i64())
            > Some(first)
    })
    .await;

    revoke_audit_role_until_denied(&w, &d).await;
    let since = d.status().await["tenants"]["contoso"]["since"]
        .as_i64()
        .expect("since");
    d.wait_for(30, "the watermark says access_denied", || async {
        mark()
            .await
            .is_some_and(|(v, _)| v["state"] == "access_denied")
    })
    .await;
    let (v, _) = mark().await.unwrap();
    let stopped = v["complete_before_unix"].as_i64().unwrap();
    assert!(
        stopped > first && stopped <= since,
        "complete_before {stopped} must stay at or before the stop {since}:\n{v}"
    );
    assert!(
        v["reason"].as_str().unwrap_or("").contains("403"),
        "the reason names the refusal:\n{v}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let (v, _) = mark().await.unwrap();
    assert_eq!(
        v["complete_before_unix"].as_i64(),
        Some(stopped),
        "stays while stopped: {v}"
    );

    grant_audit_role(&w).await;
    let back = now_unix();
    d.wait_for(
        60,
        "the watermark active again and past the return",
        || async {
            mark().await.is_some_and(|(v, _)| {
                v["state"] == "active" && v["complete_before_unix"].as_i64() >= Some(back - 5)
            })
        },
    )
    .await;
    let (v, _) = mark().await.unwrap();
    let before_kill = v["complete_before_unix"].as_i64().unwrap();

    // Ferry is down while a line is written and the role removed; the new process is refused
    // at its first poll, so it knows of no catch-up: the watermark must not claim the line
    drop(d); // SIGKILL
    let written = now_unix();
    contoso
        .put_block_blob(
            "insights-logs-auditevent",
            &BLOB.replace("h=10", "h=11"),
            log_lines("c", 20, 5),
        )
        .await
        .unwrap();
    w.revoke(
        "contoso",
        "insights-logs-auditevent",
        "Storage Blob Data Reader",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let d = Daemon::start(&cfg);
    d.wait_for(
        60,
        "the watermark says access_denied after the restart",
        || async {
            mark()
                .await
                .is_some_and(|(v, _)| v["state"] == "access_denied")
        },
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let (v, data) = mark().await.unwrap();
    let after = v["complete_before_unix"].as_i64().unwrap();
    assert!(
        after >= before_kill && after <= written,
        "complete_before {after} claims the line written at {written} while Ferry was down:\n{v}"
    );
    assert_eq!(data, 1, "nothing shipped while stopped");

    grant_audit_role(&w).await;
    let back = now_unix();
    d.wait_for(60, "the line shipped, the watermark past it", || async {
        mark().await.is_some_and(|(v, data)| {
            v["state"] == "active"
                && v["complete_before_unix"].as_i64() >= Some(back - 5)
                && data == 2
        })
    })
    .await;
    let _ = d.stop();
}

/// A growing blob's next bytes wait for a batch (`batch_max_age`) after a shipment. The bytes
/// appended while that shipment was still uploading were written after its poll began but
/// before its commit: the watermark must stay before them (it took the commit's time before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_does_not_claim_what_was_appended_while_a_shipment_uploaded() {
    let (w, cfg, contoso) = growing_audit_blob_with_watermarks("40s").await;
    let (container, blob) = ("insights-logs-auditevent", BLOB);
    // every provider write is answered 12 s late (it takes effect at once): the first object
    // is visible in the destination 12 s before Ferry knows it landed and commits its checkpoint
    w.delay_provider_writes(12_000).await;
    let d = Daemon::start(&cfg);
    let c = CONTOSO_AUDIT;
    d.wait_for(
        30,
        "the first object visible, its commit not answered yet",
        || async {
            w.destination()
                .await
                .keys()
                .any(|n| n.ends_with(".jsonl.zst"))
        },
    )
    .await;
    assert_eq!(
        sample(&d.metrics().await, "ferry_records_shipped_total", c).unwrap_or(0.0),
        0.0,
        "the first object's commit must still be in flight"
    );
    contoso
        .append_block(container, blob, log_lines("c", 5, 3))
        .await
        .unwrap();
    // (in whole seconds, rounded down: the append is at or after it)
    let appended = now_unix();
    d.wait_for(60, "the first five records committed", || async {
        sample(&d.metrics().await, "ferry_records_shipped_total", c) == Some(5.0)
    })
    .await;
    // the watermark is rewritten once it moves on by 10 s: give it the time, while the three
    // new records wait for their batch
    tokio::time::sleep(std::time::Duration::from_secs(25)).await;
    let m = d.metrics().await;
    assert_eq!(
        sample(&m, "ferry_records_shipped_total", c),
        Some(5.0),
        "the appended records still wait for their batch"
    );
    let (v, _) = watermark_and_objects(&w, MARK).await.expect("a watermark");
    let at = v["complete_before_unix"].as_i64();
    assert!(
        at.is_some_and(|t| t <= appended),
        "complete_before {at:?} claims the records appended at {appended}:\n{v}"
    );
    let _ = d.stop();
}

/// An append blob whose reads fail while two appends wait: the blob's last-modified time is the
/// second append's, and the first is older. The watermark must stay before the first (it took
/// the last-modified time before, and claimed the first append).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_does_not_claim_the_appends_of_a_blob_it_cannot_read() {
    let (w, cfg, contoso) = growing_audit_blob_with_watermarks("1s").await;
    let (container, blob) = ("insights-logs-auditevent", BLOB);
    let d = started_with_a_watermark(&w, &cfg).await;
    // every read of the blob fails from now on (a listing still works)
    w.sandbox
        .admin()
        .add_fault(&ferry_sim::faults::FaultSpec {
            host: Some("contosologs.blob.sandbox.test".into()),
            method: Some("GET".into()),
            path_prefix: Some(format!("/{container}/resourceId%3D")),
            status: Some(500),
            error_code: Some("InternalError".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    contoso
        .append_block(container, blob, log_lines("c", 5, 2))
        .await
        .unwrap();
    let first_append = now_unix();
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    contoso
        .append_block(container, blob, log_lines("c", 7, 2))
        .await
        .unwrap();
    d.wait_for(60, "the blob's read failing", || async {
        d.status().await["tenants"]["contoso"]["sources"]["audit"]["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("500"))
    })
    .await;
    // two publisher ticks past a failed poll after the second append
    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    claims_nothing_after(&w, &d, first_append, "the records appended at").await;
    let _ = d.stop();
}

/// A block blob rewritten between the listing that named it and its read: the listed version
/// never ships (the read is locked to its ETag), so the poll that met it has not caught up, and
/// the watermark must not pass the time that version was written until a later poll ships what
/// the blob holds then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watermark_waits_for_a_block_blob_rewritten_between_listing_and_read() {
    let (w, cfg, contoso) = growing_audit_blob_with_watermarks("1s").await;
    let container = "insights-logs-auditevent";
    let d = started_with_a_watermark(&w, &cfg).await;
    let c = CONTOSO_AUDIT;
    // every read of the new blob is answered as Azure answers a read locked to an ETag the blob
    // no longer has: it was rewritten after each listing
    let late = "resourceId=/SUBSCRIPTIONS/S/y=2026/m=11/d=27/h=11/m=00/PT1H.json";
    let admin = w.sandbox.admin();
    let refusals = 1_000;
    let fault = admin
        .add_fault(&ferry_sim::faults::FaultSpec {
            host: Some("contosologs.blob.sandbox.test".into()),
            method: Some("GET".into()),
            path_prefix: Some(format!("/{container}/{}", late.replace('=', "%3D"))),
            status: Some(412),
            error_code: Some("ConditionNotMet".into()),
            count: Some(refusals),
            ..Default::default()
        })
        .await
        .unwrap();
    contoso
        .put_block_blob(container, late, log_lines("l", 0, 3))
        .await
        .unwrap();
    // the blob's Last-Modified is at most this
    let written_by = now_unix();
    let refused = || async {
        let v = admin.get("/faults").await.unwrap();
        let left = v["faults"]
            .as_array()
            .and_then(|f| f.iter().find(|r| r["id"] == fault.as_str()))
            .and_then(|r| r["remaining"].as_u64())
            .unwrap_or(0);
        refusals - left
    };
    d.wait_for(60, "three polls meeting the rewritten blob", || async {
        refused().await >= 3
    })
    .await;
    // polls go on every second and the watermark is written every 10 s of progress: a poll
    // that claimed to catch up would have moved it well past the blob by now
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    assert!(refused().await >= 10, "Ferry stopped polling the source");
    claims_nothing_after(&w, &d, written_by, "the block blob (not landed) written by").await;
    // reads work again: the blob ships, and the watermark moves past it
    admin.remove_fault(&fault).await.unwrap();
    d.wait_for(60, "the blob shipped and the watermark past it", || async {
        sample(&d.metrics().await, "ferry_records_shipped_total", c) == Some(8.0)
            && watermark_and_objects(&w, MARK)
                .await
                .and_then(|(v, _)| v["complete_before_unix"].as_i64())
                .is_some_and(|t| t > written_by)
    })
    .await;
    let _ = d.stop();
}

/// A daemon on `cfg` once contoso's `audit` has shipped the 5 records of `BLOB` and published
/// its watermark.
async fn started_with_a_watermark(w: &World, cfg: &std::path::Path) -> Daemon {
    let d = Daemon::start(cfg);
    let c = CONTOSO_AUDIT;
    d.wait_for(60, "the first records shipped and a watermark", || async {
        sample(&d.metrics().await, "ferry_records_shipped_total", c) == Some(5.0)
            && watermark_and_objects(w, MARK).await.is_some()
    })
    .await;
    d
}

/// Asserts that contoso's `audit` watermark claims nothing written after `t` (`what` was written
/// then and has not landed) and that the source still has shipped only its first 5 records.
async fn claims_nothing_after(w: &World, d: &Daemon, t: i64, what: &str) {
    let (v, _) = watermark_and_objects(w, MARK).await.expect("a watermark");
    let at = v["complete_before_unix"].as_i64();
    assert!(
        at.is_some_and(|c| c <= t),
        "complete_before {at:?} claims {what} {t}:\n{v}"
    );
    assert_eq!(
        sample(
            &d.metrics().await,
            "ferry_records_shipped_total",
            CONTOSO_AUDIT
        ),
        Some(5.0)
    );
}

/// Metric labels of contoso's `audit` source.
const CONTOSO_AUDIT: &str = r#"tenant="contoso",source="audit""#;

/// The watermark object of contoso's `audit` source.
const MARK: &str = "tenant=contoso/source=audit/_ferry~watermark.json";

/// A world whose contoso `audit` source (records, `batch_max_age` as given, watermarks every
/// 10 s) reads one append blob, `BLOB`, that holds 5 records: the world, the config, a seeder.
async fn growing_audit_blob_with_watermarks(
    batch_max_age: &str,
) -> (World, std::path::PathBuf, ferry_sim::sandbox::BlobSeeder) {
    let w = world(1).await;
    let mut spec = SourceSpec::records("audit");
    spec.extra = format!("  batch_max_age = \"{batch_max_age}\"\n");
    let cfg = with_watermarks(w.config(&[("contoso", vec![spec])], ""));
    let contoso = w.seeder("contoso").await;
    let container = "insights-logs-auditevent";
    contoso.create_append_blob(container, BLOB).await.unwrap();
    contoso
        .append_block(container, BLOB, log_lines("c", 0, 5))
        .await
        .unwrap();
    (w, cfg, contoso)
}

/// `cfg` with `destination.watermark_interval = "10s"`.
fn with_watermarks(cfg: std::path::PathBuf) -> std::path::PathBuf {
    let toml = std::fs::read_to_string(&cfg).unwrap();
    assert!(toml.contains("[destination]\n"), "{toml}");
    std::fs::write(
        &cfg,
        toml.replace(
            "[destination]\n",
            "[destination]\nwatermark_interval = \"10s\"\n",
        ),
    )
    .unwrap();
    cfg
}

/// The watermark object `name` (parsed), and how many records objects the destination holds.
async fn watermark_and_objects(w: &World, name: &str) -> Option<(serde_json::Value, usize)> {
    let dest = w.destination().await;
    let data = dest.keys().filter(|n| n.ends_with(".jsonl.zst")).count();
    dest.get(name).map(|(_, body)| {
        let v: serde_json::Value = serde_json::from_slice(body).expect("watermark JSON");
        (v, data)
    })
}

async fn grant_audit_role(w: &World) {
    w.grant(
        "contoso",
        "insights-logs-auditevent",
        "Storage Blob Data Reader",
    )
    .await;
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
