//! Storage gateway tests over real https with real Azurite behind it: the smoke test (a token
//! from the sim's token endpoint lists a container through the gateway), role enforcement,
//! tenant checks, header and status pass-through, and faults applied before the proxy.

use ferry_sim::sandbox::{CustomerSpec, Provider, ProviderSpec, Sandbox, SandboxOptions};
use reqwest::StatusCode;
use serde_json::json;

const CONTOSO: &str = "33333333-3333-4333-8333-333333333333";
const CONTAINER: &str = "insights-logs-auditevent";

async fn sandbox_with_customer() -> (Sandbox, Provider, String) {
    let sandbox = Sandbox::start(SandboxOptions::with_accounts(&[
        "contosologs",
        "providerlogs",
    ]))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let provider = sandbox
        .onboard_provider(&ProviderSpec {
            account: "providerlogs".into(),
            ..ProviderSpec::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let customer = sandbox
        .onboard_customer(
            &provider.app_client_id,
            &CustomerSpec::new("contoso", CONTOSO, "contosologs", "contoso-kv"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (sandbox, provider, customer.service_principal_object_id)
}

fn blob_url(sandbox: &Sandbox, path: &str) -> String {
    format!("{}/{path}", sandbox.blob_endpoint("contosologs"))
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String, String) {
    let status = response.status();
    let code = response
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(response.headers().contains_key("x-ms-request-id"));
    let body = response.text().await.expect("body");
    (status, code, body)
}

#[tokio::test]
async fn smoke_a_token_from_the_token_endpoint_lists_a_container_through_the_gateway() {
    let (sandbox, provider, _) = sandbox_with_customer().await;
    let seeder = sandbox.seeder("contosologs").await.expect("seeder");
    seeder
        .put_block_blob(CONTAINER, "hello.json", &b"{\"hello\":1}\n"[..])
        .await
        .expect("seed");

    let token: serde_json::Value = sandbox
        .http()
        .post(format!(
            "https://login.sandbox.test/{CONTOSO}/oauth2/v2.0/token"
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", provider.app_client_id.as_str()),
            ("client_secret", provider.app_secret.as_str()),
            ("scope", "https://storage.azure.com/.default"),
        ])
        .send()
        .await
        .expect("token endpoint answers")
        .json()
        .await
        .expect("token json");
    let access_token = token["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token in {token}"));

    let response = sandbox
        .http()
        .get(blob_url(
            &sandbox,
            &format!("{CONTAINER}?restype=container&comp=list"),
        ))
        .bearer_auth(access_token)
        .header("x-ms-version", "2025-01-05")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), StatusCode::OK);
    let xml = response.text().await.expect("list body");
    assert!(xml.contains("<Name>hello.json</Name>"), "{xml}");
}

#[tokio::test]
async fn reader_reads_but_cannot_write_and_others_are_refused_like_azure() {
    let (sandbox, provider, sp) = sandbox_with_customer().await;
    let seeder = sandbox.seeder("contosologs").await.expect("seeder");
    seeder
        .put_block_blob(CONTAINER, "a.json", &b"0123456789"[..])
        .await
        .expect("seed");
    seeder
        .create_container("private")
        .await
        .expect("second container");
    let admin = sandbox.admin();
    let reader = admin
        .mint_token(
            CONTOSO,
            "https://storage.azure.com",
            &sp,
            Some(&provider.app_client_id),
        )
        .await
        .expect("token");
    let http = sandbox.http();
    let get = |path: &str, token: &str| {
        http.get(blob_url(&sandbox, path))
            .bearer_auth(token.to_string())
            .header("x-ms-version", "2025-01-05")
    };

    // Reader: get blob, get properties (HEAD), list blobs, get block list.
    let r = get(&format!("{CONTAINER}/a.json"), &reader)
        .header("range", "bytes=2-5")
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::PARTIAL_CONTENT,
        "Range passes through"
    );
    assert_eq!(r.text().await.expect("body"), "2345");
    let r = http
        .head(blob_url(&sandbox, &format!("{CONTAINER}/a.json")))
        .bearer_auth(&reader)
        .header("x-ms-version", "2025-01-05")
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "10");
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    let r = get(&format!("{CONTAINER}/a.json"), &reader)
        .header("if-none-match", etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(
        r.status(),
        StatusCode::NOT_MODIFIED,
        "conditional headers pass through"
    );
    let r = get(&format!("{CONTAINER}?restype=container&comp=list"), &reader)
        .send()
        .await
        .expect("list");
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(&format!("{CONTAINER}/a.json?comp=blocklist"), &reader)
        .send()
        .await
        .expect("block list");
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(&format!("{CONTAINER}/missing.json"), &reader)
        .send()
        .await
        .expect("missing");
    let (status, code, _) = error_code(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "BlobNotFound"),
        "Azurite's errors pass through"
    );

    // A token for the account's production URL is accepted too (by the gateway and by Azurite).
    let account_aud = admin
        .mint_token(
            CONTOSO,
            "https://contosologs.blob.core.windows.net",
            &sp,
            Some(&provider.app_client_id),
        )
        .await
        .expect("account token");
    let r = get(
        &format!("{CONTAINER}?restype=container&comp=list"),
        &account_aud,
    )
    .send()
    .await
    .expect("list");
    assert_eq!(r.status(), StatusCode::OK);

    // Reader cannot write.
    let r = http
        .put(blob_url(&sandbox, &format!("{CONTAINER}/w.json")))
        .bearer_auth(&reader)
        .header("x-ms-version", "2025-01-05")
        .header("x-ms-blob-type", "BlockBlob")
        .body("x")
        .send()
        .await
        .expect("put");
    let (status, code, body) = error_code(r).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code, "AuthorizationPermissionMismatch");
    assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.\nRequestId:"), "{body}");
    assert!(
        body.contains("\nTime:") && body.ends_with("</Message></Error>"),
        "{body}"
    );
    let r = http
        .delete(blob_url(&sandbox, &format!("{CONTAINER}/a.json")))
        .bearer_auth(&reader)
        .send()
        .await
        .expect("delete");
    assert_eq!(error_code(r).await.1, "AuthorizationPermissionMismatch");

    // No role on this container, nor at account scope.
    let r = get("private?restype=container&comp=list", &reader)
        .send()
        .await
        .expect("list private");
    assert_eq!(error_code(r).await.1, "AuthorizationPermissionMismatch");
    let r = get("?comp=list", &reader)
        .send()
        .await
        .expect("list containers");
    assert_eq!(error_code(r).await.1, "AuthorizationPermissionMismatch");

    // Removing the role assignment takes effect at once.
    admin
        .delete(
            "/role-assignments",
            Some(json!({"account": "contosologs", "container": CONTAINER, "object_id": sp, "role": "Storage Blob Data Reader"})),
        )
        .await
        .expect("unassign");
    let r = get(&format!("{CONTAINER}/a.json"), &reader)
        .send()
        .await
        .expect("get after revoke");
    assert_eq!(error_code(r).await.1, "AuthorizationPermissionMismatch");

    // A token from another tenant (the provider's) for the customer's account.
    let foreign = admin
        .mint_token(
            &provider.tenant_id,
            "https://storage.azure.com",
            &sp,
            Some(&provider.app_client_id),
        )
        .await
        .expect("foreign token");
    let r = get(&format!("{CONTAINER}/a.json"), &foreign)
        .send()
        .await
        .expect("foreign");
    let (status, code, body) = error_code(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    assert!(
        body.contains("<AuthenticationErrorDetail>Issuer validation failed"),
        "{body}"
    );

    // No token, a token for another resource, garbage.
    let r = http
        .get(blob_url(&sandbox, &format!("{CONTAINER}/a.json")))
        .send()
        .await
        .expect("anonymous");
    assert!(r.headers().contains_key("www-authenticate"));
    let (status, code, _) = error_code(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "NoAuthenticationInformation")
    );
    let vault_token = admin
        .mint_token(CONTOSO, "https://vault.sandbox.test", &sp, None)
        .await
        .expect("vault token");
    let r = get(&format!("{CONTAINER}/a.json"), &vault_token)
        .send()
        .await
        .expect("wrong aud");
    let (status, code, _) = error_code(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "InvalidAuthenticationInfo")
    );
}

