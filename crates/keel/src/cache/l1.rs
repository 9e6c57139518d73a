//! The in-process tier: entries by key hash, weighed against a byte budget.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ttl::expiry;
use super::{Cache, CacheConfig};

/// One value in the in-process tier: its full key (the tier is keyed by
/// the key's hash, so a hit builds no string), the typed value, when it
/// expires. Shared (`Arc`): a hit clones one pointer. Never changed, only
/// replaced, so what it weighs is what it holds from insert to eviction.
pub(super) struct L1Entry {
    pub(super) key: Box<str>,
    pub(super) value: Box<dyn Any + Send + Sync>,
    /// A row's JSON (every field), which an HTTP layer sends as it is; a
    /// list or count keeps none (nothing reads it). A view without some
    /// fields is encoded from `value` by each hit that asks for it.
    pub(super) json: Option<Bytes>,
    /// An entry past this is a miss, and is dropped by the read that finds it.
    pub(super) expires: Instant,
    /// What it weighs against `l1_max_bytes`: every allocation it holds.
    pub(super) weight: u32,
}

/// The in-process tier's shape: quick_cache splits the budget into shards
/// and refuses an entry heavier than (almost all of) one, so there are no
/// more shards than leave each room for two of the largest entries (a
/// row of `max_entry_bytes` of JSON with its typed value, key and
/// overhead); up to four per core.
pub(super) fn l1_options(config: &CacheConfig) -> quick_cache::Options {
    let budget = config.l1_max_bytes.max(1);
    // A row keeps its JSON and its typed value, which rarely takes more
    // than twice the JSON.
    let largest = config
        .max_entry_bytes
        .saturating_mul(3)
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

/// The in-process tier: quick_cache's sharded map (one read lock and no
/// bookkeeping on a hit; S3-FIFO eviction by weight), keyed by hash.
pub(super) type L1 = quick_cache::sync::Cache<u64, Arc<L1Entry>, L1Weight, BuildNoHash>;

/// An entry weighs what [`L1Entry::weight`] says.
#[derive(Clone, Copy)]
pub(super) struct L1Weight;

impl quick_cache::Weighter<u64, Arc<L1Entry>> for L1Weight {
    fn weight(&self, _key: &u64, entry: &Arc<L1Entry>) -> u64 {
        u64::from(entry.weight)
    }
}

/// The tier's keys are hashes already (the cache's `RandomState`): they
/// are used as they are.
#[derive(Clone, Copy, Default)]
pub(super) struct BuildNoHash;

impl std::hash::BuildHasher for BuildNoHash {
    type Hasher = NoHash;

    fn build_hasher(&self) -> NoHash {
        NoHash(0)
    }
}

/// See [`BuildNoHash`].
pub(super) struct NoHash(u64);

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

/// What an entry costs besides its key, value and JSON: the `Arc`'d entry
/// itself (about 100 bytes, a 112-byte chunk), quick_cache's slot, its
/// index and its ghost record of evicted keys.
pub(super) const L1_ENTRY_OVERHEAD: usize = 256;

/// What an entry holding `value` under `key` with `json` weighs: every
/// allocation it keeps, as malloc takes them.
pub(super) fn entry_weight<T: super::Cacheable + serde::Serialize>(
    key: &str,
    value: &T,
    json: Option<&Bytes>,
) -> u32 {
    use super::weigh::alloc;
    let bytes = L1_ENTRY_OVERHEAD
        + alloc(key.len())
        + alloc(std::mem::size_of::<T>())
        + value.heap_bytes()
        + json.map_or(0, |j| alloc(j.len()));
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// A key given in parts, hashed and compared without being built.
pub(super) struct L1Key<'a> {
    pub(super) parts: [&'a str; 3],
}

impl L1Key<'_> {
    pub(super) fn hash(&self, hasher: &std::hash::RandomState) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut state = hasher.build_hasher();
        for part in self.parts {
            state.write(part.as_bytes());
        }
        state.finish()
    }

    pub(super) fn matches(&self, full: &str) -> bool {
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

/// `json` in an allocation of its own size: `Bytes` made from a `Vec`
/// keeps the vector's whole capacity (`serde_json::to_vec` doubles as it
/// grows), which the entry would hold unweighed.
pub(super) fn exact(mut json: Vec<u8>) -> Bytes {
    json.shrink_to_fit();
    Bytes::from(json)
}

impl Cache {
    /// The in-process entry under `hash`, unless it has expired (then it
    /// is dropped, if no newer one took its place meanwhile).
    pub(super) fn l1_get(&self, hash: u64) -> Option<Arc<L1Entry>> {
        let entry = self.inner.l1.get(&hash)?;
        if entry.expires > Instant::now() {
            return Some(entry);
        }
        self.inner
            .l1
            .remove_if(&hash, |current| Arc::ptr_eq(current, &entry));
        None
    }

    /// Stores `value` (and a row's `json`, which must own exactly its
    /// bytes: see [`exact`]) unless the stripe's generation moved on.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_l1<
        T: super::Cacheable + serde::Serialize + Clone + Send + Sync + 'static,
    >(
        &self,
        hash: u64,
        key: &str,
        stripe: u64,
        generation: u64,
        value: &T,
        json: Option<Bytes>,
        ttl: Duration,
    ) {
        let weight = entry_weight(key, value, json.as_ref());
        let stored = self.inner.stripes.if_unchanged(stripe, generation, || {
            self.inner.l1.insert(
                hash,
                Arc::new(L1Entry {
                    key: Box::from(key),
                    value: Box::new(value.clone()),
                    json,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores `value` with `json` under `key` in `cache`'s in-process tier
    /// and returns the key's hash.
    fn store(cache: &Cache, key: &str, value: u64, json: Bytes, ttl: Duration) -> u64 {
        let hash = cache.hash_str(key);
        let stripe = cache.inner.stripes.generation(hash);
        cache.store_l1(hash, key, hash, stripe, &value, Some(json), ttl);
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
                assert_eq!(entry.value.downcast_ref::<u64>(), Some(&1));
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

    #[test]
    fn the_tier_stays_within_its_byte_budget() {
        let config = CacheConfig {
            l1_max_bytes: 64 << 10,
            max_entry_bytes: 4 << 10,
            ..CacheConfig::default()
        };
        let cache = Cache::new(&config).unwrap();
        for i in 0..1_000u64 {
            let json = Bytes::from(vec![b'x'; 1024]);
            store(
                &cache,
                &format!("keel:thing:_:v:{i}"),
                i,
                json,
                Duration::from_secs(60),
            );
        }
        let stats = cache.stats();
        assert!(stats.l1_bytes <= 64 << 10, "{} bytes kept", stats.l1_bytes);
        assert!(
            stats.l1_entries > 10,
            "it keeps what fits: {}",
            stats.l1_entries
        );
        assert!(stats.l1_entries < 1_000, "and evicts the rest");
    }

    #[test]
    fn a_key_matches_only_its_own_parts_in_order() {
        let key = L1Key {
            parts: ["keel:thing:_:v:", "12", ""],
        };
        assert!(key.matches("keel:thing:_:v:12"));
        assert!(!key.matches("keel:thing:_:v:123"));
        assert!(!key.matches("keel:thing:_:v:1"));
        assert!(!key.matches("keel:other:_:v:12"));
        assert_eq!(key.to_string(), "keel:thing:_:v:12");
        // The same parts hash alike; the tier compares the full key on a
        // hit, so two keys of one hash never answer for each other.
        let hasher = std::hash::RandomState::new();
        let split = L1Key {
            parts: ["keel:thing:_:v:1", "2", ""],
        };
        assert_eq!(key.hash(&hasher), split.hash(&hasher));
        assert!(split.matches("keel:thing:_:v:12"));
    }

    #[test]
    fn a_store_behind_a_newer_generation_is_refused() {
        let cache = Cache::new(&CacheConfig::default()).unwrap();
        let key = "keel:thing:_:v:3";
        let hash = cache.hash_str(key);
        let stale = cache.inner.stripes.generation(hash);
        // A write invalidated the stripe after the reader noted its generation.
        cache.flush_l1();
        cache.store_l1(
            hash,
            key,
            hash,
            stale,
            &3u64,
            Some(Bytes::from_static(b"3")),
            Duration::from_secs(60),
        );
        assert!(
            cache.l1_get(hash).is_none(),
            "the stale value is not stored"
        );
    }
}
