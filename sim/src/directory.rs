//! The sim's Entra directory: tenants, multi-tenant apps with their credentials, the service
//! principals consent creates in each tenant, and the provider's managed identities.
//!
//! Pure data and the admin operations on it; no HTTP here. The token endpoint (`entra`) reads it,
//! the admin API (`admin`) changes it. Ids are lower-case GUID strings.

use std::collections::BTreeMap;

use rsa::RsaPublicKey;
use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::jwt::b64url;

/// Why a directory change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    /// An id that must be a GUID is not one.
    #[error("{what} {value:?} is not a guid; use the form 00000000-0000-0000-0000-000000000000")]
    NotAGuid {
        /// Which field.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// The tenant is not known.
    #[error("tenant {0} does not exist; create it with POST /admin/tenants")]
    UnknownTenant(String),
    /// The app is not known.
    #[error("app {0} does not exist; create it with POST /admin/apps")]
    UnknownApp(String),
    /// No such credential on the app.
    #[error("app {app} has no credential {id}")]
    UnknownCredential {
        /// The app.
        app: String,
        /// The credential id or thumbprint.
        id: String,
    },
    /// The tenant has no service principal (or orphan record) for the app.
    #[error("tenant {tenant} has not consented to app {app}")]
    NotConsented {
        /// The tenant.
        tenant: String,
        /// The app.
        app: String,
    },
    /// An id is taken.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The certificate PEM could not be used.
    #[error("certificate is not a usable rsa certificate pem: {0}")]
    BadCertificate(String),
    /// Too many federated credentials (Entra allows 20 per app).
    #[error("app {0} already has 20 federated credentials; delete one first")]
    TooManyFederatedCredentials(String),
    /// The managed identity is not known.
    #[error("managed identity {0} does not exist; create it with POST /admin/managed-identities")]
    UnknownManagedIdentity(String),
}

/// Parses and normalises a GUID (lower case, hyphenated).
pub fn parse_guid(what: &'static str, value: &str) -> Result<String, DirectoryError> {
    uuid::Uuid::try_parse(value)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| DirectoryError::NotAGuid {
            what,
            value: value.to_string(),
        })
}

/// A new random GUID.
pub fn new_guid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// A tenant (directory).
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Tenant id.
    pub id: String,
    /// Name shown in error messages.
    pub display_name: String,
    /// Consent state per app client id.
    pub consents: BTreeMap<String, Consent>,
}

/// What a tenant holds for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// Admin consent given: a service principal exists with this object id.
    ServicePrincipal {
        /// The service principal's object id in this tenant.
        object_id: String,
    },
    /// The service principal was removed while the tenant still references the app (AADSTS7000229).
    Orphaned,
}

/// A client secret. `Debug` never shows the value.
#[derive(Clone)]
pub struct ClientSecret {
    /// Secret id (GUID).
    pub id: String,
    /// The secret itself; never logged.
    pub value: String,
    /// Expiry (Unix seconds), if any.
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecret")
            .field("id", &self.id)
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A registered certificate (public part only).
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    /// Hex upper-case SHA-1 of the DER (what the portal shows).
    pub thumbprint_sha1: String,
    /// base64url SHA-1 of the DER (the `x5t` header value).
    pub x5t: String,
    /// base64url SHA-256 of the DER (the `x5t#S256` header value).
    pub x5t_s256: String,
    /// Hex upper-case SHA-256 of the DER.
    pub thumbprint_sha256: String,
    /// The key assertions must be signed with.
    pub public_key: RsaPublicKey,
}

impl ClientCertificate {
    /// Reads the first certificate of a PEM text; the key must be RSA.
    pub fn from_pem(pem_text: &str) -> Result<Self, DirectoryError> {
        let der = rustls_pemfile::certs(&mut pem_text.as_bytes())
            .next()
            .ok_or_else(|| DirectoryError::BadCertificate("no CERTIFICATE block".into()))?
            .map_err(|e| DirectoryError::BadCertificate(e.to_string()))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
            .map_err(|e| DirectoryError::BadCertificate(e.to_string()))?;
        use rsa::pkcs8::DecodePublicKey as _;
        let public_key = RsaPublicKey::from_public_key_der(cert.tbs_certificate.subject_pki.raw)
            .map_err(|e| DirectoryError::BadCertificate(format!("public key is not rsa: {e}")))?;
        let sha1 = Sha1::digest(der.as_ref());
        let sha256 = Sha256::digest(der.as_ref());
        Ok(Self {
            thumbprint_sha1: hex::encode_upper(sha1),
            x5t: b64url(&sha1),
            x5t_s256: b64url(&sha256),
            thumbprint_sha256: hex::encode_upper(sha256),
            public_key,
        })
    }
}

