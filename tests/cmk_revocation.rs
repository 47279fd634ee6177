//! Revocation mid-run with two tenants shipping encrypted blobs (sandbox + `ferry run` daemon):
//! the customer disables the key, deletes it, removes Ferry's unwrap permission, or withdraws
//! consent. Measured and printed: time from the customer's action to the tenant stopping, and
//! objects/bytes of that tenant committed after the action. Asserted: nothing from a blob
//! decrypted after the refusal is committed, the tenant commits nothing once stopped, the other
//! tenant keeps shipping, and the tenant resumes by itself once access is back.

mod cmk_support;
mod common;

use std::time::{Duration, Instant};

use cmk_support::{bytes, key_url, seal, shipped_from, upload, Nonces, Sealed};
use common::{eventually, world, SourceSpec, World};

const C: &str = "insights-logs-auditevent";

struct Form {
    name: &'static str,
    state: &'static str,
}

async fn act(w: &World, form: &str, restore: bool) {
    let admin = w.sandbox.admin();
    let c = &w.customers["contoso"];
    let all = serde_json::json!({"object_id": c.service_principal_object_id, "keys": ["get", "wrapKey", "unwrapKey"], "secrets": []});
    let r = match (form, restore) {
        ("disable-key", false) => {
            admin
                .post(
                    "/vaults/contoso-kv/keys/ferry-cmk/disable",
                    serde_json::json!({}),
                )
                .await
        }
        ("disable-key", true) => {
            admin
                .post(
                    "/vaults/contoso-kv/keys/ferry-cmk/enable",
                    serde_json::json!({}),
                )
                .await
        }
        ("delete-key", false) => {
            admin
                .delete("/vaults/contoso-kv/keys/ferry-cmk", None)
                .await
        }
        ("delete-key", true) => {
            admin
                .post(
                    "/vaults/contoso-kv/keys/ferry-cmk/recover",
                    serde_json::json!({}),
                )
                .await
        }
        ("remove-unwrap", false) => {
            admin
                .delete("/vaults/contoso-kv/access", Some(all.clone()))
                .await
                .ok();
            admin
                .put(
                    "/vaults/contoso-kv/access",
                    serde_json::json!({"object_id": c.service_principal_object_id, "keys": ["get", "wrapKey"], "secrets": []}),
                )
                .await
        }
        ("remove-unwrap", true) => admin.put("/vaults/contoso-kv/access", all).await,
        ("withdraw-consent", false) => {
            admin
                .delete(
                    &format!(
                        "/tenants/{}/consent/{}",
                        c.spec.tenant_id, w.provider.app_client_id
                    ),
                    None,
                )
                .await
        }
        ("withdraw-consent", true) => {
            // consent again: a new service principal, which the customer grants again
            let v = admin
                .put(
                    &format!(
                        "/tenants/{}/consent/{}",
                        c.spec.tenant_id, w.provider.app_client_id
                    ),
                    serde_json::json!({}),
                )
                .await
                .expect("consent");
            let oid = v["object_id"].as_str().expect("object_id").to_string();
            admin
                .put(
                    "/role-assignments",
                    serde_json::json!({"account": c.spec.account, "container": C, "object_id": oid, "role": "Storage Blob Data Reader"}),
                )
                .await
                .expect("role");
            admin
                .put(
                    "/vaults/contoso-kv/access",
                    serde_json::json!({"object_id": oid, "keys": ["get", "wrapKey", "unwrapKey"], "secrets": []}),
                )
                .await
        }
        _ => panic!("unknown form {form}"),
    };
    r.unwrap_or_else(|e| panic!("{form} (restore {restore}) failed: {e}"));
}

