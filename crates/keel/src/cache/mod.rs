//! The read-through cache: an in-process tier (moka) and a shared Redis
//! tier in front of the database, never stale after an acknowledged write.
//!
//! - `get` is read-through: L1 (in-process), then L2 (Redis), then the
//!   database; `list` and `count` results are cached under a hash of the
//!   normalised query and the tenant, stamped with a per-entity generation
//!   that every committed write bumps, so one write invalidates every cached
//!   list and count of that entity at once.
//! - The classic race (a reader loads an old row, a writer commits and
//!   invalidates, the reader stores the old row) cannot happen: every key has
//!   a generation; a reader notes it before its database read and stores
//!   with a compare-and-set that fails if the generation moved (a Lua script
//!   in Redis, a lock per stripe of keys in process); a writer bumps the
//!   generation and deletes the value after commit.
//! - Other instances drop their L1 entries when Redis tells them (pub/sub);
//!   an L1 is flushed whole when its subscription (re)connects, since
//!   pub/sub can drop messages, and when Redis comes back after an outage.
//! - Concurrent misses of one key in one instance make one database read.
//! - It fails open: every Redis call has a tight timeout (default 50 ms)
//!   behind a circuit breaker; a Redis error is a miss (or a skipped store),
//!   and a failed invalidation is retried in the background until it
//!   succeeds; never a failed request.
//!
//! Keys: `{prefix}:{entity}:{tenant}:v:{id}` (value), `...:g:{id}` (its
//! generation), `{prefix}:{entity}:{tenant}:g` (the entity generation),
//! `...:q:{entity generation}:{query hash}` (a list or count). Nothing runs
//! `FLUSHDB` or `KEYS`.

mod config;
mod flight;
mod keys;
mod l1;
#[cfg(feature = "redis")]
mod redis_check;
#[cfg(not(feature = "redis"))]
#[path = "no_redis.rs"]
mod redis_tier;
#[cfg(feature = "redis")]
mod redis_tier;
mod stats;
mod stripes;
mod ttl;
mod weigh;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

pub use config::CacheConfig;
pub use keys::Scope;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_check::RedisCheck;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_tier::RedisTierCheck;
pub use stats::CacheStats;

use crate::Result;
use crate::health::HealthCoordinator;
use crate::resilience::CircuitBreaker;
use crate::resource::CachePolicy;
use crate::sync::Unpoison as _;
use flight::Flight;
use keys::{RedisKeys, escape, hex};
use l1::{BuildNoHash, L1, L1Key, L1Weight, exact, l1_options};
use redis_tier::RedisTier;
use stats::Counters;
use stripes::Stripes;
use ttl::jittered;

/// A test seam (feature `test-seams`): a reader of `key` stops between its
/// database read and its store until the test lets it go.
#[cfg(feature = "test-seams")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-seams")))]
#[derive(Clone, Debug)]
pub struct PauseHook {
    /// The key (the id) to pause on.
    pub key: String,
    /// Notified when the reader has loaded and is about to store.
    pub reached: Arc<tokio::sync::Notify>,
    /// Notify it to let the reader store.
    pub resume: Arc<tokio::sync::Notify>,
}

