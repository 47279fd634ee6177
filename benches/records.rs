//! Criterion micro-benchmarks of the records path: the JSON Lines splitter and the zstd-1 /
//! gzip-1 encoders, over 64 MiB of generated Azure Monitor diagnostic-log lines (~600 B each).
//!
//! The encoders include the plaintext SHA-256 they compute for object metadata; `sha256`
//! measures that part alone.
//!
//! Run: `cargo bench --bench records -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferry::config::Compression;
use ferry::sink::{
    BatchEncoder, EndKind, RecordEncoder, RecordSplitter, SplitEvent, SplitterConfig,
};

/// Size of the generated input.
const INPUT_BYTES: usize = 64 << 20;

/// Chunk size the fetch stage hands to the splitter.
const CHUNK: usize = 4 << 20;

/// Chunk size a download yields in practice (one TLS record's plaintext), for the
/// `pipeline/*` pair.
const TLS_CHUNK: usize = 16 << 10;

/// Block size the uploader drains.
const BLOCK: usize = 8 << 20;

/// Deterministic pseudo-random numbers (xorshift), so runs compare.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// JSON Lines shaped like Key Vault / storage diagnostic logs, about 600 bytes a line.
fn diagnostic_logs(bytes: usize) -> Vec<u8> {
    const OPS: &[&str] = &[
        "VaultGet",
        "SecretGet",
        "KeyUnwrap",
        "Authentication",
        "SecretList",
    ];
    const RESULTS: &[&str] = &["Success", "Unauthorized", "Forbidden", "NotFound"];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(bytes + 1024);
    let mut i = 0u64;
    while out.len() < bytes {
        let r = rng.next();
        let line = format!(
            concat!(
                "{{\"time\":\"2026-11-27T{:02}:{:02}:{:02}.{:07}Z\",",
                "\"resourceId\":\"/SUBSCRIPTIONS/0B1F6471-1BF0-4DDA-AEC3-CB9272F09590/RESOURCEGROUPS/RG-PROD-{}/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV-CONTOSO-{}\",",
                "\"operationName\":\"{}\",\"category\":\"AuditEvent\",",
                "\"resultType\":\"{}\",\"resultSignature\":\"OK\",\"durationMs\":\"{}\",",
                "\"callerIpAddress\":\"10.{}.{}.{}\",\"correlationId\":\"{:016x}-{:08x}\",",
                "\"identity\":{{\"claim\":{{\"oid\":\"{:016x}\",\"appid\":\"dda216bf-0000-0000-0000-{:012x}\"}}}},",
                "\"properties\":{{\"id\":\"https://kv-contoso-{}.vault.azure.net/secrets/app-{}\",\"clientInfo\":\"azsdk-rust-security-keyvault/1.0.1\",\"httpStatusCode\":{}}}}}\n"
            ),
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            r % 10_000_000,
            r % 7,
            r % 13,
            OPS[(r % OPS.len() as u64) as usize],
            RESULTS[((r >> 8) % RESULTS.len() as u64) as usize],
            r % 500,
            (r >> 16) % 256,
            (r >> 24) % 256,
            (r >> 32) % 256,
            rng.next(),
            r as u32,
            rng.next(),
            r >> 16,
            r % 13,
            r % 97,
            200 + (r % 4) * 100,
        );
        out.extend_from_slice(line.as_bytes());
        i += 1;
    }
    out
}

fn split_all(input: &[u8], mut on: impl FnMut(&[u8])) -> u64 {
    let config = SplitterConfig {
        max_record_size: 1 << 20,
        batch_max_bytes: 64 << 20,
        legacy_document_max: 0,
    };
    let mut splitter = RecordSplitter::new(config, 0);
    let mut sink = |ev: SplitEvent<'_>| -> Result<(), std::convert::Infallible> {
        if let SplitEvent::Record { data, .. } = ev {
            on(data);
        }
        Ok(())
    };
    for chunk in input.chunks(CHUNK) {
        let Ok(()) = splitter.push(chunk, &mut sink);
    }
    let Ok(summary) = splitter.finish(EndKind::Immutable, &mut sink);
    summary.stats.records
}

