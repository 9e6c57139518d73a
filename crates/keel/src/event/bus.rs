//! The in-process event bus: typed subscribers, after commit only, each
//! isolated from the writes and from the others.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};

use super::{DomainEvent, Event};
use crate::error::BoxError;
use crate::sync::Unpoison as _;
use crate::{Error, Resource, Result};

type HandlerFuture = Pin<Box<dyn Future<Output = std::result::Result<(), BoxError>> + Send>>;
type Handler = Arc<dyn Fn(Event) -> HandlerFuture + Send + Sync>;

/// Which events a subscription receives.
#[derive(Clone, Debug)]
enum Matcher {
    All,
    /// Dot-separated segments; `*` matches any one segment.
    Pattern(String),
    /// `{service}.{type}`.
    Domain(&'static str),
    /// `{service}.{type}` for each of these types: a resource's write
    /// events.
    Types(Vec<String>),
}

impl Matcher {
    fn resolve(&self, service: &str) -> Matcher {
        match self {
            Matcher::Domain(t) => Matcher::Pattern(format!("{service}.{t}")),
            Matcher::Types(types) => {
                Matcher::Types(types.iter().map(|t| format!("{service}.{t}")).collect())
            }
            other => other.clone(),
        }
    }

    fn matches(&self, event_type: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Pattern(pattern) => {
                let mut want = pattern.split('.');
                let mut got = event_type.split('.');
                loop {
                    match (want.next(), got.next()) {
                        (None, None) => return true,
                        (Some("*"), Some(_)) => {}
                        (Some(w), Some(g)) if w == g => {}
                        _ => return false,
                    }
                }
            }
            Matcher::Types(types) => types.iter().any(|t| t == event_type),
            Matcher::Domain(_) => false,
        }
    }
}

