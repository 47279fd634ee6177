//! Account SAS tokens (version 2019-12-12 string-to-sign) for rclone, signed with the Azurite
//! account key. HMAC-SHA256 is written out here over `sha2` to avoid a dependency. Benchmark
//! use only: blob service, all resource types, read/write/delete/list/add/create, https only.

use anyhow::Context as _;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// `sv=..&ss=b&srt=sco&sp=rwdlac&se=..&spr=https&sig=..` for `account`, valid until 2099.
pub fn account_sas(account: &str, key_b64: &str) -> anyhow::Result<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .context("azurite account key is not base64")?;
    let (sp, ss, srt, se, spr, sv) = (
        "rwdlac",
        "b",
        "sco",
        "2099-01-01T00:00:00Z",
        "https",
        "2019-12-12",
    );
    // account, permissions, services, resource types, start, expiry, ip, protocol, version.
    let to_sign = [account, sp, ss, srt, "", se, "", spr, sv, ""].join("\n");
    let sig =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, to_sign.as_bytes()));
    Ok(url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", sv)
        .append_pair("ss", ss)
        .append_pair("srt", srt)
        .append_pair("sp", sp)
        .append_pair("se", se)
        .append_pair("spr", spr)
        .append_pair("sig", &sig)
        .finish())
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}
