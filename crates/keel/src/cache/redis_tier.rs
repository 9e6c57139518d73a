//! The Redis tier: Lua scripts for the generation protocol, pub/sub
//! invalidation of other instances, background retry of failed
//! invalidations, every call under a timeout behind the circuit breaker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use serde::{Deserialize, Serialize};

use super::{Cache, CacheConfig, Inner, RedisKeys};
use crate::health::{HealthCheck, Observation};
use crate::resilience::CircuitBreaker;
use crate::sync::Unpoison as _;
use crate::{Error, Result};

/// How long generations live: far longer than any entry or any read.
const GENERATION_TTL_MS: u64 = 24 * 3600 * 1000;

/// KEYS: entity generation. ARGV: query prefix, hash.
const READ_QUERY: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}
";

/// KEYS: generation, value. ARGV: noted generation, payload, ttl ms.
/// Stores only if no write moved the generation since the reader noted it.
const STORE_ROW: &str = r"
if (redis.call('GET', KEYS[1]) or '') == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// KEYS: entity generation. ARGV: noted generation, query prefix, hash, payload, ttl ms.
const STORE_QUERY: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
if g == ARGV[1] then
  redis.call('SET', ARGV[2] .. g .. ':' .. ARGV[3], ARGV[4], 'PX', ARGV[5])
  return 1
end
return 0
";

/// KEYS: entity generation, then (generation, value) pairs. ARGV:
/// generation ttl ms, channel, message. Moves every generation on, deletes
/// the values, tells the other instances.
const INVALIDATE: &str = r"
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
for i = 2, #KEYS, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
  redis.call('DEL', KEYS[i + 1])
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
";

/// What a read found in Redis.
pub(super) struct Found {
    pub(super) value: Option<Vec<u8>>,
    pub(super) generation: String,
}

/// One write's invalidation, kept until Redis has it.
#[derive(Clone, Debug)]
pub(super) struct Invalidation {
    pub(super) value_keys: Vec<String>,
    pub(super) generation_keys: Vec<String>,
    pub(super) entity_generation: String,
    pub(super) scope: String,
}

/// What other instances are told.
#[derive(Serialize, Deserialize)]
struct Message {
    /// The instance that wrote (it evicted its own tier already).
    from: String,
    scope: String,
    keys: Vec<String>,
}

struct Scripts {
    read_query: Script,
    store_row: Script,
    store_query: Script,
    invalidate: Script,
}

pub(super) struct RedisTier {
    pub(super) url: String,
    /// The authority and client certificate of a `rediss://` URL.
    pub(super) tls: crate::tls::TlsConfig,
    client: redis::Client,
    connection: ConnectionManager,
    pub(super) breaker: Arc<CircuitBreaker>,
    timeout: Duration,
    channel: String,
    instance: String,
    was_down: AtomicBool,
    pending: Mutex<VecDeque<Invalidation>>,
    scripts: Scripts,
    /// Whether the subscriber has subscribed at least once (and flushed the
    /// in-process tier as it did).
    subscribed: tokio::sync::watch::Sender<bool>,
}

impl RedisTier {
    pub(super) fn new(
        url: &str,
        config: &CacheConfig,
        tls: &crate::tls::TlsConfig,
    ) -> Result<RedisTier> {
        let client = crate::tls::redis_client(url, tls).map_err(|e| {
            Error::invalid_argument(
                "redis_url",
                format!("the Redis URL is invalid: {:?}", e.kind()),
            )
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout.max(Duration::from_millis(200))))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = client
            .get_connection_manager_lazy(manager_config)
            .map_err(|e| Error::Unavailable {
                reason: "redis unreachable",
                source: Some(Box::new(e)),
            })?;
        Ok(RedisTier {
            url: url.to_owned(),
            tls: tls.clone(),
            client,
            connection,
            breaker: Arc::new(CircuitBreaker::new("redis", config.breaker.clone())),
            timeout: config.redis_timeout,
            channel: format!("{}:invalidate", config.prefix),
            instance: uuid::Uuid::now_v7().simple().to_string(),
            was_down: AtomicBool::new(false),
            pending: Mutex::new(VecDeque::new()),
            subscribed: tokio::sync::watch::Sender::new(false),
            scripts: Scripts {
                read_query: Script::new(READ_QUERY),
                store_row: Script::new(STORE_ROW),
                store_query: Script::new(STORE_QUERY),
                invalidate: Script::new(INVALIDATE),
            },
        })
    }

