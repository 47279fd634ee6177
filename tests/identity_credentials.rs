//! Every app credential kind, end to end against the sandbox: a `TokenProvider` built from a
//! config gets a storage token from the customer tenant, the token's claims are the customer's
//! tenant and the app's service principal there, and the storage gateway accepts it for a
//! listing. Then rotation of a secret file and of a certificate while the provider keeps running.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferry::identity::from_config::{http_settings, identity_settings};
use ferry::identity::TokenProvider;
use serde_json::json;

const STORAGE: &str = "https://storage.azure.com";
const SECRET_LINE: &str = r#"credential = { kind = "secret", file = "app-secret" }"#;

/// A token provider from a config whose `[app].credential` is `credential`.
fn provider(w: &World, credential: &str, agent_extra: &str) -> TokenProvider {
    let cfg = w.config(
        &[("contoso", vec![SourceSpec::records("audit")])],
        agent_extra,
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains(SECRET_LINE),
        "the harness config changed shape"
    );
    std::fs::write(&cfg, text.replace(SECRET_LINE, credential)).unwrap();
    let loaded = ferry::config::load(&cfg).unwrap_or_else(|e| panic!("config: {e:?}"));
    let http = http_settings(&loaded).expect("http settings");
    TokenProvider::new(identity_settings(&loaded, http.build().expect("client")).expect("identity"))
}

