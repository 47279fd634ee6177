//! Parsing of List Blobs answers (`EnumerationResults`), streaming over the XML so a page of
//! 5,000 blobs never becomes a DOM.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Kind of blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    /// Immutable once written (a rewrite gets a new ETag).
    Block,
    /// Grows by appends (Azure Monitor archives).
    Append,
    /// Page blobs (disks); Ferry does not ship them.
    Page,
}

/// One blob of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobItem {
    /// Blob name (decoded).
    pub name: String,
    /// ETag.
    pub etag: String,
    /// Size in bytes.
    pub content_length: u64,
    /// Kind.
    pub kind: Option<BlobKind>,
    /// `Creation-Time`, RFC 1123.
    pub creation_time: Option<String>,
    /// `Last-Modified`, RFC 1123.
    pub last_modified: Option<String>,
    /// Metadata, names lower-cased.
    pub metadata: BTreeMap<String, String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Blobs in name order.
    pub blobs: Vec<BlobItem>,
    /// With a delimiter: the next-level prefixes (`BlobPrefix` elements, decoded), in name order.
    pub prefixes: Vec<String>,
    /// Where the next page starts; None at the end.
    pub next_marker: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses an `EnumerationResults` document.
pub fn parse_list(xml: &[u8]) -> Result<ListPage, String> {
    let mut reader = Reader::from_reader(xml);
    let mut page = ListPage::default();
    let mut path: Vec<String> = Vec::new();
    let mut current: Option<BlobItem> = None;
    let mut name_encoded = false;
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("list answer is not XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if tag == "Blob" && path.last().map(String::as_str) == Some("Blobs") {
                    current = Some(BlobItem::default());
                }
                if tag == "Name" {
                    name_encoded = e
                        .attributes()
                        .flatten()
                        .any(|a| a.key.as_ref() == b"Encoded" && a.value.as_ref() == b"true");
                }
                path.push(tag);
                text.clear();
            }
            Event::Empty(_) => {}
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| format!("bad XML text in list answer: {e}"))?;
                text.push_str(&s);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                let tag = path.pop().unwrap_or_default();
                let parent = path.last().map(String::as_str).unwrap_or("");
                let value = std::mem::take(&mut text);
                if let Some(item) = current.as_mut() {
                    match (parent, tag.as_str()) {
                        ("Blob", "Name") => {
                            item.name = if name_encoded {
                                percent_decode(&value)
                            } else {
                                value
                            };
                        }
                        ("Properties", "Etag") => item.etag = value,
                        ("Properties", "Content-Length") => {
                            item.content_length = value.trim().parse().unwrap_or(0)
                        }
                        ("Properties", "Creation-Time") => item.creation_time = Some(value),
                        ("Properties", "Last-Modified") => item.last_modified = Some(value),
                        ("Properties", "BlobType") => {
                            item.kind = Some(match value.as_str() {
                                "AppendBlob" => BlobKind::Append,
                                "PageBlob" => BlobKind::Page,
                                _ => BlobKind::Block,
                            })
                        }
                        ("Metadata", k) => {
                            item.metadata.insert(k.to_ascii_lowercase(), value);
                        }
                        (_, "Blob") => {
                            if let Some(done) = current.take() {
                                page.blobs.push(done);
                            }
                        }
                        _ => {}
                    }
                } else if tag == "Name" && parent == "BlobPrefix" {
                    page.prefixes.push(if name_encoded {
                        percent_decode(&value)
                    } else {
                        value
                    });
                } else if tag == "NextMarker" && parent == "EnumerationResults" && !value.is_empty()
                {
                    page.next_marker = Some(value);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_page() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://a/" ContainerName="c"><Prefix>p</Prefix><MaxResults>2</MaxResults>
<Blobs>
<Blob><Name>a/PT1H.json</Name><Properties><Creation-Time>Mon, 02 Nov 2026 10:00:00 GMT</Creation-Time><Last-Modified>Mon, 02 Nov 2026 10:05:00 GMT</Last-Modified><Etag>0x8D1</Etag><Content-Length>120</Content-Length><BlobType>AppendBlob</BlobType></Properties><Metadata><EncryptionData>{"a":1}</EncryptionData></Metadata></Blob>
<Blob><Name Encoded="true">b%0Ac</Name><Properties><Etag>"x"</Etag><Content-Length>0</Content-Length><BlobType>BlockBlob</BlobType></Properties><Metadata /></Blob>
</Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let page = parse_list(xml).unwrap();
        assert_eq!(page.blobs.len(), 2);
        assert_eq!(page.blobs[0].name, "a/PT1H.json");
        assert_eq!(page.blobs[0].kind, Some(BlobKind::Append));
        assert_eq!(page.blobs[0].content_length, 120);
        assert_eq!(
            page.blobs[0].metadata.get("encryptiondata").unwrap(),
            "{\"a\":1}"
        );
        assert_eq!(page.blobs[1].name, "b\nc");
        assert_eq!(page.next_marker.as_deref(), Some("2!abc"));
        assert!(page.prefixes.is_empty());
    }

    #[test]
    fn parses_prefixes_of_a_delimited_page() {
        let xml = br#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ContainerName="c"><Prefix>resourceId=/R/</Prefix><Delimiter>/</Delimiter><Blobs>
<BlobPrefix><Name>resourceId=/R/y=2025/</Name></BlobPrefix>
<Blob><Name>resourceId=/R/readme.txt</Name><Properties><Etag>e</Etag><Content-Length>3</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>
<BlobPrefix><Name Encoded="true">resourceId=/R/y%3D2026/</Name></BlobPrefix>
</Blobs><NextMarker /></EnumerationResults>"#;
        let page = parse_list(xml).unwrap();
        assert_eq!(
            page.prefixes,
            vec!["resourceId=/R/y=2025/", "resourceId=/R/y=2026/"]
        );
        assert_eq!(page.blobs.len(), 1);
        assert_eq!(page.blobs[0].name, "resourceId=/R/readme.txt");
        assert_eq!(page.next_marker, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // malformed answers must come back as errors or pages, never panics
        let _ = parse_list(b"<EnumerationResults><Blobs><Blob><Name>x</Wrong>");
        let _ = parse_list(&[0xff, 0xfe, 0x00, 0x3c]);
        assert_eq!(percent_decode("%\u{fc}%4"), "%\u{fc}%4");
        assert_eq!(
            parse_list(b"<EnumerationResults/>").unwrap(),
            ListPage::default()
        );
    }
}
