//! The runtime: start order, retries, stop order, graceful shutdown; the
//! health coordinator; the metrics text after a workload.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel::health::{
    CheckPolicy, HealthCheck, HealthCoordinator, HealthStatus, Observation, VolumeCheck,
};
use keel::lifecycle::{Component, Runtime, RuntimeConfig, ServiceStatus};
use keel::resilience::{BreakerConfig, CircuitBreaker, RetryPolicy};
use keel::{Context, Error, ListQuery, Result};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};

/// A component that takes `delay` to start, fails its first `failures`
/// starts, and writes what it does to a shared log.
struct Part {
    name: &'static str,
    delay: Duration,
    failures: usize,
    attempts: AtomicUsize,
    stop_delay: Duration,
    log: Arc<Mutex<Vec<String>>>,
}

impl Part {
    fn new(name: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Self {
        Part {
            name,
            delay: Duration::from_millis(150),
            failures: 0,
            attempts: AtomicUsize::new(0),
            stop_delay: Duration::ZERO,
            log: log.clone(),
        }
    }
}

impl Component for Part {
    fn name(&self) -> &str {
        self.name
    }

    async fn start(&self) -> Result<()> {
        tokio::time::sleep(self.delay).await;
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if attempt <= self.failures {
            return Err(Error::Unavailable {
                reason: "not yet",
                source: None,
            });
        }
        self.log
            .lock()
            .unwrap()
            .push(format!("start {}", self.name));
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        tokio::time::sleep(self.stop_delay).await;
        self.log.lock().unwrap().push(format!("stop {}", self.name));
        Ok(())
    }
}

fn quick() -> RuntimeConfig {
    let mut config = RuntimeConfig::default();
    config.start_retry = RetryPolicy::attempts(3)
        .min_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(20));
    config.stop_timeout = Duration::from_millis(300);
    config.drain_delay = Duration::from_millis(200);
    config.drain_timeout = Duration::from_secs(2);
    config.health_period = Duration::from_secs(60);
    config
}

/// db, worker | cache(db), broker(db) | outbox(db, broker) | api(cache, outbox)
fn six(log: &Arc<Mutex<Vec<String>>>) -> keel::lifecycle::RuntimeBuilder {
    Runtime::builder("shop", "1.0.0")
        .config(quick())
        .component(Part::new("api", log), &["cache", "outbox"])
        .component(Part::new("outbox", log), &["db", "broker"])
        .component(Part::new("cache", log), &["db"])
        .component(Part::new("broker", log), &["db"])
        .component(Part::new("db", log), &[])
        .component(Part::new("worker", log), &[])
}

#[tokio::test]
async fn six_components_start_in_dependency_order_in_parallel_and_stop_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let runtime = six(&log).build().unwrap();
    assert_eq!(
        runtime.start_order(),
        [
            vec!["db", "worker"],
            vec!["cache", "broker"],
            vec!["outbox"],
            vec!["api"]
        ]
    );
    let mut transitions = runtime.transitions();
    let started = Instant::now();
    runtime.start().await.unwrap();
    let took = started.elapsed();
    assert_eq!(runtime.status(), ServiceStatus::Running);
    // Four levels of 150 ms each; one at a time it would be six.
    assert!(
        took < Duration::from_millis(850),
        "parallel start took {took:?}"
    );
    let records = runtime.start_records();
    let at = |name: &str| {
        records
            .iter()
            .find(|r| r.component == name)
            .unwrap()
            .clone()
    };
    for (component, deps) in [
        ("cache", &["db"][..]),
        ("broker", &["db"]),
        ("outbox", &["db", "broker"]),
        ("api", &["cache", "outbox"]),
    ] {
        for dep in deps {
            assert!(
                at(component).began >= at(dep).ended,
                "{component} after {dep}"
            );
        }
    }
    // Independent components overlapped.
    assert!(at("worker").began < at("db").ended);
    assert!(at("cache").began < at("broker").ended && at("broker").began < at("cache").ended);
    println!("start of 6 components (150 ms each): {took:?}; records {records:?}");

    log.lock().unwrap().clear();
    let stops = runtime.stop().await;
    assert!(stops.iter().all(|s| s.outcome.is_ok()));
    assert_eq!(runtime.status(), ServiceStatus::Stopped);
    let order = log.lock().unwrap().clone();
    let pos = |name: &str| {
        order
            .iter()
            .position(|l| l == &format!("stop {name}"))
            .unwrap()
    };
    assert!(pos("api") < pos("outbox") && pos("outbox") < pos("broker"));
    assert!(pos("cache") < pos("db") && pos("broker") < pos("db"));

    let mut seen = Vec::new();
    while let Ok(t) = transitions.try_recv() {
        seen.push(t.to);
    }
    use ServiceStatus::*;
    assert_eq!(seen, [Starting, Running, Stopping, Stopped]);
}

