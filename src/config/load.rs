//! Loading: read the file, parse TOML keeping spans, deserialize each part on its own (so every
//! broken tenant and source reports, not only the first), validate, and resolve relative paths
//! against the config file's directory.
//!
//! Owns: turning bytes into a [`LoadedConfig`] or every [`ConfigError`] in them, located by
//! `file:line:col`. Must not: read any file but the config itself, or touch the network.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::cloud::CloudEndpoints;
use super::error::{did_you_mean, line_col, ConfigError, ConfigErrors, ConfigPath, Issue, PathSeg};
use super::schema::*;
use super::secrets::strip_inline_secrets;
use super::validate::{validate_view, ConfigView, TenantView};

/// Syntax errors shown at most; a binary file would otherwise print thousands.
const MAX_SYNTAX_ERRORS: usize = 20;

/// A config that parsed and validated, with relative paths resolved.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The configuration; every relative path in it (state_dir, ca_file, secret files,
    /// certificate and token files) is already joined to `base_dir`.
    pub config: Config,
    /// The config file as named by the operator.
    pub path: PathBuf,
    /// The absolute directory of the config file, against which relative paths were resolved.
    pub base_dir: PathBuf,
    /// The endpoints of the configured cloud.
    pub endpoints: CloudEndpoints,
}

impl LoadedConfig {
    /// The admin-consent URL for one tenant.
    pub fn consent_url(&self, tenant: &TenantConfig) -> String {
        super::cloud::consent_url(
            &self.endpoints.authority_host,
            &tenant.tenant_id,
            &self.config.app.client_id,
        )
    }

    /// A tenant by name.
    pub fn tenant(&self, name: &str) -> Option<&TenantConfig> {
        self.config.tenants.iter().find(|t| t.name == name)
    }
}

/// Reads, parses and validates the config file at `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    match std::fs::read(path) {
        Ok(bytes) => load_bytes(&bytes, path),
        Err(e) => Err(ConfigErrors {
            errors: vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                col: 0,
                path: String::new(),
                message: format!("cannot read the config file: {}", e.to_string().to_lowercase()),
                help: Some(
                    "pass an existing file with -c FILE or set FERRY_CONFIG; config/ferry.example.toml is a starting point"
                        .into(),
                ),
            }],
        }),
    }
}

/// Parses and validates config text; `file_name` names it in errors and anchors relative paths.
pub fn load_str(text: &str, file_name: &str) -> Result<LoadedConfig, ConfigErrors> {
    load_text(text, Path::new(file_name))
}

/// Parses and validates config bytes (which need not be UTF-8: that is reported, not a panic).
pub fn load_bytes(bytes: &[u8], file: &Path) -> Result<LoadedConfig, ConfigErrors> {
    match std::str::from_utf8(bytes) {
        Ok(text) => load_text(text, file),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            let text = String::from_utf8_lossy(valid);
            let (line, col) = line_col(&text, text.len());
            Err(ConfigErrors {
                errors: vec![ConfigError {
                    file: file.to_path_buf(),
                    line,
                    col,
                    path: String::new(),
                    message: format!("the file is not UTF-8 text (invalid byte at offset {})", e.valid_up_to()),
                    help: Some("a config is a TOML text file saved as UTF-8; check that -c names the right file".into()),
                }],
            })
        }
    }
}

/// The key a "duplicate key" error points at, when the text there is a plain key (a key name is
/// never a secret; anything else at that span is not repeated).
fn duplicate_key_name<'t>(text: &'t str, span: &Range<usize>, message: &str) -> Option<&'t str> {
    if !message.contains("duplicate key") {
        return None;
    }
    let key = text.get(span.clone())?.trim();
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    plain.then_some(key)
}

