//! `ferry validate` on the shipped configs and on one broken fixture per kind of mistake: the real
//! binary, its exit code, and every error's `file:line:col`, config path and help.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validate(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["validate", "-c"])
        .arg(file)
        .env_remove("FERRY_CONFIG")
        .output()
        .expect("the ferry binary runs")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/config").join(name)
}

/// Runs validate on a fixture, asserts exit 2, no panic, and that stderr holds every expected piece.
fn assert_broken(name: &str, expected: &[&str]) -> String {
    let path = fixture(name);
    let out = validate(&path);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{name}: expected exit 2, stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    assert!(out.stdout.is_empty(), "{name}: errors go to stderr only");
    for piece in expected {
        let piece = piece.replace("{file}", &path.display().to_string());
        assert!(
            stderr.contains(&piece),
            "{name}: expected {piece:?} in:\n{stderr}"
        );
    }
    stderr
}

#[test]
fn the_shipped_configs_validate() {
    for (file, summary) in [
        ("config/local.toml", ": ok: 2 tenants, 5 sources (5 blob"),
        ("config/ferry.example.toml", ": ok: 2 tenants, 3 sources"),
    ] {
        let out = validate(&repo().join(file));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file} does not validate:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(summary), "{file}: {stdout}");
        assert_eq!(stdout.lines().count(), 1, "success is one line: {stdout}");
    }
    let out = validate(&fixture("minimal_valid.toml"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("app credential secret (env), destination credential managed_identity"));
}

#[test]
fn bad_toml_syntax() {
    assert_broken(
        "bad_syntax.toml",
        &["{file}:10:16: invalid TOML", "help: fix the syntax here"],
    );
}

#[test]
fn unknown_key_suggests_the_near_miss() {
    assert_broken(
        "unknown_key.toml",
        &[
            "{file}:17:1: tenant[contoso].source[audit].contianer: unknown key \"contianer\"",
            "help: did you mean \"container\"?",
        ],
    );
}

#[test]
fn wrong_type() {
    assert_broken(
        "wrong_type.toml",
        &["{file}:18:19: tenant[contoso].source[audit].max_record_size: expected a size such as \"50MiB\""],
    );
}

#[test]
fn inline_secrets_are_refused_without_echoing_them() {
    for name in ["inline_secret.toml", "inline_client_secret.toml"] {
        let stderr = assert_broken(
            name,
            &[
                "secrets must not be written in the config",
                "help: use `env = \"FERRY_APP_SECRET\"` or `file = \"...\"`",
            ],
        );
        assert!(
            !stderr.contains("s3cr3t-Value~"),
            "{name}: the secret was printed:\n{stderr}"
        );
    }
    assert_broken(
        "inline_secret.toml",
        &["{file}:3:33: app.credential.value:"],
    );
    assert_broken(
        "inline_client_secret.toml",
        &["{file}:4:1: app.client_secret:"],
    );
}

#[test]
fn duplicate_tenant() {
    assert_broken(
        "duplicate_tenant.toml",
        &[
            "{file}:20:8: tenant[contoso].name: tenant name \"contoso\" is used twice",
            "help: give each [[tenant]] its own name",
        ],
    );
}

#[test]
fn duplicate_source() {
    assert_broken(
        "duplicate_source.toml",
        &[
            "{file}:20:8: tenant[contoso].source[audit].name: source name \"audit\" is used twice",
            "help: give each [[tenant.source]]",
        ],
    );
}

#[test]
fn bad_guid() {
    assert_broken(
        "bad_guid.toml",
        &["{file}:11:13: tenant[contoso].tenant_id: tenant_id \"contoso.onmicrosoft.com\" is not a GUID", "help: copy the tenant_id"],
    );
}

#[test]
fn non_https_urls() {
    assert_broken(
        "non_https.toml",
        &[
            "{file}:16:15: tenant[contoso].source[audit].account_url: account_url \"http://contosologs.blob.core.windows.net\" must use https",
            "help: write it as https://contosologs.blob.core.windows.net",
            "{file}:18:19: tenant[contoso].source[audit].decrypt.key:",
        ],
    );
}

#[test]
fn colliding_template() {
    assert_broken(
        "colliding_template.toml",
        &[
            "{file}:8:8: destination.path:",
            "could collide",
            "help: put a '/', '_', '.' or '=' right after {tenant}",
        ],
    );
}

#[test]
fn template_without_tenant() {
    assert_broken(
        "template_without_tenant.toml",
        &[
            "{file}:8:8: destination.path:",
            "does not contain {tenant}",
            "help: include both {tenant} and {source}",
        ],
    );
}

/// `ferry run` would refuse it at start; `ferry validate` (and so a reload or an upgrade check)
/// says so first.
#[test]
fn template_without_name() {
    assert_broken(
        "template_without_name.toml",
        &[
            "{file}:8:8: destination.path:",
            "does not contain {name}",
            "help: add {name} after {tenant} and {source}",
        ],
    );
}

