//! The audit log: one row per write, in the write's transaction; nothing for
//! a write that fails; history newest first; redaction; tenants.

use keel::{Context, HistoryQuery, ListQuery};
use keel_tests::Env;
use keel_tests::entities::note::{self, NewNote, NotePatch};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::entities::review::{self, NewReview};
use keel_tests::entities::tag::{self, NewTag};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

keel_tests::cases![
    every_write_appends_one_entry,
    failed_and_empty_writes_append_nothing,
    history_pages_newest_first,
    history_is_scoped_to_the_tenant,
    redacted_values_are_never_stored,
    write_events_redact_and_have_both_wire_forms,
];

async fn audit_rows(env: &Env) -> i64 {
    let backend = env.keel.backend();
    let row = env
        .keel
        .db()
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM keel_audit",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn every_write_appends_one_entry(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let alice = Context::actor("alice").with_request_id("req-create");
    let mut input = NewProduct::new("AU-1", 100);
    input.description = Some("first".into());
    let p = products.create(&alice, input).await.unwrap();
    let bob = Context::actor("bob").with_request_id("req-update");
    products
        .update(
            &bob,
            p.id,
            ProductPatch::default().price_cents(120).description(None),
        )
        .await
        .unwrap();
    products.delete(&bob, p.id).await.unwrap();
    products.restore(&alice, p.id).await.unwrap();

    let log = env.keel.audit_log();
    let history = log
        .history::<product::Entity>(&alice, p.id, &HistoryQuery::default())
        .await
        .unwrap();
    let actions: Vec<&str> = history.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["restored", "deleted", "updated", "created"],
        "newest first"
    );
    assert!(history.next_page_token.is_none());
    let [restored, deleted, updated, created] = &history.items[..] else {
        unreachable!()
    };

    assert_eq!(
        (created.entity.as_str(), created.entity_id.clone()),
        ("product", p.id.to_string())
    );
    assert_eq!(
        (created.actor.as_str(), created.request_id.as_str()),
        ("alice", "req-create")
    );
    let sku = created.changes.iter().find(|c| c.field == "sku").unwrap();
    assert_eq!((&sku.old, &sku.new), (&json!(null), &json!("AU-1")));

    assert_eq!(
        (updated.actor.as_str(), updated.request_id.as_str()),
        ("bob", "req-update")
    );
    let fields: Vec<&str> = updated
        .changes
        .iter()
        .map(|c| c.field.as_str())
        .filter(|f| *f != "updated_at")
        .collect();
    assert_eq!(
        fields,
        ["description", "price_cents", "version"],
        "only what changed; updated_by is skipped"
    );
    let price = updated
        .changes
        .iter()
        .find(|c| c.field == "price_cents")
        .unwrap();
    assert_eq!((&price.old, &price.new), (&json!(100), &json!(120)));

    assert!(
        deleted
            .changes
            .iter()
            .any(|c| c.field == "deleted_at" && c.old == json!(null) && c.new != json!(null))
    );
    assert!(
        restored
            .changes
            .iter()
            .any(|c| c.field == "deleted_at" && c.new == json!(null))
    );
    assert!(created.id < updated.id && updated.id < deleted.id && deleted.id < restored.id);

    // A hard delete records the values that were removed.
    let tags = env.keel.service::<tag::Entity>();
    let t = tags.create(&alice, NewTag::named("gone")).await.unwrap();
    tags.delete(&alice, t.id).await.unwrap();
    let history = log
        .history::<tag::Entity>(&alice, t.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.items[0].action, "deleted");
    assert!(
        history.items[0]
            .changes
            .iter()
            .any(|c| c.field == "name" && c.old == json!("gone") && c.new == json!(null))
    );
}

async fn failed_and_empty_writes_append_nothing(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let ctx = Context::actor("alice");
    let p = products
        .create(&ctx, NewProduct::new("F-1", 1))
        .await
        .unwrap();
    let before = audit_rows(&env).await;
    // Rejected by a stale version, by validation, by a unique index, by a foreign key.
    products
        .update(
            &ctx,
            p.id,
            ProductPatch::default().price_cents(5).if_version(9),
        )
        .await
        .unwrap_err();
    products
        .update(&ctx, p.id, ProductPatch::default().price_cents(-5))
        .await
        .unwrap_err();
    products
        .create(&ctx, NewProduct::new("F-1", 1))
        .await
        .unwrap_err();
    env.keel
        .service::<review::Entity>()
        .create(
            &ctx,
            NewReview {
                product_id: 404_404,
                stars: 3,
            },
        )
        .await
        .unwrap_err();
    products.delete(&ctx, p.id + 999).await.unwrap_err();
    // A patch that changes nothing writes nothing.
    products
        .update(&ctx, p.id, ProductPatch::default().price_cents(1))
        .await
        .unwrap();
    assert_eq!(audit_rows(&env).await, before);
    assert_eq!(products.count(&ctx, &ListQuery::new()).await.unwrap(), 1);
}

