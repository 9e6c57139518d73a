//! The relay: from `keel_outbox` to the sink and the in-process bus.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use sea_orm::{
    ConnectionTrait, DbBackend, IsolationLevel, SqliteTransactionMode, TransactionOptions,
    TransactionTrait, Value,
};
use tokio::sync::watch;

use super::sink::{self, Sink, SinkError};
use super::store::{DEAD, PENDING, PUBLISHED, marks, statement};
use super::{WireFormat, now_ms};
use crate::event::Event;
use crate::health::{CheckPolicy, HealthCheck, HealthCoordinator, Observation};
use crate::lifecycle::Component;
use crate::sync::Unpoison as _;
use crate::{Error, Keel, Result};

/// How the relay works.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Rows claimed at a time (default 100).
    pub batch: usize,
    /// Subjects one claim takes rows of (default 16): the rows of the
    /// other subjects are left to the other relays, so several relays
    /// share a backlog of many subjects.
    pub subjects_per_claim: usize,
    /// How long a claim holds its rows (default 30 s): a relay that dies
    /// holding rows delays them this long, then another relay takes them.
    pub lease: Duration,
    /// Publish attempts before a row is dead-lettered (default 10).
    pub max_attempts: u32,
    /// The wait after the first failed attempt (default 200 ms), doubling
    /// (with jitter) up to `max_backoff`.
    pub min_backoff: Duration,
    /// The longest wait between attempts (default 60 s).
    pub max_backoff: Duration,
    /// How long published rows are kept before they are purged (default 24 h).
    pub retention: Duration,
    /// How often the relay looks for rows when nothing woke it (default
    /// 1 s): new rows wake it at once (an in-process signal after each
    /// commit, and LISTEN/NOTIFY on PostgreSQL); the poll catches the rows
    /// of another instance on MySQL and SQLite, and retries that come due.
    pub poll: Duration,
    /// The age of the oldest pending row past which the health check
    /// reports Degraded (default 60 s).
    pub degraded_after: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            batch: 100,
            subjects_per_claim: 16,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            retention: Duration::from_secs(24 * 3600),
            poll: Duration::from_secs(1),
            degraded_after: Duration::from_secs(60),
        }
    }
}

impl RelayConfig {
    /// The wait before attempt `attempt + 1`, after `attempt` failures.
    fn backoff(&self, attempt: u32) -> Duration {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max_backoff)
    }
}

/// What one relay did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Rows claimed (a row claimed again after a failure counts again).
    pub claimed: u64,
    /// Rows published (and handed to the in-process bus).
    pub published: u64,
    /// Failed publish attempts.
    pub failed: u64,
    /// Rows given up on.
    pub dead_lettered: u64,
    /// Published rows purged after the retention.
    pub purged: u64,
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    published: AtomicU64,
    failed: AtomicU64,
    dead_lettered: AtomicU64,
    purged: AtomicU64,
}

/// The state of the outbox table.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct OutboxStats {
    /// Rows not yet published.
    pub pending: u64,
    /// How long the oldest of them has waited.
    pub oldest_pending: Option<Duration>,
    /// Rows given up on, kept for inspection.
    pub dead: u64,
}

impl OutboxStats {
    /// Reads them from the database of `keel`.
    pub async fn read(keel: &Keel) -> Result<OutboxStats> {
        let backend = keel.backend();
        let row = keel
            .db()
            .query_one_raw(statement(
                backend,
                "SELECT COUNT(*) AS n, MIN(created_ms) AS oldest FROM keel_outbox WHERE state = ?",
                vec![PENDING.into()],
            ))
            .await
            .map_err(Error::from)?;
        let (pending, oldest) = match row {
            Some(row) => (
                row.try_get::<i64>("", "n").unwrap_or(0),
                row.try_get::<Option<i64>>("", "oldest").unwrap_or(None),
            ),
            None => (0, None),
        };
        let dead = keel
            .db()
            .query_one_raw(statement(
                backend,
                "SELECT COUNT(*) AS n FROM keel_outbox WHERE state = ?",
                vec![DEAD.into()],
            ))
            .await
            .map_err(Error::from)?
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .unwrap_or(0);
        Ok(OutboxStats {
            pending: pending.max(0) as u64,
            oldest_pending: oldest
                .map(|ms| Duration::from_millis(u64::try_from(now_ms() - ms).unwrap_or_default())),
            dead: dead.max(0) as u64,
        })
    }
}

