//! Tenant diagnostics behind `ferry check`: for each tenant and each of its sources, get every
//! token Ferry will need, list one page of each blob container, resolve each endpoint and say
//! whether it is private, read each customer key's attributes and try an unwrap of a throwaway
//! value; for the destination, get the provider's token once. Every check is one [`CheckRow`]
//! with the tenant state it would lead to, the reason in words and the fix that works on Azure.
//!
//! Owns: running the checks and describing their outcomes. Must not: write anything anywhere
//! (it only reads and unwraps a value it made up), send anything to an endpoint that
//! `require_private_endpoint` refuses, or put tokens, secrets or key material in a row.

mod endpoint;
mod key;
mod keyvault;
mod render;
mod tenant;

use std::time::Duration;

use futures::StreamExt;

use crate::config::LoadedConfig;
use crate::identity::http::HttpSettings;
use crate::identity::TokenProvider;
use crate::telemetry::TenantState;

pub use keyvault::{parse_key_url, KeyUrl};
pub use render::{render_human, render_json};

/// Tenants checked at once.
const TENANTS_AT_ONCE: usize = 8;
/// Longest a whole tenant's checks may take before the rest are reported as timed out.
const TENANT_DEADLINE: Duration = Duration::from_secs(90);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It works.
    Pass,
    /// It does not work: the row says why and what to do.
    Fail,
    /// Not attempted, because something it depends on failed or it does not apply.
    Skip,
}

impl Outcome {
    /// `✓`, `✗` or `-`.
    pub fn mark(self) -> &'static str {
        match self {
            Outcome::Pass => "✓",
            Outcome::Fail => "✗",
            Outcome::Skip => "-",
        }
    }
}

/// What is checked, as a stable name for `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A token from the tenant (or the provider's identity) for one resource.
    Token,
    /// Where a host name resolves, and whether that is private.
    Endpoint,
    /// One listing page of a blob container.
    List,
    /// The vault answers for the configured tenant (read from its 401 challenge).
    VaultTenant,
    /// The key's attributes: exists, enabled, allows unwrapKey.
    Key,
    /// An unwrap of a throwaway value wrapped with the key's public part.
    Unwrap,
    /// `at_rest = "customer_key"`: the vault wraps a throwaway value as it wraps a content key,
    /// then unwraps it.
    Wrap,
    /// A Log Analytics query (not performed by this version).
    Query,
}

impl CheckKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Token => "token",
            CheckKind::Endpoint => "endpoint",
            CheckKind::List => "list",
            CheckKind::VaultTenant => "vault_tenant",
            CheckKind::Key => "key",
            CheckKind::Unwrap => "unwrap",
            CheckKind::Wrap => "wrap",
            CheckKind::Query => "query",
        }
    }
}

/// One check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckRow {
    /// Tenant name from the config, or `destination` for the provider's storage.
    pub tenant: String,
    /// The tenant id (the provider's tenant, or empty when unknown, for the destination).
    pub tenant_id: String,
    /// Source name, when the check belongs to one.
    pub source: Option<String>,
    /// What was checked.
    pub check: CheckKind,
    /// The thing checked: a token resource, a host, `account/container`, a key URL.
    pub target: String,
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// The tenant state a failure leads to in `ferry run` (`consent_revoked`, ...).
    pub state: Option<TenantState>,
    /// The service's own code (`AADSTS700016`, `AuthorizationPermissionMismatch`,
    /// `ForbiddenByPolicy`, `KeyDisabled`), when there is one.
    pub code: Option<String>,
    /// What happened, in words.
    pub reason: String,
    /// What would make it work, on real Azure; empty when nothing is needed.
    pub fix: String,
}

