//! Per-resource policies: caching and event names.

use std::fmt;
use std::time::Duration;

/// How a resource's reads are cached (used by the cache tiers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CachePolicy {
    /// Whether reads of this resource are cached at all.
    pub enabled: bool,
    /// Time to live of a cached row or list in the shared tier.
    pub ttl: Duration,
    /// Random extra TTL, as a fraction of `ttl` (0.1 = up to 10% more), so
    /// entries written together do not expire together.
    pub jitter: f64,
    /// Whether the in-process tier is used.
    pub l1: bool,
    /// Time to live in the in-process tier: the bound on how stale another
    /// instance's write can look here.
    pub l1_ttl: Duration,
    /// Whether "not found" is cached too.
    pub negative: bool,
}

impl CachePolicy {
    /// Not cached.
    pub const DISABLED: CachePolicy = CachePolicy {
        enabled: false,
        ttl: Duration::from_secs(60),
        jitter: 0.1,
        l1: true,
        l1_ttl: Duration::from_secs(5),
        negative: false,
    };

    /// Cached with the defaults: 60 s, 10% jitter, in-process tier for 5 s, no negative caching.
    pub const DEFAULT: CachePolicy = CachePolicy {
        enabled: true,
        ..Self::DISABLED
    };
}

/// The kind of a write, as events and audit rows name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteAction {
    /// A row was created.
    Created,
    /// A row was updated.
    Updated,
    /// A row was deleted (or soft-deleted).
    Deleted,
    /// A soft-deleted row was restored.
    Restored,
}

impl WriteAction {
    /// Every kind of write.
    pub const ALL: [WriteAction; 4] = [
        WriteAction::Created,
        WriteAction::Updated,
        WriteAction::Deleted,
        WriteAction::Restored,
    ];

    /// `created`, `updated`, `deleted` or `restored`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteAction::Created => "created",
            WriteAction::Updated => "updated",
            WriteAction::Deleted => "deleted",
            WriteAction::Restored => "restored",
        }
    }
}

impl fmt::Display for WriteAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
