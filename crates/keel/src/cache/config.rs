//! What the cache is told: where Redis is, how patient to be with it, how
//! much to keep in process.

use std::time::Duration;

use crate::Result;
use crate::resilience::BreakerConfig;

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
    /// weighs every allocation it keeps (its typed value, estimated from
    /// its serde form as malloc would take it; a row's JSON; its key; a
    /// fixed overhead), and the least valuable entries go first when a new
    /// one would pass the bound. The process grows by the budget and a few
    /// MiB (measured: 64-68 MiB with the default). `KEEL_CACHE_L1_MAX_BYTES`.
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
        if let Some(ms) = crate::env::parse::<u64>("KEEL_CACHE_TIMEOUT_MS")? {
            config.redis_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(bytes) = crate::env::parse::<u64>("KEEL_CACHE_L1_MAX_BYTES")? {
            config.l1_max_bytes = bytes;
        }
        if let Some(bytes) = crate::env::parse::<u64>("KEEL_CACHE_MAX_ENTRY_BYTES")? {
            config.max_entry_bytes = bytes;
        }
        Ok(config)
    }
}
