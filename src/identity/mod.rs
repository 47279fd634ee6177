//! Identity: per-(tenant, resource) token providers for the provider's multi-tenant app, every app
//! credential kind, the provider-side identities, and the classification of token failures into
//! tenant states (consent revoked, credential invalid, misconfigured, transient).
//!
//! Owns: token endpoint calls, token caching and refresh, token checks (`tid`, `aud`), the shared
//! HTTP client (CA, DNS pins, timeouts). Must not: know about blobs, keys or checkpoints; log
//! secrets, assertions or tokens.
