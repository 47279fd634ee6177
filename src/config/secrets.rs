//! Inline-secret detection, run on the raw TOML tree before deserialization so the operator is told
//! "secrets must not be written in the config" instead of a bare "unknown key".
//!
//! Owns: recognising secret values written inline and removing them from the tree (so they are
//! reported once, and never echoed). Must not: print or keep the secret's value.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{ConfigPath, PathSeg};

/// Keys that only ever hold a secret value; no Ferry setting has these names.
const SECRET_KEYS: [&str; 13] = [
    "value",
    "secret",
    "client_secret",
    "password",
    "token",
    "access_token",
    "sas",
    "sas_token",
    "account_key",
    "connection_string",
    "private_key",
    "identity_header",
    "secret_value",
];

/// An inline secret found in the tree (its value is not kept).
#[derive(Debug, Clone)]
pub(crate) struct InlineSecret {
    /// Where the key or value is written.
    pub span: Range<usize>,
    /// The path of the secret key.
    pub path: ConfigPath,
    /// The environment variable name to suggest.
    pub suggested_env: &'static str,
}

impl InlineSecret {
    pub fn message(&self) -> String {
        format!(
            "secrets must not be written in the config: {} holds a secret value",
            self.path
        )
    }
    pub fn help(&self) -> String {
        // the provider's identities for its own storage take no secret at all
        let provider_side = matches!(
            self.path.0.as_slice(),
            [PathSeg::Key(d), PathSeg::Key(c), ..] if d == "destination" && c == "credential"
        );
        if provider_side {
            return "the destination's credential holds no secret: write kind = \"managed_identity\", kind = \"workload_identity\" or kind = \"app\" (the app's own credential of [app]), and remove the value from this file and its history".into();
        }
        format!(
            "use `env = \"{}\"` or `file = \"...\"` (a file readable only by ferry), and remove the value from this file and its history",
            self.suggested_env
        )
    }
}

/// Finds and removes inline secrets. Returns them, and the paths of the secret references whose
/// "name env or file" check would only repeat the report.
pub(crate) fn strip_inline_secrets(root: &mut DeTable<'_>) -> (Vec<InlineSecret>, HashSet<String>) {
    let mut found = Vec::new();
    let mut reported = HashSet::new();
    // `credential = "..."` and `header = "..."`: a string where a reference belongs.
    replace_string_with_table(
        root,
        &["app", "credential"],
        "FERRY_APP_SECRET",
        Some("secret"),
        &mut found,
        &mut reported,
    );
    replace_string_with_table(
        root,
        &["agent", "managed_identity", "header"],
        "IDENTITY_HEADER",
        None,
        &mut found,
        &mut reported,
    );
    walk(root, &ConfigPath::root(), &mut found, &mut reported);
    (found, reported)
}

fn replace_string_with_table(
    root: &mut DeTable<'_>,
    keys: &[&str],
    suggested_env: &'static str,
    kind: Option<&'static str>,
    found: &mut Vec<InlineSecret>,
    reported: &mut HashSet<String>,
) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut table = root;
    let mut path = ConfigPath::root();
    for k in parents {
        match table.get_mut(*k).map(|v| v.get_mut()) {
            Some(DeValue::Table(t)) => table = t,
            _ => return,
        }
        path = path.key(k);
    }
    let path = path.key(last);
    let Some(value) = table.get_mut(*last) else {
        return;
    };
    if !matches!(value.get_ref(), DeValue::String(_)) {
        return;
    }
    let span = value.span();
    let mut replacement = DeTable::new();
    if let Some(kind) = kind {
        replacement.insert(
            Spanned::new(span.clone(), Cow::Borrowed("kind")),
            Spanned::new(span.clone(), DeValue::String(Cow::Borrowed(kind))),
        );
    }
    *value = Spanned::new(span.clone(), DeValue::Table(replacement));
    reported.insert(path.to_string());
    found.push(InlineSecret {
        span,
        path,
        suggested_env,
    });
}

fn walk(
    table: &mut DeTable<'_>,
    path: &ConfigPath,
    found: &mut Vec<InlineSecret>,
    reported: &mut HashSet<String>,
) {
    let secret_keys: Vec<(String, Range<usize>)> = table
        .iter()
        .filter(|(k, _)| SECRET_KEYS.contains(&k.get_ref().as_ref()))
        .map(|(k, _)| (k.get_ref().to_string(), k.span()))
        .collect();
    for (key, span) in secret_keys {
        table.remove(key.as_str());
        reported.insert(path.to_string());
        let suggested_env = if path
            .0
            .iter()
            .any(|s| matches!(s, PathSeg::Key(k) if k == "managed_identity"))
        {
            "IDENTITY_HEADER"
        } else {
            "FERRY_APP_SECRET"
        };
        found.push(InlineSecret {
            span,
            path: path.key(&key),
            suggested_env,
        });
    }
    for (k, v) in table.iter_mut() {
        let key = k.get_ref().to_string();
        match v.get_mut() {
            DeValue::Table(t) => walk(t, &path.key(&key), found, reported),
            DeValue::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let DeValue::Table(t) = item.get_mut() {
                        let name = match t.get("name").map(|n| n.get_ref()) {
                            Some(DeValue::String(s)) => Some(s.to_string()),
                            _ => None,
                        };
                        walk(t, &path.key(&key).item(i, name.as_deref()), found, reported);
                    }
                }
            }
            _ => {}
        }
    }
}