fn load_text(text: &str, file: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let (root, syntax) = DeTable::parse_recoverable(text);
    let mut errors = Vec::new();
    if !syntax.is_empty() {
        let total = syntax.len();
        for e in syntax.iter().take(MAX_SYNTAX_ERRORS) {
            let span = e.span().unwrap_or(0..0);
            let (line, col) = line_col(text, span.start);
            errors.push(ConfigError {
                file: file.to_path_buf(),
                line,
                col,
                path: String::new(),
                message: match duplicate_key_name(text, &span, e.message()) {
                    Some(key) => format!("invalid TOML: duplicate key \"{key}\""),
                    None => format!("invalid TOML: {}", first_line(e.message())),
                },
                help: Some(if e.message().contains("duplicate key") {
                    "each key may appear once per table; several tenants or sources are written [[tenant]] and [[tenant.source]] (double brackets)".into()
                } else {
                    "fix the syntax here: strings need double quotes, each key = value on its own line, tables are [name] or [[name]] (see https://toml.io)".into()
                }),
            });
        }
        if total > MAX_SYNTAX_ERRORS {
            errors.push(ConfigError {
                file: file.to_path_buf(),
                line: 0,
                col: 0,
                path: String::new(),
                message: format!("{} more syntax errors not shown", total - MAX_SYNTAX_ERRORS),
                help: Some("fix the errors above first; is this really a TOML file?".into()),
            });
        }
        return Err(ConfigErrors { errors });
    }
    let root_span = root.span();
    let mut root = root.into_inner();
    let (secrets, reported_secrets) = strip_inline_secrets(&mut root);
    let loc = Locator {
        text,
        root: &root,
        file,
    };
    for s in &secrets {
        errors.push(loc.error_at(
            s.span.clone(),
            s.path.to_string(),
            s.message(),
            Some(s.help()),
        ));
    }
    let parts = deserialize_parts(&root, root_span, &loc, &mut errors);

    let view = ConfigView {
        agent: parts.agent.as_ref(),
        app: parts.app.as_ref(),
        destination: parts.destination.as_ref(),
        tenants: parts
            .tenants
            .iter()
            .filter_map(|(index, tenant, sources)| {
                tenant.as_ref().map(|tenant| TenantView {
                    index: *index,
                    tenant,
                    sources: sources
                        .iter()
                        .filter_map(|(i, s)| s.as_ref().map(|s| (*i, s)))
                        .collect(),
                })
            })
            .collect(),
        reported_secrets,
    };
    for issue in validate_view(&view) {
        errors.push(loc.issue(issue));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| (e.line, e.col));
        errors.dedup();
        return Err(ConfigErrors { errors });
    }
    let config = parts.into_config().ok_or_else(|| ConfigErrors {
        errors: vec![loc.error_at(
            0..0,
            String::new(),
            "the config could not be read".into(),
            None,
        )],
    })?;
    let endpoints = config.cloud_endpoints().map_err(|mut e| {
        e.file = file.to_path_buf();
        ConfigErrors { errors: vec![e] }
    })?;
    let base_dir = base_dir_of(file);
    let config = resolve_paths(config, &base_dir);
    Ok(LoadedConfig {
        config,
        path: file.to_path_buf(),
        base_dir,
        endpoints,
    })
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or(s).trim();
    lowercase_first(line)
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// What deserialized, part by part.
#[derive(Default)]
struct Parts {
    agent: Option<AgentConfig>,
    app: Option<AppConfig>,
    destination: Option<DestinationConfig>,
    /// (index, tenant without sources, sources by index)
    #[allow(clippy::type_complexity)]
    tenants: Vec<(
        usize,
        Option<TenantConfig>,
        Vec<(usize, Option<SourceConfig>)>,
    )>,
}

impl Parts {
    fn into_config(self) -> Option<Config> {
        let mut tenants = Vec::new();
        for (_, tenant, sources) in self.tenants {
            let mut tenant = tenant?;
            tenant.sources = sources
                .into_iter()
                .map(|(_, s)| s)
                .collect::<Option<Vec<_>>>()?;
            tenants.push(tenant);
        }
        Some(Config {
            agent: self.agent?,
            app: self.app?,
            destination: self.destination?,
            tenants,
        })
    }
}

const TOP_KEYS: [&str; 4] = ["agent", "app", "destination", "tenant"];

