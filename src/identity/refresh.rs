//! When a token is refreshed and how long to wait after a failure: refresh ahead of expiry with
//! jitter (so tokens fetched together are refreshed apart), exponential backoff with full jitter
//! that honours what the server asked for. Pure functions of time, tested alone.

use std::time::{Duration, SystemTime};

use rand::Rng;

use super::token::AccessToken;

/// When to refresh: 5 minutes before expiry (a fifth of the lifetime for short tokens), minus a
/// random part of up to a fifth of the lifetime, so tokens issued together refresh apart: a
/// thousand one-hour tokens fetched in the same second are refreshed over twelve minutes.
pub(super) fn refresh_point(tok: &AccessToken) -> SystemTime {
    let life = tok
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let margin = std::cmp::min(Duration::from_secs(300), life / 5);
    let spread = (life / 5).as_millis() as u64;
    let jitter = if spread > 0 {
        Duration::from_millis(rand::thread_rng().gen_range(0..spread))
    } else {
        Duration::ZERO
    };
    tok.expires_at - margin - jitter.min(life.saturating_sub(margin))
}

/// Exponential backoff with full jitter, at least what the server asked for, at most 2 minutes.
pub(super) fn backoff(failures_in_row: u32, server_asked: Option<Duration>) -> Duration {
    let base = Duration::from_secs(2u64.saturating_pow(failures_in_row.min(7)))
        .min(Duration::from_secs(120));
    let jittered = Duration::from_millis(
        rand::thread_rng().gen_range(base.as_millis() as u64 / 2..=base.as_millis() as u64),
    );
    match server_asked {
        Some(s) => s.max(jittered),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::token::SecretString;

    fn token_for(secs: u64) -> AccessToken {
        AccessToken {
            secret: SecretString::new("t"),
            expires_at: SystemTime::now() + Duration::from_secs(secs),
            claims: Default::default(),
        }
    }

    #[test]
    fn refresh_points_are_spread_and_before_expiry() {
        let t = token_for(3600);
        let points: Vec<SystemTime> = (0..50).map(|_| refresh_point(&t)).collect();
        for p in &points {
            let left = t.expires_at.duration_since(*p).unwrap();
            assert!(
                left >= Duration::from_secs(300) && left <= Duration::from_secs(1020),
                "{left:?}"
            );
        }
        let distinct: std::collections::HashSet<_> = points.iter().collect();
        assert!(distinct.len() > 40, "refresh points are not jittered");
        let short = token_for(60);
        let left = short
            .expires_at
            .duration_since(refresh_point(&short))
            .unwrap();
        assert!(
            left >= Duration::from_secs(11) && left <= Duration::from_secs(24),
            "{left:?}"
        );
    }

    #[test]
    fn backoff_honours_server_and_caps() {
        assert!(backoff(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert!(backoff(20, None) <= Duration::from_secs(120));
    }
}
