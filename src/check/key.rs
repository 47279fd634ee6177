//! The checks of one customer key: the vault's endpoint, that the vault answers for the
//! configured tenant, the key's attributes, an unwrap of a throwaway value, and, where objects
//! are kept under the key (`at_rest = "customer_key"`), a wrap by the vault.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{AtRest, BlobSourceConfig, DecryptConfig, LoadedConfig};
use crate::identity::from_config::pins_with;
use crate::identity::http::HttpSettings;
use crate::identity::AccessToken;
use crate::telemetry::TenantState;

use super::endpoint::{check_endpoint, host_of};
use super::keyvault::{self, parse_key_url};
use super::tenant::{config_failure, vault_resource};
use super::{CheckKind, CheckRow, Failure, Scope};

/// Every row of one `decrypt` key.
pub async fn check_key(
    loaded: &LoadedConfig,
    http: &HttpSettings,
    scope: &Scope,
    b: &BlobSourceConfig,
    d: &DecryptConfig,
    have: &BTreeMap<String, Arc<AccessToken>>,
) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    let Some(key) = parse_key_url(&d.key) else {
        rows.push(CheckRow::fail(
            scope,
            CheckKind::Key,
            &d.key,
            config_failure(
                format!("{} is not a key identifier", d.key),
                "write decrypt.key as https://<vault>.vault.azure.net/keys/<name>".into(),
            ),
        ));
        return rows;
    };
    let key_target = format!("{}/keys/{}", key.vault, key.name);
    let skip = |rows: &mut Vec<CheckRow>, first: CheckKind, why: &str| {
        skip_from(rows, scope, b, &key_target, first, why)
    };
    let pins = match pins_with(http, &d.key, d.resolve.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            rows.push(CheckRow::fail(
                scope,
                CheckKind::Endpoint,
                &key.host,
                config_failure(e.to_string(), "fix decrypt.resolve".into()),
            ));
            skip(
                &mut rows,
                CheckKind::VaultTenant,
                "the vault's address is not settled",
            );
            return rows;
        }
    };
    let (row, send) = check_endpoint(
        scope,
        &pins,
        &d.key,
        b.require_private_endpoint,
        "decrypt.resolve",
    )
    .await;
    rows.push(row);
    if !send {
        skip(
            &mut rows,
            CheckKind::VaultTenant,
            "nothing is sent to this vault until the endpoint check passes",
        );
        return rows;
    }
    let client = match http.build_with_pins(pins) {
        Ok(c) => c,
        Err(e) => {
            rows.push(CheckRow::fail(
                scope,
                CheckKind::Key,
                &key_target,
                config_failure(e.to_string(), "fix agent.ca_file".into()),
            ));
            skip(
                &mut rows,
                CheckKind::Unwrap,
                "no connection to the vault can be made",
            );
            return rows;
        }
    };
    let resource = vault_resource(loaded, &key);
    // the vault must be in the configured tenant, and the resource must fit the vault's host
    match keyvault::challenge(&client, &key).await {
        Ok(c) => {
            let tenant_ok = c
                .tenant_id
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(&scope.tenant_id));
            let res_host = c.resource.as_deref().and_then(host_of).unwrap_or_default();
            let res_ok = !res_host.is_empty() && key.host.ends_with(&format!(".{res_host}"));
            if tenant_ok && res_ok {
                rows.push(CheckRow::pass(
                    scope,
                    CheckKind::VaultTenant,
                    &key.host,
                    format!(
                        "the vault belongs to tenant {} (challenge resource {})",
                        scope.tenant_id,
                        c.resource.unwrap_or_default()
                    ),
                ));
            } else {
                let reason = if !tenant_ok {
                    format!(
                        "the vault answers for tenant {}, not the configured tenant {}",
                        c.tenant_id.unwrap_or_else(|| "<none>".into()),
                        scope.tenant_id
                    )
                } else {
                    format!(
                        "the vault's challenge resource {} does not cover host {}",
                        c.resource.unwrap_or_default(),
                        key.host
                    )
                };
                rows.push(CheckRow::fail(scope, CheckKind::VaultTenant, &key.host, config_failure(reason, format!("decrypt.key must name a vault in tenant {}: check the key URL and tenant_id", scope.tenant_id))));
                skip(
                    &mut rows,
                    CheckKind::Key,
                    "the vault is not the configured tenant's",
                );
                return rows;
            }
        }
        Err(r) => {
            let skipped = if r.status == 0 {
                "no answer from the vault"
            } else {
                "the vault did not answer as Key Vault does"
            };
            rows.push(CheckRow::fail(
                scope,
                CheckKind::VaultTenant,
                &key.host,
                keyvault::explain(&r, &key, "challenge"),
            ));
            skip(&mut rows, CheckKind::Key, skipped);
            return rows;
        }
    }
    let Some(tok) = have.get(&resource) else {
        skip(&mut rows, CheckKind::Key, "no vault token");
        return rows;
    };
    let facts = match keyvault::get_key(&client, &key, tok).await {
        Ok(f) => f,
        Err(r) => {
            rows.push(CheckRow::fail(
                scope,
                CheckKind::Key,
                &key_target,
                keyvault::explain(&r, &key, "read"),
            ));
            skip(
                &mut rows,
                CheckKind::Unwrap,
                "the key's attributes could not be read",
            );
            return rows;
        }
    };
    let ops = facts.key_ops.join(", ");
    if !facts.enabled {
        rows.push(CheckRow::fail(
            scope,
            CheckKind::Key,
            &key_target,
            Failure {
                state: TenantState::KeyRevoked,
                code: Some("KeyDisabled".into()),
                reason: format!("key {} ({}) is disabled", key.name, facts.kty),
                fix: format!(
                    "key disabled: the customer must enable key {} in vault {}",
                    key.name, key.host
                ),
            },
        ));
        skip(&mut rows, CheckKind::Unwrap, "the key is disabled");
        return rows;
    }
    if !facts.allows("unwrapKey") {
        rows.push(CheckRow::fail(scope, CheckKind::Key, &key_target, Failure {
            state: TenantState::KeyRevoked,
            code: Some("OperationNotAllowed".into()),
            reason: format!("key {} allows only [{ops}]: unwrapKey is not among its permitted operations", key.name),
            fix: format!("the customer must add unwrapKey to the permitted operations of key {} in vault {}", key.name, key.host),
        }));
        skip(
            &mut rows,
            CheckKind::Unwrap,
            "the key does not permit unwrapKey",
        );
        return rows;
    }
    rows.push(CheckRow::pass(
        scope,
        CheckKind::Key,
        &key_target,
        format!(
            "key {} ({}) is enabled; permitted operations: {ops}",
            key.name, facts.kty
        ),
    ));
    if facts.rsa.is_none() {
        rows.push(CheckRow::skip(
            scope,
            CheckKind::Unwrap,
            &key_target,
            format!(
                "not attempted: a {} key has no public part to wrap a test value with",
                facts.kty
            ),
        ));
    } else {
        match keyvault::unwrap_round_trip(&client, &key, &facts, tok).await {
            Ok(true) => rows.push(CheckRow::pass(
                scope,
                CheckKind::Unwrap,
                &key_target,
                format!(
                    "unwrapped a throwaway value with version {} (RSA-OAEP)",
                    facts.version().unwrap_or("?")
                ),
            )),
            Ok(false) => rows.push(CheckRow::fail(
                scope,
                CheckKind::Unwrap,
                &key_target,
                disagreeing_key("unwrapped"),
            )),
            Err(r) => rows.push(CheckRow::fail(
                scope,
                CheckKind::Unwrap,
                &key_target,
                keyvault::explain(&r, &key, "unwrap"),
            )),
        }
    }
    if b.at_rest == AtRest::CustomerKey {
        rows.push(check_wrap(&client, scope, &key, &key_target, &facts, tok).await);
    }
    rows
}

