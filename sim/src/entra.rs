//! Entra ID v2 for many tenants: `POST /{tenant}/oauth2/v2.0/token` (client credentials with a
//! secret, a certificate assertion or a federated assertion), OpenID metadata and JWKS.
//!
//! Wire formats and AADSTS codes follow `shared/reference/azure-contracts.md` §1. Which credential
//! checks pass is decided by `entra_assertion`; the directory data lives in `directory`. This
//! module must not change the directory: it only reads it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::directory::{parse_guid, Consent};
use crate::entra_assertion::{check_certificate_assertion, check_federated_assertion};
use crate::jwt::{now_unix, UnverifiedJwt};
use crate::server::RequestHost;
use crate::state::{lock, SimState};

/// The audience of tokens used as federated assertions.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An Entra error: status, OAuth `error`, AADSTS number and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    /// HTTP status (400, or 401 for client authentication failures).
    pub status: StatusCode,
    /// OAuth error (`invalid_client`, `unauthorized_client`, ...).
    pub error: &'static str,
    /// The AADSTS number.
    pub code: u64,
    /// The text after `AADSTSnnn: `.
    pub description: String,
    /// `client-request-id` sent by the caller, echoed as the correlation id.
    pub correlation_id: Option<String>,
}

impl EntraError {
    /// 400 with the given error and code.
    pub fn bad_request(error: &'static str, code: u64, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            code,
            description: description.into(),
            correlation_id: None,
        }
    }

    /// 401 `invalid_client`.
    pub fn invalid_client(code: u64, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            code,
            description: description.into(),
            correlation_id: None,
        }
    }

    fn missing(parameter: &str) -> Self {
        Self::bad_request(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }
}

fn timestamp() -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_default()
}

/// The Entra error body: `error`, `error_description` (with trace and correlation ids and the
/// timestamp after `\r\n`), `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
pub fn error_json(error: &str, code: u64, description: &str) -> Value {
    error_json_with(error, code, description, None)
}

fn error_json_with(
    error: &str,
    code: u64,
    description: &str,
    correlation_id: Option<&str>,
) -> Value {
    let trace_id = uuid::Uuid::new_v4().to_string();
    let correlation_id = correlation_id
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let ts = timestamp();
    json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    })
}

impl IntoResponse for EntraError {
    fn into_response(self) -> Response {
        let body = error_json_with(
            self.error,
            self.code,
            &self.description,
            self.correlation_id.as_deref(),
        );
        let mut r = (self.status, Json(body)).into_response();
        r.headers_mut().insert(
            "cache-control",
            HeaderValue::from_static("no-store, no-cache"),
        );
        r
    }
}

/// Routes of the login host.
pub fn router() -> Router<Arc<SimState>> {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
}

async fn jwks(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(state.signer.jwks())
}

async fn openid_configuration(
    State(state): State<Arc<SimState>>,
    Extension(host): Extension<RequestHost>,
    Path(tenant): Path<String>,
) -> Response {
    let tid = match tenant.as_str() {
        "common" | "organizations" | "consumers" => "{tenantid}".to_string(),
        _ => match known_tenant(&state, &tenant) {
            Ok((tid, _)) => tid,
            Err(e) => {
                let mut e = e;
                e.error = "invalid_tenant";
                return e.into_response();
            }
        },
    };
    let base = format!("https://{}/{tenant}", host.authority);
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("https://{}/{tid}/v2.0", host.host),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
        "tenant_region_scope": null,
        "cloud_instance_name": "sandbox.test",
    }))
    .into_response()
}