fn deserialize_parts(
    root: &DeTable<'_>,
    root_span: Range<usize>,
    loc: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
) -> Parts {
    let mut parts = Parts::default();
    for (k, _) in root.iter() {
        let key: &str = k.get_ref();
        if !TOP_KEYS.contains(&key) {
            errors.push(unknown_key_error(
                loc,
                k.span(),
                &ConfigPath::root(),
                key,
                &TOP_KEYS,
            ));
        }
    }
    let path = ConfigPath::root();
    parts.agent = match root.get("agent") {
        Some(v) => piece::<AgentConfig>(v, loc, errors),
        None => Some(AgentConfig::default()),
    };
    let start = root_span.start..root_span.start;
    for (key, example) in [
        ("app", "[app]\nclient_id = \"<app GUID>\"\ncredential = { kind = \"secret\", env = \"FERRY_APP_SECRET\" }"),
        ("destination", "[destination]\naccount_url = \"https://providerlogs.blob.core.windows.net\"\ncontainer = \"shipped\""),
    ] {
        match root.get(key) {
            Some(v) if key == "app" => parts.app = piece::<AppConfig>(v, loc, errors),
            Some(v) => parts.destination = piece::<DestinationConfig>(v, loc, errors),
            None => errors.push(loc.error_at(
                start.clone(),
                path.key(key).to_string(),
                format!("missing table [{key}]"),
                Some(format!("add it, e.g.\n{example}\n(see config/ferry.example.toml)")),
            )),
        }
    }
    if let Some(tenants) = root.get("tenant") {
        match tenants.get_ref() {
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    parts.tenants.push(tenant_piece(index, item, loc, errors));
                }
            }
            _ => errors.push(
                loc.error_at(
                    tenants.span(),
                    "tenant".into(),
                    "tenant must be an array of tables".into(),
                    Some(
                        "write each customer tenant as its own [[tenant]] table (double brackets)"
                            .into(),
                    ),
                ),
            ),
        }
    }
    parts
}

#[allow(clippy::type_complexity)]
fn tenant_piece(
    index: usize,
    item: &Spanned<DeValue<'_>>,
    loc: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
) -> (
    usize,
    Option<TenantConfig>,
    Vec<(usize, Option<SourceConfig>)>,
) {
    let DeValue::Table(table) = item.get_ref() else {
        errors.push(loc.error_at(
            item.span(),
            format!("tenant[{index}]"),
            "each tenant must be a table".into(),
            Some("write it as a [[tenant]] table".into()),
        ));
        return (index, None, Vec::new());
    };
    let name = string_key(table, "name");
    let tp = ConfigPath::root()
        .key("tenant")
        .item(index, name.as_deref());
    let mut without_sources = table.clone();
    let sources_value = without_sources.remove("source");
    let tenant = piece::<TenantConfig>(
        &Spanned::new(item.span(), DeValue::Table(without_sources)),
        loc,
        errors,
    );
    let mut sources = Vec::new();
    match sources_value.as_ref().map(|v| (v.span(), v.get_ref())) {
        None => {}
        Some((_, DeValue::Array(items))) => {
            for (si, s) in items.iter().enumerate() {
                sources.push((si, source_piece(&tp, si, s, loc, errors)));
            }
        }
        Some((span, _)) => errors.push(loc.error_at(
            span,
            tp.key("source").to_string(),
            "source must be an array of tables".into(),
            Some(
                "write each source as its own [[tenant.source]] table, after its [[tenant]]".into(),
            ),
        )),
    }
    (index, tenant, sources)
}

const SOURCE_KINDS: [&str; 2] = ["blob", "log_analytics"];

fn source_piece(
    tp: &ConfigPath,
    index: usize,
    item: &Spanned<DeValue<'_>>,
    loc: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<SourceConfig> {
    let DeValue::Table(table) = item.get_ref() else {
        errors.push(loc.error_at(
            item.span(),
            tp.key("source").item(index, None).to_string(),
            "each source must be a table".into(),
            Some("write it as a [[tenant.source]] table".into()),
        ));
        return None;
    };
    let sp = tp
        .key("source")
        .item(index, string_key(table, "name").as_deref());
    let mut rest = table.clone();
    let kind = rest.remove("kind");
    let kind_str = kind.as_ref().and_then(|k| match k.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        _ => None,
    });
    let value = Spanned::new(item.span(), DeValue::Table(rest));
    match kind_str.as_deref() {
        Some("blob") => {
            let blob = piece::<BlobSourceConfig>(&value, loc, errors)?;
            if blob.mode == ShipMode::Copy {
                records_keys_in_copy_mode(&sp, &value, loc, errors);
            }
            Some(SourceConfig::Blob(blob))
        }
        Some("log_analytics") => {
            piece::<LogAnalyticsSourceConfig>(&value, loc, errors).map(SourceConfig::LogAnalytics)
        }
        Some(other) => {
            let span = kind.map(|k| k.span()).unwrap_or(item.span());
            let hint = did_you_mean(other, &SOURCE_KINDS)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            errors.push(loc.error_at(
                span,
                sp.key("kind").to_string(),
                format!("unknown source kind \"{other}\""),
                Some(format!("{hint}kind is \"blob\" or \"log_analytics\"")),
            ));
            None
        }
        None => {
            let span = kind.map(|k| k.span()).unwrap_or(item.span());
            errors.push(loc.error_at(
                span,
                sp.key("kind").to_string(),
                "source has no kind (or it is not a string)".into(),
                Some("add kind = \"blob\" or kind = \"log_analytics\"".into()),
            ));
            None
        }
    }
}