impl CheckRow {
    /// A passing row.
    pub fn pass(scope: &Scope, check: CheckKind, target: &str, reason: String) -> CheckRow {
        CheckRow {
            tenant: scope.tenant.clone(),
            tenant_id: scope.tenant_id.clone(),
            source: scope.source.clone(),
            check,
            target: target.to_string(),
            outcome: Outcome::Pass,
            state: None,
            code: None,
            reason,
            fix: String::new(),
        }
    }

    /// A skipped row.
    pub fn skip(scope: &Scope, check: CheckKind, target: &str, reason: String) -> CheckRow {
        CheckRow {
            outcome: Outcome::Skip,
            ..CheckRow::pass(scope, check, target, reason)
        }
    }

    /// A failing row.
    pub fn fail(scope: &Scope, check: CheckKind, target: &str, failure: Failure) -> CheckRow {
        CheckRow {
            outcome: Outcome::Fail,
            state: Some(failure.state),
            code: failure.code,
            fix: failure.fix,
            ..CheckRow::pass(scope, check, target, failure.reason)
        }
    }
}

/// Why a check failed: the state it leads to, the service code, the reason and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Tenant state.
    pub state: TenantState,
    /// Service code.
    pub code: Option<String>,
    /// Reason in words.
    pub reason: String,
    /// What to do.
    pub fix: String,
}

/// Which tenant and source rows belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Tenant name (or `destination`).
    pub tenant: String,
    /// Tenant id.
    pub tenant_id: String,
    /// Source name.
    pub source: Option<String>,
}

impl Scope {
    /// The same tenant, for one source.
    pub fn source(&self, name: &str) -> Scope {
        Scope {
            source: Some(name.to_string()),
            ..self.clone()
        }
    }
}

/// Every row of one `ferry check`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Rows grouped by tenant, in config order, the destination first.
    pub rows: Vec<CheckRow>,
}

impl CheckReport {
    /// Number of failed rows.
    pub fn failures(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.outcome == Outcome::Fail)
            .count()
    }

    /// True when nothing failed.
    pub fn ok(&self) -> bool {
        self.failures() == 0
    }

    /// The rows of one tenant.
    pub fn tenant(&self, name: &str) -> Vec<&CheckRow> {
        self.rows.iter().filter(|r| r.tenant == name).collect()
    }
}

/// Runs every check for the tenants named by `only` (all when `None`), and the destination
/// when all tenants are checked. The caller has already made sure `only` names a tenant.
pub async fn run_checks(
    loaded: &LoadedConfig,
    http: &HttpSettings,
    tokens: &TokenProvider,
    only: Option<&str>,
) -> CheckReport {
    let mut report = CheckReport::default();
    if only.is_none() {
        report
            .rows
            .extend(tenant::check_destination(loaded, http, tokens).await);
    }
    let tenants: Vec<_> = loaded
        .config
        .tenants
        .iter()
        .filter(|t| only.is_none_or(|n| n == t.name))
        .collect();
    let mut done: Vec<(usize, Vec<CheckRow>)> = futures::stream::iter(tenants.iter().enumerate())
        .map(|(i, t)| async move {
            let scope = Scope {
                tenant: t.name.clone(),
                tenant_id: t.tenant_id.clone(),
                source: None,
            };
            let rows = match tokio::time::timeout(
                TENANT_DEADLINE,
                tenant::check_tenant(loaded, http, tokens, t),
            )
            .await
            {
                Ok(rows) => rows,
                Err(_) => vec![CheckRow::fail(
                    &scope,
                    CheckKind::Token,
                    &t.tenant_id,
                    Failure {
                        state: TenantState::Throttled,
                        code: None,
                        reason: format!(
                            "the checks of tenant {} did not finish within {}s",
                            t.name,
                            TENANT_DEADLINE.as_secs()
                        ),
                        fix: "check network reachability of the tenant's endpoints and run ferry check again".into(),
                    },
                )],
            };
            (i, rows)
        })
        .buffer_unordered(TENANTS_AT_ONCE)
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    for (_, rows) in done {
        report.rows.extend(rows);
    }
    report
}
