//! Tests of `encryptiondata` parsing, serialising and `KeyId` matching.

use super::*;

const PYTHON_SAMPLE: &str = r#"{"WrappedContentKey":{"KeyId":"https://vault.vault.azure.net/keys/kek/0123abcd","EncryptedKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw==","Algorithm":"RSA-OAEP"},"EncryptionAgent":{"Protocol":"2.0","EncryptionAlgorithm":"AES_GCM_256"},"EncryptedRegionInfo":{"DataLength":4194304,"NonceLength":12},"KeyWrappingMetadata":{"EncryptionLibrary":"Python 12.31.1"},"EncryptionMode":"FullBlob"}"#;

fn edited(edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(PYTHON_SAMPLE).unwrap_or_default();
    edit(&mut value);
    value.to_string()
}

#[test]
fn parses_python_sample() {
    let data = parse_encryption_data(PYTHON_SAMPLE).expect("sample parses");
    assert_eq!(data.layout.protocol, Protocol::V2_0);
    assert_eq!(data.layout.data_length, 4 * 1024 * 1024);
    assert_eq!(
        data.wrapped_content_key.key_id,
        "https://vault.vault.azure.net/keys/kek/0123abcd"
    );
    assert_eq!(
        data.wrapped_content_key.encrypted_key,
        (0u8..40).collect::<Vec<_>>()
    );
    assert_eq!(data.wrapped_content_key.algorithm, "RSA-OAEP");
    assert!(data.encryption_mode_present);
}

#[test]
fn serialises_back_to_the_exact_shape() {
    let data = parse_encryption_data(PYTHON_SAMPLE).expect("sample parses");
    assert_eq!(data.to_json(), PYTHON_SAMPLE);
}

#[test]
fn for_upload_round_trips() {
    let data = EncryptionData::for_upload(
        WrappedContentKey {
            key_id: "https://kv.vault.azure.net/keys/k/v1".to_owned(),
            encrypted_key: vec![9; 256],
            algorithm: "RSA-OAEP-256".to_owned(),
        },
        RegionLayout {
            protocol: Protocol::V2_0,
            data_length: V2_DATA_LENGTH,
        },
    );
    let json = data.to_json();
    assert!(
        json.starts_with("{\"WrappedContentKey\":{\"KeyId\":"),
        "{json}"
    );
    assert!(json.contains("\"EncryptionLibrary\":\"Ferry "), "{json}");
    assert!(
        json.ends_with(",\"EncryptionMode\":\"FullBlob\"}"),
        "{json}"
    );
    assert_eq!(parse_encryption_data(&json), Ok(data));
}

#[test]
fn accepts_v21_small_regions_and_absent_mode() {
    let json = edited(|v| {
        v["EncryptionAgent"]["Protocol"] = "2.1".into();
        v["EncryptedRegionInfo"]["DataLength"] = 16.into();
        if let Some(map) = v.as_object_mut() {
            map.remove("EncryptionMode");
            map.remove("KeyWrappingMetadata");
        }
    });
    let data = parse_encryption_data(&json).expect("v2.1 parses");
    assert_eq!(data.layout.protocol, Protocol::V2_1);
    assert_eq!(data.layout.data_length, 16);
    assert!(!data.encryption_mode_present);
    let written = data.to_json();
    assert!(!written.contains("EncryptionMode"), "{written}");
    assert_eq!(parse_encryption_data(&written), Ok(data));
}

#[test]
fn v20_takes_the_written_data_length() {
    let json = edited(|v| v["EncryptedRegionInfo"]["DataLength"] = 1000.into());
    assert_eq!(
        parse_encryption_data(&json).map(|d| d.layout.data_length),
        Ok(1000)
    );
}

fn refused(json: &str) -> CseError {
    match parse_encryption_data(json) {
        Ok(data) => panic!("accepted {data:?}"),
        Err(e) => e,
    }
}

#[test]
fn refuses_malformed_json() {
    for json in ["", "{", "nope", "[1,2]", "\"x\"", "null"] {
        assert!(
            matches!(refused(json), CseError::MalformedMetadata { .. }),
            "{json}"
        );
    }
}