#[tokio::test]
async fn contributor_writes_through_the_gateway_with_every_blob_kind() {
    let (sandbox, provider, _) = sandbox_with_customer().await;
    let admin = sandbox.admin();
    let mi_token = admin
        .mint_token(
            &provider.tenant_id,
            "https://storage.azure.com",
            &provider.managed_identity_object_id,
            Some(&provider.managed_identity_client_id),
        )
        .await
        .expect("mi token");
    let url = format!(
        "{}/{}/x/y.json",
        sandbox.blob_endpoint("providerlogs"),
        provider.container
    );
    let r = sandbox
        .http()
        .put(&url)
        .bearer_auth(&mi_token)
        .header("x-ms-version", "2025-01-05")
        .header("x-ms-blob-type", "BlockBlob")
        .header("if-none-match", "*")
        .body("shipped")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    // If-None-Match: * refuses a second create.
    let r = sandbox
        .http()
        .put(&url)
        .bearer_auth(&mi_token)
        .header("x-ms-version", "2025-01-05")
        .header("x-ms-blob-type", "BlockBlob")
        .header("if-none-match", "*")
        .body("again")
        .send()
        .await
        .expect("put again");
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let seeder = sandbox.seeder("contosologs").await.expect("seeder");
    seeder
        .put_block("staging", "b", "0001", &b"ab"[..])
        .await
        .expect_err("container staging does not exist yet");
    seeder.create_container("staging").await.expect("container");
    seeder
        .create_container("staging")
        .await
        .expect("creating twice is fine");
    seeder
        .put_block("staging", "b", "0001", &b"ab"[..])
        .await
        .expect("block 1");
    seeder
        .put_block("staging", "b", "0002", &b"cd"[..])
        .await
        .expect("block 2");
    seeder
        .put_block_list("staging", "b", &["0001", "0002"])
        .await
        .expect("commit");
    assert_eq!(
        seeder.get_blob("staging", "b").await.expect("get"),
        &b"abcd"[..]
    );
    seeder
        .create_append_blob("staging", "log")
        .await
        .expect("append blob");
    seeder
        .append_block("staging", "log", &b"one\n"[..])
        .await
        .expect("append 1");
    seeder
        .append_block("staging", "log", &b"two\n"[..])
        .await
        .expect("append 2");
    assert_eq!(
        seeder.get_blob("staging", "log").await.expect("get log"),
        &b"one\ntwo\n"[..]
    );
    seeder
        .set_metadata("staging", "log", &[("source", "test")])
        .await
        .expect("metadata");
    assert_eq!(
        seeder.list_blobs("staging", "").await.expect("list"),
        vec!["b".to_string(), "log".to_string()]
    );
    seeder.delete_blob("staging", "b").await.expect("delete");
    assert_eq!(
        seeder
            .list_blobs("staging", "l")
            .await
            .expect("list prefix"),
        vec!["log".to_string()]
    );
}

