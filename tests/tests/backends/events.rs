//! The one write path: hooks, one event per written row, isolated
//! subscribers, redaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel::event::{Event, Subscription};
use keel::tx::{Tx, TxOptions};
use keel::{Context, Error, HistoryQuery, Hooks, ListQuery, Result};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::entities::tag::{self, NewTag};
use keel_tests::{Env, collect_events};

keel_tests::cases![
    every_write_emits_its_event_after_commit,
    bulk_writes_one_audit_row_and_one_event_per_row,
    hooks_run_in_the_write_and_their_errors_abort_it,
    a_panicking_or_slow_subscriber_affects_nothing_else,
    redacted_fields_appear_in_no_event,
    subscribers_registered_at_start_up_by_the_builder,
];

fn ctx() -> Context {
    Context::actor("alice").with_request_id("req-1")
}

fn kinds(events: &std::sync::Mutex<Vec<Event>>) -> Vec<(String, String)> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| (e.event_type.clone(), e.subject.clone().unwrap_or_default()))
        .collect()
}

async fn every_write_emits_its_event_after_commit(env: Env) {
    let events = collect_events(&env.keel, "products", "app.product.*");
    let tags = collect_events(&env.keel, "tags", "app.tag.*");
    let products = env.keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("ev-1", 100))
        .await
        .unwrap();
    products
        .update(&ctx(), p.id, ProductPatch::default().price_cents(150))
        .await
        .unwrap();
    // A patch that changes nothing writes nothing and emits nothing.
    products
        .update(&ctx(), p.id, ProductPatch::default().price_cents(150))
        .await
        .unwrap();
    products.delete(&ctx(), p.id).await.unwrap();
    products.restore(&ctx(), p.id).await.unwrap();
    // A failed write emits nothing.
    products
        .create(&ctx(), NewProduct::new("ev-1", 1))
        .await
        .unwrap_err();
    env.keel.events().idle().await;
    let id = p.id.to_string();
    assert_eq!(
        kinds(&events),
        [
            ("app.product.created".to_owned(), id.clone()),
            ("app.product.updated".to_owned(), id.clone()),
            ("app.product.deleted".to_owned(), id.clone()),
            ("app.product.restored".to_owned(), id.clone()),
        ]
    );
    assert!(tags.lock().unwrap().is_empty(), "a pattern selects by type");

    let all = events.lock().unwrap().clone();
    let updated = &all[1];
    assert_eq!(updated.actor, "alice");
    assert_eq!(updated.request_id, "req-1");
    assert_eq!(updated.source, "/app/products");
    assert_eq!(updated.data["row"]["price_cents"], 150);
    let changes = updated.data["changes"].as_array().unwrap();
    let fields: Vec<_> = changes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    // updated_at too, unless the update fell in the same second as the
    // create on a database that stores seconds (MariaDB `timestamp`).
    assert!(
        fields == ["price_cents", "version", "updated_at"] || fields == ["price_cents", "version"],
        "the diff: {fields:?}"
    );
    assert_eq!(
        changes[0],
        serde_json::json!({"field": "price_cents", "old": 100, "new": 150})
    );
    assert!(
        all[0].data.get("changes").is_none(),
        "only updates carry a diff"
    );
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "UUID v7 ids grow"
    );
    let cloud = updated.to_cloudevent();
    assert_eq!(cloud["specversion"], "1.0");
    assert_eq!(cloud["type"], "app.product.updated");
    assert_eq!(cloud["subject"], id);
    let seed = updated.to_seed();
    assert_eq!(seed["event_type"], "app.product.updated");
    assert_eq!(seed["service"], "app");
    assert_eq!(seed["payload"]["row"]["sku"], "ev-1");
}

