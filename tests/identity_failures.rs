//! Every token failure class against the sandbox, and the state each yields: consent withdrawn
//! (700016), service principal orphaned (7000229), app disabled (7000112), wrong secret (7000215),
//! expired secret (7000222), unknown tenant (90002), federated credential removed (70021:
//! transient while it may be propagation, then credential_invalid). A token for another tenant
//! is refused before use. While the token endpoint is down, valid tokens keep serving, and
//! refresh resumes after.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ferry::identity::from_config::{http_settings, identity_settings};
use ferry::identity::{
    AppAuthMethod, FailureClass, IdentitySettings, ManagedIdentityEndpoint, Principal,
    ProviderTuning, SecretLocation, TokenError, TokenProvider,
};
use ferry_sim::FaultSpec;

const STORAGE: &str = "https://storage.azure.com";
const VAULT: &str = "https://vault.sandbox.test";
const SECRET_LINE: &str = r#"credential = { kind = "secret", file = "app-secret" }"#;

fn provider_with(w: &World, credential: &str, tuning: ProviderTuning) -> TokenProvider {
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace(SECRET_LINE, credential)).unwrap();
    let loaded = ferry::config::load(&cfg).unwrap_or_else(|e| panic!("config: {e:?}"));
    let http = http_settings(&loaded).expect("http settings");
    TokenProvider::with_tuning(
        identity_settings(&loaded, http.build().expect("client")).expect("identity"),
        tuning,
    )
}

fn provider(w: &World) -> TokenProvider {
    provider_with(w, SECRET_LINE, ProviderTuning::default())
}

