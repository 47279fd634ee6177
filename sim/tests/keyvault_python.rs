//! ferry-sim's Key Vault checked with Microsoft's `azure-keyvault-keys` for Python:
//! `sim/tests/python/test_keyvault.py` runs against a sim started here (challenge, get, create,
//! versions, local wrap + remote unwrap for every RSA algorithm, PATCH disable, 403/404 errors,
//! delete and recover pollers, Managed HSM A256KW).
//!
//! The python comes from `FERRY_PYTHON`, else `.venv/bin/python` in the repo root. When it or the
//! packages are missing the test FAILS with the install command: it is never skipped.

use std::path::PathBuf;
use std::process::Command;

use ferry_sim::serve_ephemeral;
use serde_json::json;

const INSTALL_HINT: &str =
    "python3 -m venv .venv && .venv/bin/pip install -r sim/tests/python/requirements.txt (in the repo root)";
const TENANT: &str = "33333333-3333-4333-8333-333333333333";
const APP: &str = "11111111-1111-4111-8111-111111111111";
const SP: &str = "66666666-6666-4666-8666-666666666666";
const STRANGER: &str = "77777777-7777-4777-8777-777777777777";

fn python() -> PathBuf {
    match std::env::var_os("FERRY_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => {
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            manifest
                .parent()
                .map(PathBuf::from)
                .unwrap_or(manifest)
                .join(".venv/bin/python")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsofts_key_vault_client_accepts_the_sim() {
    let py = python();
    match Command::new(&py)
        .args(["-c", "import azure.keyvault.keys"])
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            panic!(
            "{} lacks azure-keyvault-keys ({}); install it: {INSTALL_HINT}, or set FERRY_PYTHON",
            py.display(),
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        )
        }
        Err(e) => panic!(
            "cannot run {} ({e}); install: {INSTALL_HINT}, or set FERRY_PYTHON",
            py.display()
        ),
    }

    let sim = serve_ephemeral().await.expect("sim starts");
    let admin = sim.admin().expect("admin client");
    admin
        .post("/vaults", json!({"name": "contoso-kv", "tenant_id": TENANT, "kind": "vault", "permission_model": "access_policy"}))
        .await
        .expect("vault");
    admin
        .post("/vaults/contoso-kv/keys/ferry-cmk", json!({"kty": "RSA"}))
        .await
        .expect("key");
    let all = [
        "get",
        "list",
        "create",
        "update",
        "delete",
        "recover",
        "wrapKey",
        "unwrapKey",
    ];
    admin
        .put(
            "/vaults/contoso-kv/access",
            json!({"object_id": SP, "keys": all, "secrets": []}),
        )
        .await
        .expect("access policy");
    admin
        .post("/vaults", json!({"name": "contoso-hsm", "tenant_id": TENANT, "kind": "managed_hsm", "permission_model": "rbac"}))
        .await
        .expect("hsm");
    admin
        .put(
            "/vaults/contoso-hsm/access",
            json!({"object_id": SP, "keys": all}),
        )
        .await
        .expect("hsm access");
    let vault_token = admin
        .mint_token(TENANT, "https://vault.sandbox.test", SP, Some(APP))
        .await
        .expect("token");
    let hsm_token = admin
        .mint_token(TENANT, "https://managedhsm.sandbox.test", SP, Some(APP))
        .await
        .expect("token");
    let denied_token = admin
        .mint_token(TENANT, "https://vault.sandbox.test", STRANGER, None)
        .await
        .expect("token");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, sim.ca_pem()).expect("write ca");
    let port = sim.https_addr().port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/test_keyvault.py");
    let out = tokio::process::Command::new(&py)
        .arg(&script)
        .env("REQUESTS_CA_BUNDLE", &ca_path)
        .env("SSL_CERT_FILE", &ca_path)
        .env("SIM_PORT", port.to_string())
        .env("VAULT_URL", "https://contoso-kv.vault.sandbox.test")
        .env("HSM_URL", "https://contoso-hsm.managedhsm.sandbox.test")
        .env("KEY_NAME", "ferry-cmk")
        .env("VAULT_TOKEN", &vault_token)
        .env("HSM_TOKEN", &hsm_token)
        .env("DENIED_TOKEN", &denied_token)
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env("NO_PROXY", "*")
        .output()
        .await
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    for token in [&vault_token, &hsm_token, &denied_token] {
        assert!(
            !stdout.contains(token.as_str()) && !stderr.contains(token.as_str()),
            "a token was printed"
        );
    }
}
