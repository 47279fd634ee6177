//! One behavioural suite run against every [`CheckpointStore`]: the memory store must behave
//! like the SQLite store so tests written against it stay true in production.

use super::*;

pub(crate) fn cp(offset: u64) -> Checkpoint {
    Checkpoint {
        etag: "\"0x8DC0001\"".to_string(),
        offset,
        blob_kind: BlobKind::Append,
        size_seen: offset + 10,
        records_shipped: offset / 100,
        rejected_records: 1,
        last_shipped_at: 1_790_000_000,
        seen_at: Some(1_789_999_990),
    }
}

/// Versions start at 1, advance by one, and a stale or missing expectation conflicts.
pub(crate) fn versions_and_conflicts(store: &dyn CheckpointStore) {
    let key = ObjectKey::new("contoso", "audit", "a/PT1H.json");
    assert_eq!(store.load(&key).unwrap(), None);
    assert!(store
        .commit(&key, Some(1), &cp(1))
        .unwrap_err()
        .is_conflict());
    assert_eq!(store.commit(&key, None, &cp(100)).unwrap(), 1);
    let err = store.commit(&key, None, &cp(200)).unwrap_err();
    match err {
        StateError::Conflict {
            expected, found, ..
        } => assert_eq!((expected, found), (None, Some(1))),
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(store.commit(&key, Some(1), &cp(200)).unwrap(), 2);
    assert!(store
        .commit(&key, Some(1), &cp(300))
        .unwrap_err()
        .is_conflict());
    let got = store.load(&key).unwrap().unwrap();
    assert_eq!(got.version, 2);
    assert_eq!(got.value, cp(200));
    // Same object name in another tenant or source is another checkpoint.
    let other = ObjectKey::new("fabrikam", "audit", "a/PT1H.json");
    assert_eq!(store.load(&other).unwrap(), None);
    assert_eq!(store.commit(&other, None, &cp(5)).unwrap(), 1);
}

/// Paging visits every checkpoint of one source once, in name order, and no other source's.
pub(crate) fn paged_listing(store: &dyn CheckpointStore) {
    for i in 0..25u64 {
        let key = ObjectKey::new("t", "s", format!("obj-{i:03}"));
        store.commit(&key, None, &cp(i)).unwrap();
    }
    store
        .commit(&ObjectKey::new("t", "s2", "obj-x"), None, &cp(1))
        .unwrap();
    store
        .commit(&ObjectKey::new("t2", "s", "obj-y"), None, &cp(1))
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list("t", "s", after.as_deref(), 10).unwrap();
        assert!(page.entries.len() <= 10);
        pages += 1;
        seen.extend(page.entries.into_iter().map(|(k, v)| (k, v.value.offset)));
        match page.next_after {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<(String, u64)> = (0..25u64).map(|i| (format!("obj-{i:03}"), i)).collect();
    assert_eq!(seen, expected);
    assert!(store
        .list("nobody", "s", None, 10)
        .unwrap()
        .entries
        .is_empty());
    // Exactly `limit` entries left: no phantom next page.
    let page = store.list("t", "s", Some("obj-014"), 10).unwrap();
    assert_eq!(page.entries.len(), 10);
    assert_eq!(page.next_after, None);
}

/// Cursors, quarantine, summary and deletion of a (tenant, source).
pub(crate) fn cursors_quarantine_summary_delete(store: &dyn CheckpointStore) {
    assert_eq!(store.load_cursor("t", "s").unwrap(), None);
    store.save_cursor("t", "s", "y=2026/m=11/d=26").unwrap();
    store.save_cursor("t", "s", "y=2026/m=11/d=27").unwrap();
    assert_eq!(
        store.load_cursor("t", "s").unwrap().as_deref(),
        Some("y=2026/m=11/d=27")
    );
    assert_eq!(store.load_cursor("t", "other").unwrap(), None);

    store
        .quarantine("t", "s", "b/x", "\"e1\"", "cse: unknown key")
        .unwrap();
    store
        .quarantine("t", "s", "a/y", "\"e2\"", "bad header")
        .unwrap();
    store
        .quarantine("t", "s", "b/x", "\"e3\"", "again")
        .unwrap();
    let q = store.quarantined("t", "s").unwrap();
    assert_eq!(
        q.iter()
            .map(|e| (e.object.as_str(), e.etag.as_str()))
            .collect::<Vec<_>>(),
        vec![("a/y", "\"e2\""), ("b/x", "\"e3\"")]
    );
    assert!(store.release("t", "s", "a/y").unwrap());
    assert!(!store.release("t", "s", "a/y").unwrap());
    assert_eq!(store.quarantined("t", "s").unwrap().len(), 1);

    assert_eq!(store.summary("t", "s").unwrap(), SourceSummary::default());
    let mut a = cp(100);
    a.seen_at = None;
    a.last_shipped_at = 50;
    store
        .commit(&ObjectKey::new("t", "s", "a"), None, &a)
        .unwrap();
    let mut b = cp(1000);
    b.rejected_records = 3;
    b.size_seen = 900; // smaller than offset: counts as nothing pending
    store
        .commit(&ObjectKey::new("t", "s", "b"), None, &b)
        .unwrap();
    let s = store.summary("t", "s").unwrap();
    assert_eq!(s.objects, 2);
    assert_eq!(s.records_shipped, 1 + 10);
    assert_eq!(s.rejected_records, 4);
    assert_eq!(store.rejected_count("t", "s").unwrap(), 4);
    assert_eq!(s.bytes_pending, 10);
    assert_eq!(s.last_shipped_at, Some(1_790_000_000));

    store
        .commit(&ObjectKey::new("t", "keep", "a"), None, &a)
        .unwrap();
    assert_eq!(store.delete_tenant_source("t", "s").unwrap(), 2);
    assert_eq!(store.load(&ObjectKey::new("t", "s", "a")).unwrap(), None);
    assert_eq!(store.load_cursor("t", "s").unwrap(), None);
    assert!(store.quarantined("t", "s").unwrap().is_empty());
    assert!(store
        .load(&ObjectKey::new("t", "keep", "a"))
        .unwrap()
        .is_some());
}

/// Many threads race to advance one checkpoint: every successful commit is exactly one step.
pub(crate) fn concurrent_commits(store: std::sync::Arc<dyn CheckpointStore>) {
    let key = ObjectKey::new("t", "s", "hot");
    let threads = 8;
    let steps_per_thread = 25;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let store = store.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                let mut won = 0u64;
                while won < steps_per_thread {
                    let cur = store.load(&key).unwrap();
                    let (expected, offset) = match &cur {
                        Some(v) => (Some(v.version), v.value.offset),
                        None => (None, 0),
                    };
                    match store.commit(&key, expected, &cp(offset + 1)) {
                        Ok(_) => won += 1,
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("unexpected error: {e}"),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let end = store.load(&key).unwrap().unwrap();
    let total = threads * steps_per_thread;
    assert_eq!(end.version, total);
    assert_eq!(end.value.offset, total, "a lost update would leave a gap");
}

/// A group of commits: each request gets what `commit` alone would give it, in order; a conflict
/// or an out-of-range value fails only its own request; the same object twice applies in order.
/// `holds_any_u64`: the store keeps offsets above `i64::MAX` (memory) or refuses them (SQLite).
pub(crate) fn grouped_commits(store: &dyn CheckpointStore, holds_any_u64: bool) {
    let key = |o: &str| ObjectKey::new("t", "s", o);
    store.commit(&key("b"), None, &cp(1)).unwrap();
    let req = |o: &str, expected: Option<u64>, c: Checkpoint| CommitRequest {
        key: key(o),
        expected_version: expected,
        checkpoint: c,
    };
    let huge = Checkpoint {
        offset: u64::MAX - 20,
        ..cp(0)
    };
    let out = store.commit_many(&[
        req("a", None, cp(10)),
        req("b", None, cp(20)), // stale: b is at version 1
        req("c", None, cp(30)),
        req("c", Some(1), cp(31)),
        req("d", None, huge),
    ]);
    assert_eq!(out.len(), 5);
    assert_eq!(out[0].as_ref().unwrap(), &1);
    assert!(out[1].as_ref().unwrap_err().is_conflict());
    assert_eq!(out[2].as_ref().unwrap(), &1);
    assert_eq!(out[3].as_ref().unwrap(), &2);
    // refused for this request only: the others of the group are committed
    match &out[4] {
        Ok(v) => assert!(holds_any_u64 && *v == 1),
        Err(e) => assert!(
            !holds_any_u64 && matches!(e, StateError::OutOfRange { .. }),
            "{e}"
        ),
    }
    assert_eq!(store.load(&key("a")).unwrap().unwrap().value, cp(10));
    assert_eq!(store.load(&key("b")).unwrap().unwrap().value, cp(1));
    let c = store.load(&key("c")).unwrap().unwrap();
    assert_eq!((c.version, c.value), (2, cp(31)));
    assert!(store.commit_many(&[]).is_empty());
}

/// A tenant's stop is saved whole, replaced whole, read back with its sources in name order,
/// loses a deleted source, and is gone once cleared; other tenants are untouched.
pub(crate) fn tenant_stops(store: &dyn CheckpointStore) {
    assert_eq!(store.tenant_stop("contoso").unwrap(), None);
    let stop = TenantStop {
        state: "access_denied".into(),
        since: 1_790_000_500,
        behind_since: vec![
            ("signins".into(), 1_790_000_400),
            ("audit".into(), 1_790_000_300),
        ],
    };
    store.save_tenant_stop("contoso", &stop).unwrap();
    store
        .save_tenant_stop(
            "fabrikam",
            &TenantStop {
                state: "key_revoked".into(),
                since: 1,
                behind_since: vec![],
            },
        )
        .unwrap();
    let got = store.tenant_stop("contoso").unwrap().unwrap();
    assert_eq!(
        (got.state.as_str(), got.since),
        ("access_denied", 1_790_000_500)
    );
    assert_eq!(
        got.behind_since,
        vec![
            ("audit".to_string(), 1_790_000_300),
            ("signins".to_string(), 1_790_000_400)
        ]
    );
    // a later stop replaces the earlier one, sources included; a source named twice keeps its
    // earliest time
    let later = TenantStop {
        state: "consent_revoked".into(),
        since: 1_790_000_900,
        behind_since: vec![
            ("audit".into(), 1_790_000_700),
            ("audit".into(), 1_790_000_600),
        ],
    };
    store.save_tenant_stop("contoso", &later).unwrap();
    let got = store.tenant_stop("contoso").unwrap().unwrap();
    assert_eq!(
        (got.state.as_str(), got.since),
        ("consent_revoked", 1_790_000_900)
    );
    assert_eq!(got.behind_since, vec![("audit".to_string(), 1_790_000_600)]);
    // deleting a source's state forgets its time, not the tenant's stop
    store.delete_tenant_source("contoso", "audit").unwrap();
    let got = store.tenant_stop("contoso").unwrap().unwrap();
    assert_eq!((got.since, got.behind_since.len()), (1_790_000_900, 0));
    store.clear_tenant_stop("contoso").unwrap();
    assert_eq!(store.tenant_stop("contoso").unwrap(), None);
    store.clear_tenant_stop("contoso").unwrap();
    assert_eq!(
        store.tenant_stop("fabrikam").unwrap().unwrap().state,
        "key_revoked"
    );
}

#[test]
fn memory_store_tenant_stops() {
    tenant_stops(&MemoryCheckpointStore::new());
}

#[test]
fn memory_store_grouped_commits() {
    grouped_commits(&MemoryCheckpointStore::new(), true);
}

#[test]
fn memory_store_versions_and_conflicts() {
    versions_and_conflicts(&MemoryCheckpointStore::new());
}

#[test]
fn memory_store_paged_listing() {
    paged_listing(&MemoryCheckpointStore::new());
}

#[test]
fn memory_store_cursors_quarantine_summary_delete() {
    cursors_quarantine_summary_delete(&MemoryCheckpointStore::new());
}

#[test]
fn memory_store_concurrent_commits() {
    concurrent_commits(std::sync::Arc::new(MemoryCheckpointStore::new()));
}
