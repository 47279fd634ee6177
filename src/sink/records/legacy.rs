//! The pre-2018 Azure Monitor archive format: one JSON document `{"records": [ {...}, ... ]}`
//! instead of JSON Lines. Detected by its opening bytes, validated as a whole with serde_json,
//! then expanded into one record per array element.
//!
//! Must not: be used on growing blobs or past a size cap (the whole document is held in memory).

use serde::de::IgnoredAny;
use serde::Deserialize;

/// Bytes looked at before deciding a blob is not a legacy document.
pub(super) const SNIFF_MAX: usize = 4096;

/// What the opening bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sniff {
    /// Starts like `{"records": [`: buffer and try to parse at the end.
    Candidate,
    /// Cannot be a legacy document: split lines.
    NotLegacy,
    /// Not enough bytes yet.
    NeedMore,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
    {
        i += 1;
    }
    i
}

/// Looks for `\s*{\s*"records"\s*:\s*[` (after an optional UTF-8 BOM).
pub(super) fn sniff(buf: &[u8]) -> Sniff {
    let mut i = if buf.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    for token in [&b"{"[..], b"\"records\"", b":", b"["] {
        i = skip_ws(buf, i);
        let have = buf.get(i..).unwrap_or_default();
        if have.len() < token.len() {
            if token.starts_with(have) {
                return if buf.len() >= SNIFF_MAX {
                    Sniff::NotLegacy
                } else {
                    Sniff::NeedMore
                };
            }
            return Sniff::NotLegacy;
        }
        if !have.starts_with(token) {
            return Sniff::NotLegacy;
        }
        i += token.len();
    }
    Sniff::Candidate
}

/// The whole document: exactly one key, `records`, holding an array.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyDoc {
    #[allow(dead_code)]
    records: Vec<IgnoredAny>,
}

/// Byte ranges `[start, end)` of the array elements, or `None` when `doc` is not a valid
/// legacy document (then the caller splits it as lines).
pub(super) fn element_ranges(doc: &[u8]) -> Option<Vec<(usize, usize)>> {
    let body = doc.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(doc);
    serde_json::from_slice::<LegacyDoc>(body).ok()?;
    // Valid JSON from here on: a structural scan is enough. Find the array's `[`.
    let open = doc.iter().position(|&c| c == b'[')?;
    let mut ranges = Vec::new();
    let mut i = open + 1;
    loop {
        i = skip_ws(doc, i);
        match doc.get(i)? {
            b']' => return Some(ranges),
            b',' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let start = i;
        let mut depth = 0usize;
        let mut in_str = false;
        let mut escaped = false;
        while let Some(&c) = doc.get(i) {
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_str = false;
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let mut end = i;
        while end > start && doc.get(end - 1).is_some_and(|c| c.is_ascii_whitespace()) {
            end -= 1;
        }
        ranges.push((start, end));
    }
}

/// One element as a single line: raw CR and LF can only be whitespace outside strings in
/// valid JSON, so removing them keeps the value and puts it on one line.
pub(super) fn one_line(element: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if element.iter().any(|&c| c == b'\n' || c == b'\r') {
        std::borrow::Cow::Owned(
            element
                .iter()
                .copied()
                .filter(|&c| c != b'\n' && c != b'\r')
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(element)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b"{\"records\": ["), Sniff::Candidate);
        assert_eq!(
            sniff(b"\xEF\xBB\xBF {\n \"records\" :\n["),
            Sniff::Candidate
        );
        assert_eq!(sniff(b"{\"rec"), Sniff::NeedMore);
        assert_eq!(sniff(b"  "), Sniff::NeedMore);
        assert_eq!(sniff(b"{\"time\": 1}\n"), Sniff::NotLegacy);
        assert_eq!(sniff(b"{\"records\": {"), Sniff::NotLegacy);
        assert_eq!(sniff(&[b' '; SNIFF_MAX]), Sniff::NotLegacy);
    }

    #[test]
    fn elements_of_a_pretty_document() {
        let doc = b"{\"records\": [\n  {\"a\": \"x,]}\\\"\", \"b\": [1, 2]},\n  {\"c\": {}}\n]}\n";
        let r = element_ranges(doc).unwrap();
        let got: Vec<&[u8]> = r.iter().map(|&(s, e)| &doc[s..e]).collect();
        assert_eq!(
            got,
            vec![&b"{\"a\": \"x,]}\\\"\", \"b\": [1, 2]}"[..], b"{\"c\": {}}"]
        );
        assert_eq!(element_ranges(b"{\"records\": []}").unwrap(), vec![]);
    }

    #[test]
    fn not_legacy_documents() {
        assert!(element_ranges(b"{\"records\": [1], \"other\": 2}").is_none());
        assert!(element_ranges(b"{\"records\": [1]}\n{\"records\": [2]}").is_none());
        assert!(element_ranges(b"{\"records\": [1").is_none());
    }

    #[test]
    fn one_line_removes_only_line_breaks() {
        assert_eq!(&*one_line(b"{\n \"a\": 1\r\n}"), b"{ \"a\": 1}");
        assert!(matches!(one_line(b"{}"), std::borrow::Cow::Borrowed(_)));
    }
}
