//! Rate limits: requests per second and bytes per second, as governor token buckets, waited on
//! asynchronously so a limited tenant only ever delays itself.
//!
//! Owns: the arithmetic of waiting for capacity and the time spent waiting. Must not: know
//! which tenant or destination a limiter belongs to.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// A bytes-per-second limit. Large amounts are taken in burst-sized pieces.
#[derive(Debug)]
pub struct ByteRate {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
    waited_ns: AtomicU64,
}

/// Bytes are counted in KiB units so that limits above 4 GiB/s still fit governor's u32 quotas.
const UNIT: u64 = 1024;

impl ByteRate {
    /// A limit of `bytes_per_sec` (rounded up to whole KiB), with one second of burst.
    pub fn new(bytes_per_sec: u64) -> ByteRate {
        let units = bytes_per_sec.div_ceil(UNIT).clamp(1, u32::MAX as u64) as u32;
        let per_sec = NonZeroU32::new(units).unwrap_or(NonZeroU32::MIN);
        ByteRate {
            limiter: RateLimiter::direct(Quota::per_second(per_sec).allow_burst(per_sec)),
            burst: per_sec.get(),
            waited_ns: AtomicU64::new(0),
        }
    }

    /// Waits until `bytes` may pass.
    pub async fn take(&self, bytes: u64) {
        let start = Instant::now();
        let mut units = bytes.div_ceil(UNIT);
        while units > 0 {
            let n = units.min(self.burst as u64) as u32;
            if let Some(n) = NonZeroU32::new(n) {
                // n <= burst, so this cannot fail
                let _ = self.limiter.until_n_ready(n).await;
            }
            units -= n as u64;
        }
        self.waited_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Total time callers spent waiting.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed))
    }
}

/// A requests-per-second limit.
#[derive(Debug)]
pub struct RequestRate {
    limiter: DefaultDirectRateLimiter,
    waited_ns: AtomicU64,
}

impl RequestRate {
    /// A limit of `per_sec` requests per second.
    pub fn new(per_sec: u32) -> RequestRate {
        let q = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
        RequestRate {
            limiter: RateLimiter::direct(Quota::per_second(q)),
            waited_ns: AtomicU64::new(0),
        }
    }

    /// Waits for one request slot.
    pub async fn take(&self) {
        let start = Instant::now();
        self.limiter.until_ready().await;
        self.waited_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    /// Total time callers spent waiting.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.waited_ns.load(Ordering::Relaxed))
    }
}

/// Optional limits of one party (a tenant, or the destination).
#[derive(Debug, Default)]
pub struct Limits {
    /// Bytes per second, if limited.
    pub bytes: Option<ByteRate>,
    /// Requests per second, if limited.
    pub requests: Option<RequestRate>,
}

impl Limits {
    /// Limits from optional settings.
    pub fn new(bytes_per_sec: Option<u64>, requests_per_sec: Option<u32>) -> Limits {
        Limits {
            bytes: bytes_per_sec.map(ByteRate::new),
            requests: requests_per_sec.map(RequestRate::new),
        }
    }

    /// Waits for one request slot, if limited.
    pub async fn request(&self) {
        if let Some(r) = &self.requests {
            r.take().await;
        }
    }

    /// Waits for `n` bytes, if limited.
    pub async fn bytes(&self, n: u64) {
        if let Some(b) = &self.bytes {
            b.take(n).await;
        }
    }

    /// Time spent waiting on either limit.
    pub fn waited(&self) -> Duration {
        self.bytes.as_ref().map(|b| b.waited()).unwrap_or_default()
            + self
                .requests
                .as_ref()
                .map(|r| r.waited())
                .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn byte_rate_limits_throughput() {
        let r = ByteRate::new(1024 * 1024);
        let start = Instant::now();
        // first second is burst; the next MiB must wait about a second
        r.take(1024 * 1024).await;
        r.take(512 * 1024).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(r.waited() >= Duration::from_millis(400));
    }

    #[tokio::test]
    async fn amounts_larger_than_burst_do_not_fail() {
        let r = ByteRate::new(64 * 1024);
        let start = Instant::now();
        r.take(96 * 1024).await;
        assert!(start.elapsed() >= Duration::from_millis(400));
    }
}
