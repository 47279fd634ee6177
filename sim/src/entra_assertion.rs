//! Client-assertion checks for the token endpoint: certificate assertions (PS256 + `x5t#S256`,
//! RS256 + `x5t`) against the app's registered certificates, and federated assertions (tokens the
//! sim itself signed: its managed identity's `api://AzureADTokenExchange` tokens or admin-minted
//! workload tokens) against the app's federated credentials.
//!
//! Each failure is the AADSTS error Entra gives; this module decides nothing else.

use serde_json::Value;

use crate::directory::App;
use crate::entra::EntraError;
use crate::jwt::{JwtError, UnverifiedJwt};
use crate::state::SimState;

/// Clock skew Entra tolerates on assertion times.
const SKEW_SECS: i64 = 300;

/// Longest assertion lifetime accepted (`exp - iat`), seconds.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 600;

const CERT_DOCS: &str =
    "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .";

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn time_error(jwt: &UnverifiedJwt, now: i64, why: &str) -> EntraError {
    let from = jwt
        .int_claim("nbf")
        .or_else(|| jwt.int_claim("iat"))
        .map(rfc3339)
        .unwrap_or_default();
    let to = jwt.int_claim("exp").map(rfc3339).unwrap_or_default();
    EntraError::invalid_client(
        700024,
        format!(
            "Client assertion is not within its valid time range. Current time: {}, assertion valid from {from}, expiry time of assertion {to}. {why} {CERT_DOCS}",
            rfc3339(now)
        ),
    )
}

fn check_times(jwt: &UnverifiedJwt, now: i64, limit_lifetime: bool) -> Result<(), EntraError> {
    match jwt.check_times(now, SKEW_SECS) {
        Ok(()) => {}
        Err(JwtError::Expired { .. }) => {
            return Err(time_error(
                jwt,
                now,
                "The assertion has expired or has no exp claim.",
            ))
        }
        Err(_) => return Err(time_error(jwt, now, "The assertion is not valid yet.")),
    }
    if limit_lifetime {
        let exp = jwt.int_claim("exp").unwrap_or(0);
        let start = jwt.int_claim("iat").or_else(|| jwt.int_claim("nbf"));
        if let Some(start) = start {
            if exp - start > MAX_ASSERTION_LIFETIME_SECS {
                return Err(time_error(
                    jwt,
                    now,
                    "The assertion lifetime (exp - iat) is longer than 10 minutes.",
                ));
            }
        }
    }
    Ok(())
}

fn audiences(jwt: &UnverifiedJwt) -> Vec<String> {
    match jwt.claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// A thumbprint header value (base64 or base64url, padded or not) as upper-case hex.
fn thumbprint_hex(value: &str) -> Option<String> {
    use base64::Engine as _;
    let normalized = value
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(normalized)
        .ok()
        .map(hex::encode_upper)
}

/// `https://host:port/path` -> `https://host/path` (the port a client used does not matter).
fn without_port(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    format!("{scheme}://{host}/{path}")
}

/// Checks a certificate assertion for `app`; `expected_audiences` are the token endpoint URLs the
/// caller may have used (without port).
pub fn check_certificate_assertion(
    jwt: &UnverifiedJwt,
    app: &App,
    expected_audiences: &[String],
    now: i64,
) -> Result<(), EntraError> {
    let app_id = &app.client_id;
    let same = |claim: &str| {
        jwt.str_claim(claim)
            .is_some_and(|v| v.eq_ignore_ascii_case(app_id))
    };
    if !same("iss") || !same("sub") {
        return Err(EntraError::invalid_client(
            700021,
            format!("Client assertion application identifier doesn't match 'client_id' parameter. The iss and sub claims must both be '{app_id}'. {CERT_DOCS}"),
        ));
    }
    let header = |name: &str| jwt.header.get(name).and_then(Value::as_str);
    // Clients send the thumbprint base64url without padding (the JOSE form) or with it (MSAL).
    let cert = match (
        header("x5t#S256").and_then(thumbprint_hex),
        header("x5t").and_then(thumbprint_hex),
    ) {
        (Some(s256), _) => app
            .certificates
            .iter()
            .find(|c| c.thumbprint_sha256 == s256),
        (None, Some(sha1)) => app.certificates.iter().find(|c| c.thumbprint_sha1 == sha1),
        (None, None) => None,
    };
    let shown = header("x5t#S256").or(header("x5t")).unwrap_or("none");
    let Some(cert) = cert else {
        return Err(EntraError::invalid_client(
            700027,
            format!("Client assertion failed signature validation. (Reason - The key was not found., Thumbprint of key used by client: '{shown}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{app_id}'. Review the documentation at https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to learn more.)"),
        ));
    };
    if !matches!(jwt.alg(), "RS256" | "PS256") {
        return Err(EntraError::invalid_client(
            700027,
            format!("Client assertion failed signature validation. (Reason - The signature algorithm '{}' is not supported; use PS256 or RS256.)", jwt.alg()),
        ));
    }
    if jwt.verify_signature(&cert.public_key).is_err() {
        return Err(EntraError::invalid_client(
            700027,
            format!("Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{}', Found key 'Start=..., End=...', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{app_id}'.]", cert.thumbprint_sha1),
        ));
    }
    let aud = audiences(jwt);
    if !aud.iter().any(|a| {
        expected_audiences
            .iter()
            .any(|e| e.eq_ignore_ascii_case(&without_port(a)))
    }) {
        return Err(EntraError::invalid_client(
            700027,
            format!(
                "Client assertion failed audience validation: the aud claim {aud:?} must be the token endpoint '{}'. {CERT_DOCS}",
                expected_audiences.first().map(String::as_str).unwrap_or("")
            ),
        ));
    }
    check_times(jwt, now, true)
}

/// Checks a federated assertion for `app`: a matching federated credential (issuer, subject,
/// audience), then the sim's signature, then the times.
pub fn check_federated_assertion(
    state: &SimState,
    jwt: &UnverifiedJwt,
    app: &App,
    now: i64,
) -> Result<(), EntraError> {
    let iss = jwt.str_claim("iss").unwrap_or("");
    let sub = jwt.str_claim("sub").unwrap_or("");
    let aud = audiences(jwt);
    // A credential answers only once it has propagated (Entra: AADSTS70021 until then).
    let propagation =
        i64::try_from(state.settings().federated_propagation_secs).unwrap_or(i64::MAX);
    let matched = app.federated.iter().any(|f| {
        f.issuer == iss
            && f.subject == sub
            && aud.iter().any(|a| f.audiences.contains(a))
            && f.created_at.saturating_add(propagation) <= now
    });
    if !matched {
        return Err(EntraError::bad_request(
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation",
                aud.join(",")
            ),
        ));
    }
    if jwt.alg() != "RS256" || jwt.verify_signature(&state.signer.public_key()).is_err() {
        return Err(EntraError::invalid_client(
            700027,
            format!("Client assertion failed signature validation. (Reason - The key was not found or the signature did not match. Assertion Issuer: '{iss}'.)"),
        ));
    }
    check_times(jwt, now, false)
}
