//! [`SqliteCheckpointStore`]: the embedded default store, one file `ferry.sqlite3` in
//! `agent.state_dir`, WAL journal with `synchronous=NORMAL`: a commit that returned survives a
//! crash or SIGKILL of the process; only an OS crash or power cut can lose the last commits, and
//! then Ferry re-ships from the older checkpoint into the same deterministic object names, so
//! nothing is duplicated. (FULL cost 17 % of Ferry's CPU on small blobs, in fsync: BENCHMARKS.md.)
//!
//! Owns the schema and its migrations (`ferry_schema` table), and the state directory's
//! `ferry.lock`, held for the store's life so that one process at a time uses the directory,
//! and an in-memory copy of the listing cursors (which that lock makes safe). Must not: hold
//! the connection's mutex across anything but one short SQL transaction. Methods block; call
//! them from a blocking thread (the `CheckpointCommitter`, `spawn_blocking`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};

use super::{
    commit_each, BlobKind, Checkpoint, CheckpointPage, CheckpointStore, CommitRequest, ObjectKey,
    QuarantineEntry, SourceSummary, StateError, TenantStop, Versioned,
};

/// File name of the state database inside `agent.state_dir`.
pub const STATE_FILE_NAME: &str = "ferry.sqlite3";

/// Highest schema version this Ferry writes and understands.
pub const SCHEMA_VERSION: u32 = 3;

/// Migrations, in order: (version reached, description, SQL).
const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "checkpoints, listing cursors, quarantine",
        "CREATE TABLE checkpoints (
        tenant TEXT NOT NULL,
        source TEXT NOT NULL,
        object TEXT NOT NULL,
        version INTEGER NOT NULL,
        etag TEXT NOT NULL,
        byte_offset INTEGER NOT NULL,
        blob_kind TEXT NOT NULL,
        size_seen INTEGER NOT NULL,
        records_shipped INTEGER NOT NULL,
        rejected_records INTEGER NOT NULL,
        last_shipped_at INTEGER NOT NULL,
        first_unshipped_at INTEGER,
        PRIMARY KEY (tenant, source, object)
     ) WITHOUT ROWID;
     CREATE TABLE listing_cursors (
        tenant TEXT NOT NULL,
        source TEXT NOT NULL,
        cursor TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, source)
     ) WITHOUT ROWID;
     CREATE TABLE quarantine (
        tenant TEXT NOT NULL,
        source TEXT NOT NULL,
        object TEXT NOT NULL,
        etag TEXT NOT NULL,
        reason TEXT NOT NULL,
        quarantined_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, source, object)
     ) WITHOUT ROWID;",
    ),
    (
        2,
        "stopped tenants",
        "CREATE TABLE tenant_stops (
        tenant TEXT NOT NULL PRIMARY KEY,
        state TEXT NOT NULL,
        since INTEGER NOT NULL,
        saved_at INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE tenant_stop_sources (
        tenant TEXT NOT NULL,
        source TEXT NOT NULL,
        behind_since INTEGER NOT NULL,
        PRIMARY KEY (tenant, source)
     ) WITHOUT ROWID;",
    ),
    (
        3,
        "when each checkpoint's range was seen",
        // the column it replaces was never written (always NULL)
        "ALTER TABLE checkpoints RENAME COLUMN first_unshipped_at TO seen_at;",
    ),
];

/// How long opening waits for another process to let go of the state directory (a predecessor
/// still exiting) before refusing with [`StateError::InUse`].
const OWNER_WAIT: Duration = Duration::from_secs(10);

/// The file in the state directory whose lock says which process owns it; it holds that
/// process's id.
pub const LOCK_FILE_NAME: &str = "ferry.lock";

/// Takes the state directory for this process: an exclusive lock on [`LOCK_FILE_NAME`], waited
/// for at most `wait`. Two Ferry processes on one state directory would each ship everything
/// the other ships and fight over every checkpoint; the second is refused instead. A lock file
/// rather than SQLite's own exclusive locking, so that `sqlite3 .backup` still reads the
/// database while Ferry runs.
fn own_state_dir(state_dir: &Path, wait: Duration) -> Result<std::fs::File, StateError> {
    use std::io::{Read, Seek, Write};
    let path = state_dir.join(LOCK_FILE_NAME);
    let not_writable = |e: std::io::Error| StateError::NotWritable {
        dir: state_dir.to_path_buf(),
        detail: format!("{}: {e}", path.display()),
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(not_writable)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StateError::InUse {
                    dir: state_dir.to_path_buf(),
                    holder: (!holder.is_empty()).then(|| format!("pid {holder}")),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(not_writable(e)),
        }
    }
    // who owns it, for the next one's error message
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .map_err(not_writable)?;
    Ok(file)
}