#[tokio::test]
async fn faults_apply_before_the_proxy() {
    let (sandbox, _provider, _) = sandbox_with_customer().await;
    let seeder = sandbox.seeder("contosologs").await.expect("seeder");
    let big = vec![7u8; 256 * 1024];
    seeder
        .put_block_blob(CONTAINER, "big.bin", big.clone())
        .await
        .expect("seed");
    let admin = sandbox.admin();
    admin
        .post(
            "/faults",
            json!({"host": "contosologs.blob.sandbox.test", "status": 503, "error_code": "ServerBusy", "retry_after_secs": 2, "count": 1}),
        )
        .await
        .expect("fault");
    let err = seeder
        .get_blob(CONTAINER, "big.bin")
        .await
        .expect_err("503 first");
    assert!(err.to_string().contains("503 ServerBusy"), "{err}");
    let r = sandbox
        .http()
        .get(blob_url(&sandbox, &format!("{CONTAINER}/big.bin")))
        .send()
        .await
        .expect("after");
    assert_ne!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "count 1 applies once"
    );

    admin
        .post("/faults", json!({"host": "contosologs.blob.sandbox.test", "status": 503, "error_code": "ServerBusy", "retry_after_secs": 2, "count": 1}))
        .await
        .expect("fault");
    let r = sandbox
        .http()
        .get(blob_url(&sandbox, &format!("{CONTAINER}/big.bin")))
        .send()
        .await
        .expect("503");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(r.headers()["x-ms-error-code"], "ServerBusy");

    admin
        .post("/faults", json!({"host": "contosologs.blob.sandbox.test", "path_prefix": format!("/{CONTAINER}/big.bin"), "reset_after_bytes": 1000, "count": 1}))
        .await
        .expect("reset fault");
    let result = seeder.get_blob(CONTAINER, "big.bin").await;
    assert!(result.is_err(), "the body is cut after 1000 bytes");
    assert_eq!(
        seeder
            .get_blob(CONTAINER, "big.bin")
            .await
            .expect("whole body afterwards")
            .len(),
        big.len()
    );
}