    /// One Redis call: refused at once while the breaker is open, bounded
    /// by the timeout; `None` on any failure (logged, counted).
    async fn call<T>(
        &self,
        cache: &Cache,
        what: &'static str,
        op: impl Future<Output = RedisResult<T>>,
    ) -> Option<T> {
        let Ok(permit) = self.breaker.try_acquire() else {
            return None;
        };
        match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(value)) => {
                permit.success();
                if self.was_down.swap(false, Ordering::SeqCst) {
                    // Invalidations may have been missed while Redis was away.
                    tracing::info!("redis is back: flushing the in-process cache tier");
                    cache.flush_l1();
                }
                Some(value)
            }
            Ok(Err(err)) => {
                permit.failure();
                self.note_down(what, &err.to_string());
                None
            }
            Err(_) => {
                permit.failure();
                self.note_down(what, "timed out");
                None
            }
        }
    }

    fn note_down(&self, what: &'static str, error: &str) {
        if !self.was_down.swap(true, Ordering::SeqCst) {
            tracing::warn!(operation = what, error = %crate::health::scrub(error), "redis call failed; the cache fails open");
        } else {
            tracing::debug!(operation = what, error = %crate::health::scrub(error), "redis call failed");
        }
    }

    /// The value (if any) and the generation to store against.
    pub(super) async fn read(&self, cache: &Cache, keys: &RedisKeys) -> Option<Found> {
        let mut connection = self.connection.clone();
        let (generation, value): (String, Option<Vec<u8>>) = match keys {
            RedisKeys::Row { value, generation } => {
                // Two plain GETs in one round trip: no script needed to read.
                let (generation, value): (Option<String>, Option<Vec<u8>>) = self
                    .call(
                        cache,
                        "read",
                        redis::cmd("MGET")
                            .arg(generation)
                            .arg(value)
                            .query_async(&mut connection),
                    )
                    .await?;
                (generation.unwrap_or_default(), value)
            }
            RedisKeys::Query {
                entity_generation,
                prefix,
                hash,
            } => {
                let mut invocation = self.scripts.read_query.key(entity_generation);
                invocation.arg(prefix).arg(hash);
                self.call(cache, "read", invocation.invoke_async(&mut connection))
                    .await?
            }
        };
        Some(Found { value, generation })
    }

    /// Stores `payload` if the generation is still `noted`: `Some(true)`
    /// stored, `Some(false)` refused (a write came in between), `None` Redis
    /// failed.
    pub(super) async fn store(
        &self,
        cache: &Cache,
        keys: &RedisKeys,
        noted: &str,
        payload: bytes::Bytes,
        ttl: Duration,
    ) -> Option<bool> {
        let mut connection = self.connection.clone();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let stored: i64 = match keys {
            RedisKeys::Row { value, generation } => {
                let mut invocation = self.scripts.store_row.key(generation);
                invocation
                    .key(value)
                    .arg(noted)
                    .arg(&payload[..])
                    .arg(ttl_ms);
                self.call(cache, "store", invocation.invoke_async(&mut connection))
                    .await?
            }
            RedisKeys::Query {
                entity_generation,
                prefix,
                hash,
            } => {
                let mut invocation = self.scripts.store_query.key(entity_generation);
                invocation
                    .arg(noted)
                    .arg(prefix)
                    .arg(hash)
                    .arg(&payload[..])
                    .arg(ttl_ms);
                self.call(cache, "store", invocation.invoke_async(&mut connection))
                    .await?
            }
        };
        Some(stored == 1)
    }

    async fn send(&self, cache: &Cache, job: &Invalidation) -> bool {
        let message = serde_json::to_string(&Message {
            from: self.instance.clone(),
            scope: job.scope.clone(),
            keys: job.value_keys.clone(),
        })
        .unwrap_or_default();
        let mut invocation = self.scripts.invalidate.key(&job.entity_generation);
        for (generation, value) in job.generation_keys.iter().zip(&job.value_keys) {
            invocation.key(generation).key(value);
        }
        invocation
            .arg(GENERATION_TTL_MS)
            .arg(&self.channel)
            .arg(message);
        let mut connection = self.connection.clone();
        self.call::<i64>(
            cache,
            "invalidate",
            invocation.invoke_async(&mut connection),
        )
        .await
        .is_some()
    }

    /// Applies an invalidation now, or queues it to be retried until Redis
    /// takes it.
    pub(super) async fn invalidate(&self, cache: &Cache, job: Invalidation) {
        if self.send(cache, &job).await {
            metrics::counter!("keel_cache_invalidations_total", "result" => "ok").increment(1);
            return;
        }
        metrics::counter!("keel_cache_invalidations_total", "result" => "deferred").increment(1);
        tracing::warn!(scope = %job.scope, "redis invalidation failed; it will be retried");
        self.pending.lock().unpoisoned().push_back(job);
    }

    /// Invalidations still waiting for Redis.
    /// Waits, at most `within`, until the subscriber has subscribed once;
    /// whether it has.
    pub(super) async fn first_subscription(&self, within: Duration) -> bool {
        let mut subscribed = self.subscribed.subscribe();
        tokio::time::timeout(within, subscribed.wait_for(|s| *s))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub(super) fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    pub(super) fn pending(&self) -> usize {
        self.pending.lock().unpoisoned().len()
    }
}