/// Skip rows for `first` and every check after it in the order [`check_key`] runs them (`wrap`
/// only where objects are kept under the key), so a report always lists each check of a key.
fn skip_from(
    rows: &mut Vec<CheckRow>,
    scope: &Scope,
    b: &BlobSourceConfig,
    key_target: &str,
    first: CheckKind,
    why: &str,
) {
    let order = [
        CheckKind::VaultTenant,
        CheckKind::Key,
        CheckKind::Unwrap,
        CheckKind::Wrap,
    ];
    let from = order.iter().position(|k| *k == first).unwrap_or(0);
    for kind in &order[from..] {
        if *kind == CheckKind::Wrap && b.at_rest != AtRest::CustomerKey {
            continue;
        }
        rows.push(CheckRow::skip(
            scope,
            *kind,
            key_target,
            format!("not attempted: {why}"),
        ));
    }
}

/// `at_rest = "customer_key"`: each shipped object's content key is wrapped by the vault, so
/// wrapKey must be permitted and granted too.
async fn check_wrap(
    client: &reqwest::Client,
    scope: &Scope,
    key: &keyvault::KeyUrl,
    key_target: &str,
    facts: &keyvault::KeyFacts,
    tok: &AccessToken,
) -> CheckRow {
    if !facts.allows("wrapKey") {
        return CheckRow::fail(scope, CheckKind::Wrap, key_target, Failure {
            state: TenantState::KeyRevoked,
            code: Some("OperationNotAllowed".into()),
            reason: format!("key {} allows only [{}]: wrapKey is not among its permitted operations, and at_rest = \"customer_key\" needs it", key.name, facts.key_ops.join(", ")),
            fix: format!("the customer must add wrapKey to the permitted operations of key {} in vault {}, or set at_rest = \"plain\"", key.name, key.host),
        });
    }
    match keyvault::wrap_round_trip(client, key, facts, tok).await {
        Ok(true) => CheckRow::pass(scope, CheckKind::Wrap, key_target, format!("the vault wrapped and unwrapped a throwaway value with version {}: objects can be kept under this key (at_rest = \"customer_key\")", facts.version().unwrap_or("?"))),
        Ok(false) => CheckRow::fail(scope, CheckKind::Wrap, key_target, disagreeing_key("wrapped and unwrapped")),
        Err(r) => CheckRow::fail(scope, CheckKind::Wrap, key_target, keyvault::explain(&r, key, "wrap")),
    }
}

fn disagreeing_key(done: &str) -> Failure {
    Failure {
        state: TenantState::KeyRevoked,
        code: None,
        reason: format!("the vault {done} the test value to something else"),
        fix: "the key's public part and its private part disagree: report this to the customer's Key Vault administrator".into(),
    }
}
