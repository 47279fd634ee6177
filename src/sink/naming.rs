//! Destination naming: the path template, sanitising of source blob names, and the
//! deterministic object name of one shipped byte range.
//!
//! Owns: how a (tenant, source, source blob, blob version, start offset) becomes a destination
//! object name. An object named by its start offset also carries a short token of the source
//! blob's version (its ETag for a block blob, its creation time for an append blob), so a
//! rewritten or re-created blob never overwrites part of what its earlier version shipped.
//! Must not: read the wall clock (dates come from the source blob's creation time, so a name is
//! the same on every poll and after every restart) or let a source blob name leave its
//! tenant/source prefix.
//!
//! Sanitising is injective: percent-encoding covers `%` itself, `.`/`..` segments become
//! `%2E`/`%2E%2E`, an empty segment becomes `~` (a character the encoder never emits), and a
//! name cut for length ends in `~` plus a hash of the full name. Backslashes are separators,
//! as Azure itself treats them.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::config::{check_template, parse_template, Problem, TemplatePart};

/// Longest blob name Azure accepts.
pub const AZURE_BLOB_NAME_MAX: usize = 1024;

/// Azure limits a blob name to 254 path segments; keep room for the template's own.
const NAME_SEGMENTS_MAX: usize = 200;

/// Shortest budget given to a source name, whatever the template's length.
const NAME_BUDGET_MIN: usize = 64;

/// File name of a source's watermark object (see [`PathTemplate::watermark_name`]). No shipped
/// object can have it: a sanitised source blob name holds `~` only as a whole segment (an empty
/// one) or before the hex digits of a shortening hash.
pub const WATERMARK_FILE: &str = "_ferry~watermark.json";

/// Hex digits of the hash appended to a shortened name.
const HASH_HEX_LEN: usize = 16;

/// One placeholder of a path template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    Tenant,
    TenantId,
    Source,
    Year,
    Month,
    Day,
    Hour,
    Name,
    Offset,
    Version,
    Ext,
}

impl Placeholder {
    fn parse(s: &str) -> Option<Placeholder> {
        Some(match s {
            "tenant" => Placeholder::Tenant,
            "tenant_id" => Placeholder::TenantId,
            "source" => Placeholder::Source,
            "yyyy" => Placeholder::Year,
            "MM" => Placeholder::Month,
            "dd" => Placeholder::Day,
            "HH" => Placeholder::Hour,
            "name" => Placeholder::Name,
            "offset" => Placeholder::Offset,
            "version" => Placeholder::Version,
            "ext" => Placeholder::Ext,
            _ => return None,
        })
    }

    /// Depends on the source object (not only on tenant, source and date).
    fn is_per_object(self) -> bool {
        matches!(
            self,
            Placeholder::Name | Placeholder::Offset | Placeholder::Version | Placeholder::Ext
        )
    }
}

/// A piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(Placeholder),
}

/// A `destination.path` template Ferry refuses. The rules are `config::check_template`'s, so
/// `ferry validate` reports the same problem (with every other one, and the file's line) first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}; {help}")]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: String,
}

/// A parsed `destination.path` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// Literals and placeholders in order.
    parts: Vec<Part>,
}

/// Values a template is rendered with.
#[derive(Debug, Clone)]
pub struct NameContext<'a> {
    /// Tenant name from the configuration.
    pub tenant: &'a str,
    /// Tenant's Entra tenant id.
    pub tenant_id: &'a str,
    /// Source name.
    pub source: &'a str,
    /// Source blob name, raw (it is sanitised while rendering).
    pub blob_name: &'a str,
    /// Creation time of the source blob: the only clock names depend on.
    pub blob_created: OffsetDateTime,
    /// What identifies the source blob's version (its ETag for a block blob, `created:<time>`
    /// for an append blob); names carry a short hash of it, see [`version_token`].
    pub blob_version: &'a str,
    /// Start of the shipped byte range (records mode, and the new bytes of an append blob in
    /// copy mode), `None` for a whole-blob copy.
    pub start_offset: Option<u64>,
    /// Extension without the dot (`jsonl.zst`), empty for none.
    pub ext: &'a str,
}

