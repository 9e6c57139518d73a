//! Domain events: the envelope every write (and user code) emits, and the
//! in-process bus that delivers them.
//!
//! The envelope follows [CloudEvents 1.0](https://cloudevents.io): `id` (a
//! UUID v7), `type` (`{service}.{resource}.{created|updated|deleted|restored}`
//! or a custom domain type), `source`, `subject` (the row's key), `time`,
//! plus Keel's `actor`, `tenant` and `request_id`, and `data`: the row after
//! the write (redacted fields masked) and, for updates, the redacted diff.
//! [`Event::to_cloudevent`] and [`Event::to_seed`] give its two wire forms.
//!
//! Every write of a service queues its event on its transaction; user code
//! adds its own with [`Tx::emit`](crate::tx::Tx::emit) or
//! [`Tx::emit_domain`](crate::tx::Tx::emit_domain). After the outermost
//! commit (never after a rollback) the [`EventBus`] hands them to the
//! [`Subscription`]s that want them. In-process delivery is at most once and
//! lost if the process dies between the commit and the delivery; the durable
//! transactional outbox, which writes each event in the business
//! transaction, is the way to at-least-once delivery to brokers.

mod bus;
mod envelope;

pub use bus::{EventBus, SubscriberStats, Subscription};
pub use envelope::Event;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A typed domain event of the application, such as an order being placed.
///
/// Its event type is `{service}.{TYPE}`; its data is the value as JSON.
/// Emit it with [`Tx::emit_domain`](crate::tx::Tx::emit_domain) and receive
/// it, typed, with [`Subscription::domain`].
pub trait DomainEvent: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type after the service name, such as `order.placed`.
    const TYPE: &'static str;

    /// The event's subject, such as the order's id.
    fn subject(&self) -> Option<String> {
        None
    }
}
