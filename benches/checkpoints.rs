//! Criterion micro-benchmarks of checkpoint commits in the SQLite store: the cost Ferry pays
//! once per shipped object, which on small blobs is a tenth of its CPU (docs/BENCHMARKS.md).
//!
//! - `sqlite_commit`: one `commit` of a new object's checkpoint (one transaction), as the
//!   fallback path does;
//! - `committer_commit`: the same through `CheckpointCommitter` from an async task, as the
//!   pipeline does: hand-off to the commit thread, the transaction, the reply.
//!
//! Run: `cargo bench --bench checkpoints -- --warm-up-time 1 --measurement-time 3`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use ferry::state::{
    BlobKind, Checkpoint, CheckpointCommitter, CheckpointStore, CommitRequest, ObjectKey,
    SqliteCheckpointStore,
};

/// A checkpoint as copy mode writes it after shipping a 64 KiB blob.
fn shipped(offset: u64) -> Checkpoint {
    Checkpoint {
        etag: "\"0x8DD0F1E2A3B4C5D\"".into(),
        offset,
        blob_kind: BlobKind::Block,
        size_seen: offset,
        records_shipped: 0,
        rejected_records: 0,
        last_shipped_at: 1_795_000_000,
        seen_at: None,
    }
}

/// Blob names shaped like an Azure Monitor archive, one per shipped object.
fn object(i: u64) -> ObjectKey {
    ObjectKey::new(
        "contoso",
        "audit",
        format!(
            "resourceId=/SUBSCRIPTIONS/0000/RESOURCEGROUPS/RG/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV{}/y=2026/m=11/d=27/h={:02}/m=00/PT1H.json",
            i / 24,
            i % 24
        ),
    )
}

fn commits(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory (is /tmp writable?)");
    let store = Arc::new(SqliteCheckpointStore::open(dir.path()).expect("open the store"));
    let mut group = c.benchmark_group("checkpoints");

    let mut i = 0u64;
    group.bench_function("sqlite_commit", |b| {
        b.iter(|| {
            i += 1;
            store
                .commit(&object(i), None, &shipped(65_536))
                .expect("commit")
        })
    });

    let committer = CheckpointCommitter::start(store.clone()).expect("start the committer");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    group.bench_function("committer_commit", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(committer.commit(CommitRequest {
                key: object(i),
                expected_version: None,
                checkpoint: shipped(65_536),
            }))
            .expect("commit")
        })
    });
    group.finish();
}

criterion_group!(benches, commits);
criterion_main!(benches);
