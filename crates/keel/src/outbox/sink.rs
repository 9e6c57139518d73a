//! Where the relay publishes: NATS JetStream, Redis Streams, or a sink of
//! your own.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::event::Event;

/// The future a [`Sink`] returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A failed publish.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    message: String,
    permanent: bool,
}

impl SinkError {
    /// A failure worth retrying (the broker is down, a timeout).
    pub fn transient(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure no retry can mend (the event's type is no valid subject,
    /// the payload is larger than the broker takes): the row is
    /// dead-lettered at once.
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            permanent: true,
        }
    }

    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

/// The payload put on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireFormat {
    /// CloudEvents 1.0, structured mode ([`Event::to_cloudevent`]).
    #[default]
    CloudEvents,
    /// `{event_type, payload, timestamp, service}` ([`Event::to_seed`]).
    Seed,
}

impl WireFormat {
    /// `event` in this form, as JSON bytes.
    pub fn encode(self, event: &Event) -> Vec<u8> {
        let value = match self {
            WireFormat::CloudEvents => event.to_cloudevent(),
            WireFormat::Seed => event.to_seed(),
        };
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

/// A broker the relay publishes to.
///
/// `publish` returns once the broker has the event (for JetStream: its
/// acknowledgement); the relay marks the row done only then, and calls
/// `publish` for the events of one subject one at a time, in order.
pub trait Sink: Send + Sync + 'static {
    /// The sink's name in logs and metrics.
    fn name(&self) -> &str;

    /// Publishes `event`, whose wire form is `payload`, on subject `subject`.
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        event: &'a Event,
        payload: &'a [u8],
    ) -> SinkFuture<'a>;
}

/// Whether `subject` is a NATS subject a publisher may use: dot-separated
/// tokens, none empty, no wildcards or white space.
pub(crate) fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && c != '*' && c != '>')
        })
}

/// NATS JetStream through async-nats.
///
/// The stream is created when it does not exist (taking `{service}.>`);
/// each event is published with `Nats-Msg-Id` set to its id, so that
/// JetStream drops a second publish of it within the stream's duplicate
/// window (two minutes by default).
pub struct NatsSink {
    url: String,
    stream: String,
    subjects: String,
    timeout: Duration,
    context: Mutex<Option<async_nats::jetstream::Context>>,
}

impl std::fmt::Debug for NatsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSink")
            .field("url", &crate::health::scrub(&self.url))
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl NatsSink {
    /// Publishes to stream `stream` on the server at `url`, taking the
    /// subjects of `service` (`{service}.>`) when it creates the stream.
    pub fn new(url: impl Into<String>, stream: impl Into<String>, service: &str) -> Self {
        NatsSink {
            url: url.into(),
            stream: stream.into(),
            subjects: format!("{service}.>"),
            timeout: Duration::from_secs(3),
            context: Mutex::new(None),
        }
    }

    /// The JetStream context, connecting (and making sure the stream
    /// exists) on first use and after a failure.
    async fn context(&self) -> Result<async_nats::jetstream::Context, SinkError> {
        let mut slot = self.context.lock().await;
        if let Some(context) = slot.as_ref() {
            return Ok(context.clone());
        }
        let client = tokio::time::timeout(
            self.timeout,
            async_nats::ConnectOptions::new()
                .connection_timeout(self.timeout)
                .connect(self.url.as_str()),
        )
        .await
        .map_err(|_| SinkError::transient("NATS did not answer in time"))?
        .map_err(|e| SinkError::transient(format!("NATS is unreachable: {e}")))?;
        let mut context = async_nats::jetstream::new(client);
        context.set_timeout(self.timeout);
        context
            .get_or_create_stream(async_nats::jetstream::stream::Config {
                name: self.stream.clone(),
                subjects: vec![self.subjects.clone()],
                ..Default::default()
            })
            .await
            .map_err(|e| {
                SinkError::transient(format!("the stream {} is not available: {e}", self.stream))
            })?;
        *slot = Some(context.clone());
        Ok(context)
    }

    async fn forget(&self) {
        *self.context.lock().await = None;
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        "nats"
    }

    fn publish<'a>(
        &'a self,
        subject: &'a str,
        event: &'a Event,
        payload: &'a [u8],
    ) -> SinkFuture<'a> {
        Box::pin(async move {
            if !valid_subject(subject) {
                return Err(SinkError::permanent(format!(
                    "{subject:?} is not a valid NATS subject"
                )));
            }
            let context = self.context().await?;
            let message = async_nats::jetstream::message::PublishMessage::build()
                .payload(bytes::Bytes::copy_from_slice(payload))
                .message_id(event.id.to_string())
                .header("Content-Type", "application/json");
            let sent = context.send_publish(subject.to_owned(), message).await;
            let acked = match sent {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => {
                    use async_nats::jetstream::context::PublishErrorKind;
                    if e.kind() == PublishErrorKind::MaxPayloadExceeded {
                        return Err(SinkError::permanent(format!(
                            "the event is larger than NATS accepts: {e}"
                        )));
                    }
                    Err(e.to_string())
                }
            };
            match acked {
                Ok(()) => Ok(()),
                Err(message) => {
                    // Reconnect (and check the stream) before the next try.
                    self.forget().await;
                    Err(SinkError::transient(format!(
                        "JetStream did not acknowledge: {message}"
                    )))
                }
            }
        })
    }
}

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
        let client = redis::Client::open(url).map_err(|e| {
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

/// The sink a configuration names, if it names a broker.
pub(crate) fn from_config(
    kind: &super::SinkKind,
    service: &str,
) -> crate::Result<Option<Arc<dyn Sink>>> {
    Ok(match kind {
        super::SinkKind::None | super::SinkKind::Bus => None,
        super::SinkKind::Nats { url, stream } => Some(Arc::new(NatsSink::new(
            url.clone(),
            stream.clone(),
            service,
        ))),
        super::SinkKind::Redis {
            url,
            prefix,
            max_len,
        } => Some(Arc::new(RedisSink::new(url, prefix.clone(), *max_len)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::valid_subject;

    #[test]
    fn subjects() {
        assert!(valid_subject("shop.order.placed"));
        assert!(!valid_subject("shop..placed"));
        assert!(!valid_subject("shop.order placed"));
        assert!(!valid_subject("shop.*"));
        assert!(!valid_subject(""));
    }
}
