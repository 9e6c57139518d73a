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

#[cfg(not(feature = "redis"))]
#[path = "no_redis.rs"]
mod redis_tier;
#[cfg(feature = "redis")]
mod redis_tier;
mod stripes;

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_tier::RedisTierCheck;

use crate::health::HealthCoordinator;
use crate::resilience::{BreakerConfig, CircuitBreaker};
use crate::resource::CachePolicy;
use crate::{Error, Result};
use redis_tier::RedisTier;
use stripes::Stripes;

/// Where the cache keeps things, and how patient it is with Redis.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// `redis://host:port/db`; without it the in-process tier alone serves
    /// (one instance).
    pub redis_url: Option<String>,
    /// The first part of every Redis key and of the invalidation channel
    /// (default `keel`).
    pub prefix: String,
    /// The timeout of every Redis call (default 50 ms).
    pub redis_timeout: Duration,
    /// The circuit breaker around Redis.
    pub breaker: BreakerConfig,
    /// Most bytes the in-process tier holds (default 64 MiB): each entry
    /// weighs its JSON encoding plus its key and a fixed overhead, and the
    /// least valuable entries go first when a new one would pass the bound.
    /// `KEEL_CACHE_L1_MAX_BYTES`.
    pub l1_max_bytes: u64,
    /// The largest value (its JSON encoding, in bytes) either tier stores
    /// (default 1 MiB); a larger row or page is served from the database
    /// every time. `KEEL_CACHE_MAX_ENTRY_BYTES`.
    pub max_entry_bytes: u64,
    /// Whether reads go through the cache (default on; `KEEL_CACHE=off`
    /// turns it off, to measure or debug without it). Writes invalidate
    /// either way, so instances that do cache stay fresh.
    pub reads: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            prefix: "keel".to_owned(),
            redis_timeout: Duration::from_millis(50),
            breaker: BreakerConfig {
                window_size: 20,
                minimum_calls: 5,
                wait_in_open: Duration::from_secs(2),
                half_open_calls: 2,
                ..BreakerConfig::default()
            },
            l1_max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            reads: true,
        }
    }
}