/// Splits `input` in [`TLS_CHUNK`] chunks into one zstd object: with `by_run` through the
/// pipeline's [`BatchEncoder`], otherwise writing every record alone. Returns the encoded
/// length.
fn split_encode(input: &[u8], by_run: bool) -> u64 {
    let config = SplitterConfig {
        max_record_size: 1 << 20,
        batch_max_bytes: 64 << 20,
        legacy_document_max: 0,
    };
    let mut splitter = RecordSplitter::new(config, 0);
    let mut out = 0u64;
    if by_run {
        let mut batches = BatchEncoder::new(Compression::Zstd, None).expect("encoder");
        for chunk in input.chunks(TLS_CHUNK) {
            batches.push(&mut splitter, chunk).expect("write");
            if let Some(block) = batches.take_ready(BLOCK) {
                out += block.len() as u64;
            }
        }
        batches
            .finish(splitter, EndKind::Immutable)
            .expect("finish");
        return out
            + batches
                .take_closed()
                .map(|(_, t)| t.encoded_len)
                .sum::<u64>();
    }
    let mut enc = RecordEncoder::new(Compression::Zstd).expect("encoder");
    let mut on = |ev: SplitEvent<'_>| -> Result<(), ferry::sink::CompressError> {
        if let SplitEvent::Record { data, .. } = ev {
            enc.write_record(data)?;
        }
        Ok(())
    };
    for chunk in input.chunks(TLS_CHUNK) {
        splitter.push(chunk, &mut on).expect("split");
    }
    splitter.finish(EndKind::Immutable, &mut on).expect("split");
    out + enc.finish().expect("finish").encoded_len
}

fn bench(c: &mut Criterion) {
    let input = diagnostic_logs(INPUT_BYTES);
    let lines = input.iter().filter(|&&b| b == b'\n').count();
    eprintln!(
        "input: {} bytes, {} lines, {:.0} bytes per line",
        input.len(),
        lines,
        input.len() as f64 / lines as f64
    );
    let records: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();

    let mut g = c.benchmark_group("records");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("splitter", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let n = split_all(&input, |r| bytes += r.len());
            assert_eq!(n as usize, lines);
            bytes
        })
    });
    for (name, compression) in [("zstd-1", Compression::Zstd), ("gzip-1", Compression::Gzip)] {
        g.bench_with_input(BenchmarkId::new("encoder", name), &records, |b, records| {
            b.iter(|| {
                let mut enc = RecordEncoder::new(compression).expect("encoder");
                let mut out = 0usize;
                for r in records.iter() {
                    enc.write_record(r).expect("write");
                    if let Some(block) = enc.take_ready(BLOCK) {
                        out += block.len();
                    }
                }
                let tail = enc.finish().expect("finish");
                out + tail.tail.len()
            })
        });
    }
    g.bench_function("sha256", |b| {
        use sha2::Digest;
        b.iter(|| sha2::Sha256::digest(&input))
    });
    g.bench_function("splitter+zstd-1", |b| {
        b.iter(|| {
            let mut enc = RecordEncoder::new(Compression::Zstd).expect("encoder");
            let mut out = 0usize;
            split_all(&input, |r| {
                enc.write_record(r).expect("write");
                if let Some(block) = enc.take_ready(BLOCK) {
                    out += block.len();
                }
            });
            out + enc.finish().expect("finish").tail.len()
        })
    });
    // splitter + zstd-1 over download-sized chunks, records written one by one against the
    // pipeline's BatchEncoder (runs of the records lying back to back in a chunk)
    for by_run in [false, true] {
        let name = if by_run { "chunk-runs" } else { "per-record" };
        g.bench_function(BenchmarkId::new("pipeline", name), |b| {
            b.iter(|| split_encode(&input, by_run))
        });
    }
    g.finish();

    // Compression ratios, printed once for the report.
    for compression in [Compression::Zstd, Compression::Gzip] {
        let mut enc = RecordEncoder::new(compression).expect("encoder");
        for r in &records {
            enc.write_record(r).expect("write");
        }
        let tail = enc.finish().expect("finish");
        eprintln!(
            "{compression:?}: {} -> {} bytes (ratio {:.1})",
            tail.plaintext_len,
            tail.encoded_len,
            tail.plaintext_len as f64 / tail.encoded_len as f64
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
