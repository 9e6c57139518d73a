//! The cache's hit and miss paths against the raw operation beneath each:
//!
//! - L1 hit vs a raw get of the same value from quick_cache (the tier
//!   beneath) and from moka (the tier before);
//! - L2 hit vs a raw Redis GET plus serde_json decode;
//! - miss vs a raw sea-orm `find_by_id` plus a Redis SET.
//!
//! ```sh
//! cargo bench -p keel-rs --bench cache            # Redis at REDIS_URL or 127.0.0.1:6379
//! ```

#![allow(missing_docs, unreachable_pub)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use keel::cache::CacheConfig;
use keel::{CachePolicy, Keel};
use sea_orm::EntityTrait;

mod item {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
    #[sea_orm(table_name = "bench_items")]
    #[service(name = "item", cache)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub sku: String,
        pub name: String,
        pub description: Option<String>,
        pub price_cents: i64,
        pub stock: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

type Row = Option<item::Model>;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("kb{}", std::process::id());
    let (keel, redis, row) = rt.block_on(async {
        let mut cache = CacheConfig::default();
        cache.redis_url = Some(redis_url());
        cache.prefix = prefix.clone();
        cache.redis_timeout = Duration::from_millis(250);
        let keel = Keel::builder()
            .database_url("sqlite::memory:")
            .page_token_secret("bench-secret-bench-secret-bench-secret")
            .cache(cache)
            .connect()
            .await
            .unwrap();
        keel.create_table(item::Entity).await.unwrap();
        let row = keel
            .service::<item::Entity>()
            .create(
                &keel::Context::system(),
                item::NewItem {
                    sku: "BENCH-1".into(),
                    name: "A benchmark item".into(),
                    description: Some("Twenty-odd bytes of text".into()),
                    price_cents: 1999,
                    stock: 7,
                },
            )
            .await
            .unwrap();
        let redis = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (keel, redis, row)
    });
    let cache = keel.cache().clone();
    let scope = cache.scope("item", None);
    let id = row.id.to_string();
    let l1_policy = CachePolicy {
        ttl: Duration::from_secs(600),
        l1_ttl: Duration::from_secs(600),
        jitter: 0.0,
        ..CachePolicy::DEFAULT
    };
    let l2_policy = CachePolicy {
        l1: false,
        ..l1_policy
    };
    let unreachable = || async { Err::<Row, _>(keel::Error::internal("the bench expects a hit")) };

    // ---- L1 hit vs a raw quick_cache get and a raw moka get
    let moka: moka::sync::Cache<String, Row> = moka::sync::Cache::new(1000);
    let quick: quick_cache::sync::Cache<String, Row> = quick_cache::sync::Cache::new(1000);
    let raw_key = format!("{prefix}:raw:{id}");
    moka.insert(raw_key.clone(), Some(row.clone()));
    quick.insert(raw_key.clone(), Some(row.clone()));
    rt.block_on(
        cache.get::<Row, _, _>(&l1_policy, &scope, &id, || async { Ok(Some(row.clone())) }),
    )
    .unwrap();
    let mut group = c.benchmark_group("l1_hit");
    group.bench_function("raw_quick_cache_get", |b| {
        b.to_async(&rt)
            .iter(|| async { quick.get(raw_key.as_str()).unwrap() })
    });
    group.bench_function("raw_moka_get", |b| {
        b.to_async(&rt)
            .iter(|| async { moka.get(raw_key.as_str()).unwrap() })
    });
    group.bench_function("keel_cache_get", |b| {
        b.to_async(&rt).iter(|| async {
            cache
                .get::<Row, _, _>(&l1_policy, &scope, &id, unreachable)
                .await
                .unwrap()
        })
    });
    group.finish();

    // ---- L2 hit vs a raw GET plus decode
    let json = serde_json::to_vec(&Some(row.clone())).unwrap();
    let raw_redis_key = format!("{prefix}:raw:v:{id}");
    rt.block_on(async {
        let mut conn = redis.clone();
        let _: () = redis::cmd("SET")
            .arg(&raw_redis_key)
            .arg(&json)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Fill L2 through the cache (the store is asynchronous).
        cache
            .get::<Row, _, _>(&l2_policy, &scope, &id, || async { Ok(Some(row.clone())) })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    let mut group = c.benchmark_group("l2_hit");
    group.bench_function("raw_get_and_decode", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = redis.clone();
            let bytes: Vec<u8> = redis::cmd("GET")
                .arg(&raw_redis_key)
                .query_async(&mut conn)
                .await
                .unwrap();
            serde_json::from_slice::<Row>(&bytes).unwrap()
        })
    });
    group.bench_function("keel_cache_get", |b| {
        b.to_async(&rt).iter(|| async {
            cache
                .get::<Row, _, _>(&l2_policy, &scope, &id, unreachable)
                .await
                .unwrap()
        })
    });
    group.finish();

    // ---- miss vs a raw find_by_id plus SET
    let db = keel.db().clone();
    let row_id = row.id;
    let mut group = c.benchmark_group("miss");
    group.bench_function("raw_find_and_set", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cache, scope, id, db, redis) = (
                cache.clone(),
                scope.clone(),
                id.clone(),
                db.clone(),
                redis.clone(),
            );
            let raw_redis_key = raw_redis_key.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Not timed, as for Keel's miss below: the same invalidation.
                    cache.invalidate(&scope, std::slice::from_ref(&id)).await;
                    let started = Instant::now();
                    let found = item::Entity::find_by_id(row_id).one(&db).await.unwrap();
                    let bytes = serde_json::to_vec(&found).unwrap();
                    let mut conn = redis.clone();
                    let _: () = redis::cmd("SET")
                        .arg(&raw_redis_key)
                        .arg(bytes)
                        .arg("PX")
                        .arg(600_000)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    total += started.elapsed();
                    assert!(found.is_some());
                }
                total
            }
        })
    });
    group.bench_function("keel_cache_get", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (cache, scope, id, db) = (cache.clone(), scope.clone(), id.clone(), db.clone());
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // Not timed: make the next read a miss of every tier.
                    cache.invalidate(&scope, std::slice::from_ref(&id)).await;
                    let started = Instant::now();
                    let found = cache
                        .get::<Row, _, _>(&l1_policy, &scope, &id, || async {
                            item::Entity::find_by_id(row_id)
                                .one(&db)
                                .await
                                .map_err(keel::Error::from)
                        })
                        .await
                        .unwrap();
                    total += started.elapsed();
                    assert!(found.is_some());
                }
                total
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = bench
}
criterion_main!(benches);