#[tokio::test]
async fn a_component_that_fails_twice_starts_on_the_third_try() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut flaky = Part::new("flaky", &log);
    flaky.failures = 2;
    flaky.delay = Duration::ZERO;
    let runtime = Runtime::builder("svc", "1")
        .config(quick())
        .component(flaky, &[])
        .build()
        .unwrap();
    runtime.start().await.unwrap();
    assert_eq!(runtime.start_records()[0].attempts, 3);
    assert_eq!(runtime.status(), ServiceStatus::Running);
    runtime.stop().await;
}

#[tokio::test]
async fn a_component_that_never_starts_is_named_and_the_rest_is_stopped() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut broken = Part::new("broken", &log);
    broken.failures = usize::MAX;
    broken.delay = Duration::ZERO;
    let mut base = Part::new("base", &log);
    base.delay = Duration::ZERO;
    let runtime = Runtime::builder("svc", "1")
        .config(quick())
        .component(base, &[])
        .component(broken, &["base"])
        .build()
        .unwrap();
    let err = runtime.start().await.unwrap_err();
    assert_eq!(err.component, "broken");
    assert_eq!(err.attempts, 3);
    assert_eq!(err.error.code(), "UNAVAILABLE");
    assert_eq!(
        err.to_string(),
        "component broken failed to start after 3 attempts: service unavailable: not yet"
    );
    assert_eq!(runtime.status(), ServiceStatus::Error);
    assert_eq!(*log.lock().unwrap(), ["start base", "stop base"]);
    assert!(!runtime.health().is_live(), "Error is not live");
    // Error -> Starting: a restart is allowed (and fails the same way here).
    assert!(runtime.start().await.is_err());
}

#[tokio::test]
async fn stop_runs_in_reverse_with_a_deadline_per_component() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut stuck = Part::new("stuck", &log);
    stuck.delay = Duration::ZERO;
    stuck.stop_delay = Duration::from_secs(30);
    let mut first = Part::new("first", &log);
    first.delay = Duration::ZERO;
    let runtime = Runtime::builder("svc", "1")
        .config(quick())
        .component(first, &[])
        .component(stuck, &["first"])
        .build()
        .unwrap();
    runtime.start().await.unwrap();
    let started = Instant::now();
    let stops = runtime.stop().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(stops[0].component, "stuck");
    assert_eq!(
        stops[0].outcome.as_ref().unwrap_err().code(),
        "DEADLINE_EXCEEDED"
    );
    assert_eq!(stops[1].component, "first");
    assert!(stops[1].outcome.is_ok());
    assert_eq!(runtime.status(), ServiceStatus::Stopped);
}

#[test]
fn a_dependency_cycle_or_unknown_dependency_is_refused_when_building() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let err = Runtime::builder("svc", "1")
        .component(Part::new("a", &log), &["c"])
        .component(Part::new("b", &log), &["a"])
        .component(Part::new("c", &log), &["b"])
        .component(Part::new("d", &log), &[])
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the dependencies of components a, b, c form a cycle"
    );
    let err = Runtime::builder("svc", "1")
        .component(Part::new("a", &log), &["nope"])
        .build()
        .unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
}

#[tokio::test]
async fn graceful_shutdown_turns_unready_first_and_waits_for_work_in_flight() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let runtime = six(&log).build().unwrap();
    assert!(!runtime.health().is_started(), "the startup probe waits");
    runtime.start().await.unwrap();
    assert!(runtime.health().is_ready());
    assert!(runtime.health().is_started());
    let work = runtime.work();
    let shutdown = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.shutdown().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!runtime.health().is_ready(), "readiness goes false at once");
    assert!(runtime.health().is_live());
    assert_eq!(runtime.status(), ServiceStatus::Running, "still serving");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        runtime.status(),
        ServiceStatus::Running,
        "the drain delay passed, but a request is in flight"
    );
    drop(work);
    let stops = tokio::time::timeout(Duration::from_secs(3), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stops.len(), 6);
    assert_eq!(runtime.status(), ServiceStatus::Stopped);
    assert!(
        runtime.health().is_started(),
        "started once is started for good"
    );
    assert!(!runtime.health().is_ready());
}