/// Keys that only records mode reads. Written in a `mode = "copy"` source they would do nothing,
/// which the operator did not mean: a copy object is shipped byte for byte, never split,
/// batched or compressed.
const RECORDS_ONLY_KEYS: [&str; 6] = [
    "compression",
    "compression_level",
    "batch_max_bytes",
    "batch_max_age",
    "max_record_size",
    "partial_line_wait",
];

fn records_keys_in_copy_mode(
    sp: &ConfigPath,
    source: &Spanned<DeValue<'_>>,
    loc: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
) {
    let DeValue::Table(table) = source.get_ref() else {
        return;
    };
    for (k, _) in table.iter() {
        let key: &str = k.get_ref();
        if RECORDS_ONLY_KEYS.contains(&key) {
            errors.push(loc.error_at(
                k.span(),
                sp.key(key).to_string(),
                format!("{key} applies to records mode only, and this source has mode = \"copy\""),
                Some(format!(
                    "copy mode ships each blob byte for byte, never split, batched or compressed: \
                     remove {key}, or set mode = \"records\" to ship JSON Lines"
                )),
            ));
        }
    }
}

fn string_key(table: &DeTable<'_>, key: &str) -> Option<String> {
    match table.get(key).map(|v| v.get_ref()) {
        Some(DeValue::String(s)) => Some(s.to_string()),
        _ => None,
    }
}

/// At most this many problems are reported for one part (a table of the file).
const PROBLEMS_PER_PART: usize = 32;

/// Deserializes one part, turning its errors into located [`ConfigError`]s. serde stops at the
/// first problem; to report the others in the same pass, the key it was found in is set aside
/// and the part read again, until it reads or nothing more can be set aside. A key that is then
/// missing only because it was set aside, or that a misspelt key's "did you mean" named, is not
/// reported again as missing.
fn piece<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    loc: &Locator<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let mut value = value.clone();
    let mut set_aside: Vec<String> = Vec::new();
    let mut meant: Vec<String> = Vec::new();
    for _ in 0..PROBLEMS_PER_PART {
        let e = match T::deserialize(value.clone().into_deserializer()) {
            Ok(v) => return set_aside.is_empty().then_some(v),
            Err(e) => e,
        };
        let msg = e.message();
        let ticks = backticked(msg);
        // missing only because it was set aside, or because a misspelt key already said so
        if msg.starts_with("missing field")
            && ticks
                .first()
                .is_some_and(|k| set_aside.iter().chain(&meant).any(|s| s == k))
        {
            return None;
        }
        // an unknown key of this table: what it was meant to be, and the key to set aside
        let unknown = match ticks.split_first() {
            Some((key, allowed)) if msg.starts_with("unknown field") => {
                meant.extend(did_you_mean(key, allowed).map(str::to_string));
                Some(key.to_string())
            }
            _ => None,
        };
        errors.push(loc.serde_error(&e, value.span()));
        let span = e.span().unwrap_or(value.span());
        let DeValue::Table(table) = value.get_mut() else {
            return None;
        };
        let unknown = unknown.filter(|k| table.get(k.as_str()).is_some());
        let holding = || {
            table.iter().find_map(|(k, v)| {
                let (ks, vs) = (k.span(), v.span());
                (ks.contains(&span.start) || (vs.start..=vs.end).contains(&span.start))
                    .then(|| k.get_ref().to_string())
            })
        };
        let key = unknown.or_else(holding)?;
        table.remove(key.as_str());
        set_aside.push(key);
    }
    None
}

