//! `ferry check` against the sandbox: a healthy tenant, then each way a customer (or the
//! provider) can break it, each named with the state it leads to and a fix that works on Azure.
//! Every run's output is searched for the app secret and for anything shaped like a JWT.

mod common;

use common::*;
use serde_json::{json, Value};

const KEY: &str = "decrypt = { key = \"https://contoso-kv.vault.sandbox.test/keys/ferry-cmk\" }";

fn audit_with_key() -> SourceSpec {
    SourceSpec {
        extra: format!("  {KEY}"),
        ..SourceSpec::records("audit")
    }
}

/// Runs `ferry check --json` (and the human form) and returns (exit code, json, human text).
fn check(w: &World, cfg: &std::path::Path, tenant: Option<&str>) -> (i32, Value, String) {
    let mut args = vec!["check", "-c", cfg.to_str().unwrap()];
    if let Some(t) = tenant {
        args.extend(["--tenant", t]);
    }
    let human = w.ferry(&args);
    args.push("--json");
    let out = w.ferry(&args);
    for o in [&out, &human] {
        let all = output_text(o);
        assert!(
            !all.contains(&w.provider.app_secret),
            "the app secret leaked:\n{all}"
        );
        assert!(!all.contains("eyJ"), "something JWT-shaped leaked:\n{all}");
    }
    assert_eq!(
        out.status.code(),
        human.status.code(),
        "{}",
        output_text(&human)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not json ({e}):\n{}", output_text(&out)));
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&human.stdout).to_string(),
    )
}

/// The rows of one tenant with the given check name.
fn rows<'a>(v: &'a Value, tenant: &str, check: &str) -> Vec<&'a Value> {
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["tenant"] == tenant && r["check"] == check)
        .collect()
}

fn failed(v: &Value) -> Vec<&Value> {
    v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["outcome"] == "fail")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_tenant_passes_every_check() {
    let w = world(1).await;
    let cfg = w.config(&[("contoso", vec![audit_with_key()])], "");
    let (code, v, human) = check(&w, &cfg, None);
    eprintln!("{human}");
    assert_eq!(code, 0, "{human}");
    assert_eq!(v["ok"], true);
    assert!(failed(&v).is_empty(), "{v:#}");
    for c in ["token", "endpoint", "list", "vault_tenant", "key", "unwrap"] {
        let r = rows(&v, "contoso", c);
        assert!(!r.is_empty(), "no {c} row: {v:#}");
        assert!(r.iter().all(|r| r["outcome"] == "pass"), "{c}: {r:#?}");
    }
    // storage and vault tokens, once each
    let tokens = rows(&v, "contoso", "token");
    let targets: Vec<&str> = tokens
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        ["https://storage.azure.com", "https://vault.sandbox.test"]
    );
    // the destination's provider token, once
    assert_eq!(rows(&v, "destination", "token").len(), 1);
    assert_eq!(rows(&v, "destination", "token")[0]["outcome"], "pass");
    let endpoint = &rows(&v, "contoso", "endpoint")[0];
    assert!(
        endpoint["reason"].as_str().unwrap().contains("private"),
        "{endpoint}"
    );
    // the human table: grouped by tenant, marks, summary
    assert!(
        human.contains("contoso (33333333-3333-4333-8333-333333333333): ok"),
        "{human}"
    );
    assert!(human.contains("✓ unwrap"), "{human}");
    assert!(human.contains("0 failed"), "{human}");
    // --tenant limits the run and leaves the destination out
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 0);
    assert!(rows(&v, "destination", "token").is_empty());
    // an unknown tenant is a usage error
    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap(), "--tenant", "contosso"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean \"contoso\""));
}

