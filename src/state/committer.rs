//! `CheckpointCommitter`: the hot path of checkpoint commits. The pipeline's workers queue their
//! commits here; one thread takes whatever has queued and hands it to the store as one
//! [`CheckpointStore::commit_many`] (SQLite: one transaction, one WAL write), then answers each
//! caller with its own outcome. A job announces a checkpoint commit when its destination commit
//! starts ([`CommitComing`]); a commit waits for the other announced ones to queue, at most
//! [`MAX_GROUP_WAIT`], so that the checkpoints of concurrent jobs share one transaction, while a
//! commit with no other one coming (a lone worker, a quiet daemon) goes through at once. Jobs that
//! are still reading, or waiting out a throttled source, announce nothing and delay no one.
//!
//! Owns: grouping, and the one thread that runs these blocking store calls. Must not: decide
//! what to commit or when (the pipeline commits a checkpoint only after its destination commit
//! succeeded), nor retry (a conflict goes back to its caller).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CheckpointStore, CommitRequest, StateError};

/// Most commits handed to the store at once.
const MAX_GROUP: usize = 256;

/// Longest a commit waits for the other announced commits to queue before its transaction
/// starts (group commit, as PostgreSQL's `commit_delay`, but ended early once every announced
/// commit has queued). A checkpoint so trails its destination object by at most this; the
/// worker that waits holds no request open. On the small-blob benchmarks (2,000 commits from 32
/// concurrent jobs, one every 8 ms on the slower machine) this cut Ferry's CPU by about a fifth
/// against the fixed 5 ms pacing gap before it, under which nearly every checkpoint paid its own
/// transaction (`docs/BENCHMARKS.md`, "Run 44").
const MAX_GROUP_WAIT: Duration = Duration::from_millis(50);

type Outcome = Result<u64, StateError>;

struct Queued {
    request: CommitRequest,
    reply: flume::Sender<Outcome>,
}

/// What the commit thread hears.
enum Message {
    /// A commit to make; `announced` when a [`CommitComing`] announced it.
    Commit { queued: Queued, announced: bool },
    /// An announcement was dropped unused (its destination commit failed, or its job stopped)
    /// while the thread was waiting for a group: fewer commits may come.
    Withdrawn,
}

/// Commits announced and not yet received by the commit thread, and whether the thread is
/// waiting for them.
#[derive(Debug, Default)]
struct CommitsComing {
    count: AtomicUsize,
    thread_waiting: AtomicBool,
}

/// Groups concurrent checkpoint commits into single store calls. Cheap to clone; the thread
/// ends when the last clone is dropped, after answering everything queued.
#[derive(Debug, Clone)]
pub struct CheckpointCommitter {
    queue: flume::Sender<Message>,
    coming: Arc<CommitsComing>,
}

/// A checkpoint commit announced: taken when a destination commit starts, and handed to
/// [`CheckpointCommitter::commit_announced`] with the checkpoint. The committer waits for
/// announced commits to group them (see [`MAX_GROUP_WAIT`]); dropped unused (the destination
/// commit failed, the job stopped), it withdraws the announcement.
#[derive(Debug)]
#[must_use = "an announced commit is waited for until it arrives or this is dropped"]
pub struct CommitComing {
    coming: Arc<CommitsComing>,
    queue: flume::Sender<Message>,
    /// Handed over with its commit: the commit thread counts it off when it receives it.
    used: bool,
}

impl Drop for CommitComing {
    fn drop(&mut self) {
        if self.used {
            return;
        }
        self.coming.count.fetch_sub(1, Ordering::SeqCst);
        // the thread sets the flag before it reads the count: either it sees this one gone, or
        // this sees it waiting and wakes it (no wake-up is lost, and none is sent while idle)
        if self.coming.thread_waiting.load(Ordering::SeqCst) {
            let _ = self.queue.send(Message::Withdrawn);
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Commit { queued, announced } => f
                .debug_struct("Commit")
                .field("key", &queued.request.key)
                .field("announced", announced)
                .finish_non_exhaustive(),
            Message::Withdrawn => f.write_str("Withdrawn"),
        }
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
        CheckpointCommitter::start_with_wait(store, MAX_GROUP_WAIT)
    }

