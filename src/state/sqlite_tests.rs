//! Tests of the SQLite store: the shared suite, durability across reopen and crashes, and the
//! operator-facing errors.

use super::*;
use crate::state::conformance;
use std::sync::Arc;

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory (is /tmp writable?)")
}

#[test]
fn versions_and_conflicts() {
    let dir = temp();
    conformance::versions_and_conflicts(&SqliteCheckpointStore::open(dir.path()).unwrap());
}

#[test]
fn paged_listing() {
    let dir = temp();
    conformance::paged_listing(&SqliteCheckpointStore::open(dir.path()).unwrap());
}

#[test]
fn cursors_quarantine_summary_delete() {
    let dir = temp();
    conformance::cursors_quarantine_summary_delete(
        &SqliteCheckpointStore::open(dir.path()).unwrap(),
    );
}

#[test]
fn tenant_stops() {
    let dir = temp();
    conformance::tenant_stops(&SqliteCheckpointStore::open(dir.path()).unwrap());
}

/// A state directory written by a Ferry of schema 1 (before stopped tenants were kept) opens
/// with its checkpoints, cursors and quarantine rows intact, and keeps stops from then on.
#[test]
fn a_schema_1_store_is_migrated_in_place_to_the_newest() {
    let dir = temp();
    {
        let conn = rusqlite::Connection::open(dir.path().join(STATE_FILE_NAME)).unwrap();
        conn.execute_batch(
            "CREATE TABLE ferry_schema (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL,
                 description TEXT NOT NULL);
             INSERT INTO ferry_schema VALUES (1, 0, 'checkpoints, listing cursors, quarantine');",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[0].2).unwrap();
        conn.execute("INSERT INTO listing_cursors VALUES ('t', 's', 'c1', 0)", [])
            .unwrap();
        conn.execute(
            "INSERT INTO checkpoints VALUES ('t', 's', 'b', 3, 'created:x', 70, 'append', 90,
                 2, 0, 1000, NULL)",
            [],
        )
        .unwrap();
    }
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    assert_eq!(store.load_cursor("t", "s").unwrap().as_deref(), Some("c1"));
    // schema 3: the checkpoint is whole, and does not say when its range was seen
    let old = store.load(&ObjectKey::new("t", "s", "b")).unwrap().unwrap();
    assert_eq!(
        (old.version, old.value.offset, old.value.last_shipped_at),
        (3, 70, 1000)
    );
    assert_eq!(old.value.seen_at, None);
    let mut seen = old.value.clone();
    seen.seen_at = Some(990);
    store
        .commit(&ObjectKey::new("t", "s", "b"), Some(3), &seen)
        .unwrap();
    let stop = TenantStop {
        state: "access_denied".into(),
        since: 5,
        behind_since: vec![("s".into(), 4)],
    };
    store.save_tenant_stop("t", &stop).unwrap();
    drop(store);
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    assert_eq!(store.tenant_stop("t").unwrap(), Some(stop));
    let b = store.load(&ObjectKey::new("t", "s", "b")).unwrap().unwrap();
    assert_eq!(b.value.seen_at, Some(990));
    let versions: Vec<i64> = store
        .conn()
        .prepare("SELECT version FROM ferry_schema ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, vec![1, 2, 3]);
}

#[test]
fn grouped_commits_in_one_transaction() {
    let dir = temp();
    conformance::grouped_commits(&SqliteCheckpointStore::open(dir.path()).unwrap(), false);
}

#[test]
fn an_unfinished_checkpoint_transaction_is_rolled_back_and_the_next_one_works() {
    let dir = temp();
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    let key = ObjectKey::new("t", "s", "a");
    let cp = |offset| Checkpoint {
        etag: "\"e\"".into(),
        offset,
        blob_kind: BlobKind::Block,
        size_seen: offset,
        records_shipped: 0,
        rejected_records: 0,
        last_shipped_at: 0,
        seen_at: None,
    };
    {
        let conn = store.conn();
        let tx = CheckpointTransaction::begin(&conn).unwrap();
        assert_eq!(store.write_checkpoint(&tx, &key, None, &cp(7)).unwrap(), 1);
        // an error after the write (a commit that failed, a later row of a group): dropped
    }
    assert!(store.conn().is_autocommit(), "no transaction left open");
    assert_eq!(store.load(&key).unwrap(), None, "the write was rolled back");
    // the cached BEGIN and COMMIT run again: the same write now commits
    assert_eq!(store.commit(&key, None, &cp(7)).unwrap(), 1);
    assert_eq!(store.commit(&key, Some(1), &cp(9)).unwrap(), 2);
    assert_eq!(store.load(&key).unwrap().unwrap().value, cp(9));
}

