//! Secrets, client assertions and tokens never reach any output: `ferry run --once` with debug
//! logging, against a healthy tenant, a tenant whose consent was withdrawn, and a wrong secret,
//! with every credential kind that carries a secret or an assertion. A tenant refused at its
//! first poll is never logged `active` on its way to stopping.

mod common;

use std::process::Command;

use common::*;

const SECRET_LINE: &str = r#"credential = { kind = "secret", file = "app-secret" }"#;

fn run_once(cfg: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["run", "--once", "-c", cfg.to_str().unwrap()])
        .env("FERRY_LOG", "debug")
        .output()
        .expect("run ferry");
    output_text(&out)
}

fn assert_clean(w: &World, text: &str, extra: &[&str]) {
    assert!(
        !text.contains(&w.provider.app_secret),
        "the app secret leaked:\n{text}"
    );
    assert!(
        !text.contains("eyJ"),
        "a token or assertion leaked:\n{text}"
    );
    for e in extra {
        assert!(!text.contains(e), "{e:?} leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_carry_no_secret_token_or_assertion() {
    let w = world(2).await;
    w.seeder("contoso")
        .await
        .put_block_blob(
            "insights-logs-auditevent",
            "a/PT1H.json",
            log_lines("c", 0, 10),
        )
        .await
        .unwrap();
    let cfg = w.config(
        &[
            ("contoso", vec![SourceSpec::records("audit")]),
            ("fabrikam", vec![SourceSpec::records("audit")]),
        ],
        "",
    );
    // fabrikam withdraws consent: one healthy tenant, one revoked
    w.sandbox
        .admin()
        .revoke_consent(
            &w.customers["fabrikam"].spec.tenant_id,
            &w.provider.app_client_id,
        )
        .await
        .unwrap();
    let text = run_once(&cfg);
    assert!(text.contains("consent_revoked"), "{text}");
    assert_clean(&w, &text, &[]);

    // a certificate credential: the key and the signed assertion stay out of the logs
    let pem = format!(
        "{}\n{}",
        w.provider.app_certificate_pem, w.provider.app_certificate_key_pem
    );
    std::fs::write(w.dir.path().join("app.pem"), pem).unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        SECRET_LINE,
        r#"credential = { kind = "certificate", path = "app.pem" }"#,
    );
    std::fs::write(&cfg, text).unwrap();
    let text = run_once(&cfg);
    assert_clean(&w, &text, &["PRIVATE KEY", "MII"]);

    // a wrong secret: refused, and neither the wrong nor the right value is shown
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        r#"credential = { kind = "certificate", path = "app.pem" }"#,
        SECRET_LINE,
    );
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(w.dir.path().join("app-secret"), "wrong-secret-ABC123").unwrap();
    let text = run_once(&cfg);
    assert!(
        text.contains("credential_invalid") || text.contains("7000215"),
        "{text}"
    );
    // the provider's own credential, not the customer, is named as the cause
    assert!(
        text.contains("The provider's app credential was refused or cannot be loaded"),
        "{text}"
    );
    assert!(
        !text.lines().any(|l| l.contains("\"tenant\":\"contoso\"")
            && l.contains("Refused by the customer's tenant")),
        "{text}"
    );
    // a refusal met while listing names no blob (it used to log `"blob":""`)
    assert!(!text.contains("\"blob\":\"\""), "{text}");
    assert_clean(&w, &text, &["wrong-secret-ABC123"]);
}

/// A tenant refused at its first poll goes from `starting` straight to its stopped state: the
/// sources whose pass the refusal cut short do not show it `active` on the way (it logged
/// `starting -> active -> credential_invalid` when the app's secret file was missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_refused_at_its_first_poll_is_never_shown_active() {
    let w = world(1).await;
    let sources = (0..12)
        .map(|i| SourceSpec::records(&format!("audit{i}")))
        .collect();
    let cfg = w.config(&[("contoso", sources)], "");
    std::fs::remove_file(w.dir.path().join("app-secret")).unwrap();
    let text = run_once(&cfg);
    let changes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"tenant\":\"contoso\"") && l.contains("\"to\":"))
        .collect();
    assert!(
        changes
            .iter()
            .any(|l| l.contains("\"from\":\"starting\",\"to\":\"credential_invalid\"")),
        "{text}"
    );
    assert!(
        !changes.iter().any(|l| l.contains("\"to\":\"active\"")),
        "shown active on its way to stopping:\n{}",
        changes.join("\n")
    );
}
