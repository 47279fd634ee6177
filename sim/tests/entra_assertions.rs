//! Contract tests of client assertions over real https: certificate assertions in both header
//! forms (PS256 + `x5t#S256`, RS256 + `x5t`) with their signature, audience and time errors, and
//! federated assertions from the sim's managed identity and from admin-minted workload tokens.

mod entra_support;

use base64::Engine as _;
use entra_support::*;
use ferry_sim::ca::client_certificate;
use ferry_sim::jwt::{b64url, now_unix, sign_client_assertion};
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::{Digest, Sha256};

struct Cert {
    pair: ferry_sim::ca::ClientCertificatePair,
    der: Vec<u8>,
}

fn cert() -> Cert {
    let pair = client_certificate("ferry app").expect("client cert");
    let b64: String = pair
        .cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("pem body");
    Cert { pair, der }
}

fn claims(aud: &str, iat: i64, exp: i64) -> Value {
    json!({"aud": aud, "iss": APP, "sub": APP, "jti": uuid::Uuid::new_v4().to_string(), "iat": iat, "nbf": iat, "exp": exp})
}

fn aud(tenant: &str) -> String {
    format!("https://login.sandbox.test/{tenant}/oauth2/v2.0/token")
}

fn ps256(c: &Cert, claims: &Value) -> String {
    sign_client_assertion(
        &c.pair.key,
        "PS256",
        ("x5t#S256", &b64url(&Sha256::digest(&c.der))),
        claims,
    )
    .expect("sign")
}

fn rs256(c: &Cert, claims: &Value) -> String {
    sign_client_assertion(
        &c.pair.key,
        "RS256",
        ("x5t", &b64url(&Sha1::digest(&c.der))),
        claims,
    )
    .expect("sign")
}

#[tokio::test]
async fn certificate_assertions_in_both_forms() {
    let e = env().await;
    let c = cert();
    let thumbs = e
        .admin
        .add_certificate(APP, &c.pair.cert_pem)
        .await
        .expect("register cert");
    assert_eq!(
        thumbs.thumbprint_sha1,
        hex::encode_upper(Sha1::digest(&c.der))
    );
    let now = now_unix();

    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &ps256(&c, &claims(&aud(CUSTOMER), now, now + 600)),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let cl = e
        .verified_claims(b["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(
        (cl["oid"].as_str(), cl["appidacr"].as_str()),
        (Some(e.customer_sp.as_str()), Some("2"))
    );

    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &rs256(&c, &claims(&aud(CUSTOMER), now, now + 300)),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // The audience with the port the client used is accepted too.
    let port = e.sim.https_addr().port();
    let with_port = format!("https://login.sandbox.test:{port}/{CUSTOMER}/oauth2/v2.0/token");
    let (s, b) = e
        .assertion_token(CUSTOMER, &ps256(&c, &claims(&with_port, now, now + 300)))
        .await;
    assert_eq!(s, 200, "{b}");

    // Wrong audience (another tenant's endpoint).
    let (s, b) = e
        .assertion_token(CUSTOMER, &ps256(&c, &claims(&aud(HOME), now, now + 300)))
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);

    // Expired, not yet valid, and a lifetime over 10 minutes.
    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &ps256(&c, &claims(&aud(CUSTOMER), now - 1200, now - 600)),
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700024);
    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &ps256(&c, &claims(&aud(CUSTOMER), now + 900, now + 1200)),
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700024);
    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &ps256(&c, &claims(&aud(CUSTOMER), now, now + 3600)),
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700024);

    // Signed by a key that is not the registered certificate's, but claiming its thumbprint.
    let other = cert();
    let forged = sign_client_assertion(
        &other.pair.key,
        "PS256",
        ("x5t#S256", &b64url(&Sha256::digest(&c.der))),
        &claims(&aud(CUSTOMER), now, now + 300),
    )
    .expect("sign");
    let (s, b) = e.assertion_token(CUSTOMER, &forged).await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);

    // An unregistered certificate.
    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &ps256(&other, &claims(&aud(CUSTOMER), now, now + 300)),
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);

    // Malformed assertion.
    let (s, b) = e.assertion_token(CUSTOMER, "not-a-jwt").await;
    assert_entra_error(s, &b, 401, "invalid_client", 50027);

    // Certificate removed (rotation): the old one stops working.
    e.admin
        .remove_certificate(APP, &thumbs.thumbprint_sha1)
        .await
        .expect("remove cert");
    let (s, b) = e
        .assertion_token(
            CUSTOMER,
            &ps256(&c, &claims(&aud(CUSTOMER), now, now + 300)),
        )
        .await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);
}

async fn mi_exchange_token(e: &Env, client_id: &str) -> String {
    let header = e.sim.state().settings().identity_header;
    let resp = e
        .http
        .get("https://identity.sandbox.test/msi/token")
        .query(&[
            ("api-version", "2019-08-01"),
            ("resource", "api://AzureADTokenExchange"),
            ("client_id", client_id),
        ])
        .header("X-IDENTITY-HEADER", header)
        .send()
        .await
        .expect("mi token");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["access_token"].as_str().expect("token").to_string()
}

