//! Fault injection: rules set through the admin API that every data-plane request passes through.
//!
//! A rule matches on host glob, method and path prefix, and then delays, answers with an error
//! status in the shape of the service the host belongs to (storage XML, Key Vault JSON, Entra
//! JSON), cuts the response body after N bytes and resets the connection, or closes the
//! connection without any answer. Rules with a `count` apply to the next N matching requests
//! only. The admin host is never faulted (so faults can always be cleared).
//! This module decides and builds responses; `server` applies them to the connection.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Which service a host name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HostKind {
    /// `login.sandbox.test`, `login.microsoftonline.com`, `login.windows.net`.
    Login,
    /// `identity.sandbox.test` and the plain-http IMDS listener.
    Identity,
    /// `{vault}.vault.*`.
    Vault,
    /// `{hsm}.managedhsm.*`.
    ManagedHsm,
    /// `{account}.blob.*`.
    Blob,
    /// `admin.sandbox.test`.
    Admin,
    /// Anything else.
    Unknown,
}

impl HostKind {
    /// Classifies a host name (port already stripped, any case).
    pub fn of(host: &str) -> Self {
        let h = host.to_ascii_lowercase();
        let sub_of = |suffix: &str| {
            h.strip_suffix(suffix)
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        };
        match h.as_str() {
            "login.sandbox.test" | "login.microsoftonline.com" | "login.windows.net" => Self::Login,
            "identity.sandbox.test" => Self::Identity,
            "admin.sandbox.test" => Self::Admin,
            _ if sub_of(".vault.sandbox.test") || sub_of(".vault.azure.net") => Self::Vault,
            _ if sub_of(".managedhsm.sandbox.test") || sub_of(".managedhsm.azure.net") => {
                Self::ManagedHsm
            }
            _ if sub_of(".blob.sandbox.test") || sub_of(".blob.core.windows.net") => Self::Blob,
            _ => Self::Unknown,
        }
    }
}

/// A fault rule as posted to `POST /admin/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// Host glob (`*` matches any run of characters), e.g. `*.blob.sandbox.test`. None: every host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTP method (any case). None: every method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path prefix, e.g. `/contoso-container/`. None: every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Answer with this status instead of the real handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Service error code (`ServerBusy`, `Throttled`, an AADSTS number, ...); defaults per status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `Retry-After` seconds on the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// `x-ms-retry-after-ms` on the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Delay before answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Serve the request at once, then hold its response back this long: a write that took
    /// effect while its acknowledgement is still on the way (what a client killed meanwhile
    /// never learns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_latency_ms: Option<u64>,
    /// Send this many body bytes, then reset the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_after_bytes: Option<u64>,
    /// Close the connection without any answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outage: bool,
    /// Apply to the next N matching requests only. None: until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Why a fault rule was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    /// Status outside 100..=599.
    #[error("fault status {0} is not an http status; use 400..=599")]
    BadStatus(u16),
    /// `count: 0` would never apply.
    #[error("fault count 0 never applies; omit count or give at least 1")]
    ZeroCount,
    /// A rule that does nothing.
    #[error(
        "fault rule does nothing; give status, latency_ms, response_latency_ms, reset_after_bytes or outage"
    )]
    NoEffect,
}

impl FaultSpec {
    fn validate(&self) -> Result<(), FaultError> {
        if let Some(s) = self.status {
            if !(100..=599).contains(&s) {
                return Err(FaultError::BadStatus(s));
            }
        }
        if self.count == Some(0) {
            return Err(FaultError::ZeroCount);
        }
        if self.status.is_none()
            && self.latency_ms.is_none()
            && self.response_latency_ms.is_none()
            && self.reset_after_bytes.is_none()
            && !self.outage
        {
            return Err(FaultError::NoEffect);
        }
        Ok(())
    }

