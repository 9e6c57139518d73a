//! Explicit transactions: commit and rollback with their effects, retries,
//! savepoints, row locks, options.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use keel::event::{DomainEvent, Event, Subscription};
use keel::tx::{Isolation, RetryPolicy, TxOptions};
use keel::{Context, Error, HistoryQuery, ListQuery};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::{Backend, Env, collect_events};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};

keel_tests::cases![
    commit_applies_everything_rollback_nothing,
    serialization_failure_is_retried_until_both_commit,
    out_of_attempts_returns_the_retriable_error,
    hundred_orders_against_stock_ten,
    savepoint_rollback_keeps_the_outer_work,
    failed_write_leaves_the_transaction_usable,
    get_for_update_and_read_only,
    statement_timeout_cancels_a_slow_statement,
    commit_with_unknown_outcome_is_not_retried,
];

fn ctx() -> Context {
    Context::actor("alice")
}

fn types(events: &std::sync::Mutex<Vec<Event>>) -> Vec<String> {
    events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.event_type.clone())
        .collect()
}

async fn audit_count(env: &Env, id: i64) -> usize {
    env.keel
        .audit_log()
        .history::<product::Entity>(&ctx(), id, &HistoryQuery::default())
        .await
        .unwrap()
        .items
        .len()
}

