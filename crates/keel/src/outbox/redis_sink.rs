//! Redis Streams as a [`Sink`].

use std::time::Duration;

use tokio::sync::Mutex;

use super::{Sink, SinkError, SinkFuture};
use crate::event::Event;

/// Redis Streams: `XADD {prefix}{subject} MAXLEN ~ {max_len} * id {event
/// id} type {event type} data {payload}`.
pub struct RedisSink {
    client: redis::Client,
    prefix: String,
    max_len: usize,
    timeout: Duration,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("prefix", &self.prefix)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// Publishes to the Redis at `url`.
    pub fn new(url: &str, prefix: impl Into<String>, max_len: usize) -> crate::Result<Self> {
        Self::with_tls(url, prefix, max_len, &crate::tls::TlsConfig::default())
    }

    /// [`new`](Self::new), with `tls`'s authority and client certificate
    /// for a `rediss://` URL.
    pub fn with_tls(
        url: &str,
        prefix: impl Into<String>,
        max_len: usize,
        tls: &crate::tls::TlsConfig,
    ) -> crate::Result<Self> {
        let client = crate::tls::redis_client(url, tls).map_err(|e| {
            crate::Error::invalid_argument(
                "KEEL_EVENTS_REDIS_URL",
                format!("not a Redis URL: {}", crate::health::scrub(&e.to_string())),
            )
        })?;
        Ok(RedisSink {
            client,
            prefix: prefix.into(),
            max_len: max_len.max(1),
            timeout: Duration::from_secs(2),
            connection: Mutex::new(None),
        })
    }

    /// The stream an event of `subject` goes to.
    pub fn stream_of(&self, subject: &str) -> String {
        format!("{}{subject}", self.prefix)
    }

    async fn connection(&self) -> Result<redis::aio::MultiplexedConnection, SinkError> {
        let mut slot = self.connection.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn =
            tokio::time::timeout(self.timeout, self.client.get_multiplexed_async_connection())
                .await
                .map_err(|_| SinkError::transient("Redis did not answer in time"))?
                .map_err(|e| SinkError::transient(format!("Redis is unreachable: {e}")))?;
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

impl Sink for RedisSink {
    fn name(&self) -> &str {
        "redis"
    }

    fn publish<'a>(
        &'a self,
        subject: &'a str,
        event: &'a Event,
        payload: &'a [u8],
    ) -> SinkFuture<'a> {
        Box::pin(async move {
            let mut conn = self.connection().await?;
            let mut cmd = redis::cmd("XADD");
            cmd.arg(self.stream_of(subject))
                .arg("MAXLEN")
                .arg("~")
                .arg(self.max_len)
                .arg("*")
                .arg("id")
                .arg(event.id.to_string())
                .arg("type")
                .arg(&event.event_type)
                .arg("data")
                .arg(payload);
            // The publish span's context (the event's own without one).
            if let Some(trace) =
                crate::trace::TraceContext::current().or_else(|| event.trace.clone())
            {
                cmd.arg("traceparent").arg(trace.traceparent);
                if let Some(state) = trace.tracestate {
                    cmd.arg("tracestate").arg(state);
                }
            }
            match tokio::time::timeout(self.timeout, cmd.query_async::<String>(&mut conn)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => {
                    *self.connection.lock().await = None;
                    Err(SinkError::transient(format!("XADD failed: {e}")))
                }
                Err(_) => {
                    *self.connection.lock().await = None;
                    Err(SinkError::transient("Redis did not answer XADD in time"))
                }
            }
        })
    }
}
