//! Building identities from the configuration: the HTTP client settings (CA, DNS pins), the
//! app's credential, the provider's managed identity endpoint, and the destination principal.
//!
//! Must not: read secrets here (they are read when a token is requested), except the managed
//! identity header, which the platform fixes for the life of the process.

use std::path::PathBuf;

use crate::config::{self, AppCredential, LoadedConfig, ProviderCredential};

use super::credential::{CertificateCredential, SecretLocation};
use super::error::TokenError;
use super::http::{DnsPins, HostPin, HttpSettings, HttpSetupError};
use super::managed::ManagedIdentityEndpoint;
use super::provider::{AppAuthMethod, IdentitySettings, Principal};
use super::token::SecretString;

/// HTTP settings from `[agent]`.
pub fn http_settings(loaded: &LoadedConfig) -> Result<HttpSettings, HttpSetupError> {
    let agent = &loaded.config.agent;
    let ca = HttpSettings::load_ca(agent.ca_file.as_deref())?;
    let pins = agent
        .resolve
        .iter()
        .map(|p| HostPin::new(&p.host, &p.address))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpSettings::new(ca, DnsPins::new(pins)))
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read_secret_ref(r: &config::SecretRef, what: &str) -> Result<SecretString, TokenError> {
    let loc = match (&r.env, &r.file) {
        (Some(env), _) => SecretLocation::Env(env.clone()),
        (None, Some(file)) => SecretLocation::File(file.clone()),
        (None, None) => {
            return Err(TokenError::CredentialSource(format!(
                "{what} names neither env nor file"
            )))
        }
    };
    loc.read()
}

/// The managed identity endpoint: from `[agent.managed_identity]`, else the environment.
pub fn managed_identity_endpoint(
    loaded: &LoadedConfig,
) -> Result<ManagedIdentityEndpoint, TokenError> {
    Ok(match &loaded.config.agent.managed_identity {
        None => ManagedIdentityEndpoint::from_environment(),
        Some(config::ManagedIdentityEndpoint::Imds { endpoint }) => ManagedIdentityEndpoint::Imds {
            url: endpoint.clone(),
        },
        Some(config::ManagedIdentityEndpoint::AppService { endpoint, header }) => {
            ManagedIdentityEndpoint::AppService {
                url: endpoint.clone(),
                header: read_secret_ref(header, "agent.managed_identity.header")?,
            }
        }
    })
}

/// A provider-side credential as a principal.
pub fn provider_principal(
    loaded: &LoadedConfig,
    cred: &ProviderCredential,
) -> Result<Principal, TokenError> {
    let home = loaded.config.app.home_tenant_id.clone();
    Ok(match cred {
        ProviderCredential::ManagedIdentity { client_id } => Principal::ManagedIdentity {
            client_id: client_id.clone(),
        },
        ProviderCredential::WorkloadIdentity {
            token_file,
            client_id,
        } => Principal::Workload {
            tenant_id: home.or_else(|| env_string("AZURE_TENANT_ID")).ok_or_else(|| {
                TokenError::CredentialSource(
                    "workload identity needs app.home_tenant_id or AZURE_TENANT_ID".into(),
                )
            })?,
            client_id: client_id.clone().or_else(|| env_string("AZURE_CLIENT_ID")).ok_or_else(|| {
                TokenError::CredentialSource(
                    "workload identity needs client_id or AZURE_CLIENT_ID".into(),
                )
            })?,
            token_file: token_file.clone().or_else(|| env_path("AZURE_FEDERATED_TOKEN_FILE")).ok_or_else(|| {
                TokenError::CredentialSource(
                    "workload identity needs token_file or AZURE_FEDERATED_TOKEN_FILE (is workload identity enabled on the pod?)".into(),
                )
            })?,
        },
        ProviderCredential::App => Principal::App {
            tenant_id: home.ok_or_else(|| {
                TokenError::CredentialSource("destination credential `app` needs app.home_tenant_id".into())
            })?,
        },
    })
}

/// Identity settings for the token provider.
pub fn identity_settings(
    loaded: &LoadedConfig,
    http: reqwest::Client,
) -> Result<IdentitySettings, TokenError> {
    let app = &loaded.config.app;
    let app_auth = match &app.credential {
        AppCredential::Secret { env, file } => match (env, file) {
            (Some(env), _) => AppAuthMethod::Secret(SecretLocation::Env(env.clone())),
            (None, Some(file)) => AppAuthMethod::Secret(SecretLocation::File(file.clone())),
            (None, None) => {
                return Err(TokenError::CredentialSource(
                    "app.credential of kind secret names neither env nor file".into(),
                ))
            }
        },
        AppCredential::KeyVaultSecret {
            vault,
            name,
            identity,
        } => AppAuthMethod::KeyVaultSecret {
            vault_url: vault.clone(),
            name: name.clone(),
            via: provider_principal(
                loaded,
                identity
                    .as_ref()
                    .unwrap_or(&ProviderCredential::ManagedIdentity { client_id: None }),
            )?,
        },
        AppCredential::Certificate { path, key_path } => {
            AppAuthMethod::Certificate(Box::new(CertificateCredential::new(
                path.clone(),
                key_path.clone(),
            )))
        }
        AppCredential::FederatedManagedIdentity {
            managed_identity_client_id,
        } => AppAuthMethod::FederatedManagedIdentity {
            managed_identity_client_id: managed_identity_client_id.clone(),
        },
        AppCredential::WorkloadIdentity { token_file } => AppAuthMethod::WorkloadIdentity {
            token_file: token_file.clone().or_else(|| env_path("AZURE_FEDERATED_TOKEN_FILE")).ok_or_else(|| {
                TokenError::CredentialSource(
                    "app.credential workload_identity needs token_file or AZURE_FEDERATED_TOKEN_FILE".into(),
                )
            })?,
        },
    };
    Ok(IdentitySettings {
        authority_host: loaded.endpoints.authority_host.clone(),
        client_id: app.client_id.clone(),
        app_auth,
        managed_identity: managed_identity_endpoint(loaded)?,
        vault_resource: loaded.endpoints.vault_resource.clone(),
        http,
    })
}

/// Pins for one endpoint with its own `resolve`, on top of the agent's pins.
pub fn pins_with(
    settings: &HttpSettings,
    url: &str,
    resolve: Option<&str>,
) -> Result<DnsPins, HttpSetupError> {
    let Some(address) = resolve else {
        return Ok(settings.pins.clone());
    };
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default();
    settings.pins.clone().with_exact(&host, address)
}
