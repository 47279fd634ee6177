//! Contract tests of the Entra v2 token endpoint over real https: client secrets, every error
//! case with its exact body, OpenID metadata and JWKS, request counting.

mod entra_support;

use entra_support::*;
use serde_json::json;

#[tokio::test]
async fn secret_in_form_and_in_basic_auth_gets_a_verifiable_token() {
    let e = env().await;
    let (status, body) = e
        .secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);
    let c = e
        .verified_claims(body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(c["iss"], format!("https://sts.windows.net/{CUSTOMER}/"));
    assert_eq!(c["aud"], STORAGE);
    assert_eq!(c["tid"], CUSTOMER);
    assert_eq!(
        c["oid"],
        e.customer_sp.as_str(),
        "oid is the service principal in that tenant"
    );
    assert_eq!(c["sub"], c["oid"]);
    assert_eq!(
        (c["appid"].as_str(), c["azp"].as_str()),
        (Some(APP), Some(APP))
    );
    assert_eq!(
        (
            c["idtyp"].as_str(),
            c["ver"].as_str(),
            c["appidacr"].as_str()
        ),
        (Some("app"), Some("1.0"), Some("1"))
    );
    let (iat, nbf, exp) = (
        c["iat"].as_i64().expect("iat"),
        c["nbf"].as_i64().expect("nbf"),
        c["exp"].as_i64().expect("exp"),
    );
    assert_eq!((exp - iat, nbf), (3599, iat));

    // The same app in its home tenant gets a different service principal object id.
    let (status, home) = e
        .secret_token(HOME, APP, &e.secret, "https://vault.azure.net/.default")
        .await;
    assert_eq!(status, 200, "{home}");
    let hc = e
        .verified_claims(home["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(
        (hc["tid"].as_str(), hc["aud"].as_str()),
        (Some(HOME), Some("https://vault.azure.net"))
    );
    assert_ne!(hc["oid"], c["oid"]);

    // HTTP Basic client authentication.
    let resp = e
        .http
        .post(token_url(CUSTOMER))
        .basic_auth(APP, Some(&e.secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "https://storage.azure.com/.default"),
        ])
        .send()
        .await
        .expect("basic");
    assert_eq!(resp.status(), 200);

    // The library check resource servers use.
    let state = e.sim.state();
    let token = body["access_token"].as_str().expect("token");
    let claims = ferry_sim::verify_access_token(&state, token, "https://storage.azure.com/")
        .expect("valid for storage");
    assert_eq!(
        (
            claims.tid.as_str(),
            claims.oid.as_str(),
            claims.appid.as_str()
        ),
        (CUSTOMER, e.customer_sp.as_str(), APP)
    );
    assert!(matches!(
        ferry_sim::verify_access_token(&state, token, "https://vault.azure.net"),
        Err(ferry_sim::AccessTokenError::WrongAudience { .. })
    ));
    assert_eq!(
        e.admin
            .token_request_count(CUSTOMER, STORAGE)
            .await
            .expect("requests"),
        2
    );
}

#[tokio::test]
async fn tenant_and_consent_errors_have_entra_codes() {
    let e = env().await;
    let scope = "https://storage.azure.com/.default";
    let unknown_tenant = "99999999-9999-4999-8999-999999999999";
    let (s, b) = e.secret_token(unknown_tenant, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 400, "invalid_request", 90002);
    let (s, b) = e
        .secret_token("contoso.onmicrosoft.com", APP, &e.secret, scope)
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 90002);

    let (s, b) = e
        .secret_token(
            CUSTOMER,
            "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
            &e.secret,
            scope,
        )
        .await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);

    // A third tenant that never consented.
    let fabrikam = "44444444-4444-4444-8444-444444444444";
    e.admin
        .add_tenant(fabrikam, Some("Fabrikam"))
        .await
        .expect("tenant");
    let (s, b) = e.secret_token(fabrikam, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);
    assert!(
        b["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("'Fabrikam'"),
        "{b}"
    );

    e.admin
        .orphan_service_principal(CUSTOMER, APP)
        .await
        .expect("orphan");
    let (s, b) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 400, "invalid_client", 7000229);

    e.admin.revoke_consent(CUSTOMER, APP).await.expect("revoke");
    let (s, b) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 700016);

    let new_sp = e.admin.consent(CUSTOMER, APP).await.expect("consent again");
    assert_ne!(
        new_sp, e.customer_sp,
        "a new consent creates a new service principal"
    );
    let (s, _) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_eq!(s, 200);

    e.admin.disable_app(APP).await.expect("disable");
    let (s, b) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 400, "unauthorized_client", 7000112);
    e.admin.enable_app(APP).await.expect("enable");
    let (s, _) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn secret_errors_and_rotation() {
    let e = env().await;
    let scope = "https://storage.azure.com/.default";
    let (s, b) = e.secret_token(CUSTOMER, APP, "wrong-secret", scope).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000215);

    let (s, b) = e
        .token_form(
            CUSTOMER,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                ("scope", scope),
            ],
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000218);

    let rotated = e
        .admin
        .add_secret(APP, Some("second-secret-value"), None)
        .await
        .expect("rotate");
    assert_eq!(rotated.value, "second-secret-value");
    e.admin
        .expire_secret(APP, &e.secret_id)
        .await
        .expect("expire");
    let (s, b) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000222);
    let (s, _) = e
        .secret_token(CUSTOMER, APP, "second-secret-value", scope)
        .await;
    assert_eq!(s, 200);
    e.admin
        .remove_secret(APP, &e.secret_id)
        .await
        .expect("remove");
    let (s, b) = e.secret_token(CUSTOMER, APP, &e.secret, scope).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000215);

    // A secret created already expired.
    let short = e
        .admin
        .add_secret(APP, Some("short-lived"), Some(-5))
        .await
        .expect("expired secret");
    let (s, b) = e.secret_token(CUSTOMER, APP, &short.value, scope).await;
    assert_entra_error(s, &b, 401, "invalid_client", 7000222);
}

