//! Pure checks of single values: names, GUIDs, URLs, container names, key ids, DNS pins and the
//! destination path template. Each returns the operator-facing message and fix.
//!
//! Owns: the rules for one value. Must not: know where the value sits in the config (that is
//! `validate`) or do any I/O.

use std::net::{IpAddr, SocketAddr};

use url::Url;

use super::error::did_you_mean;

/// A failed check: what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

fn problem(message: impl Into<String>, help: impl Into<String>) -> Problem {
    Problem {
        message: message.into(),
        help: help.into(),
    }
}

/// Tenant and source names: `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn check_name(name: &str) -> Result<(), Problem> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!("{name:?} is not a valid name: names are 1-63 lowercase letters, digits or hyphens, not starting with a hyphen"),
            format!("use a short name such as {:?}", suggest_name(name)),
        ))
    }
}

fn suggest_name(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out = out.trim_matches('-').chars().take(63).collect();
    if out.is_empty() {
        "contoso".into()
    } else {
        out
    }
}

/// A GUID written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, any case).
pub fn check_guid(value: &str, what: &str) -> Result<(), Problem> {
    let parts: Vec<&str> = value.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!("{what} {value:?} is not a GUID"),
            format!("copy the {what} from the Azure portal; it looks like \"00000000-0000-0000-0000-000000000000\""),
        ))
    }
}

/// How much of a URL may follow the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPath {
    /// Only `https://host` (a trailing `/` is tolerated).
    None,
    /// Any path.
    Any,
}

/// An `https://` URL with a host and no query or fragment.
pub fn check_https_url(value: &str, what: &str, path: UrlPath) -> Result<Url, Problem> {
    // a query may hold a SAS signature and user info a password: neither goes into a message
    let shown = redact_url(value);
    let url = Url::parse(value).map_err(|e| {
        problem(
            format!("{what} {shown:?} is not a URL ({e})"),
            format!("write the full URL, e.g. {}", example_for(what)),
        )
    })?;
    if url.scheme() != "https" {
        return Err(problem(
            format!("{what} {shown:?} must use https, not {}", url.scheme()),
            format!("write it as https://{}", url.host_str().unwrap_or("host")),
        ));
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => {
            return Err(problem(
                format!("{what} {shown:?} has no host"),
                format!("write the full URL, e.g. {}", example_for(what)),
            ))
        }
    };
    if url.query().is_some() {
        return Err(problem(
            format!("{what} {shown:?} must not have a query string"),
            format!("remove everything from '?'; Ferry authenticates with Entra tokens, never SAS tokens or keys in URLs: https://{host}{}", url.path().trim_end_matches('/')),
        ));
    }
    if url.fragment().is_some() {
        return Err(problem(
            format!("{what} {shown:?} must not have a fragment"),
            "remove everything from '#'",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem(
            format!("{what} must not contain credentials"),
            format!("write it as https://{host}"),
        ));
    }
    if path == UrlPath::None && url.path() != "/" && !url.path().is_empty() {
        return Err(problem(
            format!("{what} {shown:?} must not have a path"),
            format!("write only the endpoint, https://{host}; the container goes in `container`"),
        ));
    }
    Ok(url)
}

/// `value` as it may appear in a message: without a query (shown as `?…`) or user info.
pub fn redact_url(value: &str) -> String {
    let (base, query) = match value.split_once('?') {
        Some((b, _)) => (b, "?…"),
        None => (value, ""),
    };
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    format!("{base}{query}")
}

fn example_for(what: &str) -> &'static str {
    if what.contains("vault") {
        "https://provider-kv.vault.azure.net"
    } else if what.contains("key") {
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk"
    } else if what.contains("authority") {
        "https://login.microsoftonline.com"
    } else {
        "https://contosologs.blob.core.windows.net"
    }
}

/// An endpoint that may be plain http only when it is on this machine or link-local (IMDS, App
/// Service's local identity endpoint); anything else must be https.
pub fn check_identity_endpoint(value: &str) -> Result<(), Problem> {
    let url = Url::parse(value).map_err(|e| {
        problem(
            format!("managed identity endpoint {value:?} is not a URL ({e})"),
            "use the value of IDENTITY_ENDPOINT, or http://169.254.169.254/metadata/identity/oauth2/token for IMDS",
        )
    })?;
    let local = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        other => Err(problem(
            format!("managed identity endpoint {value:?} must use https (plain {other} is allowed only for loopback and link-local addresses)"),
            "use https, or the local endpoint the platform provides",
        )),
    }
}