/// A federated identity credential on an app.
#[derive(Debug, Clone, Serialize)]
pub struct FederatedCredential {
    /// Credential id.
    pub id: String,
    /// Expected `iss` of the assertion.
    pub issuer: String,
    /// Expected `sub`.
    pub subject: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// When it was added (Unix seconds); it takes effect `federated_propagation_secs` later.
    pub created_at: i64,
}

/// A multi-tenant app registration.
#[derive(Debug, Clone)]
pub struct App {
    /// Application (client) id.
    pub client_id: String,
    /// The tenant the app is registered in.
    pub home_tenant_id: String,
    /// Name shown in error messages.
    pub display_name: String,
    /// Disabled apps get AADSTS7000112 everywhere.
    pub disabled: bool,
    /// Client secrets.
    pub secrets: Vec<ClientSecret>,
    /// Registered certificates.
    pub certificates: Vec<ClientCertificate>,
    /// Federated identity credentials.
    pub federated: Vec<FederatedCredential>,
}

/// A user-assigned managed identity of the provider.
#[derive(Debug, Clone, Serialize)]
pub struct ManagedIdentity {
    /// Client id.
    pub client_id: String,
    /// Object (principal) id.
    pub object_id: String,
    /// The tenant it lives in.
    pub tenant_id: String,
}

/// All tenants, apps and managed identities.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// Tenants by id.
    pub tenants: BTreeMap<String, Tenant>,
    /// Apps by client id.
    pub apps: BTreeMap<String, App>,
    /// Managed identities by client id.
    pub managed_identities: BTreeMap<String, ManagedIdentity>,
}

impl Directory {
    /// Creates a tenant (idempotent: an existing tenant keeps its state, the name is updated).
    pub fn add_tenant(
        &mut self,
        tenant_id: &str,
        display_name: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let id = parse_guid("tenant_id", tenant_id)?;
        let name = display_name
            .map(str::to_string)
            .unwrap_or_else(|| format!("Tenant {id}"));
        self.tenants
            .entry(id.clone())
            .and_modify(|t| t.display_name = name.clone())
            .or_insert_with(|| Tenant {
                id: id.clone(),
                display_name: name,
                consents: BTreeMap::new(),
            });
        Ok(id)
    }

    /// Registers a multi-tenant app in `home_tenant_id` and consents it there.
    pub fn add_app(
        &mut self,
        client_id: Option<&str>,
        home_tenant_id: &str,
        display_name: Option<&str>,
    ) -> Result<String, DirectoryError> {
        let home = parse_guid("home_tenant_id", home_tenant_id)?;
        if !self.tenants.contains_key(&home) {
            return Err(DirectoryError::UnknownTenant(home));
        }
        let client_id = match client_id {
            Some(c) => parse_guid("client_id", c)?,
            None => new_guid(),
        };
        if self.apps.contains_key(&client_id) {
            return Err(DirectoryError::AlreadyExists(format!("app {client_id}")));
        }
        let app = App {
            client_id: client_id.clone(),
            home_tenant_id: home.clone(),
            display_name: display_name
                .map(str::to_string)
                .unwrap_or_else(|| format!("App {client_id}")),
            disabled: false,
            secrets: Vec::new(),
            certificates: Vec::new(),
            federated: Vec::new(),
        };
        self.apps.insert(client_id.clone(), app);
        self.consent(&home, &client_id)?;
        Ok(client_id)
    }

    /// The app, or `UnknownApp`.
    pub fn app_mut(&mut self, client_id: &str) -> Result<&mut App, DirectoryError> {
        let id = parse_guid("app", client_id)?;
        self.apps.get_mut(&id).ok_or(DirectoryError::UnknownApp(id))
    }

    fn tenant_mut(&mut self, tenant_id: &str) -> Result<&mut Tenant, DirectoryError> {
        let id = parse_guid("tenant", tenant_id)?;
        self.tenants
            .get_mut(&id)
            .ok_or(DirectoryError::UnknownTenant(id))
    }

