//! CSE v2 throughput: `RegionDecryptor` against raw AES-256-GCM of the same crate (`aes-gcm`
//! 0.10) over the same 4 MiB regions, and `RegionEncryptor` against raw sealing, on 64 MiB.
//!
//! The raw baselines do the least any streaming reader must: HTTP chunks are immutable, so a
//! region is copied into a mutable buffer once and decrypted in place (`raw_in_place`); the
//! allocating `Aead::decrypt` API (`raw_alloc`) is shown too. Run:
//! `cargo bench --bench cse -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use aes_gcm::aead::{Aead as _, AeadInPlace as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferry::cmk::{
    ContentKey, CseError, Protocol, RegionDecryptor, RegionEncryptor, RegionLayout, V2_DATA_LENGTH,
};
use sha2::{Digest as _, Sha256};

const TOTAL: usize = 64 * 1024 * 1024;
const REGION_PLAIN: usize = V2_DATA_LENGTH as usize;
const REGION: usize = REGION_PLAIN + 28;
/// Size of the chunks fed to the streaming code, like HTTP body frames.
const CHUNK: usize = 64 * 1024;

fn layout() -> RegionLayout {
    RegionLayout {
        protocol: Protocol::V2_0,
        data_length: V2_DATA_LENGTH,
    }
}

fn plaintext() -> Vec<u8> {
    (0..TOTAL)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect()
}

fn encrypt_body(key: &ContentKey, plain: &[u8]) -> Vec<u8> {
    let mut enc = RegionEncryptor::with_key(key.clone(), layout()).expect("valid layout");
    let mut body = Vec::with_capacity(plain.len() + plain.len() / REGION_PLAIN * 28 + 28);
    let mut out = |r: &[u8]| -> Result<(), CseError> {
        body.extend_from_slice(r);
        Ok(())
    };
    enc.push(plain, &mut out).expect("encrypt");
    enc.finish(&mut out).expect("finish");
    body
}

fn decryption(c: &mut Criterion) {
    let key = ContentKey::from_bytes([0x5A; 32]);
    let plain = plaintext();
    let body = encrypt_body(&key, &plain);
    assert_eq!(body.len(), TOTAL + TOTAL / REGION_PLAIN * 28);
    let cipher = Aes256Gcm::new(key.expose_secret().into());

    let mut group = c.benchmark_group("cse_v2_decrypt_64MiB");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(10);

    let mut scratch = vec![0u8; REGION_PLAIN];
    group.bench_function("raw_in_place", |b| {
        b.iter(|| {
            for region in body.chunks(REGION) {
                let (nonce, rest) = region.split_at(12);
                let (text, tag) = rest.split_at(rest.len() - 16);
                let buf = &mut scratch[..text.len()];
                buf.copy_from_slice(text);
                cipher
                    .decrypt_in_place_detached(
                        Nonce::from_slice(nonce),
                        b"",
                        buf,
                        Tag::from_slice(tag),
                    )
                    .expect("authentic");
                black_box(&buf[..]);
            }
        })
    });

    group.bench_function("raw_alloc", |b| {
        b.iter(|| {
            for region in body.chunks(REGION) {
                let (nonce, rest) = region.split_at(12);
                let plain = cipher
                    .decrypt(
                        Nonce::from_slice(nonce),
                        Payload {
                            msg: rest,
                            aad: b"",
                        },
                    )
                    .expect("authentic");
                black_box(&plain);
            }
        })
    });

    for (name, chunk) in [
        ("region_decryptor_64KiB_chunks", CHUNK),
        ("region_decryptor_whole_body", body.len()),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut dec = RegionDecryptor::new(&key, layout()).expect("decryptor");
                let mut out = |t: &[u8]| -> Result<(), CseError> {
                    black_box(t);
                    Ok(())
                };
                for piece in body.chunks(chunk) {
                    dec.push(piece, &mut out).expect("authentic");
                }
                let summary = dec.finish(&mut out).expect("finish");
                assert_eq!(summary.plaintext_len, TOTAL as u64);
            })
        });
    }
    group.finish();
}

fn encryption(c: &mut Criterion) {
    let key = ContentKey::from_bytes([0x5A; 32]);
    let plain = plaintext();
    let cipher = Aes256Gcm::new(key.expose_secret().into());

    let mut group = c.benchmark_group("cse_v2_encrypt_64MiB");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.sample_size(10);

    let mut scratch = vec![0u8; REGION_PLAIN];
    group.bench_function("raw_in_place", |b| {
        b.iter(|| {
            for (i, region) in plain.chunks(REGION_PLAIN).enumerate() {
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                let buf = &mut scratch[..region.len()];
                buf.copy_from_slice(region);
                let tag = cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", buf)
                    .expect("seal");
                black_box((&buf[..], tag));
            }
        })
    });

    // RegionEncryptor always hashes the plaintext (the writer records its SHA-256): the fair
    // baseline for it is raw sealing plus SHA-256 of the same bytes.
    group.bench_function("raw_in_place_plus_sha256", |b| {
        b.iter(|| {
            let mut hash = Sha256::new();
            for (i, region) in plain.chunks(REGION_PLAIN).enumerate() {
                let mut nonce = [0u8; 12];
                nonce[4..].copy_from_slice(&(i as u64).to_be_bytes());
                hash.update(region);
                let buf = &mut scratch[..region.len()];
                buf.copy_from_slice(region);
                let tag = cipher
                    .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"", buf)
                    .expect("seal");
                black_box((&buf[..], tag));
            }
            black_box(hash.finalize());
        })
    });

    group.bench_function("region_encryptor_64KiB_chunks", |b| {
        b.iter(|| {
            let mut enc = RegionEncryptor::with_key(key.clone(), layout()).expect("encryptor");
            let mut out = |r: &[u8]| -> Result<(), CseError> {
                black_box(r);
                Ok(())
            };
            for piece in plain.chunks(CHUNK) {
                enc.push(piece, &mut out).expect("seal");
            }
            black_box(enc.finish(&mut out).expect("finish"));
        })
    });
    group.finish();
}

criterion_group!(benches, decryption, encryption);
criterion_main!(benches);
