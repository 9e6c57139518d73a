//! The transactional outbox on every database: rows commit with their
//! write or not at all, the relay publishes them (to Redis Streams, NATS
//! JetStream and the in-process bus) in order, once per claim, redacted;
//! consumers act once per event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel::event::{DomainEvent, Event};
use keel::outbox::{Consumer, EventsConfig, OutboxStats, Relay, RelayConfig, SinkKind, WireFormat};
use keel::tx::TxOptions;
use keel::{Context, Error, Keel};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::{Env, collect_events, nats_available};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

keel_tests::cases![
    outbox_rows_commit_with_their_write_and_never_after_a_rollback,
    the_relay_feeds_the_bus_in_commit_order,
    redis_streams_get_every_event_in_order_redacted_in_both_wire_forms,
    two_relays_publish_a_thousand_events_each_once,
    jetstream_gets_each_event_with_its_id_and_consumers_act_once,
    redis_consumer_retries_and_dead_letters,
    a_broker_that_is_down_fills_the_backlog_then_dead_letters_after_max_attempts,
    writes_outside_a_transaction_put_the_same_event_in_the_outbox,
    stopping_a_consumer_finishes_the_event_in_hand,
    every_field_type_travels_through_the_outbox_exactly,
];

fn ctx() -> Context {
    Context::actor("alice").with_request_id("req-outbox")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    order: i64,
}

impl DomainEvent for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    fn subject(&self) -> Option<String> {
        Some(self.order.to_string())
    }
}

/// A service name of the test's own: its subjects overlap no other test's.
fn service() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn keel_with(env: &Env, service: &str, events: EventsConfig) -> Keel {
    env.db
        .builder()
        .service_name(service)
        .events(events)
        .connect()
        .await
        .expect("connect with an outbox")
}

fn fast(mut config: RelayConfig) -> RelayConfig {
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(100);
    config.poll = Duration::from_millis(50);
    config
}

async fn outbox_rows(keel: &Keel) -> i64 {
    let row = keel
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            keel.backend(),
            "SELECT COUNT(*) AS n FROM keel_outbox",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

/// A Keel on the test's database publishing to Redis Streams under a
/// service name and a stream prefix of its own: (keel, service, prefix).
async fn redis_streams_keel(env: &Env) -> (Keel, String, String) {
    let (service, prefix) = (service(), redis_prefix());
    let sink = SinkKind::Redis {
        url: keel_tests::redis_url(),
        prefix: prefix.clone(),
        max_len: 1000,
    };
    let keel = keel_with(env, &service, EventsConfig::with_sink(sink)).await;
    (keel, service, prefix)
}

fn redis_prefix() -> String {
    format!("keel-test-{}:", uuid::Uuid::new_v4().simple())
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(keel_tests::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every entry of stream `key`: (event id, data).
async fn xrange(key: &str) -> Vec<(String, serde_json::Value)> {
    let mut conn = redis_conn().await;
    let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            (
                fields["id"].clone(),
                serde_json::from_str(&fields["data"]).unwrap(),
            )
        })
        .collect()
}

async fn outbox_rows_commit_with_their_write_and_never_after_a_rollback(env: Env) {
    let service = service();
    let keel = keel_with(&env, &service, EventsConfig::with_sink(SinkKind::Bus)).await;
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("ob-1", 100))
        .await
        .unwrap();
    assert_eq!(outbox_rows(&keel).await, 1, "the create's event is a row");

    // A transaction that fails: its write, its entity event and its domain
    // event all vanish.
    let failed: keel::Result<()> = keel
        .transaction(&ctx(), TxOptions::new(), |tx| async move {
            tx.service::<product::Entity>()
                .update(&ctx(), p.id, ProductPatch::default().price_cents(5))
                .await?;
            tx.emit_domain(&OrderPlaced { order: 1 })?;
            Err(Error::invalid_argument("test", "roll back"))
        })
        .await;
    failed.unwrap_err();
    assert_eq!(outbox_rows(&keel).await, 1, "a rollback writes no row");

    // A savepoint that fails takes its events with it; the outer ones stay.
    keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
        tx.emit_domain(&OrderPlaced { order: 2 })?;
        let inner: keel::Result<()> = tx
            .transaction(|sp| async move {
                sp.emit_domain(&OrderPlaced { order: 3 })?;
                Err(Error::invalid_argument("test", "roll back the savepoint"))
            })
            .await;
        inner.unwrap_err();
        // Transient: never a row.
        tx.emit_transient(Event::custom(
            tx.context(),
            "x",
            "x.ping",
            serde_json::json!({}),
        ));
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(outbox_rows(&keel).await, 2);

    // The one-statement path is not taken with the outbox on: an update
    // outside a transaction writes its row too.
    products
        .update(&ctx(), p.id, ProductPatch::default().price_cents(7))
        .await
        .unwrap();
    assert_eq!(outbox_rows(&keel).await, 3);

    // Without a sink, nothing is written.
    let plain = env.db.builder().connect().await.unwrap();
    plain
        .service::<product::Entity>()
        .update(&ctx(), p.id, ProductPatch::default().price_cents(8))
        .await
        .unwrap();
    assert_eq!(outbox_rows(&keel).await, 3, "no sink, no outbox row");
    let stats = OutboxStats::read(&keel).await.unwrap();
    assert_eq!(stats.pending, 3);
    assert!(stats.oldest_pending.is_some());
}

