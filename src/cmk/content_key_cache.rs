//! A per-tenant, in-memory cache of unwrapped content keys, so blobs sharing a wrapped key (or
//! re-read soon after) cost one Key Vault unwrap.
//!
//! Owns: entries keyed by (key id, wrap algorithm, protocol, wrapped key bytes) with a TTL and a
//! size bound; keys are zeroized when evicted, expired, purged (revocation) or dropped (each
//! [`ContentKey`] zeroizes itself). Must not: persist keys, call Key Vault itself, or hold its
//! lock across an await. Time comes from a [`Clock`] (by default `tokio::time::Instant::now`, which
//! follows a paused tokio clock), so TTL tests advance a manual clock instead of sleeping.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::content_key::ContentKey;
use super::format::{Protocol, WrappedContentKey};

/// Where the cache reads the time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// `tokio::time::Instant::now()`: real time, or tokio's paused time in tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Entries kept at most when the caller has no better figure.
pub const DEFAULT_CONTENT_KEY_CACHE_CAPACITY: usize = 1024;

/// What identifies one unwrap. The protocol is part of it because the unwrapped key was checked
/// against that protocol's prefix: a relabelled blob must not hit a key checked for another.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key_id: String,
    algorithm: String,
    protocol: Protocol,
    encrypted_key: Vec<u8>,
}

/// One cached key and when it was unwrapped.
struct Entry {
    key: ContentKey,
    inserted: Instant,
}

/// Unwrapped content keys of one tenant; see the module doc. Cheap to share behind an `Arc`.
pub struct ContentKeyCache<C: Clock = TokioClock> {
    /// Source of time for expiry.
    clock: C,
    /// How long a key stays usable after its unwrap; zero disables caching.
    ttl: Duration,
    /// Most entries held; the oldest goes first.
    capacity: usize,
    /// Entries. A std mutex: never held across an await.
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

impl<C: Clock> std::fmt::Debug for ContentKeyCache<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentKeyCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ContentKeyCache<TokioClock> {
    /// A cache whose keys live `ttl` (zero: never cache) and which holds at most `capacity`.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        ContentKeyCache::with_clock(ttl, capacity, TokioClock)
    }
}

