//! Hostile load: expensive queries never starve cheap ones.

use std::time::{Duration, Instant};

use keel::tx::TxOptions;
use keel::{Context, ListQuery};
use keel_tests::entities::product;
use keel_tests::{Backend, Env};
use sea_orm::ConnectionTrait;

keel_tests::cases![
    cheap_reads_stay_fast_while_expensive_lists_flood_the_pool,
    every_connection_has_a_statement_timeout_and_a_transaction_puts_it_back,
    a_transaction_dropped_while_it_begins_leaves_no_connection_inside_it,
    a_write_whose_caller_goes_away_leaves_the_cache_right,
];

/// 30 lists at once, each four `:` scans and a count over 200,000 rows
/// (about 300 ms each on PostgreSQL here), on a pool of 8: reads by key
/// still find a connection (the pool keeps a quarter of itself from lists
/// and counts) and answer in milliseconds, not behind the flood.
async fn cheap_reads_stay_fast_while_expensive_lists_flood_the_pool(env: Env) {
    if env.backend() != Backend::Postgres {
        // The mechanism is the same everywhere; PostgreSQL makes the
        // expensive queries expensive enough to measure in a test.
        return;
    }
    env.keel
        .db()
        .execute_unprepared(
            "INSERT INTO products (sku, name, price_cents, stock, active, version, created_at, updated_at, created_by, updated_by) \
             SELECT 'S-' || g, 'Product number ' || g || ' of the catalogue', g, 1, true, 1, now(), now(), 'seed', 'seed' \
             FROM generate_series(1, 200000) g",
        )
        .await
        .unwrap();
    let mut cache = keel::cache::CacheConfig::default();
    cache.reads = false;
    let keel = env
        .db
        .builder()
        .max_connections(8)
        .cache(cache)
        .connect()
        .await
        .unwrap();
    let products = keel.service::<product::Entity>();
    let ctx = Context::actor("flood");
    let one = products
        .list(&ctx, &ListQuery::new().page_size(1))
        .await
        .unwrap()
        .items
        .remove(0);

    let flood: Vec<_> = (0..30)
        .map(|i| {
            let products = products.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let filter = format!(
                    r#"name : "zz{i}a" OR name : "zz{i}b" OR name : "zz{i}c" OR name : "zz{i}d""#
                );
                let query = ListQuery::new()
                    .filter(filter)
                    .order_by("name desc")
                    .page_size(100)
                    .total_size(true);
                let started = Instant::now();
                let outcome = products.list(&ctx, &query).await;
                (started.elapsed(), outcome.map(|p| p.total_size))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut cheap = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(products.get(&ctx, one.id).await.unwrap().id, one.id);
        cheap.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut slowest_list, mut answered, mut shed) = (Duration::ZERO, 0, 0);
    for task in flood {
        let (took, outcome) = task.await.unwrap();
        match outcome {
            Ok(total) => {
                assert_eq!(total, Some(0));
                answered += 1;
            }
            // Past the acquire timeout a list waiting for its turn is shed.
            Err(err) => {
                assert_eq!(err.code(), "UNAVAILABLE", "{err:?}");
                shed += 1;
            }
        }
        slowest_list = slowest_list.max(took);
    }
    eprintln!(
        "flood: {answered} answered, {shed} shed, slowest {slowest_list:?}; reads by key {cheap:?}"
    );
    assert!(answered >= 6, "lists were served too");
    cheap.sort();
    let median = cheap[cheap.len() / 2];
    assert!(
        slowest_list > Duration::from_millis(500),
        "the flood was a flood: its slowest list took {slowest_list:?}"
    );
    assert!(
        median < Duration::from_millis(150),
        "reads by key during the flood: {cheap:?} (slowest list {slowest_list:?})"
    );
}

/// The pool's statement timeout is on every connection (PostgreSQL's
/// `statement_timeout`, MariaDB's `max_statement_time`), a statement past
/// it is `DEADLINE_EXCEEDED`, and a transaction with a timeout of its own
/// leaves the connection with the pool's again.
async fn every_connection_has_a_statement_timeout_and_a_transaction_puts_it_back(env: Env) {
    let keel = env
        .db
        .builder()
        .max_connections(1)
        .statement_timeout(Some(Duration::from_millis(250)))
        .connect()
        .await
        .unwrap();
    let setting = || async {
        let sql = match env.backend() {
            Backend::Postgres => "SELECT current_setting('statement_timeout') AS v",
            Backend::MySql => "SELECT CAST(@@max_statement_time AS CHAR) AS v",
            Backend::Sqlite => return String::new(),
        };
        keel.db()
            .query_one_raw(sea_orm::Statement::from_string(keel.backend(), sql))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "v")
            .unwrap()
    };
    let expected = match env.backend() {
        Backend::Postgres => "250ms",
        Backend::MySql => "0.250000",
        Backend::Sqlite => "",
    };
    assert_eq!(setting().await, expected);
    keel.transaction(
        &Context::actor("t"),
        TxOptions::new().statement_timeout(Duration::from_secs(5)),
        |tx| async move {
            tx.service::<product::Entity>()
                .count(tx.context(), &ListQuery::new())
                .await
        },
    )
    .await
    .unwrap();
    assert_eq!(setting().await, expected, "the transaction put it back");
    if env.backend() == Backend::Postgres {
        // A statement past the timeout is cut off by the server.
        let err = keel
            .db()
            .execute_unprepared("SELECT pg_sleep(1)")
            .await
            .map_err(keel::Error::from)
            .unwrap_err();
        assert_eq!(err.code(), "DEADLINE_EXCEEDED", "{err:?}");
    }
}