async fn bulk_writes_one_audit_row_and_one_event_per_row(env: Env) {
    let events = collect_events(&env.keel, "products", "*.product.*");
    let products = env.keel.service::<product::Entity>();
    let rows = products
        .create_many(
            &ctx(),
            (1..=4)
                .map(|i| {
                    let mut input = NewProduct::new(format!("bulk-{i}"), 100 * i);
                    input.stock = if i == 4 { 7 } else { 0 };
                    input
                })
                .collect(),
        )
        .await
        .unwrap();
    let changed = products
        .update_many(
            &ctx(),
            "price_cents >= 200",
            ProductPatch::default().stock(7),
        )
        .await
        .unwrap();
    assert_eq!(changed, 2, "bulk-4 already has stock 7");
    let deleted = products.delete_many(&ctx(), "stock = 7").await.unwrap();
    assert_eq!(deleted, 3);
    env.keel.events().idle().await;

    let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
    let seen = kinds(&events);
    let of = |kind: &str| -> Vec<String> {
        seen.iter()
            .filter(|(t, _)| t == kind)
            .map(|(_, s)| s.clone())
            .collect()
    };
    assert_eq!(of("app.product.created"), ids);
    assert_eq!(of("app.product.updated"), ids[1..3]);
    assert_eq!(of("app.product.deleted"), ids[1..4]);

    let log = env.keel.audit_log();
    let mut actions = Vec::new();
    for row in &rows {
        let page = log
            .history::<product::Entity>(&ctx(), row.id, &HistoryQuery::default())
            .await
            .unwrap();
        actions.push(
            page.items
                .iter()
                .rev()
                .map(|e| e.action.clone())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        actions,
        [
            vec!["created"],
            vec!["created", "updated", "deleted"],
            vec!["created", "updated", "deleted"],
            vec!["created", "deleted"],
        ]
    );
}

/// Refuses SKUs starting with `bad`, refuses to raise the price of product
/// `frozen` (after the statement ran), and tags every new product in the
/// same transaction.
struct ShopRules {
    before_updates: Arc<AtomicUsize>,
}

impl Hooks<product::Entity> for ShopRules {
    async fn before_create(&self, _ctx: &Context, _tx: &Tx, input: &NewProduct) -> Result<()> {
        if input.sku.starts_with("bad") {
            return Err(Error::rejected("BAD_SKU", "SKUs may not start with bad"));
        }
        Ok(())
    }

    async fn after_create(&self, ctx: &Context, tx: &Tx, row: &product::Model) -> Result<()> {
        tx.service::<tag::Entity>()
            .create(ctx, NewTag::named(&format!("tag-{}", row.sku)))
            .await?;
        Ok(())
    }

    async fn before_update(
        &self,
        _ctx: &Context,
        tx: &Tx,
        old: &product::Model,
        _patch: &ProductPatch,
    ) -> Result<()> {
        assert!(!tx.is_read_only());
        assert!(old.version >= 1);
        self.before_updates.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn after_update(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        old: &product::Model,
        new: &product::Model,
    ) -> Result<()> {
        if old.sku == "frozen" && new.price_cents > old.price_cents {
            return Err(Error::rejected("PRICE_FROZEN", "this price may only fall"));
        }
        Ok(())
    }

    async fn before_delete(&self, _ctx: &Context, _tx: &Tx, old: &product::Model) -> Result<()> {
        if old.stock > 0 {
            return Err(Error::rejected("IN_STOCK", "sell the stock first"));
        }
        Ok(())
    }
}

async fn hooks_run_in_the_write_and_their_errors_abort_it(env: Env) {
    let before_updates = Arc::new(AtomicUsize::new(0));
    env.keel.add_hooks::<product::Entity>(ShopRules {
        before_updates: before_updates.clone(),
    });
    let events = collect_events(&env.keel, "all", "*");
    let products = env.keel.service::<product::Entity>();
    let tags = env.keel.service::<tag::Entity>();
    let count_tags = || async { tags.count(&ctx(), &ListQuery::new()).await.unwrap() };

    // The after_create hook wrote a tag in the same transaction.
    let frozen = products
        .create(&ctx(), NewProduct::new("frozen", 500))
        .await
        .unwrap();
    assert_eq!(count_tags().await, 1);

    // A before hook's error is returned unchanged and nothing is written.
    let err = products
        .create(&ctx(), NewProduct::new("bad-1", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "BAD_SKU");
    // An after hook's error rolls back the statement that already ran.
    let err = products
        .update(&ctx(), frozen.id, ProductPatch::default().price_cents(900))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PRICE_FROZEN");
    assert_eq!(before_updates.load(Ordering::SeqCst), 1);
    let still = products.get(&ctx(), frozen.id).await.unwrap();
    assert_eq!((still.price_cents, still.version), (500, 1));
    products
        .update(&ctx(), frozen.id, ProductPatch::default().price_cents(400))
        .await
        .unwrap();

    // In a bulk write, one row's hook error aborts the whole write.
    let mut stocked = NewProduct::new("stocked", 1);
    stocked.stock = 3;
    products.create(&ctx(), stocked).await.unwrap();
    let err = products
        .delete_many(&ctx(), "price_cents < 1000")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "IN_STOCK");
    assert_eq!(products.count(&ctx(), &ListQuery::new()).await.unwrap(), 2);

    // In an explicit transaction, a hook error aborts that write only.
    env.keel
        .transaction(&ctx(), TxOptions::new(), |tx| async move {
            let products = tx.service::<product::Entity>();
            let err = products
                .create(tx.context(), NewProduct::new("bad-2", 1))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "BAD_SKU");
            products
                .create(tx.context(), NewProduct::new("good", 1))
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(count_tags().await, 3, "frozen, stocked, good");

    env.keel.events().idle().await;
    let types: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.event_type.clone())
        .collect();
    assert_eq!(
        types,
        [
            "app.product.created",
            "app.tag.created",
            "app.product.updated",
            "app.product.created",
            "app.tag.created",
            "app.product.created",
            "app.tag.created",
        ],
        "nothing from the aborted writes"
    );
    let history = env
        .keel
        .audit_log()
        .history::<product::Entity>(&ctx(), frozen.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.items.len(), 2, "created + the one update that held");
}

async fn a_panicking_or_slow_subscriber_affects_nothing_else(env: Env) {
    let bus = env.keel.events();
    bus.subscribe(Subscription::new("panics", "*", |_event| async move {
        panic!("a subscriber bug");
    }))
    .unwrap();
    bus.subscribe(
        Subscription::new("slow", "*", |_event| async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .timeout(Duration::from_millis(100)),
    )
    .unwrap();
    bus.subscribe(Subscription::new("fails", "*", |_event| async move {
        Err("cannot reach the mailer".into())
    }))
    .unwrap();
    let delivered = Arc::new(AtomicUsize::new(0));
    let counter = delivered.clone();
    bus.subscribe(Subscription::new("counts", "*", move |_event| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }))
    .unwrap();
    let err = bus
        .subscribe(Subscription::new("counts", "*", |_event| async { Ok(()) }))
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "names are unique");

    let products = env.keel.service::<product::Entity>();
    let started = std::time::Instant::now();
    for i in 0..3 {
        products
            .create(&ctx(), NewProduct::new(format!("iso-{i}"), 1))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "writes do not wait for subscribers"
    );
    assert_eq!(products.count(&ctx(), &ListQuery::new()).await.unwrap(), 3);
    tokio::time::timeout(Duration::from_secs(10), bus.idle())
        .await
        .expect("every delivery ends");
    assert_eq!(delivered.load(Ordering::SeqCst), 3);
    let stats = |name| bus.stats(name).unwrap();
    assert_eq!(stats("panics").panicked, 3);
    assert_eq!(stats("slow").timed_out, 3);
    assert_eq!(stats("fails").failed, 3);
    assert_eq!(stats("counts").delivered, 3);
    assert_eq!(
        bus.subscribers(),
        ["panics", "slow", "fails", "counts"],
        "every worker is still registered"
    );
}

async fn redacted_fields_appear_in_no_event(env: Env) {
    let events = collect_events(&env.keel, "all", "*");
    let products = env.keel.service::<product::Entity>();
    let mut input = NewProduct::new("secretive", 100);
    input.supplier_token = Some("tok-first-s3cret".into());
    let p = products.create(&ctx(), input).await.unwrap();
    products
        .update(
            &ctx(),
            p.id,
            ProductPatch::default()
                .supplier_token(Some("tok-second-s3cret".to_owned()))
                .price_cents(120),
        )
        .await
        .unwrap();
    products
        .update_many(
            &ctx(),
            "sku = \"secretive\"",
            ProductPatch::default().supplier_token(Some("tok-third-s3cret".to_owned())),
        )
        .await
        .unwrap();
    products.delete(&ctx(), p.id).await.unwrap();
    env.keel.events().idle().await;
    let all = events.lock().unwrap().clone();
    assert_eq!(all.len(), 4);
    for event in &all {
        for wire in [
            event.to_cloudevent().to_string(),
            event.to_seed().to_string(),
            serde_json::to_string(event).unwrap(),
        ] {
            assert!(!wire.contains("s3cret"), "{wire}");
        }
        assert_eq!(event.data["row"]["supplier_token"], "[redacted]");
    }
    let change = all[1].data["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["field"] == "supplier_token")
        .cloned()
        .unwrap();
    assert_eq!(
        change,
        serde_json::json!({"field": "supplier_token", "old": "[redacted]", "new": "[redacted]"})
    );
}

async fn subscribers_registered_at_start_up_by_the_builder(env: Env) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let keel = env
        .db
        .builder()
        .service_name("shop")
        .subscriber(Subscription::entity::<product::Entity, _, _>(
            "products",
            move |event: Event| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(event.event_type);
                    Ok(())
                }
            },
        ))
        .connect()
        .await
        .unwrap();
    assert_eq!(keel.events().subscribers(), ["products"]);
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("boot", 1))
        .await
        .unwrap();
    products.delete(&ctx(), p.id).await.unwrap();
    keel.service::<tag::Entity>()
        .create(&ctx(), NewTag::named("not-a-product"))
        .await
        .unwrap();
    keel.events().idle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        ["shop.product.created", "shop.product.deleted"]
    );
    keel.close().await.unwrap();
}