/// Azure container names: 3-63 of `[a-z0-9-]`, starting and ending with a letter or digit, no
/// `--`. The system containers `$logs`, `$root` and `$web` are accepted where `allow_system`.
pub fn check_container(name: &str, allow_system: bool) -> Result<(), Problem> {
    if allow_system && matches!(name, "$logs" | "$root" | "$web") {
        return Ok(());
    }
    let b = name.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(|c| *c != b'-')
        && b.last().is_some_and(|c| *c != b'-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!("container {name:?} is not valid: container names must be 3-63 lowercase letters, digits or hyphens, start and end with a letter or digit, and have no \"--\""),
            format!("use the container's name exactly as the storage account shows it, e.g. {:?}", suggest_name(name)),
        ))
    }
}

/// `https://<vault>/keys/<name>[/<version>]`.
pub fn check_key_id(value: &str) -> Result<(), Problem> {
    let url = check_https_url(value, "key", UrlPath::Any)?;
    let segs: Vec<&str> = url.path().trim_matches('/').split('/').collect();
    let key_name_ok = |s: &str| {
        !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let ok = match segs.as_slice() {
        ["keys", name] => key_name_ok(name),
        ["keys", name, version] => {
            key_name_ok(name)
                && !version.is_empty()
                && version.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!("key {value:?} is not a Key Vault key identifier"),
            "write https://<vault>.vault.azure.net/keys/<name> (optionally /<version>), as shown on the key's page in the portal",
        ))
    }
}

/// A DNS pin: `10.1.2.3` or `10.1.2.3:443` (IPv6 as `::1` or `[::1]:443`).
pub fn check_pin(value: &str) -> Result<(), Problem> {
    if value.parse::<IpAddr>().is_ok() || value.parse::<SocketAddr>().is_ok() {
        Ok(())
    } else {
        Err(problem(
            format!("{value:?} is not an address to pin to"),
            "write an IP address, optionally with a port: \"10.1.2.3\" or \"10.1.2.3:443\"",
        ))
    }
}

/// A pinned host: a DNS name, or `*.` followed by one.
pub fn check_pin_host(value: &str) -> Result<(), Problem> {
    let name = value.strip_prefix("*.").unwrap_or(value);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(problem(
            format!("{value:?} is not a host name to pin"),
            "write a host such as \"contosologs.blob.core.windows.net\" or \"*.sandbox.test\"",
        ))
    }
}

/// Placeholders the destination path template may use.
pub const TEMPLATE_PLACEHOLDERS: [&str; 11] = [
    "tenant",
    "tenant_id",
    "source",
    "yyyy",
    "MM",
    "dd",
    "HH",
    "name",
    "offset",
    "version",
    "ext",
];

/// A piece of a parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text copied as is.
    Literal(String),
    /// A `{placeholder}`.
    Placeholder(String),
}

/// Why a path template does not split into literals and placeholders; columns count characters
/// from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSyntaxError {
    /// `{` without a matching `}`.
    Unclosed {
        /// Column of the `{`.
        column: usize,
    },
    /// `}` without an opening `{`.
    Stray {
        /// Column of the `}`.
        column: usize,
    },
    /// `{name}` that is not one of [`TEMPLATE_PLACEHOLDERS`].
    Unknown {
        /// The text between the braces.
        name: String,
        /// Column of the `{`.
        column: usize,
    },
}

/// Splits a template into literals and placeholders, checking braces and placeholder names: the
/// one tokenizer of path templates (config validation and `sink::naming` both use it).
pub fn parse_template(template: &str) -> Result<Vec<TemplatePart>, TemplateSyntaxError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = template.char_indices();
    let col = |byte: usize| template[..byte].chars().count() + 1;
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(TemplateSyntaxError::Unclosed { column: col(i) });
                }
                if !TEMPLATE_PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(TemplateSyntaxError::Unknown {
                        name,
                        column: col(i),
                    });
                }
                if !literal.is_empty() {
                    parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                }
                parts.push(TemplatePart::Placeholder(name));
            }
            '}' => return Err(TemplateSyntaxError::Stray { column: col(i) }),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(TemplatePart::Literal(literal));
    }
    Ok(parts)
}

/// The operator-facing problem for a template that does not tokenize.
fn syntax_problem(template: &str, e: TemplateSyntaxError) -> Problem {
    match e {
        TemplateSyntaxError::Unclosed { column } => problem(
            format!(
                "path template {template:?} has a '{{' at column {column} that is never closed"
            ),
            "close it: placeholders are written {tenant}, {source}, {yyyy}, ...",
        ),
        TemplateSyntaxError::Stray { column } => problem(
            format!("path template {template:?} has a '}}' at column {column} without a '{{'"),
            "remove it, or write the placeholder in full, e.g. {source}",
        ),
        TemplateSyntaxError::Unknown { name, column } => {
            let hint = did_you_mean(&name, &TEMPLATE_PLACEHOLDERS)
                .map(|s| format!("did you mean {{{s}}}? "))
                .unwrap_or_default();
            problem(
                format!("path template {template:?} uses unknown placeholder {{{name}}} at column {column}"),
                format!("{hint}known placeholders: {}", known_placeholders()),
            )
        }
    }
}