/// Asserts the error's code, class and that its fix names `fix_has`; never a secret in it.
fn expect(w: &World, e: &TokenError, code: u64, class: FailureClass, fix_has: &str) {
    assert_eq!(e.aadsts(), Some(code), "{e}");
    assert_eq!(e.class(), class, "{e}");
    let consent = format!(
        "https://login.sandbox.test/{}/adminconsent?client_id={}",
        w.customers["contoso"].spec.tenant_id, w.provider.app_client_id
    );
    let fix = e.fix(&consent);
    assert!(fix.contains(fix_has), "fix {fix:?} lacks {fix_has:?}");
    let shown = format!("{e} {e:?} {fix}");
    assert!(!shown.contains(&w.provider.app_secret), "secret in {shown}");
    assert!(!shown.contains("eyJ"), "token-shaped text in {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_side_refusals_are_consent_revoked_and_drop_the_cached_token() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let app = w.provider.app_client_id.clone();
    let tokens = provider(&w);
    tokens
        .app_token(&tid, STORAGE)
        .await
        .expect("healthy first");

    admin.revoke_consent(&tid, &app).await.unwrap();
    // the cached token would still be served until it is due; a refusal seen on refresh drops it
    let principal = Principal::App {
        tenant_id: tid.clone(),
    };
    tokens.invalidate(&principal, STORAGE);
    let e = tokens.app_token(&tid, STORAGE).await.unwrap_err();
    expect(
        &w,
        &e,
        700016,
        FailureClass::ConsentRevoked,
        "consent missing",
    );
    let e = tokens.app_token(&tid, VAULT).await.unwrap_err();
    expect(
        &w,
        &e,
        700016,
        FailureClass::ConsentRevoked,
        "adminconsent?client_id=",
    );
    assert!(tokens.last_error(&principal, VAULT).is_some());

    admin.consent(&tid, &app).await.unwrap();
    tokens
        .app_token(&tid, STORAGE)
        .await
        .expect("consent back: tokens come back");
    assert!(tokens.last_error(&principal, STORAGE).is_none());

    admin.orphan_service_principal(&tid, &app).await.unwrap();
    tokens.invalidate(&principal, STORAGE);
    let e = tokens.app_token(&tid, STORAGE).await.unwrap_err();
    expect(
        &w,
        &e,
        7000229,
        FailureClass::ConsentRevoked,
        "service principal",
    );
    admin.consent(&tid, &app).await.unwrap();

    admin.disable_app(&app).await.unwrap();
    tokens.invalidate(&principal, STORAGE);
    let e = tokens.app_token(&tid, STORAGE).await.unwrap_err();
    expect(
        &w,
        &e,
        7000112,
        FailureClass::ConsentRevoked,
        "app disabled",
    );
    admin.enable_app(&app).await.unwrap();
    tokens
        .app_token(&tid, STORAGE)
        .await
        .expect("app enabled again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_side_refusals_are_credential_invalid_or_misconfigured() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let app = w.provider.app_client_id.clone();
    let tokens = provider(&w);

    std::fs::write(w.dir.path().join("app-secret"), "wrong-secret-value").unwrap();
    let e = tokens.app_token(&tid, STORAGE).await.unwrap_err();
    expect(
        &w,
        &e,
        7000215,
        FailureClass::CredentialInvalid,
        "client secret invalid",
    );
    // the file is re-read: putting the right value back heals without a restart
    std::fs::write(w.dir.path().join("app-secret"), &w.provider.app_secret).unwrap();
    tokens
        .app_token(&tid, STORAGE)
        .await
        .expect("right secret again");

    admin
        .expire_secret(&app, &w.provider.app_secret_id)
        .await
        .unwrap();
    let e = tokens.app_token(&tid, VAULT).await.unwrap_err();
    expect(
        &w,
        &e,
        7000222,
        FailureClass::CredentialInvalid,
        "client secret expired",
    );

    let unknown = "77777777-7777-4777-8777-777777777777";
    let e = tokens.app_token(unknown, STORAGE).await.unwrap_err();
    expect(
        &w,
        &e,
        90002,
        FailureClass::Misconfigured,
        "tenant not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_federated_credential_is_transient_then_credential_invalid() {
    let w = world(1).await;
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let line = format!(
        r#"credential = {{ kind = "federated_managed_identity", managed_identity_client_id = "{}" }}"#,
        w.provider.managed_identity_client_id
    );
    let tuning = ProviderTuning {
        federation_propagation: Duration::from_secs(2),
        ..ProviderTuning::default()
    };
    let tokens = provider_with(&w, &line, tuning);
    tokens
        .app_token(&tid, STORAGE)
        .await
        .expect("federated credential works");
    w.sandbox
        .admin()
        .remove_federated_credential(
            &w.provider.app_client_id,
            &w.provider.federated_credential_id,
        )
        .await
        .unwrap();
    let e = tokens.app_token(&tid, VAULT).await.unwrap_err();
    assert_eq!(e.aadsts(), Some(70021), "{e}");
    assert_eq!(
        e.class(),
        FailureClass::Transient,
        "first 70021 may be propagation: {e}"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let e = tokens.app_token(&tid, VAULT).await.unwrap_err();
    expect(
        &w,
        &e,
        70021,
        FailureClass::CredentialInvalid,
        "federated credential missing",
    );
}

/// A token endpoint that answers every request with `token`, as if the authority had issued
/// a token for another tenant than the one asked.
async fn fake_authority(token: String) -> String {
    let app = axum::Router::new().fallback(move || {
        let token = token.clone();
        async move {
            axum::Json(serde_json::json!({"token_type": "Bearer", "expires_in": 3599, "access_token": token}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_tenant_is_refused_before_use() {
    let w = world(2).await;
    let contoso = w.customers["contoso"].spec.tenant_id.clone();
    let fabrikam = &w.customers["fabrikam"];
    // a real sim-signed token, but from fabrikam
    let foreign = w
        .sandbox
        .mint_token(
            &fabrikam.spec.tenant_id,
            STORAGE,
            &fabrikam.service_principal_object_id,
            Some(&w.provider.app_client_id),
        )
        .await
        .unwrap();
    let authority = fake_authority(foreign.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "any").unwrap();
    let tokens = TokenProvider::new(IdentitySettings {
        authority_host: authority,
        client_id: w.provider.app_client_id.clone(),
        app_auth: AppAuthMethod::Secret(SecretLocation::File(dir.path().join("s"))),
        managed_identity: ManagedIdentityEndpoint::Imds {
            url: "http://127.0.0.1:9/unused".into(),
        },
        vault_resource: VAULT.into(),
        http: reqwest::Client::new(),
    });
    let e = tokens.app_token(&contoso, STORAGE).await.unwrap_err();
    assert!(matches!(e, TokenError::Rejected { .. }), "{e:?}");
    assert_eq!(e.class(), FailureClass::Misconfigured);
    let text = e.to_string();
    assert!(
        text.contains(&fabrikam.spec.tenant_id) && text.contains(&contoso),
        "{text}"
    );
    assert!(!text.contains(&foreign) && !format!("{e:?}").contains("eyJ"));
    assert!(e.fix("").contains("check tenant_id"), "{}", e.fix(""));
    // the wrong resource is refused the same way
    let e = tokens
        .app_token(&fabrikam.spec.tenant_id, VAULT)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("audience"), "{e}");
    // and the right tenant and resource pass, so the check is not refusing everything
    let ok = tokens.app_token(&fabrikam.spec.tenant_id, STORAGE).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_tokens_keep_serving_while_the_token_endpoint_is_down() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    // 40 s tokens: refresh is due 24..32 s after issue, a caller is served until 36 s
    admin.update_settings(Some(40), None).await.unwrap();
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let tokens = Arc::new(provider(&w));
    let first = tokens.app_token(&tid, STORAGE).await.unwrap();
    let issued = Instant::now();
    let fault = admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            outage: true,
            ..Default::default()
        })
        .await
        .unwrap();
    // through the refresh window, every call is served the still-valid token, immediately
    let mut slowest = Duration::ZERO;
    while issued.elapsed() < Duration::from_secs(33) {
        let t0 = Instant::now();
        let tok = tokens
            .app_token(&tid, STORAGE)
            .await
            .expect("valid token served during the outage");
        slowest = slowest.max(t0.elapsed());
        assert_eq!(tok.secret, first.secret);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let principal = Principal::App {
        tenant_id: tid.clone(),
    };
    let (_, failures) = tokens.stats(&principal, STORAGE).unwrap();
    assert!(failures >= 1, "no refresh was attempted during the outage");
    assert!(
        slowest < Duration::from_millis(250),
        "a caller waited {slowest:?}"
    );
    let e = tokens
        .last_error(&principal, STORAGE)
        .expect("the failed refresh is recorded");
    assert_eq!(e.class(), FailureClass::Transient, "{e}");
    // the endpoint comes back: refresh resumes and a new token arrives before the old one ends
    admin.remove_fault(&fault).await.unwrap();
    loop {
        let tok = tokens
            .app_token(&tid, STORAGE)
            .await
            .expect("after the outage");
        if tok.secret != first.secret {
            break;
        }
        assert!(
            issued.elapsed() < Duration::from_secs(40),
            "no refresh after the outage"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(tokens.last_error(&principal, STORAGE).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_token_endpoint_is_transient_and_its_retry_after_is_honoured() {
    let w = world(1).await;
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let tokens = provider(&w);
    let fault = w
        .sandbox
        .admin()
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            status: Some(429),
            retry_after_secs: Some(2),
            count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let principal = Principal::App {
        tenant_id: tid.clone(),
    };
    let e = tokens.app_token(&tid, STORAGE).await.unwrap_err();
    assert_eq!(e.class(), FailureClass::Transient, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)), "{e}");
    // time mends it; the fix only says where to look if it lasts
    assert_eq!(e.fix(""), ferry::identity::TOKEN_UNAVAILABLE_FIX, "{e}");
    // within the pause, callers get the same answer without another request
    let e2 = tokens.app_token(&tid, STORAGE).await.unwrap_err();
    assert_eq!(e2.class(), FailureClass::Transient);
    assert_eq!(tokens.stats(&principal, STORAGE).unwrap().0, 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    tokens
        .app_token(&tid, STORAGE)
        .await
        .expect("after Retry-After");
    assert_eq!(tokens.stats(&principal, STORAGE).unwrap().0, 2);
    let _ = w.sandbox.admin().remove_fault(&fault).await;
}

/// Entra that cannot be reached at all (its host pinned to a port nothing listens on) is
/// something time may mend, so the tenant is `throttled`, not refused; but it says why: the
/// token endpoint it could not reach, and where to look when it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_that_cannot_be_reached_is_named_in_the_tenant_state() {
    let w = world(1).await;
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let port = ferry_sim::sandbox::free_port().expect("a free port");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let wildcard = "resolve = [{ host = \"*.sandbox.test\"";
    assert!(text.contains(wildcard), "{text}");
    let text = text.replacen(
        wildcard,
        &format!(
            "resolve = [{{ host = \"login.sandbox.test\", address = \"127.0.0.1:{port}\" }}, {{ host = \"*.sandbox.test\""
        ),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(summary_row(&out, "contoso").contains("throttled"), "{text}");
    let changed = text
        .lines()
        .find(|l| l.contains("\"to\":\"throttled\""))
        .unwrap_or_else(|| panic!("no state change to throttled logged:\n{text}"));
    assert!(
        changed.contains("source audit: token endpoint https://login.sandbox.test"),
        "{changed}"
    );
    assert!(
        changed.contains("authority host of agent.cloud"),
        "{changed}"
    );
    // `ferry check` says the same thing in the same words
    let out = w.ferry(&["check", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("token endpoint https://login.sandbox.test"),
        "{text}"
    );
    assert!(
        text.contains(ferry::identity::TOKEN_UNAVAILABLE_FIX),
        "{text}"
    );
}
