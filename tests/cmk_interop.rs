//! Interop with Microsoft's Python storage SDK, and objects kept under the customer's key:
//! - blobs the SDK encrypts (`encryption_version="2.0"`, 0 B, 1 B, one region, several regions,
//!   single put and staged blocks) ship decrypted byte for byte;
//! - `at_rest = "customer_key"` objects read back by `ferry cat` and by the SDK with the same key;
//! - truncated or altered objects are refused by `ferry cat`; a disabled key gives an error
//!   naming the tenant and the key.
//!
//! Needs a Python with the SDKs: `FERRY_PYTHON`, else `.venv/bin/python` in the repo root.

mod cmk_support;
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use cmk_support::{key_url, shipped_from, vault_token};
use common::{output_text, world, SourceSpec, World};

const MIB: usize = 1024 * 1024;
const WRITER: &str = "77777777-7777-4777-8777-777777777777";

fn python() -> PathBuf {
    let p = std::env::var_os("FERRY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    let ok = std::process::Command::new(&p)
        .args(["-c", "import azure.storage.blob, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Python with the Azure SDKs at {} (set FERRY_PYTHON): install with `python3 -m venv .venv && .venv/bin/pip install azure-storage-blob azure-identity azure-keyvault-keys cryptography`",
        p.display()
    );
    p
}

async fn kek(w: &World, customer: &str) -> serde_json::Value {
    let r = w
        .sandbox
        .http()
        .get(format!("{}?api-version=7.5", key_url(customer)))
        .bearer_auth(vault_token(w, customer).await)
        .send()
        .await
        .expect("get key");
    let v: serde_json::Value = r.json().await.expect("key json");
    serde_json::json!({"kid": v["key"]["kid"], "n": v["key"]["n"], "e": v["key"]["e"]})
}

fn run_python(job: &serde_json::Value) {
    let mut child = std::process::Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sim/tests/python/cse_interop.py"
        ))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("write job");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "python failed: {}", output_text(&out));
}

async fn grant_writer(w: &World, customer: &str, container: &str) -> String {
    let c = &w.customers[customer];
    w.seeder(customer)
        .await
        .create_container(container)
        .await
        .ok();
    w.sandbox
        .admin()
        .put(
            "/role-assignments",
            serde_json::json!({"account": c.spec.account, "container": container, "object_id": WRITER, "role": "Storage Blob Data Contributor"}),
        )
        .await
        .expect("grant writer");
    w.sandbox
        .mint_token(&c.spec.tenant_id, "https://storage.azure.com", WRITER, None)
        .await
        .expect("writer token")
}

