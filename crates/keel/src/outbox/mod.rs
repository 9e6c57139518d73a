//! The transactional outbox: events that are never lost.
//!
//! With a sink configured ([`EventsConfig::sink`], `KEEL_EVENTS_SINK`),
//! every event of a transaction (the entity events of its writes and the
//! events of [`Tx::emit`](crate::tx::Tx::emit) and
//! [`Tx::emit_domain`](crate::tx::Tx::emit_domain)) is written to the
//! `keel_outbox` table in that transaction, just before its commit: the
//! event exists exactly when the write does. A [`Relay`] (a lifecycle
//! component) claims committed rows, publishes them to the sink (NATS
//! JetStream, Redis Streams, or the in-process bus only), feeds the
//! in-process [`EventBus`](crate::event::EventBus) with them, and marks them
//! done. A process that dies between a commit and the publish leaves its
//! rows pending; the next relay publishes them. Delivery to the broker is
//! therefore at least once; a [`Consumer`] turns it into an effect that
//! happens once, by recording each event id in `keel_inbox` in the
//! handler's own transaction.
//!
//! With no sink (the default), nothing is written: events go to the
//! in-process bus after the commit, at most once, as without an outbox.
//! [`Tx::emit_transient`](crate::tx::Tx::emit_transient) always takes that
//! path.

mod consumer;
#[cfg(feature = "nats")]
mod nats_sink;
#[cfg(feature = "redis")]
mod redis_sink;
mod relay;
mod sink;
mod store;

use std::time::Duration;

pub use consumer::{Consumer, ConsumerStats, Handled};
#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub use nats_sink::NatsSink;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis_sink::RedisSink;
pub use relay::{OutboxCheck, OutboxStats, Relay, RelayConfig, RelayStats};
pub use sink::{Sink, SinkError, SinkFuture, WireFormat};

#[cfg(feature = "migration")]
pub(crate) use store::{
    create_inbox_table, create_outbox_tables, drop_inbox_table, drop_outbox_tables,
};
pub(crate) use store::{create_tables, insert};

use crate::env::parse as env_parse;
use crate::{Error, Result};

/// Where committed events go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkKind {
    /// No outbox: events reach the in-process bus after commit, at most
    /// once (the default).
    #[default]
    None,
    /// The outbox feeds the in-process bus only: in-process subscribers
    /// receive every committed event, after a crash too.
    Bus,
    /// NATS JetStream at `url`, into stream `stream` (created if absent,
    /// taking the subjects `{service}.>`).
    Nats {
        /// `nats://host:port`.
        url: String,
        /// The stream's name.
        stream: String,
    },
    /// Redis Streams at `url`: one stream per subject, named
    /// `{prefix}{subject}`, trimmed to about `max_len` entries.
    Redis {
        /// `redis://host:port`.
        url: String,
        /// Put before each subject to name its stream.
        prefix: String,
        /// `XADD … MAXLEN ~ max_len`.
        max_len: usize,
    },
}

impl SinkKind {
    /// Whether events are written to the outbox.
    pub fn is_durable(&self) -> bool {
        !matches!(self, SinkKind::None)
    }

    /// The sink's name in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::None => "none",
            SinkKind::Bus => "bus",
            SinkKind::Nats { .. } => "nats",
            SinkKind::Redis { .. } => "redis",
        }
    }
}

/// Where events go, and how the relay treats them.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EventsConfig {
    /// The sink; [`SinkKind::None`] turns the outbox off.
    pub sink: SinkKind,
    /// The payload published to a broker.
    pub wire: WireFormat,
    /// The relay's settings.
    pub relay: RelayConfig,
}