async fn audit_rows(env: &Env) -> i64 {
    let row = env
        .keel
        .db()
        .query_one_raw(sea_orm::Statement::from_string(
            env.keel.backend(),
            "SELECT COUNT(*) AS n FROM keel_audit",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn product_count(env: &Env) -> u64 {
    env.keel
        .service::<product::Entity>()
        .count(&ctx(), &ListQuery::new().show_deleted(true))
        .await
        .unwrap()
}

async fn commit_applies_everything_rollback_nothing(env: Env) {
    let events = collect_events(&env.keel, "all", "*");
    let after_commit = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(std::sync::Mutex::new(None));

    // Rolled back: the row, its audit row, the queued work and events vanish.
    let err = env
        .keel
        .transaction(&ctx(), TxOptions::new(), |tx| {
            let (after_commit, created) = (after_commit.clone(), created.clone());
            async move {
                let row = tx
                    .service::<product::Entity>()
                    .create(tx.context(), NewProduct::new("rb-1", 100))
                    .await?;
                *created.lock().unwrap() = Some(row.id);
                tx.after_commit(move || async move {
                    after_commit.fetch_add(1, Ordering::SeqCst);
                });
                tx.emit(Event::custom(
                    tx.context(),
                    "app",
                    "app.thing.happened",
                    serde_json::json!({}),
                ));
                Err::<(), _>(Error::rejected("CHANGED_MY_MIND", "no"))
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "CHANGED_MY_MIND");
    let id = created.lock().unwrap().expect("the closure ran");
    env.keel.events().idle().await;
    assert_eq!(product_count(&env).await, 0, "no row");
    assert_eq!(audit_count(&env, id).await, 0, "no audit row");
    assert_eq!(
        after_commit.load(Ordering::SeqCst),
        0,
        "no after-commit work"
    );
    assert!(types(&events).is_empty(), "no event: {:?}", types(&events));

    // Committed: all of it, the effects once.
    let id = env
        .keel
        .transaction(&ctx(), TxOptions::new(), |tx| {
            let after_commit = after_commit.clone();
            async move {
                let products = tx.service::<product::Entity>();
                let row = products
                    .create(tx.context(), NewProduct::new("ok-1", 100))
                    .await?;
                products
                    .update(tx.context(), row.id, ProductPatch::default().stock(3))
                    .await?;
                tx.after_commit(move || async move {
                    after_commit.fetch_add(1, Ordering::SeqCst);
                });
                tx.emit(Event::custom(
                    tx.context(),
                    "app",
                    "app.thing.happened",
                    serde_json::json!({"n": 1}),
                ));
                Ok(row.id)
            }
        })
        .await
        .unwrap();
    env.keel.events().idle().await;
    assert_eq!(product_count(&env).await, 1);
    assert_eq!(audit_count(&env, id).await, 2, "created + updated");
    assert_eq!(after_commit.load(Ordering::SeqCst), 1);
    assert_eq!(
        types(&events),
        [
            "app.product.created",
            "app.product.updated",
            "app.thing.happened"
        ]
    );
    let stats = env.keel.events().stats("all").unwrap();
    assert_eq!(stats.delivered, 3);
}

/// Two transactions that both read the counter and then write it: one loses
/// (PostgreSQL `40001` under SERIALIZABLE, a MariaDB deadlock `1213`), is
/// run again and commits on fresh data.
async fn serialization_failure_is_retried_until_both_commit(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let counter = products
        .create(&ctx(), NewProduct::new("counter", 1))
        .await
        .unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let sqlite = env.backend() == Backend::Sqlite;
    let options = TxOptions::new()
        .isolation(Isolation::Serializable)
        .retry(RetryPolicy::attempts(5));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (keel, attempts, barrier, options) = (
            env.keel.clone(),
            attempts.clone(),
            barrier.clone(),
            options.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
            keel.transaction(&ctx(), options, |tx| {
                let (attempts, barrier, first) = (attempts.clone(), barrier.clone(), first.clone());
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let products = tx.service::<product::Entity>();
                    let seen = products.get(tx.context(), counter.id).await?;
                    // Both first attempts read before either writes. (SQLite
                    // runs writers one at a time, so there is no race to force.)
                    if first.swap(false, Ordering::SeqCst) && !sqlite {
                        barrier.wait().await;
                    }
                    products
                        .update(
                            tx.context(),
                            counter.id,
                            ProductPatch::default().stock(seen.stock + 1),
                        )
                        .await
                }
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("both transactions commit");
    }
    let counter = products.get(&ctx(), counter.id).await.unwrap();
    assert_eq!(counter.stock, 2, "no lost update");
    let attempts = attempts.load(Ordering::SeqCst);
    if sqlite {
        assert_eq!(attempts, 2);
    } else {
        assert!(
            attempts >= 3,
            "one transaction was retried ({attempts} attempts)"
        );
    }
}

async fn out_of_attempts_returns_the_retriable_error(env: Env) {
    // The closure itself asks for a retry every time.
    let attempts = AtomicUsize::new(0);
    let err = env
        .keel
        .transaction(
            &ctx(),
            TxOptions::new().retry(RetryPolicy::attempts(3).min_delay(Duration::from_millis(1))),
            |_tx| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(Error::aborted("try again")) }
            },
        )
        .await
        .unwrap_err();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(err.code(), "ABORTED");
    assert!(err.is_retriable());

    // Other errors are returned at once.
    let attempts = AtomicUsize::new(0);
    let err = env
        .keel
        .transaction(&ctx(), TxOptions::new(), |_tx| {
            attempts.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Error::rejected("NOPE", "no")) }
        })
        .await
        .unwrap_err();
    assert_eq!((attempts.load(Ordering::SeqCst), err.code()), (1, "NOPE"));

    if env.backend() == Backend::Sqlite {
        return;
    }
    // A real lost race with no retry allowed: exactly one of the two gets ABORTED.
    let products = env.keel.service::<product::Entity>();
    let counter = products
        .create(&ctx(), NewProduct::new("counter", 1))
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let options = TxOptions::new()
        .isolation(Isolation::Serializable)
        .retry(RetryPolicy::never());
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (keel, barrier, options) = (env.keel.clone(), barrier.clone(), options.clone());
        tasks.push(tokio::spawn(async move {
            keel.transaction(&ctx(), options, |tx| {
                let barrier = barrier.clone();
                async move {
                    let products = tx.service::<product::Entity>();
                    let seen = products.get(tx.context(), counter.id).await?;
                    barrier.wait().await;
                    products
                        .update(
                            tx.context(),
                            counter.id,
                            ProductPatch::default().stock(seen.stock + 1),
                        )
                        .await
                }
            })
            .await
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(match task.await.unwrap() {
            Ok(_) => "OK",
            Err(err) => err.code(),
        });
    }
    codes.sort_unstable();
    assert_eq!(codes, ["ABORTED", "OK"]);
    assert_eq!(products.get(&ctx(), counter.id).await.unwrap().stock, 1);
}

/// The shop's order, as a typed domain event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OrderPlaced {
    product_id: i64,
    quantity: i32,
}

impl DomainEvent for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    fn subject(&self) -> Option<String> {
        Some(self.product_id.to_string())
    }
}

async fn hundred_orders_against_stock_ten(env: Env) {
    let placed = Arc::new(AtomicUsize::new(0));
    let counted = placed.clone();
    env.keel
        .events()
        .subscribe(Subscription::domain(
            "orders",
            move |order: OrderPlaced, event: Event| {
                let counted = counted.clone();
                async move {
                    assert_eq!(event.subject, Some(order.product_id.to_string()));
                    assert_eq!(order.quantity, 1);
                    counted.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            },
        ))
        .unwrap();
    let products = env.keel.service::<product::Entity>();
    let mut input = NewProduct::new("scarce", 500);
    input.stock = 10;
    let product = products.create(&ctx(), input).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..100 {
        let keel = env.keel.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = Context::actor(format!("buyer-{i}"));
            keel.transaction(&ctx, TxOptions::new(), |tx| async move {
                let products = tx.service::<product::Entity>();
                let row = products.get_for_update(tx.context(), product.id).await?;
                if row.stock < 1 {
                    return Err(Error::rejected(
                        "INSUFFICIENT_STOCK",
                        format!("only {} left", row.stock),
                    ));
                }
                products
                    .update(
                        tx.context(),
                        product.id,
                        ProductPatch::default().stock(row.stock - 1),
                    )
                    .await?;
                tx.emit_domain(&OrderPlaced {
                    product_id: product.id,
                    quantity: 1,
                })?;
                Ok(())
            })
            .await
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => ok += 1,
            Err(err) if err.code() == "INSUFFICIENT_STOCK" => refused += 1,
            Err(err) => panic!("unexpected error {err:?}"),
        }
    }
    assert_eq!((ok, refused), (10, 90));
    assert_eq!(products.get(&ctx(), product.id).await.unwrap().stock, 0);
    assert_eq!(
        audit_count(&env, product.id).await,
        11,
        "1 create + 10 updates"
    );
    env.keel.events().idle().await;
    assert_eq!(
        placed.load(Ordering::SeqCst),
        10,
        "one event per placed order"
    );
}

async fn savepoint_rollback_keeps_the_outer_work(env: Env) {
    let events = collect_events(&env.keel, "all", "*");
    let inner_id = Arc::new(std::sync::Mutex::new(None));
    let depth = env
        .keel
        .transaction(&ctx(), TxOptions::new(), |tx| {
            let inner_id = inner_id.clone();
            async move {
                let products = tx.service::<product::Entity>();
                products
                    .create(tx.context(), NewProduct::new("outer-1", 1))
                    .await?;
                let err = tx
                    .transaction(|sp| {
                        let inner_id = inner_id.clone();
                        async move {
                            let row = sp
                                .service::<product::Entity>()
                                .create(sp.context(), NewProduct::new("inner", 1))
                                .await?;
                            *inner_id.lock().unwrap() = Some(row.id);
                            sp.emit(Event::custom(
                                sp.context(),
                                "app",
                                "app.inner.done",
                                serde_json::json!({}),
                            ));
                            Err::<(), _>(Error::rejected("INNER_FAILED", "undo the inner work"))
                        }
                    })
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), "INNER_FAILED");
                // A savepoint that succeeds joins the outer transaction.
                let depth = tx
                    .transaction(|sp| async move {
                        sp.service::<product::Entity>()
                            .create(sp.context(), NewProduct::new("nested-ok", 1))
                            .await?;
                        Ok(sp.depth())
                    })
                    .await?;
                products
                    .create(tx.context(), NewProduct::new("outer-2", 1))
                    .await?;
                Ok(depth)
            }
        })
        .await
        .unwrap();
    assert_eq!(depth, 1);
    env.keel.events().idle().await;
    let page = env
        .keel
        .service::<product::Entity>()
        .list(&ctx(), &ListQuery::new().order_by("sku"))
        .await
        .unwrap();
    let skus: Vec<_> = page.items.iter().map(|p| p.sku.as_str()).collect();
    assert_eq!(skus, ["nested-ok", "outer-1", "outer-2"]);
    assert!(inner_id.lock().unwrap().is_some(), "the savepoint ran");
    assert_eq!(
        audit_rows(&env).await,
        3,
        "no audit row of the undone create"
    );
    assert_eq!(
        types(&events),
        [
            "app.product.created",
            "app.product.created",
            "app.product.created"
        ]
    );
}

