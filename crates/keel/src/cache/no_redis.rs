//! The Redis tier of a build without keel's `redis` feature: there is
//! none. `RedisTier` has no values, so `Cache`'s `Option<RedisTier>` is
//! always `None` and every Redis branch is dead code the compiler removes;
//! a configured Redis URL is refused by `KeelConfig::check` and by
//! [`RedisTier::new`].

use std::sync::Arc;
use std::time::Duration;

use super::{Cache, CacheConfig, RedisKeys};
use crate::resilience::CircuitBreaker;
use crate::{Error, Result};

/// What a read found in Redis.
pub(super) struct Found {
    pub(super) value: Option<Vec<u8>>,
    pub(super) generation: String,
}

/// One write's invalidation.
#[allow(
    dead_code,
    reason = "built by the cache, read by a Redis tier this build has not"
)]
pub(super) struct Invalidation {
    pub(super) value_keys: Vec<String>,
    pub(super) generation_keys: Vec<String>,
    pub(super) entity_generation: String,
    pub(super) scope: String,
}

/// No Redis tier: no values.
pub(super) enum RedisTier {}

impl RedisTier {
    pub(super) fn new(
        _url: &str,
        _config: &CacheConfig,
        _tls: &crate::tls::TlsConfig,
    ) -> Result<RedisTier> {
        Err(Error::invalid_argument(
            "configuration",
            "REDIS_URL (the Redis cache tier) needs keel's `redis` cargo feature, which this build does not have",
        ))
    }

    pub(super) fn breaker(&self) -> &Arc<CircuitBreaker> {
        match *self {}
    }

    pub(super) async fn read(&self, _cache: &Cache, _keys: &RedisKeys) -> Option<Found> {
        match *self {}
    }

    pub(super) async fn store(
        &self,
        _cache: &Cache,
        _keys: &RedisKeys,
        _noted: &str,
        _payload: bytes::Bytes,
        _ttl: Duration,
    ) -> Option<bool> {
        match *self {}
    }

    pub(super) async fn invalidate(&self, _cache: &Cache, _job: Invalidation) {
        match *self {}
    }

    pub(super) async fn first_subscription(&self, _within: Duration) -> bool {
        match *self {}
    }
}

pub(super) fn spawn_workers(_cache: &Cache) -> Result<()> {
    Ok(())
}
