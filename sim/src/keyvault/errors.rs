//! Key Vault's error answers: `{"error":{"code","message","innererror":{"code"}}}` with the status
//! the real service uses, plus the 401 challenge. Only builds responses; decides nothing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One Key Vault error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.code`.
    pub code: &'static str,
    /// `error.message`.
    pub message: String,
    /// `error.innererror.code`, when the service sends one.
    pub inner: Option<&'static str>,
    /// `WWW-Authenticate` value for 401s.
    pub challenge: Option<String>,
}

impl KvError {
    /// A plain error without innererror.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        KvError {
            status,
            code,
            message: message.into(),
            inner: None,
            challenge: None,
        }
    }

    /// A 403 `Forbidden` with an innererror code.
    pub fn forbidden(inner: &'static str, message: impl Into<String>) -> Self {
        KvError {
            inner: Some(inner),
            ..KvError::new(StatusCode::FORBIDDEN, "Forbidden", message)
        }
    }

    /// A 400 `BadParameter`.
    pub fn bad_parameter(message: impl Into<String>) -> Self {
        KvError::new(StatusCode::BAD_REQUEST, "BadParameter", message)
    }

    /// A 401 `Unauthorized` carrying the vault's challenge.
    pub fn unauthorized(challenge: String, message: impl Into<String>) -> Self {
        KvError {
            challenge: Some(challenge),
            ..KvError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
        }
    }

    /// 404 `KeyNotFound` for `name` (or `name/version`).
    pub fn key_not_found(id: &str) -> Self {
        KvError::new(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!(
                "A key with (name/id) {id} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }

    /// 404 `KeyNotFound` for a key that is not in the deleted state.
    pub fn deleted_key_not_found(name: &str) -> Self {
        KvError::new(
            StatusCode::NOT_FOUND,
            "KeyNotFound",
            format!("Deleted Key not found: {name}"),
        )
    }

    /// 404 `SecretNotFound` for `name` (or `name/version`).
    pub fn secret_not_found(id: &str) -> Self {
        KvError::new(
            StatusCode::NOT_FOUND,
            "SecretNotFound",
            format!(
                "A secret with (name/id) {id} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }
}

impl IntoResponse for KvError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(inner) = self.inner {
            error["innererror"] = json!({ "code": inner });
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forbidden_carries_innererror_and_challenge_carries_header() {
        let r = KvError::forbidden("ForbiddenByPolicy", "no").into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["error"]["code"], "Forbidden");
        assert_eq!(v["error"]["innererror"]["code"], "ForbiddenByPolicy");

        let r = KvError::unauthorized("Bearer x".into(), "AKV10000").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer x");
        let r = KvError::key_not_found("k").into_response();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(v["error"].get("innererror").is_none());
    }
}
