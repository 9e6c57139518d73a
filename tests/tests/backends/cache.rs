//! The read-through cache against real Redis: the stale-write race, two
//! instances, single-flight, list and count invalidation, rollbacks, and
//! Redis going away during a run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel::cache::PauseHook;
use keel::health::{HealthCoordinator, HealthStatus};
use keel::resilience::BreakerState;
use keel::tx::TxOptions;
use keel::{Context, Error, ListQuery};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::{Env, RedisServer, keel_with_redis, redis_available, redis_url};

keel_tests::cases![
    the_stale_read_race_never_stores_the_old_row,
    a_second_instance_never_serves_the_old_version_from_redis,
    concurrent_misses_read_the_database_once,
    lists_and_counts_are_invalidated_by_every_write,
    a_rolled_back_transaction_invalidates_nothing,
    redis_down_fails_open_and_nothing_is_stale_after_it_returns,
    reads_off_bypass_the_cache_and_writes_still_invalidate,
    get_json_serves_the_encoding_of_the_cached_row_and_never_an_old_one,
    the_in_process_tier_is_bounded_in_bytes_and_skips_giant_and_deep_pages,
    a_cached_page_token_opens_on_every_instance,
];

fn ctx() -> Context {
    Context::actor("alice")
}

fn prefix() -> String {
    format!("kt{}", uuid::Uuid::new_v4().simple())
}

async fn redis_get(url: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn the_stale_read_race_never_stores_the_old_row(env: Env) {
    if !redis_available() {
        return;
    }
    let prefix = prefix();
    let keel = keel_with_redis(&env, &redis_url(), &prefix).await;
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("race", 100))
        .await
        .unwrap();
    let hook = PauseHook {
        key: p.id.to_string(),
        reached: Arc::new(tokio::sync::Notify::new()),
        resume: Arc::new(tokio::sync::Notify::new()),
    };
    keel.cache().set_pause_hook(Some(hook.clone()));
    // The reader misses, reads the row at price 100, and stops before storing it.
    let reader = tokio::spawn({
        let products = products.clone();
        async move { products.get(&ctx(), p.id).await }
    });
    hook.reached.notified().await;
    keel.cache().set_pause_hook(None);
    // A writer commits (and invalidates) meanwhile.
    products
        .update(&ctx(), p.id, ProductPatch::default().price_cents(200))
        .await
        .unwrap();
    // A read that starts after the write was acknowledged sees it.
    assert_eq!(products.get(&ctx(), p.id).await.unwrap().price_cents, 200);
    hook.resume.notify_one();
    let old = reader.await.unwrap().unwrap();
    assert_eq!(old.price_cents, 100, "the reader read before the write");
    assert!(keel.cache().stats().stale_stores_refused >= 1);
    // The old row was stored nowhere.
    let key = format!("{prefix}:product:_:v:{}", p.id);
    if let Some(stored) = redis_get(&redis_url(), &key).await {
        assert!(stored.contains("\"price_cents\":200"), "{stored}");
    }
    for _ in 0..3 {
        assert_eq!(products.get(&ctx(), p.id).await.unwrap().price_cents, 200);
    }
}

