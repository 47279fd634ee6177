//! Cloud endpoints: the authority host, service suffixes and token resources of each Azure cloud,
//! and the admin-consent URL built from them.
//!
//! Owns: the built-in values for `public`, `usgov` and `china`, and reading `[agent.custom_cloud]`.
//! Must not: contact any endpoint.

use super::error::{ConfigError, ConfigPath};
use super::schema::{CloudName, Config, CustomCloudConfig, TenantConfig};

/// Where Ferry talks to, and which token resources it asks for, in one cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// Entra authority, e.g. `https://login.microsoftonline.com` (no trailing `/`).
    pub authority_host: String,
    /// Blob host suffix, e.g. `blob.core.windows.net`.
    pub blob_suffix: String,
    /// Key Vault host suffix, e.g. `vault.azure.net`.
    pub vault_suffix: String,
    /// Token resource for storage, e.g. `https://storage.azure.com`.
    pub storage_resource: String,
    /// Token resource for Key Vault, e.g. `https://vault.azure.net`.
    pub vault_resource: String,
    /// Token resource for Managed HSM, e.g. `https://managedhsm.azure.net`.
    pub managed_hsm_resource: String,
    /// Log Analytics query endpoint, e.g. `https://api.loganalytics.io`.
    pub log_analytics_endpoint: String,
    /// Token resource for Log Analytics, e.g. `https://api.loganalytics.io`.
    pub log_analytics_resource: String,
}

impl CloudEndpoints {
    /// The built-in values of a named cloud; `None` for `custom`.
    pub fn builtin(cloud: CloudName) -> Option<CloudEndpoints> {
        let v = |a: &str, b: &str, k: &str, s: &str, vr: &str, h: &str, le: &str, lr: &str| {
            CloudEndpoints {
                authority_host: a.into(),
                blob_suffix: b.into(),
                vault_suffix: k.into(),
                storage_resource: s.into(),
                vault_resource: vr.into(),
                managed_hsm_resource: h.into(),
                log_analytics_endpoint: le.into(),
                log_analytics_resource: lr.into(),
            }
        };
        match cloud {
            CloudName::Public => Some(v(
                "https://login.microsoftonline.com",
                "blob.core.windows.net",
                "vault.azure.net",
                "https://storage.azure.com",
                "https://vault.azure.net",
                "https://managedhsm.azure.net",
                "https://api.loganalytics.io",
                "https://api.loganalytics.io",
            )),
            CloudName::Usgov => Some(v(
                "https://login.microsoftonline.us",
                "blob.core.usgovcloudapi.net",
                "vault.usgovcloudapi.net",
                "https://storage.azure.com",
                "https://vault.usgovcloudapi.net",
                "https://managedhsm.usgovcloudapi.net",
                "https://api.loganalytics.us",
                "https://api.loganalytics.us",
            )),
            CloudName::China => Some(v(
                "https://login.chinacloudapi.cn",
                "blob.core.chinacloudapi.cn",
                "vault.azure.cn",
                "https://storage.azure.com",
                "https://vault.azure.cn",
                "https://managedhsm.azure.cn",
                "https://api.loganalytics.azure.cn",
                "https://api.loganalytics.azure.cn",
            )),
            CloudName::Custom => None,
        }
    }

    /// The endpoints a `[agent.custom_cloud]` table describes.
    pub fn custom(cc: &CustomCloudConfig) -> CloudEndpoints {
        let trim = |s: &str| s.trim_end_matches('/').to_string();
        let hsm = cc.managed_hsm_resource.clone().unwrap_or_else(|| {
            let rest = cc
                .vault_suffix
                .split_once('.')
                .map(|(_, rest)| rest)
                .unwrap_or(&cc.vault_suffix);
            format!("https://managedhsm.{rest}")
        });
        CloudEndpoints {
            authority_host: trim(&cc.authority_host),
            blob_suffix: cc.blob_suffix.trim_matches('.').to_string(),
            vault_suffix: cc.vault_suffix.trim_matches('.').to_string(),
            storage_resource: trim(&cc.storage_resource),
            vault_resource: trim(&cc.vault_resource),
            managed_hsm_resource: trim(&hsm),
            log_analytics_endpoint: trim(&cc.log_analytics_endpoint),
            log_analytics_resource: trim(&cc.log_analytics_resource),
        }
    }
}

