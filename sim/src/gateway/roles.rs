//! Storage accounts (which tenant owns each) and blob data role assignments, and the decision
//! whether a caller may perform a request. Plain data and pure checks; no HTTP.

use serde::Deserialize;

use crate::keyvault::{Caller, Principal};

/// The three built-in blob data roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum BlobRole {
    /// Read and list.
    #[serde(rename = "Storage Blob Data Reader")]
    Reader,
    /// Read, list, write, delete.
    #[serde(rename = "Storage Blob Data Contributor")]
    Contributor,
    /// Contributor plus POSIX ACLs (same as Contributor here).
    #[serde(rename = "Storage Blob Data Owner")]
    Owner,
}

impl BlobRole {
    /// Whether the role allows writes (PUT, DELETE, POST).
    pub fn can_write(self) -> bool {
        !matches!(self, BlobRole::Reader)
    }
}

/// One role assignment: a principal holds a role on a container or (`"*"`) the whole account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// Account name, lowercased.
    pub account: String,
    /// Container name, or `*` for the account scope.
    pub container: String,
    /// Who holds the role.
    pub principal: Principal,
    /// Which role.
    pub role: BlobRole,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// GET/HEAD/OPTIONS: list, get properties, get blob, get block list.
    Read,
    /// PUT/DELETE/POST/PATCH.
    Write,
}

impl Access {
    /// From the HTTP method.
    pub fn of(method: &axum::http::Method) -> Access {
        use axum::http::Method;
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => Access::Read,
            _ => Access::Write,
        }
    }
}

/// Storage accounts and role assignments.
#[derive(Debug, Default)]
pub struct Storage {
    /// Account name (lowercased) -> owning tenant (lowercased).
    pub accounts: std::collections::BTreeMap<String, String>,
    /// All role assignments.
    pub assignments: Vec<RoleAssignment>,
    /// Accounts Azurite was started with, when known (the admin API refuses others).
    pub azurite_accounts: Option<Vec<String>>,
    /// The client that talks to Azurite, built on first use.
    pub upstream: Option<super::proxy::Upstream>,
}

impl Storage {
    /// Whether `caller` may perform `access` on `container` (empty: an account-level request).
    pub fn allows(&self, account: &str, container: &str, caller: &Caller, access: Access) -> bool {
        self.assignments.iter().any(|a| {
            a.account == account
                && (a.container == "*" || (!container.is_empty() && a.container == container))
                && a.principal.matches(caller)
                && (access == Access::Read || a.role.can_write())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            tenant_id: "t".into(),
            object_id: "o".into(),
            app_id: "a".into(),
        }
    }

    #[test]
    fn roles_scope_and_write_rights() {
        let mut s = Storage::default();
        let p = Principal::ObjectId("o".into());
        s.assignments.push(RoleAssignment {
            account: "acct".into(),
            container: "logs".into(),
            principal: p.clone(),
            role: BlobRole::Reader,
        });
        assert!(s.allows("acct", "logs", &caller(), Access::Read));
        assert!(!s.allows("acct", "logs", &caller(), Access::Write));
        assert!(!s.allows("acct", "other", &caller(), Access::Read));
        assert!(
            !s.allows("acct", "", &caller(), Access::Read),
            "account-level needs the * scope"
        );
        assert!(!s.allows("acct2", "logs", &caller(), Access::Read));
        s.assignments.push(RoleAssignment {
            account: "acct".into(),
            container: "*".into(),
            principal: p,
            role: BlobRole::Contributor,
        });
        assert!(s.allows("acct", "", &caller(), Access::Read));
        assert!(s.allows("acct", "other", &caller(), Access::Write));
    }
}