/// A subscriber: a name, the events it wants, a handler, a timeout.
///
/// Register it at start-up with [`EventBus::subscribe`] (or
/// [`KeelBuilder::subscriber`](crate::KeelBuilder::subscriber)). Each
/// subscriber has its own queue and worker: it receives the events it wants
/// in commit order, one at a time, each handler call in a task of its own,
/// so a handler that panics, fails or hangs past its timeout is logged,
/// counted (see [`SubscriberStats`] and the `keel_event_deliveries_total`
/// metric) and skipped, and affects neither the write nor any other
/// subscriber.
///
/// ```
/// use keel::event::{DomainEvent, Subscription};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Serialize, Deserialize)]
/// struct OrderPlaced { order_id: i64, total_cents: i64 }
///
/// impl DomainEvent for OrderPlaced {
///     const TYPE: &'static str = "order.placed";
/// }
///
/// let mailer = Subscription::domain("mailer", |placed: OrderPlaced, _event| async move {
///     println!("order {} placed", placed.order_id);
///     Ok(())
/// })
/// .timeout(Duration::from_secs(2));
/// let log = Subscription::new("product-log", "*.product.*", |event| async move {
///     println!("{} {}", event.event_type, event.subject.unwrap_or_default());
///     Ok(())
/// });
/// # let _ = (mailer, log);
/// ```
#[derive(Clone)]
pub struct Subscription {
    name: String,
    matcher: Matcher,
    timeout: Duration,
    capacity: usize,
    handler: Handler,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("matcher", &self.matcher)
            .field("timeout", &self.timeout)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Events whose type matches `pattern`: dot-separated segments where `*`
    /// stands for any one segment (`shop.product.*`, `*.order.placed`), or
    /// `*` alone for every event.
    pub fn new<F, Fut>(name: impl Into<String>, pattern: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
    {
        let pattern = pattern.into();
        let matcher = if pattern == "*" {
            Matcher::All
        } else {
            Matcher::Pattern(pattern)
        };
        Subscription::with_matcher(name, matcher, handler)
    }

    /// The typed domain event `D` (type `{service}.{D::TYPE}`), decoded from
    /// the event's data and handed over with the envelope.
    pub fn domain<D, F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        D: DomainEvent,
        F: Fn(D, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        Subscription::with_matcher(name, Matcher::Domain(D::TYPE), move |event: Event| {
            let handler = handler.clone();
            async move {
                let payload: D = decode(&event)?;
                handler(payload, event).await
            }
        })
    }

    /// The write events of resource `E`: `{service}.{resource}.created`,
    /// `.updated`, `.deleted` and `.restored` (the types
    /// [`Resource::event_type`] names), and nothing else: not a domain
    /// event whose type happens to start with the resource's name
    /// (`invoice.reminder`).
    pub fn entity<E, F, Fut>(name: impl Into<String>, handler: F) -> Self
    where
        E: Resource,
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
    {
        let types = crate::WriteAction::ALL
            .iter()
            .map(|action| E::event_type(*action).into_owned())
            .collect();
        Subscription::with_matcher(name, Matcher::Types(types), handler)
    }

    fn with_matcher<F, Fut>(name: impl Into<String>, matcher: Matcher, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), BoxError>> + Send + 'static,
    {
        Subscription {
            name: name.into(),
            matcher,
            timeout: Duration::from_secs(10),
            capacity: 1024,
            handler: Arc::new(move |event| Box::pin(handler(event))),
        }
    }

    /// How long one handler call may take before it is cancelled and
    /// counted as timed out (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many events may wait for this subscriber (default 1024). When the
    /// queue is full, further events are dropped for this subscriber (logged
    /// and counted): the in-process bus never slows a write down. Delivery
    /// that survives a crash is the outbox's job.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// The subscriber's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn decode<D: DeserializeOwned>(event: &Event) -> std::result::Result<D, BoxError> {
    serde_json::from_value(event.data.clone()).map_err(|e| {
        format!(
            "the data of event {} ({}) does not decode: {e}",
            event.id, event.event_type
        )
        .into()
    })
}

/// What happened to the events a subscriber was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Handled without error.
    pub delivered: u64,
    /// The handler returned an error.
    pub failed: u64,
    /// The handler panicked.
    pub panicked: u64,
    /// The handler ran past its timeout and was cancelled.
    pub timed_out: u64,
    /// Not queued: the subscriber's queue was full.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    timed_out: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SubscriberStats {
        SubscriberStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

struct Slot {
    name: Arc<str>,
    matcher: Matcher,
    sender: mpsc::Sender<Event>,
    counters: Arc<Counters>,
}

/// The in-process event bus of a [`Keel`](crate::Keel): see
/// [`Keel::events`](crate::Keel::events).
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    service: String,
    slots: RwLock<Vec<Slot>>,
    pending: AtomicUsize,
    idle: Notify,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = read(&self.inner.slots)
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        f.debug_struct("EventBus")
            .field("subscribers", &names)
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unpoisoned()
}

