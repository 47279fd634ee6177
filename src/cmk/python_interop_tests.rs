//! Interop with blobs written by the official Python SDK (`testdata/python_sdk_v2.json`, made by
//! `testdata/gen_python_fixtures.py` with azure-storage-blob 12.31.1, a local A256KW key-encryption
//! key and a fixed content key): Ferry parses the SDK's metadata, unwraps and prefix-checks its
//! content key, decrypts its bodies, and writes the same bytes as the SDK for the same key.

use aes_kw::KekAes256;
use sha2::{Digest as _, Sha256};

use super::*;

const FIXTURES: &str = include_str!("testdata/python_sdk_v2.json");
const CONFIGURED_KEY: &str = "https://ferry-test.vault.azure.net/keys/kek";

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31) >> 3) as u8).collect()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    hex::decode(text).expect("fixture hex")
}

#[test]
fn python_sdk_blobs_parse_unwrap_decrypt_and_match_ferry_output() {
    let fixtures: serde_json::Value = serde_json::from_str(FIXTURES).expect("fixture json");
    let kek_bytes: [u8; 32] = hex_bytes(fixtures["kek_hex"].as_str().expect("kek"))
        .try_into()
        .expect("32-byte kek");
    let kek = KekAes256::new(&kek_bytes.into());
    let blobs = fixtures["blobs"].as_array().expect("blobs");
    assert_eq!(blobs.len(), 4, "0 B, 1 B, one region, several regions");
    for blob in blobs {
        let size = blob["plaintext_len"].as_u64().expect("len") as usize;
        let data = parse_encryption_data(blob["encryptiondata"].as_str().expect("metadata"))
            .unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert_eq!(data.layout.protocol, Protocol::V2_0);
        assert_eq!(data.layout.data_length, V2_DATA_LENGTH);
        assert!(key_id_matches(
            CONFIGURED_KEY,
            &data.wrapped_content_key.key_id
        ));
        assert_eq!(data.wrapped_content_key.algorithm, "A256KW");

        let mut unwrapped = [0u8; WRAP_PAYLOAD_LEN];
        kek.unwrap(&data.wrapped_content_key.encrypted_key, &mut unwrapped)
            .expect("A256KW unwrap");
        let key = content_key_from_unwrapped(data.layout.protocol, &unwrapped).expect("prefix");
        assert_eq!(
            content_key_from_unwrapped(Protocol::V2_1, &unwrapped).map(|_| ()),
            Err(CseError::ProtocolMismatch { protocol: "2.1" })
        );

        let plain = pattern(size);
        let mut enc = RegionEncryptor::with_key(key.clone(), data.layout).expect("layout");
        let mut ours = Vec::new();
        let mut out = |r: &[u8]| -> Result<(), CseError> {
            ours.extend_from_slice(r);
            Ok(())
        };
        enc.push(&plain, &mut out).expect("encrypt");
        enc.finish(&mut out).expect("finish");
        assert_eq!(
            ours.len() as u64,
            blob["body_len"].as_u64().expect("body_len")
        );
        assert_eq!(
            hex::encode(Sha256::digest(&ours)),
            blob["body_sha256"].as_str().expect("sha"),
            "size {size}: Ferry writes the SDK's bytes for the same key"
        );

        if let Some(body_hex) = blob["body_hex"].as_str() {
            let body = hex_bytes(body_hex);
            let mut dec = RegionDecryptor::new(&key, data.layout).expect("decryptor");
            let mut back = Vec::new();
            let mut out = |t: &[u8]| -> Result<(), CseError> {
                back.extend_from_slice(t);
                Ok(())
            };
            for piece in body.chunks(7) {
                dec.push(piece, &mut out).expect("sdk body decrypts");
            }
            let summary = dec.finish(&mut out).expect("finish");
            assert_eq!(back, plain, "size {size}");
            assert_eq!(summary.plaintext_len, size as u64);
        }
    }
}
