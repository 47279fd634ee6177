//! ferry-sim checked with Microsoft's own Python clients (`azure-identity`,
//! `azure-keyvault-keys`): `sim/tests/python/test_identity.py` runs against a sim started here.
//!
//! The python comes from `FERRY_PYTHON`, else `.venv/bin/python` in the repo root. When it or the
//! packages are missing the test FAILS with the install command: it is never skipped.

mod entra_support;

use std::path::PathBuf;
use std::process::Command;

use entra_support::*;
use serde_json::json;

const INSTALL_HINT: &str =
    "python3 -m venv .venv && .venv/bin/pip install -r sim/tests/python/requirements.txt (in the repo root)";

fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn python() -> PathBuf {
    match std::env::var_os("FERRY_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv/bin/python"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsofts_python_clients_accept_the_sim() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import azure.identity, azure.keyvault.keys"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{} lacks azure-identity / azure-keyvault-keys ({}); install them: {INSTALL_HINT}, or set FERRY_PYTHON",
            py.display(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        ),
        Err(e) => panic!("cannot run {} ({e}); install: {INSTALL_HINT}, or set FERRY_PYTHON", py.display()),
    }

    let e = env().await;
    let a = &e.admin;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, e.sim.ca_pem()).expect("write ca");

    // Certificates: one registered, one not. CertificateCredential wants cert and key in one PEM.
    let cert = ferry_sim::ca::client_certificate("ferry app").expect("cert");
    a.add_certificate(APP, &cert.cert_pem)
        .await
        .expect("register cert");
    let cert_path = dir.path().join("app.pem");
    std::fs::write(&cert_path, format!("{}{}", cert.key_pem, cert.cert_pem)).expect("write cert");
    let other = ferry_sim::ca::client_certificate("stranger").expect("cert");
    let other_path = dir.path().join("other.pem");
    std::fs::write(&other_path, format!("{}{}", other.key_pem, other.cert_pem))
        .expect("write cert");

    // Error cases.
    let expired = a
        .add_secret(APP, None, Some(-60))
        .await
        .expect("expired secret");
    let unconsented = "44444444-4444-4444-8444-444444444444";
    a.add_tenant(unconsented, Some("Fabrikam"))
        .await
        .expect("tenant");
    let orphaned = "66666666-6666-4666-8666-666666666666";
    a.add_tenant(orphaned, Some("Orphaned"))
        .await
        .expect("tenant");
    a.consent(orphaned, APP).await.expect("consent");
    a.orphan_service_principal(orphaned, APP)
        .await
        .expect("orphan");
    let disabled = a.add_app(None, HOME, Some("Disabled")).await.expect("app");
    let disabled_secret = a.add_secret(&disabled, None, None).await.expect("secret");
    a.disable_app(&disabled).await.expect("disable");

    // Managed identity and its federated credential on the app.
    let mi = a
        .add_managed_identity(HOME, Some("55555555-5555-4555-8555-555555555555"))
        .await
        .expect("mi");
    a.add_federated_credential(
        APP,
        &format!("https://login.sandbox.test/{HOME}/v2.0"),
        &mi.object_id,
        &["api://AzureADTokenExchange"],
    )
    .await
    .expect("fic");

    // A vault with a key the app may use (Key Vault is sim-kv-gateway's; exercised through the SDK).
    a.post("/vaults", json!({"name": "contoso-kv", "tenant_id": CUSTOMER, "kind": "vault", "permission_model": "access_policy"}))
        .await
        .expect("vault");
    a.post("/vaults/contoso-kv/keys/ferry-cmk", json!({"kty": "RSA"}))
        .await
        .expect("key");
    a.put(
        "/vaults/contoso-kv/access",
        json!({"tenant_id": CUSTOMER, "app_id": APP, "keys": ["get", "wrapKey", "unwrapKey"], "secrets": []}),
    )
    .await
    .expect("access policy");

    let port = e.sim.https_addr().port();
    let imds_port = e.sim.imds_addr().expect("imds").port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_identity.py");
    let identity_header = e.sim.state().settings().identity_header;
    let mut cmd = tokio::process::Command::new(&py);
    cmd.arg(&script)
        .env("REQUESTS_CA_BUNDLE", &ca_path)
        .env("SSL_CERT_FILE", &ca_path)
        .env("SIM_PORT", port.to_string())
        .env("SIM_IMDS_PORT", imds_port.to_string())
        .env("TENANT", CUSTOMER)
        .env("HOME_TENANT", HOME)
        .env("CLIENT_ID", APP)
        .env("SECRET", &e.secret)
        .env("EXPECTED_OID", &e.customer_sp)
        .env("CERT_PATH", &cert_path)
        .env("OTHER_CERT_PATH", &other_path)
        .env("EXPIRED_SECRET", &expired.value)
        .env("UNKNOWN_TENANT", "99999999-9999-4999-8999-999999999999")
        .env("UNCONSENTED_TENANT", unconsented)
        .env("ORPHANED_TENANT", orphaned)
        .env("DISABLED_APP", &disabled)
        .env("DISABLED_APP_SECRET", &disabled_secret.value)
        .env("MI_CLIENT_ID", &mi.client_id)
        .env("MI_OBJECT_ID", &mi.object_id)
        .env("IDENTITY_HEADER", &identity_header)
        .env("VAULT_URL", "https://contoso-kv.vault.sandbox.test")
        .env("KEY_NAME", "ferry-cmk")
        .env_remove("IDENTITY_ENDPOINT")
        .env_remove("MSI_ENDPOINT")
        .env_remove("AZURE_POD_IDENTITY_AUTHORITY_HOST")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env("NO_PROXY", "*");
    let out = cmd.output().await.expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    for secret in [&e.secret, &expired.value, &disabled_secret.value] {
        assert!(
            !stdout.contains(secret.as_str()) && !stderr.contains(secret.as_str()),
            "a secret was printed"
        );
    }
}