/// Asserts exactly the rows named fail, with the state, code and fix given.
fn expect_failure(v: &Value, check: &str, state: &str, code: &str, fix_has: &[&str]) {
    let f = failed(v);
    assert!(!f.is_empty(), "nothing failed: {v:#}");
    let row = f
        .iter()
        .find(|r| r["check"] == check)
        .unwrap_or_else(|| panic!("no failed {check} row: {v:#}"));
    assert_eq!(row["state"], state, "{row:#}");
    assert_eq!(row["code"], code, "{row:#}");
    let fix = row["fix"].as_str().unwrap();
    for needle in fix_has {
        assert!(fix.contains(needle), "fix {fix:?} lacks {needle:?}");
    }
    assert_eq!(v["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_tenant_is_named_with_its_fix() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    let c = &w.customers["contoso"];
    let tid = c.spec.tenant_id.clone();
    let app = w.provider.app_client_id.clone();
    let sp = c.service_principal_object_id.clone();
    let cfg = w.config(&[("contoso", vec![audit_with_key()])], "");

    // consent revoked: every token of the tenant fails with 700016, the rest is skipped
    admin.revoke_consent(&tid, &app).await.unwrap();
    let (code, v, human) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1, "{human}");
    expect_failure(
        &v,
        "token",
        "consent_revoked",
        "AADSTS700016",
        &[
            &format!("https://login.sandbox.test/{tid}/adminconsent?client_id={app}"),
            "customer's admin",
        ],
    );
    assert!(rows(&v, "contoso", "list")
        .iter()
        .all(|r| r["outcome"] == "skip"));
    assert!(human.contains("✗ token"), "{human}");
    assert!(
        human.contains("fix: [consent_revoked] consent missing"),
        "{human}"
    );

    // re-consent makes a new service principal: give it its role and key access again
    let sp2 = admin.consent(&tid, &app).await.unwrap();
    let grant = |sp: &str, keys: Vec<&str>| json!({"object_id": sp, "keys": keys, "secrets": []});
    admin
        .put("/role-assignments", json!({"account": c.spec.account, "container": c.spec.container, "object_id": sp2, "role": "Storage Blob Data Reader"}))
        .await
        .unwrap();
    admin
        .put(
            &format!("/vaults/{}/access", c.spec.vault),
            grant(&sp2, vec!["get", "wrapKey", "unwrapKey"]),
        )
        .await
        .unwrap();
    let (code, v, human) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 0, "after re-consent: {human}\n{v:#}");
    let _ = sp;

    // service principal deleted (orphaned): 7000229
    admin.orphan_service_principal(&tid, &app).await.unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "token",
        "consent_revoked",
        "AADSTS7000229",
        &["service principal", "adminconsent"],
    );
    let sp3 = admin.consent(&tid, &app).await.unwrap();
    admin
        .put("/role-assignments", json!({"account": c.spec.account, "container": c.spec.container, "object_id": sp3, "role": "Storage Blob Data Reader"}))
        .await
        .unwrap();
    admin
        .put(
            &format!("/vaults/{}/access", c.spec.vault),
            grant(&sp3, vec!["get", "wrapKey", "unwrapKey"]),
        )
        .await
        .unwrap();

    // role removed: listing fails with AuthorizationPermissionMismatch
    admin
        .delete("/role-assignments", Some(json!({"account": c.spec.account, "container": c.spec.container, "object_id": sp3, "role": "Storage Blob Data Reader"})))
        .await
        .unwrap();
    let (code, v, human) = check(&w, &cfg, Some("contoso"));
    eprintln!("{human}");
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "list",
        "access_denied",
        "AuthorizationPermissionMismatch",
        &[
            "role missing",
            "Storage Blob Data Reader",
            "insights-logs-auditevent",
            &sp3,
        ],
    );
    assert!(
        human.contains("fix: [access_denied] role missing"),
        "{human}"
    );
    admin
        .put("/role-assignments", json!({"account": c.spec.account, "container": c.spec.container, "object_id": sp3, "role": "Storage Blob Data Reader"}))
        .await
        .unwrap();

    // key disabled
    admin
        .post(
            &format!("/vaults/{}/keys/{}/disable", c.spec.vault, c.spec.key),
            json!({}),
        )
        .await
        .unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "key",
        "key_revoked",
        "KeyDisabled",
        &["key disabled", "enable key ferry-cmk", "contoso-kv"],
    );
    assert!(rows(&v, "contoso", "unwrap")
        .iter()
        .all(|r| r["outcome"] == "skip"));
    admin
        .post(
            &format!("/vaults/{}/keys/{}/enable", c.spec.vault, c.spec.key),
            json!({}),
        )
        .await
        .unwrap();

    // unwrap permission removed (get kept)
    admin
        .put(
            &format!("/vaults/{}/access", c.spec.vault),
            grant(&sp3, vec!["get"]),
        )
        .await
        .unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "unwrap",
        "key_revoked",
        "ForbiddenByPolicy",
        &["unwrap permission missing", "Unwrap Key", "contoso-kv"],
    );
    assert_eq!(rows(&v, "contoso", "key")[0]["outcome"], "pass");

    // every key permission removed: the read itself is refused
    admin
        .delete(
            &format!("/vaults/{}/access", c.spec.vault),
            Some(json!({"object_id": sp3})),
        )
        .await
        .unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "key",
        "key_revoked",
        "ForbiddenByPolicy",
        &["key read permission missing"],
    );
    admin
        .put(
            &format!("/vaults/{}/access", c.spec.vault),
            grant(&sp3, vec!["get", "unwrapKey"]),
        )
        .await
        .unwrap();

    // key deleted
    admin
        .delete(
            &format!("/vaults/{}/keys/{}", c.spec.vault, c.spec.key),
            None,
        )
        .await
        .unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(&v, "key", "key_revoked", "KeyNotFound", &["recover"]);
    admin
        .post(
            &format!("/vaults/{}/keys/{}/recover", c.spec.vault, c.spec.key),
            json!({}),
        )
        .await
        .unwrap();
    let (code, v, human) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 0, "after every repair: {human}\n{v:#}");

    // the provider's own credential: disabled app, wrong secret, expired secret
    admin.disable_app(&app).await.unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "token",
        "consent_revoked",
        "AADSTS7000112",
        &["app disabled"],
    );
    admin.enable_app(&app).await.unwrap();

    std::fs::write(w.dir.path().join("app-secret"), "not-the-secret").unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "token",
        "credential_invalid",
        "AADSTS7000215",
        &["client secret invalid", "every tenant"],
    );
    std::fs::write(w.dir.path().join("app-secret"), &w.provider.app_secret).unwrap();

    admin
        .expire_secret(&app, &w.provider.app_secret_id)
        .await
        .unwrap();
    let (code, v, _) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1);
    expect_failure(
        &v,
        "token",
        "credential_invalid",
        "AADSTS7000222",
        &["client secret expired", "new client secret"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_endpoint_required_but_public_sends_nothing() {
    let w = world(1).await;
    // the account is pinned to a public address: ferry must not connect to it at all
    let public = SourceSpec {
        extra: "  resolve = \"20.60.1.1\"\n  require_private_endpoint = true".into(),
        ..SourceSpec::records("audit")
    };
    let allowed = SourceSpec {
        extra: "  require_private_endpoint = true".into(),
        ..SourceSpec::records("private")
    };
    let cfg = w.config(&[("contoso", vec![public, allowed])], "");
    let (code, v, human) = check(&w, &cfg, Some("contoso"));
    assert_eq!(code, 1, "{human}");
    let f = failed(&v);
    assert_eq!(f.len(), 1, "{v:#}");
    let row = f[0];
    assert_eq!(row["check"], "endpoint");
    assert_eq!(row["source"], "audit");
    assert_eq!(row["state"], "misconfigured");
    assert!(
        row["reason"].as_str().unwrap().contains("20.60.1.1"),
        "{row}"
    );
    assert!(
        row["fix"]
            .as_str()
            .unwrap()
            .contains("private endpoint required but public"),
        "{row}"
    );
    let list: Vec<_> = rows(&v, "contoso", "list");
    let audit = list.iter().find(|r| r["source"] == "audit").unwrap();
    assert_eq!(audit["outcome"], "skip", "{audit}");
    let private = list.iter().find(|r| r["source"] == "private").unwrap();
    assert_eq!(private["outcome"], "pass", "{private}");
    assert!(
        human.contains("private endpoint required but public"),
        "{human}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_exits_2_before_any_check() {
    let w = world(1).await;
    let cfg = w.config(&[("contoso", vec![audit_with_key()])], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "tenant_id = \"33333333-3333-4333-8333-333333333333\"",
        "tenant_id = \"not-a-guid\"",
    );
    std::fs::write(&cfg, text).unwrap();
    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(out.stdout.is_empty());
}