    /// Admin consent: creates (or keeps) the app's service principal in the tenant; returns its object id.
    pub fn consent(&mut self, tenant_id: &str, client_id: &str) -> Result<String, DirectoryError> {
        let app = parse_guid("app", client_id)?;
        if !self.apps.contains_key(&app) {
            return Err(DirectoryError::UnknownApp(app));
        }
        let tenant = self.tenant_mut(tenant_id)?;
        let entry = tenant.consents.entry(app).or_insert(Consent::Orphaned);
        if let Consent::ServicePrincipal { object_id } = entry {
            return Ok(object_id.clone());
        }
        let object_id = new_guid();
        *entry = Consent::ServicePrincipal {
            object_id: object_id.clone(),
        };
        Ok(object_id)
    }

    /// Consent withdrawn: the service principal is gone (AADSTS700016 afterwards).
    pub fn revoke_consent(
        &mut self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<(), DirectoryError> {
        let app = parse_guid("app", client_id)?;
        let tenant = self.tenant_mut(tenant_id)?;
        let tid = tenant.id.clone();
        tenant
            .consents
            .remove(&app)
            .map(|_| ())
            .ok_or(DirectoryError::NotConsented { tenant: tid, app })
    }

    /// Service principal removed but the app still referenced (AADSTS7000229 afterwards).
    pub fn orphan(&mut self, tenant_id: &str, client_id: &str) -> Result<(), DirectoryError> {
        let app = parse_guid("app", client_id)?;
        if !self.apps.contains_key(&app) {
            return Err(DirectoryError::UnknownApp(app));
        }
        self.tenant_mut(tenant_id)?
            .consents
            .insert(app, Consent::Orphaned);
        Ok(())
    }

    /// The service principal object id of `client_id` in `tenant_id`, if consented.
    pub fn service_principal(&self, tenant_id: &str, client_id: &str) -> Option<String> {
        match self.tenants.get(tenant_id)?.consents.get(client_id)? {
            Consent::ServicePrincipal { object_id } => Some(object_id.clone()),
            Consent::Orphaned => None,
        }
    }

    /// Adds a secret; returns `(id, value)`.
    pub fn add_secret(
        &mut self,
        client_id: &str,
        value: Option<String>,
        expires_at: Option<i64>,
    ) -> Result<(String, String), DirectoryError> {
        let app = self.app_mut(client_id)?;
        let id = new_guid();
        let value = value.unwrap_or_else(random_secret);
        app.secrets.push(ClientSecret {
            id: id.clone(),
            value: value.clone(),
            expires_at,
        });
        Ok((id, value))
    }

    /// Removes a secret.
    pub fn remove_secret(
        &mut self,
        client_id: &str,
        secret_id: &str,
    ) -> Result<(), DirectoryError> {
        let app = self.app_mut(client_id)?;
        let before = app.secrets.len();
        app.secrets.retain(|s| s.id != secret_id);
        if app.secrets.len() == before {
            return Err(DirectoryError::UnknownCredential {
                app: app.client_id.clone(),
                id: secret_id.into(),
            });
        }
        Ok(())
    }

    /// Marks a secret as expired now.
    pub fn expire_secret(
        &mut self,
        client_id: &str,
        secret_id: &str,
        now: i64,
    ) -> Result<(), DirectoryError> {
        let app = self.app_mut(client_id)?;
        let app_id = app.client_id.clone();
        let secret = app.secrets.iter_mut().find(|s| s.id == secret_id).ok_or(
            DirectoryError::UnknownCredential {
                app: app_id,
                id: secret_id.into(),
            },
        )?;
        secret.expires_at = Some(now - 1);
        Ok(())
    }

    /// Registers a certificate; returns it (thumbprints included).
    pub fn add_certificate(
        &mut self,
        client_id: &str,
        pem_text: &str,
    ) -> Result<ClientCertificate, DirectoryError> {
        let cert = ClientCertificate::from_pem(pem_text)?;
        let app = self.app_mut(client_id)?;
        app.certificates
            .retain(|c| c.thumbprint_sha1 != cert.thumbprint_sha1);
        app.certificates.push(cert.clone());
        Ok(cert)
    }

    /// Removes a certificate by its SHA-1 thumbprint (hex, any case).
    pub fn remove_certificate(
        &mut self,
        client_id: &str,
        thumbprint_sha1: &str,
    ) -> Result<(), DirectoryError> {
        let app = self.app_mut(client_id)?;
        let before = app.certificates.len();
        app.certificates
            .retain(|c| !c.thumbprint_sha1.eq_ignore_ascii_case(thumbprint_sha1));
        if app.certificates.len() == before {
            return Err(DirectoryError::UnknownCredential {
                app: app.client_id.clone(),
                id: thumbprint_sha1.into(),
            });
        }
        Ok(())
    }

    /// Adds a federated credential; returns its id.
    pub fn add_federated(
        &mut self,
        client_id: &str,
        issuer: &str,
        subject: &str,
        audiences: Vec<String>,
    ) -> Result<String, DirectoryError> {
        let app = self.app_mut(client_id)?;
        if app.federated.len() >= 20 {
            return Err(DirectoryError::TooManyFederatedCredentials(
                app.client_id.clone(),
            ));
        }
        let id = new_guid();
        app.federated.push(FederatedCredential {
            id: id.clone(),
            issuer: issuer.into(),
            subject: subject.into(),
            audiences,
            created_at: crate::jwt::now_unix(),
        });
        Ok(id)
    }

    /// Removes a federated credential.
    pub fn remove_federated(&mut self, client_id: &str, id: &str) -> Result<(), DirectoryError> {
        let app = self.app_mut(client_id)?;
        let before = app.federated.len();
        app.federated.retain(|f| f.id != id);
        if app.federated.len() == before {
            return Err(DirectoryError::UnknownCredential {
                app: app.client_id.clone(),
                id: id.into(),
            });
        }
        Ok(())
    }

    /// Creates a user-assigned managed identity in `tenant_id`.
    pub fn add_managed_identity(
        &mut self,
        tenant_id: &str,
        client_id: Option<&str>,
    ) -> Result<ManagedIdentity, DirectoryError> {
        let tenant_id = parse_guid("tenant_id", tenant_id)?;
        if !self.tenants.contains_key(&tenant_id) {
            return Err(DirectoryError::UnknownTenant(tenant_id));
        }
        let client_id = match client_id {
            Some(c) => parse_guid("client_id", c)?,
            None => new_guid(),
        };
        if self.managed_identities.contains_key(&client_id) {
            return Err(DirectoryError::AlreadyExists(format!(
                "managed identity {client_id}"
            )));
        }
        let mi = ManagedIdentity {
            client_id: client_id.clone(),
            object_id: new_guid(),
            tenant_id,
        };
        self.managed_identities.insert(client_id, mi.clone());
        Ok(mi)
    }
}

/// A random client secret in the portal's style (40 characters).
pub fn random_secret() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    let mut rng = rand::thread_rng();
    (0..40)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "33333333-3333-4333-8333-333333333333";
    const H: &str = "22222222-2222-4222-8222-222222222222";

