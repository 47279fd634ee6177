//! End-to-end tests of the CSE v2 reader and writer: round trips, the three SDK nonce schemes,
//! every refusal, and a fuzz-style never-panic test.

use aes_gcm::aead::{AeadInPlace as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use sha2::{Digest as _, Sha256};

use super::*;

const MIB4: u64 = 4 * 1024 * 1024;

fn layout(protocol: Protocol, data_length: u64) -> RegionLayout {
    RegionLayout {
        protocol,
        data_length,
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// Encrypts with `RegionEncryptor`, feeding `chunk`-sized pieces.
fn encrypt(
    key: &ContentKey,
    layout: RegionLayout,
    plain: &[u8],
    chunk: usize,
) -> (Vec<u8>, EncryptSummary) {
    let mut enc = RegionEncryptor::with_key(key.clone(), layout).expect("valid layout");
    let mut body = Vec::new();
    let mut out = |region: &[u8]| -> Result<(), CseError> {
        body.extend_from_slice(region);
        Ok(())
    };
    for piece in plain.chunks(chunk.max(1)) {
        enc.push(piece, &mut out).expect("encrypt");
    }
    let summary = enc.finish(&mut out).expect("finish");
    (body, summary)
}

/// Decrypts with `RegionDecryptor`, feeding `chunk`-sized pieces.
fn decrypt_with(
    dec: RegionDecryptor,
    body: &[u8],
    chunk: usize,
) -> Result<(Vec<u8>, DecryptSummary), CseError> {
    let mut dec = dec;
    let mut plain = Vec::new();
    let mut out = |text: &[u8]| -> Result<(), CseError> {
        plain.extend_from_slice(text);
        Ok(())
    };
    for piece in body.chunks(chunk.max(1)) {
        dec.push(piece, &mut out)?;
    }
    let summary = dec.finish(&mut out)?;
    Ok((plain, summary))
}

fn decrypt(
    key: &ContentKey,
    layout: RegionLayout,
    body: &[u8],
    chunk: usize,
) -> Result<(Vec<u8>, DecryptSummary), CseError> {
    decrypt_with(RegionDecryptor::new(key, layout)?, body, chunk)
}

/// Writes a CSE v2 body by hand with any nonce scheme, independently of `RegionEncryptor`.
fn hand_encrypt(
    key: &ContentKey,
    data_length: usize,
    plain: &[u8],
    scheme: NonceScheme,
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.expose_secret().into());
    let mut body = Vec::new();
    for (i, region) in plain.chunks(data_length).enumerate() {
        let nonce = scheme.nonce(i as u64).expect("small index");
        let mut text = region.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", &mut text)
            .expect("encrypt");
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&text);
        body.extend_from_slice(&tag);
    }
    body
}

#[test]
fn round_trip_v20_sizes_and_chunkings() {
    let key = ContentKey::generate();
    let dl = MIB4 as usize;
    for size in [0, 1, dl - 1, dl, dl + 1, 2 * dl + 17] {
        let plain = pattern(size, size as u64);
        for chunk in [size.max(1), 65_537, 1_000_003] {
            let (body, summary) = encrypt(&key, layout(Protocol::V2_0, MIB4), &plain, chunk);
            assert_eq!(Some(body.len() as u64), ciphertext_len(size as u64, MIB4));
            assert_eq!(summary.ciphertext_len, body.len() as u64);
            assert_eq!(summary.plaintext_len, size as u64);
            assert_eq!(summary.sha256, <[u8; 32]>::from(Sha256::digest(&plain)));
            let (back, dsum) = decrypt(&key, layout(Protocol::V2_0, MIB4), &body, chunk + 3)
                .expect("round trip decrypts");
            assert!(back == plain, "size {size} chunk {chunk}");
            assert_eq!(dsum.plaintext_len, size as u64);
            assert_eq!(dsum.regions, summary.regions);
        }
    }
}

#[test]
fn encryptor_writes_python_nonces() {
    let key = ContentKey::generate();
    let plain = pattern(100, 1);
    let (body, _) = encrypt(&key, layout(Protocol::V2_1, 16), &plain, 7);
    assert_eq!(body, hand_encrypt(&key, 16, &plain, NonceScheme::Python));
}

#[test]
fn empty_plaintext_is_an_empty_body() {
    let key = ContentKey::generate();
    let (body, summary) = encrypt(&key, layout(Protocol::V2_0, MIB4), &[], 1);
    assert!(body.is_empty());
    assert_eq!(summary.regions, 0);
    let (plain, dsum) = decrypt(&key, layout(Protocol::V2_0, MIB4), &body, 1).expect("empty");
    assert!(plain.is_empty());
    assert_eq!(dsum.plaintext_len, 0);
}

#[test]
fn v21_small_regions_all_sdk_nonces() {
    let key = ContentKey::generate();
    for scheme in NonceScheme::ALL {
        for size in [0usize, 1, 15, 16, 17, 31, 32, 33, 100] {
            let plain = pattern(size, 7);
            let body = hand_encrypt(&key, 16, &plain, scheme);
            for chunk in [1, 5, 44, 1000] {
                let (back, summary) = decrypt(&key, layout(Protocol::V2_1, 16), &body, chunk)
                    .unwrap_or_else(|e| panic!("{scheme:?} size {size} chunk {chunk}: {e}"));
                assert_eq!(back, plain);
                if size > 16 {
                    assert_eq!(summary.nonce_scheme, Some(scheme), "size {size}");
                }
            }
        }
    }
}

#[test]
fn java_and_dotnet_nonces_with_v20_regions() {
    let key = ContentKey::generate();
    let plain = pattern(MIB4 as usize + 10, 3);
    for scheme in [NonceScheme::Java, NonceScheme::DotNet] {
        let body = hand_encrypt(&key, MIB4 as usize, &plain, scheme);
        let (back, summary) =
            decrypt(&key, layout(Protocol::V2_0, MIB4), &body, 1 << 20).expect("decrypts");
        assert!(back == plain);
        assert_eq!(summary.nonce_scheme, Some(scheme));
    }
}

#[test]
fn emits_region_by_region_not_at_the_end() {
    let key = ContentKey::generate();
    let body = hand_encrypt(&key, 16, &pattern(48, 2), NonceScheme::Python);
    let mut dec = RegionDecryptor::new(&key, layout(Protocol::V2_1, 16)).expect("new");
    let calls = std::cell::Cell::new(0);
    let mut out = |_: &[u8]| -> Result<(), CseError> {
        calls.set(calls.get() + 1);
        Ok(())
    };
    dec.push(&body[..44], &mut out).expect("first region");
    dec.push(&body[44..60], &mut out).expect("partial second");
    assert_eq!(calls.get(), 1);
    assert_eq!(dec.next_region(), 1);
    dec.push(&body[60..], &mut out).expect("rest");
    assert_eq!(calls.get(), 3);
}

/// Small blob used by the negative tests: 3 regions of 16 B, 2 full + 1 short.
fn small_blob(scheme: NonceScheme) -> (ContentKey, Vec<u8>, Vec<u8>) {
    let key = ContentKey::from_bytes([0x42; 32]);
    let plain = pattern(40, 9);
    let body = hand_encrypt(&key, 16, &plain, scheme);
    (key, plain, body)
}

#[test]
fn every_flipped_bit_is_refused() {
    for scheme in NonceScheme::ALL {
        let (key, _, body) = small_blob(scheme);
        for byte in 0..body.len() {
            for bit in 0..8 {
                let mut bad = body.clone();
                bad[byte] ^= 1 << bit;
                let err = decrypt(&key, layout(Protocol::V2_1, 16), &bad, 13)
                    .expect_err("flipped bit must be refused");
                assert!(
                    matches!(
                        err,
                        CseError::BadTag { .. } | CseError::RegionOutOfOrder { .. }
                    ),
                    "byte {byte} bit {bit}: {err:?}"
                );
            }
        }
    }
}

#[test]
fn flipped_bit_in_a_large_region_names_it() {
    let key = ContentKey::generate();
    let plain = pattern(2 * MIB4 as usize + 100, 4);
    let (mut body, _) = encrypt(&key, layout(Protocol::V2_0, MIB4), &plain, 1 << 20);
    let second = (MIB4 + 28) as usize;
    body[second + 12 + 1_000_000] ^= 0x10;
    let err = decrypt(&key, layout(Protocol::V2_0, MIB4), &body, 1 << 16).expect_err("refused");
    assert_eq!(err, CseError::BadTag { region: 1 });
}

#[test]
fn plaintext_of_a_bad_region_is_never_emitted() {
    let (key, _, mut body) = small_blob(NonceScheme::Python);
    body[44 + 20] ^= 1;
    let emitted = std::cell::RefCell::new(Vec::new());
    let mut dec = RegionDecryptor::new(&key, layout(Protocol::V2_1, 16)).expect("new");
    let mut out = |t: &[u8]| -> Result<(), CseError> {
        emitted.borrow_mut().push(t.len());
        Ok(())
    };
    assert_eq!(
        dec.push(&body, &mut out),
        Err(CseError::BadTag { region: 1 })
    );
    assert_eq!(
        dec.push(&[], &mut out),
        Err(CseError::AlreadyFailed { region: 1 })
    );
    assert_eq!(*emitted.borrow(), vec![16], "only region 0 was handed out");
}

#[test]
fn swapped_duplicated_or_missing_middle_regions_are_refused() {
    for scheme in NonceScheme::ALL {
        let (key, _, body) = small_blob(scheme);
        let (r0, r1, r2) = (&body[..44], &body[44..88], &body[88..]);
        let swapped = [r1, r0, r2].concat();
        let duplicated = [r0, r0, r1, r2].concat();
        let missing_middle = [r0, r2].concat();
        for (name, bad) in [
            ("swapped", swapped),
            ("duplicated", duplicated),
            ("missing", missing_middle),
        ] {
            let err = decrypt(&key, layout(Protocol::V2_1, 16), &bad, 100).expect_err(name);
            assert!(
                matches!(
                    err,
                    CseError::RegionOutOfOrder { .. } | CseError::BadTag { .. }
                ),
                "{scheme:?} {name}: {err:?}"
            );
        }
        let swapped_full = [r1, r0].concat();
        assert_eq!(
            decrypt(&key, layout(Protocol::V2_1, 16), &swapped_full, 100).map(|_| ()),
            Err(CseError::RegionOutOfOrder { region: 0 }),
            "{scheme:?}"
        );
    }
}

#[test]
fn switching_nonce_scheme_mid_blob_is_refused() {
    let key = ContentKey::generate();
    let plain = pattern(48, 5);
    let java = hand_encrypt(&key, 16, &plain, NonceScheme::Java);
    let python = hand_encrypt(&key, 16, &plain, NonceScheme::Python);
    let mixed = [&java[..88], &python[88..]].concat();
    assert_eq!(
        decrypt(&key, layout(Protocol::V2_1, 16), &mixed, 7).map(|_| ()),
        Err(CseError::RegionOutOfOrder { region: 2 })
    );
}

/// The format cannot detect dropped trailing regions: the reader reports what it produced so the
/// caller compares it with the recorded length.
#[test]
fn missing_last_regions_are_not_detectable_but_length_is_reported() {
    let (key, plain, body) = small_blob(NonceScheme::Python);
    let (prefix, summary) =
        decrypt(&key, layout(Protocol::V2_1, 16), &body[..88], 10).expect("a prefix decrypts");
    assert_eq!(prefix, plain[..32]);
    assert_eq!(summary.plaintext_len, 32);
    assert_ne!(
        summary.plaintext_len,
        plain.len() as u64,
        "caller sees the shortfall"
    );
    let (_, summary) = decrypt(&key, layout(Protocol::V2_1, 16), &[], 10).expect("empty decrypts");
    assert_eq!(summary.plaintext_len, 0);
}

#[test]
fn partial_region_is_refused() {
    let (key, _, body) = small_blob(NonceScheme::Python);
    for cut in 1..body.len() {
        let truncated = &body[..body.len() - cut];
        let result = decrypt(&key, layout(Protocol::V2_1, 16), truncated, 9);
        let tail = truncated.len() % 44;
        match (tail, result) {
            (0, Ok(_)) => {} // whole regions dropped: see the test above
            (1..=28, Err(CseError::PartialRegion { bytes, .. })) => assert_eq!(bytes, tail),
            (_, Err(CseError::BadTag { .. })) if tail > 28 => {}
            (tail, other) => panic!("cut {cut} tail {tail}: {other:?}"),
        }
    }
}

#[test]
fn trailing_garbage_is_refused() {
    let (key, _, body) = small_blob(NonceScheme::Python);
    let aligned = &body[..88];
    for extra in [1usize, 5, 28, 29, 44, 50, 100] {
        for base in [aligned, &body[..]] {
            let bad = [base, &pattern(extra, extra as u64)[..]].concat();
            let err = decrypt(&key, layout(Protocol::V2_1, 16), &bad, 11).expect_err("garbage");
            assert!(
                matches!(
                    err,
                    CseError::PartialRegion { .. }
                        | CseError::BadTag { .. }
                        | CseError::RegionOutOfOrder { .. }
                ),
                "{extra}: {err:?}"
            );
        }
    }
}

#[test]
fn wrong_key_is_refused() {
    let (_, _, body) = small_blob(NonceScheme::Python);
    let other = ContentKey::from_bytes([0x43; 32]);
    assert_eq!(
        decrypt(&other, layout(Protocol::V2_1, 16), &body, 50).map(|_| ()),
        Err(CseError::BadTag { region: 0 })
    );
}

#[test]
fn relabelled_protocol_is_refused_end_to_end() {
    let key = ContentKey::generate();
    // Identity "key-encryption key": what is wrapped is what is unwrapped.
    let wrapped = wrap_payload(Protocol::V2_1, &key);
    let data = EncryptionData::for_upload(
        WrappedContentKey {
            key_id: "https://kv.vault.azure.net/keys/k/v1".to_owned(),
            encrypted_key: wrapped.to_vec(),
            algorithm: "A256KW".to_owned(),
        },
        layout(Protocol::V2_1, 16),
    );
    let relabelled = data
        .to_json()
        .replace("\"Protocol\":\"2.1\"", "\"Protocol\":\"2.0\"");
    let parsed = parse_encryption_data(&relabelled).expect("still well-formed");
    assert_eq!(parsed.layout.protocol, Protocol::V2_0);
    let err = content_key_from_unwrapped(
        parsed.layout.protocol,
        &parsed.wrapped_content_key.encrypted_key,
    )
    .map(|_| ());
    assert_eq!(err, Err(CseError::ProtocolMismatch { protocol: "2.0" }));
}

#[test]
fn resumes_at_a_region_boundary() {
    let key = ContentKey::generate();
    let plain = pattern(200, 11);
    for scheme in NonceScheme::ALL {
        let body = hand_encrypt(&key, 16, &plain, scheme);
        for plain_start in [0u64, 15, 16, 17, 100, 199] {
            let (offset, index) = region_aligned_range(plain_start, 16).expect("in range");
            let dec = RegionDecryptor::new(&key, layout(Protocol::V2_1, 16))
                .expect("new")
                .starting_at_region(index)
                .with_nonce_scheme(scheme);
            let (tail, _) = decrypt_with(dec, &body[offset as usize..], 7).expect("resumed");
            let skip = (plain_start % 16) as usize;
            assert_eq!(
                tail[skip..],
                plain[plain_start as usize..],
                "{scheme:?} {plain_start}"
            );
        }
        let wrong_index = RegionDecryptor::new(&key, layout(Protocol::V2_1, 16))
            .expect("new")
            .starting_at_region(3);
        assert_eq!(
            decrypt_with(wrong_index, &body[44 * 2..], 7).map(|_| ()),
            Err(CseError::RegionOutOfOrder { region: 3 })
        );
    }
    let body = hand_encrypt(&key, 16, &plain, NonceScheme::Java);
    let wrong_scheme = RegionDecryptor::new(&key, layout(Protocol::V2_1, 16))
        .expect("new")
        .starting_at_region(2)
        .with_nonce_scheme(NonceScheme::Python);
    assert_eq!(
        decrypt_with(wrong_scheme, &body[88..], 7).map(|_| ()),
        Err(CseError::RegionOutOfOrder { region: 2 })
    );
}

#[test]
fn sha256_of_decrypted_plaintext_matches_the_writer() {
    let key = ContentKey::generate();
    let plain = pattern(1000, 12);
    let (body, summary) = encrypt(&key, layout(Protocol::V2_1, 64), &plain, 33);
    let dec = RegionDecryptor::new(&key, layout(Protocol::V2_1, 64))
        .expect("new")
        .with_sha256();
    let (_, dsum) = decrypt_with(dec, &body, 100).expect("decrypts");
    assert_eq!(dsum.sha256, Some(summary.sha256));
}

#[test]
fn sink_errors_stop_decryption() {
    #[derive(Debug, PartialEq)]
    enum SinkError {
        Full,
        Cse(CseError),
    }
    impl From<CseError> for SinkError {
        fn from(e: CseError) -> Self {
            SinkError::Cse(e)
        }
    }
    let (key, _, body) = small_blob(NonceScheme::Python);
    let mut dec = RegionDecryptor::new(&key, layout(Protocol::V2_1, 16)).expect("new");
    let mut out = |_: &[u8]| -> Result<(), SinkError> { Err(SinkError::Full) };
    assert_eq!(dec.push(&body, &mut out), Err(SinkError::Full));
    assert_eq!(
        dec.finish(&mut out),
        Err(SinkError::Cse(CseError::AlreadyFailed { region: 0 }))
    );
}

#[test]
fn encryptor_refuses_invalid_layouts() {
    for bad in [
        layout(Protocol::V2_0, 16),
        layout(Protocol::V2_1, 15),
        layout(Protocol::V2_1, (1 << 30) + 1),
    ] {
        assert!(
            RegionEncryptor::with_key(ContentKey::generate(), bad).is_err(),
            "{bad:?}"
        );
    }
    assert_eq!(
        RegionEncryptor::new().layout(),
        layout(Protocol::V2_0, MIB4)
    );
}

#[test]
fn decryptor_refuses_hand_built_absurd_layouts() {
    let key = ContentKey::generate();
    for data_length in [0, (1 << 30) + 1, u64::MAX] {
        assert!(
            matches!(
                RegionDecryptor::new(&key, layout(Protocol::V2_1, data_length)),
                Err(CseError::UnsupportedValue { .. })
            ),
            "{data_length}"
        );
    }
}

fn random_text(rng: &mut StdRng) -> String {
    let alphabet = b"{}[]\":,0123456789.-eE aAbB\\/ntrufl";
    let len = rng.gen_range(0..120);
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

#[test]
fn random_metadata_and_bodies_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let sample = EncryptionData::for_upload(
        WrappedContentKey {
            key_id: "https://kv.vault.azure.net/keys/k/v1".to_owned(),
            encrypted_key: vec![1; 40],
            algorithm: "RSA-OAEP".to_owned(),
        },
        layout(Protocol::V2_1, 16),
    )
    .to_json();
    let key = ContentKey::from_bytes([3; 32]);
    let (valid_body, _) = encrypt(&key, layout(Protocol::V2_1, 32), &pattern(150, 1), 9);
    for round in 0..3000 {
        // Metadata: pure noise, or the sample with a few bytes changed, cut or spliced.
        let json = match round % 3 {
            0 => random_text(&mut rng),
            1 => {
                let mut bytes = sample.clone().into_bytes();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..bytes.len());
                    bytes[at] = rng.gen_range(0x20..0x7f);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => {
                let cut = rng.gen_range(0..sample.len());
                format!("{}{}", &sample[..cut], random_text(&mut rng))
            }
        };
        if let Ok(data) = parse_encryption_data(&json) {
            let _ = key_id_matches(
                "https://kv.vault.azure.net/keys/k",
                &data.wrapped_content_key.key_id,
            );
            let _ = content_key_from_unwrapped(
                data.layout.protocol,
                &data.wrapped_content_key.encrypted_key,
            );
            let _ = data.to_json();
        }
        // Body: noise, or the valid body with flips, cuts and junk, in random chunks.
        let data_length = [16u64, 17, 32, 100, 4096][rng.gen_range(0..5)];
        let mut body = if rng.gen_bool(0.5) {
            pattern(rng.gen_range(0..600), round)
        } else {
            valid_body.clone()
        };
        if !body.is_empty() && rng.gen_bool(0.7) {
            let at = rng.gen_range(0..body.len());
            body[at] ^= 1 << rng.gen_range(0..8);
        }
        if rng.gen_bool(0.3) {
            body.truncate(rng.gen_range(0..=body.len()));
        }
        let chunk = rng.gen_range(1..80);
        let _ = decrypt(&key, layout(Protocol::V2_1, data_length), &body, chunk);
        let _ = ciphertext_len(rng.gen(), rng.gen());
        let _ = plaintext_len(rng.gen(), rng.gen());
        let _ = region_aligned_range(rng.gen(), rng.gen());
    }
}