async fn the_relay_feeds_the_bus_in_commit_order(env: Env) {
    let service = service();
    let keel = keel_with(&env, &service, EventsConfig::with_sink(SinkKind::Bus)).await;
    let seen = collect_events(&keel, "all", "*");
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("ob-bus", 1))
        .await
        .unwrap();
    for price in 2..=6 {
        products
            .update(&ctx(), p.id, ProductPatch::default().price_cents(price))
            .await
            .unwrap();
    }
    keel.events().idle().await;
    assert!(
        seen.lock().unwrap().is_empty(),
        "with the outbox on, the bus is fed by the relay only"
    );
    let relay = Relay::build(
        &keel,
        None,
        WireFormat::CloudEvents,
        fast(RelayConfig::default()),
    );
    relay.drain().await.unwrap();
    let prices: Vec<i64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.data["row"]["price_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(prices, [1, 2, 3, 4, 5, 6]);
    assert_eq!(relay.stats().published, 6);
    assert_eq!(OutboxStats::read(&keel).await.unwrap().pending, 0);
    // Published rows are kept for the retention, then purged.
    assert_eq!(relay.purge().await.unwrap(), 0);
    let mut config = fast(RelayConfig::default());
    config.retention = Duration::ZERO;
    let purging = Relay::build(&keel, None, WireFormat::CloudEvents, config);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(purging.purge().await.unwrap(), 6);
    assert_eq!(outbox_rows(&keel).await, 0);
}

