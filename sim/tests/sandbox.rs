//! The sandbox harness itself: the install hint when Azurite is missing, teardown that leaves no
//! process behind, and the demo sandbox (files, ids, data, and a customer's key and container
//! reachable with a token from the sim's token endpoint).

use std::path::PathBuf;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ferry_sim::sandbox::{start_demo_sandbox, DemoPorts, Sandbox, SandboxError, SandboxOptions};
use serde_json::{json, Value};

#[tokio::test]
async fn missing_azurite_names_the_path_and_the_fix() {
    let options = SandboxOptions {
        azurite_bin: Some(PathBuf::from("/nonexistent/azurite-blob")),
        ..Default::default()
    };
    let err = Sandbox::start(options).await.expect_err("no azurite there");
    assert!(
        matches!(err, SandboxError::AzuriteMissing { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.starts_with("azurite not found at /nonexistent/azurite-blob: run `npm ci` in "),
        "{message}"
    );
    assert!(message.ends_with(" (scripts/test does this)"), "{message}");
}

#[tokio::test]
async fn dropping_the_sandbox_stops_azurite_and_the_sim() {
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = sandbox.azurite_pid();
    let sim = sandbox.https_addr();
    let dir = sandbox.dir().to_path_buf();
    assert!(sandbox.ca_path().is_file());
    assert!(sandbox.imds_url().is_some());
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "azurite runs"
    );
    drop(sandbox);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "azurite was killed and reaped"
    );
    assert!(!dir.exists(), "the temp dir is removed");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        tokio::net::TcpStream::connect(sim).await.is_err(),
        "the sim stopped listening"
    );
}