#[test]
fn refuses_missing_fields_by_name() {
    let cases: [(&str, &[&str]); 8] = [
        ("WrappedContentKey", &["WrappedContentKey"]),
        ("WrappedContentKey.KeyId", &["WrappedContentKey", "KeyId"]),
        (
            "WrappedContentKey.EncryptedKey",
            &["WrappedContentKey", "EncryptedKey"],
        ),
        (
            "WrappedContentKey.Algorithm",
            &["WrappedContentKey", "Algorithm"],
        ),
        ("EncryptionAgent.Protocol", &["EncryptionAgent", "Protocol"]),
        (
            "EncryptionAgent.EncryptionAlgorithm",
            &["EncryptionAgent", "EncryptionAlgorithm"],
        ),
        (
            "EncryptedRegionInfo.DataLength",
            &["EncryptedRegionInfo", "DataLength"],
        ),
        (
            "EncryptedRegionInfo.NonceLength",
            &["EncryptedRegionInfo", "NonceLength"],
        ),
    ];
    for (field, path) in cases {
        let json = edited(|v| {
            let mut node = v;
            for step in &path[..path.len() - 1] {
                node = &mut node[*step];
            }
            if let Some(map) = node.as_object_mut() {
                map.remove(path[path.len() - 1]);
            }
        });
        assert_eq!(refused(&json), CseError::MissingField { field }, "{field}");
    }
    let json = edited(|v| {
        if let Some(map) = v.as_object_mut() {
            map.remove("EncryptedRegionInfo");
        }
    });
    assert_eq!(
        refused(&json),
        CseError::MissingField {
            field: "EncryptedRegionInfo"
        }
    );
}

fn refused_field(json: &str) -> &'static str {
    match refused(json) {
        CseError::UnsupportedValue { field, .. } => field,
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn refuses_unsupported_values_by_name() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "EncryptionAgent.Protocol",
            Box::new(|v| v["EncryptionAgent"]["Protocol"] = "1.0".into()),
        ),
        (
            "EncryptionAgent.Protocol",
            Box::new(|v| v["EncryptionAgent"]["Protocol"] = "2.2".into()),
        ),
        (
            "EncryptionAgent.Protocol",
            Box::new(|v| v["EncryptionAgent"]["Protocol"] = 2.into()),
        ),
        (
            "EncryptionAgent.EncryptionAlgorithm",
            Box::new(|v| v["EncryptionAgent"]["EncryptionAlgorithm"] = "AES_CBC_256".into()),
        ),
        (
            "EncryptionMode",
            Box::new(|v| v["EncryptionMode"] = "Chunked".into()),
        ),
        (
            "EncryptedRegionInfo.NonceLength",
            Box::new(|v| v["EncryptedRegionInfo"]["NonceLength"] = 16.into()),
        ),
        (
            "EncryptedRegionInfo.DataLength",
            Box::new(|v| v["EncryptedRegionInfo"]["DataLength"] = 0.into()),
        ),
        (
            "EncryptedRegionInfo.DataLength",
            Box::new(|v| v["EncryptedRegionInfo"]["DataLength"] = (-5).into()),
        ),
        (
            "EncryptedRegionInfo.DataLength",
            Box::new(|v| v["EncryptedRegionInfo"]["DataLength"] = 4.5.into()),
        ),
        (
            "EncryptedRegionInfo.DataLength",
            Box::new(|v| v["EncryptedRegionInfo"]["DataLength"] = "4194304".into()),
        ),
        (
            "EncryptedRegionInfo.DataLength",
            Box::new(|v| {
                v["EncryptionAgent"]["Protocol"] = "2.1".into();
                v["EncryptedRegionInfo"]["DataLength"] = 15.into();
            }),
        ),
        (
            "WrappedContentKey.KeyId",
            Box::new(|v| v["WrappedContentKey"]["KeyId"] = "".into()),
        ),
        (
            "WrappedContentKey.EncryptedKey",
            Box::new(|v| v["WrappedContentKey"]["EncryptedKey"] = "".into()),
        ),
        (
            "WrappedContentKey.Algorithm",
            Box::new(|v| v["WrappedContentKey"]["Algorithm"] = 7.into()),
        ),
        (
            "EncryptionAgent",
            Box::new(|v| v["EncryptionAgent"] = "2.0".into()),
        ),
        (
            "KeyWrappingMetadata",
            Box::new(|v| v["KeyWrappingMetadata"] = 3.into()),
        ),
    ];
    for (field, edit) in cases {
        let json = edited(|v| edit(v));
        assert_eq!(refused_field(&json), field, "{json}");
    }
}