async fn history_pages_newest_first(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let ctx = Context::actor("alice");
    let p = products
        .create(&ctx, NewProduct::new("H-1", 0))
        .await
        .unwrap();
    let other = products
        .create(&ctx, NewProduct::new("H-2", 0))
        .await
        .unwrap();
    for price in 1..=4 {
        products
            .update(&ctx, p.id, ProductPatch::default().price_cents(price))
            .await
            .unwrap();
    }
    let log = env.keel.audit_log();
    let mut seen = Vec::new();
    let mut query = HistoryQuery {
        page_size: Some(2),
        page_token: None,
    };
    let mut pages = 0;
    loop {
        let page = log
            .history::<product::Entity>(&ctx, p.id, &query)
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.items.iter().map(|e| e.id));
        match page.next_page_token {
            Some(token) => query.page_token = Some(token),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (5, 3));
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );

    let first = log
        .history::<product::Entity>(
            &ctx,
            p.id,
            &HistoryQuery {
                page_size: Some(2),
                page_token: None,
            },
        )
        .await
        .unwrap();
    let token = first.next_page_token.unwrap();
    let err = log
        .history::<product::Entity>(
            &ctx,
            other.id,
            &HistoryQuery {
                page_size: Some(2),
                page_token: Some(token),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        "INVALID_ARGUMENT",
        "a token of another row's history"
    );
    for size in [0, 101] {
        let err = log
            .history::<product::Entity>(
                &ctx,
                p.id,
                &HistoryQuery {
                    page_size: Some(size),
                    page_token: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
    }
    let none = log
        .history::<product::Entity>(&ctx, 987_654, &HistoryQuery::default())
        .await
        .unwrap();
    assert!(none.items.is_empty());
}

async fn history_is_scoped_to_the_tenant(env: Env) {
    let notes = env.keel.service::<note::Entity>();
    let acme = Context::actor("alice").with_tenant("acme");
    let n = notes
        .create(
            &acme,
            NewNote {
                title: "plan".into(),
                body: None,
            },
        )
        .await
        .unwrap();
    notes
        .update(
            &acme,
            n.id,
            NotePatch {
                title: Some("plan b".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let log = env.keel.audit_log();
    let mine = log
        .history::<note::Entity>(&acme, n.id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 2);
    assert!(
        mine.items
            .iter()
            .all(|e| e.tenant.as_deref() == Some("acme"))
    );
    let theirs = log
        .history::<note::Entity>(
            &Context::actor("eve").with_tenant("globex"),
            n.id,
            &HistoryQuery::default(),
        )
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
    let err = log
        .history::<note::Entity>(&Context::actor("eve"), n.id, &HistoryQuery::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PERMISSION_DENIED");
}

async fn redacted_values_are_never_stored(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let ctx = Context::actor("alice");
    let mut input = NewProduct::new("R-1", 1);
    input.supplier_token = Some("tok-alpha-secret".into());
    let p = products.create(&ctx, input).await.unwrap();
    products
        .update(
            &ctx,
            p.id,
            ProductPatch::default().supplier_token(Some("tok-beta-secret".into())),
        )
        .await
        .unwrap();
    products.delete(&ctx, p.id).await.unwrap();
    let history = env
        .keel
        .audit_log()
        .history::<product::Entity>(&ctx, p.id, &HistoryQuery::default())
        .await
        .unwrap();
    let token_changes: Vec<_> = history
        .items
        .iter()
        .flat_map(|e| &e.changes)
        .filter(|c| c.field == "supplier_token")
        .collect();
    assert_eq!(
        token_changes.len(),
        2,
        "created and updated record that it changed"
    );
    assert!(
        token_changes
            .iter()
            .all(|c| c.old == json!("[redacted]") && c.new == json!("[redacted]"))
    );
    // Nothing in the table itself, read raw.
    let backend = env.keel.backend();
    let rows = env
        .keel
        .db()
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT changes FROM keel_audit",
        ))
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let text = row
            .try_get::<serde_json::Value>("", "changes")
            .map(|v| v.to_string())
            .or_else(|_| row.try_get::<String>("", "changes"))
            .unwrap();
        assert!(!text.contains("secret"), "{text}");
    }
}

async fn write_events_redact_and_have_both_wire_forms(env: Env) {
    use keel::Audit;
    use keel::event::Event;

    let products = env.keel.service::<product::Entity>();
    let ctx = Context::actor("alice").with_request_id("req-ev");
    let mut input = NewProduct::new("EV-1", 1);
    input.supplier_token = Some("tok-gamma-secret".into());
    let before = products.create(&ctx, input).await.unwrap();
    let after = products
        .update(
            &ctx,
            before.id,
            ProductPatch::default()
                .price_cents(2)
                .supplier_token(Some("tok-delta-secret".into())),
        )
        .await
        .unwrap();
    let changes = product::Model::diff(&before, &after);
    let event = Event::for_write::<product::Entity>(
        &ctx,
        "shop",
        keel::WriteAction::Updated,
        after.id.to_string(),
        &after,
        Some(&changes),
    );
    assert_eq!(event.id.get_version_num(), 7);
    assert_eq!(event.event_type, "shop.product.updated");
    let wire = event.to_cloudevent();
    for attribute in [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "data",
    ] {
        assert!(
            wire.get(attribute).is_some(),
            "{attribute} missing from {wire}"
        );
    }
    assert_eq!(wire["source"], "/shop/products");
    assert_eq!(wire["subject"], after.id.to_string());
    assert_eq!(wire["keelrequestid"], "req-ev");
    assert_eq!(wire["data"]["row"]["supplier_token"], json!("[redacted]"));
    assert_eq!(wire["data"]["row"]["price_cents"], json!(2));
    let seed = event.to_seed();
    assert_eq!(seed["event_type"], "shop.product.updated");
    assert_eq!(seed["service"], "shop");
    for text in [wire.to_string(), seed.to_string(), format!("{event:?}")] {
        assert!(!text.contains("secret"), "{text}");
    }
}