    fn start_with_wait(
        store: Arc<dyn CheckpointStore>,
        max_wait: Duration,
    ) -> Result<CheckpointCommitter, StateError> {
        let (queue, queued) = flume::unbounded::<Message>();
        let coming = Arc::new(CommitsComing::default());
        let announced = coming.clone();
        std::thread::Builder::new()
            .name("ferry-checkpoints".into())
            .spawn(move || commit_loop(store.as_ref(), &queued, &announced, max_wait))
            .map_err(|e| StateError::TaskFailed {
                detail: format!("cannot start the checkpoint commit thread: {e}"),
            })?;
        Ok(CheckpointCommitter { queue, coming })
    }

    /// Announces one checkpoint commit, to be handed to
    /// [`commit_announced`](CheckpointCommitter::commit_announced). A job takes it when its
    /// destination commit starts: the checkpoint commits of other jobs wait for it.
    pub fn commit_coming(&self) -> CommitComing {
        self.coming.count.fetch_add(1, Ordering::SeqCst);
        CommitComing {
            coming: self.coming.clone(),
            queue: self.queue.clone(),
            used: false,
        }
    }

    /// Commits one checkpoint, as [`CheckpointStore::commit`] would, possibly in one transaction
    /// with other callers' commits. Dropping the future does not withdraw a queued commit.
    pub async fn commit(&self, request: CommitRequest) -> Outcome {
        self.send(request, false).await
    }

    /// [`commit`](CheckpointCommitter::commit) of the checkpoint that `coming` announced.
    pub async fn commit_announced(
        &self,
        request: CommitRequest,
        mut coming: CommitComing,
    ) -> Outcome {
        coming.used = true;
        drop(coming);
        self.send(request, true).await
    }

    async fn send(&self, request: CommitRequest, announced: bool) -> Outcome {
        let (reply, answer) = flume::bounded(1);
        let queued = Queued { request, reply };
        self.queue
            .send(Message::Commit { queued, announced })
            .map_err(|_| thread_gone())?;
        answer.recv_async().await.map_err(|_| thread_gone())?
    }
}

/// Whether a group of `queued` commits should wait for more: while commits are announced that
/// the thread has not received yet, and the group is not full.
fn waits_for_more(queued: usize, announced: usize) -> bool {
    announced > 0 && queued < MAX_GROUP
}

/// Takes the first queued commit and the commits queued behind it, until every announced commit
/// has queued or `max_wait` has passed since the first arrived; commits them together and
/// answers each; until every sender is gone.
fn commit_loop(
    store: &dyn CheckpointStore,
    queue: &flume::Receiver<Message>,
    coming: &CommitsComing,
    max_wait: Duration,
) {
    while let Ok(message) = queue.recv() {
        let mut group = Vec::new();
        // a withdrawal heard while idle: nothing waits for it
        receive(message, &mut group, coming);
        if group.is_empty() {
            continue;
        }
        let deadline = Instant::now() + max_wait;
        coming.thread_waiting.store(true, Ordering::SeqCst);
        loop {
            // what has queued meanwhile joins at once
            while group.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(message) => receive(message, &mut group, coming),
                    Err(_) => break,
                }
            }
            if !waits_for_more(group.len(), coming.count.load(Ordering::SeqCst)) {
                break;
            }
            match queue.recv_deadline(deadline) {
                Ok(message) => receive(message, &mut group, coming),
                Err(_) => break,
            }
        }
        coming.thread_waiting.store(false, Ordering::SeqCst);
        commit_group(store, group);
    }
}

/// Adds a received commit to `group`, counting off its announcement.
fn receive(message: Message, group: &mut Vec<Queued>, coming: &CommitsComing) {
    if let Message::Commit { queued, announced } = message {
        if announced {
            coming.count.fetch_sub(1, Ordering::SeqCst);
        }
        group.push(queued);
    }
}

