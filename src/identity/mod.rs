//! Identity: per-(tenant, resource) token providers for the provider's multi-tenant app, every app
//! credential kind, the provider-side identities, and the classification of token failures into
//! tenant states (consent revoked, credential invalid, misconfigured, transient).
//!
//! Owns: token endpoint calls, token caching and refresh, token checks (`tid`, `aud`), the shared
//! HTTP client (CA, DNS pins, timeouts). Must not: know about blobs, keys or checkpoints; log
//! secrets, assertions or tokens.

mod credential;
mod entra;
mod error;
pub mod from_config;
pub mod http;
mod managed;
mod provider;
mod refresh;
mod token;
mod vault_secret;

pub use credential::{read_assertion_file, CertificateCredential, SecretLocation};
pub use entra::{default_scope, request_token, token_endpoint, ClientAuth, TokenRequest};
pub use error::{classify_aadsts, retry_after, FailureClass, TokenError, TOKEN_UNAVAILABLE_FIX};
pub use managed::{request_managed_identity_token, ManagedIdentityEndpoint};
pub use provider::{
    AppAuthMethod, IdentitySettings, Principal, ProviderTuning, TokenProvider,
    TOKEN_EXCHANGE_RESOURCE,
};
pub use token::{
    check_claims, decode_claims, AccessToken, SecretString, TokenCheckError, TokenClaims,
};