/// Gets a storage token for contoso and proves it is the app's, in contoso, accepted by storage.
async fn assert_works(w: &World, tokens: &TokenProvider) -> String {
    let c = &w.customers["contoso"];
    let tok = tokens
        .app_token(&c.spec.tenant_id, STORAGE)
        .await
        .unwrap_or_else(|e| panic!("{} credential: {e}", tokens.app_auth_kind()));
    assert_eq!(tok.claims.tid.as_deref(), Some(c.spec.tenant_id.as_str()));
    assert_eq!(tok.claims.aud.as_deref(), Some(STORAGE));
    assert_eq!(
        tok.claims.oid.as_deref(),
        Some(c.service_principal_object_id.as_str())
    );
    assert_eq!(
        tok.claims.appid.as_deref(),
        Some(w.provider.app_client_id.as_str())
    );
    let client = ferry::blob_api::ContainerClient::new(
        w.sandbox.http().clone(),
        &w.sandbox.blob_endpoint(&c.spec.account),
        &c.spec.container,
    );
    client
        .list_page(&tok.bearer(), None, None, 1)
        .await
        .unwrap_or_else(|e| panic!("storage refused the token: {e}"));
    tok.secret.expose().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_from_env_and_from_file() {
    let w = world(1).await;
    let tokens = provider(&w, SECRET_LINE, "");
    assert_eq!(tokens.app_auth_kind(), "secret");
    assert_works(&w, &tokens).await;
    // from an environment variable, through the binary (the test process keeps its env intact)
    let var = "FERRY_TEST_APP_SECRET";
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        SECRET_LINE,
        &format!(r#"credential = {{ kind = "secret", env = "{var}" }}"#),
    );
    std::fs::write(&cfg, text).unwrap();
    let run = |value: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args([
                "check",
                "-c",
                cfg.to_str().unwrap(),
                "--tenant",
                "contoso",
                "--json",
            ])
            .env(var, value)
            .output()
            .expect("run ferry")
    };
    let out = run(&w.provider.app_secret);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["check"] == "token")
        .unwrap();
    assert_eq!(token["outcome"], "pass", "{token}");
    let out = run("not-the-secret");
    assert_eq!(out.status.code(), Some(1));
    let text = output_text(&out);
    assert!(text.contains("AADSTS7000215"), "{text}");
    assert!(!text.contains(&w.provider.app_secret) && !text.contains("not-the-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_pem_with_its_key() {
    let w = world(1).await;
    let pem = format!(
        "{}\n{}",
        w.provider.app_certificate_pem, w.provider.app_certificate_key_pem
    );
    std::fs::write(w.dir.path().join("app.pem"), pem).unwrap();
    let tokens = provider(
        &w,
        r#"credential = { kind = "certificate", path = "app.pem" }"#,
        "",
    );
    assert_eq!(tokens.app_auth_kind(), "certificate");
    assert_works(&w, &tokens).await;
    // certificate and key in separate files
    std::fs::write(
        w.dir.path().join("cert.pem"),
        &w.provider.app_certificate_pem,
    )
    .unwrap();
    std::fs::write(
        w.dir.path().join("key.pem"),
        &w.provider.app_certificate_key_pem,
    )
    .unwrap();
    let tokens = provider(
        &w,
        r#"credential = { kind = "certificate", path = "cert.pem", key_path = "key.pem" }"#,
        "",
    );
    assert_works(&w, &tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_managed_identity_in_both_endpoint_shapes() {
    let w = world(1).await;
    let line = format!(
        r#"credential = {{ kind = "federated_managed_identity", managed_identity_client_id = "{}" }}"#,
        w.provider.managed_identity_client_id
    );
    // App Service shape (what the harness config uses)
    let tokens = provider(&w, &line, "");
    assert_eq!(tokens.app_auth_kind(), "federated_managed_identity");
    assert_works(&w, &tokens).await;
    // IMDS shape, plain http like the real one
    let imds = w
        .sandbox
        .imds_url()
        .expect("the sandbox runs an IMDS listener");
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let start = text.find("[agent.managed_identity]").unwrap();
    let end = start + text[start..].find("[app]").unwrap();
    let text = format!(
        "{}[agent.managed_identity]\nshape = \"imds\"\nendpoint = \"{imds}\"\n\n{}",
        &text[..start],
        &text[end..]
    )
    .replace(SECRET_LINE, &line);
    std::fs::write(&cfg, text).unwrap();
    let loaded = ferry::config::load(&cfg).unwrap_or_else(|e| panic!("config: {e:?}"));
    let http = http_settings(&loaded).unwrap();
    let tokens = TokenProvider::new(identity_settings(&loaded, http.build().unwrap()).unwrap());
    assert_works(&w, &tokens).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_token_file() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    let issuer = "https://oidc.aks.sandbox.test/ferry-cluster/";
    let subject = "system:serviceaccount:ferry:ferry";
    admin
        .add_federated_credential(
            &w.provider.app_client_id,
            issuer,
            subject,
            &["api://AzureADTokenExchange"],
        )
        .await
        .unwrap();
    let projected = admin
        .workload_token(issuer, subject, "api://AzureADTokenExchange", Some(3600))
        .await
        .unwrap();
    std::fs::write(w.dir.path().join("azure-identity-token"), projected).unwrap();
    let tokens = provider(
        &w,
        r#"credential = { kind = "workload_identity", token_file = "azure-identity-token" }"#,
        "",
    );
    assert_eq!(tokens.app_auth_kind(), "workload_identity");
    assert_works(&w, &tokens).await;
    // the file is re-read on every exchange: a rotated file that no longer matches is refused
    let other = admin
        .workload_token(
            issuer,
            "system:serviceaccount:other:other",
            "api://AzureADTokenExchange",
            Some(3600),
        )
        .await
        .unwrap();
    std::fs::write(w.dir.path().join("azure-identity-token"), other).unwrap();
    let e = tokens
        .app_token(
            &w.customers["contoso"].spec.tenant_id,
            "https://vault.sandbox.test",
        )
        .await
        .expect_err("a token file with another subject must be refused");
    assert_eq!(e.aadsts(), Some(70021), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_vault_secret_read_with_the_provider_identity() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    let tid = &w.provider.tenant_id;
    admin
        .post("/vaults", json!({"name": "provider-kv", "tenant_id": tid, "kind": "vault", "permission_model": "access_policy"}))
        .await
        .unwrap();
    admin
        .put(
            "/vaults/provider-kv/secrets/ferry-app",
            json!({"value": w.provider.app_secret}),
        )
        .await
        .unwrap();
    admin
        .put(
            "/vaults/provider-kv/access",
            json!({"object_id": w.provider.managed_identity_object_id, "keys": [], "secrets": ["get"]}),
        )
        .await
        .unwrap();
    let line = format!(
        r#"credential = {{ kind = "key_vault_secret", vault = "https://provider-kv.vault.sandbox.test", name = "ferry-app", identity = {{ kind = "managed_identity", client_id = "{}" }} }}"#,
        w.provider.managed_identity_client_id
    );
    let tokens = provider(&w, &line, "");
    assert_eq!(tokens.app_auth_kind(), "key_vault_secret");
    assert_works(&w, &tokens).await;
}

/// Polls until the provider hands out a token different from `old`, within `limit`.
async fn next_token(tokens: &TokenProvider, tid: &str, old: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        match tokens.app_token(tid, STORAGE).await {
            Ok(t) if t.secret.expose() != old => return t.secret.expose().to_string(),
            Ok(_) => {}
            Err(e) => panic!("while waiting for a refresh: {e}"),
        }
        assert!(start.elapsed() < limit, "no refresh within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_file_is_picked_up_without_restart() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    admin.update_settings(Some(20), None).await.unwrap();
    let tokens = provider(&w, SECRET_LINE, "");
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let first = assert_works(&w, &tokens).await;
    // rotate: a new secret, the file rewritten, the old secret deleted
    let new = admin
        .add_secret(&w.provider.app_client_id, None, None)
        .await
        .unwrap();
    std::fs::write(w.dir.path().join("app-secret"), format!("{}\n", new.value)).unwrap();
    admin
        .remove_secret(&w.provider.app_client_id, &w.provider.app_secret_id)
        .await
        .unwrap();
    let second = next_token(&tokens, &tid, &first, Duration::from_secs(25)).await;
    assert_ne!(first, second);
    let (requests, failures) = tokens
        .stats(
            &ferry::identity::Principal::App {
                tenant_id: tid.clone(),
            },
            STORAGE,
        )
        .unwrap();
    assert_eq!(failures, 0, "the rotation cost a failed request");
    assert!(requests >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_certificate_file_is_reloaded_without_restart() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    admin.update_settings(Some(20), None).await.unwrap();
    let path = w.dir.path().join("app.pem");
    std::fs::write(
        &path,
        format!(
            "{}\n{}",
            w.provider.app_certificate_pem, w.provider.app_certificate_key_pem
        ),
    )
    .unwrap();
    let tokens = provider(
        &w,
        r#"credential = { kind = "certificate", path = "app.pem" }"#,
        "",
    );
    let tid = w.customers["contoso"].spec.tenant_id.clone();
    let first = assert_works(&w, &tokens).await;
    // rotate: a new certificate registered, the file replaced (write + rename), the old one removed
    let cert = ferry_sim::ca::client_certificate("ferry provider app, rotated").unwrap();
    admin
        .add_certificate(&w.provider.app_client_id, &cert.cert_pem)
        .await
        .unwrap();
    let tmp = w.dir.path().join("app.pem.new");
    std::fs::write(&tmp, format!("{}\n{}", cert.cert_pem, cert.key_pem)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    admin
        .remove_certificate(
            &w.provider.app_client_id,
            &w.provider.app_certificate_thumbprint_sha1,
        )
        .await
        .unwrap();
    let second = next_token(&tokens, &tid, &first, Duration::from_secs(25)).await;
    assert_ne!(first, second);
    let (_, failures) = tokens
        .stats(
            &ferry::identity::Principal::App {
                tenant_id: tid.clone(),
            },
            STORAGE,
        )
        .unwrap();
    assert_eq!(failures, 0, "the rotation cost a failed request");
    // and the old certificate is really gone: a provider still holding it is refused
    let old_pem = w.dir.path().join("old.pem");
    std::fs::write(
        &old_pem,
        format!(
            "{}\n{}",
            w.provider.app_certificate_pem, w.provider.app_certificate_key_pem
        ),
    )
    .unwrap();
    let stale = provider(
        &w,
        r#"credential = { kind = "certificate", path = "old.pem" }"#,
        "",
    );
    let e = stale
        .app_token(&tid, STORAGE)
        .await
        .expect_err("old certificate must be refused");
    assert_eq!(
        e.class(),
        ferry::identity::FailureClass::CredentialInvalid,
        "{e}"
    );
}

/// Lists the destination container with a token for `principal`.
async fn assert_destination_works(
    w: &World,
    tokens: &TokenProvider,
    principal: &ferry::identity::Principal,
) {
    let tok = tokens
        .token(principal, STORAGE)
        .await
        .unwrap_or_else(|e| panic!("{principal:?}: {e}"));
    assert_eq!(
        tok.claims.tid.as_deref(),
        Some(w.provider.tenant_id.as_str())
    );
    let client = ferry::blob_api::ContainerClient::new(
        w.sandbox.http().clone(),
        &w.sandbox.blob_endpoint(&w.provider.account),
        &w.provider.container,
    );
    client
        .list_page(&tok.bearer(), None, None, 1)
        .await
        .unwrap_or_else(|e| panic!("destination refused {principal:?}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_side_identities_for_the_destination() {
    let w = world(1).await;
    let admin = w.sandbox.admin();
    // AKS workload identity in the provider tenant, federated on the app
    let issuer = "https://oidc.aks.sandbox.test/provider-cluster/";
    let subject = "system:serviceaccount:ferry:ferry";
    admin
        .add_federated_credential(
            &w.provider.app_client_id,
            issuer,
            subject,
            &["api://AzureADTokenExchange"],
        )
        .await
        .unwrap();
    let projected = admin
        .workload_token(issuer, subject, "api://AzureADTokenExchange", Some(3600))
        .await
        .unwrap();
    std::fs::write(w.dir.path().join("aks-token"), projected).unwrap();
    let cfg = w.config(&[("contoso", vec![SourceSpec::records("audit")])], "");
    let loaded = ferry::config::load(&cfg).unwrap_or_else(|e| panic!("config: {e:?}"));
    let http = http_settings(&loaded).unwrap();
    let tokens = TokenProvider::new(identity_settings(&loaded, http.build().unwrap()).unwrap());
    let kinds = [
        format!(
            r#"{{ kind = "managed_identity", client_id = "{}" }}"#,
            w.provider.managed_identity_client_id
        ),
        format!(
            r#"{{ kind = "workload_identity", token_file = "aks-token", client_id = "{}" }}"#,
            w.provider.app_client_id
        ),
        r#"{ kind = "app" }"#.to_string(),
    ];
    for kind in kinds {
        let text = format!(
            "[app]\nclient_id = \"{}\"\nhome_tenant_id = \"{}\"\n{SECRET_LINE}\n\n[destination]\naccount_url = \"https://x.blob.sandbox.test\"\ncontainer = \"shipped\"\ncredential = {kind}\n",
            w.provider.app_client_id, w.provider.tenant_id
        );
        let small = ferry::config::load_str(&text, &cfg.to_string_lossy())
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let principal = ferry::identity::from_config::provider_principal(
            &loaded,
            &small.config.destination.credential,
        )
        .unwrap_or_else(|e| panic!("{kind}: {e}"));
        // relative token files are resolved against the config's directory
        let principal = match principal {
            ferry::identity::Principal::Workload {
                tenant_id,
                client_id,
                token_file,
            } => ferry::identity::Principal::Workload {
                tenant_id,
                client_id,
                token_file: if token_file.is_relative() {
                    w.dir.path().join(token_file)
                } else {
                    token_file
                },
            },
            other => other,
        };
        assert_destination_works(&w, &tokens, &principal).await;
    }
}