impl<C: Clock> ContentKeyCache<C> {
    /// As [`ContentKeyCache::new`], reading time from `clock`.
    pub fn with_clock(ttl: Duration, capacity: usize, clock: C) -> Self {
        ContentKeyCache {
            clock,
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<CacheKey, Entry>> {
        // A panic elsewhere while holding the lock leaves a consistent map: keep using it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache_key(wrapped: &WrappedContentKey, protocol: Protocol) -> CacheKey {
        CacheKey {
            key_id: wrapped.key_id.clone(),
            algorithm: wrapped.algorithm.clone(),
            protocol,
            encrypted_key: wrapped.encrypted_key.clone(),
        }
    }

    /// The cached key for this wrapped key and protocol, if unwrapped less than `ttl` ago.
    pub fn get(&self, wrapped: &WrappedContentKey, protocol: Protocol) -> Option<ContentKey> {
        let now = self.clock.now();
        let mut entries = self.lock();
        let cache_key = Self::cache_key(wrapped, protocol);
        match entries.get(&cache_key) {
            Some(entry) if now.duration_since(entry.inserted) < self.ttl => Some(entry.key.clone()),
            Some(_) => {
                entries.remove(&cache_key);
                None
            }
            None => None,
        }
    }

    /// Caches a key just unwrapped (and checked) for this wrapped key and protocol.
    pub fn insert(&self, wrapped: &WrappedContentKey, protocol: Protocol, key: ContentKey) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let now = self.clock.now();
        let ttl = self.ttl;
        let mut entries = self.lock();
        entries.retain(|_, entry| now.duration_since(entry.inserted) < ttl);
        let cache_key = Self::cache_key(wrapped, protocol);
        while entries.len() >= self.capacity && !entries.contains_key(&cache_key) {
            let oldest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.inserted)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    entries.remove(&k);
                }
                None => break,
            }
        }
        entries.insert(cache_key, Entry { key, inserted: now });
    }

    /// The cached key, or the result of `unwrap` (cached on success). The lock is not held while
    /// `unwrap` runs, so two tasks may unwrap the same key at once; both get the same key.
    pub async fn get_or_unwrap<F, Fut, E>(
        &self,
        wrapped: &WrappedContentKey,
        protocol: Protocol,
        unwrap: F,
    ) -> Result<ContentKey, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<ContentKey, E>>,
    {
        if let Some(key) = self.get(wrapped, protocol) {
            return Ok(key);
        }
        let key = unwrap().await?;
        self.insert(wrapped, protocol, key.clone());
        Ok(key)
    }

    /// Drops (and zeroizes) every key: the customer revoked access.
    pub fn purge(&self) {
        self.lock().clear();
    }

    /// Entries held, expired ones included until the next insert or lookup removes them.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A clock tests move by hand.
    #[derive(Clone)]
    struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        fn new() -> Self {
            ManualClock(Arc::new(Mutex::new(Instant::now())))
        }
        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
            *now += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap_or_else(|p| p.into_inner())
        }
    }

    fn cache(ttl_secs: u64, capacity: usize) -> (ContentKeyCache<ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        (
            ContentKeyCache::with_clock(Duration::from_secs(ttl_secs), capacity, clock.clone()),
            clock,
        )
    }

    fn wrapped(n: u8) -> WrappedContentKey {
        WrappedContentKey {
            key_id: "https://kv.vault.azure.net/keys/k/1".to_owned(),
            encrypted_key: vec![n; 40],
            algorithm: "RSA-OAEP".to_owned(),
        }
    }

    fn key(n: u8) -> ContentKey {
        ContentKey::from_bytes([n; 32])
    }

    fn bytes(k: Option<ContentKey>) -> Option<[u8; 32]> {
        k.map(|k| *k.expose_secret())
    }

    #[test]
    fn hit_until_ttl_then_miss() {
        let (cache, clock) = cache(300, 8);
        cache.insert(&wrapped(1), Protocol::V2_0, key(1));
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_0)), Some([1; 32]));
        clock.advance(Duration::from_secs(299));
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_0)), Some([1; 32]));
        clock.advance(Duration::from_secs(1));
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_0)), None);
        assert!(cache.is_empty(), "the expired key was dropped");
    }

    #[test]
    fn zero_ttl_never_caches() {
        let (cache, _clock) = cache(0, 8);
        cache.insert(&wrapped(1), Protocol::V2_0, key(1));
        assert!(cache.is_empty());
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_0)), None);
    }

    #[test]
    fn keyed_by_wrapped_bytes_key_id_algorithm_and_protocol() {
        let (cache, _clock) = cache(60, 8);
        cache.insert(&wrapped(1), Protocol::V2_0, key(1));
        assert_eq!(bytes(cache.get(&wrapped(2), Protocol::V2_0)), None);
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_1)), None);
        let mut other_kid = wrapped(1);
        other_kid.key_id = "https://kv.vault.azure.net/keys/k/2".to_owned();
        assert_eq!(bytes(cache.get(&other_kid, Protocol::V2_0)), None);
        let mut other_alg = wrapped(1);
        other_alg.algorithm = "RSA-OAEP-256".to_owned();
        assert_eq!(bytes(cache.get(&other_alg, Protocol::V2_0)), None);
    }

    #[test]
    fn bounded_evicts_oldest() {
        let (cache, clock) = cache(60, 2);
        cache.insert(&wrapped(1), Protocol::V2_0, key(1));
        clock.advance(Duration::from_secs(1));
        cache.insert(&wrapped(2), Protocol::V2_0, key(2));
        clock.advance(Duration::from_secs(1));
        cache.insert(&wrapped(3), Protocol::V2_0, key(3));
        assert_eq!(cache.len(), 2);
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_0)), None);
        assert_eq!(bytes(cache.get(&wrapped(2), Protocol::V2_0)), Some([2; 32]));
        assert_eq!(bytes(cache.get(&wrapped(3), Protocol::V2_0)), Some([3; 32]));
    }

    #[test]
    fn purge_empties() {
        let (cache, _clock) = cache(60, 8);
        cache.insert(&wrapped(1), Protocol::V2_0, key(1));
        cache.insert(&wrapped(2), Protocol::V2_0, key(2));
        cache.purge();
        assert!(cache.is_empty());
        assert_eq!(bytes(cache.get(&wrapped(1), Protocol::V2_0)), None);
    }

    #[tokio::test]
    async fn get_or_unwrap_calls_once_within_ttl() {
        let (cache, clock) = cache(60, 8);
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let calls = calls.clone();
            let got = cache
                .get_or_unwrap(&wrapped(9), Protocol::V2_0, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(key(9))
                })
                .await;
            assert_eq!(got.map(|k| *k.expose_secret()), Ok([9; 32]));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(60));
        let failed = cache
            .get_or_unwrap(&wrapped(9), Protocol::V2_0, || async {
                Err::<ContentKey, _>("revoked")
            })
            .await;
        assert_eq!(failed.map(|_| ()), Err("revoked"));
        assert!(cache.is_empty(), "a failed unwrap caches nothing");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_between_tasks() {
        let cache = Arc::new(ContentKeyCache::new(Duration::from_secs(60), 64));
        let mut tasks = Vec::new();
        for n in 0..16u8 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                cache.insert(&wrapped(n), Protocol::V2_0, key(n));
                tokio::task::yield_now().await;
                bytes(cache.get(&wrapped(n), Protocol::V2_0))
            }));
        }
        for (n, task) in tasks.into_iter().enumerate() {
            let got = task.await.ok().flatten();
            assert_eq!(got, Some([n as u8; 32]));
        }
        assert_eq!(cache.len(), 16);
    }
}
