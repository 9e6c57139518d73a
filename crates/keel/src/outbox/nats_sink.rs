//! NATS JetStream as a [`Sink`].

use std::time::Duration;

use tokio::sync::Mutex;

use super::{Sink, SinkError, SinkFuture};
use crate::event::Event;

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
    tls: crate::tls::TlsConfig,
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
            tls: crate::tls::TlsConfig::default(),
            context: Mutex::new(None),
        }
    }

    /// Trusts `tls`'s authority, and presents its client certificate, when
    /// the server speaks TLS (a `tls://` URL, or a server that requires it).
    #[must_use]
    pub fn with_tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.tls = tls;
        self
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
            crate::tls::nats_options(&self.tls)
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
            let mut message = async_nats::jetstream::message::PublishMessage::build()
                .payload(bytes::Bytes::copy_from_slice(payload))
                .message_id(event.id.to_string())
                .header("Content-Type", "application/json");
            // The publish span's context (the event's own without one).
            if let Some(trace) =
                crate::trace::TraceContext::current().or_else(|| event.trace.clone())
            {
                message = message.header("traceparent", trace.traceparent.as_str());
                if let Some(state) = &trace.tracestate {
                    message = message.header("tracestate", state.as_str());
                }
            }
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

/// Whether `subject` is a NATS subject a publisher may use: dot-separated
/// tokens, none empty, no wildcards or white space.
fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.split('.').all(|token| {
            !token.is_empty()
                && token
                    .chars()
                    .all(|c| !c.is_whitespace() && c != '*' && c != '>')
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