/// The tenant id (normalised) and display name, or AADSTS90002.
fn known_tenant(state: &SimState, tenant: &str) -> Result<(String, String), EntraError> {
    let not_found = || {
        EntraError::bad_request(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    };
    let tid = parse_guid("tenant", tenant).map_err(|_| not_found())?;
    let dir = lock(&state.directory);
    let t = dir.tenants.get(&tid).ok_or_else(not_found)?;
    Ok((tid, t.display_name.clone()))
}

/// A token request's fields.
struct TokenRequest {
    fields: Vec<(String, String)>,
    basic: Option<(String, String)>,
}

impl TokenRequest {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded.
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()
            .and_then(|v| v.into_iter().next())
            .map(|(_, v)| v)
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// Splits `scope` into the one resource it names, or the Entra error.
pub fn resource_of_scope(scope: &str) -> Result<String, EntraError> {
    let scopes: Vec<&str> = scope
        .split_whitespace()
        .filter(|s| !matches!(*s, "openid" | "profile" | "offline_access" | "email"))
        .collect();
    match scopes.as_slice() {
        [] => Err(EntraError::missing("scope")),
        [one] => one.strip_suffix("/.default").filter(|r| !r.is_empty()).map(str::to_string).ok_or_else(|| {
            EntraError::bad_request(
                "invalid_scope",
                1002012,
                format!("The provided value for scope {one} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
            )
        }),
        many => Err(EntraError::bad_request(
            "invalid_scope",
            70011,
            format!("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {} is not valid. Only one resource may be requested per token.", many.join(" ")),
        )),
    }
}

async fn token(
    State(state): State<Arc<SimState>>,
    Extension(host): Extension<RequestHost>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let correlation = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let request = TokenRequest {
        fields: serde_urlencoded::from_bytes(&body).unwrap_or_default(),
        basic: basic_credentials(&headers),
    };
    let counted_tenant = parse_guid("tenant", &tenant).unwrap_or_else(|_| tenant.clone());
    let counted_resource = request
        .get("scope")
        .and_then(|s| resource_of_scope(s).ok())
        .unwrap_or_default();
    state.count_request("token", &counted_tenant, &counted_resource);
    match issue(&state, &host, &tenant, &request) {
        Ok(body) => {
            let mut r = Json(body).into_response();
            r.headers_mut().insert(
                "cache-control",
                HeaderValue::from_static("no-store, no-cache"),
            );
            r
        }
        Err(mut e) => {
            e.correlation_id = correlation;
            e.into_response()
        }
    }
}

/// How the client authenticated (the `appidacr` claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Client secret (`appidacr` 1).
    Secret,
    /// Certificate or federated assertion (`appidacr` 2).
    Assertion,
}

fn issue(
    state: &SimState,
    host: &RequestHost,
    tenant: &str,
    req: &TokenRequest,
) -> Result<Value, EntraError> {
    match req.get("grant_type") {
        None => return Err(EntraError::missing("grant_type")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(EntraError::bad_request(
                "unsupported_grant_type",
                70003,
                format!("The app requested an unsupported grant type '{other}'."),
            ))
        }
    }
    let (tid, tenant_name) = known_tenant(state, tenant)?;
    let client_id = req
        .get("client_id")
        .map(str::to_string)
        .or_else(|| req.basic.as_ref().map(|(id, _)| id.clone()))
        .ok_or_else(|| EntraError::missing("client_id"))?;
    let resource = resource_of_scope(req.get("scope").unwrap_or(""))?;
    let not_found = || {
        EntraError::bad_request(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        )
    };
    let app_id = parse_guid("client_id", &client_id).map_err(|_| not_found())?;
    let (app, consent) = {
        let dir = lock(&state.directory);
        let app = dir.apps.get(&app_id).cloned().ok_or_else(not_found)?;
        let consent = dir
            .tenants
            .get(&tid)
            .and_then(|t| t.consents.get(&app_id).cloned());
        (app, consent)
    };
    if app.disabled {
        return Err(EntraError::bad_request(
            "unauthorized_client",
            7000112,
            format!("Application '{app_id}'({}) is disabled.", app.display_name),
        ));
    }
    let object_id = match consent {
        None => return Err(not_found()),
        Some(Consent::Orphaned) => {
            return Err(EntraError::bad_request(
                "invalid_client",
                7000229,
                format!("The client application {app_id} is missing service principal in the tenant {tid}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"),
            ))
        }
        Some(Consent::ServicePrincipal { object_id }) => object_id,
    };
    let now = now_unix();
    let auth = if let Some(assertion) = req.get("client_assertion") {
        if req.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(EntraError::bad_request(
                "invalid_request",
                90014,
                "The required field 'client_assertion_type' is missing from the credential or is not 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            ));
        }
        let jwt = UnverifiedJwt::parse(assertion)
            .map_err(|_| EntraError::invalid_client(50027, "JWT token is invalid or malformed."))?;
        let is_certificate = jwt
            .str_claim("iss")
            .is_some_and(|i| i.eq_ignore_ascii_case(&app_id))
            || jwt
                .str_claim("sub")
                .is_some_and(|s| s.eq_ignore_ascii_case(&app_id));
        if is_certificate {
            let audiences = [
                format!("https://{}/{tenant}/oauth2/v2.0/token", host.host),
                format!("https://{}/{tid}/oauth2/v2.0/token", host.host),
            ];
            check_certificate_assertion(&jwt, &app, &audiences, now)?;
        } else {
            check_federated_assertion(state, &jwt, &app, now)?;
        }
        ClientAuth::Assertion
    } else {
        let secret = req
            .get("client_secret")
            .map(str::to_string)
            .or_else(|| req.basic.as_ref().map(|(_, s)| s.clone()))
            .ok_or_else(|| {
                EntraError::invalid_client(
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
            })?;
        match app.secrets.iter().find(|s| s.value == secret) {
            None => {
                return Err(EntraError::invalid_client(
                    7000215,
                    format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{app_id}'."),
                ))
            }
            Some(s) if s.expires_at.is_some_and(|e| e <= now) => {
                return Err(EntraError::invalid_client(
                    7000222,
                    format!("The provided client secret keys for app '{app_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."),
                ))
            }
            Some(_) => {}
        }
        ClientAuth::Secret
    };
    let lifetime = state.settings().token_lifetime_secs;
    let access_token =
        mint_access_token(state, &tid, &resource, &object_id, &app_id, auth, lifetime);
    Ok(
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token}),
    )
}

/// Signs an access token as docs/sandbox.md describes: v1 shape (`iss = https://sts.windows.net/{tid}/`)
/// for resources, v2 shape for `api://AzureADTokenExchange`.
pub fn mint_access_token(
    state: &SimState,
    tid: &str,
    resource: &str,
    object_id: &str,
    app_id: &str,
    auth: ClientAuth,
    lifetime_secs: u64,
) -> String {
    let now = now_unix();
    let exp = now + i64::try_from(lifetime_secs).unwrap_or(3599);
    let acr = if auth == ClientAuth::Secret { "1" } else { "2" };
    let uti = crate::jwt::b64url(uuid::Uuid::new_v4().as_bytes());
    let claims = if resource == TOKEN_EXCHANGE_AUDIENCE {
        let issuer_host = state.settings().issuer_host;
        json!({
            "aud": resource, "iss": format!("https://{issuer_host}/{tid}/v2.0"), "iat": now, "nbf": now, "exp": exp,
            "azp": app_id, "azpacr": acr, "oid": object_id, "sub": object_id, "tid": tid,
            "idtyp": "app", "ver": "2.0", "uti": uti, "appid": app_id,
        })
    } else {
        json!({
            "aud": resource, "iss": format!("https://sts.windows.net/{tid}/"), "iat": now, "nbf": now, "exp": exp,
            "appid": app_id, "azp": app_id, "appidacr": acr, "idp": format!("https://sts.windows.net/{tid}/"),
            "oid": object_id, "sub": object_id, "tid": tid, "idtyp": "app", "ver": "1.0", "uti": uti,
        })
    };
    state.signer.sign(&claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_one_resource() {
        assert_eq!(
            resource_of_scope("https://vault.azure.net/.default").expect("ok"),
            "https://vault.azure.net"
        );
        assert_eq!(
            resource_of_scope("https://storage.azure.com/.default openid").expect("ok"),
            "https://storage.azure.com"
        );
        assert_eq!(
            resource_of_scope("https://x/read")
                .expect_err("not .default")
                .code,
            1002012
        );
        assert_eq!(
            resource_of_scope("a/.default b/.default")
                .expect_err("two")
                .code,
            70011
        );
        assert_eq!(resource_of_scope("").expect_err("none").code, 900144);
    }

    #[test]
    fn error_json_has_every_field() {
        let v = error_json("invalid_client", 7000215, "Invalid client secret provided.");
        let d = v["error_description"].as_str().expect("description");
        assert!(d.starts_with("AADSTS7000215: Invalid client secret provided.\r\nTrace ID: "));
        assert!(d.contains("\r\nCorrelation ID: ") && d.contains("\r\nTimestamp: "));
        assert_eq!(v["error_codes"], json!([7000215]));
        assert_eq!(
            v["error_uri"],
            "https://login.microsoftonline.com/error?code=7000215"
        );
        for f in ["timestamp", "trace_id", "correlation_id"] {
            assert!(v[f].is_string(), "{f}");
        }
    }
}
