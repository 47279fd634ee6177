//! Criterion micro-benchmark of the TLS record layer, the largest single CPU cost of a large
//! copy: every shipped byte is decrypted once (from the customer) and encrypted once (to the
//! provider). Both ends of an in-memory rustls TLS 1.3 connection use the provider measured, so
//! each byte moved costs one seal and one open, as it does in Ferry.
//!
//! - `ferry`: `ferry::identity::http::tls_crypto_provider()`, what Ferry's HTTP clients use (aws-lc
//!   handshake, ring record ciphers);
//! - `aws_lc_rs`: rustls's aws-lc-rs provider alone, what Ferry used before.
//!
//! Run: `cargo bench --bench tls_records -- --warm-up-time 1 --measurement-time 3`.

use std::io::{Read, Write};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConnection, ConnectionCommon, RootCertStore, ServerConnection};

/// Bytes moved per iteration: one 8 MiB block, as a large copy stages them.
const BLOCK: usize = 8 << 20;

/// A connected client and server over memory, handshake done.
fn connected(provider: &Arc<CryptoProvider>) -> (ClientConnection, ServerConnection) {
    let cert = rcgen::generate_simple_self_signed(vec!["bench.test".to_string()])
        .expect("self-signed certificate");
    let cert_der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let mut roots = RootCertStore::empty();
    roots.add(cert_der.clone()).expect("root");
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert_der], key)
        .expect("server certificate");
    let mut c = ClientConnection::new(Arc::new(client), "bench.test".try_into().expect("name"))
        .expect("client");
    let mut s = ServerConnection::new(Arc::new(server)).expect("server");
    while c.is_handshaking() || s.is_handshaking() {
        pump(&mut c, &mut s);
    }
    (c, s)
}

/// Moves every pending TLS byte both ways.
fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
    deliver(c, s);
    deliver(s, c);
}

/// Moves every TLS byte `from` has pending into `to`, which processes it.
fn deliver<A, B>(from: &mut ConnectionCommon<A>, to: &mut ConnectionCommon<B>) {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write_tls");
    }
    let mut at = &wire[..];
    while !at.is_empty() {
        to.read_tls(&mut at).expect("read_tls");
        to.process_new_packets().expect("records");
    }
}

/// Sends one block from client to server and reads it back out as plaintext.
fn move_block(c: &mut ClientConnection, s: &mut ServerConnection, block: &[u8], out: &mut [u8]) {
    let mut wire = Vec::with_capacity(BLOCK + BLOCK / 64);
    for piece in block.chunks(64 * 1024) {
        c.writer().write_all(piece).expect("plaintext in");
        while c.wants_write() {
            c.write_tls(&mut wire).expect("client write_tls");
        }
    }
    let mut at = &wire[..];
    let mut got = 0;
    while !at.is_empty() {
        s.read_tls(&mut at).expect("server read_tls");
        s.process_new_packets().expect("server records");
        loop {
            match s.reader().read(&mut out[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("plaintext out: {e}"),
            }
        }
    }
    assert_eq!(got, block.len(), "every byte arrived");
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("tls13_records");
    group.throughput(Throughput::Bytes(BLOCK as u64));
    let providers: [(&str, CryptoProvider); 2] = [
        ("ferry", ferry::identity::http::tls_crypto_provider()),
        ("aws_lc_rs", rustls::crypto::aws_lc_rs::default_provider()),
    ];
    let block: Vec<u8> = (0..BLOCK).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = vec![0u8; BLOCK];
    for (name, provider) in providers {
        let provider = Arc::new(provider);
        let (mut client, mut server) = connected(&provider);
        group.bench_function(BenchmarkId::new("seal_and_open_8MiB", name), |b| {
            b.iter(|| move_block(&mut client, &mut server, &block, &mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, records);
criterion_main!(benches);