#[test]
fn refuses_bad_base64() {
    for bad in ["%%%%", "AAEC!", "A"] {
        let json = edited(|v| v["WrappedContentKey"]["EncryptedKey"] = bad.into());
        assert_eq!(
            refused(&json),
            CseError::BadBase64 {
                field: "WrappedContentKey.EncryptedKey"
            },
            "{bad}"
        );
    }
}

#[test]
fn refuses_data_length_over_cap() {
    let json = edited(|v| {
        v["EncryptionAgent"]["Protocol"] = "2.1".into();
        v["EncryptedRegionInfo"]["DataLength"] = (1u64 << 30).into();
    });
    assert_eq!(
        refused(&json),
        CseError::DataLengthOverCap {
            data_length: 1 << 30,
            cap: DEFAULT_MAX_DATA_LENGTH
        }
    );
    assert!(parse_encryption_data_capped(&json, 1 << 30).is_ok());
    let json = edited(|v| v["EncryptedRegionInfo"]["DataLength"] = u64::MAX.into());
    assert!(matches!(refused(&json), CseError::DataLengthOverCap { .. }));
    assert!(matches!(
        parse_encryption_data_capped(PYTHON_SAMPLE, 1024),
        Err(CseError::DataLengthOverCap { .. })
    ));
}

#[test]
fn long_values_are_cut_in_errors() {
    let long = "x".repeat(10_000);
    let json = edited(|v| v["EncryptionAgent"]["Protocol"] = long.clone().into());
    let message = refused(&json).to_string();
    assert!(message.len() < 400, "{message}");
}

const CONFIGURED: &str = "https://contoso-kv.vault.azure.net/keys/ferry-cmk";

#[test]
fn key_id_accepts_the_key_and_its_versions() {
    for key_id in [
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/0123456789abcdef0123456789abcdef",
        "https://CONTOSO-KV.Vault.Azure.Net/keys/ferry-cmk/abc",
        "https://contoso-kv.vault.azure.net:443/keys/ferry-cmk/abc",
    ] {
        assert!(key_id_matches(CONFIGURED, key_id), "{key_id}");
    }
    assert!(key_id_matches(
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/v1"
    ));
}

#[test]
fn key_id_refuses_anything_else() {
    for key_id in [
        "http://contoso-kv.vault.azure.net/keys/ferry-cmk/abc",
        "https://evil.vault.azure.net/keys/ferry-cmk/abc",
        "https://contoso-kv.vault.azure.net.evil.com/keys/ferry-cmk/abc",
        "https://contoso-kv.vault.azure.net:8443/keys/ferry-cmk/abc",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk2/abc",
        "https://contoso-kv.vault.azure.net/keys/FERRY-CMK/abc",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/abc/def",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/ab%2Fc",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/../other",
        "https://contoso-kv.vault.azure.net/secrets/ferry-cmk/abc",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/abc?x=1",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/abc#f",
        "https://user@contoso-kv.vault.azure.net/keys/ferry-cmk/abc",
        "https://contoso-kv.vault.azure.net/keys/other/abc",
        "local:kek",
        "",
        "ferry-cmk",
    ] {
        assert!(!key_id_matches(CONFIGURED, key_id), "{key_id}");
    }
    assert!(!key_id_matches("not a url", "https://a/keys/b"));
    assert!(!key_id_matches(
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/v1",
        "https://contoso-kv.vault.azure.net/keys/ferry-cmk/v1"
    ));
}