/// A check whose answer the test sets.
struct Switch {
    name: &'static str,
    ok: Arc<std::sync::atomic::AtomicBool>,
    hang: bool,
}

impl HealthCheck for Switch {
    fn name(&self) -> &str {
        self.name
    }

    fn critical(&self) -> bool {
        self.name == "critical"
    }

    async fn check(&self) -> Observation {
        if self.hang {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if self.ok.load(Ordering::SeqCst) {
            Observation::healthy().with_value(1.0, "ms")
        } else {
            Observation::unhealthy("down at postgres://app:hunter2@db/shop")
        }
    }
}

#[tokio::test]
async fn the_coordinator_applies_thresholds_and_aggregates() {
    let health = HealthCoordinator::new("svc", "2.0.0", Duration::from_secs(60));
    let critical = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let optional = Arc::new(std::sync::atomic::AtomicBool::new(true));
    for (name, ok) in [("critical", &critical), ("optional", &optional)] {
        health
            .register(
                Switch {
                    name,
                    ok: ok.clone(),
                    hang: false,
                },
                CheckPolicy::default().thresholds(2, 2).history(3),
            )
            .unwrap();
    }
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Healthy);
    optional.store(false, Ordering::SeqCst);
    health.run_once().await;
    health.run_once().await;
    let report = health.report();
    assert_eq!(
        report.checks.get("optional").unwrap().status,
        HealthStatus::Unhealthy
    );
    assert_eq!(report.status, HealthStatus::Degraded, "not critical");
    assert!(report.ready, "non-critical checks do not affect readiness");
    critical.store(false, Ordering::SeqCst);
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Degraded, "first failure");
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Unhealthy);
    assert!(!health.is_ready());
    assert!(health.is_live(), "liveness depends on nothing external");
    critical.store(true, Ordering::SeqCst);
    optional.store(true, Ordering::SeqCst);
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Unhealthy, "no flapping");
    health.run_once().await;
    assert_eq!(health.status(), HealthStatus::Healthy);

    let json = serde_json::to_value(health.report()).unwrap();
    assert_eq!(json["service"], "svc");
    assert_eq!(json["version"], "2.0.0");
    let check = &json["checks"]["critical"];
    assert_eq!(check["status"], "healthy");
    assert_eq!(check["critical"], true);
    assert_eq!(check["observed_value"], 1.0);
    assert_eq!(check["unit"], "ms");
    assert_eq!(check["consecutive_failures"], 0);
    assert_eq!(check["history"].as_array().unwrap().len(), 3);
    assert!(check["last_success"].is_string());
    let text = json.to_string();
    assert!(text.contains("postgres://***@db/shop"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_hanging_check_times_out_without_delaying_the_others() {
    let health = HealthCoordinator::new("svc", "1", Duration::from_secs(60));
    let ok = Arc::new(std::sync::atomic::AtomicBool::new(true));
    health
        .register(
            Switch {
                name: "hangs",
                ok: ok.clone(),
                hang: true,
            },
            CheckPolicy::default().timeout(Duration::from_millis(300)),
        )
        .unwrap();
    health
        .register(
            Switch {
                name: "fast",
                ok,
                hang: false,
            },
            CheckPolicy::default(),
        )
        .unwrap();
    health.start();
    // The fast check's result is in long before the hanging one times out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let report = health.report();
    let fast = report.checks.get("fast").unwrap();
    assert_eq!(fast.history.len(), 1);
    assert!(fast.duration_ms.unwrap() < 50.0);
    assert!(report.checks.get("hangs").unwrap().history.is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let report = health.report();
    let hangs = report.checks.get("hangs").unwrap();
    assert_eq!(hangs.history.len(), 1);
    assert_eq!(hangs.last_error.as_deref(), Some("timed out after 300 ms"));
    assert_eq!(hangs.status, HealthStatus::Degraded, "a first failure");
    health.stop();
}

#[tokio::test]
async fn the_volume_check_follows_its_thresholds() {
    let dir = std::env::temp_dir();
    let run = |check: VolumeCheck| async move { check.check().await };
    let fine = run(VolumeCheck::new(&dir, 0.0, 0.0)).await;
    assert_eq!(fine.status, HealthStatus::Healthy);
    assert_eq!(fine.unit, Some("% free"));
    let free = fine.value.unwrap();
    assert!(free > 0.0 && free <= 100.0);
    let low = run(VolumeCheck::new(&dir, 100.1, 0.0)).await;
    assert_eq!(low.status, HealthStatus::Degraded);
    assert!(low.message.unwrap().starts_with("low: "));
    let critical = run(VolumeCheck::new(&dir, 100.1, 100.1)).await;
    assert_eq!(critical.status, HealthStatus::Unhealthy);
    let by_bytes = run(VolumeCheck::new(&dir, 0.0, 0.0).min_free_bytes(u64::MAX, 0)).await;
    assert_eq!(by_bytes.status, HealthStatus::Degraded);
    let missing = run(VolumeCheck::new("/no/such/path", 10.0, 5.0)).await;
    assert_eq!(missing.status, HealthStatus::Unhealthy);
}

/// A short workload on SQLite, then every metric family Keel records so far
/// is in the Prometheus text, histograms with buckets.
#[tokio::test]
async fn the_metrics_text_has_every_family_after_a_workload() {
    let metrics = keel::metrics::Metrics::install().unwrap();
    let db = keel_tests::TestDb::create(keel_tests::Backend::Sqlite).await;
    let keel = db.builder().service_name("shop").connect().await.unwrap();
    keel_tests::create_tables(&keel).await;
    keel.events()
        .subscribe(keel::event::Subscription::new("noop", "*", |_e| async {
            Ok(())
        }))
        .unwrap();
    let breaker = Arc::new(CircuitBreaker::new("redis", BreakerConfig::default()));
    let runtime = Runtime::builder("shop", "1.0.0")
        .config(quick())
        .keel(&keel)
        .build()
        .unwrap();
    runtime
        .health()
        .register(breaker.health_check(), CheckPolicy::default())
        .unwrap();
    runtime.start().await.unwrap();

    let ctx = Context::actor("alice");
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx, NewProduct::new("m-1", 10))
        .await
        .unwrap();
    products
        .update(&ctx, p.id, ProductPatch::default().stock(2))
        .await
        .unwrap();
    products.get(&ctx, p.id).await.unwrap();
    products.get(&ctx, p.id).await.unwrap();
    products.get(&ctx, 999).await.unwrap_err();
    products.list(&ctx, &ListQuery::new()).await.unwrap();
    breaker.call(|| async { Ok(()) }).await.unwrap();
    keel.record_pool_metrics();
    runtime.health().run_once().await;
    keel.events().idle().await;

    let text = metrics.render();
    for family in [
        "keel_operations_total{entity=\"product\",operation=\"create\",outcome=\"ok\"} 1",
        "keel_operations_total{entity=\"product\",operation=\"get\",outcome=\"NOT_FOUND\"} 1",
        "keel_operation_duration_seconds_bucket{entity=\"product\",operation=\"update\",le=\"0.005\"}",
        "keel_db_pool_connections{state=\"max\"} 8",
        "keel_db_pool_connections{state=\"in_use\"}",
        "keel_db_pool_connections{state=\"idle\"}",
        "keel_circuit_breaker_state{breaker=\"redis\"} 0",
        "keel_circuit_breaker_calls_total{breaker=\"redis\",outcome=\"success\"} 1",
        "keel_health_check_status{check=\"database\"} 0",
        "keel_health_check_status{check=\"runtime\"} 0",
        "keel_health_check_duration_seconds_bucket{check=\"database\",le=",
        "keel_service_status 2",
        "keel_event_deliveries_total{subscriber=\"noop\",outcome=\"delivered\"}",
        "keel_cache_requests_total{tier=\"l1\",result=\"hit\"}",
        "keel_cache_requests_total{tier=\"l1\",result=\"miss\"}",
        "keel_cache_loads_total",
        "keel_event_handler_duration_seconds_bucket{subscriber=\"noop\",le=",
    ] {
        assert!(text.contains(family), "missing {family}\n{text}");
    }
    assert!(!text.contains("quantile="), "histograms, not summaries");
    runtime.stop().await;
    db.destroy().await;
}

#[tokio::test]
async fn sigterm_starts_a_graceful_shutdown() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let runtime = six(&log).build().unwrap();
    runtime.start().await.unwrap();
    let waiting = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.run_until_signal().await }
    });
    // Let the handler be installed before the signal is sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!runtime.health().is_ready(), "unready first");
    let stops = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stops.len(), 6);
    assert_eq!(runtime.status(), ServiceStatus::Stopped);
}