async fn redis_streams_get_every_event_in_order_redacted_in_both_wire_forms(env: Env) {
    if !keel_tests::redis_available() {
        return;
    }
    for wire in [WireFormat::CloudEvents, WireFormat::Seed] {
        let service = service();
        let prefix = redis_prefix();
        let mut events = EventsConfig::with_sink(SinkKind::Redis {
            url: keel_tests::redis_url(),
            prefix: prefix.clone(),
            max_len: 10_000,
        });
        events.wire = wire;
        let keel = keel_with(&env, &service, events).await;
        let products = keel.service::<product::Entity>();
        let mut input = NewProduct::new(format!("ob-red-{wire:?}"), 10);
        input.supplier_token = Some("tok-outbox-s3cret".into());
        let p = products.create(&ctx(), input).await.unwrap();
        for price in [11, 12] {
            products
                .update(
                    &ctx(),
                    p.id,
                    ProductPatch::default()
                        .price_cents(price)
                        .supplier_token(Some(format!("tok-{price}-s3cret"))),
                )
                .await
                .unwrap();
        }
        keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
            tx.emit_domain(&OrderPlaced { order: 9 })
        })
        .await
        .unwrap();
        let relay = Relay::new(&keel).unwrap();
        relay.drain().await.unwrap();
        assert_eq!(relay.stats().published, 4);

        let created = xrange(&format!("{prefix}{service}.product.created")).await;
        let updated = xrange(&format!("{prefix}{service}.product.updated")).await;
        let placed = xrange(&format!("{prefix}{service}.order.placed")).await;
        assert_eq!((created.len(), updated.len(), placed.len()), (1, 2, 1));
        let data = |v: &serde_json::Value| match wire {
            WireFormat::CloudEvents => v["data"].clone(),
            _ => v["payload"].clone(),
        };
        let prices: Vec<i64> = updated
            .iter()
            .map(|(_, v)| data(v)["row"]["price_cents"].as_i64().unwrap())
            .collect();
        assert_eq!(prices, [11, 12], "in commit order");
        assert_eq!(data(&placed[0].1)["order"], 9);
        for (id, value) in created.iter().chain(&updated).chain(&placed) {
            let text = value.to_string();
            assert!(!text.contains("s3cret"), "{wire:?} leaks a secret: {text}");
            uuid::Uuid::parse_str(id).unwrap();
            if wire == WireFormat::CloudEvents {
                assert_eq!(&value["id"], id);
                assert_eq!(value["specversion"], "1.0");
            }
        }
        assert_eq!(data(&created[0].1)["row"]["supplier_token"], "[redacted]");
    }
}

async fn two_relays_publish_a_thousand_events_each_once(env: Env) {
    if !keel_tests::redis_available() {
        return;
    }
    let service = service();
    let prefix = redis_prefix();
    let sink = SinkKind::Redis {
        url: keel_tests::redis_url(),
        prefix: prefix.clone(),
        max_len: 100_000,
    };
    let keel = keel_with(&env, &service, EventsConfig::with_sink(sink.clone())).await;
    let other = keel_with(&env, &service, EventsConfig::with_sink(sink)).await;
    // 1,000 domain events on 10 subjects, 50 transactions of 20.
    for batch in 0..50i64 {
        keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
            for i in 0..20i64 {
                let n = batch * 20 + i;
                tx.emit(Event::custom(
                    tx.context(),
                    tx.keel().config().service_name.as_str(),
                    format!("{}.load.s{}", tx.keel().config().service_name, n % 10),
                    serde_json::json!({ "n": n }),
                ));
            }
            Ok(())
        })
        .await
        .unwrap();
    }
    let mut config = fast(RelayConfig::default());
    config.batch = 25;
    config.subjects_per_claim = 3;
    let a = Relay::build(
        &keel,
        Some(Arc::new(
            keel::outbox::RedisSink::new(&keel_tests::redis_url(), prefix.clone(), 100_000)
                .unwrap(),
        )),
        WireFormat::CloudEvents,
        config.clone(),
    );
    let b = Relay::build(
        &other,
        Some(Arc::new(
            keel::outbox::RedisSink::new(&keel_tests::redis_url(), prefix.clone(), 100_000)
                .unwrap(),
        )),
        WireFormat::CloudEvents,
        config,
    );
    // Each relay claims, publishes and marks, over and over, at the same
    // time, until nothing is pending.
    let started = std::time::Instant::now();
    while OutboxStats::read(&keel).await.unwrap().pending > 0 {
        let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
        ra.unwrap();
        rb.unwrap();
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.published + sb.published, 1000, "{sa:?} {sb:?}");
    assert_eq!(sa.failed + sb.failed, 0);
    assert!(
        sa.published > 0 && sb.published > 0,
        "both relays worked: {sa:?} {sb:?}"
    );
    let mut ids = HashSet::new();
    let mut total = 0;
    for s in 0..10 {
        let entries = xrange(&format!("{prefix}{service}.load.s{s}")).await;
        let ns: Vec<i64> = entries
            .iter()
            .map(|(_, v)| v["data"]["n"].as_i64().unwrap())
            .collect();
        let mut sorted = ns.clone();
        sorted.sort_unstable();
        assert_eq!(ns, sorted, "subject s{s} in order");
        total += entries.len();
        ids.extend(entries.into_iter().map(|(id, _)| id));
    }
    assert_eq!(total, 1000, "no event published twice");
    assert_eq!(ids.len(), 1000);
}