    #[test]
    fn consent_lifecycle() {
        let mut d = Directory::default();
        d.add_tenant(H, None).expect("home");
        d.add_tenant(T, Some("Contoso")).expect("tenant");
        let app = d.add_app(None, H, None).expect("app");
        assert!(
            d.service_principal(H, &app).is_some(),
            "home tenant consented automatically"
        );
        assert_eq!(d.service_principal(T, &app), None);
        let oid = d.consent(T, &app).expect("consent");
        assert_eq!(
            d.consent(T, &app).expect("again"),
            oid,
            "consent is idempotent"
        );
        d.orphan(T, &app).expect("orphan");
        assert_eq!(d.tenants[T].consents[&app], Consent::Orphaned);
        d.revoke_consent(T, &app).expect("revoke");
        assert!(!d.tenants[T].consents.contains_key(&app));
        assert!(matches!(
            d.revoke_consent(T, &app),
            Err(DirectoryError::NotConsented { .. })
        ));
    }

    #[test]
    fn guids_are_normalised_and_checked() {
        assert_eq!(
            parse_guid("x", "AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA").expect("guid"),
            "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
        );
        assert!(parse_guid("x", "contoso.onmicrosoft.com").is_err());
    }

    #[test]
    fn debug_never_shows_secret_values() {
        let mut d = Directory::default();
        d.add_tenant(H, None).expect("home");
        let app = d.add_app(None, H, None).expect("app");
        let (_, value) = d
            .add_secret(&app, Some("hunter2-very-secret".into()), None)
            .expect("secret");
        assert!(!format!("{d:?}").contains(&value));
    }

    #[test]
    fn secrets_expire_and_are_removed() {
        let mut d = Directory::default();
        d.add_tenant(H, None).expect("home");
        let app = d.add_app(None, H, None).expect("app");
        let (id, value) = d.add_secret(&app, None, None).expect("secret");
        assert_eq!(value.len(), 40);
        d.expire_secret(&app, &id, 100).expect("expire");
        assert_eq!(d.apps[&app].secrets[0].expires_at, Some(99));
        d.remove_secret(&app, &id).expect("remove");
        assert!(d.remove_secret(&app, &id).is_err());
    }
}
