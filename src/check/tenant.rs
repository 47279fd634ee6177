//! The checks of one tenant (tokens, then per source: endpoint, listing, vault, key, unwrap) and
//! of the destination (provider token, endpoint, listing).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::blob_api::{BlobError, BlobErrorClass, ContainerClient};
use crate::config::{LoadedConfig, SourceConfig, TenantConfig};
use crate::identity::from_config::{pins_with, provider_principal};
use crate::identity::http::HttpSettings;
use crate::identity::{AccessToken, FailureClass, Principal, TokenError, TokenProvider};
use crate::telemetry::TenantState;

use super::endpoint::{check_endpoint, host_of};
use super::keyvault::{parse_key_url, KeyUrl};
use super::{CheckKind, CheckRow, Failure, Scope};

/// The tenant state a token failure leads to.
fn token_state(e: &TokenError) -> TenantState {
    match e.class() {
        FailureClass::ConsentRevoked => TenantState::ConsentRevoked,
        FailureClass::CredentialInvalid => TenantState::CredentialInvalid,
        FailureClass::Misconfigured => TenantState::Misconfigured,
        FailureClass::Transient => TenantState::Throttled,
    }
}

/// A token for `principal` and `resource`, as a row and the token when it was issued.
async fn token_row(
    scope: &Scope,
    tokens: &TokenProvider,
    principal: &Principal,
    resource: &str,
    consent_url: &str,
) -> (CheckRow, Option<Arc<AccessToken>>) {
    match tokens.token(principal, resource).await {
        Ok(tok) => {
            let mins = tok
                .expires_at
                .duration_since(std::time::SystemTime::now())
                .map(|d| d.as_secs() / 60)
                .unwrap_or(0);
            let who = match (&tok.claims.tid, &tok.claims.oid) {
                (Some(t), Some(o)) => format!("tenant {t}, principal {o}"),
                (Some(t), None) => format!("tenant {t}"),
                _ => "the provider's identity".to_string(),
            };
            let row = CheckRow::pass(
                scope,
                CheckKind::Token,
                resource,
                format!("token issued ({who}), valid for {mins} more minutes"),
            );
            (row, Some(tok))
        }
        Err(e) => {
            let mut fix = e.fix(consent_url);
            if fix.is_empty() {
                fix = format!(
                    "Entra ID at {} answered busy; that passes by itself: run ferry check again in a minute",
                    tokens.authority_host()
                );
            }
            let failure = Failure {
                state: token_state(&e),
                code: e.aadsts().map(|c| format!("AADSTS{c}")),
                reason: e.to_string(),
                fix,
            };
            (
                CheckRow::fail(scope, CheckKind::Token, resource, failure),
                None,
            )
        }
    }
}

/// What a listing refusal means.
fn explain_list(e: &BlobError, host: &str, container: &str, tok: &AccessToken) -> Failure {
    let who = match (&tok.claims.oid, &tok.claims.tid) {
        (Some(o), Some(t)) => format!("the app's service principal (object id {o} in tenant {t})"),
        _ => "the app's service principal".to_string(),
    };
    let code = e.code.clone();
    let (state, fix) = match (e.class, code.as_deref()) {
        (BlobErrorClass::AccessDenied, Some("AuthenticationFailed")) => (
            TenantState::AccessDenied,
            format!("storage account {host} refused the token: check that the account belongs to this tenant and allows Entra ID (OAuth) access"),
        ),
        (BlobErrorClass::AccessDenied, Some("AuthorizationFailure")) => (
            TenantState::AccessDenied,
            format!("access refused by {host}: if the account has a firewall, the customer must allow the provider's network or a private endpoint; otherwise assign 'Storage Blob Data Reader' on container {container} to {who}"),
        ),
        (BlobErrorClass::AccessDenied, _) => (
            TenantState::AccessDenied,
            format!("role missing: assign 'Storage Blob Data Reader' on container {container} to {who}"),
        ),
        (BlobErrorClass::NotFound, _) => (
            TenantState::Misconfigured,
            format!("container {container} does not exist on {host}: check the container name in the config (or the customer must create it)"),
        ),
        (BlobErrorClass::Unauthorized, _) => (
            TenantState::AccessDenied,
            format!("{host} refused the token as invalid: check agent.cloud (storage token resource) and the tenant id"),
        ),
        (BlobErrorClass::Transient, _) if e.no_connection => (
            TenantState::Unreachable,
            format!("no connection to {host}: check its DNS name (or the source's resolve pin), the private endpoint and the network path from Ferry, then run ferry check again"),
        ),
        (BlobErrorClass::Transient, _) => (
            TenantState::Throttled,
            format!("{host} is busy or dropped the connection: wait, or check the network path (and resolve), then run ferry check again"),
        ),
        _ => (
            TenantState::Misconfigured,
            format!("check account_url and container of this source ({host}/{container})"),
        ),
    };
    Failure {
        state,
        code,
        reason: e.to_string(),
        fix,
    }
}