#[tokio::test]
async fn request_shape_errors() {
    let e = env().await;
    let (s, b) = e
        .secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/user_impersonation",
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_scope", 1002012);
    let (s, b) = e
        .secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/.default https://vault.azure.net/.default",
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_scope", 70011);
    let (s, b) = e
        .token_form(
            CUSTOMER,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                ("client_secret", &e.secret),
            ],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    let (s, b) = e
        .token_form(
            CUSTOMER,
            &[
                ("grant_type", "password"),
                ("client_id", APP),
                ("client_secret", &e.secret),
            ],
        )
        .await;
    assert_entra_error(s, &b, 400, "unsupported_grant_type", 70003);
    let (s, b) = e
        .token_form(
            CUSTOMER,
            &[("client_id", APP), ("client_secret", &e.secret)],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(b["error_description"]
        .as_str()
        .unwrap_or("")
        .contains("'grant_type'"));
    let (s, b) = e
        .token_form(
            CUSTOMER,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "https://storage.azure.com/.default"),
            ],
        )
        .await;
    assert_entra_error(s, &b, 400, "invalid_request", 900144);
    assert!(b["error_description"]
        .as_str()
        .unwrap_or("")
        .contains("'client_id'"));

    // The correlation id the client sends comes back.
    let resp = e
        .http
        .post(token_url(CUSTOMER))
        .header("client-request-id", "0f0f0f0f-0000-4000-8000-000000000000")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", APP),
            ("client_secret", "x"),
            ("scope", "a/.default"),
        ])
        .send()
        .await
        .expect("request");
    let b: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(b["correlation_id"], "0f0f0f0f-0000-4000-8000-000000000000");
}

#[tokio::test]
async fn openid_metadata_and_jwks() {
    let e = env().await;
    let port = e.sim.https_addr().port();
    // With an explicit port, as azure-identity sends it.
    let url = format!(
        "https://login.sandbox.test:{port}/{CUSTOMER}/v2.0/.well-known/openid-configuration"
    );
    let m: serde_json::Value = e
        .http
        .get(url)
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    assert_eq!(
        m["token_endpoint"],
        format!("https://login.sandbox.test:{port}/{CUSTOMER}/oauth2/v2.0/token")
    );
    assert_eq!(
        m["issuer"],
        format!("https://login.sandbox.test/{CUSTOMER}/v2.0")
    );
    let jwks: serde_json::Value = e
        .http
        .get(m["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    assert_eq!(jwks["keys"][0]["kid"], e.sim.state().signer.kid());

    let resp = e
        .http
        .get("https://login.sandbox.test/99999999-9999-4999-8999-999999999999/v2.0/.well-known/openid-configuration")
        .send()
        .await
        .expect("unknown tenant");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!((status, body["error_codes"].clone()), (400, json!([90002])));

    // Production-style authority pinned to the sim works the same.
    let (s, _) = {
        let resp = e
            .http
            .post(format!(
                "https://login.microsoftonline.com/{CUSTOMER}/oauth2/v2.0/token"
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                ("client_secret", &e.secret),
                ("scope", "https://storage.azure.com/.default"),
            ])
            .send()
            .await
            .expect("prod name");
        (resp.status().as_u16(), ())
    };
    assert_eq!(s, 200);
}

#[tokio::test]
async fn token_lifetime_follows_settings() {
    let e = env().await;
    e.admin
        .update_settings(Some(120), None)
        .await
        .expect("settings");
    let (s, b) = e
        .secret_token(
            CUSTOMER,
            APP,
            &e.secret,
            "https://storage.azure.com/.default",
        )
        .await;
    assert_eq!((s, b["expires_in"].as_u64()), (200, Some(120)));
    let c = e
        .verified_claims(b["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(
        c["exp"].as_i64().unwrap_or(0) - c["iat"].as_i64().unwrap_or(0),
        120
    );
}