async fn side_effects(keel: &Keel) -> Vec<(String, i64)> {
    keel.db()
        .query_all_raw(sea_orm::Statement::from_string(
            keel.backend(),
            "SELECT sku, price_cents FROM products WHERE sku LIKE 'shipped-%' ORDER BY sku",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.try_get::<String>("", "sku").unwrap(),
                r.try_get::<i64>("", "price_cents").unwrap(),
            )
        })
        .collect()
}

/// Waits (at most 20 s) until `$done` holds.
macro_rules! wait_for {
    ($what:expr, $done:expr) => {{
        let started = std::time::Instant::now();
        while !$done {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "timed out waiting for {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }};
}

async fn jetstream_gets_each_event_with_its_id_and_consumers_act_once(env: Env) {
    if !nats_available() {
        return;
    }
    let service = service();
    let stream = service.to_uppercase();
    let sink = SinkKind::Nats {
        url: "nats://127.0.0.1:4222".into(),
        stream: stream.clone(),
    };
    let keel = keel_with(&env, &service, EventsConfig::with_sink(sink.clone())).await;
    let relay = Relay::new(&keel).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    // The handler's side effect is a product row; it fails on its first call.
    let consumer = Consumer::domain(
        &keel,
        "shipments",
        move |tx, placed: OrderPlaced, _event| {
            let calls = counted.clone();
            async move {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(Error::rejected("NOT_YET", "the first call fails"));
                }
                tx.service::<product::Entity>()
                    .create(
                        tx.context(),
                        NewProduct::new(format!("shipped-{}", placed.order), placed.order),
                    )
                    .await?;
                Ok(())
            }
        },
    )
    .backoff(Duration::from_millis(50), Duration::from_millis(200));
    keel::lifecycle::Component::start(&relay).await.unwrap();
    keel::lifecycle::Component::start(&consumer).await.unwrap();
    for order in [1, 2, 3] {
        keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
            tx.emit_domain(&OrderPlaced { order })
        })
        .await
        .unwrap();
    }
    wait_for!("three shipments", side_effects(&keel).await.len() == 3);
    // The handler's transaction commits before the consumer acknowledges
    // the message and counts it: wait for the count too.
    wait_for!("three handled", consumer.stats().handled == 3);
    assert_eq!(
        side_effects(&keel).await,
        [
            ("shipped-1".to_owned(), 1),
            ("shipped-2".to_owned(), 2),
            ("shipped-3".to_owned(), 3)
        ]
    );
    assert_eq!(consumer.stats().failed, 1, "{:?}", consumer.stats());
    assert_eq!(consumer.stats().handled, 3);

    // The same event delivered twice (published again without the broker's
    // duplicate window: another message id header is not set, so the
    // message id is the event's own, and JetStream drops it; publish it
    // under a fresh message id to force a second delivery).
    let client = async_nats_client().await;
    let js = keel_jetstream(client);
    let stored = js
        .get_stream(&stream)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    let first: serde_json::Value = serde_json::from_slice(&stored.payload).unwrap();
    let again = js
        .publish(stored.subject.to_string(), stored.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(!again.duplicate);
    wait_for!("the duplicate to be seen", consumer.stats().duplicates >= 1);
    assert_eq!(
        side_effects(&keel).await.len(),
        3,
        "one side effect per event"
    );
    // A second publish with the event id as message id is dropped by
    // JetStream itself.
    let dup = js
        .send_publish(
            stored.subject.to_string(),
            async_nats::jetstream::message::PublishMessage::build()
                .payload(stored.payload.clone())
                .message_id(first["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        dup.duplicate,
        "JetStream drops a second publish of one event id"
    );

    keel::lifecycle::Component::stop(&consumer).await.unwrap();
    keel::lifecycle::Component::stop(&relay).await.unwrap();
    let _ = js.delete_stream(&stream).await;
}

async fn async_nats_client() -> async_nats::Client {
    async_nats::connect("127.0.0.1:4222").await.unwrap()
}

fn keel_jetstream(client: async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::new(client)
}

async fn redis_consumer_retries_and_dead_letters(env: Env) {
    if !keel_tests::redis_available() {
        return;
    }
    let (keel, service, prefix) = redis_streams_keel(&env).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let consumer = Consumer::domain(
        &keel,
        "shipments",
        move |tx, placed: OrderPlaced, _event| {
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                // Order 1 fails once; order 13 always fails.
                if placed.order == 13 || (placed.order == 1 && calls.load(Ordering::SeqCst) == 1) {
                    return Err(Error::rejected("NOT_NOW", "not now"));
                }
                tx.service::<product::Entity>()
                    .create(
                        tx.context(),
                        NewProduct::new(format!("shipped-{}", placed.order), placed.order),
                    )
                    .await?;
                Ok(())
            }
        },
    )
    .max_attempts(3)
    .backoff(Duration::from_millis(30), Duration::from_millis(60));
    keel::lifecycle::Component::start(&consumer).await.unwrap();
    for order in [1, 13, 2] {
        keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
            tx.emit_domain(&OrderPlaced { order })
        })
        .await
        .unwrap();
    }
    let relay = Relay::new(&keel).unwrap();
    relay.drain().await.unwrap();
    wait_for!("the dead letter", consumer.stats().dead_lettered == 1);
    wait_for!("two shipments", side_effects(&keel).await.len() == 2);
    // A second delivery of an event already handled: XADD it again.
    let key = format!("{prefix}{service}.order.placed");
    let first = xrange(&key).await.remove(0);
    let mut conn = redis_conn().await;
    let _: String = redis::cmd("XADD")
        .arg(&key)
        .arg("*")
        .arg("id")
        .arg(&first.0)
        .arg("data")
        .arg(first.1.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    wait_for!("the duplicate", consumer.stats().duplicates == 1);
    keel::lifecycle::Component::stop(&consumer).await.unwrap();
    assert_eq!(
        side_effects(&keel).await,
        [("shipped-1".to_owned(), 1), ("shipped-2".to_owned(), 2)]
    );
    let stats = consumer.stats();
    assert_eq!((stats.handled, stats.dead_lettered), (2, 1), "{stats:?}");
    // The dead letter is in the inbox with its error.
    let dead = keel
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            keel.backend(),
            "SELECT outcome, error FROM keel_inbox WHERE outcome = 'dead'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(
        dead.try_get::<String>("", "error")
            .unwrap()
            .contains("not now")
    );
    let mut conn = redis_conn().await;
    let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(&key)
        .arg("shipments")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending.0, 0, "everything acknowledged");
}