impl CacheConfig {
    /// The defaults, with `REDIS_URL`, `KEEL_CACHE_PREFIX`,
    /// `KEEL_CACHE_TIMEOUT_MS` and `KEEL_CACHE` (`on` / `off`) from the
    /// environment.
    pub fn from_env() -> Result<Self> {
        let mut config = CacheConfig::default();
        match std::env::var("KEEL_CACHE").map(|v| v.trim().to_ascii_lowercase()) {
            Ok(v) if v == "off" || v == "false" || v == "0" => config.reads = false,
            Ok(v) if v.is_empty() || v == "on" || v == "true" || v == "1" => {}
            Ok(v) => {
                return Err(crate::Error::invalid_argument(
                    "KEEL_CACHE",
                    format!("KEEL_CACHE must be on or off, got {v:?}"),
                ));
            }
            Err(_) => {}
        }
        if let Ok(url) = std::env::var("REDIS_URL")
            && !url.trim().is_empty()
        {
            config.redis_url = Some(url.trim().to_owned());
        }
        if let Ok(prefix) = std::env::var("KEEL_CACHE_PREFIX")
            && !prefix.trim().is_empty()
        {
            config.prefix = prefix.trim().to_owned();
        }
        if let Some(ms) = crate::config::env_parse::<u64>("KEEL_CACHE_TIMEOUT_MS")? {
            config.redis_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(bytes) = crate::config::env_parse::<u64>("KEEL_CACHE_L1_MAX_BYTES")? {
            config.l1_max_bytes = bytes;
        }
        if let Some(bytes) = crate::config::env_parse::<u64>("KEEL_CACHE_MAX_ENTRY_BYTES")? {
            config.max_entry_bytes = bytes;
        }
        Ok(config)
    }
}

/// One value in the in-process tier: its full key (the tier is keyed by
/// the key's hash, so a hit builds no string), the typed value, when it
/// expires. Shared (`Arc`): a hit clones one pointer.
struct L1Entry {
    key: Box<str>,
    value: Box<dyn Any + Send + Sync>,
    /// The value as JSON, encoded by the first hit that asks for it and
    /// shared by every later one (the entry is never changed, only replaced).
    json: OnceLock<Bytes>,
    /// The value as JSON without the resource's private fields (see
    /// [`View`](crate::View)), made like `json` by the first hit that asks
    /// for it. Not weighed: it is never larger than `json`.
    public_json: OnceLock<Bytes>,
    /// An entry past this is a miss, and is dropped by the read that finds it.
    expires: Instant,
    /// What it weighs against `l1_max_bytes`.
    weight: u32,
}

/// The in-process tier's shape: quick_cache splits the budget into shards
/// and refuses an entry heavier than (almost all of) one, so there are no
/// more shards than leave each room for two of the largest entries
/// (`max_entry_bytes`, its key and overhead); up to four per core.
fn l1_options(config: &CacheConfig) -> quick_cache::Options {
    let budget = config.l1_max_bytes.max(1);
    let largest = config
        .max_entry_bytes
        .saturating_add(L1_ENTRY_OVERHEAD as u64 + 1024);
    let fit = (budget / largest.saturating_mul(2)).max(1);
    let wanted = std::thread::available_parallelism().map_or(4, |n| n.get() * 4) as u64;
    let shards = wanted.min(fit);
    // A power of two, rounded down (quick_cache would round up).
    let shards = 1usize << (63 - shards.leading_zeros());
    // The table is sized from an estimate of the entries: a row's JSON and
    // key plus the overhead are rarely below 512 bytes.
    let estimated = usize::try_from(budget / 512)
        .unwrap_or(usize::MAX)
        .clamp(16, 1 << 20);
    quick_cache::OptionsBuilder::new()
        .shards(shards)
        .estimated_items_capacity(estimated)
        .weight_capacity(budget)
        .build()
        .expect("every option is set")
}

/// When an entry stored now with `ttl` expires (a TTL too long for the
/// clock is a century).
fn expiry(ttl: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(ttl)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

/// The in-process tier: quick_cache's sharded map (one read lock and no
/// bookkeeping on a hit; S3-FIFO eviction by weight), keyed by hash.
type L1 = quick_cache::sync::Cache<u64, Arc<L1Entry>, L1Weight, BuildNoHash>;

/// An entry weighs what [`L1Entry::weight`] says.
#[derive(Clone, Copy)]
struct L1Weight;

impl quick_cache::Weighter<u64, Arc<L1Entry>> for L1Weight {
    fn weight(&self, _key: &u64, entry: &Arc<L1Entry>) -> u64 {
        u64::from(entry.weight)
    }
}

/// The tier's keys are hashes already (the cache's `RandomState`): they
/// are used as they are.
#[derive(Clone, Copy, Default)]
struct BuildNoHash;

impl std::hash::BuildHasher for BuildNoHash {
    type Hasher = NoHash;

    fn build_hasher(&self) -> NoHash {
        NoHash(0)
    }
}

/// See [`BuildNoHash`].
struct NoHash(u64);

impl std::hash::Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What an entry costs besides its JSON: the entry, its key's hash, moka's
/// bookkeeping, the typed value's own allocations (estimated).
const L1_ENTRY_OVERHEAD: usize = 256;

/// A key given in parts, hashed and compared without being built.
struct L1Key<'a> {
    parts: [&'a str; 3],
}

impl L1Key<'_> {
    fn hash(&self, hasher: &std::hash::RandomState) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut state = hasher.build_hasher();
        for part in self.parts {
            state.write(part.as_bytes());
        }
        state.finish()
    }

    fn matches(&self, full: &str) -> bool {
        let mut rest = full;
        for part in self.parts {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }
}

impl std::fmt::Display for L1Key<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.parts.iter().try_for_each(|p| f.write_str(p))
    }
}

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
struct Counters {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    loads: AtomicU64,
    errors: AtomicU64,
    invalidations: AtomicU64,
    stale_stores_refused: AtomicU64,
}

type Flight = Arc<tokio::sync::OnceCell<Option<Arc<dyn Any + Send + Sync>>>>;

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

/// Where one entity's rows of one tenant live (see [`Cache::scope`]).
#[derive(Clone, Debug)]
pub struct Scope {
    /// `{prefix}:{entity}:{tenant}`
    base: String,
}

fn escape(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains([':', '%']) {
        part.replace('%', "%25").replace(':', "%3A").into()
    } else {
        part.into()
    }
}

impl Scope {
    fn value_key(&self, id: &str) -> String {
        format!("{}:v:{}", self.base, escape(id))
    }

    fn gen_key(&self, id: &str) -> String {
        format!("{}:g:{}", self.base, escape(id))
    }

    fn entity_gen_key(&self) -> String {
        format!("{}:g", self.base)
    }

