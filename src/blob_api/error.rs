//! Blob service refusals: status, `x-ms-error-code`, and what they mean for Ferry.

use std::time::Duration;

/// What a blob failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobErrorClass {
    /// Throttling or a passing service fault: retry with backoff (503 ServerBusy, 500
    /// OperationTimedOut/InternalError, 429, connection errors).
    Transient,
    /// The principal lacks a role, or the token is refused (403).
    AccessDenied,
    /// The token is expired or invalid (401): get a new one.
    Unauthorized,
    /// Container or blob does not exist (404).
    NotFound,
    /// The blob changed under a conditional request (412, 409 on a changed append blob).
    Changed,
    /// Anything else: a request Ferry should not have made, or an answer it cannot read.
    Fatal,
}

/// A refused or failed blob request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}{} failed: {}", blob.as_ref().map(|b| format!(" of {b}")).unwrap_or_default(), self.detail())]
pub struct BlobError {
    /// The operation ("get blob", "put block list", ...).
    pub operation: &'static str,
    /// The blob, when one was involved.
    pub blob: Option<String>,
    /// HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// `x-ms-error-code`.
    pub code: Option<String>,
    /// First line of the service's message, or the network error.
    pub message: String,
    /// What it means.
    pub class: BlobErrorClass,
    /// How long the service asked to wait.
    pub retry_after: Option<Duration>,
    /// No connection could be made (name resolution, refused, connect timeout, TLS handshake):
    /// the endpoint is unreachable from here, as opposed to busy.
    pub no_connection: bool,
}

fn classify(status: u16, code: Option<&str>) -> BlobErrorClass {
    match (status, code) {
        (429, _) | (503, _) | (500, _) | (502, _) | (504, _) => BlobErrorClass::Transient,
        (401, _) => BlobErrorClass::Unauthorized,
        (403, Some("AuthenticationFailed")) => BlobErrorClass::AccessDenied,
        (403, _) => BlobErrorClass::AccessDenied,
        (404, _) => BlobErrorClass::NotFound,
        (412, _) | (409, Some("BlobModifiedWhileReading")) => BlobErrorClass::Changed,
        (416, _) => BlobErrorClass::Changed,
        _ => BlobErrorClass::Fatal,
    }
}

fn xml_element(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].to_string())
}

impl BlobError {
    /// From an unsuccessful response (reads the XML error body).
    pub async fn from_response(
        operation: &'static str,
        blob: Option<&str>,
        resp: reqwest::Response,
    ) -> BlobError {
        let status = resp.status().as_u16();
        let retry_after = crate::identity::retry_after(resp.headers());
        let mut code = resp
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        if code.is_none() {
            code = xml_element(&body, "Code");
        }
        let message = xml_element(&body, "Message")
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .unwrap_or_default();
        BlobError {
            operation,
            blob: blob.map(str::to_string),
            status: Some(status),
            class: classify(status, code.as_deref()),
            code,
            message,
            retry_after,
            no_connection: false,
        }
    }

    /// From a transport error (connect, reset, timeout): transient.
    pub fn network(operation: &'static str, blob: Option<&str>, e: &reqwest::Error) -> BlobError {
        let message = crate::service_message::describe_reqwest(e);
        BlobError {
            operation,
            blob: blob.map(str::to_string),
            status: None,
            code: None,
            message,
            class: BlobErrorClass::Transient,
            retry_after: None,
            no_connection: e.is_connect(),
        }
    }

    /// An answer Ferry cannot read.
    pub fn malformed(
        operation: &'static str,
        blob: Option<&str>,
        reason: impl Into<String>,
    ) -> BlobError {
        BlobError {
            operation,
            blob: blob.map(str::to_string),
            status: None,
            code: None,
            message: reason.into(),
            class: BlobErrorClass::Fatal,
            retry_after: None,
            no_connection: false,
        }
    }