async fn a_broker_that_is_down_fills_the_backlog_then_dead_letters_after_max_attempts(env: Env) {
    // A NATS URL where nothing listens: each publish fails at once.
    let port = keel_tests::RedisServer::free_port();
    let service = service();
    let keel = keel_with(
        &env,
        &service,
        EventsConfig::with_sink(SinkKind::Nats {
            url: format!("nats://127.0.0.1:{port}"),
            stream: service.to_uppercase(),
        }),
    )
    .await;
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("ob-down", 1))
        .await
        .unwrap();
    for price in [2, 3] {
        products
            .update(&ctx(), p.id, ProductPatch::default().price_cents(price))
            .await
            .unwrap();
    }
    let mut config = fast(RelayConfig::default());
    config.max_attempts = 3;
    let sink = keel::outbox::NatsSink::new(
        format!("nats://127.0.0.1:{port}"),
        service.to_uppercase(),
        &service,
    );
    let relay = Relay::build(&keel, Some(Arc::new(sink)), WireFormat::CloudEvents, config);
    // Writes commit while the broker is down; rows wait.
    relay.run_once().await.unwrap();
    let stats = OutboxStats::read(&keel).await.unwrap();
    assert_eq!(stats.pending, 3);
    assert_eq!(
        relay.stats().failed,
        2,
        "one attempt per subject: the later row of a subject waits for the earlier"
    );
    let check = keel::outbox::OutboxCheck::new(keel.clone(), Duration::from_millis(1));
    tokio::time::sleep(Duration::from_millis(5)).await;
    let observed = keel::health::HealthCheck::check(&check).await;
    assert_eq!(observed.status, keel::health::HealthStatus::Degraded);
    let started = std::time::Instant::now();
    while relay.stats().dead_lettered < 3 {
        relay.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            relay.stats()
        );
    }
    let stats = OutboxStats::read(&keel).await.unwrap();
    assert_eq!((stats.pending, stats.dead), (0, 3));
    assert_eq!(relay.stats().failed, 9, "three attempts each");
    let observed = keel::health::HealthCheck::check(&check).await;
    assert_eq!(
        observed.status,
        keel::health::HealthStatus::Degraded,
        "dead letters show"
    );
}

