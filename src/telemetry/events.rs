//! Typed events: one struct per thing that happens, whose `emit` writes exactly one structured
//! log line, counts it, and records it on the status board. Call sites say *what happened*; the
//! wording, level, fields and counters live here, once.
//!
//! Every line carries `tenant` (and `source` where there is one) and, for errors that need a
//! person, `fix`. Must not: carry secrets (callers pass error texts that never hold tokens) or
//! decide anything.

use std::fmt::{Debug, Display};

/// What an event accepts as an error text: anything printable (errors, strings).
pub trait ErrorText: Display + Debug {}
impl<T: Display + Debug + ?Sized> ErrorText for T {}

use super::metrics::Metrics;
use super::status::{LastError, StatusBoard, TenantState};

/// A tenant moved from one state to another.
#[derive(Debug)]
pub struct TenantStateChanged<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// The state it left.
    pub from: TenantState,
    /// The state it entered.
    pub to: TenantState,
    /// Why (empty when nothing to say).
    pub reason: &'a str,
    /// What a person should do (empty when nothing).
    pub fix: &'a str,
}

impl TenantStateChanged<'_> {
    /// Logs and counts the change (the board already holds the new state).
    pub fn emit(&self) {
        Metrics::state_change(self.tenant, self.to);
        if self.to.is_blocked() {
            tracing::warn!(tenant = %self.tenant, from = self.from.as_str(), to = self.to.as_str(), reason = %self.reason, fix = %self.fix, "Tenant stopped shipping");
        } else if self.reason.is_empty() {
            tracing::info!(tenant = %self.tenant, from = self.from.as_str(), to = self.to.as_str(), "Tenant state changed");
        } else {
            // throttled or unreachable: still shipping what it can, retrying the rest each poll
            let fix = (!self.fix.is_empty()).then_some(self.fix);
            tracing::warn!(tenant = %self.tenant, from = self.from.as_str(), to = self.to.as_str(), reason = %self.reason, fix, "Tenant state changed");
        }
    }
}

/// Work on a source failed and will be retried (next poll).
#[derive(Debug)]
pub struct SourceWorkFailed<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// Source name.
    pub source: &'a str,
    /// The blob, when the failure concerns one.
    pub blob: Option<&'a str>,
    /// Error class (`transient`, `destination`, `source`, `state`, ...).
    pub class: &'a str,
    /// The error.
    pub error: &'a dyn ErrorText,
    /// What a person should do (empty when a retry is enough).
    pub fix: &'a str,
}

impl SourceWorkFailed<'_> {
    /// Logs, counts by class, and records the last error of the source.
    pub fn emit(&self, board: &StatusBoard) {
        Metrics::error(self.tenant, self.source, self.class);
        let message = self.error.to_string();
        // a failure that only needs time carries no fix field at all
        let fix = (!self.fix.is_empty()).then_some(self.fix);
        match self.blob {
            Some(blob) => {
                tracing::warn!(tenant = %self.tenant, source = %self.source, blob = %blob, class = self.class, error = %message, fix, "Shipping failed; it is retried next poll")
            }
            None => {
                tracing::warn!(tenant = %self.tenant, source = %self.source, class = self.class, error = %message, fix, "Listing failed; it is retried next poll")
            }
        }
        board.update_source(self.tenant, self.source, |st| {
            st.last_error = Some(LastError::now(self.class, message, self.fix))
        });
    }
}

/// A refusal that stops the tenant (consent, role or key revoked) was seen on a source.
#[derive(Debug)]
pub struct TenantRefused<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// Source name.
    pub source: &'a str,
    /// The blob being shipped, if any.
    pub blob: Option<&'a str>,
    /// The state this leads to.
    pub state: TenantState,
    /// The refusal.
    pub error: &'a dyn ErrorText,
    /// What a person should do.
    pub fix: &'a str,
}

impl TenantRefused<'_> {
    /// Logs, counts (class = the state), and records the error on the source.
    pub fn emit(&self, board: &StatusBoard) {
        let class = self.state.as_str();
        Metrics::error(self.tenant, self.source, class);
        let message = self.error.to_string();
        // a refusal is not always the customer's: the provider's own credential, or the config
        let what = match self.state {
            TenantState::CredentialInvalid => {
                "The provider's app credential was refused or cannot be loaded; stopping this tenant now"
            }
            TenantState::Misconfigured => {
                "The configuration names something the customer's tenant does not have; stopping this tenant now"
            }
            _ => "Refused by the customer's tenant; stopping this tenant now",
        };
        // `blob` is left out (not empty) when the refusal came from a listing
        tracing::warn!(tenant = %self.tenant, source = %self.source, blob = self.blob, class, error = %message, fix = %self.fix, "{what}");
        board.update_source(self.tenant, self.source, |st| {
            st.last_error = Some(LastError::now(class, message, self.fix))
        });
    }
}

/// A blob was refused (bad ciphertext or metadata) and will never be shipped as it is.
#[derive(Debug)]
pub struct BlobQuarantined<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// Source name.
    pub source: &'a str,
    /// The blob.
    pub blob: &'a str,
    /// The version refused (it is read again only when the blob's ETag changes).
    pub etag: &'a str,
    /// Why.
    pub reason: &'a dyn ErrorText,
}

impl BlobQuarantined<'_> {
    /// Logs, counts (`ferry_blobs_quarantined_total`, `ferry_errors_total{class="quarantined"}`),
    /// and records it on the source as its last error.
    pub fn emit(&self, board: &StatusBoard) {
        Metrics::quarantined(self.tenant, self.source);
        Metrics::error(self.tenant, self.source, "quarantined");
        let message = self.reason.to_string();
        let fix = "ask the customer to check how this blob was written; it is not retried until it changes";
        tracing::error!(tenant = %self.tenant, source = %self.source, blob = %self.blob, etag = %self.etag, class = "quarantined", reason = %message, fix, "Blob quarantined: nothing of it was shipped; it is read again only when its ETag changes");
        board.update_source(self.tenant, self.source, |st| {
            st.quarantined += 1;
            st.last_error = Some(LastError::now(
                "quarantined",
                format!("blob {}: {message}", self.blob),
                fix,
            ))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_update_the_board() {
        let b = StatusBoard::new();
        b.register("ev-test", "t", &["audit".into()], TenantState::Active);
        BlobQuarantined {
            tenant: "ev-test",
            source: "audit",
            blob: "x/PT1H.json",
            etag: "\"0x8DC\"",
            reason: &"authentication tag mismatch in region 3",
        }
        .emit(&b);
        SourceWorkFailed {
            tenant: "ev-test",
            source: "audit",
            blob: None,
            class: "transient",
            error: &"503 ServerBusy",
            fix: "",
        }
        .emit(&b);
        let s = &b.snapshot()["ev-test"].sources["audit"];
        assert_eq!(s.quarantined, 1);
        assert_eq!(
            s.last_error.as_ref().map(|e| e.class.as_str()),
            Some("transient")
        );
    }
}
