//! Key Vault contract tests over real https against the sim (no Azurite needed): the challenge,
//! token checks, every 403 innererror, 404s, disabled keys, wrap/unwrap for each algorithm,
//! rotation, import, soft delete and recovery, secrets, bad requests.

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ferry_sim::admin_client::AdminClient;
use ferry_sim::ca::SandboxCertificates;
use ferry_sim::server::{serve, RunningSim, ServeConfig};
use ferry_sim::state::{Settings, SimConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

const TENANT: &str = "33333333-3333-4333-8333-333333333333";
const OTHER_TENANT: &str = "44444444-4444-4444-8444-444444444444";
const APP: &str = "11111111-1111-4111-8111-111111111111";
const SP: &str = "66666666-6666-4666-8666-666666666666";
const RESOURCE: &str = "https://vault.sandbox.test";

struct Kv {
    sim: RunningSim,
    http: reqwest::Client,
    admin: AdminClient,
}

async fn start() -> Kv {
    let (certs, _ca) = SandboxCertificates::generate().expect("certificates");
    let sim = serve(ServeConfig {
        https_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        imds_listen: None,
        server_cert_pem: certs.server.chain_pem.clone(),
        server_key_pem: certs.server.key_pem.clone(),
        settings: Settings::default(),
        config: SimConfig {
            azurite_url: None,
            ca_pem: certs.ca_pem.clone(),
        },
    })
    .await
    .expect("sim starts");
    let http = sim.http_client().expect("http client");
    let admin = sim.admin().expect("admin client");
    Kv { sim, http, admin }
}

impl Kv {
    async fn vault(&self, name: &str, kind: &str, model: &str) {
        self.admin
            .post(
                "/vaults",
                json!({"name": name, "tenant_id": TENANT, "kind": kind, "permission_model": model}),
            )
            .await
            .expect("create vault");
    }

    async fn grant(&self, vault: &str, keys: &[&str], secrets: &[&str]) {
        self.admin
            .put(
                &format!("/vaults/{vault}/access"),
                json!({"object_id": SP, "keys": keys, "secrets": secrets}),
            )
            .await
            .expect("grant");
    }

    async fn admin_key(&self, vault: &str, name: &str, kty: &str) -> Value {
        self.admin
            .post(&format!("/vaults/{vault}/keys/{name}"), json!({"kty": kty}))
            .await
            .expect("create key")
    }

    async fn token(&self, tenant: &str, resource: &str) -> String {
        self.admin
            .mint_token(tenant, resource, SP, Some(APP))
            .await
            .expect("mint token")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut r = self.http.request(method, url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.expect("request answered");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, headers, value)
    }
}

fn assert_error(
    status: StatusCode,
    body: &Value,
    want_status: u16,
    code: &str,
    inner: Option<&str>,
) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    match inner {
        Some(i) => assert_eq!(body["error"]["innererror"]["code"], i, "{body}"),
        None => assert!(body["error"].get("innererror").is_none(), "{body}"),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn challenge_then_token_checks() {
    let kv = start().await;
    kv.vault("contoso-kv", "vault", "access_policy").await;
    kv.admin_key("contoso-kv", "ferry-cmk", "RSA").await;
    kv.grant("contoso-kv", &["get"], &[]).await;
    let url = "https://contoso-kv.vault.sandbox.test/keys/ferry-cmk?api-version=7.5";

    let (status, headers, body) = kv.call(reqwest::Method::GET, url, None, None).await;
    assert_error(status, &body, 401, "Unauthorized", None);
    assert_eq!(
        body["error"]["message"],
        "AKV10000: Request is missing a Bearer or PoP token."
    );
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer authorization=\"https://login.sandbox.test/{TENANT}\", resource=\"https://vault.sandbox.test\"")
    );

    // Production-style name: the challenge names login.windows.net and vault.azure.net.
    let (status, headers, _) = kv
        .call(
            reqwest::Method::GET,
            "https://contoso-kv.vault.azure.net/keys/ferry-cmk?api-version=7.5",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer authorization=\"https://login.windows.net/{TENANT}\", resource=\"https://vault.azure.net\"")
    );

    let wrong_aud = kv.token(TENANT, "https://storage.azure.com").await;
    let (status, headers, body) = kv
        .call(reqwest::Method::GET, url, Some(&wrong_aud), None)
        .await;
    assert_error(status, &body, 401, "Unauthorized", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("AKV10022"),
        "{body}"
    );
    assert!(headers.contains_key("www-authenticate"));

    let foreign = kv.token(OTHER_TENANT, RESOURCE).await;
    let (status, _, body) = kv
        .call(reqwest::Method::GET, url, Some(&foreign), None)
        .await;
    assert_error(status, &body, 401, "Unauthorized", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("AKV10032"),
        "{body}"
    );

    let (status, _, body) = kv
        .call(reqwest::Method::GET, url, Some("not.a.jwt"), None)
        .await;
    assert_error(status, &body, 401, "Unauthorized", None);

    let good = kv.token(TENANT, RESOURCE).await;
    let (status, _, body) = kv.call(reqwest::Method::GET, url, Some(&good), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["key"]["kty"], "RSA");

    let (status, _, body) = kv
        .call(
            reqwest::Method::GET,
            "https://contoso-kv.vault.sandbox.test/keys/ferry-cmk",
            Some(&good),
            None,
        )
        .await;
    assert_error(status, &body, 400, "BadParameter", None);
    drop(kv.sim);
}