/// The texts between backticks in a serde message: `unknown field `x`, expected one of `a`, `b``.
fn backticked(msg: &str) -> Vec<&str> {
    msg.split('`').skip(1).step_by(2).collect()
}

fn unknown_key_error(
    loc: &Locator<'_>,
    span: Range<usize>,
    table: &ConfigPath,
    key: &str,
    allowed: &[&str],
) -> ConfigError {
    let hint = did_you_mean(key, allowed)
        .map(|s| format!("did you mean \"{s}\"? "))
        .unwrap_or_default();
    let allowed_list = if allowed.is_empty() {
        "none".to_string()
    } else {
        allowed.join(", ")
    };
    loc.error_at(
        span,
        table.key(key).to_string(),
        format!("unknown key \"{key}\""),
        Some(format!("{hint}keys allowed here: {allowed_list}")),
    )
}

/// Finds spans and paths in the parsed document.
struct Locator<'a> {
    text: &'a str,
    root: &'a DeTable<'a>,
    file: &'a Path,
}

impl Locator<'_> {
    fn error_at(
        &self,
        span: Range<usize>,
        path: String,
        message: String,
        help: Option<String>,
    ) -> ConfigError {
        let (line, col) = line_col(self.text, span.start);
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            col,
            path,
            message,
            help,
        }
    }

    fn issue(&self, issue: Issue) -> ConfigError {
        let span = self.locate(&issue.path);
        self.error_at(span, issue.path.to_string(), issue.message, issue.help)
    }

    /// The span of the deepest part of `path` that is written in the file.
    fn locate(&self, path: &ConfigPath) -> Range<usize> {
        let mut span = 0..0;
        let mut current: Option<&DeValue<'_>> = None;
        for seg in &path.0 {
            let next = match (seg, current) {
                (PathSeg::Key(k), None) => self.root.get(k.as_str()),
                (PathSeg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
                (PathSeg::Item { index, .. }, Some(DeValue::Array(a))) => a.get(*index),
                _ => None,
            };
            match next {
                Some(v) => {
                    span = v.span();
                    current = Some(v.get_ref());
                }
                None => break,
            }
        }
        span
    }

    /// The path of the deepest key or value whose span holds `offset`.
    fn path_at(&self, offset: usize) -> (ConfigPath, Option<Range<usize>>) {
        let mut path = ConfigPath::root();
        let mut span = None;
        find_in_table(self.root, offset, &mut path, &mut span);
        (path, span)
    }

    fn serde_error(&self, e: &toml::de::Error, fallback: Range<usize>) -> ConfigError {
        let span = e.span().unwrap_or(fallback);
        let (mut path, _) = self.path_at(span.start);
        let msg = e.message().trim();
        let ticks = backticked(msg);
        if msg.starts_with("unknown field") {
            let key = ticks.first().copied().unwrap_or("");
            let allowed: Vec<&str> = ticks.iter().skip(1).copied().collect();
            // The error may point at the enclosing table (tagged enums); point at the key itself.
            if path.0.last() == Some(&PathSeg::Key(key.to_string())) {
                path.0.pop();
            }
            let (table, key_span) = self.key_below(&path, key).unwrap_or((path, span));
            return unknown_key_error(self, key_span, &table, key, &allowed);
        }
        if msg.starts_with("unknown variant") {
            let value = ticks.first().copied().unwrap_or("");
            let allowed: Vec<&str> = ticks.iter().skip(1).copied().collect();
            let hint = did_you_mean(value, &allowed)
                .map(|s| format!("did you mean \"{s}\"? "))
                .unwrap_or_default();
            let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
            return self.error_at(
                span,
                path.to_string(),
                format!("unknown value \"{value}\""),
                Some(format!("{hint}allowed values: {}", quoted.join(", "))),
            );
        }
        if msg.starts_with("missing field") {
            let key = ticks.first().copied().unwrap_or("");
            let what = if path.0.is_empty() {
                "this table".to_string()
            } else {
                path.to_string()
            };
            return self.error_at(
                span,
                path.to_string(),
                format!("missing key \"{key}\" in {what}"),
                Some(format!(
                    "add {key} = ... here; see docs/configuration.md for what it takes"
                )),
            );
        }
        if msg.starts_with("invalid socket address") {
            let given = self.text.get(span.clone()).unwrap_or("").trim();
            return self.error_at(
                span,
                path.to_string(),
                format!("{given} is not an IP address with a port"),
                Some("write an IP address and port, e.g. \"127.0.0.1:9464\" (this host only) or \"0.0.0.0:9464\" (every interface); host names such as localhost are not taken".into()),
            );
        }
        let help = if msg.starts_with("invalid type") {
            "write the value with the type shown (strings in double quotes, sizes like \"50MiB\", durations like \"60s\")".to_string()
        } else {
            "see docs/configuration.md for the values this key takes".to_string()
        };
        // Rust's names for numbers mean nothing to an operator
        let mut said = first_line(msg);
        for t in ["usize", "u64", "u32", "u16", "u8", "i64", "i32"] {
            said = said.replace(&format!("expected {t}"), "expected a whole number");
        }
        self.error_at(span, path.to_string(), said, Some(help))
    }

    /// The path and span of the key `key` nearest below `table` (tagged enums report unknown
    /// fields at the enclosing table, possibly several levels up).
    fn key_below(&self, table: &ConfigPath, key: &str) -> Option<(ConfigPath, Range<usize>)> {
        let mut node: Option<&DeValue<'_>> = None;
        for seg in &table.0 {
            let next = match (seg, node) {
                (PathSeg::Key(k), None) => self.root.get(k.as_str()),
                (PathSeg::Key(k), Some(DeValue::Table(t))) => t.get(k.as_str()),
                (PathSeg::Item { index, .. }, Some(DeValue::Array(a))) => a.get(*index),
                _ => None,
            };
            node = Some(next?.get_ref());
        }
        match node {
            None => find_key_in_table(self.root, key, table.clone()),
            Some(DeValue::Table(t)) => find_key_in_table(t, key, table.clone()),
            Some(_) => None,
        }
    }
}

