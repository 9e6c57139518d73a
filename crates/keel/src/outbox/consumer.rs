//! Consumers: a broker's events, handled once each.

// A build with neither broker keeps `Consumer::handle` (for transports of
// the application's own); the brokers' delivery helpers go unused.
#![cfg_attr(
    not(any(feature = "nats", feature = "redis")),
    allow(dead_code, unused_mut, unused_variables)
)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use sea_orm::{ConnectionTrait, DbBackend};
use tokio::sync::watch;

use super::store::statement;
use super::{SinkKind, WireFormat, now_ms};
use crate::event::{DomainEvent, Event};
use crate::lifecycle::Component;
use crate::sync::Unpoison as _;
use crate::tx::{Tx, TxOptions};
use crate::{Context, Error, Keel, Result};

type HandlerFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type Handler = Arc<dyn Fn(Tx, Event) -> HandlerFuture + Send + Sync>;

/// What [`Consumer::handle`] did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handled {
    /// The handler ran and its transaction committed, with the event's
    /// inbox row.
    Done,
    /// The inbox already had the event: the handler did not run.
    Duplicate,
}

/// What a consumer did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerStats {
    /// Events handled (the handler's transaction committed).
    pub handled: u64,
    /// Deliveries of events already handled, acknowledged unhandled.
    pub duplicates: u64,
    /// Handler failures (each one a redelivery, or a dead letter).
    pub failed: u64,
    /// Events given up on after the last attempt.
    pub dead_lettered: u64,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    duplicates: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
}

/// A durable consumer of a broker's events: a JetStream durable pull
/// consumer or a Redis Streams consumer group, chosen by the configured
/// sink (or [`source`](Self::source)).
///
/// Each event is handed, with a transaction, to the handler. Before the
/// handler runs, the event's id is written to `keel_inbox` in that same
/// transaction; if it is there already, the handler does not run. So the
/// handler's database side effects happen once per event, however often the
/// broker delivers it. After the commit the message is acknowledged; a
/// handler that fails rolls back (the inbox row with it) and the message is
/// delivered again after a backoff; after [`max_attempts`](Self::max_attempts)
/// deliveries it is dead-lettered: recorded in `keel_inbox` with outcome
/// `dead` and its error, and acknowledged. Stopping (the component's
/// `stop`) finishes the message in hand first.
///
/// ```no_run
/// # async fn demo(keel: keel::Keel) -> keel::Result<()> {
/// use keel::outbox::Consumer;
/// use keel::tx::Tx;
/// use keel::event::Event;
///
/// let shipments = Consumer::new(&keel, "shipments", "shop.order.placed", |tx: Tx, event: Event| async move {
///     // Write with `tx`: it commits together with the inbox row.
///     let _ = (tx, event);
///     Ok(())
/// })
/// .max_attempts(5);
/// # let _ = shipments;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Consumer {
    inner: Arc<Inner>,
}