/// Columns of a checkpoint row, in the order [`read_checkpoint`] expects.
const CP_COLUMNS: &str = "object, version, etag, byte_offset, blob_kind, size_seen, \
     records_shipped, rejected_records, last_shipped_at, seen_at";

/// Listing cursors kept in memory after their first read or write. Every pass of every source
/// starts by reading its cursor; from SQLite that is a read transaction, whose `fcntl` locking of
/// the WAL index cost about a tenth of an idle daemon's CPU (`docs/BENCHMARKS.md`, "Idle
/// polls"). Nothing else writes cursors while this store is open: the process owns the state
/// directory ([`LOCK_FILE_NAME`]). The database stays the record; this is only a copy of it.
#[derive(Debug, Default)]
struct CursorCache {
    /// tenant -> source -> cursor.
    by_tenant: HashMap<String, HashMap<String, Option<String>>>,
}

/// Cursors longer than this are read from the database each time instead of being kept. A
/// date-partitioned cursor grows with the resources of its container (about 170 bytes per
/// root), so this keeps those of up to about 90 resources: at most 16 MiB for a thousand
/// sources. A source with more makes that many List Blobs calls per pass, next to which one
/// read of its cursor is small.
const CURSOR_CACHED_MAX: usize = 16 << 10;

/// Reads one listing cursor (`?1` tenant, `?2` source).
const SELECT_CURSOR: &str = "SELECT cursor FROM listing_cursors WHERE tenant = ?1 AND source = ?2";

impl CursorCache {
    fn get(&self, tenant: &str, source: &str) -> Option<Option<String>> {
        self.by_tenant.get(tenant)?.get(source).cloned()
    }

    fn put(&mut self, tenant: &str, source: &str, cursor: Option<&str>) {
        if cursor.is_some_and(|c| c.len() > CURSOR_CACHED_MAX) {
            self.forget(tenant, source);
            return;
        }
        self.by_tenant
            .entry(tenant.to_string())
            .or_default()
            .insert(source.to_string(), cursor.map(str::to_string));
    }

    fn forget(&mut self, tenant: &str, source: &str) {
        if let Some(sources) = self.by_tenant.get_mut(tenant) {
            sources.remove(source);
            if sources.is_empty() {
                self.by_tenant.remove(tenant);
            }
        }
    }
}

/// Checkpoint store in one SQLite file; `Send + Sync`, one connection behind a mutex.
#[derive(Debug)]
pub struct SqliteCheckpointStore {
    /// The database file (for error messages).
    path: PathBuf,
    /// The one connection; every method holds it for one short transaction.
    conn: Mutex<Connection>,
    /// Listing cursors as last read or written, by tenant and source (`None`: there is none).
    cursors: Mutex<CursorCache>,
    /// The locked [`LOCK_FILE_NAME`]: this process owns the state directory until the store is
    /// dropped or the process ends (the kernel releases the lock even after SIGKILL).
    _owner: std::fs::File,
}

impl SqliteCheckpointStore {
    /// Opens (creating when absent) `state_dir/ferry.sqlite3`, switches it to WAL with
    /// `synchronous=NORMAL` and applies pending migrations.
    ///
    /// Fails with [`StateError::NotWritable`] when the directory cannot be created or written,
    /// [`StateError::Corrupt`] when the file is damaged or not Ferry's, and
    /// [`StateError::NewerSchema`] when a newer Ferry wrote it, and [`StateError::InUse`] when
    /// another process still owns the directory after [`OWNER_WAIT`].
    pub fn open(state_dir: &Path) -> Result<Self, StateError> {
        Self::open_waiting(state_dir, OWNER_WAIT)
    }