fn find_key_in_table(
    t: &DeTable<'_>,
    key: &str,
    path: ConfigPath,
) -> Option<(ConfigPath, Range<usize>)> {
    if let Some((k, _)) = t.get_key_value(key) {
        return Some((path.clone(), k.span()));
    }
    for (k, v) in t.iter() {
        let p = path.key(k.get_ref());
        if let DeValue::Table(inner) = v.get_ref() {
            if let Some(found) = find_key_in_table(inner, key, p) {
                return Some(found);
            }
        }
    }
    None
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn find_in_table(
    table: &DeTable<'_>,
    offset: usize,
    path: &mut ConfigPath,
    found: &mut Option<Range<usize>>,
) -> bool {
    for (k, v) in table.iter() {
        let key: &str = k.get_ref();
        path.0.push(PathSeg::Key(key.to_string()));
        if contains(&k.span(), offset) {
            *found = Some(k.span());
            return true;
        }
        if find_in_value(v, offset, path, found) {
            return true;
        }
        path.0.pop();
    }
    false
}

fn find_in_value(
    v: &Spanned<DeValue<'_>>,
    offset: usize,
    path: &mut ConfigPath,
    found: &mut Option<Range<usize>>,
) -> bool {
    match v.get_ref() {
        DeValue::Table(t) if find_in_table(t, offset, path, found) => return true,
        DeValue::Table(_) => {}
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = match item.get_ref() {
                    DeValue::Table(t) => string_key(t, "name"),
                    _ => None,
                };
                path.0.push(PathSeg::Item { index: i, name });
                if find_in_value(item, offset, path, found) {
                    return true;
                }
                path.0.pop();
            }
        }
        _ => {}
    }
    if contains(&v.span(), offset) {
        *found = Some(v.span());
        return true;
    }
    false
}

fn base_dir_of(file: &Path) -> PathBuf {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if parent.is_absolute() {
        parent.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(parent),
            Err(_) => parent.to_path_buf(),
        }
    }
}

