//! Bulk writes: all or nothing, one audit row per row.

use keel::{Context, Error, HistoryQuery, ListQuery};
use keel_tests::Env;
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::entities::tag::{self, NewTag, TagPatch};

keel_tests::cases![
    update_many_changes_matching_rows_each_audited,
    update_many_is_all_or_nothing,
    delete_many_soft_and_hard,
    create_many_is_all_or_nothing,
];

fn ctx() -> Context {
    Context::actor("alice")
}

async fn seed(env: &Env) -> Vec<product::Model> {
    let products = env.keel.service::<product::Entity>();
    let mut rows = Vec::new();
    for (sku, price, stock) in [
        ("b-1", 100, 0),
        ("b-2", 200, 0),
        ("b-3", 300, 5),
        ("b-4", 400, 0),
    ] {
        let mut input = NewProduct::new(sku, price);
        input.stock = stock;
        rows.push(products.create(&ctx(), input).await.unwrap());
    }
    rows
}

async fn update_many_changes_matching_rows_each_audited(env: Env) {
    let rows = seed(&env).await;
    let products = env.keel.service::<product::Entity>();
    // b-1 is already at stock 7 after this first call, so the second skips it.
    products
        .update(&ctx(), rows[0].id, ProductPatch::default().stock(7))
        .await
        .unwrap();
    let bob = Context::actor("bob");
    let changed = products
        .update_many(&bob, "price_cents <= 300", ProductPatch::default().stock(7))
        .await
        .unwrap();
    assert_eq!(changed, 2, "b-2 and b-3; b-1 already had stock 7");
    let all = products
        .list(&ctx(), &ListQuery::new().order_by("sku"))
        .await
        .unwrap()
        .items;
    let stocks: Vec<i32> = all.iter().map(|p| p.stock).collect();
    assert_eq!(stocks, [7, 7, 7, 0]);
    assert_eq!((all[1].version, all[1].updated_by.as_str()), (2, "bob"));
    assert_eq!(
        (all[3].version, all[3].updated_by.as_str()),
        (1, "alice"),
        "not matched"
    );
    let log = env.keel.audit_log();
    for (row, entries) in [(&rows[0], 2), (&rows[1], 2), (&rows[2], 2), (&rows[3], 1)] {
        let history = log
            .history::<product::Entity>(&ctx(), row.id, &HistoryQuery::default())
            .await
            .unwrap();
        assert_eq!(history.items.len(), entries, "{}", row.sku);
    }
    let history = log
        .history::<product::Entity>(&ctx(), rows[1].id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(
        (
            history.items[0].action.as_str(),
            history.items[0].actor.as_str()
        ),
        ("updated", "bob")
    );
    assert_eq!(
        products
            .update_many(
                &ctx(),
                "price_cents > 10000",
                ProductPatch::default().stock(1)
            )
            .await
            .unwrap(),
        0
    );
}

async fn update_many_is_all_or_nothing(env: Env) {
    seed(&env).await;
    let products = env.keel.service::<product::Entity>();
    for (filter, patch, code) in [
        ("", ProductPatch::default().stock(1), "INVALID_ARGUMENT"),
        (
            "colour = \"red\"",
            ProductPatch::default().stock(1),
            "INVALID_ARGUMENT",
        ),
        (
            "stock = 0",
            ProductPatch::default().stock(1).if_version(1),
            "INVALID_ARGUMENT",
        ),
        (
            "stock = 0",
            ProductPatch::default().price_cents(-1),
            "VALIDATION_FAILED",
        ),
    ] {
        let err = products
            .update_many(&ctx(), filter, patch)
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{filter}");
    }
    // The second row collides on a unique name: the first row's change is rolled back too.
    let tags = env.keel.service::<tag::Entity>();
    for name in ["x-1", "x-2", "y"] {
        tags.create(&ctx(), NewTag::named(name)).await.unwrap();
    }
    let err = tags
        .update_many(
            &ctx(),
            "name : \"x-\"",
            TagPatch {
                name: Some("same".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { field: Some(f), .. } if f == "name"),
        "{err:?}"
    );
    let names: Vec<String> = tags
        .list(&ctx(), &ListQuery::new())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["x-1", "x-2", "y"], "nothing half-written");
}

async fn delete_many_soft_and_hard(env: Env) {
    let rows = seed(&env).await;
    let products = env.keel.service::<product::Entity>();
    assert_eq!(products.delete_many(&ctx(), "stock = 0").await.unwrap(), 3);
    let left: Vec<String> = products
        .list(&ctx(), &ListQuery::new())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.sku)
        .collect();
    assert_eq!(left, ["b-3"]);
    assert_eq!(
        products
            .count(&ctx(), &ListQuery::new().show_deleted(true))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        products.delete_many(&ctx(), "stock = 0").await.unwrap(),
        0,
        "already deleted"
    );
    let history = env
        .keel
        .audit_log()
        .history::<product::Entity>(&ctx(), rows[0].id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.items[0].action, "deleted");
    assert_eq!(
        products.delete_many(&ctx(), "").await.unwrap_err().code(),
        "INVALID_ARGUMENT"
    );

    let tags = env.keel.service::<tag::Entity>();
    for name in ["a", "b", "c"] {
        tags.create(&ctx(), NewTag::named(name)).await.unwrap();
    }
    assert_eq!(tags.delete_many(&ctx(), "name != \"b\"").await.unwrap(), 2);
    assert_eq!(tags.count(&ctx(), &ListQuery::new()).await.unwrap(), 1);
}

async fn create_many_is_all_or_nothing(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let rows = products
        .create_many(
            &ctx(),
            vec![
                NewProduct::new("m-1", 1),
                NewProduct::new("m-2", 2),
                NewProduct::new("m-3", 3),
            ],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        rows.iter()
            .all(|r| r.version == 1 && r.created_by == "alice")
    );

    let err = products
        .create_many(
            &ctx(),
            vec![NewProduct::new("m-4", 1), NewProduct::new("", -1)],
        )
        .await
        .unwrap_err();
    let Error::Validation(errors) = &err else {
        panic!("{err:?}")
    };
    let pointers: Vec<&str> = errors.errors().iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/1/sku", "/1/price_cents"]);
    let err = products
        .create_many(
            &ctx(),
            vec![NewProduct::new("m-5", 1), NewProduct::new("m-1", 1)],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_EXISTS");
    assert_eq!(
        products.count(&ctx(), &ListQuery::new()).await.unwrap(),
        3,
        "neither batch wrote anything"
    );
    let history = env
        .keel
        .audit_log()
        .history::<product::Entity>(&ctx(), rows[2].id, &HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.items.len(), 1);
}