impl PathTemplate {
    /// Parses a template that passes [`check_template`] (`{tenant}` or `{tenant_id}`,
    /// `{source}` and `{name}`, per-object placeholders after the tenant and source, `{version}`
    /// wherever `{offset}` is, no empty, `.` or `..` segments); otherwise refuses it with the
    /// first problem found.
    pub fn parse(template: &str) -> Result<PathTemplate, TemplateError> {
        if let Some(Problem { message, help }) = check_template(template).into_iter().next() {
            return Err(TemplateError { message, help });
        }
        let parts = parse_template(template)
            .map_err(|e| TemplateError {
                message: format!("path template {template:?} does not parse ({e:?})"),
                help: "run `ferry validate`".into(),
            })?
            .into_iter()
            .map(|part| match part {
                TemplatePart::Literal(text) => Ok(Part::Literal(text)),
                TemplatePart::Placeholder(name) => Placeholder::parse(&name)
                    .map(Part::Field)
                    .ok_or_else(|| TemplateError {
                        message: format!("path template {template:?} uses placeholder {{{name}}}, which this build cannot render"),
                        help: "run `ferry validate`".into(),
                    }),
            })
            .collect::<Result<Vec<Part>, TemplateError>>()?;
        Ok(PathTemplate { parts })
    }

    /// Renders the full object name.
    ///
    /// Placeholders render as: `{tenant}`, `{tenant_id}`, `{source}` one sanitised segment each;
    /// dates from `blob_created` in UTC; `{name}` the sanitised blob name (shortened with a hash
    /// so the whole name stays within 1024 characters); `{offset}` the start offset as 20
    /// zero-padded digits (0 for a whole-blob copy); `{version}` the [`version_token`] of the
    /// blob version; `{ext}` the extension.
    /// When the template has no `{offset}` and `start_offset` is set, `@`, the version token, `.`
    /// and the padded offset are appended; when it has no `{ext}` and `ext` is not empty, `.` and
    /// `ext` are appended: `.../PT1H.json@3e1f2a9c0b7d.00000000000001048576.jsonl.zst`.
    pub fn render(&self, ctx: &NameContext<'_>) -> String {
        let without_name = self.render_with_name(ctx, "");
        let budget = AZURE_BLOB_NAME_MAX
            .saturating_sub(without_name.len())
            .max(NAME_BUDGET_MIN);
        let name = sanitize_blob_name_within(ctx.blob_name, budget);
        self.render_with_name(ctx, &name)
    }

    /// The part of every rendered name before the first per-object placeholder: everything
    /// an object of this tenant and source (and blob creation date) starts with.
    pub fn render_prefix(&self, ctx: &NameContext<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(f) if f.is_per_object() => break,
                Part::Field(f) => render_field(&mut out, *f, ctx, ""),
            }
        }
        out
    }

    /// The name of a (tenant, source)'s watermark object: [`WATERMARK_FILE`] in the deepest
    /// folder that every object of that tenant and source starts with (the template up to its
    /// first date or per-object placeholder, cut after its last `/`: `tenant=contoso/source=audit/`
    /// with the default template), or under `_ferry~watermarks/{tenant}/{source}/` when that
    /// folder does not hold both the tenant and the source (a template that starts with a date).
    pub fn watermark_name(&self, tenant: &str, tenant_id: &str, source: &str) -> String {
        let mut out = String::new();
        let (mut tenant_seen, mut source_seen) = (false, false);
        let mut root: Option<usize> = None;
        'parts: for part in &self.parts {
            match part {
                Part::Literal(l) => {
                    for c in l.chars() {
                        out.push(c);
                        if c == '/' && tenant_seen && source_seen {
                            root = Some(out.len());
                        }
                    }
                }
                Part::Field(Placeholder::Tenant) => {
                    out.push_str(&sanitize_segment(tenant));
                    tenant_seen = true;
                }
                Part::Field(Placeholder::TenantId) => {
                    out.push_str(&sanitize_segment(tenant_id));
                    tenant_seen = true;
                }
                Part::Field(Placeholder::Source) => {
                    out.push_str(&sanitize_segment(source));
                    source_seen = true;
                }
                Part::Field(_) => break 'parts,
            }
        }
        match root {
            Some(len) => format!("{}{WATERMARK_FILE}", &out[..len]),
            None => format!(
                "_ferry~watermarks/{}/{}/{WATERMARK_FILE}",
                sanitize_segment(tenant),
                sanitize_segment(source)
            ),
        }
    }

    fn render_with_name(&self, ctx: &NameContext<'_>, name: &str) -> String {
        let mut out = String::with_capacity(128 + name.len());
        let mut has_offset = false;
        let mut has_ext = false;
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(f) => {
                    // parse() only accepts {offset} together with {version}
                    has_offset |= *f == Placeholder::Offset;
                    has_ext |= *f == Placeholder::Ext;
                    render_field(&mut out, *f, ctx, name);
                }
            }
        }
        if let (false, Some(o)) = (has_offset, ctx.start_offset) {
            out.push('@');
            out.push_str(&version_token(ctx.blob_version));
            out.push('.');
            out.push_str(&format!("{o:020}"));
        }
        if !has_ext && !ctx.ext.is_empty() {
            out.push('.');
            out.push_str(&sanitize_segment(ctx.ext));
        }
        out
    }
}