async fn token(
    sandbox: &Sandbox,
    tenant: &str,
    client_id: &str,
    secret: &str,
    scope: &str,
) -> String {
    let answer: Value = sandbox
        .http()
        .post(format!(
            "https://login.sandbox.test/{tenant}/oauth2/v2.0/token"
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", scope),
        ])
        .send()
        .await
        .expect("token endpoint")
        .json()
        .await
        .expect("json");
    answer["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .to_string()
}

#[tokio::test]
async fn demo_sandbox_provisions_two_customers_and_the_provider() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = start_demo_sandbox(dir.path(), DemoPorts::ANY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for file in [
        "ca.pem",
        "identity-header",
        "app-secret",
        "app-cert.pem",
        "app-key.pem",
        "sandbox.json",
    ] {
        assert!(dir.path().join(file).is_file(), "{file} written");
    }
    assert!(
        dir.path().join("azurite").is_dir(),
        "azurite keeps its data in the sandbox dir"
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("sandbox.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(
        summary["provider"]["app_client_id"],
        "11111111-1111-4111-8111-111111111111"
    );
    assert_eq!(
        summary["provider"]["managed_identity_client_id"],
        "55555555-5555-4555-8555-555555555555"
    );
    assert_eq!(
        summary["customers"][0]["tenant_id"],
        "33333333-3333-4333-8333-333333333333"
    );
    assert_eq!(summary["customers"][1]["vault"], "fabrikam-kv");
    assert!(!summary
        .to_string()
        .contains(&std::fs::read_to_string(dir.path().join("app-secret")).expect("secret")));

    let app = "11111111-1111-4111-8111-111111111111";
    let secret = std::fs::read_to_string(dir.path().join("app-secret")).expect("secret");
    let contoso = "33333333-3333-4333-8333-333333333333";

    // Storage: the app lists the seeded logs with a token from contoso's tenant.
    let storage = token(
        &sandbox,
        contoso,
        app,
        &secret,
        "https://storage.azure.com/.default",
    )
    .await;
    let list = sandbox
        .http()
        .get("https://contosologs.blob.sandbox.test/insights-logs-auditevent?restype=container&comp=list")
        .bearer_auth(&storage)
        .header("x-ms-version", "2025-01-05")
        .send()
        .await
        .expect("list");
    assert_eq!(list.status(), reqwest::StatusCode::OK);
    let xml = list.text().await.expect("xml");
    assert_eq!(xml.matches("<Blob>").count(), 3, "{xml}");
    assert!(
        xml.contains("/y=2026/m=11/d=27/h=00/m=00/PT1H.json</Name>"),
        "{xml}"
    );

    // Key Vault: the app wraps and unwraps with contoso's key.
    let vault = token(
        &sandbox,
        contoso,
        app,
        &secret,
        "https://vault.sandbox.test/.default",
    )
    .await;
    let kid = summary["customers"][0]["key_id"].as_str().expect("key id");
    let cek = URL_SAFE_NO_PAD.encode([9u8; 32]);
    let wrapped: Value = sandbox
        .http()
        .post(format!("{kid}/wrapkey?api-version=7.5"))
        .bearer_auth(&vault)
        .json(&json!({"alg": "RSA-OAEP-256", "value": cek}))
        .send()
        .await
        .expect("wrap")
        .json()
        .await
        .expect("json");
    let unwrapped: Value = sandbox
        .http()
        .post(format!("{kid}/unwrapkey?api-version=7.5"))
        .bearer_auth(&vault)
        .json(&json!({"alg": "RSA-OAEP-256", "value": wrapped["value"]}))
        .send()
        .await
        .expect("unwrap")
        .json()
        .await
        .expect("json");
    assert_eq!(unwrapped["value"], cek.as_str(), "{wrapped} {unwrapped}");

    // The app cannot read fabrikam's data with a contoso token.
    let r = sandbox
        .http()
        .get("https://fabrikamlogs.blob.sandbox.test/insights-logs-auditevent?restype=container&comp=list")
        .bearer_auth(&storage)
        .send()
        .await
        .expect("cross-tenant");
    assert_eq!(r.headers()["x-ms-error-code"], "AuthenticationFailed");
}

#[tokio::test]
async fn typed_revocation_helpers_take_effect_at_once_and_requests_are_counted() {
    use ferry_sim::sandbox::{CustomerSpec, PrincipalRef, ProviderSpec};
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let provider = sandbox
        .onboard_provider(&ProviderSpec::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tenant = "77777777-7777-4777-8777-777777777777";
    let customer = sandbox
        .onboard_customer(
            &provider.app_client_id,
            &CustomerSpec::new("acme", tenant, "acct1", "acme-kv"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sp = PrincipalRef::ObjectId(customer.service_principal_object_id.clone());
    let admin = sandbox.admin();
    let vault_token = admin
        .mint_token(
            tenant,
            "https://vault.sandbox.test",
            &customer.service_principal_object_id,
            Some(&provider.app_client_id),
        )
        .await
        .expect("token");
    let cek = URL_SAFE_NO_PAD.encode([1u8; 32]);
    let wrap = || async {
        let r = sandbox
            .http()
            .post(format!("{}/wrapkey?api-version=7.5", customer.key_id))
            .bearer_auth(&vault_token)
            .json(&json!({"alg": "RSA-OAEP", "value": cek}))
            .send()
            .await
            .expect("wrap");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("json");
        (
            status,
            body["error"]["innererror"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    assert_eq!(wrap().await, (200, String::new()));
    sandbox
        .disable_key("acme-kv", "ferry-cmk")
        .await
        .expect("disable");
    assert_eq!(wrap().await, (403, "KeyDisabled".to_string()));
    sandbox
        .enable_key("acme-kv", "ferry-cmk")
        .await
        .expect("enable");
    sandbox
        .set_vault_network("acme-kv", true, false)
        .await
        .expect("firewall");
    assert_eq!(wrap().await, (403, "ForbiddenByFirewall".to_string()));
    sandbox
        .set_vault_network("acme-kv", false, false)
        .await
        .expect("open");
    sandbox
        .revoke_vault_access("acme-kv", &sp)
        .await
        .expect("revoke");
    assert_eq!(wrap().await, (403, "ForbiddenByPolicy".to_string()));
    sandbox
        .grant_vault_access("acme-kv", &sp, &["wrapKey"], &[])
        .await
        .expect("grant");
    assert_eq!(wrap().await.0, 200);
    sandbox
        .delete_key("acme-kv", "ferry-cmk")
        .await
        .expect("delete");
    assert_eq!(wrap().await.0, 404);
    sandbox
        .recover_key("acme-kv", "ferry-cmk")
        .await
        .expect("recover");
    let rotated = sandbox
        .create_key("acme-kv", "ferry-cmk", "RSA")
        .await
        .expect("rotate");
    assert_ne!(rotated, customer.key_id);

    let requests = admin.requests().await.expect("requests");
    let wraps = requests["vault"][tenant]["acme-kv/wrapKey"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        wraps, 6,
        "every wrap with a valid token counts, refused or not: {requests}"
    );

    let storage_token = admin
        .mint_token(
            tenant,
            "https://storage.azure.com",
            &customer.service_principal_object_id,
            None,
        )
        .await
        .expect("storage token");
    let list = || async {
        let r = sandbox
            .http()
            .get(format!(
                "https://acct1.blob.sandbox.test/{}?restype=container&comp=list",
                customer.spec.container
            ))
            .bearer_auth(&storage_token)
            .header("x-ms-version", "2025-01-05")
            .send()
            .await
            .expect("list");
        (
            r.status().as_u16(),
            r.headers()
                .get("x-ms-error-code")
                .map(|v| v.to_str().unwrap_or_default().to_string()),
        )
    };
    assert_eq!(list().await, (200, None));
    sandbox
        .remove_role(
            "acct1",
            &customer.spec.container,
            &sp,
            "Storage Blob Data Reader",
        )
        .await
        .expect("remove role");
    assert_eq!(
        list().await,
        (403, Some("AuthorizationPermissionMismatch".to_string()))
    );
    sandbox
        .assign_role("acct1", "*", &sp, "Storage Blob Data Reader")
        .await
        .expect("account-wide reader");
    assert_eq!(list().await, (200, None));
}

/// The seeder's Append Block lands exactly once even when the gateway answers 502 (it lost its
/// connection to Azurite): it is conditional on the blob's length, so sending it again is safe.
#[tokio::test]
async fn the_seeders_append_survives_a_502_and_lands_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = start_demo_sandbox(dir.path(), DemoPorts::ANY)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = sandbox.seeder("contosologs").await.expect("seeder");
    s.create_container("seeding").await.expect("container");
    s.create_append_blob("seeding", "a.json")
        .await
        .expect("create");
    sandbox
        .admin()
        .add_fault(&ferry_sim::FaultSpec {
            host: Some("contosologs.blob.sandbox.test".into()),
            method: Some("PUT".into()),
            path_prefix: Some("/seeding/a.json".into()),
            status: Some(502),
            error_code: Some("ServerUnavailable".into()),
            count: Some(2),
            ..Default::default()
        })
        .await
        .expect("fault");
    s.append_block("seeding", "a.json", "one\n")
        .await
        .expect("append through two 502s");
    s.append_block("seeding", "a.json", "two\n")
        .await
        .expect("append");
    let body = s.get_blob("seeding", "a.json").await.expect("get");
    assert_eq!(&body[..], b"one\ntwo\n");
}
