//! Health under real faults: a PostgreSQL cluster and a Redis server of the
//! test's own, on free loopback ports, stopped and started again. The shared
//! servers the other tests use are never touched.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keel::Keel;
use keel::cache::RedisCheck;
use keel::health::{CheckPolicy, DatabaseCheck, HealthCoordinator, HealthStatus};
use keel::resilience::{BreakerConfig, BreakerState, CircuitBreaker};
use keel_tests::PgCluster as Cluster;
use keel_tests::RedisServer;

async fn run_until(
    health: &HealthCoordinator,
    check: &str,
    want: HealthStatus,
    limit: Duration,
) -> usize {
    let started = Instant::now();
    let mut rounds = 0;
    loop {
        health.run_once().await;
        rounds += 1;
        let status = health.report().checks.get(check).unwrap().status;
        if status == want {
            return rounds;
        }
        assert!(
            started.elapsed() < limit,
            "{check} did not become {want:?} within {limit:?} (still {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_database_check_follows_a_real_postgresql_going_down_and_up() {
    let Some(cluster) = Cluster::create() else {
        eprintln!("SKIPPED: pg_createcluster is not installed");
        return;
    };
    let keel = Keel::builder()
        .database_url(cluster.url())
        .acquire_timeout(Duration::from_millis(500))
        .connect()
        .await
        .expect("connect to the throwaway cluster");
    let health = HealthCoordinator::new("svc", "1", Duration::from_secs(60));
    health
        .register(
            DatabaseCheck::new(keel.clone()),
            CheckPolicy::default()
                .thresholds(2, 2)
                .timeout(Duration::from_secs(2)),
        )
        .unwrap();
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Healthy);

    cluster.stop();
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Degraded, "first failure");
    let rounds = run_until(
        &health,
        "database",
        HealthStatus::Unhealthy,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(rounds, 1, "second consecutive failure");
    assert_eq!(health.status(), HealthStatus::Unhealthy, "critical");
    assert!(!health.is_ready());
    let report = serde_json::to_string(&health.report()).unwrap();
    assert!(!report.contains("postgres://"), "{report}");
    let error = health
        .report()
        .checks
        .get("database")
        .unwrap()
        .last_error
        .clone()
        .unwrap();
    assert!(error.starts_with("service unavailable"), "{error}");

    cluster.start();
    let rounds = run_until(
        &health,
        "database",
        HealthStatus::Healthy,
        Duration::from_secs(20),
    )
    .await;
    assert!(rounds >= 2, "recovery needs two successes in a row");
    assert!(health.is_ready());
    keel.close().await.unwrap();
}

#[tokio::test]
async fn redis_down_degrades_opens_the_breaker_and_recovers() {
    let port = RedisServer::free_port();
    let Some(mut redis) = RedisServer::start(port) else {
        eprintln!("SKIPPED: redis-server is not installed");
        return;
    };
    let breaker = Arc::new(CircuitBreaker::new(
        "redis-fault",
        BreakerConfig {
            window_size: 2,
            minimum_calls: 2,
            wait_in_open: Duration::from_millis(500),
            half_open_calls: 1,
            ..BreakerConfig::default()
        },
    ));
    let health = HealthCoordinator::new("svc", "1", Duration::from_secs(60));
    health
        .register(
            RedisCheck::new(&format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .with_breaker(breaker.clone()),
            CheckPolicy::default()
                .thresholds(2, 2)
                .timeout(Duration::from_secs(1)),
        )
        .unwrap();
    health
        .register(
            breaker.health_check(),
            CheckPolicy::default().thresholds(1, 1),
        )
        .unwrap();
    // The first connection may take a while on a loaded machine.
    run_until(
        &health,
        "redis",
        HealthStatus::Healthy,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(health.status(), HealthStatus::Healthy);
    assert!(
        health
            .report()
            .checks
            .get("redis")
            .unwrap()
            .observed_value
            .is_some()
    );

    redis.stop();
    run_until(
        &health,
        "redis",
        HealthStatus::Unhealthy,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(breaker.state(), BreakerState::Open);
    let report = health.report();
    assert_eq!(
        report.status,
        HealthStatus::Degraded,
        "Redis is not critical"
    );
    assert!(report.ready);
    assert_eq!(
        report.checks.get("breaker:redis-fault").unwrap().status,
        HealthStatus::Unhealthy
    );
    health.run_once().await;
    assert_eq!(
        health
            .report()
            .checks
            .get("redis")
            .unwrap()
            .last_error
            .as_deref(),
        Some("circuit breaker open"),
        "while open, Redis is not even called"
    );

    let _redis = RedisServer::start(port).expect("redis-server again");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    run_until(
        &health,
        "redis",
        HealthStatus::Healthy,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(breaker.state(), BreakerState::Closed, "the probe succeeded");
    run_until(
        &health,
        "breaker:redis-fault",
        HealthStatus::Healthy,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(health.status(), HealthStatus::Healthy);
}

#[test]
fn an_invalid_redis_url_is_refused_without_echoing_it() {
    let err = RedisCheck::new("redis://user:s3cret@").unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    assert!(!err.to_string().contains("s3cret"), "{err}");
}