    fn query_prefix(&self) -> String {
        format!("{}:q:", self.base)
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
    /// background; it must then be made inside a Tokio runtime.
    pub fn new(config: &CacheConfig) -> Result<Cache> {
        let l1 = L1::with_options(
            l1_options(config),
            L1Weight,
            BuildNoHash,
            Default::default(),
        );
        let redis = match &config.redis_url {
            None => None,
            Some(url) => Some(RedisTier::new(url, config)?),
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
            use crate::health::{CheckPolicy, RedisCheck};
            health.register(
                RedisCheck::new(&redis.url)?.with_breaker(redis.breaker.clone()),
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
        *self.inner.pause.lock().unwrap_or_else(|e| e.into_inner()) = hook;
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
    /// top-level fields `hidden` (a [`View`](crate::View)'s): encoded by the
    /// first such hit and shared by the later ones, so that an HTTP layer
    /// can send a hit without encoding the value again. An entry keeps two
    /// encodings, with and without the fields of the one `hidden` list its
    /// resource has.
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
        let hash = l1_key.hash(&self.inner.hasher);
        if let Some(entry) = self.l1_get(hash)
            && l1_key.matches(&entry.key)
            && let Some(value) = entry.value.downcast_ref::<T>()
        {
            self.count("l1", "hit");
            let json = json
                .map(|hidden| {
                    let slot = if hidden.is_empty() {
                        &entry.json
                    } else {
                        &entry.public_json
                    };
                    slot.get_or_init(|| {
                        crate::resource::project_json(value, hidden).unwrap_or_default()
                    })
                    .clone()
                })
                .filter(|encoded| !encoded.is_empty());
            return Some((value.clone(), json));
        }
        self.count("l1", "miss");
        None
    }

    /// The in-process entry under `hash`, unless it has expired (then it
    /// is dropped, if no newer one took its place meanwhile).
    fn l1_get(&self, hash: u64) -> Option<Arc<L1Entry>> {
        let entry = self.inner.l1.get(&hash)?;
        if entry.expires > Instant::now() {
            return Some(entry);
        }
        self.inner
            .l1
            .remove_if(&hash, |current| Arc::ptr_eq(current, &entry));
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
        let stripe = stripe.unwrap_or(hash);
        let stripe_gen = self.inner.stripes.generation(stripe);
        let keys = keys();
        let full_key = l1_key.to_string();

        // L2, noting the generation the store will be checked against.
        let mut noted = None;
        if let Some(redis) = redis {
            match redis.read(self, &keys).await {
                Some(found) => {
                    if let Some(bytes) = found.value {
                        match serde_json::from_slice::<T>(&bytes) {
                            Ok(value) => {
                                self.count("l2", "hit");
                                if use_l1 {
                                    let json = Bytes::from(bytes);
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
                Ok(json) => Bytes::from(json),
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
                    json.clone(),
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

    #[allow(clippy::too_many_arguments)]
    fn store_l1<T: Clone + Send + Sync + 'static>(
        &self,
        hash: u64,
        key: &str,
        stripe: u64,
        generation: u64,
        value: &T,
        json: Bytes,
        ttl: Duration,
    ) {
        let weight = u32::try_from(json.len() + key.len() + L1_ENTRY_OVERHEAD).unwrap_or(u32::MAX);
        let stored = self.inner.stripes.if_unchanged(stripe, generation, || {
            self.inner.l1.insert(
                hash,
                Arc::new(L1Entry {
                    key: Box::from(key),
                    value: Box::new(value.clone()),
                    json: OnceLock::from(json),
                    public_json: OnceLock::new(),
                    expires: expiry(ttl),
                    weight,
                }),
            );
        });
        if !stored {
            self.inner
                .counters
                .stale_stores_refused
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `load` once for all concurrent callers of `key`; a caller that
    /// finds a value in L1 (`recheck`) by the time it leads loads nothing.
    /// The flight stays registered until the returned guard drops, after the
    /// value was stored, so no late caller loads again meanwhile.
    async fn load_once<T, F, Fut>(
        &self,
        key: &str,
        recheck: impl FnOnce() -> Option<T>,
        load: F,
    ) -> (Result<T>, FlightGuard<'_>)
    where
        T: Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let flight: Flight = self
            .inner
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.to_owned())
            .or_default()
            .clone();
        let guard = FlightGuard {
            cache: self,
            key: key.to_owned(),
            flight: flight.clone(),
        };
        let mut load = Some(load);
        let mut failure = None;
        let (load_slot, failure_slot) = (&mut load, &mut failure);
        let shared = flight
            .get_or_init(|| async move {
                if let Some(value) = recheck() {
                    return Some(Arc::new(value) as Arc<dyn Any + Send + Sync>);
                }
                let load = load_slot.take().expect("the loader runs once");
                self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("keel_cache_loads_total").increment(1);
                match load().await {
                    Ok(value) => Some(Arc::new(value) as Arc<dyn Any + Send + Sync>),
                    Err(err) => {
                        *failure_slot = Some(err);
                        None
                    }
                }
            })
            .await
            .clone();
        if let Some(err) = failure {
            return (Err(err), guard);
        }
        let result = match shared.and_then(|v| v.downcast_ref::<T>().cloned()) {
            Some(value) => Ok(value),
            // The leader failed: read for ourselves.
            None => match load.take() {
                Some(load) => {
                    self.inner.counters.loads.fetch_add(1, Ordering::Relaxed);
                    load().await
                }
                None => Err(Error::internal("cache load failed")),
            },
        };
        (result, guard)
    }

    #[cfg(not(feature = "test-seams"))]
    async fn pause_if_hooked(&self, _id: &str) {}

    #[cfg(feature = "test-seams")]
    async fn pause_if_hooked(&self, id: &str) {
        let hook = self
            .inner
            .pause
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
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
            .unwrap_or_else(|e| e.into_inner())
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

/// Keeps a load registered until the value is stored.
struct FlightGuard<'a> {
    cache: &'a Cache,
    key: String,
    flight: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self
            .cache
            .inner
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.key);
        }
    }
}

/// What decides whether a loaded value is stored.
pub trait Cacheable {
    /// Whether to store it under `policy` (a "not found" only with negative caching).
    fn storable(&self, policy: &CachePolicy) -> bool;
}

impl<M> Cacheable for Option<M> {
    fn storable(&self, policy: &CachePolicy) -> bool {
        self.is_some() || policy.negative
    }
}

impl<M> Cacheable for crate::Page<M> {
    fn storable(&self, _policy: &CachePolicy) -> bool {
        true
    }
}

impl Cacheable for u64 {
    fn storable(&self, _policy: &CachePolicy) -> bool {
        true
    }
}

/// The Redis keys of one read.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum RedisKeys {
    Row {
        value: String,
        generation: String,
    },
    Query {
        entity_generation: String,
        prefix: String,
        hash: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `ttl` plus up to `jitter` of it, at random.
fn jittered(ttl: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return ttl;
    }
    let unit = getrandom::u64().unwrap_or(0) as f64 / u64::MAX as f64;
    ttl + ttl.mul_f64(jitter.min(1.0) * unit)
}

#[cfg(test)]
mod l1_tests {
    use super::*;

    /// Stores `value` with `json` under `key` in `cache`'s in-process tier
    /// and returns the key's hash.
    fn store(cache: &Cache, key: &str, value: u32, json: Bytes, ttl: Duration) -> u64 {
        let hash = cache.hash_str(key);
        let stripe = cache.inner.stripes.generation(hash);
        cache.store_l1(hash, key, hash, stripe, &value, json, ttl);
        hash
    }

    #[test]
    fn the_largest_entry_fits_the_in_process_tier_whatever_the_cores() {
        for (budget, largest) in [
            (4u64 << 20, 1u64 << 20),
            (64 << 20, 1 << 20),
            (1 << 20, 1 << 20),
        ] {
            let config = CacheConfig {
                l1_max_bytes: budget,
                max_entry_bytes: largest,
                ..CacheConfig::default()
            };
            let cache = Cache::new(&config).unwrap();
            let json = Bytes::from(vec![b'x'; usize::try_from(largest).unwrap() - 1]);
            let hash = store(&cache, "keel:thing:_:v:1", 1, json, Duration::from_secs(60));
            let entry = cache.l1_get(hash);
            if budget >= 2 * (largest + 2048) {
                let entry = entry.expect("stored");
                assert_eq!(entry.value.downcast_ref::<u32>(), Some(&1));
            }
        }
    }

    #[test]
    fn an_expired_entry_is_a_miss_and_is_dropped() {
        let cache = Cache::new(&CacheConfig::default()).unwrap();
        let hash = store(
            &cache,
            "keel:thing:_:v:2",
            2,
            Bytes::from_static(b"2"),
            Duration::ZERO,
        );
        assert!(cache.l1_get(hash).is_none());
        assert_eq!(cache.stats().l1_entries, 0, "dropped by the read");
    }
}