/// Commits `group` in one store call and answers each caller with its own outcome.
fn commit_group(store: &dyn CheckpointStore, group: Vec<Queued>) {
    let (requests, replies): (Vec<CommitRequest>, Vec<flume::Sender<Outcome>>) =
        group.into_iter().map(|q| (q.request, q.reply)).unzip();
    let outcomes =
        catch_unwind(AssertUnwindSafe(|| store.commit_many(&requests))).unwrap_or_else(|_| {
            requests
                .iter()
                .map(|_| {
                    Err(StateError::TaskFailed {
                        detail: "the checkpoint store panicked during a commit".into(),
                    })
                })
                .collect()
        });
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
    fn a_group_waits_while_announced_commits_have_not_arrived() {
        assert!(!waits_for_more(1, 0), "nothing else announced: at once");
        assert!(waits_for_more(1, 1));
        assert!(waits_for_more(7, 3));
        assert!(!waits_for_more(MAX_GROUP, 10), "a full group goes");
    }

    /// Workers that each finish a job now and then, out of step (as jobs that each ship a small
    /// blob): their commits share transactions instead of taking one each, and each still gets
    /// its own version.
    #[test]
    fn commits_of_concurrent_jobs_share_transactions() {
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
                        // out of step: each job reads a while, then commits its destination
                        // object (announced) and its checkpoint
                        std::thread::sleep(Duration::from_micros(500 + 131 * w));
                        let coming = committer.commit_coming();
                        std::thread::sleep(Duration::from_micros(300));
                        let name = format!("w{w}-{i}");
                        let version = runtime
                            .block_on(committer.commit_announced(request(&name, None, i), coming));
                        assert_eq!(version.unwrap(), 1);
                    }
                });
            }
        });
        let commits = (workers * each) as usize;
        let groups = store.groups.load(std::sync::atomic::Ordering::SeqCst);
        // each transaction takes what the announced commits queued while it waited: without
        // the wait, nearly every commit finds the thread idle
        assert!(
            groups * 2 <= commits,
            "{commits} commits took {groups} transactions"
        );
    }

    /// A lone worker's commits go at once, one after another: no wait for commits that are not
    /// announced, however long the longest wait.
    #[test]
    fn a_lone_job_does_not_wait_for_a_group() {
        let store = Arc::new(ObservedStore::default());
        let committer =
            CheckpointCommitter::start_with_wait(store.clone(), Duration::from_secs(30)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let started = Instant::now();
        for i in 0..20u64 {
            let coming = committer.commit_coming();
            let version = runtime
                .block_on(committer.commit_announced(request(&format!("o{i}"), None, i), coming));
            assert_eq!(version.unwrap(), 1);
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "20 lone commits took {:?}",
            started.elapsed()
        );
        assert_eq!(store.groups.load(std::sync::atomic::Ordering::SeqCst), 20);
    }

    /// A commit waits for another announced commit at most the longest wait, and no longer once
    /// that announcement is withdrawn.
    #[test]
    fn a_group_waits_at_most_the_longest_wait_and_not_for_a_withdrawn_commit() {
        let store = Arc::new(ObservedStore::default());
        let wait = Duration::from_millis(300);
        let committer = CheckpointCommitter::start_with_wait(store.clone(), wait).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();

        // another commit announced that does not come: the whole wait, then alone
        let other = committer.commit_coming();
        let started = Instant::now();
        runtime
            .block_on(committer.commit(request("a", None, 1)))
            .unwrap();
        let took = started.elapsed();
        assert!(took >= wait, "waited only {took:?}");
        assert!(took < wait * 10, "waited {took:?}");

        // the other announcement is withdrawn while this one waits: the wait ends with it
        let ender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(other);
        });
        let commit = {
            let committer = committer.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let started = Instant::now();
                runtime
                    .block_on(committer.commit(request("b", None, 1)))
                    .unwrap();
                started.elapsed()
            })
        };
        ender.join().unwrap();
        let took = commit.join().unwrap();
        assert!(
            took < wait,
            "the commit waited {took:?} for a withdrawn announcement"
        );
        assert_eq!(store.groups.load(std::sync::atomic::Ordering::SeqCst), 2);
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