fn known_placeholders() -> String {
    TEMPLATE_PLACEHOLDERS
        .iter()
        .map(|p| format!("{{{p}}}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The destination path template, the one rule set of it (`ferry validate` reports every
/// problem; `sink::naming::PathTemplate::parse` refuses a template with the first): known
/// placeholders; `{tenant}` (or `{tenant_id}`) and `{source}` present, each followed by a
/// character no name can contain; `{name}` present, with every per-object placeholder after
/// the tenant and source ones; `{version}` wherever `{offset}` is; no leading `/`, no empty,
/// `.` or `..` segments (`\\` separates segments too, as Azure treats it).
pub fn check_template(template: &str) -> Vec<Problem> {
    let mut out = Vec::new();
    let parts = match parse_template(template) {
        Ok(p) => p,
        Err(e) => return vec![syntax_problem(template, e)],
    };
    let example = "\"tenant={tenant}/source={source}/date={yyyy}-{MM}-{dd}/hour={HH}/{name}\"";
    let has = |p: &str| parts.contains(&TemplatePart::Placeholder(p.into()));
    if !has("tenant") && !has("tenant_id") {
        out.push(problem(
            format!("path template {template:?} does not contain {{tenant}} (or {{tenant_id}}), so two tenants could write to the same place"),
            format!("include both {{tenant}} and {{source}}, e.g. {example}"),
        ));
    }
    if !has("source") {
        out.push(problem(
            format!("path template {template:?} does not contain {{source}}, so two sources could write to the same place"),
            format!("include both {{tenant}} and {{source}}, e.g. {example}"),
        ));
    }
    if !has("name") {
        out.push(problem(
            format!("path template {template:?} does not contain {{name}}, so the objects of two source blobs of one source would be written to the same name"),
            format!("add {{name}} after {{tenant}} and {{source}}, e.g. {example}"),
        ));
    }
    // a per-object placeholder before the last of {tenant}/{tenant_id}/{source} would let a
    // blob's name decide which tenant's prefix an object lands under
    let position = |p: &str| {
        parts
            .iter()
            .position(|x| *x == TemplatePart::Placeholder(p.into()))
    };
    let last_prefix = ["tenant", "tenant_id", "source"]
        .iter()
        .filter_map(|p| position(p))
        .max();
    let first_per_object = ["name", "offset", "version", "ext"]
        .iter()
        .filter_map(|p| position(p).map(|i| (i, *p)))
        .min();
    if let (Some(last), Some((first, name))) = (last_prefix, first_per_object) {
        if first < last {
            out.push(problem(
                format!("path template {template:?} has {{{name}}} before {{tenant}} and {{source}}, so a source blob's name could decide whose prefix an object lands under"),
                format!("put {{tenant}} and {{source}} first, e.g. {example}"),
            ));
        }
    }
    if has("offset") && !has("version") {
        out.push(problem(
            format!("path template {template:?} has {{offset}} without {{version}}, so a rewritten or re-created source blob would overwrite part of what its earlier version shipped"),
            "add {version} next to {offset}, e.g. \"{tenant}/{source}/{name}@{version}.{offset}.{ext}\", or leave both out (Ferry then appends @{version}.{offset})",
        ));
    }
    let rest = match template.strip_prefix(['/', '\\']) {
        Some(rest) => {
            out.push(problem(
                format!("path template {template:?} starts with '/'"),
                "remove the leading '/': blob names are relative to the container",
            ));
            rest
        }
        None => template,
    };
    let mut bad: Vec<&str> = Vec::new();
    for s in rest.split(['/', '\\']) {
        if matches!(s, "" | "." | "..") && !bad.contains(&s) {
            bad.push(s);
        }
    }
    if !bad.is_empty() {
        let listed: Vec<String> = bad.iter().map(|s| format!("{s:?}")).collect();
        out.push(problem(
            format!(
                "path template {template:?} has an empty, '.' or '..' segment ({})",
                listed.join(", ")
            ),
            "remove it: blob names are not file paths, and a segment must neither be empty nor step outside the prefix",
        ));
    }
    for (i, part) in parts.iter().enumerate() {
        let TemplatePart::Placeholder(name) = part else {
            continue;
        };
        if name != "tenant" && name != "source" {
            // {tenant_id} is a GUID: fixed length, so whatever follows it cannot blur two tenants
            continue;
        }
        let separated = match parts.get(i + 1) {
            None => true,
            Some(TemplatePart::Placeholder(_)) => false,
            Some(TemplatePart::Literal(text)) => text
                .chars()
                .next()
                .is_some_and(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')),
        };
        if !separated {
            out.push(problem(
                format!("path template {template:?}: {{{name}}} is followed by something a name can contain, so tenant \"a\" with source \"bc\" could collide with tenant \"ab\" with source \"c\""),
                format!("put a '/', '_', '.' or '=' right after {{{name}}}, e.g. {example}"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_leave_out_queries_and_user_info() {
        for (value, shown) in [
            (
                "https://a.blob.core.windows.net/?sv=1&sig=S3CR3T",
                "https://a.blob.core.windows.net/?…",
            ),
            (
                "https://u:p4ss@a.blob.core.windows.net/c",
                "https://a.blob.core.windows.net/c",
            ),
            ("http://u:p4ss@a/x?sig=S3CR3T", "http://a/x?…"),
            ("not a url ?sig=S3CR3T", "not a url ?…"),
            (
                "https://a.blob.core.windows.net/c@d",
                "https://a.blob.core.windows.net/c@d",
            ),
        ] {
            assert_eq!(redact_url(value), shown);
        }
        // every problem of a URL with a SAS token or a password: never the secret
        for value in [
            "https://a.blob.core.windows.net/?sv=1&sig=S3CR3T",
            "http://a.blob.core.windows.net/?sig=S3CR3T",
            "https://a.blob.core.windows.net/c/d?sig=S3CR3T",
            "https://u:S3CR3T@a.blob.core.windows.net",
            "https://u:S3CR3T@a.blob.core.windows.net/c",
            "ht!tp://u:S3CR3T@a?sig=S3CR3T",
        ] {
            let p = check_https_url(value, "account_url", UrlPath::None).expect_err(value);
            assert!(
                !p.message.contains("S3CR3T") && !p.help.contains("S3CR3T"),
                "{value}: {} / {}",
                p.message,
                p.help
            );
        }
    }

    #[test]
    fn names() {
        assert!(check_name("contoso").is_ok());
        assert!(check_name("a").is_ok());
        assert!(check_name("a-1").is_ok());
        assert!(check_name("-a").is_err());
        assert!(check_name("Contoso").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(&"a".repeat(64)).is_err());
        assert_eq!(
            check_name("My Tenant").unwrap_err().help,
            "use a short name such as \"my-tenant\""
        );
    }

    #[test]
    fn guids() {
        assert!(check_guid("33333333-3333-4333-8333-333333333333", "tenant_id").is_ok());
        assert!(check_guid("ABCDEF01-3333-4333-8333-333333333333", "tenant_id").is_ok());
        assert!(check_guid("contoso.onmicrosoft.com", "tenant_id").is_err());
        assert!(check_guid("33333333-3333-4333-8333-33333333333", "tenant_id").is_err());
        assert!(check_guid("33333333-3333-4333-8333-33333333333g", "tenant_id").is_err());
    }

    #[test]
    fn urls() {
        let ok = "https://contosologs.blob.core.windows.net";
        assert!(check_https_url(ok, "account_url", UrlPath::None).is_ok());
        assert!(check_https_url(&format!("{ok}/"), "account_url", UrlPath::None).is_ok());
        let e = check_https_url(
            "http://contosologs.blob.core.windows.net",
            "account_url",
            UrlPath::None,
        )
        .unwrap_err();
        assert!(e.message.contains("must use https"), "{e:?}");
        assert!(check_https_url(&format!("{ok}/logs"), "account_url", UrlPath::None).is_err());
        assert!(
            check_https_url(&format!("{ok}?sv=1&sig=x"), "account_url", UrlPath::None).is_err()
        );
        assert!(check_https_url("contosologs", "account_url", UrlPath::None).is_err());
        assert!(check_https_url("https://user:pw@host", "account_url", UrlPath::None).is_err());
    }

    #[test]
    fn identity_endpoints() {
        assert!(
            check_identity_endpoint("http://169.254.169.254/metadata/identity/oauth2/token")
                .is_ok()
        );
        assert!(check_identity_endpoint("http://127.0.0.1:41000/msi/token").is_ok());
        assert!(check_identity_endpoint("https://identity.sandbox.test/msi/token").is_ok());
        assert!(check_identity_endpoint("http://identity.example.com/msi/token").is_err());
    }

    #[test]
    fn containers() {
        assert!(check_container("insights-logs-auditevent", false).is_ok());
        assert!(check_container("ab", false).is_err());
        assert!(check_container("Logs", false).is_err());
        assert!(check_container("a--b", false).is_err());
        assert!(check_container("abc-", false).is_err());
        assert!(check_container("$logs", true).is_ok());
        assert!(check_container("$logs", false).is_err());
    }

    #[test]
    fn key_ids() {
        assert!(check_key_id("https://contoso-kv.vault.azure.net/keys/ferry-cmk").is_ok());
        assert!(check_key_id("https://contoso-kv.vault.azure.net/keys/ferry-cmk/0123abcd").is_ok());
        assert!(check_key_id("https://contoso-kv.vault.azure.net/secrets/ferry-cmk").is_err());
        assert!(check_key_id("https://contoso-kv.vault.azure.net/keys/").is_err());
        assert!(check_key_id("https://contoso-kv.vault.azure.net/keys/a/b/c").is_err());
        assert!(check_key_id("http://contoso-kv.vault.azure.net/keys/k").is_err());
    }

    #[test]
    fn pins() {
        assert!(check_pin("10.1.2.3").is_ok());
        assert!(check_pin("10.1.2.3:443").is_ok());
        assert!(check_pin("[::1]:443").is_ok());
        assert!(check_pin("example.com").is_err());
        assert!(check_pin("10.1.2.3:99999").is_err());
        assert!(check_pin_host("*.sandbox.test").is_ok());
        assert!(check_pin_host("a..b").is_err());
    }

    #[test]
    fn templates() {
        assert!(check_template(
            "tenant={tenant}/source={source}/date={yyyy}-{MM}-{dd}/hour={HH}/{name}"
        )
        .is_empty());
        assert!(check_template("{tenant}/{source}/{yyyy}/{MM}/{dd}/{HH}/{name}").is_empty());
        assert!(check_template("{tenant}/{source}/{name}@{version}.{offset}.{ext}").is_empty());
        assert!(check_template("{tenant}/{source}/{name}.{offset}")[0]
            .message
            .contains("without {version}"));
        // Collisions: a name character or another placeholder right after {tenant}.
        assert_eq!(check_template("{tenant}-{source}/{name}").len(), 1);
        assert_eq!(check_template("{tenant}{source}/{name}").len(), 1);
        assert_eq!(check_template("{tenant}/{source}x/{name}").len(), 1);
        for (template, first_says) in [
            ("{tenant}/{name}", "{source}"),
            ("/{tenant}/{source}/{name}", "starts with '/'"),
            ("{tenant}/../{source}/{name}", ".."),
            ("{tenant}//{source}/{name}", "empty"),
            ("{tenant}/{source}/{name}/", "empty"),
            ("{tenant}\\..\\{source}/{name}", ".."),
            ("{source}/{name}", "{tenant} (or {tenant_id})"),
        ] {
            let found = check_template(template);
            assert!(
                found[0].message.contains(first_says),
                "{template}: {found:?}"
            );
        }
        // every problem of a template, not the first of a kind
        let all = check_template("/{tenant}{source}/../{yyyy}//{name}");
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all[0].message.contains("starts with '/'"), "{all:?}");
        assert!(all[1].message.contains("(\"..\", \"\")"), "{all:?}");
        assert!(
            all[2].message.contains("{tenant} is followed by"),
            "{all:?}"
        );
        // the tenant's GUID names its prefix as well as its name does
        assert!(check_template("{tenant_id}/{source}/{name}@{version}.{offset}.{ext}").is_empty());
        // what `ferry run` would refuse, `ferry validate` reports first
        let no_name = check_template("{tenant}/{source}/{yyyy}{MM}{dd}");
        assert_eq!(no_name.len(), 1, "{no_name:?}");
        assert!(no_name[0].message.contains("{name}"), "{no_name:?}");
        let early = check_template("{name}/{tenant}/{source}");
        assert_eq!(early.len(), 1, "{early:?}");
        assert!(early[0].message.contains("{name} before"), "{early:?}");
        assert_eq!(check_template("{tenant}/{ext}/{source}/{name}").len(), 1);
        let unknown = check_template("{tenant}/{source}/{nmae}");
        assert!(
            unknown[0].help.contains("did you mean {name}"),
            "{unknown:?}"
        );
        assert!(check_template("{tenant}/{source")[0]
            .message
            .contains("never closed"));
        assert!(check_template("{tenant}/source}")[0]
            .message
            .contains("without"));
    }
}
