//! `CheckpointCommitter`: the hot path of checkpoint commits. The pipeline's workers queue their
//! commits here; one thread takes whatever has queued and hands it to the store as one
//! [`CheckpointStore::commit_many`] (SQLite: one transaction, one WAL write), then answers each
//! caller with its own outcome. Under load many commits share one transaction; a lone commit goes
//! through at once (nothing waits for a group to fill). While commits keep coming, transactions
//! are paced at most one per [`MIN_TRANSACTION_GAP`], so that what queues meanwhile shares the
//! next one instead of each commit paying its own transaction and thread wake-ups.
//!
//! Owns: grouping, and the one thread that runs these blocking store calls. Must not: decide
//! what to commit or when (the pipeline commits a checkpoint only after its destination commit
//! succeeded), nor retry (a conflict goes back to its caller).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CheckpointStore, CommitRequest, StateError};

/// Most commits handed to the store at once.
const MAX_GROUP: usize = 256;

/// Shortest time between the end of one transaction and the start of the next while commits
/// keep coming (group commit, as PostgreSQL's `commit_delay`). A commit that arrives after a
/// quiet spell goes through at once; under load a commit waits at most this long and the
/// thread runs at most 200 transactions a second, each carrying everything queued by then.
/// On the small-blob records benchmark (2,000 commits in about 5 s) this cut transactions from
/// about 2,000 to about 750 and the commit thread's context switches by half
/// (`docs/BENCHMARKS.md`, "Runs 16 to 18").
const MIN_TRANSACTION_GAP: Duration = Duration::from_millis(5);

type Outcome = Result<u64, StateError>;

struct Queued {
    request: CommitRequest,
    reply: flume::Sender<Outcome>,
}

/// Groups concurrent checkpoint commits into single store calls. Cheap to clone; the thread
/// ends when the last clone is dropped, after answering everything queued.
#[derive(Debug, Clone)]
pub struct CheckpointCommitter {
    queue: flume::Sender<Queued>,
}

impl std::fmt::Debug for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued")
            .field("key", &self.request.key)
            .finish_non_exhaustive()
    }
}

fn thread_gone() -> StateError {
    StateError::TaskFailed {
        detail: "the checkpoint commit thread is gone".into(),
    }
}

impl CheckpointCommitter {
    /// Starts the commit thread over `store`.
    pub fn start(store: Arc<dyn CheckpointStore>) -> Result<CheckpointCommitter, StateError> {
        let (queue, queued) = flume::unbounded::<Queued>();
        std::thread::Builder::new()
            .name("ferry-checkpoints".into())
            .spawn(move || commit_loop(store.as_ref(), &queued))
            .map_err(|e| StateError::TaskFailed {
                detail: format!("cannot start the checkpoint commit thread: {e}"),
            })?;
        Ok(CheckpointCommitter { queue })
    }

    /// Commits one checkpoint, as [`CheckpointStore::commit`] would, possibly in one transaction
    /// with other callers' commits. Dropping the future does not withdraw a queued commit.
    pub async fn commit(&self, request: CommitRequest) -> Outcome {
        let (reply, answer) = flume::bounded(1);
        self.queue
            .send(Queued { request, reply })
            .map_err(|_| thread_gone())?;
        answer.recv_async().await.map_err(|_| thread_gone())?
    }
}

/// How long a commit that found the thread idle waits before its transaction: the rest of
/// `gap` since the previous transaction ended (`None` before the first), else nothing.
fn pace(previous_end: Option<Instant>, now: Instant, gap: Duration) -> Duration {
    previous_end.map_or(Duration::ZERO, |end| {
        gap.saturating_sub(now.saturating_duration_since(end))
    })
}

