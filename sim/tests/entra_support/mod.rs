//! Shared setup for the Entra, MI and admin contract tests: a sim on free ports with a home
//! tenant, a customer tenant, a multi-tenant app consented in both and one secret.
#![allow(dead_code)]

use ferry_sim::jwt::UnverifiedJwt;
use ferry_sim::{AdminClient, RunningSim};
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;

pub const HOME: &str = "22222222-2222-4222-8222-222222222222";
pub const CUSTOMER: &str = "33333333-3333-4333-8333-333333333333";
pub const APP: &str = "11111111-1111-4111-8111-111111111111";
pub const STORAGE: &str = "https://storage.azure.com";

pub struct Env {
    pub sim: RunningSim,
    pub admin: AdminClient,
    pub http: reqwest::Client,
    pub secret: String,
    pub secret_id: String,
    /// The app's service principal in CUSTOMER.
    pub customer_sp: String,
}

pub async fn env() -> Env {
    let sim = ferry_sim::serve_ephemeral().await.expect("sim starts");
    let admin = sim.admin().expect("admin client");
    let http = sim.http_client().expect("http client");
    admin
        .add_tenant(HOME, Some("Provider"))
        .await
        .expect("home tenant");
    admin
        .add_tenant(CUSTOMER, Some("Contoso"))
        .await
        .expect("customer tenant");
    admin
        .add_app(Some(APP), HOME, Some("Ferry"))
        .await
        .expect("app");
    let customer_sp = admin.consent(CUSTOMER, APP).await.expect("consent");
    let s = admin.add_secret(APP, None, None).await.expect("secret");
    Env {
        sim,
        admin,
        http,
        secret: s.value,
        secret_id: s.id,
        customer_sp,
    }
}

pub fn token_url(tenant: &str) -> String {
    format!("https://login.sandbox.test/{tenant}/oauth2/v2.0/token")
}

impl Env {
    /// POSTs a form to the token endpoint of `tenant`; returns status and JSON body.
    pub async fn token_form(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(token_url(tenant))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json body"))
    }

    /// A secret-based token request.
    pub async fn secret_token(
        &self,
        tenant: &str,
        client_id: &str,
        secret: &str,
        scope: &str,
    ) -> (u16, Value) {
        self.token_form(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("scope", scope),
            ],
        )
        .await
    }

    /// An assertion-based token request.
    pub async fn assertion_token(&self, tenant: &str, assertion: &str) -> (u16, Value) {
        self.token_form(
            tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", "https://storage.azure.com/.default"),
            ],
        )
        .await
    }

    /// Claims of `token` after checking its signature with the key from the sim's JWKS endpoint.
    pub async fn verified_claims(&self, token: &str) -> Value {
        let jwks: Value = self
            .http
            .get(format!(
                "https://login.sandbox.test/{CUSTOMER}/discovery/v2.0/keys"
            ))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks json");
        let jwt = UnverifiedJwt::parse(token).expect("jwt");
        let kid = jwt.header["kid"].as_str().expect("kid");
        let key = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|k| k["kid"] == kid)
            .expect("kid in jwks");
        let b = |f: &str| {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key[f].as_str().expect("field"))
                .expect("b64");
            BigUint::from_bytes_be(&bytes)
        };
        let public = RsaPublicKey::new(b("n"), b("e")).expect("rsa key");
        jwt.verify_signature(&public)
            .expect("token signature verifies with the JWKS key");
        jwt.claims
    }
}

/// Asserts an Entra error: status, `error`, AADSTS code and the exact body shape.
pub fn assert_entra_error(
    status: u16,
    body: &Value,
    want_status: u16,
    want_error: &str,
    want_code: u64,
) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want_status, Some(want_error)),
        "body: {body}"
    );
    assert_eq!(
        body["error_codes"],
        serde_json::json!([want_code]),
        "body: {body}"
    );
    let d = body["error_description"]
        .as_str()
        .expect("error_description");
    assert!(d.starts_with(&format!("AADSTS{want_code}: ")), "{d}");
    let lines: Vec<&str> = d.split("\r\n").collect();
    assert_eq!(lines.len(), 4, "{d}");
    assert!(
        lines[1].starts_with("Trace ID: ")
            && lines[2].starts_with("Correlation ID: ")
            && lines[3].starts_with("Timestamp: ")
    );
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={want_code}")
    );
    for f in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[f].is_string(), "{f} in {body}");
    }
    assert_eq!(
        lines[1],
        format!("Trace ID: {}", body["trace_id"].as_str().unwrap_or(""))
    );
}
