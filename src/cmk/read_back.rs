//! `read_shipped`: the library side of `ferry cat`: fetch one shipped object from provider
//! storage with the destination identity, find its tenant (`ferry_tenant_id` metadata) and
//! source (`ferry_source`) in the config, and open it with that source's customer key.
//!
//! Must not: write anything anywhere, or print plaintext (the caller decides where it goes).

use std::sync::Arc;

use crate::blob_api::{BlobError, ContainerClient};
use crate::config::{LoadedConfig, SourceConfig};
use crate::identity::from_config::{
    http_settings, identity_settings, pins_with, provider_principal,
};
use crate::identity::http::HttpSetupError;
use crate::identity::{TokenError, TokenProvider};

use super::customer_key::CustomerKey;
use super::keyvault::{KeyVaultClient, KeyVaultError};
use super::shipped_object::{
    is_sealed, open_shipped_object, ShippedObjectError, SOURCE_METADATA, TENANT_ID_METADATA,
};

/// Why `ferry cat` could not print an object.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The URL is not `https://<account host>/<container>/<object>`.
    #[error("{url} is not a blob url (https://<account>.blob.<suffix>/<container>/<object>)")]
    BadUrl {
        /// The value given.
        url: String,
    },
    /// The URL names an account other than the destination's: the destination's token goes
    /// nowhere else.
    #[error("{account} is not this config's destination.account_url ({destination}): ferry cat reads only objects in provider storage and sends the destination identity's token nowhere else; give the URL of an object under {destination}, or the config whose destination that is")]
    NotDestination {
        /// The account of the URL given.
        account: String,
        /// `destination.account_url`.
        destination: String,
    },
    /// HTTP client settings are unusable.
    #[error(transparent)]
    Http(#[from] HttpSetupError),
    /// No destination token.
    #[error("no token for the destination identity: {0}")]
    Token(#[from] TokenError),
    /// Provider storage refused or failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The object's tenant is not in the config.
    #[error("object {object} belongs to tenant {tenant_id} ({source_name}), which has no source with decrypt in this config; add it or use that tenant's config")]
    UnknownTenant {
        /// The object.
        object: String,
        /// Its tenant id.
        tenant_id: String,
        /// Its source.
        source_name: String,
    },
    /// The key URL in the config is unusable.
    #[error(transparent)]
    Key(#[from] KeyVaultError),
    /// Decrypting or checking failed.
    #[error(transparent)]
    Object(Box<ShippedObjectError>),
}

impl From<ShippedObjectError> for ReadBackError {
    fn from(e: ShippedObjectError) -> Self {
        ReadBackError::Object(Box::new(e))
    }
}

/// Splits a blob URL into (account URL, container, object name).
pub fn split_blob_url(url: &str) -> Option<(String, String, String)> {
    let u = url::Url::parse(url).ok()?;
    if u.scheme() != "https" {
        return None;
    }
    let host = u.host_str()?;
    let account = match u.port() {
        Some(p) => format!("https://{host}:{p}"),
        None => format!("https://{host}"),
    };
    let path = u.path().trim_start_matches('/');
    let (container, name) = path.split_once('/')?;
    let name = percent_decode(name)?;
    (!container.is_empty() && !name.is_empty()).then(|| (account, container.to_string(), name))
}

/// Decodes `%XX` escapes; None for a bad escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// (container, object name) of `url` when it names an object in the destination account
/// `destination` (`destination.account_url`); refused before anything is sent otherwise.
pub fn destination_object(url: &str, destination: &str) -> Result<(String, String), ReadBackError> {
    let (account, container, name) = split_blob_url(url).ok_or_else(|| ReadBackError::BadUrl {
        url: url.to_string(),
    })?;
    let destination = destination.trim_end_matches('/');
    // the default port written out names the same account
    let same = |a: &str| {
        a.eq_ignore_ascii_case(destination)
            || a.strip_suffix(":443")
                .is_some_and(|a| a.eq_ignore_ascii_case(destination))
            || destination
                .strip_suffix(":443")
                .is_some_and(|d| d.eq_ignore_ascii_case(a))
    };
    if !same(&account) {
        return Err(ReadBackError::NotDestination {
            account,
            destination: destination.to_string(),
        });
    }
    Ok((container, name))
}

impl ReadBackError {
    /// True for a URL refused before anything was sent, or HTTP settings of the config that
    /// cannot be used (a CA file, a pin): exit code 2, as `ferry run` and `ferry check` give.
    pub fn is_config_or_usage(&self) -> bool {
        matches!(
            self,
            ReadBackError::BadUrl { .. }
                | ReadBackError::NotDestination { .. }
                | ReadBackError::Http(_)
        )
    }
}

/// Fetches and opens one shipped object; returns its plaintext.
pub async fn read_shipped(loaded: &LoadedConfig, url: &str) -> Result<Vec<u8>, ReadBackError> {
    let dest = &loaded.config.destination;
    let (container, name) = destination_object(url, &dest.account_url)?;
    let account = dest.account_url.trim_end_matches('/');
    let http = http_settings(loaded)?;
    let tokens = TokenProvider::new(identity_settings(loaded, http.build()?)?);
    let client = ContainerClient::new(
        http.build_with_pins(pins_with(&http, account, dest.resolve.as_deref())?)?,
        account,
        &container,
    );
    let principal = provider_principal(loaded, &dest.credential)?;
    let token = tokens
        .token(&principal, &loaded.endpoints.storage_resource)
        .await?;
    let (props, body) = client.get_all(&token.bearer(), &name).await?;
    let meta = |k: &str| props.metadata.get(k).cloned().unwrap_or_default();
    let encoding = if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    let key = if is_sealed(&props.metadata) {
        let (tenant_id, source_name) = (meta(TENANT_ID_METADATA), meta(SOURCE_METADATA));
        let found = loaded
            .config
            .tenants
            .iter()
            .filter(|t| t.tenant_id.eq_ignore_ascii_case(&tenant_id))
            .flat_map(|t| t.sources.iter())
            .find_map(|s| match s {
                SourceConfig::Blob(b) if b.name == source_name => b.decrypt.clone(),
                _ => None,
            });
        let Some(d) = found else {
            return Err(ReadBackError::UnknownTenant {
                object: name,
                tenant_id,
                source_name,
            });
        };
        let kv_http = match d.resolve.as_deref() {
            Some(r) => http.build_with_pins(pins_with(&http, &d.key, Some(r))?)?,
            None => http.build()?,
        };
        let client = KeyVaultClient::new(
            kv_http,
            tokens.clone(),
            &tenant_id,
            &d.key,
            &loaded.endpoints.vault_resource,
            &loaded.endpoints.managed_hsm_resource,
        )?;
        Some(Arc::new(CustomerKey::new(
            client,
            std::time::Duration::ZERO,
        )))
    } else {
        None
    };
    Ok(open_shipped_object(&name, &props.metadata, encoding, &body, key.as_deref()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_urls_split_into_account_container_and_name() {
        let (a, c, n) = split_blob_url(
            "https://providerlogs.blob.sandbox.test/shipped/tenant=contoso/a%20b.jsonl.zst",
        )
        .unwrap();
        assert_eq!(a, "https://providerlogs.blob.sandbox.test");
        assert_eq!(c, "shipped");
        assert_eq!(n, "tenant=contoso/a b.jsonl.zst");
        assert!(split_blob_url("http://x/y/z").is_none());
        assert!(split_blob_url("https://x/onlycontainer").is_none());
    }

    #[test]
    fn only_objects_of_the_destination_account_are_read() {
        let dest = "https://providerlogs.blob.core.windows.net/";
        for ok in [
            "https://providerlogs.blob.core.windows.net/shipped/a.jsonl.zst",
            "https://PROVIDERLOGS.blob.core.windows.net/shipped/a.jsonl.zst",
            "https://providerlogs.blob.core.windows.net:443/shipped/a.jsonl.zst",
        ] {
            let (c, n) = destination_object(ok, dest).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!((c.as_str(), n.as_str()), ("shipped", "a.jsonl.zst"));
        }
        for (url, want) in [
            // a customer's account, a stranger, a look-alike, another port
            (
                "https://contosologs.blob.core.windows.net/shipped/a",
                "contosologs",
            ),
            ("https://127.0.0.1:18999/shipped/a", "127.0.0.1:18999"),
            (
                "https://providerlogs.blob.core.windows.net.evil.example/shipped/a",
                "evil",
            ),
            (
                "https://providerlogs.blob.core.windows.net:8443/shipped/a",
                ":8443",
            ),
        ] {
            let e = destination_object(url, dest).expect_err(url);
            assert!(e.is_config_or_usage(), "{url}");
            let text = e.to_string();
            assert!(
                text.contains(want) && text.contains("destination.account_url"),
                "{text}"
            );
        }
        assert!(destination_object("http://providerlogs/x/y", dest)
            .expect_err("http")
            .is_config_or_usage());
    }
}
