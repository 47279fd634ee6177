//! A 64 MiB blob goes up and down through the storage gateway while the test process (client +
//! in-process sim) stays far below 64 MiB of extra peak memory: the gateway streams, it does not
//! buffer. Alone in its binary so no other test disturbs the peak-RSS reading.

use futures::StreamExt as _;
use sha2::{Digest, Sha256};

use ferry_sim::sandbox::{Sandbox, SandboxOptions};

const SIZE: usize = 64 * 1024 * 1024;
const CHUNK: usize = 256 * 1024;

fn chunk(i: usize) -> Vec<u8> {
    (0..CHUNK).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

/// Peak resident set size of this process, KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status is readable on linux");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/self/status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_blob_streams_through_the_gateway_both_ways() {
    let sandbox = Sandbox::start(SandboxOptions::with_accounts(&["bigacct"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sandbox
        .admin()
        .post("/storage-accounts", serde_json::json!({"name": "bigacct", "tenant_id": "33333333-3333-4333-8333-333333333333"}))
        .await
        .expect("account");
    let seeder = sandbox.seeder("bigacct").await.expect("seeder");
    seeder.create_container("big").await.expect("container");
    let token = sandbox
        .admin()
        .mint_token(
            "33333333-3333-4333-8333-333333333333",
            "https://storage.azure.com",
            "0a0a0a0a-0000-4000-8000-00000000ad01",
            None,
        )
        .await
        .expect("token");
    let url = format!("{}/big/blob.bin", sandbox.blob_endpoint("bigacct"));

    let mut expected = Sha256::new();
    for i in 0..SIZE / CHUNK {
        expected.update(chunk(i));
    }
    let expected = expected.finalize();

    // Reset the peak so only the transfer counts (Linux: "5" clears VmHWM).
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
    let before = peak_rss_kib();

    let body = futures::stream::iter(0..SIZE / CHUNK).map(|i| Ok::<_, std::io::Error>(chunk(i)));
    let put = sandbox
        .http()
        .put(&url)
        .bearer_auth(&token)
        .header("x-ms-version", "2025-01-05")
        .header("x-ms-blob-type", "BlockBlob")
        .header("content-length", SIZE)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("put answered");
    assert_eq!(
        put.status(),
        reqwest::StatusCode::CREATED,
        "{:?}",
        put.text().await
    );

    let get = sandbox
        .http()
        .get(&url)
        .bearer_auth(&token)
        .header("x-ms-version", "2025-01-05")
        .send()
        .await
        .expect("get answered");
    assert_eq!(get.status(), reqwest::StatusCode::OK);
    assert_eq!(get.headers()["content-length"], SIZE.to_string().as_str());
    let mut stream = get.bytes_stream();
    let mut actual = Sha256::new();
    let mut received = 0usize;
    while let Some(piece) = stream.next().await {
        let piece = piece.expect("body chunk");
        received += piece.len();
        actual.update(&piece);
    }
    assert_eq!(received, SIZE);
    assert_eq!(
        actual.finalize(),
        expected,
        "the blob comes back byte for byte"
    );

    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    eprintln!("peak rss grew by {grown_mib} MiB while moving 64 MiB");
    assert!(
        grown_mib < 32,
        "peak memory grew by {grown_mib} MiB moving a 64 MiB blob: something buffers it"
    );
}
