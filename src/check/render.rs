//! How a [`CheckReport`] is shown: a table grouped by tenant for a terminal, or JSON with stable
//! field names for automation.

use std::fmt::Write as _;

use super::{CheckReport, Outcome};

/// Longest target shown in the table before it is cut.
const TARGET_WIDTH_MAX: usize = 56;

fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let keep: String = s.chars().take(width.saturating_sub(1)).collect();
    format!("{keep}…")
}

/// The report as a table: one block per tenant, one line per check, the fix under each failure,
/// and a summary line.
pub fn render_human(report: &CheckReport) -> String {
    let mut out = String::new();
    let target_w = report
        .rows
        .iter()
        .map(|r| r.target.chars().count())
        .max()
        .unwrap_or(0)
        .min(TARGET_WIDTH_MAX);
    let source_w = report
        .rows
        .iter()
        .map(|r| r.source.as_deref().map_or(1, |s| s.chars().count()))
        .max()
        .unwrap_or(1)
        .max(6);
    let mut current: Option<&str> = None;
    for r in &report.rows {
        if current != Some(r.tenant.as_str()) {
            if current.is_some() {
                out.push('\n');
            }
            let failed = report
                .rows
                .iter()
                .filter(|x| x.tenant == r.tenant && x.outcome == Outcome::Fail)
                .count();
            let verdict = if failed == 0 {
                "ok".to_string()
            } else {
                format!("{failed} failed")
            };
            let id = if r.tenant_id.is_empty() {
                String::new()
            } else if r.tenant == "destination" {
                format!(" (provider tenant {})", r.tenant_id)
            } else {
                format!(" ({})", r.tenant_id)
            };
            let _ = writeln!(out, "{}{id}: {verdict}", r.tenant);
            let _ = writeln!(
                out,
                "    {:12} {:source_w$} {:target_w$}  RESULT",
                "CHECK", "SOURCE", "TARGET"
            );
            current = Some(r.tenant.as_str());
        }
        let _ = writeln!(
            out,
            "  {} {:12} {:source_w$} {:target_w$}  {}",
            r.outcome.mark(),
            r.check.as_str(),
            r.source.as_deref().unwrap_or("-"),
            cut(&r.target, target_w),
            r.reason
        );
        if r.outcome == Outcome::Fail && !r.fix.is_empty() {
            let state = r
                .state
                .map(|s| format!("[{}] ", s.as_str()))
                .unwrap_or_default();
            let _ = writeln!(out, "      fix: {state}{}", r.fix);
        }
    }
    let pass = report
        .rows
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count();
    let skip = report
        .rows
        .iter()
        .filter(|r| r.outcome == Outcome::Skip)
        .count();
    let _ = writeln!(
        out,
        "\n{} checks: {pass} passed, {} failed, {skip} skipped",
        report.rows.len(),
        report.failures()
    );
    out
}

/// The report as JSON: `{"ok", "summary": {"checks","passed","failed","skipped"}, "rows": [...]}`,
/// each row with `tenant`, `tenant_id`, `source`, `check`, `target`, `outcome`, `state`, `code`,
/// `reason`, `fix`.
pub fn render_json(report: &CheckReport) -> String {
    let count = |o: Outcome| report.rows.iter().filter(|r| r.outcome == o).count();
    let v = serde_json::json!({
        "ok": report.ok(),
        "summary": {
            "checks": report.rows.len(),
            "passed": count(Outcome::Pass),
            "failed": count(Outcome::Fail),
            "skipped": count(Outcome::Skip),
        },
        "rows": report.rows,
    });
    serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::super::{CheckKind, CheckRow, Failure, Scope};
    use super::*;
    use crate::telemetry::TenantState;

    fn report() -> CheckReport {
        let s = Scope {
            tenant: "contoso".into(),
            tenant_id: "33333333-3333-4333-8333-333333333333".into(),
            source: None,
        };
        CheckReport {
            rows: vec![
                CheckRow::pass(
                    &s,
                    CheckKind::Token,
                    "https://storage.azure.com",
                    "token issued".into(),
                ),
                CheckRow::fail(
                    &s.source("audit"),
                    CheckKind::List,
                    "contosologs.blob.core.windows.net/insights-logs-auditevent",
                    Failure {
                        state: TenantState::AccessDenied,
                        code: Some("AuthorizationPermissionMismatch".into()),
                        reason: "HTTP 403".into(),
                        fix: "role missing: assign 'Storage Blob Data Reader'".into(),
                    },
                ),
            ],
        }
    }

    #[test]
    fn human_table_groups_by_tenant_and_shows_fixes() {
        let text = render_human(&report());
        assert!(
            text.starts_with("contoso (33333333-3333-4333-8333-333333333333): 1 failed"),
            "{text}"
        );
        assert!(text.contains("✓ token"), "{text}");
        assert!(text.contains("✗ list"), "{text}");
        assert!(text.contains("fix: [access_denied] role missing"), "{text}");
        assert!(
            text.contains("2 checks: 1 passed, 1 failed, 0 skipped"),
            "{text}"
        );
    }

    #[test]
    fn json_has_stable_fields() {
        let v: serde_json::Value = serde_json::from_str(&render_json(&report())).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["summary"]["failed"], 1);
        let row = &v["rows"][1];
        for f in [
            "tenant",
            "tenant_id",
            "source",
            "check",
            "target",
            "outcome",
            "state",
            "code",
            "reason",
            "fix",
        ] {
            assert!(row.get(f).is_some(), "no {f} in {row}");
        }
        assert_eq!(row["check"], "list");
        assert_eq!(row["outcome"], "fail");
        assert_eq!(row["state"], "access_denied");
    }
}