/// One claimed row.
struct Claimed {
    seq: i64,
    topic: String,
    payload: String,
    attempts: u32,
}

/// What became of one claimed row.
enum Outcome {
    Published(Box<Event>),
    Failed(SinkError),
    /// Not tried: an earlier row of its subject failed in this batch.
    Skipped,
}

/// The relay of a [`Keel`]: a [`Component`] that publishes the committed
/// rows of `keel_outbox`.
///
/// It claims pending rows (at most [`RelayConfig::batch`], under a lease,
/// `FOR UPDATE SKIP LOCKED` on PostgreSQL and MySQL), publishes the rows of
/// each subject one after the other in commit order (subjects in
/// parallel), hands each published event to the in-process bus and waits
/// for its subscribers, then marks the rows done. A failed row is tried
/// again after a backoff; the rows after it on its subject wait for it, so
/// each subject stays in order. After [`RelayConfig::max_attempts`] the row
/// is dead-lettered (kept, state 2, with its last error) and its subject
/// moves on.
///
/// Several relays, in one process or many, share the table: claims are
/// serialised by a short lock (a row of `keel_outbox_lock`); a claim leases
/// its subjects (a row each in `keel_outbox_claims`, until the lease runs
/// out or the batch is marked), and a relay never claims a row of a subject
/// another relay holds or one row of which waits for a retry, so no row is
/// published by two claims while its lease holds and every subject stays
/// in order.
///
/// ```no_run
/// # async fn demo(keel: keel::Keel) -> keel::Result<()> {
/// use keel::lifecycle::Runtime;
/// use keel::outbox::Relay;
///
/// let runtime = Runtime::builder("shop", "1.0")
///     .keel(&keel)
///     .component(Relay::new(&keel)?, &["database"])
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    keel: Keel,
    sink: Option<Arc<dyn Sink>>,
    wire: WireFormat,
    config: RelayConfig,
    owner: String,
    counters: Counters,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("owner", &self.inner.owner)
            .field(
                "sink",
                &self.inner.sink.as_ref().map(|s| s.name().to_owned()),
            )
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// The relay `keel`'s configuration asks for ([`EventsConfig`](super::EventsConfig)):
    /// its sink, wire format and settings.
    pub fn new(keel: &Keel) -> Result<Relay> {
        let events = &keel.config().events;
        let sink = sink::from_config(
            &events.sink,
            &keel.config().service_name,
            &keel.config().tls,
        )?;
        Ok(Relay::build(keel, sink, events.wire, events.relay.clone()))
    }

    /// A relay publishing to `sink` (`None`: to the in-process bus only).
    pub fn build(
        keel: &Keel,
        sink: Option<Arc<dyn Sink>>,
        wire: WireFormat,
        config: RelayConfig,
    ) -> Relay {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Relay {
            inner: Arc::new(Inner {
                keel: keel.clone(),
                sink,
                wire,
                config,
                owner: format!("{}-{}", keel.config().service_name, &id[..12]),
                counters: Counters::default(),
                stop: watch::Sender::new(false),
                tasks: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The name it claims rows under (unique per relay).
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// What it did so far.
    pub fn stats(&self) -> RelayStats {
        let c = &self.inner.counters;
        RelayStats {
            claimed: c.claimed.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
            purged: c.purged.load(Ordering::Relaxed),
        }
    }

    /// One round: claims a batch, publishes it, marks it. Returns how many
    /// rows it claimed (0: nothing was due). The running component calls it
    /// in a loop; call it yourself to relay without the component.
    pub async fn run_once(&self) -> Result<usize> {
        let claimed = self.claim().await?;
        let n = claimed.len();
        if n == 0 {
            return Ok(0);
        }
        self.inner
            .counters
            .claimed
            .fetch_add(n as u64, Ordering::Relaxed);
        let outcomes = self.publish(&claimed).await;
        self.feed_bus(&outcomes).await;
        self.mark(&claimed, outcomes).await?;
        Ok(n)
    }

    /// Runs rounds until nothing is due.
    pub async fn drain(&self) -> Result<()> {
        while self.run_once().await? > 0 {}
        Ok(())
    }

    /// Removes published rows older than the retention.
    pub async fn purge(&self) -> Result<u64> {
        let keel = &self.inner.keel;
        let before = now_ms()
            - i64::try_from(self.inner.config.retention.as_millis()).unwrap_or(i64::MAX / 2);
        let text = if keel.backend() == DbBackend::MySql {
            "DELETE FROM keel_outbox WHERE state = ? AND done_ms < ? LIMIT 10000"
        } else {
            "DELETE FROM keel_outbox WHERE seq IN (SELECT seq FROM keel_outbox WHERE state = ? AND done_ms < ? LIMIT 10000)"
        };
        let mut total = 0;
        loop {
            let done = keel
                .db()
                .execute_raw(statement(
                    keel.backend(),
                    text,
                    vec![PUBLISHED.into(), before.into()],
                ))
                .await
                .map_err(Error::from)?
                .rows_affected();
            total += done;
            if done < 10000 {
                break;
            }
        }
        self.inner
            .counters
            .purged
            .fetch_add(total, Ordering::Relaxed);
        Ok(total)
    }

    async fn claim(&self) -> Result<Vec<Claimed>> {
        let keel = &self.inner.keel;
        let backend = keel.backend();
        let options = match backend {
            DbBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            _ => TransactionOptions {
                isolation_level: Some(IsolationLevel::ReadCommitted),
                ..TransactionOptions::default()
            },
        };
        let tx = keel
            .db()
            .begin_with_options(options)
            .await
            .map_err(Error::from)?;
        // One claim at a time: a claim must see the leases of the one
        // before it, or two relays could take two rows of one subject.
        let lock = "SELECT id FROM keel_outbox_lock WHERE id = 1 FOR UPDATE";
        match backend {
            // The oldest pending rows, read in order from the partial index
            // of pending rows, never by sorting the whole backlog (which a
            // planner with stale statistics of a fast-growing table picks:
            // 44 ms a claim at 20,000 pending rows, instead of < 1 ms).
            DbBackend::Postgres => {
                tx.execute_unprepared(&format!(
                    "{lock}; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off"
                ))
                .await
                .map_err(Error::from)?;
            }
            DbBackend::MySql => {
                tx.execute_unprepared(lock).await.map_err(Error::from)?;
            }
            _ => {}
        }
        let now = now_ms();
        let lock = if backend == DbBackend::Sqlite {
            ""
        } else {
            " FOR UPDATE SKIP LOCKED"
        };
        // Due rows, oldest first, of subjects no relay holds and none of
        // whose rows waits for a retry: a subject is published by one relay
        // at a time, in order.
        let text = format!(
            "SELECT seq, topic, payload, attempts FROM keel_outbox o \
             WHERE o.state = ? AND o.due_ms <= ? \
             AND o.topic NOT IN (SELECT p.topic FROM keel_outbox p \
             WHERE p.state = ? AND p.due_ms > 0 AND p.due_ms > ?) \
             AND o.topic NOT IN (SELECT c.topic FROM keel_outbox_claims c WHERE c.until_ms > ?) \
             ORDER BY o.seq LIMIT ?{lock}"
        );
        let limit = i64::try_from(self.inner.config.batch.max(1)).unwrap_or(100);
        let rows = tx
            .query_all_raw(statement(
                backend,
                &text,
                vec![
                    PENDING.into(),
                    now.into(),
                    PENDING.into(),
                    now.into(),
                    now.into(),
                    limit.into(),
                ],
            ))
            .await
            .map_err(Error::from)?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut subjects: Vec<String> = Vec::new();
        let most = self.inner.config.subjects_per_claim.max(1);
        for row in rows {
            let topic: String = row.try_get("", "topic").map_err(Error::from)?;
            if !subjects.contains(&topic) {
                if subjects.len() == most {
                    continue;
                }
                subjects.push(topic.clone());
            }
            claimed.push(Claimed {
                seq: row.try_get("", "seq").map_err(Error::from)?,
                topic,
                payload: row.try_get("", "payload").map_err(Error::from)?,
                attempts: u32::try_from(row.try_get::<i32>("", "attempts").unwrap_or(0))
                    .unwrap_or(0),
            });
        }
        if !subjects.is_empty() {
            // The lease: one row per subject, not one write per event.
            let until = now + i64::try_from(self.inner.config.lease.as_millis()).unwrap_or(30_000);
            let mut values: Vec<Value> = Vec::with_capacity(subjects.len() * 3);
            for topic in &subjects {
                values.push(topic.clone().into());
                values.push(self.inner.owner.clone().into());
                values.push(until.into());
            }
            let rows = vec!["(?, ?, ?)"; subjects.len()].join(", ");
            let text = match backend {
                DbBackend::MySql => format!(
                    "INSERT INTO keel_outbox_claims (topic, owner, until_ms) VALUES {rows} \
                     ON DUPLICATE KEY UPDATE owner = VALUES(owner), until_ms = VALUES(until_ms)"
                ),
                _ => format!(
                    "INSERT INTO keel_outbox_claims (topic, owner, until_ms) VALUES {rows} \
                     ON CONFLICT (topic) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms"
                ),
            };
            tx.execute_raw(statement(backend, &text, values))
                .await
                .map_err(Error::from)?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(claimed)
    }

    /// Publishes the rows of each subject in order, subjects in parallel.
    async fn publish(&self, claimed: &[Claimed]) -> Vec<Outcome> {
        let mut subjects: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, row) in claimed.iter().enumerate() {
            match subjects.iter_mut().find(|(t, _)| *t == row.topic) {
                Some((_, rows)) => rows.push(i),
                None => subjects.push((&row.topic, vec![i])),
            }
        }
        let per_subject = subjects.into_iter().map(|(topic, rows)| async move {
            let mut out = Vec::with_capacity(rows.len());
            let mut failed = false;
            for i in rows {
                if failed {
                    out.push((i, Outcome::Skipped));
                    continue;
                }
                let outcome = self.publish_one(topic, &claimed[i]).await;
                failed = matches!(outcome, Outcome::Failed(_));
                out.push((i, outcome));
            }
            out
        });
        let mut outcomes: Vec<Option<Outcome>> = (0..claimed.len()).map(|_| None).collect();
        for (i, outcome) in futures_util::future::join_all(per_subject)
            .await
            .into_iter()
            .flatten()
        {
            outcomes[i] = Some(outcome);
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Skipped))
            .collect()
    }

    async fn publish_one(&self, topic: &str, row: &Claimed) -> Outcome {
        let event: Event = match serde_json::from_str(&row.payload) {
            Ok(event) => event,
            Err(e) => {
                return Outcome::Failed(SinkError::permanent(format!(
                    "the stored event does not decode: {e}"
                )));
            }
        };
        if let Some(sink) = &self.inner.sink {
            let payload = self.inner.wire.encode(&event);
            let span = crate::trace::publish(sink.name(), topic, &event.id.to_string());
            if let Some(trace) = &event.trace {
                trace.adopt(&span);
            }
            let sent = tracing::Instrument::instrument(
                sink.publish(topic, &event, &payload),
                span.clone(),
            )
            .await;
            if let Err(err) = sent {
                span.record("otel.status_code", "ERROR");
                return Outcome::Failed(err);
            }
        }
        let lag = (chrono::Utc::now() - event.time)
            .to_std()
            .unwrap_or_default();
        metrics::histogram!("keel_outbox_publish_lag_seconds").record(lag.as_secs_f64());
        Outcome::Published(Box::new(event))
    }

    /// Hands the published events to the in-process subscribers that want
    /// them, and waits (within the lease) until they are handled: a row is
    /// done only once its in-process delivery is.
    async fn feed_bus(&self, outcomes: &[Outcome]) {
        let bus = self.inner.keel.events();
        let mut fed = false;
        for outcome in outcomes {
            if let Outcome::Published(event) = outcome
                && bus.wants(&event.event_type)
            {
                bus.publish((**event).clone());
                fed = true;
            }
        }
        if fed {
            let _ = tokio::time::timeout(self.inner.config.lease / 2, bus.idle()).await;
        }
    }

    async fn mark(&self, claimed: &[Claimed], outcomes: Vec<Outcome>) -> Result<()> {
        let keel = &self.inner.keel;
        let backend = keel.backend();
        let now = now_ms();
        let counters = &self.inner.counters;
        let mut done = Vec::new();
        for (row, outcome) in claimed.iter().zip(outcomes) {
            match outcome {
                Outcome::Published(_) => done.push(Value::from(row.seq)),
                Outcome::Skipped => {}
                Outcome::Failed(err) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    let attempts = row.attempts + 1;
                    let dead = err.is_permanent() || attempts >= self.inner.config.max_attempts;
                    let (state, next, done_ms) = if dead {
                        counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("keel_outbox_dead_lettered_total").increment(1);
                        tracing::error!(seq = row.seq, topic = %row.topic, attempts, error = %err, "outbox row dead-lettered");
                        (DEAD, 0, Some(now))
                    } else {
                        let wait = self.inner.config.backoff(attempts);
                        tracing::warn!(seq = row.seq, topic = %row.topic, attempts, ?wait, error = %err, "publish failed; will retry");
                        (
                            PENDING,
                            now + i64::try_from(wait.as_millis()).unwrap_or(60_000),
                            None,
                        )
                    };
                    metrics::counter!("keel_outbox_failed_total").increment(1);
                    keel.db()
                        .execute_raw(statement(
                            backend,
                            "UPDATE keel_outbox SET state = ?, attempts = ?, due_ms = ?, done_ms = ?, \
                             last_error = ? WHERE seq = ?",
                            vec![
                                state.into(),
                                i32::try_from(attempts).unwrap_or(i32::MAX).into(),
                                next.into(),
                                done_ms.into(),
                                err.to_string().into(),
                                row.seq.into(),
                            ],
                        ))
                        .await
                        .map_err(Error::from)?;
                }
            }
        }
        if !done.is_empty() {
            let n = done.len();
            let mut values: Vec<Value> = vec![PUBLISHED.into(), now.into()];
            values.extend(done);
            let text = format!(
                "UPDATE keel_outbox SET state = ?, done_ms = ? WHERE seq IN ({})",
                marks(n)
            );
            keel.db()
                .execute_raw(statement(backend, &text, values))
                .await
                .map_err(Error::from)?;
            counters.published.fetch_add(n as u64, Ordering::Relaxed);
            metrics::counter!("keel_outbox_published_total").increment(n as u64);
        }
        // The rows not tried stay as they were (pending, due); releasing
        // the subjects lets any relay take them, after the failed row.
        let mut subjects: Vec<&str> = claimed.iter().map(|c| c.topic.as_str()).collect();
        subjects.sort_unstable();
        subjects.dedup();
        let mut values: Vec<Value> = vec![self.inner.owner.clone().into()];
        values.extend(subjects.iter().map(|t| Value::from(*t)));
        let text = format!(
            "DELETE FROM keel_outbox_claims WHERE owner = ? AND topic IN ({})",
            marks(subjects.len())
        );
        keel.db()
            .execute_raw(statement(backend, &text, values))
            .await
            .map_err(Error::from)?;
        Ok(())
    }

    /// The loop the component runs until stopped.
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let wake = self.inner.keel.outbox_wake();
        let mut last_purge = Instant::now();
        let mut last_gauges: Option<Instant> = None;
        let mut errors = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let round = self.run_once().await;
            if last_gauges.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_gauges = Some(Instant::now());
                self.record_gauges().await;
            }
            if last_purge.elapsed() >= Duration::from_secs(60) {
                last_purge = Instant::now();
                if let Err(err) = self.purge().await {
                    tracing::warn!(error = %err, "outbox purge failed");
                }
            }
            let idle = match round {
                Ok(0) => {
                    errors = 0;
                    self.inner.config.poll
                }
                Ok(_) => {
                    errors = 0;
                    continue;
                }
                Err(err) => {
                    errors = errors.saturating_add(1);
                    let wait = self.inner.config.backoff(errors);
                    tracing::warn!(error = %err, ?wait, "outbox relay round failed");
                    wait
                }
            };
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn record_gauges(&self) {
        if let Ok(stats) = OutboxStats::read(&self.inner.keel).await {
            metrics::gauge!("keel_outbox_pending").set(stats.pending as f64);
            metrics::gauge!("keel_outbox_oldest_pending_seconds")
                .set(stats.oldest_pending.map(|d| d.as_secs_f64()).unwrap_or(0.0));
            metrics::gauge!("keel_outbox_dead").set(stats.dead as f64);
        }
    }

    /// Listens for PostgreSQL's notifications of new rows (sent after the
    /// commits of any instance: `Keel::outbox_committed`) and wakes the
    /// relay.
    #[cfg(feature = "postgres")]
    async fn listen(keel: Keel, mut stop: watch::Receiver<bool>) {
        use sea_orm::sqlx::postgres::PgListener;
        let wake = keel.outbox_wake();
        loop {
            let listener = async {
                let mut listener =
                    PgListener::connect_with(keel.db().get_postgres_connection_pool()).await?;
                listener.listen("keel_outbox").await?;
                Ok::<_, sea_orm::sqlx::Error>(listener)
            };
            let mut listener = tokio::select! {
                l = listener => l,
                _ = stop.changed() => return,
            };
            while let Ok(active) = listener.as_mut() {
                tokio::select! {
                    got = active.recv() => match got {
                        Ok(_) => wake.notify_waiters(),
                        Err(err) => {
                            tracing::debug!(error = %err, "outbox listener lost its connection");
                            listener = Err(err);
                        }
                    },
                    _ = stop.changed() => return,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

impl Component for Relay {
    fn name(&self) -> &str {
        "outbox-relay"
    }

    async fn start(&self) -> Result<()> {
        self.inner.stop.send_replace(false);
        let mut tasks = self.inner.tasks.lock().unpoisoned();
        tasks.push(tokio::spawn(self.clone().run(self.inner.stop.subscribe())));
        #[cfg(feature = "postgres")]
        if self.inner.keel.backend() == DbBackend::Postgres {
            tasks.push(tokio::spawn(Relay::listen(
                self.inner.keel.clone(),
                self.inner.stop.subscribe(),
            )));
        }
        Ok(())
    }

    /// Stops after the batch in hand is published and marked.
    async fn stop(&self) -> Result<()> {
        self.inner.stop.send_replace(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock().unpoisoned());
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    }

    fn health_checks(&self, health: &HealthCoordinator) -> Result<()> {
        health.register(
            OutboxCheck::new(self.inner.keel.clone(), self.inner.config.degraded_after),
            CheckPolicy::default(),
        )
    }
}

/// The outbox as a health check: Degraded when the oldest pending event is
/// older than a threshold (the relay is behind or the broker is down), or
/// when rows were dead-lettered. Not critical: writes go on.
#[derive(Clone, Debug)]
pub struct OutboxCheck {
    keel: Keel,
    degraded_after: Duration,
}

impl OutboxCheck {
    /// Watches the outbox of `keel`.
    pub fn new(keel: Keel, degraded_after: Duration) -> Self {
        OutboxCheck {
            keel,
            degraded_after,
        }
    }
}

impl HealthCheck for OutboxCheck {
    fn name(&self) -> &str {
        "outbox"
    }

    async fn check(&self) -> Observation {
        match OutboxStats::read(&self.keel).await {
            Err(err) => Observation::unhealthy(err.to_string()),
            Ok(stats) => {
                let age = stats.oldest_pending.unwrap_or_default();
                let observation = if age > self.degraded_after {
                    Observation::degraded(format!(
                        "{} events pending, the oldest for {:.1} s",
                        stats.pending,
                        age.as_secs_f64()
                    ))
                } else if stats.dead > 0 {
                    Observation::degraded(format!(
                        "{} events were dead-lettered (keel_outbox state 2)",
                        stats.dead
                    ))
                } else {
                    Observation::healthy()
                };
                observation.with_value(age.as_secs_f64(), "s behind")
            }
        }
    }
}