    /// [`Self::open`], waiting at most `wait` for another owner of the directory to let go.
    fn open_waiting(state_dir: &Path, wait: Duration) -> Result<Self, StateError> {
        let not_writable = |detail: String| StateError::NotWritable {
            dir: state_dir.to_path_buf(),
            detail,
        };
        std::fs::create_dir_all(state_dir).map_err(|e| not_writable(e.to_string()))?;
        let probe = state_dir.join(".ferry-write-probe");
        std::fs::write(&probe, b"probe").map_err(|e| not_writable(e.to_string()))?;
        std::fs::remove_file(&probe).map_err(|e| not_writable(e.to_string()))?;
        let owner = own_state_dir(state_dir, wait)?;

        let path = state_dir.join(STATE_FILE_NAME);
        let conn = Connection::open(&path).map_err(|e| match e.sqlite_error_code() {
            Some(ErrorCode::CannotOpen) | Some(ErrorCode::ReadOnly) => not_writable(e.to_string()),
            _ => map_err(&path, "open", e),
        })?;
        let store = SqliteCheckpointStore {
            path,
            conn: Mutex::new(conn),
            cursors: Mutex::new(CursorCache::default()),
            _owner: owner,
        };
        store.configure(state_dir)?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection; a poisoned lock is recovered because an unfinished transaction was
    /// rolled back when its guard dropped during the panic.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The in-memory copy of the listing cursors: taken alone, or while holding the connection;
    /// never take the connection while holding it.
    fn cursors(&self) -> MutexGuard<'_, CursorCache> {
        self.cursors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Maps a SQLite error for `op` on this store.
    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        move |e| map_err(&self.path, op, e)
    }

    /// Journal mode, durability and migrations.
    fn configure(&self, state_dir: &Path) -> Result<(), StateError> {
        let mut conn = self.conn();
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(self.err("configure"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(self.err("enable WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StateError::NotWritable {
                dir: state_dir.to_path_buf(),
                detail: format!("sqlite refused WAL journal mode (got {mode})"),
            });
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .map_err(self.err("configure"))?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("migrate"))?;
        let tables: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .map_err(self.err("migrate"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(self.err("migrate"))?;
            rows.collect::<Result<_, _>>()
                .map_err(self.err("migrate"))?
        };
        if !tables.is_empty() && !tables.iter().any(|t| t == "ferry_schema") {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                detail: format!("it holds tables {tables:?} but no ferry_schema table"),
            });
        }
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS ferry_schema (
                version INTEGER PRIMARY KEY,
                applied_at INTEGER NOT NULL,
                description TEXT NOT NULL)",
        )
        .map_err(self.err("migrate"))?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM ferry_schema",
                [],
                |r| r.get(0),
            )
            .map_err(self.err("migrate"))?;
        let current = u32::try_from(current).map_err(|_| StateError::Corrupt {
            path: self.path.clone(),
            detail: format!("schema version {current} is not a valid version"),
        })?;
        if current > SCHEMA_VERSION {
            return Err(StateError::NewerSchema {
                dir: state_dir.to_path_buf(),
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, description, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            tx.execute_batch(sql).map_err(self.err("migrate"))?;
            tx.execute(
                "INSERT INTO ferry_schema (version, applied_at, description) VALUES (?1, ?2, ?3)",
                params![version, now_unix(), description],
            )
            .map_err(self.err("migrate"))?;
        }
        tx.commit().map_err(self.err("migrate"))
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Corrupt-file codes become [`StateError::Corrupt`], the rest [`StateError::Database`].
fn map_err(path: &Path, op: &'static str, e: rusqlite::Error) -> StateError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => StateError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => StateError::Database {
            path: path.to_path_buf(),
            op,
            source: e,
        },
    }
}

/// SQLite stores signed 64-bit integers: refuse values above `i64::MAX` instead of wrapping.
fn to_i64(what: &'static str, value: u64, key: &ObjectKey) -> Result<i64, StateError> {
    i64::try_from(value).map_err(|_| StateError::OutOfRange {
        what,
        value,
        context: key.to_string(),
        limit: i64::MAX as u64,
    })
}

/// A stored integer that must not be negative.
fn col_u64(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let v: i64 = row.get(idx)?;
    u64::try_from(v).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            rusqlite::types::Type::Integer,
            format!("negative value {v} in an unsigned column").into(),
        )
    })
}

/// Reads a row selected with [`CP_COLUMNS`].
fn read_checkpoint(row: &Row<'_>) -> rusqlite::Result<(String, Versioned<Checkpoint>)> {
    let kind: String = row.get(4)?;
    let blob_kind = BlobKind::parse(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown blob kind {kind:?}").into(),
        )
    })?;
    Ok((
        row.get(0)?,
        Versioned {
            version: col_u64(row, 1)?,
            value: Checkpoint {
                etag: row.get(2)?,
                offset: col_u64(row, 3)?,
                blob_kind,
                size_seen: col_u64(row, 5)?,
                records_shipped: col_u64(row, 6)?,
                rejected_records: col_u64(row, 7)?,
                last_shipped_at: row.get(8)?,
                seen_at: row.get(9)?,
            },
        },
    ))
}