#[tokio::test]
async fn federated_assertion_from_the_providers_managed_identity() {
    let e = env().await;
    let mi = e
        .admin
        .add_managed_identity(HOME, Some("55555555-5555-4555-8555-555555555555"))
        .await
        .expect("mi");
    let issuer = format!("https://login.sandbox.test/{HOME}/v2.0");

    let assertion = mi_exchange_token(&e, &mi.client_id).await;
    let ac = e.verified_claims(&assertion).await;
    assert_eq!(
        (
            ac["iss"].as_str(),
            ac["sub"].as_str(),
            ac["aud"].as_str(),
            ac["tid"].as_str()
        ),
        (
            Some(issuer.as_str()),
            Some(mi.object_id.as_str()),
            Some("api://AzureADTokenExchange"),
            Some(HOME)
        )
    );

    // No federated credential yet: 70021.
    let (s, b) = e.assertion_token(CUSTOMER, &assertion).await;
    assert_entra_error(s, &b, 400, "invalid_request", 70021);

    let fic = e
        .admin
        .add_federated_credential(APP, &issuer, &mi.object_id, &["api://AzureADTokenExchange"])
        .await
        .expect("fic");
    let (s, b) = e.assertion_token(CUSTOMER, &assertion).await;
    assert_eq!(s, 200, "{b}");
    let cl = e
        .verified_claims(b["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(
        (cl["tid"].as_str(), cl["oid"].as_str(), cl["appid"].as_str()),
        (Some(CUSTOMER), Some(e.customer_sp.as_str()), Some(APP))
    );

    // A credential for another subject does not match.
    e.admin
        .remove_federated_credential(APP, &fic)
        .await
        .expect("remove fic");
    e.admin
        .add_federated_credential(
            APP,
            &issuer,
            "someone-else",
            &["api://AzureADTokenExchange"],
        )
        .await
        .expect("fic");
    let (s, b) = e.assertion_token(CUSTOMER, &assertion).await;
    assert_entra_error(s, &b, 400, "invalid_request", 70021);
}

#[tokio::test]
async fn federated_assertion_from_a_workload_token() {
    let e = env().await;
    let issuer = "https://oidc.aks.sandbox.test/provider-cluster/";
    let subject = "system:serviceaccount:ferry:ferry";
    e.admin
        .add_federated_credential(APP, issuer, subject, &["api://AzureADTokenExchange"])
        .await
        .expect("fic");

    let token = e
        .admin
        .workload_token(issuer, subject, "api://AzureADTokenExchange", None)
        .await
        .expect("workload token");
    let (s, b) = e.assertion_token(CUSTOMER, &token).await;
    assert_eq!(s, 200, "{b}");

    let expired = e
        .admin
        .workload_token(issuer, subject, "api://AzureADTokenExchange", Some(-600))
        .await
        .expect("expired");
    let (s, b) = e.assertion_token(CUSTOMER, &expired).await;
    assert_entra_error(s, &b, 401, "invalid_client", 700024);

    // A new credential takes effect only after the propagation delay (70021 meanwhile).
    e.admin
        .set_federated_propagation_secs(2)
        .await
        .expect("settings");
    let late_subject = "system:serviceaccount:ferry:late";
    e.admin
        .add_federated_credential(APP, issuer, late_subject, &["api://AzureADTokenExchange"])
        .await
        .expect("fic");
    let late = e
        .admin
        .workload_token(issuer, late_subject, "api://AzureADTokenExchange", None)
        .await
        .expect("token");
    let (s, b) = e.assertion_token(CUSTOMER, &late).await;
    assert_entra_error(s, &b, 400, "invalid_request", 70021);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (s, b) = e.assertion_token(CUSTOMER, &late).await;
    assert_eq!(s, 200, "{b}");
    e.admin
        .set_federated_propagation_secs(0)
        .await
        .expect("settings");

    let wrong_aud = e
        .admin
        .workload_token(issuer, subject, "api://other", None)
        .await
        .expect("wrong aud");
    let (s, b) = e.assertion_token(CUSTOMER, &wrong_aud).await;
    assert_entra_error(s, &b, 400, "invalid_request", 70021);

    // A token with the right claims but not signed by the sim.
    let c = cert();
    let now = now_unix();
    let forged = sign_client_assertion(
        &c.pair.key,
        "RS256",
        ("kid", "x"),
        &json!({"iss": issuer, "sub": subject, "aud": "api://AzureADTokenExchange", "iat": now, "exp": now + 300}),
    )
    .expect("sign");
    let (s, b) = e.assertion_token(CUSTOMER, &forged).await;
    assert_entra_error(s, &b, 401, "invalid_client", 700027);
}
