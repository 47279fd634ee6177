//! The `ferry-sim` binary end to end: `ca generate`, `serve` on a free port, and the admin
//! subcommands that onboard and revoke a tenant, rotate a secret and inject a fault.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HOME: &str = "22222222-2222-4222-8222-222222222222";
const CUSTOMER: &str = "33333333-3333-4333-8333-333333333333";
const APP: &str = "11111111-1111-4111-8111-111111111111";

/// Kills the server on drop, so a failing test leaves nothing behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry-sim"))
}

fn admin(dir: &std::path::Path, port: u16, args: &[&str]) -> String {
    let out = bin()
        .args([
            "admin",
            "--dir",
            &dir.display().to_string(),
            "--sim",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .output()
        .expect("run ferry-sim admin");
    assert!(
        out.status.success(),
        "admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn serve_and_admin_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let out = bin()
        .args(["ca", "generate", "--dir", &d])
        .output()
        .expect("ca generate");
    assert!(out.status.success());
    for f in [
        "ca.pem",
        "ca-key.pem",
        "server.pem",
        "server-key.pem",
        "azurite.pem",
        "azurite-key.pem",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _server = Server(
        bin()
            .args([
                "serve",
                "--accounts",
                "contosologs,providerlogs",
                "--dir",
                &d,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let ca = std::fs::read_to_string(dir.path().join("ca.pem")).expect("ca");
    let http = ferry_sim::sandbox_http_client(&ca, ([127, 0, 0, 1], port).into()).expect("client");
    let mut up = false;
    for _ in 0..100 {
        if http
            .get("https://admin.sandbox.test/admin/requests")
            .send()
            .await
            .is_ok()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "ferry-sim serve did not come up on {port}");
    assert!(dir.path().join("identity-header").exists());

    admin(dir.path(), port, &["add-tenant", "--tenant", HOME]);
    admin(
        dir.path(),
        port,
        &["add-tenant", "--tenant", CUSTOMER, "--name", "Contoso"],
    );
    assert_eq!(
        admin(
            dir.path(),
            port,
            &["add-app", "--home-tenant", HOME, "--client-id", APP]
        ),
        APP
    );
    let sp = admin(
        dir.path(),
        port,
        &["consent", "--tenant", CUSTOMER, "--app", APP],
    );
    assert_eq!(sp.len(), 36, "object id: {sp}");
    let secret_file = dir.path().join("app-secret");
    let printed = admin(
        dir.path(),
        port,
        &[
            "rotate-secret",
            "--app",
            APP,
            "--write",
            &secret_file.display().to_string(),
        ],
    );
    let secret = std::fs::read_to_string(&secret_file).expect("secret written");
    assert!(!printed.contains(&secret), "the secret must not be printed");

    let token = |tenant: &'static str| {
        let http = http.clone();
        let secret = secret.clone();
        async move {
            http.post(format!(
                "https://login.sandbox.test/{tenant}/oauth2/v2.0/token"
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", APP),
                ("client_secret", secret.as_str()),
                ("scope", "https://storage.azure.com/.default"),
            ])
            .send()
            .await
            .expect("token request")
            .status()
            .as_u16()
        }
    };
    assert_eq!(token(CUSTOMER).await, 200);

    admin(
        dir.path(),
        port,
        &[
            "fault",
            "add",
            "--host",
            "login.sandbox.test",
            "--status",
            "503",
            "--count",
            "1",
        ],
    );
    assert_eq!(token(CUSTOMER).await, 503);
    assert_eq!(token(CUSTOMER).await, 200);

    admin(
        dir.path(),
        port,
        &["revoke-consent", "--tenant", CUSTOMER, "--app", APP],
    );
    assert_eq!(token(CUSTOMER).await, 400);
    admin(
        dir.path(),
        port,
        &["consent", "--tenant", CUSTOMER, "--app", APP],
    );
    admin(dir.path(), port, &["disable-app", "--app", APP]);
    assert_eq!(token(CUSTOMER).await, 400);
    admin(dir.path(), port, &["enable-app", "--app", APP]);
    assert_eq!(token(CUSTOMER).await, 200);

    // --accounts limits which storage accounts the admin API accepts.
    let admin_client =
        ferry_sim::AdminClient::new(&ca, ([127, 0, 0, 1], port).into()).expect("admin");
    let body = |name: &str| serde_json::json!({"name": name, "tenant_id": CUSTOMER});
    admin_client
        .post("/storage-accounts", body("contosologs"))
        .await
        .expect("known account");
    let err = admin_client
        .post("/storage-accounts", body("elsewhere"))
        .await
        .expect_err("unknown account");
    assert!(
        matches!(err, ferry_sim::AdminClientError::Status { status: 400, .. }),
        "{err}"
    );

    let counts: serde_json::Value =
        serde_json::from_str(&admin(dir.path(), port, &["requests"])).expect("json");
    // Six requests, but the faulted one never reached the token endpoint.
    assert_eq!(
        counts["token"][CUSTOMER]["https://storage.azure.com"], 5,
        "{counts}"
    );
}