    fn matches(&self, host: &str, method: &str, path: &str) -> bool {
        self.host
            .as_deref()
            .is_none_or(|g| glob_match(&g.to_ascii_lowercase(), &host.to_ascii_lowercase()))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

/// `*` matches any run of characters (including none); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let mut pieces: Vec<&str> = rest.split('*').collect();
    let last = pieces.pop().unwrap_or("");
    for piece in pieces {
        match remaining.find(piece) {
            Some(i) => remaining = &remaining[i + piece.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// The installed rules, in the order added (the first match wins).
#[derive(Debug, Default)]
pub struct Faults {
    /// `(id, rule, remaining count)`.
    rules: Vec<(String, FaultSpec, Option<u64>)>,
}

/// What to do to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultAction {
    /// The rule's id.
    pub id: String,
    /// The rule.
    pub spec: FaultSpec,
}

impl Faults {
    /// Installs a rule; returns its id.
    pub fn add(&mut self, spec: FaultSpec) -> Result<String, FaultError> {
        spec.validate()?;
        let id = uuid::Uuid::new_v4().to_string();
        let remaining = spec.count;
        self.rules.push((id.clone(), spec, remaining));
        Ok(id)
    }

    /// Removes one rule; false if it did not exist.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(i, _, _)| i != id);
        self.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The installed rules with their ids and remaining counts.
    pub fn list(&self) -> Vec<serde_json::Value> {
        self.rules
            .iter()
            .map(|(id, spec, remaining)| json!({"id": id, "rule": spec, "remaining": remaining}))
            .collect()
    }

    /// The first rule matching this request, consuming one of its `count`. The admin host never matches.
    pub fn take_match(&mut self, host: &str, method: &str, path: &str) -> Option<FaultAction> {
        if HostKind::of(host) == HostKind::Admin {
            return None;
        }
        let index = self
            .rules
            .iter()
            .position(|(_, spec, _)| spec.matches(host, method, path))?;
        let (id, spec, remaining) = &mut self.rules[index];
        let action = FaultAction {
            id: id.clone(),
            spec: spec.clone(),
        };
        if let Some(n) = remaining {
            *n -= 1;
            if *n == 0 {
                self.rules.remove(index);
            }
        }
        Some(action)
    }
}

impl FaultAction {
    /// Delay to apply before anything else.
    pub fn latency(&self) -> Option<Duration> {
        self.spec.latency_ms.map(Duration::from_millis)
    }

    /// How long to hold the response after the request was served.
    pub fn response_latency(&self) -> Option<Duration> {
        self.spec.response_latency_ms.map(Duration::from_millis)
    }

    /// The error response this rule answers with (None: pass to the real handler).
    pub fn error_response(&self, kind: HostKind) -> Option<Response<Body>> {
        let status = StatusCode::from_u16(self.spec.status?).ok()?;
        let mut response = error_body(kind, status, self.spec.error_code.as_deref());
        let headers = response.headers_mut();
        if let Some(secs) = self.spec.retry_after_secs {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        if let Some(ms) = self.spec.retry_after_ms {
            headers.insert("x-ms-retry-after-ms", HeaderValue::from(ms));
        }
        Some(response)
    }
}

fn default_code(kind: HostKind, status: StatusCode) -> &'static str {
    match (kind, status.as_u16()) {
        (HostKind::Blob, 503) => "ServerBusy",
        (HostKind::Blob, 500) => "InternalError",
        (HostKind::Blob, 403) => "AuthorizationPermissionMismatch",
        (HostKind::Blob, 404) => "BlobNotFound",
        (HostKind::Blob, 408) | (HostKind::Blob, 504) => "OperationTimedOut",
        (HostKind::Vault | HostKind::ManagedHsm, 429) => "Throttled",
        (HostKind::Vault | HostKind::ManagedHsm, 403) => "Forbidden",
        (_, 429) => "TooManyRequests",
        (_, 503) => "ServiceUnavailable",
        (_, 500) => "InternalServerError",
        _ => "InjectedFault",
    }
}

/// A body in the error shape of the service `kind` names.
pub fn error_body(kind: HostKind, status: StatusCode, code: Option<&str>) -> Response<Body> {
    let code = code.unwrap_or_else(|| default_code(kind, status));
    let request_id = uuid::Uuid::new_v4().to_string();
    let now = time::OffsetDateTime::now_utc();
    let message = match code {
        "ServerBusy" => "Ingress is over the account limit.",
        "OperationTimedOut" => "Operation could not be completed within the specified time.",
        "Throttled" => "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        _ => "The sim injected this fault.",
    };
    let (content_type, body) = match kind {
        HostKind::Blob => {
            let stamp = now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            (
                "application/xml",
                format!(
                    "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{request_id}\nTime:{stamp}</Message></Error>"
                ),
            )
        }
        HostKind::Vault | HostKind::ManagedHsm => (
            "application/json; charset=utf-8",
            json!({"error": {"code": code, "message": message}}).to_string(),
        ),
        HostKind::Login => {
            let number: u64 = code.parse().unwrap_or(90033);
            let error = if status.as_u16() == 429 || status.is_server_error() {
                "temporarily_unavailable"
            } else {
                "invalid_request"
            };
            let body = crate::entra::error_json(error, number, "The sim injected this fault.");
            ("application/json; charset=utf-8", body.to_string())
        }
        HostKind::Identity | HostKind::Admin | HostKind::Unknown => (
            "application/json; charset=utf-8",
            json!({"error": code, "error_description": message}).to_string(),
        ),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-ms-request-id", v);
    }
    if kind == HostKind::Blob {
        if let Ok(v) = HeaderValue::from_str(code) {
            headers.insert("x-ms-error-code", v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_hosts() {
        assert!(glob_match(
            "*.blob.sandbox.test",
            "contosologs.blob.sandbox.test"
        ));
        assert!(!glob_match(
            "*.blob.sandbox.test",
            "contoso-kv.vault.sandbox.test"
        ));
        assert!(glob_match(
            "contosologs.blob.sandbox.test",
            "contosologs.blob.sandbox.test"
        ));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn host_kinds() {
        assert_eq!(
            HostKind::of("contosologs.blob.core.windows.net"),
            HostKind::Blob
        );
        assert_eq!(
            HostKind::of("contoso-kv.vault.sandbox.test"),
            HostKind::Vault
        );
        assert_eq!(HostKind::of("h.managedhsm.azure.net"), HostKind::ManagedHsm);
        assert_eq!(HostKind::of("LOGIN.sandbox.test"), HostKind::Login);
        assert_eq!(HostKind::of("a.b.blob.sandbox.test"), HostKind::Unknown);
    }

    #[test]
    fn count_limits_and_admin_is_exempt() {
        let mut f = Faults::default();
        let spec = FaultSpec {
            status: Some(503),
            count: Some(2),
            ..Default::default()
        };
        f.add(spec).expect("add");
        assert!(f
            .take_match("admin.sandbox.test", "GET", "/admin/faults")
            .is_none());
        assert!(f.take_match("a.blob.sandbox.test", "GET", "/").is_some());
        assert!(f.take_match("a.blob.sandbox.test", "GET", "/").is_some());
        assert!(f.take_match("a.blob.sandbox.test", "GET", "/").is_none());
    }

    #[test]
    fn useless_rules_are_refused() {
        let mut f = Faults::default();
        assert_eq!(f.add(FaultSpec::default()), Err(FaultError::NoEffect));
        assert_eq!(
            f.add(FaultSpec {
                status: Some(700),
                ..Default::default()
            }),
            Err(FaultError::BadStatus(700))
        );
        assert_eq!(
            f.add(FaultSpec {
                outage: true,
                count: Some(0),
                ..Default::default()
            }),
            Err(FaultError::ZeroCount)
        );
    }
}