    /// `HTTP 403 AuthorizationPermissionMismatch: This request is not authorized ...`, or the
    /// network error alone when there was no answer.
    fn detail(&self) -> String {
        let answer = [self.status.map(|s| format!("HTTP {s}")), self.code.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        match (answer.is_empty(), self.message.is_empty()) {
            (true, _) => self.message.clone(),
            (false, true) => answer,
            (false, false) => format!("{answer}: {}", self.message),
        }
    }

    /// True for `403 AuthorizationPermissionMismatch` and similar role refusals.
    pub fn is_role_missing(&self) -> bool {
        self.class == BlobErrorClass::AccessDenied
    }

    /// True when the request got no answer although a connection was made: the connection
    /// broke or timed out while the request was sent or its answer awaited. A service that
    /// refuses a request carrying a large body (an 8 MiB Put Block) may answer before reading
    /// it and close the connection, and the client then sees only the broken pipe.
    pub fn is_cut_off(&self) -> bool {
        self.status.is_none() && !self.no_connection && self.class == BlobErrorClass::Transient
    }

    /// The cut-off request `self`, explained by `probe`, the answer to a request without a body
    /// sent right after it with the same credential: when the probe was refused (401 or 403),
    /// the refusal is what the operator needs (and retrying cannot help without a new token or
    /// role), so it takes the probe's status, code and class under this request's operation.
    /// Any other probe outcome leaves `self` as it was (a network fault, retried).
    pub fn explained_by(self, probe: Result<(), BlobError>) -> BlobError {
        match probe {
            Err(p)
                if self.is_cut_off()
                    && matches!(
                        p.class,
                        BlobErrorClass::AccessDenied | BlobErrorClass::Unauthorized
                    ) =>
            {
                let why = format!(
                    "the connection closed while the request was sent; asked again without a body ({} of the same blob), the service answered this",
                    p.operation
                );
                BlobError {
                    message: if p.message.is_empty() {
                        why
                    } else {
                        format!("{} ({why})", p.message.trim_end_matches('.'))
                    },
                    status: p.status,
                    code: p.code,
                    class: p.class,
                    retry_after: None,
                    ..self
                }
            }
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(classify(503, Some("ServerBusy")), BlobErrorClass::Transient);
        assert_eq!(
            classify(500, Some("OperationTimedOut")),
            BlobErrorClass::Transient
        );
        assert_eq!(
            classify(403, Some("AuthorizationPermissionMismatch")),
            BlobErrorClass::AccessDenied
        );
        assert_eq!(
            classify(404, Some("BlobNotFound")),
            BlobErrorClass::NotFound
        );
        assert_eq!(
            classify(412, Some("ConditionNotMet")),
            BlobErrorClass::Changed
        );
        assert_eq!(
            classify(400, Some("InvalidHeaderValue")),
            BlobErrorClass::Fatal
        );
    }

    #[test]
    fn a_cut_off_upload_takes_the_refusal_of_the_probe_that_followed_it() {
        let cut = BlobError {
            operation: "put block",
            blob: Some("tenant=c/big.bin".into()),
            status: None,
            code: None,
            message:
                "request failed: error writing a body to connection: Broken pipe (os error 32)"
                    .into(),
            class: BlobErrorClass::Transient,
            retry_after: None,
            no_connection: false,
        };
        let answered = |status: u16, code: &str| BlobError {
            operation: "get blob properties",
            blob: Some("tenant=c/big.bin".into()),
            status: Some(status),
            code: Some(code.into()),
            message: String::new(),
            class: classify(status, Some(code)),
            retry_after: None,
            no_connection: false,
        };
        let refused = cut
            .clone()
            .explained_by(Err(answered(403, "AuthorizationPermissionMismatch")));
        assert!(refused.is_role_missing());
        assert_eq!(refused.operation, "put block");
        assert_eq!(
            refused.to_string(),
            "put block of tenant=c/big.bin failed: HTTP 403 AuthorizationPermissionMismatch: the connection closed while the request was sent; asked again without a body (get blob properties of the same blob), the service answered this"
        );
        let expired = cut
            .clone()
            .explained_by(Err(answered(401, "InvalidAuthenticationInfo")));
        assert_eq!(expired.class, BlobErrorClass::Unauthorized);
        // authorised (the blob is not there yet, or is): the network fault stands, retried
        for probe in [
            Ok(()),
            Err(answered(404, "BlobNotFound")),
            Err(answered(503, "ServerBusy")),
        ] {
            let same = cut.clone().explained_by(probe);
            assert_eq!(same.class, BlobErrorClass::Transient);
            assert_eq!(same.message, cut.message);
        }
        // a refusal answered directly is not rewritten by a probe
        let direct = answered(403, "AuthorizationPermissionMismatch");
        let direct_text = direct.to_string();
        assert_eq!(
            direct
                .explained_by(Err(answered(401, "InvalidAuthenticationInfo")))
                .to_string(),
            direct_text
        );
    }

    #[test]
    fn messages_read_the_same_with_and_without_an_answer() {
        let e = |status: Option<u16>, code: Option<&str>, message: &str| BlobError {
            operation: "list blobs",
            blob: None,
            status,
            code: code.map(str::to_string),
            message: message.to_string(),
            class: BlobErrorClass::Transient,
            retry_after: None,
            no_connection: status.is_none(),
        };
        assert_eq!(
            e(
                Some(403),
                Some("AuthorizationPermissionMismatch"),
                "Not authorized."
            )
            .to_string(),
            "list blobs failed: HTTP 403 AuthorizationPermissionMismatch: Not authorized."
        );
        assert_eq!(
            e(Some(500), None, "Oops.").to_string(),
            "list blobs failed: HTTP 500: Oops."
        );
        assert_eq!(
            e(Some(503), Some("ServerBusy"), "").to_string(),
            "list blobs failed: HTTP 503 ServerBusy"
        );
        assert_eq!(
            e(None, None, "connection failed: tcp connect error").to_string(),
            "list blobs failed: connection failed: tcp connect error"
        );
    }

    #[test]
    fn xml_fields() {
        let b = "<?xml version=\"1.0\"?><Error><Code>ServerBusy</Code><Message>Busy.\nRequestId:1</Message></Error>";
        assert_eq!(xml_element(b, "Code").as_deref(), Some("ServerBusy"));
    }
}