async fn provider_token(w: &World) -> String {
    w.sandbox
        .mint_token(
            &w.provider.tenant_id,
            "https://storage.azure.com",
            &w.provider.managed_identity_object_id,
            Some(&w.provider.managed_identity_client_id),
        )
        .await
        .expect("provider token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_blobs_ship_and_customer_key_objects_read_back() {
    let w = world(1).await;
    let port = w.sandbox.https_addr().port();
    let ca = w.dir.path().join("ca.pem");
    let out_dir = tempfile::tempdir().expect("tmp");
    let kek = kek(&w, "contoso").await;

    // 1. the SDK encrypts and uploads
    let c = "insights-logs-auditevent";
    let token = grant_writer(&w, "contoso", c).await;
    let sizes = [
        ("sdk-0", 0usize),
        ("sdk-1", 1),
        ("sdk-4m", 4 * MIB),
        ("sdk-9m-staged", 9 * MIB + 5),
        ("sdk-small", 1000),
    ];
    let blobs: Vec<_> = sizes
        .iter()
        .map(|(n, s)| serde_json::json!({"name": n, "size": s}))
        .collect();
    run_python(&serde_json::json!({
        "op": "upload", "account_url": format!("https://contosologs.blob.sandbox.test:{port}"),
        "container": c, "storage_token": token, "kek": kek, "port": port,
        "ca": ca, "out_dir": out_dir.path(), "blobs": blobs,
    }));
    // plain lines for the records source kept under the customer's key
    let rec = "sealed-records";
    w.grant("contoso", rec, "Storage Blob Data Reader").await;
    let lines = common::log_lines("sealed", 0, 300);
    w.seeder("contoso")
        .await
        .put_block_blob(rec, "plain.json", lines.clone().into_bytes())
        .await
        .expect("seed");

    let mut enc = SourceSpec::copy("enc", c);
    enc.extra = format!(
        "  decrypt = {{ key = \"{}\" }}\n  at_rest = \"customer_key\"\n",
        key_url("contoso")
    );
    let mut sealed = SourceSpec::records("sealedrec");
    sealed.container = rec.into();
    sealed.extra = format!(
        "  decrypt = {{ key = \"{}\", unencrypted = \"ship\" }}\n  at_rest = \"customer_key\"\n",
        key_url("contoso")
    );
    let cfg = w.config(&[("contoso", vec![enc, sealed])], "");
    let out = w.ferry(&["run", "--once", "-c", cfg.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");

    let dest = w.destination().await;
    let provider = ferry::blob_api::ContainerClient::new(
        w.sandbox.http().clone(),
        "https://providerlogs.blob.sandbox.test",
        "shipped",
    );
    let mut sealed_names = Vec::new();
    for (name, _) in sizes {
        let plain = std::fs::read(out_dir.path().join(name)).expect("plaintext");
        let shipped = shipped_from(&dest, name);
        assert_eq!(shipped.len(), 1, "{name}\n{text}");
        let (object, body) = &shipped[0];
        let meta = &dest[object].0;
        assert!(
            meta.contains_key("encryptiondata"),
            "{object} is not sealed"
        );
        if !plain.is_empty() {
            assert!(body != &plain, "{object} stored in the clear");
        }
        // ferry cat gives the plaintext back
        let url = provider.blob_url(object);
        let cat = w.ferry(&["cat", &url, "-c", cfg.to_str().unwrap()]);
        assert!(cat.status.success(), "{}", output_text(&cat));
        assert!(cat.stdout == plain, "ferry cat {name}: plaintext differs");
        sealed_names.push(object.clone());
    }
    let rec_objects = shipped_from(&dest, "plain.json");
    assert!(!rec_objects.is_empty(), "{text}");
    let mut got = String::new();
    for (object, _) in &rec_objects {
        let cat = w.ferry(&[
            "cat",
            &provider.blob_url(object),
            "-c",
            cfg.to_str().unwrap(),
        ]);
        assert!(cat.status.success(), "{}", output_text(&cat));
        got.push_str(&String::from_utf8(cat.stdout).expect("utf-8"));
        sealed_names.push(object.clone());
    }
    assert_eq!(got, lines, "records read back by ferry cat");

    // 2. the SDK reads Ferry's sealed objects with the same key
    let sdk_out = tempfile::tempdir().expect("tmp");
    run_python(&serde_json::json!({
        "op": "download", "account_url": format!("https://providerlogs.blob.sandbox.test:{port}"),
        "container": "shipped", "storage_token": provider_token(&w).await, "kek": kek,
        "vault_token": vault_token(&w, "contoso").await, "port": port, "ca": ca,
        "out_dir": sdk_out.path(), "names": sealed_names,
    }));
    for (name, _) in sizes {
        let plain = std::fs::read(out_dir.path().join(name)).expect("plaintext");
        let object = &shipped_from(&dest, name)[0].0;
        let safe = object.replace('/', "_");
        let err = std::fs::read_to_string(sdk_out.path().join(format!("{safe}.error")));
        assert!(err.is_err(), "sdk could not read {object}: {err:?}");
        let back = std::fs::read(sdk_out.path().join(&safe)).expect("sdk output");
        assert!(back == plain, "sdk read of {object} differs");
    }
    for (object, _) in &rec_objects {
        let back = std::fs::read(sdk_out.path().join(object.replace('/', "_"))).expect("sdk");
        let text = common::decode_records(object, &back);
        assert!(!text.is_empty());
    }

    // 3. truncated and altered objects are refused
    let bearer = format!("Bearer {}", provider_token(&w).await);
    let victim = shipped_from(&dest, "sdk-9m-staged")[0].0.clone();
    let (meta, body) = dest[&victim].clone();
    let opts = |m: &BTreeMap<String, String>| ferry::blob_api::UploadOptions {
        content_type: None,
        content_encoding: None,
        metadata: m.clone(),
    };
    let region = 4 * MIB + 28;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated-region", body[..region * 2].to_vec()),
        ("truncated-bytes", body[..body.len() - 7].to_vec()),
        ("flipped", {
            let mut b = body.clone();
            b[100] ^= 1;
            b
        }),
    ];
    for (what, bad) in cases {
        let name = format!("altered/{what}");
        provider
            .put_blob(&bearer, &name, bad.into(), &opts(&meta))
            .await
            .expect("put altered");
        let cat = w.ferry(&[
            "cat",
            &provider.blob_url(&name),
            "-c",
            cfg.to_str().unwrap(),
        ]);
        assert!(!cat.status.success(), "{what} accepted");
        assert!(cat.stdout.is_empty(), "{what}: plaintext printed");
        let err = String::from_utf8_lossy(&cat.stderr);
        assert!(err.contains("refused"), "{what}: {err}");
        println!("ferry cat {what}: {}", err.trim());
    }

    // 4. a disabled key: a clear error naming the tenant and the key
    w.sandbox
        .admin()
        .post(
            "/vaults/contoso-kv/keys/ferry-cmk/disable",
            serde_json::json!({}),
        )
        .await
        .expect("disable");
    let cat = w.ferry(&[
        "cat",
        &provider.blob_url(&victim),
        "-c",
        cfg.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&cat.stderr).to_string();
    assert!(!cat.status.success());
    assert!(
        err.contains(&w.customers["contoso"].spec.tenant_id),
        "{err}"
    );
    assert!(err.contains(&key_url("contoso")), "{err}");
    println!("ferry cat with the key disabled: {}", err.trim());
}
