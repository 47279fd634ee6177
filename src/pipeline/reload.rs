//! Config reload (SIGHUP): re-read and validate the file the agent was started with, and say
//! which tenants to stop, start, restart or leave alone. A file with errors is refused whole:
//! every error is logged and the running config keeps going.
//!
//! Only `[[tenant]]` sections are applied live; changes to `[agent]`, `[app]` or `[destination]`
//! need a restart, and a reload says so. Must not: start or stop anything itself (the
//! supervisor does, with this plan).

use crate::config::LoadedConfig;
use crate::telemetry::Metrics;

/// What a reload changes, by tenant name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// In the new file only: started.
    pub added: Vec<String>,
    /// In the old file only: stopped.
    pub removed: Vec<String>,
    /// In both, with a different section: restarted.
    pub changed: Vec<String>,
    /// In both, identical: untouched.
    pub unchanged: Vec<String>,
}

/// Re-reads `current.path`. `None` (after logging every error) when the new file is invalid.
pub fn reload(current: &LoadedConfig) -> Option<LoadedConfig> {
    let path = &current.path;
    match crate::config::load(path) {
        Ok(next) => {
            for section in changed_agent_sections(current, &next) {
                tracing::warn!(section, file = %path.display(), "Config reload: changes to [{section}] are not applied until ferry restarts");
            }
            let plan = plan(current, &next);
            tracing::info!(
                file = %path.display(),
                // names joined, so a JSON log line holds them as plain text, not Rust debug output
                added = %plan.added.join(", "),
                removed = %plan.removed.join(", "),
                restarted = %plan.changed.join(", "),
                unchanged = plan.unchanged.len(),
                "Config reloaded"
            );
            Metrics::reload("ok");
            Some(next)
        }
        Err(errors) => {
            for e in &errors.errors {
                tracing::error!(file = %path.display(), error = %e, "Config reload refused");
            }
            tracing::error!(
                file = %path.display(),
                problems = errors.len(),
                "Config reload refused: the running configuration keeps going; fix the file and send SIGHUP again (check it with `ferry validate -c {}`)",
                path.display()
            );
            Metrics::reload("refused");
            None
        }
    }
}

fn changed_agent_sections(a: &LoadedConfig, b: &LoadedConfig) -> Vec<&'static str> {
    let (a, b) = (&a.config, &b.config);
    let mut out = Vec::new();
    if as_value(&a.agent) != as_value(&b.agent) {
        out.push("agent");
    }
    if as_value(&a.app) != as_value(&b.app) {
        out.push("app");
    }
    if as_value(&a.destination) != as_value(&b.destination) {
        out.push("destination");
    }
    out
}

fn as_value<T: serde::Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// Compares the tenant sections of two configs.
pub fn plan(current: &LoadedConfig, next: &LoadedConfig) -> ReloadPlan {
    let mut p = ReloadPlan::default();
    for t in &next.config.tenants {
        match current.tenant(&t.name) {
            None => p.added.push(t.name.clone()),
            Some(old) if as_value(old) != as_value(t) => p.changed.push(t.name.clone()),
            Some(_) => p.unchanged.push(t.name.clone()),
        }
    }
    for t in &current.config.tenants {
        if next.tenant(&t.name).is_none() {
            p.removed.push(t.name.clone());
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, tenants: &str) -> LoadedConfig {
        let base = "[app]\nclient_id = \"11111111-1111-4111-8111-111111111111\"\ncredential = { kind = \"secret\", env = \"FERRY_APP_SECRET\" }\n\n[destination]\naccount_url = \"https://providerlogs.blob.core.windows.net\"\ncontainer = \"shipped\"\n";
        let path = dir.join("ferry.toml");
        std::fs::write(&path, format!("{base}\n{tenants}")).unwrap();
        match crate::config::load(&path) {
            Ok(l) => l,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn tenant(name: &str, id: &str, container: &str) -> String {
        format!("[[tenant]]\nname = \"{name}\"\ntenant_id = \"{id}\"\n[[tenant.source]]\nname = \"audit\"\nkind = \"blob\"\naccount_url = \"https://{name}logs.blob.core.windows.net\"\ncontainer = \"{container}\"\n")
    }

    #[test]
    fn plans_added_removed_changed_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            &(tenant("contoso", "33333333-3333-4333-8333-333333333333", "logs")
                + &tenant("fabrikam", "44444444-4444-4444-8444-444444444444", "logs")
                + &tenant("northwind", "77777777-7777-4777-8777-777777777777", "logs")),
        );
        let b = write(
            dir.path(),
            &(tenant("contoso", "33333333-3333-4333-8333-333333333333", "logs")
                + &tenant("fabrikam", "44444444-4444-4444-8444-444444444444", "other")
                + &tenant("tailspin", "66666666-6666-4666-8666-666666666666", "logs")),
        );
        let p = plan(&a, &b);
        assert_eq!(p.unchanged, vec!["contoso"]);
        assert_eq!(p.changed, vec!["fabrikam"]);
        assert_eq!(p.added, vec!["tailspin"]);
        assert_eq!(p.removed, vec!["northwind"]);
    }

    #[test]
    fn an_invalid_file_is_refused_and_the_old_config_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            &tenant("contoso", "33333333-3333-4333-8333-333333333333", "logs"),
        );
        std::fs::write(&a.path, "[agent\nstate_dir = ").unwrap();
        assert!(reload(&a).is_none());
    }
}