#[test]
fn concurrent_commits_from_threads() {
    let dir = temp();
    conformance::concurrent_commits(Arc::new(SqliteCheckpointStore::open(dir.path()).unwrap()));
}

#[test]
fn creates_the_directory_and_uses_wal() {
    let dir = temp();
    let state = dir.path().join("nested/state");
    let store = SqliteCheckpointStore::open(&state).unwrap();
    assert_eq!(store.path(), state.join(STATE_FILE_NAME));
    let conn = store.conn();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        sync, 1,
        "synchronous must be NORMAL (durable across process crashes under WAL)"
    );
}

/// The cursor as the database holds it, read past the in-memory copy.
fn cursor_in_database(store: &SqliteCheckpointStore, tenant: &str, source: &str) -> Option<String> {
    store
        .conn()
        .query_row(SELECT_CURSOR, params![tenant, source], |r| r.get(0))
        .optional()
        .unwrap()
}

#[test]
fn cursors_kept_in_memory_always_match_the_database() {
    let dir = temp();
    let long = "r".repeat(CURSOR_CACHED_MAX + 1);
    {
        let store = SqliteCheckpointStore::open(dir.path()).unwrap();
        let check = |tenant: &str, source: &str| {
            let loaded = store.load_cursor(tenant, source).unwrap();
            assert_eq!(loaded, cursor_in_database(&store, tenant, source));
            loaded
        };
        assert_eq!(check("t", "s"), None);
        // an absent cursor is remembered as absent, and a save replaces that
        assert_eq!(store.cursors().get("t", "s"), Some(None));
        store.save_cursor("t", "s", "c1").unwrap();
        assert_eq!(check("t", "s").as_deref(), Some("c1"));
        assert_eq!(store.cursors().get("t", "s"), Some(Some("c1".into())));
        store.save_cursor("t", "s", "c2").unwrap();
        store.save_cursor("t", "other", "o1").unwrap();
        assert_eq!(check("t", "s").as_deref(), Some("c2"));
        // a long cursor is not kept in memory, and still read back whole
        store.save_cursor("t", "s", &long).unwrap();
        assert_eq!(store.cursors().get("t", "s"), None);
        assert_eq!(check("t", "s").as_deref(), Some(long.as_str()));
        assert_eq!(store.cursors().get("t", "s"), None);
        store.save_cursor("t", "s", "c3").unwrap();
        assert_eq!(check("t", "s").as_deref(), Some("c3"));
        // deleting a source forgets its copy, not the other source's
        store.delete_tenant_source("t", "s").unwrap();
        assert_eq!(store.cursors().get("t", "s"), None);
        assert_eq!(check("t", "s"), None);
        assert_eq!(check("t", "other").as_deref(), Some("o1"));
    }
    // what a new process sees is what the database holds
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    assert_eq!(store.cursors().get("t", "other"), None);
    assert_eq!(
        store.load_cursor("t", "other").unwrap().as_deref(),
        Some("o1")
    );
    assert_eq!(store.load_cursor("t", "s").unwrap(), None);
}

