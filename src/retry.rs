//! Retry policy shared by every outbound call: exponential backoff with full jitter, at least as
//! long as the service asked (`Retry-After`, `x-ms-retry-after-ms`), a bounded number of tries.
//!
//! Owns: the timing of retries and the time spent waiting on them. Must not: decide what is
//! retryable (callers say so through `Retryable`).

use std::future::Future;
use std::time::Duration;

use rand::Rng;

/// An error that knows whether a retry can help.
pub trait Retryable {
    /// True when the same request may succeed later.
    fn is_transient(&self) -> bool;
    /// How long the service asked to wait.
    fn retry_after(&self) -> Option<Duration>;
}

impl Retryable for crate::blob_api::BlobError {
    fn is_transient(&self) -> bool {
        self.class == crate::blob_api::BlobErrorClass::Transient
    }
    fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// How many tries and how long between them.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// Delay before the second try.
    pub base: Duration,
    /// Longest delay between tries.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (attempt counts from 1).
    pub fn delay(&self, attempt: u32, server_asked: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(16)))
            .min(self.cap);
        let ms = exp.as_millis() as u64;
        let jittered = Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms.max(1)));
        match server_asked {
            Some(s) => s.min(Duration::from_secs(300)).max(jittered),
            None => jittered,
        }
    }
}

/// What a retried call reports besides its result.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RetryStats {
    /// Retries made (tries minus one).
    pub retries: u32,
    /// Time spent waiting between tries.
    pub waited: Duration,
    /// True when the service asked to slow down (429/503 with or without Retry-After).
    pub throttled: bool,
}

/// Runs `call` until it succeeds, fails with a non-transient error, or runs out of tries.
pub async fn with_retries<T, E, F, Fut>(
    policy: RetryPolicy,
    mut call: F,
) -> (Result<T, E>, RetryStats)
where
    E: Retryable,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut stats = RetryStats::default();
    let mut attempt = 1;
    loop {
        match call(attempt).await {
            Ok(v) => return (Ok(v), stats),
            Err(e) if e.is_transient() && attempt < policy.max_attempts => {
                let wait = policy.delay(attempt, e.retry_after());
                stats.retries += 1;
                stats.waited += wait;
                stats.throttled = true;
                crate::telemetry::Metrics::retry(wait);
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return (Err(e), stats),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(bool, Option<Duration>);
    impl Retryable for E {
        fn is_transient(&self) -> bool {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            self.1
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        let (r, stats) = with_retries(policy, |attempt| async move {
            if attempt < 3 {
                Err(E(true, Some(Duration::from_secs(2))))
            } else {
                Ok(attempt)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(stats.retries, 2);
        assert!(stats.waited >= Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn stops_on_fatal_and_after_max_attempts() {
        let (r, s) = with_retries(RetryPolicy::default(), |_| async {
            Err::<(), _>(E(false, None))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(s.retries, 0);
        let (r, s) = with_retries(
            RetryPolicy {
                max_attempts: 3,
                ..Default::default()
            },
            |_| async { Err::<(), _>(E(true, None)) },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(s.retries, 2);
    }

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy::default();
        assert!(p.delay(1, None) <= Duration::from_millis(200));
        assert!(p.delay(30, None) <= Duration::from_secs(30));
        assert!(p.delay(1, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
    }
}