/// One listing page of `container`, as a row.
async fn list_row(
    scope: &Scope,
    client: &ContainerClient,
    prefix: Option<&str>,
    tok: &AccessToken,
) -> CheckRow {
    let host = host_of(client.account_url()).unwrap_or_default();
    let target = format!("{host}/{}", client.container());
    match client.list_page(&tok.bearer(), prefix, None, 5).await {
        Ok(page) => {
            let more = if page.next_marker.is_some() {
                " (more pages follow)"
            } else {
                ""
            };
            CheckRow::pass(
                scope,
                CheckKind::List,
                &target,
                format!(
                    "listed: {} blob(s) on the first page{more}",
                    page.blobs.len()
                ),
            )
        }
        Err(e) => CheckRow::fail(
            scope,
            CheckKind::List,
            &target,
            explain_list(&e, &host, client.container(), tok),
        ),
    }
}

pub(super) fn config_failure(reason: String, fix: String) -> Failure {
    Failure {
        state: TenantState::Misconfigured,
        code: None,
        reason,
        fix,
    }
}

/// The checks of the destination: provider token, endpoint, one listing page.
pub async fn check_destination(
    loaded: &LoadedConfig,
    http: &HttpSettings,
    tokens: &TokenProvider,
) -> Vec<CheckRow> {
    let d = &loaded.config.destination;
    let scope = Scope {
        tenant: "destination".into(),
        tenant_id: loaded.config.app.home_tenant_id.clone().unwrap_or_default(),
        source: None,
    };
    let storage = &loaded.endpoints.storage_resource;
    let mut rows = Vec::new();
    let principal = match provider_principal(loaded, &d.credential) {
        Ok(p) => p,
        Err(e) => {
            rows.push(CheckRow::fail(
                &scope,
                CheckKind::Token,
                storage,
                Failure {
                    state: TenantState::CredentialInvalid,
                    code: None,
                    reason: e.to_string(),
                    fix: "complete destination.credential (and app.home_tenant_id) in the config"
                        .into(),
                },
            ));
            return rows;
        }
    };
    let consent = loaded
        .config
        .app
        .home_tenant_id
        .as_deref()
        .map(|t| crate::config::consent_url(tokens.authority_host(), t, tokens.client_id()))
        .unwrap_or_default();
    let (row, tok) = token_row(&scope, tokens, &principal, storage, &consent).await;
    rows.push(row);
    let pins = match pins_with(http, &d.account_url, d.resolve.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            rows.push(CheckRow::fail(
                &scope,
                CheckKind::Endpoint,
                &d.account_url,
                config_failure(e.to_string(), "fix destination.resolve".into()),
            ));
            return rows;
        }
    };
    let (row, send) =
        check_endpoint(&scope, &pins, &d.account_url, false, "destination.resolve").await;
    rows.push(row);
    let target = format!(
        "{}/{}",
        host_of(&d.account_url).unwrap_or_default(),
        d.container
    );
    match (send, tok, http.build_with_pins(pins)) {
        (true, Some(tok), Ok(client)) => {
            let client = ContainerClient::new(client, &d.account_url, &d.container);
            let mut row = list_row(&scope, &client, None, &tok).await;
            if row.outcome == super::Outcome::Fail && row.state == Some(TenantState::AccessDenied) {
                row.fix = format!(
                    "role missing: assign 'Storage Blob Data Contributor' on container {} to the provider identity named by destination.credential",
                    d.container
                );
            }
            rows.push(row);
        }
        (_, _, Err(e)) => rows.push(CheckRow::fail(
            &scope,
            CheckKind::List,
            &target,
            config_failure(e.to_string(), "fix agent.ca_file".into()),
        )),
        (false, _, _) => rows.push(CheckRow::skip(
            &scope,
            CheckKind::List,
            &target,
            "not attempted: the endpoint check failed".into(),
        )),
        (_, None, _) => rows.push(CheckRow::skip(
            &scope,
            CheckKind::List,
            &target,
            "not attempted: no token".into(),
        )),
    }
    rows
}

/// The token resource for a key in this cloud.
pub(super) fn vault_resource(loaded: &LoadedConfig, key: &KeyUrl) -> String {
    if key.host.contains(".managedhsm.") {
        loaded.endpoints.managed_hsm_resource.clone()
    } else {
        loaded.endpoints.vault_resource.clone()
    }
}