/// A records-only setting in a copy source would silently do nothing; each one is named.
#[test]
fn records_keys_in_copy_mode() {
    let stderr = assert_broken(
        "records_keys_in_copy_mode.toml",
        &[
            "{file}:19:1: tenant[contoso].source[exports].compression: compression applies to records mode only, and this source has mode = \"copy\"",
            "{file}:20:1: tenant[contoso].source[exports].compression_level: compression_level applies to records mode only",
            "{file}:21:1: tenant[contoso].source[exports].batch_max_age: batch_max_age applies to records mode only",
            "help: copy mode ships each blob byte for byte, never split, batched or compressed: remove compression, or set mode = \"records\"",
        ],
    );
    assert_eq!(
        stderr.matches("applies to records mode only").count(),
        3,
        "{stderr}"
    );
}

#[test]
fn custom_cloud_missing() {
    assert_broken(
        "custom_cloud_missing.toml",
        &[
            "{file}:2:9: agent.cloud: cloud = \"custom\" needs an [agent.custom_cloud] table",
            "help: add [agent.custom_cloud]",
        ],
    );
}

#[test]
fn zero_limits() {
    assert_broken(
        "zero_limits.toml",
        &[
            "{file}:2:26: agent.max_concurrent_fetches: max_concurrent_fetches must be at least 1",
            "{file}:11:14: destination.block_size: block_size 1KiB is outside 64KiB..4000MiB",
            "{file}:12:21: destination.max_bytes_per_sec: max_bytes_per_sec must be positive",
            "{file}:13:22: destination.watermark_interval: watermark_interval is 5s, below the minimum of 10s",
            "{file}:19:1: tenant[contoso].source[audit].max_record_size: max_record_size 1MiB is larger than batch_max_bytes 1KiB",
            "{file}:24:17: tenant[contoso].source[audit].poll_interval: poll_interval is 0s, below the minimum of 1s",
        ],
    );
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let stderr = assert_broken(
        "several_errors.toml",
        &[
            "{file}:6:13: app.client_id:",
            "{file}:10:15: destination.account_url:",
            "{file}:11:13: destination.container:",
            "{file}:12:8: destination.path:",
            "{file}:15:8: tenant[Contoso].name:",
            "{file}:22:1: tenant[Contoso].source[audit].contianer: unknown key",
            "{file}:27:26: tenant[fabrikam].max_concurrent_fetches: invalid type",
            "{file}:31:8: tenant[fabrikam].source[signins].kind: unknown source kind \"log_analytcs\"",
            "help: did you mean \"log_analytics\"?",
            "8 problems in",
        ],
    );
    let lines: Vec<usize> = stderr
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("ferry:"))
        .filter_map(|l| l.split(':').nth(1).and_then(|n| n.parse().ok()))
        .collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "errors are in file order");
}

#[test]
fn several_problems_in_one_table_are_all_reported() {
    let stderr = assert_broken(
        "several_problems_per_table.toml",
        &[
            "{file}:4:20: agent.recheck_interval: unknown unit",
            "{file}:5:18: agent.shutdown_grace: not a valid duration",
            "{file}:6:1: agent.bogus_agent: unknown key",
            "{file}:20:26: tenant[contoso].max_concurrent_fetches: invalid type: string \"eight\", expected a whole number",
            "{file}:21:11: tenant[contoso].enabled: invalid type",
            "{file}:27:1: tenant[contoso].source[exports].contianer: unknown key",
            "help: did you mean \"container\"?",
            "{file}:28:1: tenant[contoso].source[exports].mdoe: unknown key",
            "{file}:29:18: tenant[contoso].source[exports].list_page_size: invalid type",
            "{file}:30:17: tenant[contoso].source[exports].poll_interval: unknown unit",
            "9 problems in",
        ],
    );
    // the misspelt container is not reported a second time as a missing key
    assert!(!stderr.contains("missing key"), "{stderr}");
}

#[test]
fn garbage_bytes() {
    assert_broken(
        "garbage.bin",
        &[
            "{file}:1:1: the file is not UTF-8 text",
            "help: a config is a TOML text file",
        ],
    );
}

#[test]
fn truncated_file() {
    assert_broken("truncated.toml", &["{file}:2:35: invalid TOML"]);
}

#[test]
fn empty_file() {
    assert_broken(
        "empty.toml",
        &[
            "{file}:1:1: app: missing table [app]",
            "{file}:1:1: destination: missing table [destination]",
            "help: add it, e.g.",
        ],
    );
}

#[test]
fn missing_file_is_a_config_error() {
    let out = validate(&fixture("does-not-exist.toml"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does-not-exist.toml: cannot read the config file"),
        "{stderr}"
    );
}