/// A write that fails inside a transaction is undone alone (its savepoint),
/// so the transaction can go on, also on PostgreSQL where a failed
/// statement would otherwise abort the whole transaction.
async fn failed_write_leaves_the_transaction_usable(env: Env) {
    let products = env.keel.service::<product::Entity>();
    products
        .create(&ctx(), NewProduct::new("taken", 1))
        .await
        .unwrap();
    env.keel
        .transaction(&ctx(), TxOptions::new(), |tx| async move {
            let products = tx.service::<product::Entity>();
            let err = products
                .create(tx.context(), NewProduct::new("taken", 2))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::AlreadyExists { field: Some(f), .. } if f == "sku"),
                "{err:?}"
            );
            let err = products
                .update(tx.context(), 999_999, ProductPatch::default().stock(1))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "NOT_FOUND");
            products
                .create(tx.context(), NewProduct::new("fresh", 3))
                .await?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(product_count(&env).await, 2);
}

async fn get_for_update_and_read_only(env: Env) {
    let products = env.keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("ro", 1))
        .await
        .unwrap();
    let err = products.get_for_update(&ctx(), p.id).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "needs a transaction");

    let stock = env
        .keel
        .transaction(&ctx(), TxOptions::read_only(), |tx| async move {
            let products = tx.service::<product::Entity>();
            assert!(tx.is_read_only());
            let row = products.get(tx.context(), p.id).await?;
            let err = products
                .update(tx.context(), p.id, ProductPatch::default().stock(5))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "INVALID_ARGUMENT", "{err:?}");
            Ok(row.stock)
        })
        .await
        .unwrap();
    assert_eq!(stock, 0);
    if env.backend() != Backend::Sqlite {
        // The database refuses too: READ ONLY is the transaction's mode.
        let err = env
            .keel
            .transaction(&ctx(), TxOptions::read_only(), |tx| async move {
                tx.db()
                    .execute_unprepared("UPDATE products SET stock = 9")
                    .await
                    .map_err(Error::from)?;
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INTERNAL", "{err:?}");
    }
    assert_eq!(products.get(&ctx(), p.id).await.unwrap().stock, 0);

    // A bound service reads its own transaction's writes; others do not see them.
    let free = products.clone();
    env.keel
        .transaction(&ctx(), TxOptions::new(), |tx| {
            let free = free.clone();
            async move {
                let bound = free.with(&tx);
                assert!(bound.transaction().is_some());
                bound
                    .update(tx.context(), p.id, ProductPatch::default().stock(4))
                    .await?;
                assert_eq!(bound.get(tx.context(), p.id).await?.stock, 4);
                if tx.keel().backend() != sea_orm::DbBackend::Sqlite {
                    assert_eq!(free.get(tx.context(), p.id).await?.stock, 0);
                }
                Ok(())
            }
        })
        .await
        .unwrap();
    assert_eq!(products.get(&ctx(), p.id).await.unwrap().stock, 4);
}

async fn statement_timeout_cancels_a_slow_statement(env: Env) {
    let sleep = match env.backend() {
        Backend::Postgres => "SELECT pg_sleep(3)",
        Backend::MySql => "SELECT SLEEP(3) FROM products",
        // SQLite has no statement timeout: only the deadline applies.
        Backend::Sqlite => return,
    };
    env.keel
        .service::<product::Entity>()
        .create(&ctx(), NewProduct::new("one", 1))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = env
        .keel
        .transaction(
            &ctx(),
            TxOptions::new().statement_timeout(Duration::from_millis(200)),
            |tx| async move {
                tx.db()
                    .execute_unprepared(sleep)
                    .await
                    .map_err(Error::from)?;
                Ok(())
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DEADLINE_EXCEEDED", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // A deadline that passes first, in the middle of the slow statement: the
    // call returns at the deadline; the rollback and the reset of the
    // session's timeout happen in the background.
    let started = std::time::Instant::now();
    let err = env
        .keel
        .transaction(
            &ctx().with_timeout(Duration::from_millis(100)),
            TxOptions::new().statement_timeout(Duration::from_millis(400)),
            |tx| async move {
                tx.db()
                    .execute_unprepared(sleep)
                    .await
                    .map_err(Error::from)?;
                Ok(())
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "DEADLINE_EXCEEDED", "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(350));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The timeouts do not outlive their transactions on the pooled
    // connections: eight transactions at once (the whole pool) run a
    // statement longer than either timeout.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let keel = env.keel.clone();
        tasks.push(tokio::spawn(async move {
            keel.transaction(&ctx(), TxOptions::new(), |tx| async move {
                tx.db()
                    .execute_unprepared(match tx.keel().backend() {
                        sea_orm::DbBackend::Postgres => "SELECT pg_sleep(0.6)",
                        _ => "SELECT SLEEP(0.6)",
                    })
                    .await
                    .map_err(Error::from)?;
                Ok(())
            })
            .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

/// PostgreSQL: the connection dies while the database is committing (a
/// deferred constraint trigger sleeps inside COMMIT and the backend is
/// terminated meanwhile). Nobody knows whether the commit happened, so the
/// error says so and the closure is not run again.
async fn commit_with_unknown_outcome_is_not_retried(env: Env) {
    if env.backend() != Backend::Postgres {
        return;
    }
    let db = env.keel.db();
    for sql in [
        "CREATE TABLE slow_commit (id INT PRIMARY KEY)",
        "CREATE FUNCTION slow_commit_check() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN PERFORM pg_sleep(5); RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow_commit_trigger AFTER INSERT ON slow_commit \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit_check()",
    ] {
        db.execute_unprepared(sql).await.unwrap();
    }
    let attempts = Arc::new(AtomicUsize::new(0));
    let pid = Arc::new(std::sync::Mutex::new(None::<i32>));
    let killer = {
        let (keel, pid) = (env.keel.clone(), pid.clone());
        tokio::spawn(async move {
            // Wait until the transaction is inside COMMIT, running the trigger.
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Some(pid) = *pid.lock().unwrap() else {
                    continue;
                };
                let row = keel
                    .db()
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        format!(
                            "SELECT pg_terminate_backend({pid}) FROM pg_stat_activity \
                             WHERE pid = {pid} AND query LIKE 'COMMIT%'"
                        ),
                    ))
                    .await
                    .unwrap();
                if row.is_some() {
                    return true;
                }
            }
            false
        })
    };
    let err = env
        .keel
        .transaction(&ctx(), TxOptions::new(), |tx| {
            let (attempts, pid) = (attempts.clone(), pid.clone());
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                let row = tx
                    .db()
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        "SELECT pg_backend_pid()::int AS pid",
                    ))
                    .await
                    .map_err(Error::from)?
                    .expect("a row");
                *pid.lock().unwrap() = Some(row.try_get::<i32>("", "pid").map_err(Error::from)?);
                tx.db()
                    .execute_unprepared("INSERT INTO slow_commit VALUES (1)")
                    .await
                    .map_err(Error::from)?;
                Ok(())
            }
        })
        .await
        .unwrap_err();
    assert!(
        killer.await.unwrap(),
        "the backend was terminated during COMMIT"
    );
    assert_eq!(err.code(), "COMMIT_OUTCOME_UNKNOWN", "{err:?}");
    assert!(!err.is_retriable());
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "never retried blindly");
}