fn tier(inner: &Inner) -> Option<&RedisTier> {
    inner.redis.as_ref()
}

/// Starts the subscriber (evicts L1 entries other instances invalidate;
/// flushes L1 whenever it (re)subscribes) and the retrier of failed
/// invalidations. Both end when the cache is dropped.
pub(super) fn spawn_workers(cache: &Cache) -> Result<()> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| Error::internal("a Redis cache tier must be made inside a Tokio runtime"))?;
    let weak = Arc::downgrade(&cache.inner);
    runtime.spawn(subscriber(weak.clone()));
    runtime.spawn(retrier(weak));
    Ok(())
}

async fn subscriber(weak: Weak<Inner>) {
    let mut delay = Duration::from_millis(100);
    loop {
        let Some((client, channel, instance)) = weak.upgrade().and_then(|inner| {
            tier(&inner).map(|t| (t.client.clone(), t.channel.clone(), t.instance.clone()))
        }) else {
            return;
        };
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
            Ok(Ok(pubsub)) => {
                delay = Duration::from_millis(100);
                let Some(inner) = weak.upgrade() else { return };
                // Messages may have been missed while unsubscribed.
                let cache = Cache { inner };
                cache.flush_l1();
                if let Some(redis) = tier(&cache.inner) {
                    redis.subscribed.send_replace(true);
                }
                drop(cache);
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Some(inner) = weak.upgrade() else { return };
                    let cache = Cache { inner };
                    match serde_json::from_slice::<Message>(message.get_payload_bytes()) {
                        Ok(m) if m.from == instance => {}
                        Ok(m) => cache.evict_local(&m.keys, &m.scope),
                        Err(_) => cache.flush_l1(),
                    }
                }
                tracing::warn!("redis invalidation subscription lost; resubscribing");
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn retrier(weak: Weak<Inner>) {
    loop {
        {
            let Some(inner) = weak.upgrade() else { return };
            let Some(redis) = tier(&inner) else { return };
            if redis.pending() == 0 {
                drop(inner);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let cache = Cache {
                inner: inner.clone(),
            };
            let jobs: Vec<Invalidation> = redis.pending.lock().unpoisoned().drain(..).collect();
            let mut failed = Vec::new();
            for job in jobs {
                if redis.send(&cache, &job).await {
                    metrics::counter!("keel_cache_invalidations_total", "result" => "retried")
                        .increment(1);
                } else {
                    failed.push(job);
                }
            }
            if !failed.is_empty() {
                redis.pending.lock().unpoisoned().extend(failed);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The health check of the cache's Redis tier: Degraded while
/// invalidations wait to be retried (see also the `redis` check).
#[derive(Debug)]
pub struct RedisTierCheck {
    cache: Cache,
}

impl RedisTierCheck {
    /// Checks the Redis tier of `cache`.
    pub fn new(cache: Cache) -> Self {
        RedisTierCheck { cache }
    }
}

impl HealthCheck for RedisTierCheck {
    fn name(&self) -> &str {
        "cache"
    }

    async fn check(&self) -> Observation {
        let Some(redis) = tier(&self.cache.inner) else {
            return Observation::healthy().with_value(0.0, "pending invalidations");
        };
        let pending = redis.pending();
        let observation = if pending == 0 {
            Observation::healthy()
        } else {
            Observation::degraded(format!("{pending} invalidations wait for Redis"))
        };
        observation.with_value(pending as f64, "pending invalidations")
    }
}
