//! Fault injection and admin API behaviour over real https: error statuses in each service's
//! shape with Retry-After, count-limited rules, latency, a reset mid-body, an outage, matching by
//! host/method/path, removal, and the admin API's own errors.

mod entra_support;

use std::time::{Duration, Instant};

use entra_support::*;
use ferry_sim::FaultSpec;

fn spec() -> FaultSpec {
    FaultSpec::default()
}

#[tokio::test]
async fn status_faults_in_each_services_shape() {
    let e = env().await;
    // Storage: XML error, x-ms-error-code, Retry-After. (The fault answers before the gateway.)
    e.admin
        .add_fault(&FaultSpec {
            host: Some("*.blob.sandbox.test".into()),
            status: Some(503),
            error_code: Some("ServerBusy".into()),
            retry_after_secs: Some(7),
            retry_after_ms: Some(1500),
            ..spec()
        })
        .await
        .expect("fault");
    let resp = e
        .http
        .get("https://contosologs.blob.sandbox.test/logs?restype=container&comp=list")
        .send()
        .await
        .expect("blob");
    assert_eq!(resp.status(), 503);
    let h = resp.headers().clone();
    assert_eq!(
        h.get("x-ms-error-code").and_then(|v| v.to_str().ok()),
        Some("ServerBusy")
    );
    assert_eq!(
        h.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    assert_eq!(
        h.get("x-ms-retry-after-ms").and_then(|v| v.to_str().ok()),
        Some("1500")
    );
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("<Error><Code>ServerBusy</Code><Message>"),
        "{body}"
    );

    // Key Vault: JSON error.
    e.admin
        .add_fault(&FaultSpec {
            host: Some("contoso-kv.vault.sandbox.test".into()),
            status: Some(429),
            retry_after_secs: Some(3),
            ..spec()
        })
        .await
        .expect("fault");
    let resp = e
        .http
        .get("https://contoso-kv.vault.sandbox.test/keys/k?api-version=7.5")
        .send()
        .await
        .expect("vault");
    assert_eq!(resp.status(), 429);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("3")
    );
    let b: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(b["error"]["code"], "Throttled");

    // Login: the Entra error shape.
    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            method: Some("POST".into()),
            status: Some(503),
            ..spec()
        })
        .await
        .expect("fault");
    let (s, b) = e
        .secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/.default",
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert!(b["error_description"]
        .as_str()
        .unwrap_or("")
        .contains("\r\nTrace ID: "));
    // GET on the login host is not matched by the POST rule.
    let jwks = e
        .http
        .get(format!(
            "https://login.sandbox.test/{CUSTOMER}/discovery/v2.0/keys"
        ))
        .send()
        .await
        .expect("jwks");
    assert_eq!(jwks.status(), 200);

    // The admin host is never faulted, and clearing restores service.
    e.admin
        .add_fault(&FaultSpec {
            outage: true,
            ..spec()
        })
        .await
        .expect("catch-all outage");
    e.admin.clear_faults().await.expect("clear");
    let (s, _) = e
        .secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/.default",
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn count_limited_faults_then_service_resumes() {
    let e = env().await;
    let id = e
        .admin
        .add_fault(&FaultSpec {
            host: Some("login.*".into()),
            path_prefix: Some(format!("/{CUSTOMER}/oauth2")),
            status: Some(429),
            retry_after_secs: Some(1),
            count: Some(2),
            ..spec()
        })
        .await
        .expect("fault");
    let scope = "https://storage.azure.com/.default";
    // Another tenant's path is not matched.
    assert_eq!(e.secret_token(HOME, APP, &e.secret, scope).await.0, 200);
    assert_eq!(e.secret_token(CUSTOMER, APP, &e.secret, scope).await.0, 429);
    assert_eq!(e.secret_token(CUSTOMER, APP, &e.secret, scope).await.0, 429);
    assert_eq!(e.secret_token(CUSTOMER, APP, &e.secret, scope).await.0, 200);
    // Used up: the rule is gone.
    assert!(e.admin.remove_fault(&id).await.is_err());

    let id = e
        .admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            status: Some(500),
            ..spec()
        })
        .await
        .expect("fault");
    assert_eq!(e.secret_token(CUSTOMER, APP, &e.secret, scope).await.0, 500);
    e.admin.remove_fault(&id).await.expect("remove");
    assert_eq!(e.secret_token(CUSTOMER, APP, &e.secret, scope).await.0, 200);
}