/// `{authority}/{tenant_id}/adminconsent?client_id={client_id}`: the page where a customer's
/// administrator grants the app its consent.
pub fn consent_url(authority_host: &str, tenant_id: &str, client_id: &str) -> String {
    format!(
        "{}/{tenant_id}/adminconsent?client_id={client_id}",
        authority_host.trim_end_matches('/')
    )
}

impl Config {
    /// The endpoints of the configured cloud. Fails only for `cloud = "custom"` without
    /// `[agent.custom_cloud]`, which `validate` reports; a loaded config never fails here
    /// (use [`super::LoadedConfig::endpoints`]).
    pub fn cloud_endpoints(&self) -> Result<CloudEndpoints, ConfigError> {
        match (self.agent.cloud, &self.agent.custom_cloud) {
            (CloudName::Custom, Some(cc)) => Ok(CloudEndpoints::custom(cc)),
            (CloudName::Custom, None) => Err(ConfigError {
                file: Default::default(),
                line: 0,
                col: 0,
                path: ConfigPath::root().key("agent").key("cloud").to_string(),
                message: "cloud = \"custom\" needs an [agent.custom_cloud] table".into(),
                help: Some("add [agent.custom_cloud], or pick a named cloud".into()),
            }),
            (named, _) => CloudEndpoints::builtin(named).ok_or_else(|| ConfigError {
                file: Default::default(),
                line: 0,
                col: 0,
                path: "agent.cloud".into(),
                message: "unknown cloud".into(),
                help: None,
            }),
        }
    }

    /// The admin-consent URL for one tenant, in the configured cloud.
    pub fn consent_url(&self, tenant: &TenantConfig) -> Result<String, ConfigError> {
        let endpoints = self.cloud_endpoints()?;
        Ok(consent_url(
            &endpoints.authority_host,
            &tenant.tenant_id,
            &self.app.client_id,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_clouds_have_their_real_endpoints() {
        let public = CloudEndpoints::builtin(CloudName::Public).unwrap();
        assert_eq!(public.authority_host, "https://login.microsoftonline.com");
        assert_eq!(public.vault_resource, "https://vault.azure.net");
        let gov = CloudEndpoints::builtin(CloudName::Usgov).unwrap();
        assert_eq!(gov.blob_suffix, "blob.core.usgovcloudapi.net");
        let china = CloudEndpoints::builtin(CloudName::China).unwrap();
        assert_eq!(china.vault_suffix, "vault.azure.cn");
        assert!(CloudEndpoints::builtin(CloudName::Custom).is_none());
    }

    #[test]
    fn custom_cloud_derives_the_managed_hsm_resource() {
        let cc = CustomCloudConfig {
            authority_host: "https://login.sandbox.test/".into(),
            blob_suffix: "blob.sandbox.test".into(),
            vault_suffix: "vault.sandbox.test".into(),
            storage_resource: "https://storage.azure.com".into(),
            vault_resource: "https://vault.sandbox.test".into(),
            managed_hsm_resource: None,
            log_analytics_endpoint: "https://api.loganalytics.sandbox.test".into(),
            log_analytics_resource: "https://api.loganalytics.io".into(),
        };
        let e = CloudEndpoints::custom(&cc);
        assert_eq!(e.managed_hsm_resource, "https://managedhsm.sandbox.test");
        assert_eq!(e.authority_host, "https://login.sandbox.test");
        assert_eq!(
            consent_url(&e.authority_host, "33333333-3333-4333-8333-333333333333", "11111111-1111-4111-8111-111111111111"),
            "https://login.sandbox.test/33333333-3333-4333-8333-333333333333/adminconsent?client_id=11111111-1111-4111-8111-111111111111"
        );
    }
}