/// Takes the first queued commit and everything queued behind it, commits them together,
/// answers each; until every sender is gone. Nothing waits for a group to fill: a commit after
/// a quiet spell goes through at once, and one that follows a transaction closely waits out
/// the rest of [`MIN_TRANSACTION_GAP`] so that the commits queued meanwhile join it.
fn commit_loop(store: &dyn CheckpointStore, queued: &flume::Receiver<Queued>) {
    let mut previous_end = None;
    while let Ok(first) = queued.recv() {
        let wait = pace(previous_end, Instant::now(), MIN_TRANSACTION_GAP);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let (requests, replies): (Vec<CommitRequest>, Vec<flume::Sender<Outcome>>) =
            std::iter::once(first)
                .chain(queued.try_iter().take(MAX_GROUP - 1))
                .map(|q| (q.request, q.reply))
                .unzip();
        let outcomes = catch_unwind(AssertUnwindSafe(|| store.commit_many(&requests)))
            .unwrap_or_else(|_| {
                requests
                    .iter()
                    .map(|_| {
                        Err(StateError::TaskFailed {
                            detail: "the checkpoint store panicked during a commit".into(),
                        })
                    })
                    .collect()
            });
        previous_end = Some(Instant::now());
        let mut outcomes = outcomes.into_iter();
        for reply in replies {
            // a store that answered too few is a bug: the caller hears so instead of hanging
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(StateError::TaskFailed {
                    detail: "the checkpoint store returned fewer outcomes than commits".into(),
                })
            });
            // a caller that went away meanwhile needs no answer
            let _ = reply.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::conformance::cp;
    use crate::state::{MemoryCheckpointStore, ObjectKey, SqliteCheckpointStore};

    fn request(object: &str, expected: Option<u64>, offset: u64) -> CommitRequest {
        CommitRequest {
            key: ObjectKey::new("contoso", "audit", object),
            expected_version: expected,
            checkpoint: cp(offset),
        }
    }

    /// Many concurrent commits: each caller gets its own version, a stale one its own conflict,
    /// and every checkpoint is in the store afterwards.
    async fn concurrent_callers_get_their_own_outcomes(store: Arc<dyn CheckpointStore>) {
        let committer = CheckpointCommitter::start(store.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let committer = committer.clone();
            tasks.push(tokio::spawn(async move {
                let name = format!("obj-{i:03}");
                let first = committer.commit(request(&name, None, i)).await;
                let second = committer.commit(request(&name, Some(1), i + 1)).await;
                // stale: version 1 was already advanced to 2
                let stale = committer.commit(request(&name, Some(1), i + 2)).await;
                (
                    first.unwrap(),
                    second.unwrap(),
                    stale.unwrap_err().is_conflict(),
                )
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), (1, 2, true));
        }
        for i in 0..200u64 {
            let key = ObjectKey::new("contoso", "audit", format!("obj-{i:03}"));
            let got = store.load(&key).unwrap().unwrap();
            assert_eq!((got.version, got.value), (2, cp(i + 1)));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_commits_grouped_from_many_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteCheckpointStore::open(dir.path()).unwrap());
        concurrent_callers_get_their_own_outcomes(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_commits_grouped_from_many_tasks() {
        concurrent_callers_get_their_own_outcomes(Arc::new(MemoryCheckpointStore::new())).await;
    }

    /// A memory store that panics on its next commit when `panic_next` is set, and counts the
    /// groups handed to it (one `commit_many` is one transaction in SQLite).
    #[derive(Debug, Default)]
    struct ObservedStore {
        inner: MemoryCheckpointStore,
        panic_next: std::sync::atomic::AtomicBool,
        groups: std::sync::atomic::AtomicUsize,
    }

    /// A store that panics: the caller gets an error, and the thread keeps serving.
    #[tokio::test]
    async fn a_panicking_store_fails_the_commit_not_the_thread() {
        let store = Arc::new(ObservedStore {
            panic_next: true.into(),
            ..ObservedStore::default()
        });
        let committer = CheckpointCommitter::start(store).unwrap();
        let err = committer.commit(request("a", None, 1)).await.unwrap_err();
        assert!(matches!(err, StateError::TaskFailed { .. }), "{err}");
        assert_eq!(committer.commit(request("a", None, 1)).await.unwrap(), 1);
    }

    #[test]
    fn a_commit_waits_only_for_the_rest_of_the_gap_after_a_transaction() {
        let gap = Duration::from_millis(5);
        let t0 = Instant::now();
        assert_eq!(
            pace(None, t0, gap),
            Duration::ZERO,
            "the first commit goes at once"
        );
        assert_eq!(
            pace(Some(t0), t0, gap),
            gap,
            "right after a transaction: the whole gap"
        );
        let later = t0 + Duration::from_millis(2);
        assert_eq!(pace(Some(t0), later, gap), Duration::from_millis(3));
        let quiet = t0 + Duration::from_millis(50);
        assert_eq!(
            pace(Some(t0), quiet, gap),
            Duration::ZERO,
            "after a quiet spell: at once"
        );
    }

    /// Workers that commit one after another, a little apart and out of step (as jobs that
    /// each finish a small blob): their commits share transactions instead of taking one each,
    /// and each still gets its own version.
    #[test]
    fn commits_arriving_close_together_share_transactions() {
        let store = Arc::new(ObservedStore::default());
        let committer = CheckpointCommitter::start(store.clone()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (workers, each) = (8u64, 10u64);
        std::thread::scope(|scope| {
            for w in 0..workers {
                let (committer, runtime) = (committer.clone(), &runtime);
                scope.spawn(move || {
                    for i in 0..each {
                        let name = format!("w{w}-{i}");
                        let version = runtime.block_on(committer.commit(request(&name, None, i)));
                        assert_eq!(version.unwrap(), 1);
                        // out of step: without pacing, nearly every commit finds the thread idle
                        std::thread::sleep(Duration::from_micros(700 + 131 * w));
                    }
                });
            }
        });
        let commits = (workers * each) as usize;
        let groups = store.groups.load(std::sync::atomic::Ordering::SeqCst);
        // with pacing each transaction takes what the eight workers queued during the gap (a
        // worker has at most one commit queued)
        assert!(
            groups * 2 <= commits,
            "{commits} commits took {groups} transactions"
        );
    }

    impl CheckpointStore for ObservedStore {
        fn load(
            &self,
            key: &ObjectKey,
        ) -> Result<Option<crate::state::Versioned<crate::state::Checkpoint>>, StateError> {
            self.inner.load(key)
        }
        fn commit(
            &self,
            key: &ObjectKey,
            expected_version: Option<u64>,
            cp: &crate::state::Checkpoint,
        ) -> Result<u64, StateError> {
            if self
                .panic_next
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                panic!("simulated store bug");
            }
            self.inner.commit(key, expected_version, cp)
        }
        fn commit_many(&self, batch: &[CommitRequest]) -> Vec<Result<u64, StateError>> {
            self.groups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            crate::state::commit_each(self, batch)
        }
        fn list(
            &self,
            tenant: &str,
            source: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<crate::state::CheckpointPage, StateError> {
            self.inner.list(tenant, source, after, limit)
        }
        fn delete_tenant_source(&self, tenant: &str, source: &str) -> Result<u64, StateError> {
            self.inner.delete_tenant_source(tenant, source)
        }
        fn load_cursor(&self, tenant: &str, source: &str) -> Result<Option<String>, StateError> {
            self.inner.load_cursor(tenant, source)
        }
        fn save_cursor(&self, tenant: &str, source: &str, cursor: &str) -> Result<(), StateError> {
            self.inner.save_cursor(tenant, source, cursor)
        }
        fn save_tenant_stop(
            &self,
            tenant: &str,
            stop: &crate::state::TenantStop,
        ) -> Result<(), StateError> {
            self.inner.save_tenant_stop(tenant, stop)
        }
        fn tenant_stop(
            &self,
            tenant: &str,
        ) -> Result<Option<crate::state::TenantStop>, StateError> {
            self.inner.tenant_stop(tenant)
        }
        fn clear_tenant_stop(&self, tenant: &str) -> Result<(), StateError> {
            self.inner.clear_tenant_stop(tenant)
        }
        fn quarantine(
            &self,
            tenant: &str,
            source: &str,
            object: &str,
            etag: &str,
            reason: &str,
        ) -> Result<(), StateError> {
            self.inner.quarantine(tenant, source, object, etag, reason)
        }
        fn quarantined(
            &self,
            tenant: &str,
            source: &str,
        ) -> Result<Vec<crate::state::QuarantineEntry>, StateError> {
            self.inner.quarantined(tenant, source)
        }
        fn release(&self, tenant: &str, source: &str, object: &str) -> Result<bool, StateError> {
            self.inner.release(tenant, source, object)
        }
        fn summary(
            &self,
            tenant: &str,
            source: &str,
        ) -> Result<crate::state::SourceSummary, StateError> {
            self.inner.summary(tenant, source)
        }
    }
}
