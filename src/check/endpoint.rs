//! Endpoint checks: where a URL's host resolves (pin or DNS) and whether that is a private
//! address; with `require_private_endpoint`, a public answer fails the row and tells the caller
//! to send nothing there.

use crate::identity::http::{resolve_host, DnsPins};
use crate::telemetry::TenantState;

use super::{CheckKind, CheckRow, Failure, Scope};

/// The host of a URL, lower-cased.
pub fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.to_ascii_lowercase()))
}

/// Resolves `url`'s host and returns the row plus whether requests may be sent there.
pub async fn check_endpoint(
    scope: &Scope,
    pins: &DnsPins,
    url: &str,
    require_private: bool,
    resolve_key: &str,
) -> (CheckRow, bool) {
    let Some(host) = host_of(url) else {
        let row = CheckRow::fail(
            scope,
            CheckKind::Endpoint,
            url,
            Failure {
                state: TenantState::Misconfigured,
                code: None,
                reason: format!("{url} has no host name"),
                fix: "write the endpoint as https://<name>.<service suffix>".into(),
            },
        );
        return (row, false);
    };
    match resolve_host(pins, &host).await {
        Ok(r) if r.addresses.is_empty() => (
            CheckRow::fail(
                scope,
                CheckKind::Endpoint,
                &host,
                Failure {
                    state: TenantState::Misconfigured,
                    code: None,
                    reason: format!("{host} resolves to no address"),
                    fix: format!("check DNS for {host}, or set {resolve_key} = \"<private endpoint ip>\""),
                },
            ),
            false,
        ),
        Ok(r) => {
            let list = r
                .addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let how = match (r.pinned, r.pinned_port) {
                (true, Some(port)) => format!("pinned, port {port}"),
                (true, None) => "pinned".to_string(),
                (false, _) => "DNS".to_string(),
            };
            if r.is_private() {
                let row = CheckRow::pass(
                    scope,
                    CheckKind::Endpoint,
                    &host,
                    format!("resolves to {list} ({how}): private"),
                );
                (row, true)
            } else if require_private {
                let row = CheckRow::fail(
                    scope,
                    CheckKind::Endpoint,
                    &host,
                    Failure {
                        state: TenantState::Misconfigured,
                        code: Some("PublicEndpoint".into()),
                        reason: format!(
                            "resolves to {list} ({how}): public, and require_private_endpoint is set, so nothing was sent there"
                        ),
                        fix: format!(
                            "private endpoint required but public: create a private endpoint for {host} in the provider's network and make its private DNS zone visible to this host, or set {resolve_key} = \"<private endpoint ip>\""
                        ),
                    },
                );
                (row, false)
            } else {
                let row = CheckRow::pass(
                    scope,
                    CheckKind::Endpoint,
                    &host,
                    format!("resolves to {list} ({how}): public (require_private_endpoint is off)"),
                );
                (row, true)
            }
        }
        Err(e) => (
            CheckRow::fail(
                scope,
                CheckKind::Endpoint,
                &host,
                Failure {
                    state: TenantState::Misconfigured,
                    code: None,
                    reason: format!("{host} cannot be resolved: {e}"),
                    fix: format!(
                        "check DNS for {host} from this host (a private endpoint needs its private DNS zone linked), or set {resolve_key} = \"<private endpoint ip>\""
                    ),
                },
            ),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::http::HostPin;

    fn scope() -> Scope {
        Scope {
            tenant: "t".into(),
            tenant_id: "id".into(),
            source: Some("s".into()),
        }
    }

    async fn check(pins: &DnsPins, url: &str, require_private: bool) -> (CheckRow, bool) {
        check_endpoint(&scope(), pins, url, require_private, "resolve").await
    }

    #[tokio::test]
    async fn public_pins_fail_only_when_private_is_required() {
        let pins = DnsPins::new(vec![
            HostPin::new("pub.blob.core.windows.net", "20.60.1.1").unwrap(),
            HostPin::new("priv.blob.core.windows.net", "10.1.2.3:443").unwrap(),
        ]);
        let (row, send) = check(&pins, "https://pub.blob.core.windows.net", true).await;
        assert_eq!(row.outcome, super::super::Outcome::Fail);
        assert!(!send);
        assert!(row.fix.contains("private endpoint"), "{}", row.fix);
        let (row, send) = check(&pins, "https://pub.blob.core.windows.net", false).await;
        assert_eq!(row.outcome, super::super::Outcome::Pass);
        assert!(send && row.reason.contains("public"));
        let (row, send) = check(&pins, "https://priv.blob.core.windows.net", true).await;
        assert_eq!(row.outcome, super::super::Outcome::Pass);
        assert!(send && row.reason.contains("10.1.2.3") && row.reason.contains("private"));
        assert!(
            row.reason.contains("(pinned)"),
            "443 goes unsaid: {}",
            row.reason
        );
        // a pin to another port says so, or the row would hide where requests really go
        let pins = DnsPins::new(vec![HostPin::new(
            "priv.blob.core.windows.net",
            "10.1.2.3:8443",
        )
        .unwrap()]);
        let (row, _) = check(&pins, "https://priv.blob.core.windows.net", true).await;
        let expected = "resolves to 10.1.2.3 (pinned, port 8443): private";
        assert!(row.reason.contains(expected), "{}", row.reason);
    }
}