fn render_field(out: &mut String, f: Placeholder, ctx: &NameContext<'_>, name: &str) {
    let utc = ctx.blob_created.to_offset(time::UtcOffset::UTC);
    match f {
        Placeholder::Tenant => out.push_str(&sanitize_segment(ctx.tenant)),
        Placeholder::TenantId => out.push_str(&sanitize_segment(ctx.tenant_id)),
        Placeholder::Source => out.push_str(&sanitize_segment(ctx.source)),
        Placeholder::Year => out.push_str(&format!("{:04}", utc.year())),
        Placeholder::Month => out.push_str(&format!("{:02}", u8::from(utc.month()))),
        Placeholder::Day => out.push_str(&format!("{:02}", utc.day())),
        Placeholder::Hour => out.push_str(&format!("{:02}", utc.hour())),
        Placeholder::Name => out.push_str(name),
        Placeholder::Offset => out.push_str(&format!("{:020}", ctx.start_offset.unwrap_or(0))),
        Placeholder::Version => out.push_str(&version_token(ctx.blob_version)),
        Placeholder::Ext if ctx.ext.is_empty() => {}
        Placeholder::Ext => out.push_str(&sanitize_segment(ctx.ext)),
    }
}

/// Hex digits of a version token.
const VERSION_HEX_LEN: usize = 12;

/// The token a name carries for one source blob version: the first 12 hex digits of the SHA-256
/// of what identifies the version (`NameContext::blob_version`). Two versions of one blob get
/// the same token with a chance of 1 in 2^48; the token is the same on every poll and restart.
pub fn version_token(blob_version: &str) -> String {
    let mut hex = hex::encode(Sha256::digest(blob_version.as_bytes()));
    hex.truncate(VERSION_HEX_LEN);
    hex
}

/// Bytes kept as they are inside a segment.
fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'=' | b'-')
}

/// Percent-encodes one segment (a `/` inside it is encoded too); `.`, `..` and empty become
/// `%2E`, `%2E%2E` and `~`.
fn sanitize_segment(seg: &str) -> String {
    match seg {
        "" => return "~".to_string(),
        "." => return "%2E".to_string(),
        ".." => return "%2E%2E".to_string(),
        _ => {}
    }
    let mut out = String::with_capacity(seg.len());
    for &b in seg.as_bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sanitises a source blob name into a relative destination path that cannot escape: every
/// segment percent-encoded outside `[A-Za-z0-9._=-]` (so `resourceId=/SUBSCRIPTIONS/.../PT1H.json`
/// stays readable), `\` treated as `/`, `.`/`..`/empty segments made harmless, and names over
/// 1024 characters shortened with a hash of the full name.
pub fn sanitize_blob_name(name: &str) -> String {
    sanitize_blob_name_within(name, AZURE_BLOB_NAME_MAX)
}

/// [`sanitize_blob_name`] with a length budget (at least 64 characters).
pub fn sanitize_blob_name_within(name: &str, max_len: usize) -> String {
    let max_len = max_len.max(NAME_BUDGET_MIN);
    let normalized = name.replace('\\', "/");
    let segments: Vec<&str> = normalized.split('/').collect();
    let mut out = String::with_capacity(normalized.len());
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            // Past the segment limit, separators fold into the last segment as `%2F`; `/` is
            // never encoded otherwise, so this stays unambiguous.
            out.push_str(if i < NAME_SEGMENTS_MAX { "/" } else { "%2F" });
        }
        out.push_str(&sanitize_segment(seg));
    }
    if out.len() <= max_len {
        return out;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hash = hex::encode(digest);
    let suffix = format!("~{}", hash.get(..HASH_HEX_LEN).unwrap_or(&hash));
    let mut keep = max_len.saturating_sub(suffix.len());
    // Never cut inside a `%XX` escape (the output is ASCII, so any byte index is a char boundary).
    let bytes = out.as_bytes();
    for back in 1..=2 {
        if keep >= back && bytes.get(keep - back) == Some(&b'%') {
            keep -= back;
            break;
        }
    }
    out.truncate(keep);
    // A cut right after `/` would leave the hash as a segment of its own: fine; a cut that
    // leaves a trailing `.` segment gets the suffix glued on, so no `.`/`..` segment appears.
    out.push_str(&suffix);
    out
}

#[cfg(test)]
#[path = "naming_tests.rs"]
mod tests;
