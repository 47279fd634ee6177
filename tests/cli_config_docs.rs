//! `docs/configuration.md` cannot drift from the schema: every key and every enumerated value of
//! the JSON Schema that `ferry config schema` prints must appear in the doc as `code`; and the
//! shipped PrometheusRule holds the alerts the operator guide lists.

use std::collections::BTreeSet;
use std::process::Command;

fn collect(v: &serde_json::Value, names: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                names.extend(props.keys().cloned());
            }
            if let Some(serde_json::Value::Array(values)) = map.get("enum") {
                names.extend(values.iter().filter_map(|v| v.as_str().map(str::to_string)));
            }
            for child in map.values() {
                collect(child, names);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect(i, names)),
        _ => {}
    }
}

#[test]
fn every_schema_key_and_value_is_documented() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["config", "schema"])
        .output()
        .expect("ferry runs");
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    let mut names = BTreeSet::new();
    collect(&schema, &mut names);
    assert!(
        names.len() > 60,
        "the schema walk found too little: {names:?}"
    );
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/configuration.md exists");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")) && !doc.contains(&format!("\"{n}\"")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention: {missing:?}"
    );
}

/// The alerts of `alert: Name` lines in a file.
fn alerts(path: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert: "))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// `deploy/kubernetes/monitoring/prometheusrule.yaml` says it holds the operator guide's alerts:
/// the two lists name the same alerts.
#[test]
fn the_shipped_prometheus_rule_holds_the_operator_guides_alerts() {
    let guide = alerts("docs/operator-guide.md");
    let rule = alerts("deploy/kubernetes/monitoring/prometheusrule.yaml");
    assert!(guide.len() >= 10, "alerts in the guide: {guide:?}");
    assert_eq!(
        guide, rule,
        "docs/operator-guide.md and deploy/kubernetes/monitoring/prometheusrule.yaml name different alerts"
    );
}