/// Every check of one tenant.
pub async fn check_tenant(
    loaded: &LoadedConfig,
    http: &HttpSettings,
    tokens: &TokenProvider,
    t: &TenantConfig,
) -> Vec<CheckRow> {
    let scope = Scope {
        tenant: t.name.clone(),
        tenant_id: t.tenant_id.clone(),
        source: None,
    };
    let consent = loaded.consent_url(t);
    let principal = Principal::App {
        tenant_id: t.tenant_id.clone(),
    };
    let mut rows = Vec::new();
    if t.sources.is_empty() {
        rows.push(CheckRow::skip(
            &scope,
            CheckKind::Token,
            &t.tenant_id,
            "the tenant has no sources: nothing to check".into(),
        ));
        return rows;
    }
    // every token the tenant needs, once each
    let mut resources: Vec<String> = Vec::new();
    for s in &t.sources {
        let r = match s {
            SourceConfig::Blob(b) => {
                let mut v = vec![loaded.endpoints.storage_resource.clone()];
                if let Some(key) = b.decrypt.as_ref().and_then(|d| parse_key_url(&d.key)) {
                    v.push(vault_resource(loaded, &key));
                }
                v
            }
            SourceConfig::LogAnalytics(_) => vec![loaded.endpoints.log_analytics_resource.clone()],
        };
        for x in r {
            if !resources.contains(&x) {
                resources.push(x);
            }
        }
    }
    let mut have: BTreeMap<String, Arc<AccessToken>> = BTreeMap::new();
    for r in &resources {
        let (row, tok) = token_row(&scope, tokens, &principal, r, &consent).await;
        rows.push(row);
        if let Some(tok) = tok {
            have.insert(r.clone(), tok);
        }
    }
    for s in &t.sources {
        let scope = scope.source(s.name());
        match s {
            SourceConfig::Blob(b) => {
                rows.extend(check_blob_source(loaded, http, &scope, b, &have).await);
            }
            SourceConfig::LogAnalytics(la) => {
                let url = &loaded.endpoints.log_analytics_endpoint;
                match pins_with(http, url, la.resolve.as_deref()) {
                    Ok(pins) => {
                        let (row, _) = check_endpoint(
                            &scope,
                            &pins,
                            url,
                            la.require_private_endpoint,
                            "resolve",
                        )
                        .await;
                        rows.push(row);
                    }
                    Err(e) => rows.push(CheckRow::fail(
                        &scope,
                        CheckKind::Endpoint,
                        url,
                        config_failure(e.to_string(), "fix resolve on this source".into()),
                    )),
                }
                rows.push(CheckRow::skip(
                    &scope,
                    CheckKind::Query,
                    &la.workspace_id,
                    "not checked: this version of ferry does not query Log Analytics workspaces"
                        .into(),
                ));
            }
        }
    }
    rows
}

async fn check_blob_source(
    loaded: &LoadedConfig,
    http: &HttpSettings,
    scope: &Scope,
    b: &crate::config::BlobSourceConfig,
    have: &BTreeMap<String, Arc<AccessToken>>,
) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    let host = host_of(&b.account_url).unwrap_or_default();
    let target = format!("{host}/{}", b.container);
    match pins_with(http, &b.account_url, b.resolve.as_deref()) {
        Err(e) => rows.push(CheckRow::fail(
            scope,
            CheckKind::Endpoint,
            &b.account_url,
            config_failure(e.to_string(), "fix resolve on this source".into()),
        )),
        Ok(pins) => {
            let (row, send) = check_endpoint(
                scope,
                &pins,
                &b.account_url,
                b.require_private_endpoint,
                "resolve",
            )
            .await;
            rows.push(row);
            let tok = have.get(&loaded.endpoints.storage_resource);
            match (send, tok) {
                (false, _) => rows.push(CheckRow::skip(scope, CheckKind::List, &target, "not attempted: nothing is sent to this endpoint until the endpoint check passes".into())),
                (true, None) => rows.push(CheckRow::skip(scope, CheckKind::List, &target, "not attempted: no storage token".into())),
                (true, Some(tok)) => match http.build_with_pins(pins) {
                    Ok(c) => {
                        let client = ContainerClient::new(c, &b.account_url, &b.container);
                        rows.push(list_row(scope, &client, b.prefix.as_deref(), tok).await);
                    }
                    Err(e) => rows.push(CheckRow::fail(scope, CheckKind::List, &target, config_failure(e.to_string(), "fix agent.ca_file".into()))),
                },
            }
        }
    }
    if let Some(d) = &b.decrypt {
        rows.extend(super::key::check_key(loaded, http, scope, b, d, have).await);
    }
    rows
}
