//! Contract tests of the managed identity endpoints: the App Service shape (identity header) and
//! the IMDS shape (`Metadata: true`, over https and over the plain-http listener), identity
//! selection, response shapes and errors.

mod entra_support;

use entra_support::*;
use serde_json::Value;

async fn get(
    e: &Env,
    url: &str,
    query: &[(&str, &str)],
    header: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = e.http.get(url).query(query);
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

const APP_SERVICE: &str = "https://identity.sandbox.test/msi/token";
const IMDS: &str = "https://identity.sandbox.test/metadata/identity/oauth2/token";

#[tokio::test]
async fn app_service_shape() {
    let e = env().await;
    let mi = e.admin.add_managed_identity(HOME, None).await.expect("mi");
    let header = e.sim.state().settings().identity_header;
    let q = [("api-version", "2019-08-01"), ("resource", STORAGE)];

    // Exactly one identity: no client_id needed.
    let (s, b) = get(&e, APP_SERVICE, &q, Some(("X-IDENTITY-HEADER", &header))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["token_type"].as_str(), b["resource"].as_str()),
        (Some("Bearer"), Some(STORAGE))
    );
    assert_eq!(b["client_id"], mi.client_id.as_str());
    let expires_on: i64 = b["expires_on"]
        .as_str()
        .expect("expires_on is a string")
        .parse()
        .expect("number");
    assert!(expires_on > ferry_sim::jwt::now_unix() + 3000);
    let c = e
        .verified_claims(b["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(
        (c["oid"].as_str(), c["tid"].as_str(), c["aud"].as_str()),
        (Some(mi.object_id.as_str()), Some(HOME), Some(STORAGE))
    );
    assert_eq!(c["iss"], format!("https://sts.windows.net/{HOME}/"));

    // Wrong or missing header: 401.
    let (s, _) = get(&e, APP_SERVICE, &q, Some(("X-IDENTITY-HEADER", "wrong"))).await;
    assert_eq!(s, 401);
    let (s, b) = get(&e, APP_SERVICE, &q, None).await;
    assert_eq!((s, b["statusCode"].as_u64()), (401, Some(401)));

    // A changed header (admin settings) is what counts.
    e.admin
        .update_settings(None, Some("new-header"))
        .await
        .expect("settings");
    let (s, _) = get(&e, APP_SERVICE, &q, Some(("X-IDENTITY-HEADER", &header))).await;
    assert_eq!(s, 401);
    let (s, _) = get(
        &e,
        APP_SERVICE,
        &q,
        Some(("X-IDENTITY-HEADER", "new-header")),
    )
    .await;
    assert_eq!(s, 200);

    // Two identities: client_id selects, none given is an error, unknown is an error.
    let second = e
        .admin
        .add_managed_identity(HOME, None)
        .await
        .expect("second mi");
    let (s, _) = get(
        &e,
        APP_SERVICE,
        &q,
        Some(("X-IDENTITY-HEADER", "new-header")),
    )
    .await;
    assert_eq!(s, 400);
    let q2 = [
        ("api-version", "2019-08-01"),
        ("resource", STORAGE),
        ("client_id", second.client_id.as_str()),
    ];
    let (s, b) = get(
        &e,
        APP_SERVICE,
        &q2,
        Some(("X-IDENTITY-HEADER", "new-header")),
    )
    .await;
    assert_eq!(
        (s, b["client_id"].as_str()),
        (200, Some(second.client_id.as_str()))
    );
    let q3 = [
        ("api-version", "2019-08-01"),
        ("resource", STORAGE),
        ("client_id", "99999999-9999-4999-8999-999999999999"),
    ];
    let (s, _) = get(
        &e,
        APP_SERVICE,
        &q3,
        Some(("X-IDENTITY-HEADER", "new-header")),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = get(
        &e,
        APP_SERVICE,
        &[("api-version", "2019-08-01")],
        Some(("X-IDENTITY-HEADER", "new-header")),
    )
    .await;
    assert_eq!(s, 400, "resource is required");

    let counts = e.admin.requests().await.expect("requests");
    assert!(
        counts["msi"][HOME][STORAGE].as_u64().unwrap_or(0) >= 3,
        "{counts}"
    );
}

#[tokio::test]
async fn imds_shape_over_https_and_plain_http() {
    let e = env().await;
    let mi = e
        .admin
        .add_managed_identity(HOME, Some("55555555-5555-4555-8555-555555555555"))
        .await
        .expect("mi");
    let q = [
        ("api-version", "2018-02-01"),
        ("resource", "https://vault.azure.net"),
        ("client_id", mi.client_id.as_str()),
    ];
    let (s, b) = get(&e, IMDS, &q, Some(("Metadata", "true"))).await;
    assert_eq!(s, 200, "{b}");
    for f in [
        "access_token",
        "refresh_token",
        "expires_in",
        "expires_on",
        "not_before",
        "resource",
        "token_type",
        "client_id",
    ] {
        assert!(b[f].is_string(), "{f} is a string in {b}");
    }
    assert_eq!(b["expires_in"], "3599");
    let c = e
        .verified_claims(b["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(c["aud"], "https://vault.azure.net");

    let (s, b) = get(&e, IMDS, &q, None).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    assert_eq!(
        b["error_description"],
        "Required metadata header not specified"
    );
    let (s, b) = get(
        &e,
        IMDS,
        &[("api-version", "2018-02-01")],
        Some(("Metadata", "true")),
    )
    .await;
    assert_eq!((s, b["error"].as_str()), (400, Some("invalid_request")));
    let q_unknown = [
        ("api-version", "2018-02-01"),
        ("resource", STORAGE),
        ("client_id", "99999999-9999-4999-8999-999999999999"),
    ];
    let (s, b) = get(&e, IMDS, &q_unknown, Some(("Metadata", "true"))).await;
    assert_eq!(
        (s, b["error_description"].as_str()),
        (400, Some("Identity not found"))
    );

    // The plain-http listener (real IMDS is http).
    let imds = e.sim.imds_addr().expect("imds listener");
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let resp = plain
        .get(format!("http://{imds}/metadata/identity/oauth2/token"))
        .query(&[("api-version", "2018-02-01"), ("resource", STORAGE)])
        .header("Metadata", "true")
        .send()
        .await
        .expect("imds over http");
    assert_eq!(resp.status(), 200);
    let b: Value = resp.json().await.expect("json");
    assert_eq!(b["client_id"], mi.client_id.as_str());
}

#[tokio::test]
async fn token_exchange_tokens_are_v2_shaped() {
    let e = env().await;
    let mi = e.admin.add_managed_identity(HOME, None).await.expect("mi");
    let q = [
        ("api-version", "2018-02-01"),
        ("resource", "api://AzureADTokenExchange"),
    ];
    let (s, b) = get(&e, IMDS, &q, Some(("Metadata", "true"))).await;
    assert_eq!(s, 200);
    let c = e
        .verified_claims(b["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(c["iss"], format!("https://login.sandbox.test/{HOME}/v2.0"));
    assert_eq!(
        (c["sub"].as_str(), c["ver"].as_str()),
        (Some(mi.object_id.as_str()), Some("2.0"))
    );
}
