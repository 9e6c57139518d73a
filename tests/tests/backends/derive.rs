//! What `#[derive(Service)]` and `#[derive(Audit)]` give, on real databases:
//! validation, JSON inputs that refuse server-owned fields, audit diffs with
//! redaction, enums, JSON columns and `time` timestamps.

use keel::{Audit, Change, Context, Error, ListQuery, Resource, WriteAction};
use keel_tests::Env;
use keel_tests::entities::country::{self, CountryPatch, NewCountry};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::entities::review::{self, NewReview};
use keel_tests::entities::ticket::{self, NewTicket, Status, TicketPatch};
use serde_json::json;

keel_tests::cases![
    derived_rules_reject_bad_input_and_write_nothing,
    json_bodies_cannot_set_server_owned_fields,
    audit_diff_of_stored_rows_redacts,
    enums_json_and_time_columns,
];

fn ctx() -> Context {
    Context::actor("alice")
}

fn pointers(err: &Error) -> Vec<(String, String)> {
    let Error::Validation(errors) = err else {
        panic!("expected VALIDATION_FAILED, got {err:?}")
    };
    errors
        .errors()
        .iter()
        .map(|e| (e.pointer.clone(), e.code.clone()))
        .collect()
}

async fn derived_rules_reject_bad_input_and_write_nothing(env: Env) {
    let countries = env.keel.service::<country::Entity>();
    let err = countries
        .create(
            &ctx(),
            NewCountry {
                code: "fra".into(),
                name: "France".into(),
                population: -1,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        pointers(&err),
        [
            ("/code".into(), "TOO_LONG".into()),
            ("/code".into(), "PATTERN_MISMATCH".into()),
            ("/population".into(), "OUT_OF_RANGE".into())
        ]
    );
    assert_eq!(countries.count(&ctx(), &ListQuery::new()).await.unwrap(), 0);
    let fr = countries
        .create(
            &ctx(),
            NewCountry {
                code: "FR".into(),
                name: "France".into(),
                population: 68,
            },
        )
        .await
        .unwrap();
    let err = countries
        .update(
            &ctx(),
            fr.code.clone(),
            CountryPatch::default().population(-5),
        )
        .await
        .unwrap_err();
    assert_eq!(
        pointers(&err),
        [("/population".into(), "OUT_OF_RANGE".into())]
    );
    assert_eq!(countries.get(&ctx(), "FR").await.unwrap().population, 68);

    let products = env.keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("OK-1", 5))
        .await
        .unwrap();
    let reviews = env.keel.service::<review::Entity>();
    let err = reviews
        .create(
            &ctx(),
            NewReview {
                product_id: p.id,
                stars: 6,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(pointers(&err), [("/stars".into(), "OUT_OF_RANGE".into())]);

    let tickets = env.keel.service::<ticket::Entity>();
    let err = tickets
        .create(
            &ctx(),
            NewTicket {
                title: "no".into(),
                status: Status::Open,
                payload: json!({}),
                contact: Some("nobody".into()),
                due: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        pointers(&err),
        [
            ("/title".into(), "TOO_SHORT".into()),
            ("/contact".into(), "INVALID_EMAIL".into())
        ]
    );
    assert_eq!(tickets.count(&ctx(), &ListQuery::new()).await.unwrap(), 0);
}

async fn json_bodies_cannot_set_server_owned_fields(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let body = json!({"sku": "J-1", "name": "Jar", "price_cents": 300, "stock": 2, "active": true});
    let input: NewProduct = serde_json::from_value(body.clone()).unwrap();
    let p = products.create(&ctx(), input).await.unwrap();
    assert_eq!(
        (p.version, p.created_by.as_str(), p.description.as_deref()),
        (1, "alice", None)
    );

    for (field, value) in [
        ("id", json!(99)),
        ("version", json!(7)),
        ("created_at", json!("2020-01-01T00:00:00Z")),
        ("created_by", json!("mallory")),
        ("deleted_at", json!(null)),
        ("colour", json!("red")),
    ] {
        let mut forged = body.clone();
        forged[field] = value;
        let err = serde_json::from_value::<NewProduct>(forged)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{field}: {err}");
        let err = serde_json::from_value::<ProductPatch>(json!({ field: 1 }))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "patch {field}: {err}");
    }

    // A JSON patch: null clears, absent keeps.
    let p = products
        .update(
            &ctx(),
            p.id,
            serde_json::from_value(json!({"description": "glass"})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(p.description.as_deref(), Some("glass"));
    let patch: ProductPatch =
        serde_json::from_value(json!({"description": null, "stock": 9})).unwrap();
    let p = products
        .update(&ctx(), p.id, patch.if_version(p.version))
        .await
        .unwrap();
    assert_eq!(
        (p.description, p.stock, p.name.as_str(), p.version),
        (None, 9, "Jar", 3)
    );
}

async fn audit_diff_of_stored_rows_redacts(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let mut input = NewProduct::new("A-1", 100);
    input.supplier_token = Some("tok-old-secret".into());
    let before = products.create(&ctx(), input).await.unwrap();
    let after = products
        .update(
            &Context::actor("bob"),
            before.id,
            ProductPatch::default()
                .name("Renamed")
                .supplier_token(Some("tok-new-secret".into()))
                .price_cents(150),
        )
        .await
        .unwrap();
    let changes = product::Model::diff(&before, &after);
    // updated_by is #[audit(skip)]; version changes too, and updated_at
    // unless the write lands in the same second of MySQL's `timestamp`.
    let fields: Vec<&str> = changes
        .iter()
        .map(|c| c.field.as_str())
        .filter(|f| *f != "updated_at")
        .collect();
    assert_eq!(fields, ["name", "price_cents", "supplier_token", "version"]);
    assert_eq!(
        changes[0],
        Change {
            field: "name".into(),
            old: json!("Product A-1"),
            new: json!("Renamed")
        }
    );
    assert_eq!(changes[1].new, json!(150));
    assert_eq!(changes[2].old, json!("[redacted]"));
    assert_eq!(changes[2].new, json!("[redacted]"));
    let everything = serde_json::to_string(&(
        changes,
        after.snapshot(),
        format!(
            "{:?}",
            ProductPatch::default().supplier_token(Some("tok-x-secret".into()))
        ),
    ))
    .unwrap();
    assert!(!everything.contains("secret"), "{everything}");
    assert_eq!(after.snapshot()["supplier_token"], json!("[redacted]"));
    assert!(after.snapshot().get("updated_by").is_none());
    assert_eq!(
        product::Entity::event_type(WriteAction::Deleted),
        "product.deleted"
    );
    const { assert!(product::Entity::CACHE.enabled) };
    assert_eq!(product::Entity::CACHE.ttl.as_secs(), 300);
}

async fn enums_json_and_time_columns(env: Env) {
    let tickets = env.keel.service::<ticket::Entity>();
    let due = time::macros::date!(2026 - 12 - 24);
    let a = tickets
        .create(
            &ctx(),
            NewTicket {
                title: "Printer on fire".into(),
                status: Status::Open,
                payload: json!({"floor": 3, "tags": ["urgent"]}),
                contact: Some("ops@example.com".into()),
                due: Some(due),
            },
        )
        .await
        .unwrap();
    assert_eq!(a.id.get_version_num(), 7);
    assert_eq!(a.version, 1);
    assert!(a.created_at.year() >= 2026);
    let b = tickets
        .create(
            &ctx(),
            NewTicket {
                title: "Coffee machine".into(),
                status: Status::Closed,
                payload: json!(null),
                contact: None,
                due: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(tickets.get(&ctx(), a.id).await.unwrap(), a);

    let open = tickets
        .list(&ctx(), &ListQuery::new().filter("status = \"open\""))
        .await
        .unwrap();
    assert_eq!(open.items.iter().map(|t| t.id).collect::<Vec<_>>(), [a.id]);
    let dated = tickets
        .list(&ctx(), &ListQuery::new().filter("due >= \"2026-12-01\""))
        .await
        .unwrap();
    assert_eq!(dated.items.len(), 1);
    let undated = tickets
        .count(&ctx(), &ListQuery::new().filter("due = null"))
        .await
        .unwrap();
    assert_eq!(undated, 1);
    let recent = tickets
        .count(
            &ctx(),
            &ListQuery::new().filter("created_at > \"2020-01-01T00:00:00Z\""),
        )
        .await
        .unwrap();
    assert_eq!(recent, 2);

    // Keyset pages over a `time` date with NULLs and over the `time` timestamp.
    for order in ["due desc", "due", "created_at desc"] {
        let rows = keel_tests::all_pages(
            &tickets,
            &ctx(),
            ListQuery::new().order_by(order).page_size(1),
        )
        .await;
        assert_eq!(rows.len(), 2, "{order}");
    }

    let closed = tickets
        .update(
            &ctx(),
            a.id,
            TicketPatch::default()
                .status(Status::Closed)
                .payload(json!({"floor": 3, "resolved": true}))
                .due(None)
                .if_version(1),
        )
        .await
        .unwrap();
    assert_eq!(
        (closed.status, closed.due, closed.version),
        (Status::Closed, None, 2)
    );
    assert_eq!(closed.payload["resolved"], json!(true));
    let changes = ticket::Model::diff(&a, &closed);
    assert!(
        changes
            .iter()
            .any(|c| c.field == "status" && c.old == json!("open") && c.new == json!("closed"))
    );
    assert!(
        changes
            .iter()
            .any(|c| c.field == "due" && c.new == json!(null))
    );
    tickets.delete(&ctx(), b.id).await.unwrap();
    assert_eq!(tickets.count(&ctx(), &ListQuery::new()).await.unwrap(), 1);
}