fn resolve_paths(mut config: Config, base: &Path) -> Config {
    let join = |p: &mut PathBuf| {
        if p.is_relative() && !p.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
    };
    let join_opt = |p: &mut Option<PathBuf>| {
        if let Some(p) = p {
            join(p);
        }
    };
    join(&mut config.agent.state_dir);
    join_opt(&mut config.agent.ca_file);
    if let Some(ManagedIdentityEndpoint::AppService { header, .. }) =
        &mut config.agent.managed_identity
    {
        join_opt(&mut header.file);
    }
    match &mut config.app.credential {
        AppCredential::Secret { file, .. } => join_opt(file),
        AppCredential::Certificate { path, key_path } => {
            join(path);
            join_opt(key_path);
        }
        AppCredential::WorkloadIdentity { token_file } => join_opt(token_file),
        AppCredential::KeyVaultSecret {
            identity: Some(ProviderCredential::WorkloadIdentity { token_file, .. }),
            ..
        } => join_opt(token_file),
        _ => {}
    }
    if let ProviderCredential::WorkloadIdentity { token_file, .. } =
        &mut config.destination.credential
    {
        join_opt(token_file);
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const LOCAL: &str = include_str!("../../config/local.toml");
    const EXAMPLE: &str = include_str!("../../config/ferry.example.toml");

    fn errors(text: &str) -> Vec<ConfigError> {
        match load_str(text, "t.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.errors,
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let loaded = match load_str(LOCAL, "config/local.toml") {
            Ok(l) => l,
            Err(e) => panic!("local.toml does not load:\n{e}"),
        };
        assert!(loaded.base_dir.is_absolute());
        assert!(loaded.base_dir.ends_with("config"));
        let c = &loaded.config;
        assert_eq!(c.agent.state_dir, loaded.base_dir.join("../.sandbox/state"));
        assert_eq!(
            c.agent.ca_file,
            Some(loaded.base_dir.join("../.sandbox/ca.pem"))
        );
        match &c.app.credential {
            AppCredential::Secret {
                file: Some(f),
                env: None,
            } => assert_eq!(f, &loaded.base_dir.join("../.sandbox/app-secret")),
            other => panic!("unexpected credential {other:?}"),
        }
        match &c.agent.managed_identity {
            Some(ManagedIdentityEndpoint::AppService { header, .. }) => {
                assert_eq!(
                    header.file,
                    Some(loaded.base_dir.join("../.sandbox/identity-header"))
                )
            }
            other => panic!("unexpected managed identity {other:?}"),
        }
        assert_eq!(
            loaded.endpoints.authority_host,
            "https://login.sandbox.test"
        );
        assert_eq!(
            loaded.endpoints.managed_hsm_resource,
            "https://managedhsm.sandbox.test"
        );
        let contoso = loaded.tenant("contoso").map(|t| loaded.consent_url(t));
        assert_eq!(
            contoso.as_deref(),
            Some("https://login.sandbox.test/33333333-3333-4333-8333-333333333333/adminconsent?client_id=11111111-1111-4111-8111-111111111111")
        );
    }

    #[test]
    fn absolute_paths_stay_as_written() {
        let loaded = load_str(EXAMPLE, "/etc/ferry/ferry.toml").map_err(|e| e.to_string());
        let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            loaded.config.agent.state_dir,
            PathBuf::from("/var/lib/ferry")
        );
        assert_eq!(loaded.base_dir, PathBuf::from("/etc/ferry"));
        assert_eq!(
            loaded.endpoints.authority_host,
            "https://login.microsoftonline.com"
        );
    }

    #[test]
    fn messages_name_the_value_or_key_they_are_about() {
        let text = LOCAL.replacen(
            "status_listen = \"127.0.0.1:9464\"",
            "status_listen = \"localhost:9464\"",
            1,
        );
        assert_ne!(text, LOCAL, "no [agent] table in config/local.toml");
        let found = errors(&text);
        assert_eq!(found[0].path, "agent.status_listen", "{found:#?}");
        assert!(
            found[0]
                .message
                .contains("\"localhost:9464\" is not an IP address with a port"),
            "{found:#?}"
        );
        assert!(found[0]
            .help
            .as_deref()
            .unwrap_or("")
            .contains("127.0.0.1:9464"));

        let text = LOCAL.replacen(
            "[agent]\n",
            "[agent]\nlog_format = \"json\"\nlog_format = \"text\"\n",
            1,
        );
        let found = errors(&text);
        assert_eq!(
            found[0].message, "invalid TOML: duplicate key \"log_format\"",
            "{found:#?}"
        );
    }

    #[test]
    fn every_broken_tenant_and_source_reports() {
        let text = LOCAL
            .replace("container = \"exports\"", "contianer = \"exports\"")
            .replace(
                "name = \"fabrikam\"",
                "name = \"fabrikam\"\nmax_concurrent_fetches = \"8\"",
            )
            .replace(
                "container = \"insights-logs-signinlogs\"",
                "container = \"insights-logs-signinlogs\"\nprefix = 60",
            );
        let found = errors(&text);
        let paths: Vec<&str> = found.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "tenant[contoso].source[exports].contianer",
                "tenant[fabrikam].max_concurrent_fetches",
                "tenant[fabrikam].source[signins].prefix",
            ],
            "{found:#?}"
        );
        assert!(
            found[2]
                .message
                .contains("invalid type: integer `60`, expected a string"),
            "{}",
            found[2].message
        );
        let text = LOCAL.replace("recheck_interval = \"30s\"", "recheck_interval = 30");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].path, "agent.recheck_interval");
        assert!(
            found[0]
                .message
                .contains("a duration needs a unit and quotes: write \"30s\""),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn unknown_top_level_keys_and_tables() {
        let text = LOCAL.replace("[destination]", "[destinaton]");
        let found = errors(&text);
        assert!(
            found.iter().any(|e| e.path == "destinaton"
                && e.help
                    .as_deref()
                    .is_some_and(|h| h.contains("did you mean \"destination\"?"))),
            "{found:#?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.path == "destination"
                    && e.message.contains("missing table [destination]")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_single_tenant_table_is_explained() {
        let text = "[app]\nclient_id = \"11111111-1111-4111-8111-111111111111\"\ncredential = { kind = \"workload_identity\" }\n[destination]\naccount_url = \"https://p.blob.core.windows.net\"\ncontainer = \"shipped\"\n[tenant]\nname = \"a\"\n";
        let found = errors(text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("[[tenant]]")));
        assert_eq!((found[0].line, found[0].col), (7, 1));
    }

    #[test]
    fn header_written_inline_is_a_secret_error_reported_once() {
        let text = LOCAL.replace(
            "header = { file = \"../.sandbox/identity-header\" }",
            "header = \"abc-123\"",
        );
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(found[0].path, "agent.managed_identity.header");
        assert!(found[0]
            .help
            .as_deref()
            .is_some_and(|h| h.contains("env = \"IDENTITY_HEADER\"")));
        assert!(!found.iter().any(|e| e.to_string().contains("abc-123")));
    }

    #[test]
    fn a_secret_in_the_destination_credential_is_told_it_takes_none() {
        let line = "credential = { kind = \"managed_identity\", client_id = \"55555555-5555-4555-8555-555555555555\" }";
        assert!(LOCAL.contains(line), "config/local.toml changed");
        let text = LOCAL.replacen(
            line,
            "credential = { kind = \"managed_identity\", password = \"pw-123\" }",
            1,
        );
        let found = errors(&text);
        let secret = found
            .iter()
            .find(|e| e.path == "destination.credential.password")
            .unwrap_or_else(|| panic!("{found:#?}"));
        let help = secret.help.as_deref().unwrap_or("");
        assert!(help.contains("holds no secret"), "{help}");
        assert!(!help.contains("FERRY_APP_SECRET"), "{help}");
        assert!(!found.iter().any(|e| e.to_string().contains("pw-123")));
    }

    /// Whatever the bytes, loading returns; it never panics.
    #[test]
    fn never_panics_on_garbage_truncation_or_mutation() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
        for _ in 0..300 {
            let len = rng.gen_range(0..400);
            let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let _ = load_bytes(&bytes, Path::new("garbage.toml"));
        }
        for text in [LOCAL, EXAMPLE] {
            for (cut, _) in text.char_indices().step_by(7) {
                let _ = load_str(&text[..cut], "cut.toml");
            }
        }
        let tokens = [
            "[", "]", "[[", "=", "\"", "{", "}", ",", "\n", "0", "-1", "1e999", "true", "'''",
            "\\u0000", "é", "tenant", "source", "kind", ".",
        ];
        let bytes = LOCAL.as_bytes();
        for _ in 0..1500 {
            let mut text = LOCAL.to_string();
            for _ in 0..rng.gen_range(1..4) {
                let mut at = rng.gen_range(0..bytes.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let token = tokens[rng.gen_range(0..tokens.len())];
                text.insert_str(at, token);
            }
            match load_str(&text, "mutated.toml") {
                Ok(_) => {}
                Err(e) => assert!(!e.is_empty(), "an error result always carries an error"),
            }
        }
    }
}