#[test]
fn reopen_after_drop_keeps_data() {
    let dir = temp();
    let key = ObjectKey::new("t", "s", "o");
    {
        let store = SqliteCheckpointStore::open(dir.path()).unwrap();
        store.commit(&key, None, &conformance::cp(42)).unwrap();
        store.save_cursor("t", "s", "c1").unwrap();
        store.quarantine("t", "s", "q", "e", "r").unwrap();
    }
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    let got = store.load(&key).unwrap().unwrap();
    assert_eq!((got.version, got.value), (1, conformance::cp(42)));
    assert_eq!(store.load_cursor("t", "s").unwrap().as_deref(), Some("c1"));
    assert_eq!(store.quarantined("t", "s").unwrap().len(), 1);
    // Reopening again does not re-run migrations.
    drop(store);
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    let n: i64 = store
        .conn()
        .query_row("SELECT COUNT(*) FROM ferry_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, i64::from(SCHEMA_VERSION));
}

/// Environment variable that turns this test binary into the crashing child.
const CRASH_CHILD_ENV: &str = "FERRY_STATE_CRASH_CHILD_DIR";

/// Runs in two roles: as a child (env set) it commits 200 times then aborts without any
/// cleanup (the WAL is never checkpointed into the main file, the lock dies with the process);
/// as the parent it spawns that child, then checks every commit survived.
#[test]
fn abort_after_commits_loses_nothing() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        let store = SqliteCheckpointStore::open(std::path::Path::new(&dir)).unwrap();
        let key = ObjectKey::new("t", "s", "o");
        let mut version = None;
        for i in 1..=200u64 {
            version = Some(store.commit(&key, version, &conformance::cp(i)).unwrap());
        }
        std::process::abort();
    }
    let dir = temp();
    let exe = std::env::current_exe().unwrap();
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "state::sqlite::tests::abort_after_commits_loses_nothing",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted");
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    let got = store.load(&ObjectKey::new("t", "s", "o")).unwrap().unwrap();
    assert_eq!((got.version, got.value.offset), (200, 200));
}

#[test]
fn newer_schema_is_refused_with_the_fix() {
    let dir = temp();
    drop(SqliteCheckpointStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join(STATE_FILE_NAME)).unwrap();
    conn.execute(
        "INSERT INTO ferry_schema (version, applied_at, description) VALUES (99, 0, 'future')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteCheckpointStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StateError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("was written by a newer ferry (schema 99)"),
        "{msg}"
    );
    assert!(
        msg.contains("upgrade ferry or point state_dir elsewhere"),
        "{msg}"
    );
}

#[test]
fn garbage_file_is_reported_corrupt() {
    let dir = temp();
    std::fs::write(dir.path().join(STATE_FILE_NAME), vec![0x5a; 8192]).unwrap();
    let err = SqliteCheckpointStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains(STATE_FILE_NAME), "{err}");
}

#[test]
fn foreign_sqlite_database_is_refused() {
    let dir = temp();
    let conn = rusqlite::Connection::open(dir.path().join(STATE_FILE_NAME)).unwrap();
    conn.execute_batch("CREATE TABLE other (x INTEGER)")
        .unwrap();
    drop(conn);
    let err = SqliteCheckpointStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
}

#[test]
fn state_dir_that_is_a_file_is_not_writable() {
    let dir = temp();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteCheckpointStore::open(&file).unwrap_err();
    assert!(matches!(err, StateError::NotWritable { .. }), "{err}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[test]
fn offsets_above_i64_are_refused_not_wrapped() {
    let dir = temp();
    let store = SqliteCheckpointStore::open(dir.path()).unwrap();
    let err = store
        .commit(
            &ObjectKey::new("t", "s", "o"),
            None,
            &conformance::cp(u64::MAX - 20),
        )
        .unwrap_err();
    assert!(
        matches!(err, StateError::OutOfRange { what: "offset", .. }),
        "{err}"
    );
}

#[test]
fn a_second_holder_of_the_state_dir_is_refused_until_the_first_lets_go() {
    let dir = temp();
    let first = SqliteCheckpointStore::open(dir.path()).unwrap();
    let key = ObjectKey::new("t", "s", "o");
    first.commit(&key, None, &conformance::cp(10)).unwrap();
    let started = std::time::Instant::now();
    let err =
        SqliteCheckpointStore::open_waiting(dir.path(), Duration::from_millis(200)).unwrap_err();
    assert!(
        matches!(&err, StateError::InUse { dir: d, .. } if d == dir.path()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("agent.state_dir"), "{message}");
    assert!(
        message.contains(&format!("(pid {})", std::process::id())),
        "names the holder: {message}"
    );
    // the database itself stays readable by others (sqlite3 .backup while Ferry runs)
    let reader = rusqlite::Connection::open(dir.path().join(STATE_FILE_NAME)).unwrap();
    let n: i64 = reader
        .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
    drop(reader);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "it waited for the holder"
    );
    // the holder still commits, and its successor sees everything it committed
    first.commit(&key, Some(1), &conformance::cp(20)).unwrap();
    drop(first);
    let next = SqliteCheckpointStore::open(dir.path()).unwrap();
    let got = next.load(&key).unwrap().unwrap();
    assert_eq!((got.version, got.value.offset), (2, 20));
}
