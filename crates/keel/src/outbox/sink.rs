//! Where the relay publishes: NATS JetStream, Redis Streams, or a sink of
//! your own.

use std::pin::Pin;
use std::sync::Arc;

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

/// The sink a configuration names, if it names a broker.
pub(crate) fn from_config(
    kind: &super::SinkKind,
    service: &str,
    tls: &crate::tls::TlsConfig,
) -> crate::Result<Option<Arc<dyn Sink>>> {
    Ok(match kind {
        super::SinkKind::None | super::SinkKind::Bus => None,
        #[cfg(feature = "nats")]
        super::SinkKind::Nats { url, stream } => Some(Arc::new(
            super::NatsSink::new(url.clone(), stream.clone(), service).with_tls(tls.clone()),
        )),
        #[cfg(feature = "redis")]
        super::SinkKind::Redis {
            url,
            prefix,
            max_len,
        } => Some(Arc::new(super::RedisSink::with_tls(
            url,
            prefix.clone(),
            *max_len,
            tls,
        )?)),
        // `KeelConfig::check` refuses a sink this build has no feature for.
        #[allow(unreachable_patterns, reason = "every sink has its feature")]
        other => {
            let _ = (service, tls);
            return Err(crate::Error::invalid_argument(
                "configuration",
                format!(
                    "the {} event sink needs a cargo feature of keel this build does not have",
                    other.name()
                ),
            ));
        }
    })
}