fn interesting(log: &str) -> String {
    log.lines()
        .filter(|l| {
            [
                "Tenant",
                "Access is back",
                "quarantined",
                "failed",
                "Refused",
            ]
            .iter()
            .any(|k| l.contains(k))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn stopped_lines(log: &str, state: &str) -> usize {
    log.lines()
        .filter(|l| {
            l.contains("Tenant stopped shipping")
                && l.contains("contoso")
                && l.contains(&format!("\"to\":\"{state}\""))
        })
        .count()
}

async fn sealed_batch(
    w: &World,
    customer: &str,
    prefix: &str,
    n: usize,
) -> Vec<(String, Vec<u8>, Sealed)> {
    let mut out = Vec::new();
    for i in 0..n {
        let plain = bytes(3000 + i, i as u8);
        let s = seal(w, customer, &plain, "2.1", 1024, Nonces::Python).await;
        out.push((format!("{customer}-{prefix}-{i}"), plain, s));
    }
    out
}

/// Uploads one sealed blob as a block blob with its encryption metadata.
async fn upload_sealed(w: &World, customer: &str, name: &str, sealed: &Sealed) {
    upload(
        w,
        customer,
        C,
        name,
        &sealed.body,
        Some(&sealed.encryption_data),
        &[],
        1,
    )
    .await;
}

fn tenant_totals(
    dest: &std::collections::BTreeMap<
        String,
        (std::collections::BTreeMap<String, String>, Vec<u8>),
    >,
    tenant: &str,
) -> (usize, usize) {
    dest.values()
        .filter(|(m, _)| m.get("ferry_tenant").is_some_and(|t| t == tenant))
        .fold((0, 0), |(n, b), (_, body)| (n + 1, b + body.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_in_each_form_stops_only_that_tenant_at_once() {
    let w = world(2).await;
    let mut sources = Vec::new();
    for t in ["contoso", "fabrikam"] {
        let mut s = SourceSpec::copy("enc", C);
        s.extra = format!("  decrypt = {{ key = \"{}\" }}\n", key_url(t));
        sources.push((t, vec![s]));
    }
    let tenants: Vec<(&str, Vec<SourceSpec>)> = sources;
    // tokens live 20 s so a withdrawn consent shows at the next token refresh (as in Azure,
    // where an issued token stays valid until it expires)
    w.sandbox
        .admin()
        .put("/settings", serde_json::json!({"token_lifetime_secs": 20}))
        .await
        .expect("token lifetime");
    let cfg = w.config(&tenants, "");
    let mut daemon = w.spawn_daemon(&cfg, "daemon.log");

    let forms = [
        Form {
            name: "disable-key",
            state: "key_revoked",
        },
        Form {
            name: "delete-key",
            state: "key_revoked",
        },
        Form {
            name: "remove-unwrap",
            state: "key_revoked",
        },
        Form {
            name: "withdraw-consent",
            state: "consent_revoked",
        },
    ];
    let mut report = Vec::new();
    for form in &forms {
        // shipping before the action
        let pre = sealed_batch(&w, "contoso", &format!("{}-pre", form.name), 3).await;
        for (n, _, s) in &pre {
            upload_sealed(&w, "contoso", n, s).await;
        }
        let shipped = eventually(30, || async {
            let d = w.destination().await;
            pre.iter().all(|(n, _, _)| shipped_from(&d, n).len() == 1)
        })
        .await;
        assert!(
            shipped,
            "{}: pre-action blobs not shipped\n{}",
            form.name,
            w.log("daemon.log")
        );

        let post_c = sealed_batch(&w, "contoso", &format!("{}-post", form.name), 8).await;
        let post_f = sealed_batch(&w, "fabrikam", &format!("{}-post", form.name), 8).await;
        let before_lines = stopped_lines(&w.log("daemon.log"), form.state);

        let t0 = Instant::now();
        act(&w, form.name, false).await;
        // keep feeding both tenants while the refusal lands
        let mut stopped_after = None;
        let mut i = 0;
        let mut uploaded_before_stop = 0;
        while t0.elapsed() < Duration::from_secs(60) {
            // before the stop, at most half of the blobs; the rest once stopped
            let room = stopped_after.is_some() || i < post_c.len() / 2;
            if let (Some(c), Some(f), true) = (post_c.get(i), post_f.get(i), room) {
                if stopped_after.is_none() {
                    uploaded_before_stop += 1;
                }
                upload_sealed(&w, "contoso", &c.0, &c.2).await;
                upload_sealed(&w, "fabrikam", &f.0, &f.2).await;
                i += 1;
            }
            if stopped_after.is_none()
                && stopped_lines(&w.log("daemon.log"), form.state) > before_lines
            {
                stopped_after = Some(t0.elapsed());
            }
            if stopped_after.is_some() && i >= post_c.len() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let stopped_after = stopped_after.unwrap_or_else(|| {
            panic!(
                "{}: contoso never turned {}\n{}",
                form.name,
                form.state,
                w.log("daemon.log")
            )
        });
        // the stop says what happened and, once, what to do about it
        let log = w.log("daemon.log");
        let stop_line = log
            .lines()
            .rfind(|l| l.contains("Tenant stopped shipping") && l.contains("contoso"))
            .expect("a stop line");
        let stop: serde_json::Value = serde_json::from_str(stop_line).expect("a JSON log line");
        let (reason, fix) = (
            stop["reason"].as_str().unwrap_or_default(),
            stop["fix"].as_str().unwrap_or_default(),
        );
        assert!(
            !fix.is_empty() && !reason.contains(fix),
            "{}: the fix is missing or repeated in the reason: {stop_line}",
            form.name
        );
        let at_stop = tenant_totals(&w.destination().await, "contoso");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let dest = w.destination().await;
        let later = tenant_totals(&dest, "contoso");
        let (late_objects, _) = post_c[uploaded_before_stop..]
            .iter()
            .flat_map(|(n, _, _)| shipped_from(&dest, n))
            .fold((0, 0), |(n, b): (usize, usize), (_, body)| {
                (n + 1, b + body.len())
            });
        assert_eq!(
            late_objects, 0,
            "{}: blobs uploaded after the stop were shipped",
            form.name
        );
        let (post_objects, post_bytes) = post_c
            .iter()
            .flat_map(|(n, _, _)| shipped_from(&dest, n))
            .fold((0, 0), |(n, b), (_, body)| (n + 1, b + body.len()));
        println!(
            "{}: contoso turned {} {:.0} ms after the customer's action; committed after the action: {post_objects} objects, {post_bytes} bytes; after the stop: {} objects",
            form.name,
            form.state,
            stopped_after.as_secs_f64() * 1000.0,
            later.0 - at_stop.0
        );
        // a refused key refuses every unwrap at once; a withdrawn consent shows at the next
        // token refresh, and what was shipped before that refusal was decrypted before it
        let expected = if form.state == "key_revoked" {
            0
        } else {
            post_objects
        };
        assert_eq!(
            post_objects,
            expected,
            "{}: plaintext decrypted after the refusal was committed\n{}",
            form.name,
            interesting(&w.log("daemon.log"))
        );
        assert_eq!(
            later, at_stop,
            "{}: contoso committed after it stopped",
            form.name
        );
        // the other tenant is not disturbed
        let fab_ok = eventually(20, || async {
            let d = w.destination().await;
            post_f
                .iter()
                .all(|(n, _, _)| shipped_from(&d, n).len() == 1)
        })
        .await;
        assert!(
            fab_ok,
            "{}: fabrikam stalled\n{}",
            form.name,
            w.log("daemon.log")
        );

        // access back: the tenant resumes by itself and ships what waited
        let t1 = Instant::now();
        act(&w, form.name, true).await;
        let resumed = eventually(40, || async {
            let d = w.destination().await;
            post_c
                .iter()
                .all(|(n, _, _)| shipped_from(&d, n).len() == 1)
        })
        .await;
        assert!(
            resumed,
            "{}: contoso did not resume\n{}",
            form.name,
            w.log("daemon.log")
        );
        let d = w.destination().await;
        for (n, plain, _) in &post_c {
            assert!(shipped_from(&d, n)[0].1 == *plain, "{n}: plaintext differs");
        }
        report.push((form.name, stopped_after, t1.elapsed()));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
    for (form, stop, resume) in report {
        println!(
            "summary {form}: stop {:.0} ms, resume and catch-up {:.1} s (recheck_interval 2 s)",
            stop.as_secs_f64() * 1000.0,
            resume.as_secs_f64()
        );
    }
}

/// Objects kept under the customer's key (`at_rest = "customer_key"`) need wrapKey as well as
/// unwrapKey. With only wrapKey taken away, the tenant stops at its next object and stays
/// stopped: the re-check wraps through the vault too, instead of finding get and unwrap fine and
/// resuming only to stop again. `ferry check` names the missing permission. Access back: it
/// resumes and ships what waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wrap_a_customer_key_tenant_stays_stopped_and_check_says_why() {
    let w = world(1).await;
    let mut s = SourceSpec::copy("enc", C);
    s.extra = format!(
        "  decrypt = {{ key = \"{}\" }}\n  at_rest = \"customer_key\"\n",
        key_url("contoso")
    );
    let cfg = w.config(&[("contoso", vec![s])], "");
    let batch = sealed_batch(&w, "contoso", "wrap", 2).await;
    let put = |i: usize| upload_sealed(&w, "contoso", &batch[i].0, &batch[i].2);
    put(0).await;
    let mut daemon = w.spawn_daemon(&cfg, "daemon.log");
    let first = eventually(30, || async {
        shipped_from(&w.destination().await, &batch[0].0).len() == 1
    })
    .await;
    assert!(first, "not shipped:\n{}", w.log("daemon.log"));

    let admin = w.sandbox.admin();
    let sp = w.customers["contoso"].service_principal_object_id.clone();
    let access = |keys: &[&str]| serde_json::json!({"object_id": sp, "keys": keys, "secrets": []});
    admin
        .delete(
            "/vaults/contoso-kv/access",
            Some(access(&["get", "wrapKey", "unwrapKey"])),
        )
        .await
        .ok();
    admin
        .put("/vaults/contoso-kv/access", access(&["get", "unwrapKey"]))
        .await
        .expect("grant get and unwrap only");
    put(1).await;
    let stopped = eventually(30, || async {
        stopped_lines(&w.log("daemon.log"), "key_revoked") == 1
    })
    .await;
    assert!(stopped, "never stopped:\n{}", w.log("daemon.log"));
    // four re-checks (recheck_interval 2 s): none resumes
    tokio::time::sleep(Duration::from_secs(8)).await;
    let log = w.log("daemon.log");
    assert!(!log.contains("Access is back"), "{}", interesting(&log));
    assert_eq!(
        stopped_lines(&log, "key_revoked"),
        1,
        "{}",
        interesting(&log)
    );
    assert!(shipped_from(&w.destination().await, &batch[1].0).is_empty());

    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap()]);
    let text = common::output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let wrap_row = text
        .lines()
        .find(|l| l.trim_start().starts_with("✗ wrap "))
        .unwrap_or_else(|| panic!("no wrap row:\n{text}"));
    assert!(wrap_row.contains("ForbiddenByPolicy"), "{text}");
    assert!(text.contains("'Wrap Key' key permission"), "{text}");

    admin
        .put(
            "/vaults/contoso-kv/access",
            access(&["get", "wrapKey", "unwrapKey"]),
        )
        .await
        .expect("grant again");
    let resumed = eventually(30, || async {
        shipped_from(&w.destination().await, &batch[1].0).len() == 1
    })
    .await;
    assert!(resumed, "did not resume:\n{}", w.log("daemon.log"));
    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap()]);
    let text = common::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("objects can be kept under this key"),
        "{text}"
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
}
