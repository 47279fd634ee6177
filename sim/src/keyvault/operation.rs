//! Which Key Vault operation a request asks for, parsed from method and path the way the service
//! parses them (case-insensitive operation names, optional version, optional trailing slash), and
//! the access-policy permission each needs. Pure: no state, no I/O.

use axum::http::Method;

use super::model::Area;

/// What a request asks for, parsed from method and path; each variant names the key or secret
/// (lowercased) and, where the path has one, the version (empty: the latest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    ListKeys,
    GetKey {
        name: String,
        version: String,
    },
    CreateKey {
        name: String,
    },
    ImportKey {
        name: String,
    },
    UpdateKey {
        name: String,
        version: String,
    },
    DeleteKey {
        name: String,
    },
    GetDeletedKey {
        name: String,
    },
    RecoverDeletedKey {
        name: String,
    },
    Wrap {
        name: String,
        version: String,
        unwrap: bool,
    },
    GetSecret {
        name: String,
        version: String,
    },
    SetSecret {
        name: String,
    },
}

impl Operation {
    pub fn parse(method: &Method, path: &str) -> Option<Operation> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let s: Vec<&str> = lower.iter().map(String::as_str).collect();
        let name = |i: usize| {
            segments
                .get(i)
                .map(|n| n.to_ascii_lowercase())
                .unwrap_or_default()
        };
        let op = match (method, s.as_slice()) {
            (&Method::GET, ["keys"] | ["keys", ""]) => Operation::ListKeys,
            (&Method::POST, ["keys", n, "create"]) if !n.is_empty() => {
                Operation::CreateKey { name: name(1) }
            }
            (&Method::POST, ["keys", n, w @ ("wrapkey" | "unwrapkey")]) if !n.is_empty() => {
                Operation::Wrap {
                    name: name(1),
                    version: String::new(),
                    unwrap: *w == "unwrapkey",
                }
            }
            (&Method::POST, ["keys", n, v, w @ ("wrapkey" | "unwrapkey")]) if !n.is_empty() => {
                Operation::Wrap {
                    name: name(1),
                    version: v.to_string(),
                    unwrap: *w == "unwrapkey",
                }
            }
            (&Method::GET, ["keys", n]) if !n.is_empty() => Operation::GetKey {
                name: name(1),
                version: String::new(),
            },
            (&Method::GET, ["keys", n, v]) if !n.is_empty() => Operation::GetKey {
                name: name(1),
                version: v.to_string(),
            },
            (&Method::PUT, ["keys", n]) if !n.is_empty() => Operation::ImportKey { name: name(1) },
            (&Method::PATCH, ["keys", n]) if !n.is_empty() => Operation::UpdateKey {
                name: name(1),
                version: String::new(),
            },
            (&Method::PATCH, ["keys", n, v]) if !n.is_empty() => Operation::UpdateKey {
                name: name(1),
                version: v.to_string(),
            },
            (&Method::DELETE, ["keys", n]) if !n.is_empty() => {
                Operation::DeleteKey { name: name(1) }
            }
            (&Method::GET, ["deletedkeys", n]) if !n.is_empty() => {
                Operation::GetDeletedKey { name: name(1) }
            }
            (&Method::POST, ["deletedkeys", n, "recover"]) if !n.is_empty() => {
                Operation::RecoverDeletedKey { name: name(1) }
            }
            (&Method::GET, ["secrets", n]) if !n.is_empty() => Operation::GetSecret {
                name: name(1),
                version: String::new(),
            },
            (&Method::GET, ["secrets", n, v]) if !n.is_empty() => Operation::GetSecret {
                name: name(1),
                version: v.to_string(),
            },
            (&Method::PUT, ["secrets", n]) if !n.is_empty() => {
                Operation::SetSecret { name: name(1) }
            }
            _ => return None,
        };
        Some(op)
    }

    /// The permission area and access-policy operation this needs.
    pub fn permission(&self) -> (Area, &'static str) {
        match self {
            Operation::ListKeys => (Area::Keys, "list"),
            Operation::GetKey { .. } => (Area::Keys, "get"),
            Operation::CreateKey { .. } => (Area::Keys, "create"),
            Operation::ImportKey { .. } => (Area::Keys, "import"),
            Operation::UpdateKey { .. } => (Area::Keys, "update"),
            Operation::DeleteKey { .. } => (Area::Keys, "delete"),
            Operation::GetDeletedKey { .. } => (Area::Keys, "get"),
            Operation::RecoverDeletedKey { .. } => (Area::Keys, "recover"),
            Operation::Wrap { unwrap: true, .. } => (Area::Keys, "unwrapKey"),
            Operation::Wrap { unwrap: false, .. } => (Area::Keys, "wrapKey"),
            Operation::GetSecret { .. } => (Area::Secrets, "get"),
            Operation::SetSecret { .. } => (Area::Secrets, "set"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_the_service() {
        let p = |m: Method, path: &str| Operation::parse(&m, path);
        assert_eq!(
            p(Method::GET, "/keys/K1/"),
            Some(Operation::GetKey {
                name: "k1".into(),
                version: String::new()
            })
        );
        assert_eq!(
            p(Method::GET, "/keys/k1/abc"),
            Some(Operation::GetKey {
                name: "k1".into(),
                version: "abc".into()
            })
        );
        assert_eq!(
            p(Method::POST, "/keys/k1/abc/unwrapKey"),
            Some(Operation::Wrap {
                name: "k1".into(),
                version: "abc".into(),
                unwrap: true
            })
        );
        assert_eq!(
            p(Method::POST, "/keys/k1/wrapkey"),
            Some(Operation::Wrap {
                name: "k1".into(),
                version: String::new(),
                unwrap: false
            })
        );
        assert_eq!(
            p(Method::POST, "/keys/k1/create"),
            Some(Operation::CreateKey { name: "k1".into() })
        );
        assert_eq!(
            p(Method::DELETE, "/keys/k1"),
            Some(Operation::DeleteKey { name: "k1".into() })
        );
        assert_eq!(
            p(Method::PUT, "/secrets/s"),
            Some(Operation::SetSecret { name: "s".into() })
        );
        assert_eq!(p(Method::GET, "/certificates/c"), None);
        assert_eq!(p(Method::GET, "/keys//x"), None);
    }
}