/// The cache of a [`Keel`](crate::Keel): see [`Keel::cache`](crate::Keel::cache).
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    l1: L1,
    hasher: std::hash::RandomState,
    stripes: Stripes,
    redis: Option<RedisTier>,
    flights: Mutex<HashMap<String, Flight>>,
    counters: Counters,
    #[cfg(feature = "test-seams")]
    pause: Mutex<Option<PauseHook>>,
    max_entry_bytes: usize,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.inner.prefix)
            .field("redis", &self.inner.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Waits, at most `within`, until the Redis tier listens to other
    /// instances' invalidations (true at once without Redis); whether it
    /// does. Until then the in-process tier may miss an invalidation, and
    /// the first subscription empties it. [`Keel::connect`](crate::Keel::connect)
    /// waits up to 2 s, so that a new instance starts coherent and no early
    /// read is dropped by that flush.
    pub async fn listening(&self, within: Duration) -> bool {
        match &self.inner.redis {
            Some(redis) => redis.first_subscription(within).await,
            None => true,
        }
    }

    /// A cache as `config` says. With a Redis URL it connects lazily (Redis
    /// may be down at start) and subscribes to invalidations in the
    /// background; it must then be made inside a Tokio runtime. A
    /// `rediss://` URL trusts the operating system's authorities (see
    /// [`with_tls`](Self::with_tls) for a private one).
    pub fn new(config: &CacheConfig) -> Result<Cache> {
        Cache::with_tls(config, &crate::tls::TlsConfig::default())
    }

    /// [`new`](Self::new), with `tls`'s authority and client certificate
    /// for a `rediss://` URL (what [`Keel`](crate::Keel) does with its
    /// [`KeelConfig::tls`](crate::KeelConfig::tls)).
    pub fn with_tls(config: &CacheConfig, tls: &crate::tls::TlsConfig) -> Result<Cache> {
        let l1 = L1::with_options(
            l1_options(config),
            L1Weight,
            BuildNoHash,
            Default::default(),
        );
        let redis = match &config.redis_url {
            None => None,
            Some(url) => Some(RedisTier::new(url, config, tls)?),
        };
        let cache = Cache {
            inner: Arc::new(Inner {
                prefix: config.prefix.clone(),
                l1,
                hasher: std::hash::RandomState::new(),
                stripes: Stripes::new(),
                redis,
                flights: Mutex::new(HashMap::new()),
                counters: Counters::default(),
                #[cfg(feature = "test-seams")]
                pause: Mutex::new(None),
                max_entry_bytes: usize::try_from(config.max_entry_bytes).unwrap_or(usize::MAX),
            }),
        };
        if cache.inner.redis.is_some() {
            redis_tier::spawn_workers(&cache)?;
        }
        Ok(cache)
    }

    /// Whether a Redis tier is configured.
    pub fn has_redis(&self) -> bool {
        self.inner.redis.is_some()
    }

    /// The circuit breaker around Redis, if there is a Redis tier.
    pub fn breaker(&self) -> Option<&Arc<CircuitBreaker>> {
        self.inner.redis.as_ref().map(|r| r.breaker())
    }

    /// What the cache did so far.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            l1_hits: c.l1_hits.load(Ordering::Relaxed),
            l2_hits: c.l2_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            loads: c.loads.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            stale_stores_refused: c.stale_stores_refused.load(Ordering::Relaxed),
            l1_entries: self.inner.l1.len() as u64,
            l1_bytes: self.inner.l1.weight(),
        }
    }

    /// Sets the gauges of the in-process tier: `keel_cache_l1_bytes` (what
    /// its entries weigh against `l1_max_bytes`) and `keel_cache_l1_entries`.
    /// The runtime's database component does it every 5 s.
    pub fn record_metrics(&self) {
        metrics::gauge!("keel_cache_l1_bytes").set(self.inner.l1.weight() as f64);
        metrics::gauge!("keel_cache_l1_entries").set(self.inner.l1.len() as f64);
    }

    /// Drops the in-process tier's expired entries now (a read drops the
    /// one it finds), so that [`stats`](Self::stats) counts what stays.
    pub fn settle(&self) {
        let now = Instant::now();
        self.inner.l1.retain(|_, entry| entry.expires > now);
    }

    /// Registers the health checks of the Redis tier (a `redis` PING through
    /// the cache's breaker, and the breaker's own), both non-critical.
    pub fn health_checks(&self, health: &HealthCoordinator) -> Result<()> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            use crate::health::CheckPolicy;
            health.register(
                RedisCheck::with_tls(&redis.url, &redis.tls)?.with_breaker(redis.breaker.clone()),
                CheckPolicy::default(),
            )?;
            health.register(redis.breaker.health_check(), CheckPolicy::default())?;
            health.register(RedisTierCheck::new(self.clone()), CheckPolicy::default())?;
        }
        let _ = health;
        Ok(())
    }

    /// Empties the in-process tier (every stripe's generation moves, so no
    /// reader in flight stores what it loaded before).
    pub fn flush_l1(&self) {
        self.inner.stripes.bump_all();
        self.inner.l1.clear();
    }

    fn hash_str(&self, key: &str) -> u64 {
        L1Key {
            parts: [key, "", ""],
        }
        .hash(&self.inner.hasher)
    }

    /// Pauses readers of the hook's key between their load and their
    /// store (feature `test-seams`; `None` removes the hook).
    #[cfg(feature = "test-seams")]
    #[cfg_attr(docsrs, doc(cfg(feature = "test-seams")))]
    pub fn set_pause_hook(&self, hook: Option<PauseHook>) {
        *self.inner.pause.lock().unpoisoned() = hook;
    }

    /// Where the rows of `entity` for `tenant` live (services do this for
    /// you; use it with [`get`](Self::get) to cache reads of your own).
    pub fn scope(&self, entity: &str, tenant: Option<&str>) -> Scope {
        Scope {
            base: format!(
                "{}:{}:{}",
                self.inner.prefix,
                entity,
                escape(tenant.unwrap_or("_"))
            ),
        }
    }

    fn count(&self, tier: &'static str, result: &'static str) {
        metrics::counter!("keel_cache_requests_total", "tier" => tier, "result" => result)
            .increment(1);
        let c = &self.inner.counters;
        match (tier, result) {
            ("l1", "hit") => c.l1_hits.fetch_add(1, Ordering::Relaxed),
            ("l2", "hit") => c.l2_hits.fetch_add(1, Ordering::Relaxed),
            (_, "error") => c.errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// A value by id, read through: L1, L2, then `load` (run once for
    /// concurrent callers), stored as `policy` says unless a write
    /// invalidated the id meanwhile. Services call it for `get`; call it for
    /// reads of your own, and [`invalidate`](Self::invalidate) after the
    /// writes that change them.
    pub async fn get<T, F, Fut>(
        &self,
        policy: &CachePolicy,
        scope: &Scope,
        id: &str,
        load: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static + Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.get_inner(policy, scope, id, None, load)
            .await
            .map(|(value, _)| value)
    }

    /// Like [`get`](Self::get), and, when the value came from the
    /// in-process tier, its JSON (`serde_json::to_vec` of it) without the
    /// top-level fields `hidden` (a [`View`](crate::View)'s). An entry keeps
    /// the JSON of every field, so that an HTTP layer sends a hit in the
    /// full view without encoding it again; a hit that hides fields is
    /// encoded from the value each time (an entry holds one encoding, which
    /// its weight counts).
    pub async fn get_with_json<T, F, Fut>(
        &self,
        policy: &CachePolicy,
        scope: &Scope,
        id: &str,
        hidden: &'static [&'static str],
        load: F,
    ) -> Result<(T, Option<Bytes>)>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static + Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.get_inner(policy, scope, id, Some(hidden), load).await
    }

    async fn get_inner<T, F, Fut>(
        &self,
        policy: &CachePolicy,
        scope: &Scope,
        id: &str,
        json: Option<&'static [&'static str]>,
        load: F,
    ) -> Result<(T, Option<Bytes>)>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static + Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let escaped = escape(id);
        let l1_key = L1Key {
            parts: [&scope.base, ":v:", &escaped],
        };
        if let Some(hit) = self.l1_hit(policy, &l1_key, json) {
            return Ok(hit);
        }
        let keys = || RedisKeys::Row {
            value: scope.value_key(id),
            generation: scope.gen_key(id),
        };
        // The rest of the path (Redis, the load, single-flight) is a large
        // future: on the heap, so that a hit never builds or moves it.
        Box::pin(self.read(policy, &l1_key, None, keys, id, load))
            .await
            .map(|value| (value, None))
    }

    /// A list or count under the hash of its normalised query, stamped
    /// with the scope's generation (any write of the scope drops it).
    pub async fn query<T, F, Fut>(
        &self,
        policy: &CachePolicy,
        scope: &Scope,
        normalised: &str,
        load: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static + Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let hash = hex(&Sha256::digest(normalised.as_bytes())[..16]);
        let l1_key = L1Key {
            parts: [&scope.base, ":q:", &hash],
        };
        if let Some((hit, _)) = self.l1_hit(policy, &l1_key, None) {
            return Ok(hit);
        }
        let stripe = self.hash_str(&scope.query_prefix());
        let keys = || RedisKeys::Query {
            entity_generation: scope.entity_gen_key(),
            prefix: scope.query_prefix(),
            hash: hash.clone(),
        };
        Box::pin(self.read(policy, &l1_key, Some(stripe), keys, "", load)).await
    }

    /// The value in the in-process tier, if it is there (counted as an L1
    /// hit or miss), with its JSON without the fields `json` names if it
    /// asks for JSON.
    fn l1_hit<T: Serialize + Clone + Send + Sync + 'static>(
        &self,
        policy: &CachePolicy,
        l1_key: &L1Key<'_>,
        json: Option<&'static [&'static str]>,
    ) -> Option<(T, Option<Bytes>)> {
        if self.inner.redis.is_some() && !policy.l1 {
            return None;
        }
        let span = crate::trace::cache_lookup("memory");
        let _entered = span.enter();
        let hash = l1_key.hash(&self.inner.hasher);
        if let Some(entry) = self.l1_get(hash)
            && l1_key.matches(&entry.key)
            && let Some(value) = entry.value.downcast_ref::<T>()
        {
            span.record("keel.cache.hit", true);
            self.count("l1", "hit");
            let json = json.and_then(|hidden| match &entry.json {
                Some(full) if hidden.is_empty() => Some(full.clone()),
                _ => crate::resource::project_json(value, hidden).ok(),
            });
            return Some((value.clone(), json));
        }
        span.record("keel.cache.hit", false);
        self.count("l1", "miss");
        None
    }

    /// The read path after an L1 miss ([`Cache::l1_hit`]). `stripe` is the
    /// hash whose generation guards the L1 store: the key's own for a row
    /// (`None`), the scope's query prefix's for lists.
    #[allow(clippy::too_many_arguments)]
    async fn read<T, F, Fut>(
        &self,
        policy: &CachePolicy,
        l1_key: &L1Key<'_>,
        stripe: Option<u64>,
        keys: impl FnOnce() -> RedisKeys,
        id: &str,
        load: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static + Cacheable,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let redis = self.inner.redis.as_ref();
        // Without Redis, the in-process tier is the cache, with the full TTL.
        let (use_l1, l1_ttl) = match redis {
            Some(_) => (policy.l1, policy.l1_ttl),
            None => (true, policy.ttl),
        };
        let hash = l1_key.hash(&self.inner.hasher);
        let is_row = stripe.is_none();
        let stripe = stripe.unwrap_or(hash);
        let stripe_gen = self.inner.stripes.generation(stripe);
        let keys = keys();
        let full_key = l1_key.to_string();

        // L2, noting the generation the store will be checked against.
        let mut noted = None;
        if let Some(redis) = redis {
            let span = crate::trace::cache_lookup("redis");
            let found =
                tracing::Instrument::instrument(redis.read(self, &keys), span.clone()).await;
            span.record(
                "keel.cache.hit",
                found.as_ref().is_some_and(|f| f.value.is_some()),
            );
            match found {
                Some(found) => {
                    if let Some(bytes) = found.value {
                        match serde_json::from_slice::<T>(&bytes) {
                            Ok(value) => {
                                self.count("l2", "hit");
                                if use_l1 {
                                    // A row keeps its JSON for an HTTP hit.
                                    let json = is_row.then(|| exact(bytes));
                                    self.store_l1(
                                        hash, &full_key, stripe, stripe_gen, &value, json, l1_ttl,
                                    );
                                }
                                return Ok(value);
                            }
                            Err(err) => {
                                tracing::warn!(key = %full_key, error = %err, "undecodable cache entry; reloading");
                            }
                        }
                    }
                    self.count("l2", "miss");
                    noted = Some(found.generation);
                }
                None => self.count("l2", "error"),
            }
        }
        self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);

        // One database read for concurrent misses of this key.
        let recheck = || {
            use_l1
                .then(|| self.l1_get(hash))
                .flatten()
                .filter(|entry| l1_key.matches(&entry.key))
                .and_then(|entry| entry.value.downcast_ref::<T>().cloned())
        };
        let (value, _flight) = self.load_once(&full_key, recheck, load).await;
        let value = value?;
        self.pause_if_hooked(id).await;
        if value.storable(policy) {
            // Encoded once: the shared tier stores it, the in-process tier
            // weighs it and hands it out as the value's JSON.
            let json = match serde_json::to_vec(&value) {
                Ok(json) => exact(json),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot encode a cache entry");
                    return Ok(value);
                }
            };
            if json.len() > self.inner.max_entry_bytes {
                // Served from the database every time rather than filling
                // the caches with one giant value.
                metrics::counter!("keel_cache_too_large_total").increment(1);
                return Ok(value);
            }
            if use_l1 {
                self.store_l1(
                    hash,
                    &full_key,
                    stripe,
                    stripe_gen,
                    &value,
                    is_row.then(|| json.clone()),
                    l1_ttl,
                );
            }
            if let (Some(_), Some(generation)) = (redis, noted) {
                // The shared tier is filled in the background: the caller
                // has its value; the compare-and-set keeps it safe.
                let cache = self.clone();
                let ttl = jittered(policy.ttl, policy.jitter);
                tokio::spawn(async move {
                    let Some(redis) = cache.inner.redis.as_ref() else {
                        return;
                    };
                    if redis.store(&cache, &keys, &generation, json, ttl).await == Some(false) {
                        cache
                            .inner
                            .counters
                            .stale_stores_refused
                            .fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        }
        Ok(value)
    }

    #[cfg(not(feature = "test-seams"))]
    async fn pause_if_hooked(&self, _id: &str) {}

    #[cfg(feature = "test-seams")]
    async fn pause_if_hooked(&self, id: &str) {
        let hook = self.inner.pause.lock().unpoisoned().clone();
        if let Some(hook) = hook
            && !id.is_empty()
            && hook.key == id
        {
            let resumed = hook.resume.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            hook.reached.notify_one();
            resumed.await;
        }
    }

    /// After a commit: the rows `ids` of `scope` changed, and so did every
    /// list and count of the scope. Local tiers at once, Redis (and through
    /// it the other instances) now or, if Redis fails, by a background retry.
    pub async fn invalidate(&self, scope: &Scope, ids: &[String]) {
        let value_keys: Vec<String> = ids.iter().map(|id| scope.value_key(id)).collect();
        self.evict_local(&value_keys, &scope.base);
        self.inner
            .counters
            .invalidations
            .fetch_add(ids.len().max(1) as u64, Ordering::Relaxed);
        if let Some(redis) = &self.inner.redis {
            let generation_keys: Vec<String> = ids.iter().map(|id| scope.gen_key(id)).collect();
            let job = redis_tier::Invalidation {
                value_keys,
                generation_keys,
                entity_generation: scope.entity_gen_key(),
                scope: scope.base.clone(),
            };
            redis.invalidate(self, job).await;
        }
    }

    /// Drops local entries: the value keys, and every list and count of the scope.
    pub(crate) fn evict_local(&self, value_keys: &[String], scope: &str) {
        let queries = format!("{scope}:q:");
        // A load in flight may have read the old row: later readers must not
        // join it.
        self.inner
            .flights
            .lock()
            .unpoisoned()
            .retain(|key, _| !key.starts_with(&queries) && !value_keys.contains(key));
        for key in value_keys {
            let hash = self.hash_str(key);
            self.inner.stripes.bump_and(hash, || {
                self.inner.l1.remove(&hash);
            });
        }
        self.inner.stripes.bump_and(self.hash_str(&queries), || {
            self.inner
                .l1
                .retain(|_, entry| !entry.key.starts_with(queries.as_str()));
        });
    }
}

/// What decides whether a loaded value is stored, and what it weighs.
pub trait Cacheable {
    /// Whether to store it under `policy` (a "not found" only with negative caching).
    fn storable(&self, policy: &CachePolicy) -> bool;

    /// The heap it owns, in bytes, besides its own `size_of`: with its JSON
    /// and key, what its in-process entry weighs against the tier's budget.
    /// The default estimates it from the value's serde form: each string
    /// and byte string its allocation, each sequence and map its buffers
    /// (as `serde_json` values), as malloc takes them.
    fn heap_bytes(&self) -> usize
    where
        Self: Serialize,
    {
        weigh::heap_of(self)
    }
}

impl<M> Cacheable for Option<M> {
    fn storable(&self, policy: &CachePolicy) -> bool {
        self.is_some() || policy.negative
    }
}

impl<M: Serialize> Cacheable for crate::Page<M> {
    fn storable(&self, _policy: &CachePolicy) -> bool {
        true
    }

    /// The items' buffer (a `Vec<M>`, each item its `size_of`), each item's
    /// heap, the page token.
    fn heap_bytes(&self) -> usize {
        weigh::alloc(self.items.capacity() * std::mem::size_of::<M>())
            + self.items.iter().map(weigh::heap_of).sum::<usize>()
            + self
                .next_page_token
                .as_ref()
                .map_or(0, |token| weigh::alloc(token.capacity()))
    }
}

impl Cacheable for u64 {
    fn storable(&self, _policy: &CachePolicy) -> bool {
        true
    }
}