#[tokio::test]
async fn latency_reset_mid_body_and_outage() {
    let e = env().await;
    let jwks_url = format!("https://login.sandbox.test/{CUSTOMER}/discovery/v2.0/keys");

    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            latency_ms: Some(400),
            count: Some(1),
            ..spec()
        })
        .await
        .expect("latency");
    let start = Instant::now();
    let resp = e.http.get(&jwks_url).send().await.expect("delayed answer");
    assert_eq!(resp.status(), 200);
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );

    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            reset_after_bytes: Some(20),
            count: Some(1),
            ..spec()
        })
        .await
        .expect("reset");
    let resp = e.http.get(&jwks_url).send().await.expect("headers arrive");
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.is_err(),
        "the body must break off after 20 bytes"
    );

    // Outage: no answer at all, then the next request works again.
    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            outage: true,
            count: Some(1),
            ..spec()
        })
        .await
        .expect("outage");
    assert!(
        e.http.get(&jwks_url).send().await.is_err(),
        "outage closes the connection without a response"
    );
    assert_eq!(
        e.http.get(&jwks_url).send().await.expect("back").status(),
        200
    );

    // Over HTTP/1.1 too (the client above negotiates h2).
    let h1 = reqwest::Client::builder()
        .http1_only()
        .tls_certs_only([reqwest::Certificate::from_pem(e.sim.ca_pem().as_bytes()).expect("ca")])
        .resolve("login.sandbox.test", e.sim.https_addr())
        .build()
        .expect("h1 client");
    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            outage: true,
            count: Some(1),
            ..spec()
        })
        .await
        .expect("outage");
    assert!(h1.get(&jwks_url).send().await.is_err());
    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            reset_after_bytes: Some(5),
            count: Some(1),
            ..spec()
        })
        .await
        .expect("reset");
    let resp = h1.get(&jwks_url).send().await.expect("headers");
    assert!(resp.bytes().await.is_err());
}

#[tokio::test]
async fn admin_errors_and_request_counts() {
    let e = env().await;
    let err = e
        .admin
        .consent(CUSTOMER, "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
        .await
        .expect_err("unknown app");
    assert!(
        matches!(err, ferry_sim::AdminClientError::Status { status: 404, .. }),
        "{err}"
    );
    let err = e
        .admin
        .add_app(Some(APP), HOME, None)
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, ferry_sim::AdminClientError::Status { status: 409, .. }),
        "{err}"
    );
    let err = e
        .admin
        .add_tenant("not-a-guid", None)
        .await
        .expect_err("bad guid");
    assert!(
        matches!(err, ferry_sim::AdminClientError::Status { status: 400, .. }),
        "{err}"
    );
    let err = e
        .admin
        .post("/faults", serde_json::json!({"bogus": 1}))
        .await
        .expect_err("unknown field");
    assert!(
        matches!(err, ferry_sim::AdminClientError::Status { status: 400, .. }),
        "{err}"
    );
    let err = e
        .admin
        .add_fault(&FaultSpec::default())
        .await
        .expect_err("rule without effect");
    assert!(
        matches!(err, ferry_sim::AdminClientError::Status { status: 400, .. }),
        "{err}"
    );

    // Minted tokens verify like issued ones.
    let token = e
        .admin
        .mint_token(CUSTOMER, STORAGE, &e.customer_sp, Some(APP))
        .await
        .expect("mint");
    let claims = ferry_sim::verify_access_token(&e.sim.state(), &token, STORAGE).expect("valid");
    assert_eq!(claims.oid, e.customer_sp);

    for _ in 0..3 {
        e.secret_token(CUSTOMER, APP, &e.secret, "https://vault.azure.net/.default")
            .await;
    }
    assert_eq!(
        e.admin
            .token_request_count(CUSTOMER, "https://vault.azure.net")
            .await
            .expect("counts"),
        3
    );
    assert_eq!(
        e.admin
            .token_request_count(CUSTOMER, STORAGE)
            .await
            .expect("counts"),
        0
    );
}

#[tokio::test]
async fn a_held_response_was_served_before_it_arrives() {
    let e = env().await;
    e.admin
        .add_fault(&FaultSpec {
            host: Some("login.sandbox.test".into()),
            method: Some("POST".into()),
            response_latency_ms: Some(1500),
            count: Some(1),
            ..spec()
        })
        .await
        .expect("response latency");
    let served =
        |counts: serde_json::Value| counts["token"][CUSTOMER][STORAGE].as_u64().unwrap_or(0);
    let before = served(e.admin.requests().await.expect("requests"));
    let start = Instant::now();
    let ((status, _), served_meanwhile) = tokio::join!(
        e.secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/.default"
        ),
        async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            served(e.admin.requests().await.expect("requests"))
        }
    );
    assert_eq!(status, 200);
    // the token was issued (and counted) long before its response arrived
    assert_eq!(served_meanwhile, before + 1);
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}