/// On PostgreSQL a create or update outside a transaction is one statement,
/// which writes the outbox row itself (debug builds check it is the
/// transaction path's event); on every backend the published event carries
/// the row as returned and the update's changes.
async fn writes_outside_a_transaction_put_the_same_event_in_the_outbox(env: Env) {
    use keel_tests::entities::memo;
    let service = service();
    let keel = keel_with(&env, &service, EventsConfig::with_sink(SinkKind::Bus)).await;
    let seen = collect_events(&keel, "memos", "*.memo.*");
    let memos = keel.service::<memo::Entity>();
    let created = memos
        .create(
            &ctx(),
            memo::NewMemo {
                body: "first".into(),
                recipient: Some("bob".into()),
            },
        )
        .await
        .unwrap();
    let updated = memos
        .update(
            &ctx(),
            created.id,
            memo::MemoPatch::default().body("second".to_owned()),
        )
        .await
        .unwrap();
    assert_eq!(outbox_rows(&keel).await, 2);
    Relay::build(
        &keel,
        None,
        WireFormat::CloudEvents,
        fast(RelayConfig::default()),
    )
    .drain()
    .await
    .unwrap();
    let events = seen.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, format!("{service}.memo.created"));
    assert_eq!(
        events[0].subject.as_deref(),
        Some(created.id.to_string().as_str())
    );
    assert_eq!(
        events[0].data["row"],
        serde_json::to_value(&created).unwrap()
    );
    assert_eq!(events[1].event_type, format!("{service}.memo.updated"));
    assert_eq!(
        events[1].data["row"],
        serde_json::to_value(&updated).unwrap()
    );
    assert_eq!(
        events[1].data["changes"],
        serde_json::json!([{"field": "body", "old": "first", "new": "second"}])
    );
    assert_eq!(events[1].actor, "alice");
    assert_eq!(events[1].request_id, "req-outbox");
}

