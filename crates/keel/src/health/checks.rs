//! The built-in checks: database, Redis, disk volume. (The runtime's own
//! check is `lifecycle::RuntimeCheck`; each circuit breaker has one too.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use super::{HealthCheck, Observation};
use crate::Keel;
use crate::resilience::CircuitBreaker;

/// The database: a ping through the pool, its latency observed. Critical.
#[derive(Clone, Debug)]
pub struct DatabaseCheck {
    keel: Keel,
}

impl DatabaseCheck {
    /// Checks the database of `keel`.
    pub fn new(keel: Keel) -> Self {
        DatabaseCheck { keel }
    }
}

impl HealthCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }

    fn critical(&self) -> bool {
        true
    }

    async fn check(&self) -> Observation {
        let started = Instant::now();
        match self.keel.db().ping().await {
            Ok(()) => {
                Observation::healthy().with_value(started.elapsed().as_secs_f64() * 1000.0, "ms")
            }
            // The error's text is Keel's client-safe one: never the URL.
            Err(err) => Observation::unhealthy(crate::Error::from(err).to_string()),
        }
    }
}

/// Redis: a `PING`, its latency observed, through the Redis circuit breaker
/// when one is given. Not critical: Keel works without its cache.
pub struct RedisCheck {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    breaker: Option<Arc<CircuitBreaker>>,
}

impl std::fmt::Debug for RedisCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCheck").finish_non_exhaustive()
    }
}

impl RedisCheck {
    /// Checks the Redis server at `url` (`redis://host:port/db`). An invalid
    /// URL is `INVALID_ARGUMENT` (without the URL in the message).
    pub fn new(url: &str) -> crate::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| {
            crate::Error::invalid_argument(
                "redis_url",
                format!("the Redis URL is invalid: {}", e.kind_description()),
            )
        })?;
        Ok(RedisCheck {
            client,
            connection: tokio::sync::Mutex::new(None),
            breaker: None,
        })
    }

    /// Pings through `breaker` (a refused call is a failure of the check).
    #[must_use]
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    async fn ping(&self) -> Result<(), String> {
        let mut slot = self.connection.lock().await;
        let mut connection = match slot.take() {
            Some(c) => c,
            None => self
                .client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| redis_message(&e))?,
        };
        let pong: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|e| redis_message(&e))?;
        if pong != "PONG" {
            return Err("unexpected answer to PING".to_owned());
        }
        *slot = Some(connection);
        Ok(())
    }
}

fn redis_message(err: &redis::RedisError) -> String {
    if err.is_connection_refusal() {
        "connection refused".to_owned()
    } else if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connection_dropped() {
        "connection dropped".to_owned()
    } else {
        format!("redis error: {}", err.kind_description())
    }
}

trait KindDescription {
    fn kind_description(&self) -> String;
}

impl KindDescription for redis::RedisError {
    fn kind_description(&self) -> String {
        format!("{:?}", self.kind())
    }
}

impl HealthCheck for RedisCheck {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> Observation {
        let started = Instant::now();
        let outcome = match &self.breaker {
            None => self.ping().await,
            Some(breaker) => match breaker.try_acquire() {
                Err(_) => Err("circuit breaker open".to_owned()),
                Ok(permit) => match self.ping().await {
                    Ok(()) => {
                        permit.success();
                        Ok(())
                    }
                    Err(err) => {
                        permit.failure();
                        Err(err)
                    }
                },
            },
        };
        match outcome {
            Ok(()) => {
                Observation::healthy().with_value(started.elapsed().as_secs_f64() * 1000.0, "ms")
            }
            Err(message) => Observation::unhealthy(message),
        }
    }
}

/// Free space of the file system holding a path: Degraded below the warning
/// threshold, Unhealthy below the critical one; the observed value is the
/// free percentage. Not critical.
#[derive(Clone, Debug)]
pub struct VolumeCheck {
    path: PathBuf,
    warn_free_percent: f64,
    critical_free_percent: f64,
    warn_free_bytes: u64,
    critical_free_bytes: u64,
}

impl VolumeCheck {
    /// Checks the volume of `path`, with thresholds in percent of its size.
    pub fn new(
        path: impl Into<PathBuf>,
        warn_free_percent: f64,
        critical_free_percent: f64,
    ) -> Self {
        VolumeCheck {
            path: path.into(),
            warn_free_percent,
            critical_free_percent,
            warn_free_bytes: 0,
            critical_free_bytes: 0,
        }
    }

    /// Adds thresholds in bytes: whichever is crossed first counts.
    #[must_use]
    pub fn min_free_bytes(mut self, warn: u64, critical: u64) -> Self {
        self.warn_free_bytes = warn;
        self.critical_free_bytes = critical;
        self
    }

    /// (free bytes, total bytes) of the volume.
    fn measure(&self) -> std::io::Result<(u64, u64)> {
        let stats = rustix::fs::statvfs(&self.path)?;
        let block = stats.f_frsize;
        Ok((stats.f_bavail * block, stats.f_blocks * block))
    }
}

impl HealthCheck for VolumeCheck {
    fn name(&self) -> &str {
        "volume"
    }

    async fn check(&self) -> Observation {
        let (free, total) = match self.measure() {
            Ok(m) => m,
            Err(err) => {
                return Observation::unhealthy(format!(
                    "cannot read the volume of {}: {}",
                    self.path.display(),
                    err.kind()
                ));
            }
        };
        let percent = if total == 0 {
            0.0
        } else {
            free as f64 * 100.0 / total as f64
        };
        let what = format!(
            "{:.1}% free ({} MiB of {} MiB) at {}",
            percent,
            free >> 20,
            total >> 20,
            self.path.display()
        );
        let observation = if percent < self.critical_free_percent || free < self.critical_free_bytes
        {
            Observation::unhealthy(format!("critically low: {what}"))
        } else if percent < self.warn_free_percent || free < self.warn_free_bytes {
            Observation::degraded(format!("low: {what}"))
        } else {
            Observation::healthy()
        };
        observation.with_value((percent * 10.0).round() / 10.0, "% free")
    }
}
