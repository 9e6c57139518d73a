//! The Redis check.

use std::sync::Arc;
use std::time::Instant;

use crate::health::{HealthCheck, Observation};
use crate::resilience::CircuitBreaker;

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
        Self::with_tls(url, &crate::tls::TlsConfig::default())
    }

    /// [`new`](Self::new), with `tls`'s authority and client certificate
    /// for a `rediss://` URL.
    pub fn with_tls(url: &str, tls: &crate::tls::TlsConfig) -> crate::Result<Self> {
        let client = crate::tls::redis_client(url, tls).map_err(|e| {
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
