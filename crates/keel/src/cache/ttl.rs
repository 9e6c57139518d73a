//! How long an entry lives: expiry instants and TTL jitter.

use std::time::{Duration, Instant};

/// When an entry stored now with `ttl` expires (a TTL too long for the
/// clock is a century).
pub(super) fn expiry(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// `ttl` plus up to `jitter` of it, at random.
pub(super) fn jittered(ttl: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return ttl;
    }
    let unit = getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64;
    ttl + ttl.mul_f64(jitter.min(1.0) * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_jitter_is_the_ttl_itself() {
        let ttl = Duration::from_secs(60);
        assert_eq!(jittered(ttl, 0.0), ttl);
        assert_eq!(jittered(ttl, -1.0), ttl);
    }

    #[test]
    fn jitter_adds_at_most_its_share_and_varies() {
        let ttl = Duration::from_secs(100);
        let seen: Vec<Duration> = (0..200).map(|_| jittered(ttl, 0.1)).collect();
        assert!(
            seen.iter()
                .all(|d| *d >= ttl && *d <= Duration::from_secs(110)),
            "{seen:?}"
        );
        let distinct: std::collections::HashSet<_> = seen.iter().collect();
        assert!(
            distinct.len() > 100,
            "random, not one value: {}",
            distinct.len()
        );
        // A jitter above 1 is taken as 1: at most double.
        assert!((0..100).all(|_| jittered(ttl, 5.0) <= 2 * ttl));
    }

    #[test]
    fn a_ttl_too_long_for_the_clock_is_a_century() {
        let now = Instant::now();
        let far = expiry(Duration::MAX);
        assert!(far > now + Duration::from_secs(99 * 365 * 86_400));
        let soon = expiry(Duration::from_secs(1));
        assert!(soon <= Instant::now() + Duration::from_secs(1));
    }
}