#[tokio::test]
async fn each_forbidden_innererror() {
    let kv = start().await;
    kv.vault("policy-kv", "vault", "access_policy").await;
    kv.vault("rbac-kv", "vault", "rbac").await;
    for v in ["policy-kv", "rbac-kv"] {
        kv.admin_key(v, "k", "RSA").await;
        kv.grant(v, &["get"], &[]).await;
    }
    let token = kv.token(TENANT, RESOURCE).await;
    let body = json!({"alg": "RSA-OAEP-256", "value": b64(&[1u8; 32])});

    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            "https://policy-kv.vault.sandbox.test/keys/k/unwrapkey?api-version=7.5",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByPolicy"));
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not have keys unwrapKey permission"),
        "{b}"
    );

    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            "https://rbac-kv.vault.sandbox.test/keys/k/wrapkey?api-version=7.5",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByRbac"));

    // Permission is checked before existence, as the service does.
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            "https://policy-kv.vault.sandbox.test/keys/nope/unwrapkey?api-version=7.5",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByPolicy"));

    let get = "https://policy-kv.vault.sandbox.test/keys/k?api-version=7.5";
    kv.admin
        .put(
            "/vaults/policy-kv/network",
            json!({"firewall_denied": true}),
        )
        .await
        .expect("network");
    let (s, _, b) = kv.call(reqwest::Method::GET, get, Some(&token), None).await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByFirewall"));
    kv.admin
        .put(
            "/vaults/policy-kv/network",
            json!({"firewall_denied": false, "public_access_disabled": true}),
        )
        .await
        .expect("network");
    let (s, _, b) = kv.call(reqwest::Method::GET, get, Some(&token), None).await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByConnection"));
    kv.admin
        .put(
            "/vaults/policy-kv/network",
            json!({"public_access_disabled": false}),
        )
        .await
        .expect("network");
    let (s, _, _) = kv.call(reqwest::Method::GET, get, Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);

    // Revoking the access policy takes effect at once.
    kv.admin
        .delete("/vaults/policy-kv/access", Some(json!({"object_id": SP})))
        .await
        .expect("revoke");
    let (s, _, b) = kv.call(reqwest::Method::GET, get, Some(&token), None).await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByPolicy"));

    // A grant by (tenant, app) matches the service principal's tokens too.
    kv.admin
        .put(
            "/vaults/policy-kv/access",
            json!({"tenant_id": TENANT, "app_id": APP, "keys": ["get"]}),
        )
        .await
        .expect("grant by app");
    let (s, _, _) = kv.call(reqwest::Method::GET, get, Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn rsa_keys_wrap_and_unwrap_with_every_algorithm_and_rotate() {
    let kv = start().await;
    kv.vault("kv1", "vault", "access_policy").await;
    kv.grant(
        "kv1",
        &["get", "create", "wrapKey", "unwrapKey", "list"],
        &[],
    )
    .await;
    let token = kv.token(TENANT, RESOURCE).await;
    let base = "https://kv1.vault.sandbox.test";

    let (s, _, created) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/cmk/create?api-version=7.5"),
            Some(&token),
            Some(json!({"kty": "RSA", "key_size": 2048})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{created}");
    let kid1 = created["key"]["kid"].as_str().expect("kid").to_string();
    let version1 = kid1.rsplit('/').next().expect("version").to_string();
    assert_eq!(kid1, format!("{base}/keys/cmk/{version1}"));
    assert_eq!(version1.len(), 32);
    assert!(
        created["key"]["n"].is_string() && created["key"]["e"] == "AQAB",
        "{created}"
    );
    assert!(
        created["key"].get("d").is_none(),
        "private members never leave the vault"
    );
    assert_eq!(created["attributes"]["enabled"], true);

    let cek = [42u8; 32];
    for alg in ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"] {
        let (s, _, wrapped) = kv
            .call(
                reqwest::Method::POST,
                &format!("{base}/keys/cmk/wrapkey?api-version=7.5"),
                Some(&token),
                Some(json!({"alg": alg, "value": b64(&cek)})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{alg}: {wrapped}");
        assert_eq!(wrapped["kid"], kid1.as_str());
        let value = wrapped["value"].as_str().expect("value");
        assert!(
            !value.contains('=') && !value.contains('+') && !value.contains('/'),
            "base64url without padding"
        );
        let (s, _, unwrapped) = kv
            .call(
                reqwest::Method::POST,
                &format!("{kid1}/unwrapkey?api-version=7.5"),
                Some(&token),
                Some(json!({"alg": alg, "value": value})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{alg}: {unwrapped}");
        assert_eq!(unwrapped["value"], b64(&cek), "{alg}");
        assert_eq!(unwrapped["kid"], kid1.as_str());
    }
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &format!("{kid1}/wrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "A256KW", "value": b64(&cek)})),
        )
        .await;
    assert_error(s, &b, 400, "BadParameter", None);

    // Wrap with version 1, rotate, and unwrap by the versioned id.
    let (_, _, wrapped) = kv
        .call(
            reqwest::Method::POST,
            &format!("{kid1}/wrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&cek)})),
        )
        .await;
    let (s, _, rotated) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/cmk/create?api-version=7.5"),
            Some(&token),
            Some(json!({"kty": "RSA"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let kid2 = rotated["key"]["kid"].as_str().expect("kid2").to_string();
    assert_ne!(kid1, kid2);
    let (_, _, latest) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys/cmk/?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        latest["key"]["kid"],
        kid2.as_str(),
        "trailing slash means the latest version"
    );
    let (_, _, old) = kv
        .call(
            reqwest::Method::GET,
            &format!("{kid1}?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(old["key"]["kid"], kid1.as_str());
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &format!("{kid1}/unwrapKey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "RSA-OAEP-256", "value": wrapped["value"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["value"], b64(&cek));
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/cmk/unwrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "RSA-OAEP-256", "value": wrapped["value"]})),
        )
        .await;
    assert_error(s, &b, 400, "BadParameter", None);

    let (s, _, list) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["value"][0]["kid"], format!("{base}/keys/cmk"));

    let (s, _, b) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys/cmk/00000000000000000000000000000000?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_error(s, &b, 404, "KeyNotFound", None);
}

#[tokio::test]
async fn managed_hsm_oct_keys_use_a256kw() {
    let kv = start().await;
    kv.vault("hsm1", "managed_hsm", "rbac").await;
    kv.grant("hsm1", &["get", "wrapKey", "unwrapKey", "create"], &[])
        .await;
    let bundle = kv.admin_key("hsm1", "aes", "oct-HSM").await;
    assert_eq!(bundle["key"]["kty"], "oct-HSM");
    assert!(bundle["key"].get("k").is_none());
    let token = kv.token(TENANT, "https://managedhsm.sandbox.test").await;
    let base = "https://hsm1.managedhsm.sandbox.test";

    let (s, h, _) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys/aes?api-version=7.5"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap_or_default()
        .contains("resource=\"https://managedhsm.sandbox.test\""));

    let cek = [5u8; 32];
    let (s, _, wrapped) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/aes/wrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "A256KW", "value": b64(&cek)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{wrapped}");
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(wrapped["value"].as_str().expect("value"))
            .expect("b64")
            .len(),
        40
    );
    let kid = wrapped["kid"].as_str().expect("kid");
    let (s, _, unwrapped) = kv
        .call(
            reqwest::Method::POST,
            &format!("{kid}/unwrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "A256KW", "value": wrapped["value"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{unwrapped}");
    assert_eq!(unwrapped["value"], b64(&cek));
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &format!("{kid}/unwrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "RSA-OAEP", "value": wrapped["value"]})),
        )
        .await;
    assert_error(s, &b, 400, "BadParameter", None);

    // RSA-HSM keys exist on a Managed HSM too.
    let (s, _, rsa) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/rsa/create?api-version=7.5"),
            Some(&token),
            Some(json!({"kty": "RSA-HSM"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rsa}");
    assert_eq!(rsa["key"]["kty"], "RSA-HSM");
    // A vault refuses oct keys.
    kv.vault("plainkv", "vault", "access_policy").await;
    let refused = kv
        .admin
        .post("/vaults/plainkv/keys/aes", json!({"kty": "oct-HSM"}))
        .await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn disabled_deleted_and_unknown_keys() {
    let kv = start().await;
    kv.vault("kv2", "vault", "access_policy").await;
    let bundle = kv.admin_key("kv2", "cmk", "RSA").await;
    let kid = bundle["key"]["kid"].as_str().expect("kid").to_string();
    let version = kid.rsplit('/').next().expect("version").to_string();
    kv.grant(
        "kv2",
        &["get", "wrapKey", "unwrapKey", "update", "delete"],
        &[],
    )
    .await;
    let token = kv.token(TENANT, RESOURCE).await;
    let base = "https://kv2.vault.sandbox.test";
    let cek = [3u8; 32];
    let (_, _, wrapped) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/cmk/wrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "RSA-OAEP", "value": b64(&cek)})),
        )
        .await;
    let unwrap = json!({"alg": "RSA-OAEP", "value": wrapped["value"]});
    let unwrap_url = format!("{base}/keys/cmk/{version}/unwrapkey?api-version=7.5");

    kv.admin
        .post("/vaults/kv2/keys/cmk/disable", json!({}))
        .await
        .expect("disable");
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &unwrap_url,
            Some(&token),
            Some(unwrap.clone()),
        )
        .await;
    assert_error(s, &b, 403, "Forbidden", Some("KeyDisabled"));
    assert_eq!(
        b["error"]["message"],
        "Operation unwrapKey is not allowed on a disabled key."
    );
    let (s, _, got) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys/cmk?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got["attributes"]["enabled"], false);
    kv.admin
        .post("/vaults/kv2/keys/cmk/enable", json!({}))
        .await
        .expect("enable");
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &unwrap_url,
            Some(&token),
            Some(unwrap.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Data-plane PATCH disables one version.
    let (s, _, patched) = kv
        .call(
            reqwest::Method::PATCH,
            &format!("{base}/keys/cmk/{version}?api-version=7.5"),
            Some(&token),
            Some(json!({"attributes": {"enabled": false}})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(patched["attributes"]["enabled"], false);
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &unwrap_url,
            Some(&token),
            Some(unwrap.clone()),
        )
        .await;
    assert_error(s, &b, 403, "Forbidden", Some("KeyDisabled"));
    kv.call(
        reqwest::Method::PATCH,
        &format!("{base}/keys/cmk/{version}?api-version=7.5"),
        Some(&token),
        Some(json!({"attributes": {"enabled": true}})),
    )
    .await;

    // Soft delete through the data plane: 404 until recovered.
    let (s, _, deleted) = kv
        .call(
            reqwest::Method::DELETE,
            &format!("{base}/keys/cmk?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(deleted["recoveryId"], format!("{base}/deletedkeys/cmk"));
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &unwrap_url,
            Some(&token),
            Some(unwrap.clone()),
        )
        .await;
    assert_error(s, &b, 404, "KeyNotFound", None);
    let (s, _, b) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys/cmk?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_error(s, &b, 404, "KeyNotFound", None);
    kv.admin
        .post("/vaults/kv2/keys/cmk/recover", json!({}))
        .await
        .expect("recover");
    let (s, _, _) = kv
        .call(
            reqwest::Method::POST,
            &unwrap_url,
            Some(&token),
            Some(unwrap.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    // Admin delete too.
    kv.admin
        .delete("/vaults/kv2/keys/cmk", None)
        .await
        .expect("admin delete");
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &unwrap_url,
            Some(&token),
            Some(unwrap),
        )
        .await;
    assert_error(s, &b, 404, "KeyNotFound", None);

    let (s, _, b) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/keys/never?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_error(s, &b, 404, "KeyNotFound", None);
}

#[tokio::test]
async fn import_keys_and_bad_requests() {
    use rsa::traits::{PrivateKeyParts as _, PublicKeyParts as _};
    let kv = start().await;
    kv.vault("kv3", "vault", "access_policy").await;
    kv.grant("kv3", &["import", "unwrapKey", "wrapKey", "get"], &[])
        .await;
    let token = kv.token(TENANT, RESOURCE).await;
    let base = "https://kv3.vault.sandbox.test";
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("rsa");
    let primes = key.primes();
    let jwk = json!({
        "kty": "RSA",
        "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()), "d": b64(&key.d().to_bytes_be()),
        "p": b64(&primes[0].to_bytes_be()), "q": b64(&primes[1].to_bytes_be()),
    });
    let (s, _, imported) = kv
        .call(
            reqwest::Method::PUT,
            &format!("{base}/keys/byok?api-version=7.5"),
            Some(&token),
            Some(json!({"key": jwk})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{imported}");
    assert_eq!(imported["key"]["n"], b64(&key.n().to_bytes_be()));
    // Wrap locally with the public key, unwrap in the vault.
    let cek = [8u8; 32];
    let wrapped = key
        .to_public_key()
        .encrypt(
            &mut rand::thread_rng(),
            rsa::Oaep::new::<sha2::Sha256>(),
            &cek,
        )
        .expect("local wrap");
    let (s, _, b) = kv
        .call(
            reqwest::Method::POST,
            &format!("{base}/keys/byok/unwrapkey?api-version=7.5"),
            Some(&token),
            Some(json!({"alg": "RSA-OAEP-256", "value": b64(&wrapped)})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["value"], b64(&cek));

    for bad in [
        json!({"value": "AAAA"}),
        json!({"alg": "RSA-OAEP", "value": "!!!"}),
        json!({"alg": "NOPE", "value": "AAAA"}),
    ] {
        let (s, _, b) = kv
            .call(
                reqwest::Method::POST,
                &format!("{base}/keys/byok/wrapkey?api-version=7.5"),
                Some(&token),
                Some(bad.clone()),
            )
            .await;
        assert_error(s, &b, 400, "BadParameter", None);
    }
    let (s, _, b) = kv
        .call(
            reqwest::Method::PUT,
            &format!("{base}/keys/broken?api-version=7.5"),
            Some(&token),
            Some(json!({"key": {"kty": "RSA", "n": "AQAB"}})),
        )
        .await;
    assert_error(s, &b, 400, "BadParameter", None);
}

#[tokio::test]
async fn secrets_get_and_set() {
    let kv = start().await;
    kv.vault("kv4", "vault", "access_policy").await;
    let token = kv.token(TENANT, RESOURCE).await;
    let base = "https://kv4.vault.sandbox.test";
    kv.admin
        .put("/vaults/kv4/secrets/app-secret", json!({"value": "s3cr3t"}))
        .await
        .expect("admin secret");

    let (s, _, b) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/secrets/app-secret?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_error(s, &b, 403, "Forbidden", Some("ForbiddenByPolicy"));
    kv.grant("kv4", &[], &["get", "set"]).await;
    let (s, _, b) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/secrets/app-secret?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["value"], "s3cr3t");
    let id = b["id"].as_str().expect("id").to_string();
    assert!(id.starts_with(&format!("{base}/secrets/app-secret/")));

    let (s, _, set) = kv
        .call(
            reqwest::Method::PUT,
            &format!("{base}/secrets/app-secret?api-version=7.5"),
            Some(&token),
            Some(json!({"value": "v2"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    let (_, _, latest) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/secrets/app-secret/?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(latest["value"], "v2");
    let (_, _, old) = kv
        .call(
            reqwest::Method::GET,
            &format!("{id}?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(old["value"], "s3cr3t");

    let (s, _, b) = kv
        .call(
            reqwest::Method::GET,
            &format!("{base}/secrets/missing?api-version=7.5"),
            Some(&token),
            None,
        )
        .await;
    assert_error(s, &b, 404, "SecretNotFound", None);
    let (s, _, b) = kv
        .call(
            reqwest::Method::PUT,
            &format!("{base}/secrets/x?api-version=7.5"),
            Some(&token),
            Some(json!({"nope": 1})),
        )
        .await;
    assert_error(s, &b, 400, "BadParameter", None);
}