async fn a_second_instance_never_serves_the_old_version_from_redis(env: Env) {
    if !redis_available() {
        return;
    }
    let prefix = prefix();
    let a = keel_with_redis(&env, &redis_url(), &prefix).await;
    let b = keel_with_redis(&env, &redis_url(), &prefix).await;
    let (on_a, on_b) = (
        a.service::<product::Entity>(),
        b.service::<product::Entity>(),
    );
    let p = on_a
        .create(&ctx(), NewProduct::new("twice", 1))
        .await
        .unwrap();
    let mut windows = Vec::new();
    for price in 2..=21 {
        // B has the row in both tiers.
        on_b.get(&ctx(), p.id).await.unwrap();
        on_b.get(&ctx(), p.id).await.unwrap();
        on_a.update(&ctx(), p.id, ProductPatch::default().price_cents(price))
            .await
            .unwrap();
        // Redis no longer has the old version the moment A's write returns.
        let key = format!("{prefix}:product:_:v:{}", p.id);
        if let Some(stored) = redis_get(&redis_url(), &key).await {
            assert!(
                stored.contains(&format!("\"price_cents\":{price},")),
                "{stored}"
            );
        }
        // B's own tier drops it when Redis tells it; until then, at most its L1 TTL.
        let acknowledged = Instant::now();
        loop {
            let seen = on_b.get(&ctx(), p.id).await.unwrap().price_cents;
            if seen == price {
                break;
            }
            assert_eq!(seen, price - 1, "only the version just replaced");
            assert!(
                acknowledged.elapsed() < Duration::from_secs(5),
                "stale past the L1 TTL"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        windows.push(acknowledged.elapsed());
    }
    windows.sort();
    println!(
        "{:?}: instance B's L1 served the replaced version for at most {:?} (median {:?}) after A's write returned",
        env.backend(),
        windows.last().unwrap(),
        windows[windows.len() / 2]
    );
}

async fn concurrent_misses_read_the_database_once(env: Env) {
    if !redis_available() {
        return;
    }
    let keel = keel_with_redis(&env, &redis_url(), &prefix()).await;
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("cold", 1))
        .await
        .unwrap();
    let before = keel.cache().stats().loads;
    let mut readers = Vec::new();
    for _ in 0..200 {
        let products = products.clone();
        readers.push(tokio::spawn(async move {
            products.get(&ctx(), p.id).await.unwrap()
        }));
    }
    for reader in readers {
        assert_eq!(reader.await.unwrap().id, p.id);
    }
    assert_eq!(keel.cache().stats().loads - before, 1, "one database read");
}

async fn lists_and_counts_are_invalidated_by_every_write(env: Env) {
    if !redis_available() {
        return;
    }
    let prefix = prefix();
    let a = keel_with_redis(&env, &redis_url(), &prefix).await;
    let b = keel_with_redis(&env, &redis_url(), &prefix).await;
    let products = a.service::<product::Entity>();
    for i in 0..3 {
        products
            .create(&ctx(), NewProduct::new(format!("l-{i}"), 10 + i))
            .await
            .unwrap();
    }
    let all = ListQuery::new().order_by("sku");
    let count = |keel: &keel::Keel| {
        let service = keel.service::<product::Entity>();
        async move { service.count(&ctx(), &ListQuery::new()).await.unwrap() }
    };
    let list = |keel: &keel::Keel| {
        let (service, all) = (keel.service::<product::Entity>(), all.clone());
        async move { service.list(&ctx(), &all).await.unwrap().items }
    };
    assert_eq!(count(&a).await, 3);
    assert_eq!(list(&a).await.len(), 3);
    assert_eq!(list(&b).await.len(), 3);
    // Served from the cache (once the instance's own invalidation messages,
    // which evict conservatively, have gone by).
    eventually(|| async {
        let hits = a.cache().stats().l1_hits;
        count(&a).await == 3 && a.cache().stats().l1_hits > hits
    })
    .await;

    // A write in an explicit transaction.
    a.transaction(&ctx(), TxOptions::new(), |tx| async move {
        tx.service::<product::Entity>()
            .create(tx.context(), NewProduct::new("l-tx", 50))
            .await?;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(count(&a).await, 4);
    assert_eq!(list(&a).await.len(), 4);
    eventually(|| async { count(&b).await == 4 }).await;

    // A bulk update.
    let changed = products
        .update_many(
            &ctx(),
            "price_cents >= 10",
            ProductPatch::default().stock(9),
        )
        .await
        .unwrap();
    assert_eq!(changed, 4);
    assert!(list(&a).await.iter().all(|p| p.stock == 9));
    eventually(|| async { list(&b).await.iter().all(|p| p.stock == 9) }).await;

    // A delete.
    let first = list(&a).await[0].id;
    products.delete(&ctx(), first).await.unwrap();
    assert_eq!(count(&a).await, 3);
    assert_eq!(list(&a).await.len(), 3);
    assert_eq!(
        products
            .count(&ctx(), &ListQuery::new().show_deleted(true))
            .await
            .unwrap(),
        4
    );
}

/// Another instance's L1 hears of a write through Redis pub/sub: give it a moment.
async fn eventually<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never caught up"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn a_rolled_back_transaction_invalidates_nothing(env: Env) {
    if !redis_available() {
        return;
    }
    let prefix = prefix();
    let keel = keel_with_redis(&env, &redis_url(), &prefix).await;
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx(), NewProduct::new("rb", 7))
        .await
        .unwrap();
    products.get(&ctx(), p.id).await.unwrap();
    let before = keel.cache().stats();
    let err = keel
        .transaction(&ctx(), TxOptions::new(), |tx| async move {
            tx.service::<product::Entity>()
                .update(tx.context(), p.id, ProductPatch::default().price_cents(8))
                .await?;
            Err::<(), _>(Error::rejected("NO", "roll back"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NO");
    let after = keel.cache().stats();
    assert_eq!(after.invalidations, before.invalidations);
    let key = format!("{prefix}:product:_:v:{}", p.id);
    assert!(
        redis_get(&redis_url(), &key).await.is_some(),
        "still cached in Redis"
    );
    assert_eq!(products.get(&ctx(), p.id).await.unwrap().price_cents, 7);
    assert_eq!(
        keel.cache().stats().l1_hits,
        after.l1_hits + 1,
        "still cached in process"
    );
}

async fn redis_down_fails_open_and_nothing_is_stale_after_it_returns(env: Env) {
    if std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    }
    let port = RedisServer::free_port();
    let mut redis = RedisServer::start(port).expect("redis-server");
    let url = redis.url();
    let prefix = prefix();
    let a = keel_with_redis(&env, &url, &prefix).await;
    let b = keel_with_redis(&env, &url, &prefix).await;
    let health = HealthCoordinator::new("svc", "1", Duration::from_secs(60));
    a.cache().health_checks(&health).unwrap();
    let (on_a, on_b) = (
        a.service::<product::Entity>(),
        b.service::<product::Entity>(),
    );
    let p = on_a
        .create(&ctx(), NewProduct::new("outage", 1))
        .await
        .unwrap();
    assert_eq!(on_b.get(&ctx(), p.id).await.unwrap().price_cents, 1);
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Healthy);

    redis.stop();
    // Every operation still succeeds.
    let started = Instant::now();
    for i in 0..10 {
        on_a.get(&ctx(), p.id).await.unwrap();
        on_a.list(&ctx(), &ListQuery::new()).await.unwrap();
        on_a.count(&ctx(), &ListQuery::new()).await.unwrap();
        let extra = on_a
            .create(&ctx(), NewProduct::new(format!("o-{i}"), 5))
            .await
            .unwrap();
        on_a.update(&ctx(), extra.id, ProductPatch::default().stock(1))
            .await
            .unwrap();
        on_a.delete(&ctx(), extra.id).await.unwrap();
    }
    println!(
        "{:?}: 60 operations with Redis down took {:?}",
        env.backend(),
        started.elapsed()
    );
    on_a.update(&ctx(), p.id, ProductPatch::default().price_cents(2))
        .await
        .unwrap();
    assert_eq!(
        on_a.get(&ctx(), p.id).await.unwrap().price_cents,
        2,
        "A's own write"
    );
    assert_eq!(
        a.cache().breaker().unwrap().state(),
        BreakerState::Open,
        "the breaker opened"
    );
    for _ in 0..3 {
        health.run_once().await;
    }
    let report = health.report();
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert_eq!(
        report.checks.get("redis").unwrap().status,
        HealthStatus::Unhealthy
    );
    assert_eq!(
        report.checks.get("cache").unwrap().status,
        HealthStatus::Degraded
    );
    assert!(health.is_ready(), "Redis is not critical");

    let _redis = RedisServer::start(port).expect("redis-server again");
    // After Redis returns, B (which cached price 1 before the outage and
    // heard nothing since) serves the new price: its subscription
    // reconnects and flushes its L1.
    let back = Instant::now();
    eventually(|| async { on_b.get(&ctx(), p.id).await.unwrap().price_cents == 2 }).await;
    println!(
        "{:?}: B fresh {:?} after Redis returned",
        env.backend(),
        back.elapsed()
    );
    // The breaker closes again and the missed invalidations are delivered.
    eventually(|| async {
        on_a.get(&ctx(), p.id).await.unwrap();
        a.cache().breaker().unwrap().state() == BreakerState::Closed
    })
    .await;
    eventually(|| async {
        health.run_once().await;
        health.report().checks.get("cache").unwrap().status == HealthStatus::Healthy
    })
    .await;
    for _ in 0..5 {
        assert_eq!(on_b.get(&ctx(), p.id).await.unwrap().price_cents, 2);
        assert_eq!(on_a.get(&ctx(), p.id).await.unwrap().price_cents, 2);
    }
}

/// `KEEL_CACHE=off` (`CacheConfig::reads`): reads go to the database, and
/// the writes of such an instance still keep a caching instance fresh.
async fn reads_off_bypass_the_cache_and_writes_still_invalidate(env: Env) {
    if !redis_available() {
        return;
    }
    let shared = prefix();
    let caching = keel_with_redis(&env, &redis_url(), &shared).await;
    let mut cache = keel::cache::CacheConfig::default();
    cache.redis_url = Some(redis_url());
    cache.prefix = shared.clone();
    cache.reads = false;
    let plain = env.db.builder().cache(cache).connect().await.unwrap();
    let direct = plain.service::<product::Entity>();
    let p = direct
        .create(&ctx(), NewProduct::new("plain", 1))
        .await
        .unwrap();
    for _ in 0..3 {
        direct.get(&ctx(), p.id).await.unwrap();
        direct.count(&ctx(), &ListQuery::new()).await.unwrap();
    }
    let stats = plain.cache().stats();
    assert_eq!(
        (stats.l1_hits, stats.l2_hits, stats.misses, stats.loads),
        (0, 0, 0, 0),
        "no read went through the cache"
    );
    // The caching instance caches the row; a write through the plain one
    // invalidates it.
    let cached = caching.service::<product::Entity>();
    assert_eq!(cached.get(&ctx(), p.id).await.unwrap().price_cents, 1);
    assert_eq!(cached.get(&ctx(), p.id).await.unwrap().price_cents, 1);
    direct
        .update(&ctx(), p.id, ProductPatch::default().price_cents(2))
        .await
        .unwrap();
    eventually(|| {
        let cached = cached.clone();
        async move { cached.get(&ctx(), p.id).await.unwrap().price_cents == 2 }
    })
    .await;
}

/// `get_json` (what the REST layer's GET uses): the JSON is always the row
/// it comes with, encoded once per cached entry, and a write on this or
/// another instance never leaves an old encoding behind.
async fn get_json_serves_the_encoding_of_the_cached_row_and_never_an_old_one(env: Env) {
    if !redis_available() {
        return;
    }
    let prefix = prefix();
    let a = keel_with_redis(&env, &redis_url(), &prefix).await;
    let b = keel_with_redis(&env, &redis_url(), &prefix).await;
    let (on_a, on_b) = (
        a.service::<product::Entity>(),
        b.service::<product::Entity>(),
    );
    let p = on_a
        .create(&ctx(), NewProduct::new("json", 1))
        .await
        .unwrap();
    let encoded = |row: &product::Model| serde_json::to_vec(row).unwrap();

    let miss = on_a.get_json(&ctx(), p.id).await.unwrap();
    assert_eq!(miss.row, p);
    assert_eq!(miss.json, encoded(&p));
    let hit = on_a.get_json(&ctx(), p.id).await.unwrap();
    let again = on_a.get_json(&ctx(), p.id).await.unwrap();
    assert_eq!(hit.json, encoded(&p));
    assert_eq!(
        hit.json.as_ptr(),
        again.json.as_ptr(),
        "hits share one encoding"
    );
    assert_eq!(on_a.get(&ctx(), p.id).await.unwrap(), p, "get agrees");

    for price in 2..=6 {
        // B holds the row and its encoding in its in-process tier.
        on_b.get_json(&ctx(), p.id).await.unwrap();
        on_b.get_json(&ctx(), p.id).await.unwrap();
        let written = on_a
            .update(&ctx(), p.id, ProductPatch::default().price_cents(price))
            .await
            .unwrap();
        // The writer's own instance: the new row at once.
        let mine = on_a.get_json(&ctx(), p.id).await.unwrap();
        assert_eq!(mine.row, written);
        assert_eq!(mine.json, encoded(&written));
        // The other instance: the old row only until Redis tells it, and
        // whatever it serves, the JSON is that row's.
        let acknowledged = Instant::now();
        loop {
            let seen = on_b.get_json(&ctx(), p.id).await.unwrap();
            assert_eq!(seen.json, encoded(&seen.row), "JSON and row agree");
            if seen.row == written {
                break;
            }
            assert_eq!(
                seen.row.price_cents,
                price - 1,
                "only the version just replaced"
            );
            assert!(
                acknowledged.elapsed() < Duration::from_secs(5),
                "stale past the L1 TTL"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    on_a.delete(&ctx(), p.id).await.unwrap();
    assert_eq!(
        on_a.get_json(&ctx(), p.id).await.unwrap_err().code(),
        "NOT_FOUND"
    );
    let acknowledged = Instant::now();
    while on_b.get_json(&ctx(), p.id).await.is_ok() {
        assert!(
            acknowledged.elapsed() < Duration::from_secs(5),
            "a deleted row served past the L1 TTL"
        );
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Two hundred distinct lists of a 100 KB row would take 20 MB; the
/// in-process tier keeps to its byte budget, a value over the entry limit
/// is never cached, and neither is a page deep down an offset.
async fn the_in_process_tier_is_bounded_in_bytes_and_skips_giant_and_deep_pages(env: Env) {
    use keel_tests::entities::invoice::{self, NewInvoice};
    let mut cache = keel::cache::CacheConfig::default();
    cache.l1_max_bytes = 2 << 20;
    cache.max_entry_bytes = 256 << 10;
    let keel = env.db.builder().cache(cache).connect().await.unwrap();
    let invoices = keel.service::<invoice::Entity>();
    let mut input = NewInvoice::new("big", 100.0);
    input.lines = serde_json::json!(["x".repeat(100_000)]);
    let big = invoices.create(&ctx(), input).await.unwrap();
    for i in 0..200 {
        let query = ListQuery::new().filter(format!("amount > {i} OR customer = \"big\""));
        let page = invoices.list(&ctx(), &query).await.unwrap();
        assert_eq!(page.items.len(), 1);
    }
    keel.cache().settle();
    let stats = keel.cache().stats();
    assert!(stats.l1_bytes <= 2 << 20, "{stats:?}");
    assert!(stats.l1_entries >= 5, "it still caches: {stats:?}");

    // A 300 KB row is over the entry limit: every read loads it.
    let mut input = NewInvoice::new("giant", 100.0);
    input.lines = serde_json::json!(["y".repeat(300_000)]);
    let giant = invoices.create(&ctx(), input).await.unwrap();
    let before = keel.cache().stats().loads;
    for _ in 0..3 {
        assert_eq!(invoices.get(&ctx(), giant.id).await.unwrap(), giant);
    }
    assert_eq!(keel.cache().stats().loads - before, 3, "never cached");
    // The 100 KB row is cached: one load, then hits.
    let before = keel.cache().stats().loads;
    for _ in 0..3 {
        invoices.get(&ctx(), big.id).await.unwrap();
    }
    assert_eq!(keel.cache().stats().loads - before, 1);
    // A page deep down an offset is not cached either.
    let deep = ListQuery::new().skip(5_000);
    let before = keel.cache().stats().loads;
    for _ in 0..2 {
        invoices.list(&ctx(), &deep).await.unwrap();
    }
    assert_eq!(
        keel.cache().stats().loads,
        before,
        "not even loaded through the cache"
    );
}

/// Instances sharing Redis share the page-token secret (Keel refuses to
/// start otherwise), so a page one instance cached, token included, pages
/// on from any of them.
async fn a_cached_page_token_opens_on_every_instance(env: Env) {
    if !redis_available() {
        return;
    }
    let prefix = prefix();
    let a = keel_with_redis(&env, &redis_url(), &prefix).await;
    let b = keel_with_redis(&env, &redis_url(), &prefix).await;
    for i in 0..3 {
        a.service::<product::Entity>()
            .create(&ctx(), NewProduct::new(format!("T-{i}"), 10))
            .await
            .unwrap();
    }
    let first = ListQuery::new().page_size(1).order_by("sku");
    let on_a = a
        .service::<product::Entity>()
        .list(&ctx(), &first)
        .await
        .unwrap();
    let on_b = b
        .service::<product::Entity>()
        .list(&ctx(), &first)
        .await
        .unwrap();
    assert_eq!(on_a, on_b, "B served A's cached page");
    let token = on_b.next_page_token.expect("more pages");
    for keel in [&a, &b] {
        let next = keel
            .service::<product::Entity>()
            .list(&ctx(), &first.clone().page_token(token.clone()))
            .await
            .unwrap();
        assert_eq!(next.items[0].sku, "T-1");
    }
    // And without the shared secret, an instance on that Redis does not start.
    let mut cache = keel::cache::CacheConfig::default();
    cache.redis_url = Some(redis_url());
    let mut config = keel::KeelConfig::new(env.db.url.clone());
    config.cache = cache;
    let err = keel::Keel::connect(config).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT", "{err:?}");
}
