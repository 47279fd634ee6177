//! The cost of Key Vault unwrap calls per blob, with and without the content-key cache
//! (sandbox + `ferry run --once`): 200 small encrypted blobs, each with its own content key or
//! all sharing one wrapped key, at `content_key_ttl` 0 and 5 min. Unwraps are counted from
//! Ferry's debug log ("Content key unwrapped through Key Vault"); times are wall clock of the
//! whole run. Prints the figures for docs/BENCHMARKS.md.

mod cmk_support;
mod common;

use std::time::Instant;

use cmk_support::{bytes, key_url, seal, upload, Nonces};
use common::{world, SourceSpec};

const BLOBS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwrap_calls_per_blob_with_and_without_the_cache() {
    let w = world(1).await;
    let mut figures = Vec::new();
    for (shared, container) in [(false, "distinct-keys"), (true, "shared-key")] {
        w.grant("contoso", container, "Storage Blob Data Reader")
            .await;
        let one = seal(&w, "contoso", &bytes(2048, 1), "2.1", 1024, Nonces::Python).await;
        for i in 0..BLOBS {
            let s = if shared {
                // the same content key and wrapped key for every blob (one writer session)
                cmk_support::Sealed {
                    body: one.body.clone(),
                    encryption_data: one.encryption_data.clone(),
                    data_length: one.data_length,
                }
            } else {
                seal(
                    &w,
                    "contoso",
                    &bytes(2048, i as u8),
                    "2.1",
                    1024,
                    Nonces::Python,
                )
                .await
            };
            upload(
                &w,
                "contoso",
                container,
                &format!("b-{i:04}"),
                &s.body,
                Some(&s.encryption_data),
                &[],
                1,
            )
            .await;
        }
        for ttl in ["0s", "5m"] {
            let name = format!("{}-{}", container, ttl.trim_end_matches(['s', 'm']));
            let mut src = SourceSpec::copy(&name, container);
            src.extra = format!(
                "  decrypt = {{ key = \"{}\", content_key_ttl = \"{ttl}\" }}\n",
                key_url("contoso")
            );
            let cfg = w.config(&[("contoso", vec![src])], "");
            let t = Instant::now();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
                .args(["run", "--once", "-c", cfg.to_str().unwrap()])
                .env(
                    "FERRY_LOG",
                    "debug,hyper=info,reqwest=info,rustls=info,h2=info",
                )
                .output()
                .expect("run ferry");
            let secs = t.elapsed().as_secs_f64();
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}", common::output_text(&out));
            let unwraps = log
                .matches("Content key unwrapped through Key Vault")
                .count();
            let expected = match (shared, ttl) {
                (false, _) | (true, "0s") => BLOBS,
                (true, _) => 1,
            };
            // with concurrent workers a few blobs sharing a key may miss the cache together
            assert!(
                unwraps >= expected && unwraps <= expected + 8,
                "{container} ttl {ttl}: {unwraps} unwraps, expected about {expected}"
            );
            figures.push((container, ttl, unwraps, secs));
        }
    }
    for (container, ttl, unwraps, secs) in figures {
        println!(
            "| {container} | {ttl} | {unwraps} | {:.2} | {:.1} |",
            unwraps as f64 / BLOBS as f64,
            secs * 1000.0 / BLOBS as f64
        );
    }
}