impl EventsConfig {
    /// Reads the configuration from the environment.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `KEEL_EVENTS_SINK` | `nats`, `redis`, `bus` or `none` | `nats` when `NATS_URL` is set, else `none` |
    /// | `NATS_URL` | the NATS server | `nats://127.0.0.1:4222` |
    /// | `KEEL_EVENTS_STREAM` | the JetStream stream | the service name in capitals |
    /// | `KEEL_EVENTS_REDIS_URL` | Redis for the Redis Streams sink | `REDIS_URL` |
    /// | `KEEL_EVENTS_REDIS_PREFIX` / `KEEL_EVENTS_REDIS_MAXLEN` | stream names, trimming | `events:` / 100000 |
    /// | `KEEL_EVENTS_WIRE` | `cloudevents` or `seed` | `cloudevents` |
    /// | `KEEL_OUTBOX_MAX_ATTEMPTS` | publish attempts before a row is dead-lettered | 10 |
    /// | `KEEL_OUTBOX_RETENTION_SECS` | how long published rows are kept | 86400 |
    /// | `KEEL_OUTBOX_DEGRADED_AFTER_SECS` | oldest pending age that makes health Degraded | 60 |
    /// | `KEEL_OUTBOX_LEASE_MS` | how long a claim holds its rows | 30000 |
    pub fn from_env(service_name: &str) -> Result<Self> {
        let nats_url = std::env::var("NATS_URL")
            .ok()
            .filter(|u| !u.trim().is_empty());
        let sink = std::env::var("KEEL_EVENTS_SINK")
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty());
        let sink = match sink.as_deref() {
            None if nats_url.is_some() => "nats",
            None => "none",
            Some(other) => other,
        };
        let stream = std::env::var("KEEL_EVENTS_STREAM")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| default_stream(service_name));
        let sink = match sink {
            "none" | "off" => SinkKind::None,
            "bus" => SinkKind::Bus,
            "nats" => SinkKind::Nats {
                url: nats_url.unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
                stream,
            },
            "redis" => SinkKind::Redis {
                url: std::env::var("KEEL_EVENTS_REDIS_URL")
                    .or_else(|_| std::env::var("REDIS_URL"))
                    .ok()
                    .filter(|u| !u.trim().is_empty())
                    .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned()),
                prefix: std::env::var("KEEL_EVENTS_REDIS_PREFIX")
                    .unwrap_or_else(|_| "events:".to_owned()),
                max_len: env_parse::<usize>("KEEL_EVENTS_REDIS_MAXLEN")?.unwrap_or(100_000),
            },
            other => {
                return Err(Error::invalid_argument(
                    "KEEL_EVENTS_SINK",
                    format!("KEEL_EVENTS_SINK is {other:?}; it must be nats, redis, bus or none"),
                ));
            }
        };
        let wire = match std::env::var("KEEL_EVENTS_WIRE").ok().as_deref() {
            None | Some("") | Some("cloudevents") => WireFormat::CloudEvents,
            Some("seed") => WireFormat::Seed,
            Some(other) => {
                return Err(Error::invalid_argument(
                    "KEEL_EVENTS_WIRE",
                    format!("KEEL_EVENTS_WIRE is {other:?}; it must be cloudevents or seed"),
                ));
            }
        };
        let mut relay = RelayConfig::default();
        if let Some(n) = env_parse::<u32>("KEEL_OUTBOX_MAX_ATTEMPTS")? {
            relay.max_attempts = n.max(1);
        }
        if let Some(secs) = env_parse::<u64>("KEEL_OUTBOX_RETENTION_SECS")? {
            relay.retention = Duration::from_secs(secs);
        }
        if let Some(ms) = env_parse::<u64>("KEEL_OUTBOX_LEASE_MS")? {
            relay.lease = Duration::from_millis(ms.max(1));
        }
        if let Some(secs) = env_parse::<u64>("KEEL_OUTBOX_DEGRADED_AFTER_SECS")? {
            relay.degraded_after = Duration::from_secs(secs);
        }
        Ok(EventsConfig { sink, wire, relay })
    }

    /// Events through `sink`, the rest default.
    pub fn with_sink(sink: SinkKind) -> Self {
        EventsConfig {
            sink,
            ..EventsConfig::default()
        }
    }
}

/// The default JetStream stream of a service: its name in capitals, with
/// `-` as `_` (`shop` → `SHOP`).
pub fn default_stream(service_name: &str) -> String {
    service_name.to_ascii_uppercase().replace('-', "_")
}

/// Milliseconds since the Unix epoch: the outbox's clock.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