struct Inner {
    keel: Keel,
    name: String,
    subject: String,
    source: SinkKind,
    wire: WireFormat,
    handler: Handler,
    max_attempts: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    counters: Counters,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.inner.name)
            .field("subject", &self.inner.subject)
            .field("source", &self.inner.source.name())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// The consumer `name` (the durable consumer's or group's name, and the
    /// inbox's) of the events on `subject`, handled by `handler`.
    pub fn new<F, Fut>(
        keel: &Keel,
        name: impl Into<String>,
        subject: impl Into<String>,
        handler: F,
    ) -> Consumer
    where
        F: Fn(Tx, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Consumer {
            inner: Arc::new(Inner {
                keel: keel.clone(),
                name: name.into(),
                subject: subject.into(),
                source: keel.config().events.sink.clone(),
                wire: keel.config().events.wire,
                handler: Arc::new(move |tx, event| Box::pin(handler(tx, event))),
                max_attempts: 5,
                min_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(60),
                counters: Counters::default(),
                stop: watch::Sender::new(false),
                task: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The consumer of the typed domain event `D` (subject
    /// `{service}.{D::TYPE}`), decoded from the event's data.
    pub fn domain<D, F, Fut>(keel: &Keel, name: impl Into<String>, handler: F) -> Consumer
    where
        D: DomainEvent,
        F: Fn(Tx, D, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let subject = format!("{}.{}", keel.config().service_name, D::TYPE);
        let handler = Arc::new(handler);
        Consumer::new(keel, name, subject, move |tx, event: Event| {
            let handler = handler.clone();
            async move {
                let data: D = serde_json::from_value(event.data.clone()).map_err(|e| {
                    Error::invalid_argument(
                        "event",
                        format!("the data of event {} does not decode: {e}", event.id),
                    )
                })?;
                handler(tx, data, event).await
            }
        })
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => tracing::warn!("a consumer's settings were changed after it was shared"),
        }
        self
    }

    /// Deliveries before an event is dead-lettered (default 5).
    #[must_use]
    pub fn max_attempts(self, attempts: u32) -> Self {
        self.edit(|i| i.max_attempts = attempts.max(1))
    }

    /// The wait before a failed event is delivered again: `min` after the
    /// first failure, doubling (with jitter) up to `max` (default 200 ms
    /// and 60 s).
    #[must_use]
    pub fn backoff(self, min: Duration, max: Duration) -> Self {
        self.edit(|i| {
            i.min_backoff = min;
            i.max_backoff = max.max(min);
        })
    }

    /// Reads from this broker instead of the configured sink's.
    #[must_use]
    pub fn source(self, source: SinkKind) -> Self {
        self.edit(|i| i.source = source)
    }

    /// The payload form the publisher used (default: the configured one).
    #[must_use]
    pub fn wire(self, wire: WireFormat) -> Self {
        self.edit(|i| i.wire = wire)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What it did so far.
    pub fn stats(&self) -> ConsumerStats {
        let c = &self.inner.counters;
        ConsumerStats {
            handled: c.handled.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        }
    }

    fn backoff_for(&self, failures: u32) -> Duration {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.inner.min_backoff)
            .with_max_delay(self.inner.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(failures.saturating_sub(1) as usize)
            .unwrap_or(self.inner.max_backoff)
    }

    /// Handles one event: in one transaction, records it in `keel_inbox`
    /// and runs the handler, or does nothing if the inbox has it already.
    /// The loops call it for each delivery; call it yourself to consume
    /// from a transport of your own.
    pub async fn handle(&self, event: Event) -> Result<Handled> {
        let span =
            crate::trace::consume(&self.inner.name, &event.event_type, &event.id.to_string());
        if let Some(trace) = &event.trace {
            trace.adopt(&span);
        }
        let outcome =
            tracing::Instrument::instrument(self.handle_in_span(event), span.clone()).await;
        match &outcome {
            Ok(Handled::Done) => span.record("keel.outcome", "handled"),
            Ok(Handled::Duplicate) => span.record("keel.outcome", "duplicate"),
            Err(_) => span
                .record("keel.outcome", "failed")
                .record("otel.status_code", "ERROR"),
        };
        outcome
    }

    async fn handle_in_span(&self, event: Event) -> Result<Handled> {
        let inner = &self.inner;
        let mut ctx = Context::actor(format!("consumer:{}", inner.name))
            .with_request_id(event.request_id.clone());
        if let Some(tenant) = &event.tenant {
            ctx = ctx.with_tenant(tenant.clone());
        }
        let outcome = inner
            .keel
            .transaction(&ctx, TxOptions::new(), |tx| {
                let (handler, event) = (inner.handler.clone(), event.clone());
                async move {
                    if !record(tx.db(), &inner.name, &event.id.to_string(), "done", None).await? {
                        return Ok(Handled::Duplicate);
                    }
                    handler(tx, event).await?;
                    Ok(Handled::Done)
                }
            })
            .await;
        match &outcome {
            Ok(Handled::Done) => {
                inner.counters.handled.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("keel_consumer_events_total", "consumer" => inner.name.clone(), "outcome" => "handled").increment(1);
            }
            Ok(Handled::Duplicate) => {
                inner.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("keel_consumer_events_total", "consumer" => inner.name.clone(), "outcome" => "duplicate").increment(1);
            }
            Err(err) => {
                inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("keel_consumer_events_total", "consumer" => inner.name.clone(), "outcome" => "failed").increment(1);
                tracing::warn!(consumer = %inner.name, event_id = %event.id, error = %err, "event handler failed");
            }
        }
        outcome
    }

    /// Records `event_id` as dead-lettered with `error`.
    async fn dead_letter(&self, event_id: &str, error: &str) {
        let inner = &self.inner;
        inner.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("keel_consumer_events_total", "consumer" => inner.name.clone(), "outcome" => "dead_lettered").increment(1);
        tracing::error!(consumer = %inner.name, %event_id, %error, "event dead-lettered");
        if let Err(err) = record(inner.keel.db(), &inner.name, event_id, "dead", Some(error)).await
        {
            tracing::error!(consumer = %inner.name, %event_id, error = %err, "the dead letter could not be recorded");
        }
    }

    /// One delivery: handle it, and say whether to acknowledge it (`Ok`),
    /// or to deliver it again after a wait (`Err`).
    async fn deliver(&self, event: Result<Event>, id: &str, attempt: u32) -> Delivery {
        let outcome = match event {
            Ok(event) => self.handle(event).await.map(|_| ()),
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) => Delivery::Ack,
            Err(err) if attempt >= self.inner.max_attempts => {
                self.dead_letter(id, &err.to_string()).await;
                Delivery::Dead
            }
            Err(_) => Delivery::Retry(self.backoff_for(attempt)),
        }
    }

    #[cfg_attr(
        not(any(feature = "nats", feature = "redis")),
        allow(
            unreachable_code,
            clippy::never_loop,
            reason = "no broker in this build: every arm returns"
        )
    )]
    async fn run(self, stop: watch::Receiver<bool>) {
        let mut failures = 0;
        loop {
            if *stop.borrow() {
                return;
            }
            let result: std::result::Result<(), String> = match self.inner.source.clone() {
                #[cfg(feature = "nats")]
                SinkKind::Nats { url, stream } => self.run_nats(&url, &stream, stop.clone()).await,
                #[cfg(feature = "redis")]
                SinkKind::Redis { url, prefix, .. } => {
                    self.run_redis(&url, &prefix, stop.clone()).await
                }
                #[allow(unreachable_patterns, reason = "every broker has its feature")]
                other => {
                    tracing::error!(
                        consumer = %self.inner.name,
                        sink = other.name(),
                        "a consumer needs a broker this build has: set KEEL_EVENTS_SINK to nats or redis (keel's `nats` or `redis` feature)"
                    );
                    return;
                }
            };
            if let Err(err) = result {
                failures += 1;
                let wait = self.backoff_for(failures).min(Duration::from_secs(5));
                tracing::warn!(consumer = %self.inner.name, error = %err, ?wait, "consumer lost its broker; reconnecting");
                let mut stop = stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            } else {
                return;
            }
        }
    }

    #[cfg(feature = "nats")]
    async fn run_nats(
        &self,
        url: &str,
        stream: &str,
        mut stop: watch::Receiver<bool>,
    ) -> std::result::Result<(), String> {
        use async_nats::jetstream::{self, AckKind, consumer};
        use futures_util::StreamExt;
        let client = crate::tls::nats_options(&self.inner.keel.config().tls)
            .connect(url)
            .await
            .map_err(|e| e.to_string())?;
        let context = jetstream::new(client);
        let stream = context
            .get_or_create_stream(jetstream::stream::Config {
                name: stream.to_owned(),
                subjects: vec![format!("{}.>", self.inner.keel.config().service_name)],
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let consumer: consumer::PullConsumer = stream
            .get_or_create_consumer(
                &self.inner.name,
                consumer::pull::Config {
                    durable_name: Some(self.inner.name.clone()),
                    filter_subject: self.inner.subject.clone(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(30),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
        loop {
            let message = tokio::select! {
                next = messages.next() => next,
                _ = stop.changed() => return Ok(()),
            };
            let message = match message {
                None => return Err("the message stream ended".into()),
                Some(Err(err)) => return Err(err.to_string()),
                Some(Ok(message)) => message,
            };
            let attempt = message
                .info()
                .map(|info| u32::try_from(info.delivered).unwrap_or(1))
                .unwrap_or(1);
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|v| v.as_str().to_owned());
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .map(|v| v.as_str().to_owned())
            };
            let trace = crate::trace::TraceContext::from_headers(
                header("traceparent").as_deref(),
                header("tracestate").as_deref(),
            );
            let event = decode(self.inner.wire, &message.payload, id.as_deref(), trace);
            let id =
                id.unwrap_or_else(|| event.as_ref().map(|e| e.id.to_string()).unwrap_or_default());
            let ack = match self.deliver(event, &id, attempt).await {
                Delivery::Ack => AckKind::Ack,
                Delivery::Dead => AckKind::Term,
                Delivery::Retry(wait) => AckKind::Nak(Some(wait)),
            };
            if let Err(err) = message.ack_with(ack).await {
                tracing::warn!(consumer = %self.inner.name, error = %err, "acknowledgement not sent; the event will come again");
            }
        }
    }

    #[cfg(feature = "redis")]
    async fn run_redis(
        &self,
        url: &str,
        prefix: &str,
        mut stop: watch::Receiver<bool>,
    ) -> std::result::Result<(), String> {
        let client = crate::tls::redis_client(url, &self.inner.keel.config().tls)
            .map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let key = format!("{prefix}{}", self.inner.subject);
        let group = &self.inner.name;
        let me = format!(
            "{group}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let created: redis::RedisResult<redis::Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        if let Err(err) = created
            && err.code() != Some("BUSYGROUP")
        {
            return Err(err.to_string());
        }
        let min_idle = u64::try_from(self.inner.min_backoff.as_millis())
            .unwrap_or(200)
            .max(1);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            // Deliveries that failed (or whose consumer died) and waited
            // long enough: claimed again, oldest first.
            let pending: redis::Value = redis::cmd("XPENDING")
                .arg(&key)
                .arg(group)
                .arg("IDLE")
                .arg(min_idle)
                .arg("-")
                .arg("+")
                .arg(32)
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            for (id, idle, deliveries) in parse_pending(&pending) {
                let due = self.backoff_for(u32::try_from(deliveries).unwrap_or(u32::MAX));
                if u128::from(idle) < due.as_millis() {
                    continue;
                }
                let claimed: redis::Value = redis::cmd("XCLAIM")
                    .arg(&key)
                    .arg(group)
                    .arg(&me)
                    .arg(idle)
                    .arg(&id)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                for (id, fields) in parse_entries(&claimed) {
                    let attempt = u32::try_from(deliveries + 1).unwrap_or(u32::MAX);
                    self.redis_deliver(&mut conn, &key, &id, &fields, attempt)
                        .await?;
                }
            }
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(group)
                .arg(&me)
                .arg("COUNT")
                .arg(16)
                .arg("BLOCK")
                .arg(min_idle.min(500))
                .arg("STREAMS")
                .arg(&key)
                .arg(">");
            let read = read.query_async::<redis::Value>(&mut conn);
            let read = tokio::select! {
                read = read => read.map_err(|e| e.to_string())?,
                _ = stop.changed() => return Ok(()),
            };
            if let redis::Value::Array(streams) = &read {
                for stream in streams {
                    if let redis::Value::Array(parts) = stream
                        && let Some(entries) = parts.get(1)
                    {
                        for (id, fields) in parse_entries(entries) {
                            self.redis_deliver(&mut conn, &key, &id, &fields, 1).await?;
                        }
                    }
                }
            }
        }
    }

    #[cfg(feature = "redis")]
    async fn redis_deliver(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        key: &str,
        entry: &str,
        fields: &Fields,
        attempt: u32,
    ) -> std::result::Result<(), String> {
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_slice())
        };
        let id = field("id").and_then(|v| std::str::from_utf8(v).ok());
        let text = |name: &str| field(name).and_then(|v| std::str::from_utf8(v).ok());
        let trace =
            crate::trace::TraceContext::from_headers(text("traceparent"), text("tracestate"));
        let event = decode(
            self.inner.wire,
            field("data").unwrap_or_default(),
            id,
            trace,
        );
        let id = id.map(str::to_owned).unwrap_or_else(|| entry.to_owned());
        match self.deliver(event, &id, attempt).await {
            Delivery::Ack | Delivery::Dead => {
                redis::cmd("XACK")
                    .arg(key)
                    .arg(&self.inner.name)
                    .arg(entry)
                    .query_async::<i64>(conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // Left pending: claimed again once it has waited `XPENDING`'s
            // idle time and its backoff.
            Delivery::Retry(_) => {}
        }
        Ok(())
    }
}

enum Delivery {
    Ack,
    Dead,
    /// Again after the wait (JetStream's Nak delay; a Redis entry waits in
    /// the pending list for its backoff instead).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    Retry(Duration),
}

/// Decodes a payload in `wire` form; `id` (the transport's message id)
/// and `trace` (its trace context: the publish's span) win over the
/// payload's own.
#[cfg_attr(not(any(feature = "nats", feature = "redis")), allow(dead_code))]
fn decode(
    wire: WireFormat,
    payload: &[u8],
    id: Option<&str>,
    trace: Option<crate::trace::TraceContext>,
) -> Result<Event> {
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| Error::invalid_argument("event", format!("the payload is not JSON: {e}")))?;
    let mut event = match wire {
        WireFormat::CloudEvents => Event::from_cloudevent(&value),
        WireFormat::Seed => Event::from_seed(&value),
    }
    .ok_or_else(|| {
        Error::invalid_argument("event", "the payload is not an event of the expected form")
    })?;
    if let Some(id) = id.and_then(|id| uuid::Uuid::parse_str(id).ok()) {
        event.id = id;
    }
    if trace.is_some() {
        event.trace = trace;
    }
    Ok(event)
}

/// `(entry id, idle ms, deliveries)` of an extended `XPENDING` reply.
#[cfg(feature = "redis")]
fn parse_pending(value: &redis::Value) -> Vec<(String, u64, u64)> {
    let redis::Value::Array(rows) = value else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| match row {
            redis::Value::Array(cols) if cols.len() >= 4 => Some((
                redis::from_redis_value_ref::<String>(&cols[0]).ok()?,
                redis::from_redis_value_ref::<u64>(&cols[2]).ok()?,
                redis::from_redis_value_ref::<u64>(&cols[3]).ok()?,
            )),
            _ => None,
        })
        .collect()
}

/// A stream entry's fields, in order.
#[cfg(feature = "redis")]
type Fields = Vec<(String, Vec<u8>)>;

/// `(entry id, fields)` of a list of stream entries.
#[cfg(feature = "redis")]
fn parse_entries(value: &redis::Value) -> Vec<(String, Fields)> {
    let redis::Value::Array(entries) = value else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            redis::Value::Array(parts) if parts.len() == 2 => {
                let id = redis::from_redis_value_ref::<String>(&parts[0]).ok()?;
                let redis::Value::Array(flat) = &parts[1] else {
                    return None;
                };
                let fields = flat
                    .chunks(2)
                    .filter_map(|kv| {
                        Some((
                            redis::from_redis_value_ref::<String>(kv.first()?).ok()?,
                            redis::from_redis_value_ref::<Vec<u8>>(kv.get(1)?).ok()?,
                        ))
                    })
                    .collect();
                Some((id, fields))
            }
            _ => None,
        })
        .collect()
}