/// Conversion failures of stored values mean the file was tampered with or damaged.
fn map_read_err(path: &Path, op: &'static str, e: rusqlite::Error) -> StateError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) | rusqlite::Error::InvalidColumnType(..) => {
            StateError::Corrupt {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        other => map_err(path, op, other),
    }
}

impl SqliteCheckpointStore {
    /// The version check and write of one commit, inside `tx`.
    fn write_checkpoint(
        &self,
        tx: &CheckpointTransaction<'_>,
        key: &ObjectKey,
        expected_version: Option<u64>,
        cp: &Checkpoint,
    ) -> Result<u64, StateError> {
        let offset = to_i64("offset", cp.offset, key)?;
        let size_seen = to_i64("size_seen", cp.size_seen, key)?;
        let records = to_i64("records_shipped", cp.records_shipped, key)?;
        let rejected = to_i64("rejected_records", cp.rejected_records, key)?;
        // cached statements: preparing them on every commit cost ~4 % of Ferry's CPU on small
        // blobs (BENCHMARKS.md)
        let found: Option<i64> = tx
            .prepare_cached(
                "SELECT version FROM checkpoints WHERE tenant = ?1 AND source = ?2 AND object = ?3",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![key.tenant, key.source, key.object], |r| r.get(0))
                    .optional()
            })
            .map_err(self.err("commit"))?;
        let found = found.map(|v| v.max(0) as u64);
        if found != expected_version {
            return Err(StateError::Conflict {
                key: key.clone(),
                expected: expected_version,
                found,
            });
        }
        let version = found.map_or(1, |v| v.saturating_add(1));
        let stored_version = to_i64("version", version, key)?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO checkpoints (tenant, source, object, version, etag, byte_offset,
                blob_kind, size_seen, records_shipped, rejected_records, last_shipped_at,
                seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                key.tenant,
                key.source,
                key.object,
                stored_version,
                cp.etag,
                offset,
                cp.blob_kind.as_str(),
                size_seen,
                records,
                rejected,
                cp.last_shipped_at,
                cp.seen_at,
            ])
        })
        .map_err(self.err("commit"))?;
        Ok(version)
    }

    /// Every request of `batch` in one transaction (one WAL write for all). `Err` when the
    /// transaction itself failed: nothing of the batch was committed.
    fn commit_grouped(
        &self,
        conn: &Connection,
        batch: &[CommitRequest],
    ) -> Result<Vec<Result<u64, StateError>>, StateError> {
        let tx = CheckpointTransaction::begin(conn).map_err(self.err("commit"))?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for r in batch {
            match self.write_checkpoint(&tx, &r.key, r.expected_version, &r.checkpoint) {
                // the request's own outcome: the others go on
                outcome @ (Ok(_)
                | Err(StateError::Conflict { .. })
                | Err(StateError::OutOfRange { .. })) => outcomes.push(outcome),
                // the database failed: roll back the whole group
                Err(e) => return Err(e),
            }
        }
        tx.commit().map_err(self.err("commit"))?;
        Ok(outcomes)
    }
}

/// The write transaction of checkpoint commits: `BEGIN IMMEDIATE` and `COMMIT` run as cached
/// statements, parsed once per connection instead of at every commit (rusqlite's `Transaction`
/// runs them through `execute_batch`: parsing them was a tenth of the commit thread's CPU on
/// small blobs). Rolled back when dropped uncommitted, as rusqlite's is.
struct CheckpointTransaction<'c> {
    conn: &'c Connection,
    committed: bool,
}