impl EventBus {
    pub(crate) fn new(service: &str) -> Self {
        EventBus {
            inner: Arc::new(BusInner {
                service: service.to_owned(),
                slots: RwLock::new(Vec::new()),
                pending: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Registers a subscriber and starts its worker. Call it at start-up,
    /// inside the Tokio runtime. Two subscribers may not share a name.
    pub fn subscribe(&self, subscription: Subscription) -> Result<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::internal("EventBus::subscribe must be called inside a Tokio runtime")
        })?;
        let mut slots = self.inner.slots.write().unpoisoned();
        if slots.iter().any(|s| *s.name == *subscription.name) {
            return Err(Error::invalid_argument(
                "subscriber",
                format!("a subscriber named {:?} already exists", subscription.name),
            ));
        }
        let (sender, receiver) = mpsc::channel(subscription.capacity);
        let name: Arc<str> = Arc::from(subscription.name.as_str());
        let counters = Arc::new(Counters::default());
        runtime.spawn(worker(
            name.clone(),
            subscription.handler,
            subscription.timeout,
            counters.clone(),
            receiver,
            Arc::downgrade(&self.inner),
        ));
        slots.push(Slot {
            name,
            matcher: subscription.matcher.resolve(&self.inner.service),
            sender,
            counters,
        });
        Ok(())
    }

    /// The names of the registered subscribers.
    pub fn subscribers(&self) -> Vec<String> {
        read(&self.inner.slots)
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    }

    /// What happened so far to the events sent to subscriber `name`.
    pub fn stats(&self, name: &str) -> Option<SubscriberStats> {
        read(&self.inner.slots)
            .iter()
            .find(|s| &*s.name == name)
            .map(|s| s.counters.snapshot())
    }

    /// Waits until every event published so far has been handled (or has
    /// failed, panicked or timed out) by every subscriber: for tests and for
    /// a graceful shutdown.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Whether any subscriber wants events of type `event_type`: when none
    /// does, Keel does not build the event of a write at all.
    pub fn wants(&self, event_type: &str) -> bool {
        read(&self.inner.slots)
            .iter()
            .any(|s| s.matcher.matches(event_type))
    }

    /// Queues `event` for every subscriber that wants it, without waiting.
    /// Keel calls it after each commit; call it yourself only for events
    /// that belong to no transaction.
    pub fn publish(&self, event: Event) {
        let slots = read(&self.inner.slots);
        for slot in slots
            .iter()
            .filter(|s| s.matcher.matches(&event.event_type))
        {
            self.inner.pending.fetch_add(1, Ordering::SeqCst);
            if let Err(err) = slot.sender.try_send(event.clone()) {
                self.inner.done();
                slot.counters.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(
                    "keel_event_deliveries_total",
                    "subscriber" => slot.name.to_string(),
                    "outcome" => "dropped"
                )
                .increment(1);
                tracing::warn!(
                    subscriber = %slot.name,
                    event_type = %event.event_type,
                    event_id = %event.id,
                    reason = match err {
                        mpsc::error::TrySendError::Full(_) => "queue full",
                        mpsc::error::TrySendError::Closed(_) => "subscriber stopped",
                    },
                    "event dropped for a subscriber"
                );
            }
        }
    }
}

impl BusInner {
    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

async fn worker(
    name: Arc<str>,
    handler: Handler,
    timeout: Duration,
    counters: Arc<Counters>,
    mut receiver: mpsc::Receiver<Event>,
    bus: Weak<BusInner>,
) {
    while let Some(event) = receiver.recv().await {
        let (id, event_type) = (event.id, event.event_type.clone());
        let started = Instant::now();
        let mut call = tokio::spawn(handler(event));
        let outcome = match tokio::time::timeout(timeout, &mut call).await {
            Ok(Ok(Ok(()))) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                "delivered"
            }
            Ok(Ok(Err(err))) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subscriber = %name, %event_type, event_id = %id, error = %err, "subscriber failed");
                "failed"
            }
            Ok(Err(join)) if join.is_panic() => {
                counters.panicked.fetch_add(1, Ordering::Relaxed);
                tracing::error!(subscriber = %name, %event_type, event_id = %id, "subscriber panicked");
                "panicked"
            }
            Ok(Err(_)) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subscriber = %name, %event_type, event_id = %id, "subscriber task was cancelled");
                "failed"
            }
            Err(_) => {
                call.abort();
                counters.timed_out.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subscriber = %name, %event_type, event_id = %id, ?timeout, "subscriber timed out");
                "timed_out"
            }
        };
        metrics::counter!(
            "keel_event_deliveries_total",
            "subscriber" => name.to_string(),
            "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!("keel_event_handler_duration_seconds", "subscriber" => name.to_string())
            .record(started.elapsed().as_secs_f64());
        match bus.upgrade() {
            Some(bus) => bus.done(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Matcher;

    #[test]
    fn patterns_match_by_segment() {
        let m = Matcher::Pattern("shop.product.*".into());
        assert!(m.matches("shop.product.created"));
        assert!(!m.matches("shop.product"));
        assert!(!m.matches("shop.product.created.extra"));
        assert!(!m.matches("shop.order.placed"));
        let m = Matcher::Types(vec!["product.deleted".into(), "product.created".into()])
            .resolve("shop");
        assert!(m.matches("shop.product.deleted"));
        assert!(!m.matches("shop.product.reminder"));
        assert!(!m.matches("product.deleted"));
        let m = Matcher::Domain("order.placed").resolve("shop");
        assert!(m.matches("shop.order.placed"));
        assert!(!m.matches("other.order.placed"));
        assert!(Matcher::All.matches("anything.at.all"));
    }
}