/// A consumer stopped while its handler runs finishes that event (commits
/// it and acknowledges it) before `stop` returns.
async fn stopping_a_consumer_finishes_the_event_in_hand(env: Env) {
    if !keel_tests::redis_available() {
        return;
    }
    let (keel, service, prefix) = redis_streams_keel(&env).await;
    let started = Arc::new(tokio::sync::Notify::new());
    let signal = started.clone();
    let consumer = Consumer::domain(&keel, "slow", move |tx, placed: OrderPlaced, _event| {
        let signal = signal.clone();
        async move {
            signal.notify_one();
            tokio::time::sleep(Duration::from_millis(400)).await;
            tx.service::<product::Entity>()
                .create(
                    tx.context(),
                    NewProduct::new(format!("shipped-{}", placed.order), placed.order),
                )
                .await?;
            Ok(())
        }
    });
    keel::lifecycle::Component::start(&consumer).await.unwrap();
    keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
        tx.emit_domain(&OrderPlaced { order: 5 })
    })
    .await
    .unwrap();
    Relay::new(&keel).unwrap().drain().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the handler started");
    keel::lifecycle::Component::stop(&consumer).await.unwrap();
    assert_eq!(
        consumer.stats().handled,
        1,
        "the event in hand was finished"
    );
    assert_eq!(side_effects(&keel).await, [("shipped-5".to_owned(), 5)]);
    let mut conn = redis_conn().await;
    let pending: (i64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(format!("{prefix}{service}.order.placed"))
        .arg("slow")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending.0, 0, "and acknowledged");
}

/// An entity with a UUID key, a string enum, an f64, a nullable date, JSON
/// and a `Redacted` field (none of which the one-statement path takes with
/// the outbox on): its create, update, delete and restore events come out
/// of the outbox with the row exactly as the service returned it, the
/// secret masked.
async fn every_field_type_travels_through_the_outbox_exactly(env: Env) {
    use keel_tests::entities::invoice::{self, InvoicePatch, NewInvoice, State};
    let service = service();
    let keel = keel_with(&env, &service, EventsConfig::with_sink(SinkKind::Bus)).await;
    let seen = collect_events(&keel, "invoices", "*.invoice.*");
    let invoices = keel.service::<invoice::Entity>();
    let created = invoices
        .create(&ctx(), NewInvoice::new("Zoë", 0.1 + 0.2))
        .await
        .unwrap();
    let updated = invoices
        .update(
            &ctx(),
            created.id,
            InvoicePatch::default()
                .amount(1e-300)
                .state(State::Sent)
                .due_on(chrono::NaiveDate::from_ymd_opt(2027, 2, 28)),
        )
        .await
        .unwrap();
    invoices.delete(&ctx(), created.id).await.unwrap();
    let restored = invoices.restore(&ctx(), created.id).await.unwrap();
    Relay::build(
        &keel,
        None,
        WireFormat::CloudEvents,
        fast(RelayConfig::default()),
    )
    .drain()
    .await
    .unwrap();
    let events = seen.lock().unwrap().clone();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e.event_type.rsplit('.').next().unwrap())
        .collect();
    assert_eq!(actions, ["created", "updated", "deleted", "restored"]);
    let masked = |row: &invoice::Model| {
        let mut v = serde_json::to_value(row).unwrap();
        v["iban"] = "[redacted]".into();
        v
    };
    assert_eq!(events[0].data["row"], masked(&created));
    assert_eq!(events[1].data["row"], masked(&updated));
    assert_eq!(events[3].data["row"], masked(&restored));
    assert_eq!(events[1].data["row"]["amount"].as_f64(), Some(1e-300));
    assert_eq!(events[0].data["row"]["amount"].as_f64(), Some(0.1 + 0.2));
    let changed: Vec<&str> = events[1].data["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    for field in ["amount", "state", "due_on"] {
        assert!(changed.contains(&field), "{field} in {changed:?}");
    }
    for event in &events {
        assert!(!event.data.to_string().contains("DE89370400440532013000"));
        assert_eq!(
            event.subject.as_deref(),
            Some(created.id.to_string().as_str())
        );
    }
}