/// A transaction whose caller goes away while its `BEGIN` is in flight
/// (dropped after 0 to 40 polls, 120 times) must not leave its connection
/// inside a transaction the driver no longer knows about: on a pool of one
/// connection, every write after that is acknowledged and visible from
/// another connection at once. (sqlx counts a `BEGIN` only once its answer
/// is read; dropped earlier, the server's transaction stays open and every
/// later statement on that connection, autocommit writes included, runs
/// inside it, uncommitted.)
async fn a_transaction_dropped_while_it_begins_leaves_no_connection_inside_it(env: Env) {
    let single = env
        .db
        .builder()
        .max_connections(1)
        .connect()
        .await
        .expect("a Keel with one connection");
    let products = single.service::<product::Entity>();
    let observer = env.keel.service::<product::Entity>();
    let ctx = Context::actor("test");
    for attempt in 0..120usize {
        let keel = single.clone();
        let tx_ctx = ctx.clone();
        keel_tests::drop_after(
            async move {
                keel.transaction(&tx_ctx, TxOptions::new(), |tx| async move {
                    tx.service::<product::Entity>()
                        .create(
                            tx.context(),
                            product::NewProduct::new(format!("T-{attempt}"), 1),
                        )
                        .await
                })
                .await
            },
            attempt % 41,
        )
        .await;
        // Let a drop's clean-up (a rollback, the connection's return) run.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let sku = format!("W-{attempt}");
        let written = products
            .create(&ctx, product::NewProduct::new(sku.clone(), 1))
            .await
            .expect("an acknowledged write");
        let seen = observer
            .find(&ctx, written.id)
            .await
            .expect("a read from another pool");
        assert!(
            seen.is_some(),
            "{}: write {sku} was acknowledged but another connection does not see it \
             (attempt {attempt}: its connection was left inside a transaction)",
            env.backend().name()
        );
    }
    let _ = single.close().await;
}

/// A caller that goes away while its update waits for a locked row (a
/// client that closed its connection, a timeout above Keel) must not leave
/// the cache serving a row the database no longer has: whether the write
/// then happens or not, a later read returns what is stored. (On
/// PostgreSQL the update is one statement, already sent: it commits once
/// the lock is released, and its invalidation must follow.)
async fn a_write_whose_caller_goes_away_leaves_the_cache_right(env: Env) {
    use sea_orm::{EntityTrait, TransactionTrait};
    let products = env.keel.service::<product::Entity>();
    let ctx = Context::actor("test");
    for attempt in 0..3 {
        let p = products
            .create(&ctx, product::NewProduct::new(format!("G-{attempt}"), 100))
            .await
            .unwrap();
        assert_eq!(products.get(&ctx, p.id).await.unwrap().price_cents, 100);
        // Another connection holds the row: the update waits for it.
        let holder = env.keel.db().begin().await.unwrap();
        holder
            .execute_unprepared(&format!(
                "UPDATE products SET stock = stock WHERE id = {}",
                p.id
            ))
            .await
            .unwrap();
        let (writer_products, writer_ctx) = (products.clone(), ctx.clone());
        let writer = tokio::spawn(async move {
            writer_products
                .update(
                    &writer_ctx,
                    p.id,
                    product::ProductPatch::default().price_cents(200 + attempt),
                )
                .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.abort();
        let _ = writer.await;
        holder.commit().await.unwrap();
        let stored = async {
            product::Entity::find_by_id(p.id)
                .one(env.keel.db())
                .await
                .unwrap()
                .unwrap()
        };
        // Whatever became of the write, the service serves what is stored.
        let mut served = products.get(&ctx, p.id).await.unwrap();
        let mut now = stored.await;
        for _ in 0..50 {
            if served == now {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            served = products.get(&ctx, p.id).await.unwrap();
            now = product::Entity::find_by_id(p.id)
                .one(env.keel.db())
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(
            served, now,
            "attempt {attempt}: the cache serves another row than the database has"
        );
    }
}
