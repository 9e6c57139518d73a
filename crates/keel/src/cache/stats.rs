//! What the cache did: counters, also exported as metrics.

use std::sync::atomic::AtomicU64;

/// Counters of what the cache did (also exported as metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// In-process hits.
    pub l1_hits: u64,
    /// Redis hits.
    pub l2_hits: u64,
    /// Misses of every tier.
    pub misses: u64,
    /// Database reads made to fill the cache.
    pub loads: u64,
    /// Redis calls that failed or were refused by the breaker.
    pub errors: u64,
    /// Invalidations applied.
    pub invalidations: u64,
    /// Values a reader did not store because a write invalidated the key
    /// while it was reading.
    pub stale_stores_refused: u64,
    /// Entries in the in-process tier now.
    pub l1_entries: u64,
    /// What they weigh, in bytes (bounded by `CacheConfig::l1_max_bytes`).
    pub l1_bytes: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) l1_hits: AtomicU64,
    pub(super) l2_hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) loads: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) invalidations: AtomicU64,
    pub(super) stale_stores_refused: AtomicU64,
}