impl<'c> CheckpointTransaction<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<CheckpointTransaction<'c>> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(CheckpointTransaction {
            conn,
            committed: false,
        })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl std::ops::Deref for CheckpointTransaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for CheckpointTransaction<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            // what is left of a failed commit: nothing of it may stay
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl CheckpointStore for SqliteCheckpointStore {
    fn load(&self, key: &ObjectKey) -> Result<Option<Versioned<Checkpoint>>, StateError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {CP_COLUMNS} FROM checkpoints WHERE tenant = ?1 AND source = ?2 AND object = ?3"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err("load"))?;
        stmt.query_row(params![key.tenant, key.source, key.object], read_checkpoint)
            .optional()
            .map(|o| o.map(|(_, v)| v))
            .map_err(|e| map_read_err(&self.path, "load", e))
    }

    fn commit(
        &self,
        key: &ObjectKey,
        expected_version: Option<u64>,
        cp: &Checkpoint,
    ) -> Result<u64, StateError> {
        let conn = self.conn();
        let tx = CheckpointTransaction::begin(&conn).map_err(self.err("commit"))?;
        let version = self.write_checkpoint(&tx, key, expected_version, cp)?;
        tx.commit().map_err(self.err("commit"))?;
        Ok(version)
    }

    fn commit_many(&self, batch: &[CommitRequest]) -> Vec<Result<u64, StateError>> {
        if batch.len() < 2 {
            return commit_each(self, batch);
        }
        let grouped = {
            let conn = self.conn();
            self.commit_grouped(&conn, batch)
        };
        // a failure of the group as such (disk full, busy): each request alone, so that each
        // caller gets its own outcome and a good request is not failed by another's row
        grouped.unwrap_or_else(|_| commit_each(self, batch))
    }

    fn list(
        &self,
        tenant: &str,
        source: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<CheckpointPage, StateError> {
        let conn = self.conn();
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let sql = match after {
            Some(_) => format!(
                "SELECT {CP_COLUMNS} FROM checkpoints WHERE tenant = ?1 AND source = ?2 \
                 AND object > ?3 ORDER BY object LIMIT ?4"
            ),
            None => format!(
                "SELECT {CP_COLUMNS} FROM checkpoints WHERE tenant = ?1 AND source = ?2 \
                 AND ?3 IS NULL ORDER BY object LIMIT ?4"
            ),
        };
        let mut stmt = conn.prepare_cached(&sql).map_err(self.err("list"))?;
        let rows = stmt
            .query_map(params![tenant, source, after, fetch], read_checkpoint)
            .map_err(self.err("list"))?;
        let mut entries = rows
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| map_read_err(&self.path, "list", e))?;
        let next_after = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(CheckpointPage {
            entries,
            next_after,
        })
    }

    fn delete_tenant_source(&self, tenant: &str, source: &str) -> Result<u64, StateError> {
        let mut conn = self.conn();
        // whether or not the deletion commits, the next load reads the database
        self.cursors().forget(tenant, source);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("delete"))?;
        let n = tx
            .execute(
                "DELETE FROM checkpoints WHERE tenant = ?1 AND source = ?2",
                params![tenant, source],
            )
            .map_err(self.err("delete"))?;
        for table in ["listing_cursors", "quarantine", "tenant_stop_sources"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1 AND source = ?2"),
                params![tenant, source],
            )
            .map_err(self.err("delete"))?;
        }
        tx.commit().map_err(self.err("delete"))?;
        Ok(n as u64)
    }

    // The cursor is read at the start of every pass of every source (from memory after the
    // first time, see `CursorCache`) and written after each page of a flat listing: cached
    // statements, since parsing the SQL again each time was about a sixth of an idle daemon's
    // CPU (`docs/BENCHMARKS.md`, "Idle polls").
    fn load_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StateError> {
        if let Some(known) = self.cursors().get(tenant, source) {
            return Ok(known);
        }
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(SELECT_CURSOR)
            .map_err(self.err("load cursor"))?;
        let cursor: Option<String> = stmt
            .query_row(params![tenant, source], |r| r.get(0))
            .optional()
            .map_err(|e| map_read_err(&self.path, "load cursor", e))?;
        // still under the connection's lock: no save can come between the read and the copy
        self.cursors().put(tenant, source, cursor.as_deref());
        Ok(cursor)
    }

    fn save_cursor(&self, tenant: &str, source: &str, cursor: &str) -> Result<(), StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO listing_cursors (tenant, source, cursor, updated_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(self.err("save cursor"))?;
        match stmt.execute(params![tenant, source, cursor, now_unix()]) {
            Ok(_) => {
                self.cursors().put(tenant, source, Some(cursor));
                Ok(())
            }
            Err(e) => {
                // whatever the database holds now, the next load reads it there
                self.cursors().forget(tenant, source);
                Err(self.err("save cursor")(e))
            }
        }
    }

    fn quarantine(
        &self,
        tenant: &str,
        source: &str,
        object: &str,
        etag: &str,
        reason: &str,
    ) -> Result<(), StateError> {
        let conn = self.conn();
        conn.execute(
            "INSERT OR REPLACE INTO quarantine (tenant, source, object, etag, reason, quarantined_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![tenant, source, object, etag, reason, now_unix()],
        )
        .map_err(self.err("quarantine"))?;
        Ok(())
    }

    fn quarantined(&self, tenant: &str, source: &str) -> Result<Vec<QuarantineEntry>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT object, etag, reason, quarantined_at FROM quarantine
                 WHERE tenant = ?1 AND source = ?2 ORDER BY object",
            )
            .map_err(self.err("list quarantine"))?;
        let rows = stmt
            .query_map(params![tenant, source], |r| {
                Ok(QuarantineEntry {
                    object: r.get(0)?,
                    etag: r.get(1)?,
                    reason: r.get(2)?,
                    quarantined_at: r.get(3)?,
                })
            })
            .map_err(self.err("list quarantine"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| map_read_err(&self.path, "list quarantine", e))
    }

    fn release(&self, tenant: &str, source: &str, object: &str) -> Result<bool, StateError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "DELETE FROM quarantine WHERE tenant = ?1 AND source = ?2 AND object = ?3",
                params![tenant, source, object],
            )
            .map_err(self.err("release"))?;
        Ok(n > 0)
    }

    fn save_tenant_stop(&self, tenant: &str, stop: &TenantStop) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("save tenant stop"))?;
        tx.execute(
            "INSERT OR REPLACE INTO tenant_stops (tenant, state, since, saved_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![tenant, stop.state, stop.since, now_unix()],
        )
        .map_err(self.err("save tenant stop"))?;
        tx.execute(
            "DELETE FROM tenant_stop_sources WHERE tenant = ?1",
            params![tenant],
        )
        .map_err(self.err("save tenant stop"))?;
        for (source, behind_since) in &stop.behind_since {
            // a source named twice keeps its earliest time, as the memory store does
            tx.execute(
                "INSERT INTO tenant_stop_sources (tenant, source, behind_since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, source) DO UPDATE
                 SET behind_since = MIN(behind_since, excluded.behind_since)",
                params![tenant, source, behind_since],
            )
            .map_err(self.err("save tenant stop"))?;
        }
        tx.commit().map_err(self.err("save tenant stop"))
    }

    fn tenant_stop(&self, tenant: &str) -> Result<Option<TenantStop>, StateError> {
        let conn = self.conn();
        let head: Option<(String, i64)> = conn
            .query_row(
                "SELECT state, since FROM tenant_stops WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| map_read_err(&self.path, "load tenant stop", e))?;
        let Some((state, since)) = head else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare_cached(
                "SELECT source, behind_since FROM tenant_stop_sources WHERE tenant = ?1
                 ORDER BY source",
            )
            .map_err(self.err("load tenant stop"))?;
        let behind_since = stmt
            .query_map(params![tenant], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<Result<Vec<(String, i64)>, _>>())
            .map_err(|e| map_read_err(&self.path, "load tenant stop", e))?;
        Ok(Some(TenantStop {
            state,
            since,
            behind_since,
        }))
    }

    fn clear_tenant_stop(&self, tenant: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.err("clear tenant stop"))?;
        for table in ["tenant_stops", "tenant_stop_sources"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?1"),
                params![tenant],
            )
            .map_err(self.err("clear tenant stop"))?;
        }
        tx.commit().map_err(self.err("clear tenant stop"))
    }

    fn summary(&self, tenant: &str, source: &str) -> Result<SourceSummary, StateError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(records_shipped), 0), COALESCE(SUM(rejected_records), 0),
                    COALESCE(SUM(MAX(size_seen - byte_offset, 0)), 0),
                    MAX(last_shipped_at)
             FROM checkpoints WHERE tenant = ?1 AND source = ?2",
            params![tenant, source],
            |r| {
                Ok(SourceSummary {
                    objects: col_u64(r, 0)?,
                    records_shipped: col_u64(r, 1)?,
                    rejected_records: col_u64(r, 2)?,
                    bytes_pending: col_u64(r, 3)?,
                    last_shipped_at: r.get(4)?,
                })
            },
        )
        .map_err(|e| map_read_err(&self.path, "summary", e))
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
