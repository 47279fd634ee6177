//! Azure Storage's XML error answers (`<Error><Code>..</Code><Message>..\nRequestId:..\nTime:..</Message></Error>`)
//! with `x-ms-error-code`, `x-ms-request-id` and `x-ms-version`. Builds responses only.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};

/// One storage error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageError {
    /// HTTP status.
    pub status: StatusCode,
    /// `<Code>` and `x-ms-error-code`.
    pub code: &'static str,
    /// First line of `<Message>`.
    pub message: String,
    /// `<AuthenticationErrorDetail>`, for authentication failures.
    pub detail: Option<String>,
    /// `WWW-Authenticate`, for 401s.
    pub challenge: Option<String>,
}

impl StorageError {
    /// An error without detail or challenge.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        StorageError {
            status,
            code,
            message: message.into(),
            detail: None,
            challenge: None,
        }
    }

    /// `403 AuthorizationPermissionMismatch`: the role assignment is missing.
    pub fn permission_mismatch() -> Self {
        StorageError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )
    }

    /// `403 AuthenticationFailed` with a detail line.
    pub fn authentication_failed(detail: impl Into<String>) -> Self {
        StorageError {
            detail: Some(detail.into()),
            ..StorageError::new(
                StatusCode::FORBIDDEN,
                "AuthenticationFailed",
                "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
            )
        }
    }

    /// The response, with a fresh request id and the time.
    pub fn into_response_with(self, version: Option<&HeaderValue>) -> Response<Body> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let now = time::OffsetDateTime::now_utc();
        let iso = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\nRequestId:{request_id}\nTime:{iso}</Message>",
            self.code,
            xml_escape(&self.message)
        );
        if let Some(detail) = &self.detail {
            xml.push_str(&format!(
                "<AuthenticationErrorDetail>{}</AuthenticationErrorDetail>",
                xml_escape(detail)
            ));
        }
        xml.push_str("</Error>");
        let mut response = Response::new(Body::from(xml));
        *response.status_mut() = self.status;
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        h.insert("x-ms-error-code", HeaderValue::from_static(self.code));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-ms-request-id", v);
        }
        h.insert(
            "x-ms-version",
            version
                .cloned()
                .unwrap_or(HeaderValue::from_static("2025-01-05")),
        );
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            h.insert(header::WWW_AUTHENTICATE, c);
        }
        response
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permission_mismatch_is_azure_shaped() {
        let r = StorageError::permission_mismatch().into_response_with(None);
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.headers()["x-ms-error-code"],
            "AuthorizationPermissionMismatch"
        );
        assert!(r.headers().contains_key("x-ms-request-id"));
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        let text = String::from_utf8(body.to_vec()).expect("utf8");
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.\nRequestId:"), "{text}");
        assert!(text.ends_with("</Message></Error>"), "{text}");
    }
}