/// Writes the inbox row of `event_id` for `consumer`, unless there is one:
/// whether it was written.
async fn record<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    event_id: &str,
    outcome: &str,
    error: Option<&str>,
) -> Result<bool> {
    let backend = conn.get_database_backend();
    let text = match backend {
        DbBackend::Postgres => {
            "INSERT INTO keel_inbox (consumer, event_id, done_ms, outcome, error) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
        }
        DbBackend::MySql => {
            "INSERT IGNORE INTO keel_inbox (consumer, event_id, done_ms, outcome, error) VALUES (?, ?, ?, ?, ?)"
        }
        _ => {
            "INSERT OR IGNORE INTO keel_inbox (consumer, event_id, done_ms, outcome, error) VALUES (?, ?, ?, ?, ?)"
        }
    };
    let done = conn
        .execute_raw(statement(
            backend,
            text,
            vec![
                consumer.into(),
                event_id.into(),
                now_ms().into(),
                outcome.into(),
                error.map(str::to_owned).into(),
            ],
        ))
        .await
        .map_err(Error::from)?;
    Ok(done.rows_affected() == 1)
}

impl Component for Consumer {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn start(&self) -> Result<()> {
        if !matches!(
            self.inner.source,
            SinkKind::Nats { .. } | SinkKind::Redis { .. }
        ) {
            return Err(Error::invalid_argument(
                "KEEL_EVENTS_SINK",
                format!(
                    "consumer {} needs a broker: set KEEL_EVENTS_SINK to nats or redis",
                    self.inner.name
                ),
            ));
        }
        self.inner.stop.send_replace(false);
        let task = tokio::spawn(self.clone().run(self.inner.stop.subscribe()));
        if let Some(old) = self.inner.task.lock().unpoisoned().replace(task) {
            old.abort();
        }
        Ok(())
    }

    /// Stops after the message in hand is handled and acknowledged.
    async fn stop(&self) -> Result<()> {
        self.inner.stop.send_replace(true);
        let task = self.inner.task.lock().unpoisoned().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}
