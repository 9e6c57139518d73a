//! Every error code, produced by the real databases and classified from
//! their codes.

use std::time::Duration;

use keel::{Context, Error, Keel, ListQuery};
use keel_tests::entities::gadget::{self, NewGadget};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::entities::review::{self, NewReview};
use keel_tests::entities::tag::{self, NewTag, TagPatch};
use keel_tests::{Backend, Env};
use sea_orm::{ConnectionTrait, TransactionTrait};

keel_tests::cases![
    unique_violation_is_already_exists_naming_the_field,
    foreign_key_violation,
    validation_from_input_and_from_check_constraints,
    unreachable_database_is_unavailable,
    exhausted_pool_is_unavailable,
    deadline_exceeded,
    lost_races_are_aborted_and_retriable,
    envelopes_never_carry_driver_text,
];

fn ctx() -> Context {
    Context::actor("alice")
}

async fn unique_violation_is_already_exists_naming_the_field(env: Env) {
    let products = env.keel.service::<product::Entity>();
    products
        .create(&ctx(), NewProduct::new("DUP", 1))
        .await
        .unwrap();
    let other = products
        .create(&ctx(), NewProduct::new("OTHER", 1))
        .await
        .unwrap();
    let err = products
        .create(&ctx(), NewProduct::new("DUP", 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_EXISTS");
    assert!(
        matches!(&err, Error::AlreadyExists { resource: "product", field: Some(f) } if f == "sku"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "a product with this sku already exists");
    assert_eq!(
        products.count(&ctx(), &ListQuery::new()).await.unwrap(),
        2,
        "nothing half-written"
    );

    // On update too, and the row keeps its old values.
    let tags = env.keel.service::<tag::Entity>();
    tags.create(&ctx(), NewTag::named("red")).await.unwrap();
    let blue = tags.create(&ctx(), NewTag::named("blue")).await.unwrap();
    let err = tags
        .update(
            &ctx(),
            blue.id,
            TagPatch {
                name: Some("red".into()),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyExists { field: Some(f), .. } if f == "name"),
        "{err:?}"
    );
    assert_eq!(tags.get(&ctx(), blue.id).await.unwrap().name, "blue");
    // A soft-deleted row still holds its unique value.
    products.delete(&ctx(), other.id).await.unwrap();
    let err = products
        .create(&ctx(), NewProduct::new("OTHER", 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "ALREADY_EXISTS");
}

async fn foreign_key_violation(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let reviews = env.keel.service::<review::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("FK", 1))
        .await
        .unwrap();
    reviews
        .create(
            &ctx(),
            NewReview {
                product_id: p.id,
                stars: 5,
            },
        )
        .await
        .unwrap();
    let err = reviews
        .create(
            &ctx(),
            NewReview {
                product_id: p.id + 1000,
                stars: 1,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FOREIGN_KEY", "{err:?}");
    assert!(matches!(err, Error::ForeignKey { resource: "review" }));
    assert_eq!(reviews.count(&ctx(), &ListQuery::new()).await.unwrap(), 1);
}

async fn validation_from_input_and_from_check_constraints(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let mut bad = NewProduct::new("x".repeat(65), -5);
    bad.name = "fine".into();
    let err = products.create(&ctx(), bad).await.unwrap_err();
    let Error::Validation(errors) = &err else {
        panic!("{err:?}")
    };
    let pointers: Vec<&str> = errors.errors().iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/sku", "/price_cents"]);
    assert_eq!(err.to_string(), "2 fields are invalid");
    assert_eq!(products.count(&ctx(), &ListQuery::new()).await.unwrap(), 0);

    let gadgets = env.keel.service::<gadget::Entity>();
    gadgets
        .create(&ctx(), NewGadget { weight: 10 })
        .await
        .unwrap();
    let err = gadgets
        .create(&ctx(), NewGadget { weight: -1 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "VALIDATION_FAILED", "CHECK constraint: {err:?}");
    assert_eq!(gadgets.count(&ctx(), &ListQuery::new()).await.unwrap(), 1);
}

async fn unreachable_database_is_unavailable(env: Env) {
    // A port nothing listens on (or, for SQLite, a file that cannot be opened).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = match env.backend() {
        Backend::Postgres => format!("postgres://postgres:hunter2@127.0.0.1:{port}/nowhere"),
        Backend::MySql => format!("mysql://root:hunter2@127.0.0.1:{port}/nowhere"),
        Backend::Sqlite => "sqlite:///nonexistent-dir/keel/x.db?mode=ro".to_owned(),
    };
    let err = Keel::builder()
        .database_url(url)
        .acquire_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE", "{err:?}");
    assert!(err.is_retriable());
    let body = serde_json::to_string(&err.to_envelope(None)).unwrap();
    assert!(
        !body.contains("hunter2") && !body.contains(&port.to_string()),
        "{body}"
    );
}

async fn exhausted_pool_is_unavailable(env: Env) {
    let keel = env
        .db
        .builder()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("P", 1))
        .await
        .unwrap();
    let held = keel.db().begin().await.unwrap();
    let err = products.get(&ctx(), p.id).await.unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE", "{err:?}");
    let err = products
        .update(&ctx(), p.id, ProductPatch::default().price_cents(2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE", "{err:?}");
    held.rollback().await.unwrap();
    assert_eq!(
        products.get(&ctx(), p.id).await.unwrap().price_cents,
        1,
        "recovers once a connection is free"
    );
}

async fn deadline_exceeded(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("D", 1))
        .await
        .unwrap();
    let late = ctx().with_deadline(tokio::time::Instant::now() - Duration::from_millis(1));
    assert_eq!(
        products.get(&late, p.id).await.unwrap_err().code(),
        "DEADLINE_EXCEEDED"
    );
    let err = products
        .update(&late, p.id, ProductPatch::default().price_cents(9))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DEADLINE_EXCEEDED");
    assert_eq!(products.get(&ctx(), p.id).await.unwrap().price_cents, 1);

    // A deadline that passes while the call waits: a held write lock.
    let short = ctx().with_timeout(Duration::from_millis(300));
    let held = env.keel.db().begin().await.unwrap();
    let lock = match env.backend() {
        Backend::Sqlite => format!("UPDATE products SET stock = 1 WHERE id = {}", p.id),
        _ => format!("SELECT id FROM products WHERE id = {} FOR UPDATE", p.id),
    };
    held.execute_unprepared(&lock).await.unwrap();
    let started = std::time::Instant::now();
    let err = products
        .update(&short, p.id, ProductPatch::default().price_cents(9))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DEADLINE_EXCEEDED", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    held.rollback().await.unwrap();
}

async fn set_stock(
    conn: &impl ConnectionTrait,
    id: i64,
    stock: i32,
) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
    conn.execute_unprepared(&format!(
        "UPDATE products SET stock = {stock} WHERE id = {id}"
    ))
    .await
}

/// Two transactions that cannot both commit: the database aborts one, and
/// Keel classifies that from its code as ABORTED, which is retriable.
async fn lost_races_are_aborted_and_retriable(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let a = products
        .create(&ctx(), NewProduct::new("R-A", 1))
        .await
        .unwrap();
    let b = products
        .create(&ctx(), NewProduct::new("R-B", 1))
        .await
        .unwrap();
    let db = env.keel.db();
    let err = match env.backend() {
        Backend::Postgres => {
            // Write skew under SERIALIZABLE: 40001.
            let t1 = db
                .begin_with_config(Some(sea_orm::IsolationLevel::Serializable), None)
                .await
                .unwrap();
            let t2 = db
                .begin_with_config(Some(sea_orm::IsolationLevel::Serializable), None)
                .await
                .unwrap();
            t1.execute_unprepared("SELECT SUM(stock) FROM products")
                .await
                .unwrap();
            t2.execute_unprepared("SELECT SUM(stock) FROM products")
                .await
                .unwrap();
            set_stock(&t1, a.id, 5).await.unwrap();
            set_stock(&t2, b.id, 5).await.unwrap();
            t1.commit().await.unwrap();
            match t2.commit().await {
                Err(e) => e,
                Ok(()) => panic!("PostgreSQL let both serializable transactions commit"),
            }
        }
        Backend::MySql => {
            // Two transactions locking two rows in opposite orders: deadlock 1213.
            let t1 = db.begin().await.unwrap();
            let t2 = db.begin().await.unwrap();
            set_stock(&t1, a.id, 1).await.unwrap();
            set_stock(&t2, b.id, 1).await.unwrap();
            let first = tokio::spawn(async move {
                let r = t1
                    .execute_unprepared(&format!(
                        "UPDATE products SET stock = 2 WHERE id = {}",
                        b.id
                    ))
                    .await;
                (r, t1)
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            let second = t2
                .execute_unprepared(&format!(
                    "UPDATE products SET stock = 2 WHERE id = {}",
                    a.id
                ))
                .await;
            let (first, t1) = first.await.unwrap();
            let _ = t1.rollback().await;
            match (first, second) {
                (Err(e), _) | (_, Err(e)) => e,
                _ => panic!("MySQL resolved a deadlock without an error"),
            }
        }
        Backend::Sqlite => {
            // A second connection writing while another holds the write lock,
            // with no busy timeout: SQLITE_BUSY.
            let path = env
                .db
                .url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            let held = db.begin().await.unwrap();
            held.execute_unprepared("UPDATE products SET stock = 3")
                .await
                .unwrap();
            let other = sea_orm::Database::connect(format!("sqlite://{path}?mode=rw"))
                .await
                .unwrap();
            other
                .execute_unprepared("PRAGMA busy_timeout = 0")
                .await
                .unwrap();
            let e = other
                .execute_unprepared("UPDATE products SET stock = 4")
                .await
                .unwrap_err();
            held.rollback().await.unwrap();
            e
        }
    };
    let err = Error::from(err);
    assert_eq!(err.code(), "ABORTED", "{err:?}");
    assert!(err.is_retriable());
    // The service itself still writes fine afterwards.
    products
        .update(&ctx(), a.id, ProductPatch::default().stock(9))
        .await
        .unwrap();
}

async fn envelopes_never_carry_driver_text(env: Env) {
    let products = env.keel.service::<product::Entity>();
    products
        .create(&ctx(), NewProduct::new("E-1", 1))
        .await
        .unwrap();
    let errors = vec![
        products
            .create(&ctx(), NewProduct::new("E-1", 1))
            .await
            .unwrap_err(),
        env.keel
            .service::<review::Entity>()
            .create(
                &ctx(),
                NewReview {
                    product_id: 424_242,
                    stars: 1,
                },
            )
            .await
            .unwrap_err(),
        env.keel
            .service::<gadget::Entity>()
            .create(&ctx(), NewGadget { weight: -3 })
            .await
            .unwrap_err(),
    ];
    for err in errors {
        let body = serde_json::to_string(&err.to_envelope(Some("req-9")))
            .unwrap()
            .to_lowercase();
        for leak in [
            "insert",
            "select",
            "constraint failed",
            "duplicate",
            "violates",
            "sqlstate",
            "products_",
            "reviews",
        ] {
            assert!(!body.contains(leak), "{leak:?} leaked into {body}");
        }
        assert!(body.contains("req-9"));
    }
}
