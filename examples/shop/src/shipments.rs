//! Shipments, made from order events exactly once.
//!
//! One consumer, `shipments`, reads `shop.order.*` in commit order: a
//! `shop.order.placed` makes the order's shipment, a `shop.order.cancelled`
//! cancels it; the order's other events are passed over. Each event is
//! handled in a transaction that also records its id in `keel_inbox`, so a
//! redelivered event changes nothing.
//!
//! - With `NATS_URL` set, `shop serve` publishes its events to JetStream and
//!   `shop worker` consumes them ([`worker`]).
//! - Without it, the relay feeds the in-process bus and `shop serve` runs
//!   the same consumer in process ([`in_process`]).

use keel::event::{DomainEvent, Event, Subscription};
use keel::outbox::Consumer;
use keel::prelude::*;
use keel::{Error, Keel};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::entities::shipment;
use crate::orders::{OrderCancelled, OrderPlaced};

/// The consumer's name: its JetStream durable consumer and its inbox rows.
pub const CONSUMER: &str = "shipments";

/// The consumer of `shop.order.*` that writes shipments.
pub fn consumer(keel: &Keel) -> Consumer {
    let subject = format!("{}.order.*", keel.config().service_name);
    Consumer::new(keel, CONSUMER, subject, handle).max_attempts(10)
}

/// The in-process subscriber the relay feeds when there is no broker: the
/// same consumer, the same inbox.
pub fn in_process(keel: &Keel) -> Subscription {
    let consumer = consumer(keel);
    let pattern = format!("{}.order.*", keel.config().service_name);
    Subscription::new(CONSUMER, pattern, move |event| {
        let consumer = consumer.clone();
        async move { consumer.handle(event).await.map(|_| ()).map_err(Into::into) }
    })
}

fn is<D: DomainEvent>(keel: &Keel, event: &Event) -> bool {
    event.event_type == format!("{}.{}", keel.config().service_name, D::TYPE)
}

fn decode<D: DomainEvent>(event: &Event) -> keel::Result<D> {
    serde_json::from_value(event.data.clone()).map_err(|e| {
        Error::invalid_argument(
            "event",
            format!("{} {} does not decode: {e}", event.event_type, event.id),
        )
    })
}

async fn handle(tx: Tx, event: Event) -> keel::Result<()> {
    let keel = tx.keel().clone();
    if is::<OrderPlaced>(&keel, &event) {
        let placed: OrderPlaced = decode(&event)?;
        let units = placed.lines.iter().map(|(_, q)| *q).sum();
        tx.service::<shipment::Entity>()
            .create(
                tx.context(),
                shipment::NewShipment {
                    order_id: placed.order_id,
                    customer_id: placed.customer_id,
                    units,
                    status: "pending".into(),
                    event_id: event.id,
                },
            )
            .await?;
    } else if is::<OrderCancelled>(&keel, &event) {
        let cancelled: OrderCancelled = decode(&event)?;
        let found = shipment::Entity::find()
            .filter(shipment::Column::OrderId.eq(cancelled.order_id))
            .one(tx.db())
            .await
            .map_err(Error::from)?;
        // Not there yet: the placed event has not been handled; fail, and
        // the broker delivers this one again later.
        let Some(found) = found else {
            return Err(Error::rejected(
                "SHIPMENT_NOT_YET",
                format!("order {} has no shipment yet", cancelled.order_id),
            ));
        };
        tx.service::<shipment::Entity>()
            .update(
                tx.context(),
                found.id,
                shipment::ShipmentPatch::default().status("cancelled".to_owned()),
            )
            .await?;
    }
    Ok(())
}

/// `shop worker`: the shipments consumer on JetStream, until a signal.
pub async fn worker(keel: Keel) -> Result<(), String> {
    if !matches!(
        keel.config().events.sink,
        keel::outbox::SinkKind::Nats { .. } | keel::outbox::SinkKind::Redis { .. }
    ) {
        return Err("shop worker reads the broker: set NATS_URL".into());
    }
    let runtime = keel::lifecycle::Runtime::builder("shop-worker", env!("CARGO_PKG_VERSION"))
        .keel(&keel)
        .component(consumer(&keel), &["database"])
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .start()
        .await
        .map_err(|e| keel::lifecycle::StartupError::into_error(e).to_string())?;
    println!("shop worker: consuming shop.order.* as {CONSUMER}");
    runtime.run_until_signal().await;
    println!("shop worker stopped");
    Ok(())
}
