//! The `ferry` command line as a person uses it: help with examples, exit codes, consent URLs,
//! the JSON Schema, and honest "not built yet" answers.

use std::path::PathBuf;
use std::process::{Command, Output};

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FERRY_CONFIG")
        .output()
        .expect("the ferry binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn every_command_help_shows_an_example() {
    for cmd in ["run", "validate", "check", "consent-url", "status", "cat"] {
        let out = ferry(&[cmd, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{cmd} --help");
        let help = text(&out.stdout);
        assert!(
            help.contains("Example"),
            "ferry {cmd} --help has no example:\n{help}"
        );
        assert!(
            help.contains(&format!("ferry {cmd}")),
            "ferry {cmd} --help example does not run ferry {cmd}"
        );
    }
    let out = ferry(&["config", "schema", "--help"]);
    assert!(text(&out.stdout).contains("ferry config schema"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(ferry(&["validate"]).status.code(), Some(2), "missing -c");
    assert_eq!(ferry(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        ferry(&["run", "-c", "config/local.toml", "--onse"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn config_defaults_to_ferry_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["validate"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("FERRY_CONFIG", "config/local.toml")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn consent_url_for_one_tenant_and_for_all() {
    let out = ferry(&[
        "consent-url",
        "-c",
        "config/local.toml",
        "--tenant",
        "contoso",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "https://login.sandbox.test/33333333-3333-4333-8333-333333333333/adminconsent?client_id=11111111-1111-4111-8111-111111111111"
    );
    let out = ferry(&["consent-url", "-c", "config/ferry.example.toml"]);
    assert_eq!(out.status.code(), Some(0));
    let all = text(&out.stdout);
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(
        all.lines()
            .all(|l| l.contains("https://login.microsoftonline.com/")
                && l.contains("/adminconsent?client_id=")),
        "{all}"
    );
    assert!(all.starts_with("contoso\t"));
}

#[test]
fn consent_url_for_an_unknown_tenant_names_the_known_ones() {
    let out = ferry(&[
        "consent-url",
        "-c",
        "config/local.toml",
        "--tenant",
        "contso",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("no tenant named \"contso\""), "{err}");
    assert!(err.contains("did you mean \"contoso\"?"), "{err}");
    assert!(err.contains("contoso, fabrikam"), "{err}");
}

#[test]
fn config_schema_is_json_with_every_section() {
    let out = ferry(&["config", "schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let props = &schema["properties"];
    for key in ["agent", "app", "destination", "tenant"] {
        assert!(props.get(key).is_some(), "schema lacks {key}");
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_instead_of_panicking() {
    // `ferry config schema | head -1`: the reader is gone before Ferry writes. The read end is
    // closed before the process starts, so every write meets EPIPE, deterministically.
    for args in [
        &["config", "schema"][..],
        &["consent-url", "-c", "config/local.toml"][..],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("FERRY_CONFIG")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("the ferry binary runs");
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "ferry {args:?} panicked: {err}");
        assert_eq!(out.status.code(), Some(0), "ferry {args:?}: {err}");
    }
}

#[test]
fn cat_that_cannot_fetch_fails_with_exit_1_and_prints_nothing() {
    // no sandbox runs for this test: no token can be had (the identity's files are the
    // sandbox's) and every sandbox host is pinned to a port nothing listens on; the system's
    // roots stand in for the sandbox CA, so the failure is at run time, not in the config
    let dir = tempfile::tempdir().expect("a temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config: String = std::fs::read_to_string("config/local.toml")
        .expect("config/local.toml")
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| {
            format!(
                "{}\n",
                l.replace("127.0.0.1:18443", &format!("127.0.0.1:{port}"))
            )
        })
        .collect();
    let cfg = dir.path().join("ferry.toml");
    std::fs::write(&cfg, config).expect("write");
    let args = [
        "cat",
        "https://providerlogs.blob.sandbox.test/shipped/x",
        "-c",
        cfg.to_str().expect("utf-8"),
    ];
    let out = ferry(&args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "no pretend output");
    assert!(err.starts_with("ferry cat: "), "{err}");
    assert!(!err.contains("CA file"), "{err}");
    assert!(
        err.contains("no token for the destination identity"),
        "{err}"
    );
}

#[test]
fn cat_of_another_account_is_refused_before_anything_is_sent() {
    // a URL pasted from a ticket must not carry the destination's token to its host
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("its address").port();
    for url in [
        format!("https://127.0.0.1:{port}/shipped/x.jsonl.zst"),
        "https://contosologs.blob.sandbox.test/insights-logs-auditevent/x".to_string(),
    ] {
        let out = ferry(&["cat", &url, "-c", "config/local.toml"]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(out.stdout.is_empty(), "{url}");
        assert!(
            err.contains("is not this config's destination.account_url (https://providerlogs.blob.sandbox.test)"),
            "{err}"
        );
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "ferry cat connected to a host that is not the destination"
    );
}

#[test]
fn an_unusable_ca_file_is_a_bad_configuration_for_every_command() {
    // no sandbox runs: the CA file is read before anything is contacted
    let dir = tempfile::tempdir().expect("a temp dir");
    let local = std::fs::read_to_string("config/local.toml").expect("config/local.toml");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "just some text").expect("write");
    for (ca, says) in [
        (
            "/nonexistent/ca.pem",
            "cannot read CA file /nonexistent/ca.pem",
        ),
        (
            not_pem.to_str().expect("utf-8"),
            "holds no usable PEM certificate",
        ),
    ] {
        let cfg = dir.path().join("ferry.toml");
        let config: String = local
            .lines()
            .map(|l| {
                if l.starts_with("ca_file") {
                    format!("ca_file = \"{ca}\"\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        assert!(config.contains(ca), "config/local.toml has no ca_file line");
        std::fs::write(
            &cfg,
            config.replace(
                "../.sandbox/state",
                &dir.path().join("state").display().to_string(),
            ),
        )
        .expect("write");
        let cfg = cfg.to_str().expect("utf-8");
        for args in [
            vec!["run", "--once", "-c", cfg],
            vec!["check", "-c", cfg],
            vec![
                "cat",
                "https://providerlogs.blob.sandbox.test/shipped/x",
                "-c",
                cfg,
            ],
        ] {
            let out = ferry(&args);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(says) && err.contains("agent.ca_file"),
                "{args:?}: {err}"
            );
            if ca != "/nonexistent/ca.pem" {
                assert!(err.contains(ca), "the file is named: {err}");
            }
        }
    }
}

#[test]
fn commands_refuse_a_bad_config_with_exit_2() {
    let bad: PathBuf = ["tests", "fixtures", "config", "bad_guid.toml"]
        .iter()
        .collect();
    let bad = bad.to_string_lossy().to_string();
    for args in [
        vec!["run", "-c", &bad],
        vec!["check", "-c", &bad],
        vec!["consent-url", "-c", &bad],
    ] {
        let out = ferry(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("is not a GUID"), "{args:?}");
    }
}
