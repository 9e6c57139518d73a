//! The outbox under real faults, against PostgreSQL and NATS JetStream:
//! writers SIGKILLed between commit and publish, and a NATS server of the
//! test's own (free loopback port, own store directory) stopped and started
//! again. The shared NATS server is only published to, on streams of the
//! tests' own.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keel::health::{HealthCheck, HealthStatus};
use keel::lifecycle::Component;
use keel::outbox::{EventsConfig, OutboxCheck, OutboxStats, Relay, SinkKind};
use keel::tx::TxOptions;
use keel::{Context, Keel};
use keel_tests::entities::product::{self, NewProduct, ProductPatch};
use keel_tests::{Backend, NatsServer, TestDb, nats_available};

async fn postgres_available() -> bool {
    tokio::task::spawn_blocking(keel_tests::probe_backends)
        .await
        .expect("probe")
        .iter()
        .any(|p| p.backend == Backend::Postgres && p.status.is_ok())
}

fn service() -> String {
    format!("k{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

async fn fresh_db() -> (TestDb, Keel) {
    let db = TestDb::create(Backend::Postgres).await;
    let keel = db.builder().connect().await.expect("connect");
    keel_tests::create_tables(&keel).await;
    (db, keel)
}

/// The writer binary, on `db`, publishing to `stream` of the suite's NATS,
/// with a 1 s lease (a killed writer's claimed rows wait that long).
fn writer(db: &TestDb, service: &str, stream: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outbox-writer"));
    command
        .env("DATABASE_URL", &db.url)
        .env("KEEL_SERVICE_NAME", service)
        .env("NATS_URL", "nats://127.0.0.1:4222")
        .env("KEEL_EVENTS_STREAM", stream)
        .env(
            "KEEL_PAGE_TOKEN_SECRET",
            "outbox-fault-tests-0123456789abcdef",
        )
        .env("KEEL_OUTBOX_LEASE_MS", "1000")
        .env_remove("REDIS_URL");
    command
}

/// Every message of `stream`: (subject, payload as JSON), in stream order.
async fn messages(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> Vec<(String, serde_json::Value)> {
    let mut stream = js.get_stream(stream).await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        if let Ok(m) = stream.get_raw_message(seq).await {
            out.push((
                m.subject.to_string(),
                serde_json::from_slice(&m.payload).expect("JSON"),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_writers_killed_after_commit_lose_no_event() {
    if !postgres_available().await || !nats_available() {
        return;
    }
    let (db, keel) = fresh_db().await;
    let service = service();
    let stream = service.to_uppercase();
    let mut pending_at_kill = 0;
    for run in 0..50 {
        let mut child = writer(&db, &service, &stream)
            .env("RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the writer starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a line");
        // The commit is done; the relay has been woken. Kill now, as a
        // crash would, most often before it publishes.
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        assert!(line.starts_with("committed "), "{line:?}");
        pending_at_kill = pending_at_kill.max(OutboxStats::read(&keel).await.unwrap().pending);
    }
    let committed: i64 = {
        use sea_orm::ConnectionTrait;
        keel.db()
            .query_one_raw(sea_orm::Statement::from_string(
                keel.backend(),
                "SELECT COUNT(*) AS n FROM products",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap()
    };
    assert!(committed >= 50, "each writer committed at least once");
    let pending_before = OutboxStats::read(&keel).await.unwrap().pending;
    // A restarted writer (relay only) publishes what the killed ones left.
    let out = writer(&db, &service, &stream)
        .env("RELAY_ONLY", "1")
        .output()
        .expect("the relay runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pending 0");
    let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await.unwrap());
    let published = messages(&js, &stream).await;
    let mut subjects: Vec<String> = published
        .iter()
        .filter(|(s, _)| s.ends_with(".product.created"))
        .map(|(_, v)| v["subject"].as_str().unwrap().to_owned())
        .collect();
    let total = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(
        (subjects.len(), total),
        (committed as usize, committed as usize),
        "every committed product's event is in the stream, once"
    );
    eprintln!(
        "{committed} rows committed by 50 killed writers; {pending_before} events unpublished at the end \
         (at most {pending_at_kill} after one kill); all published after the restart"
    );
    assert!(
        pending_before > 0,
        "no kill landed between commit and publish: the test proved nothing"
    );
    let _ = js.delete_stream(&stream).await;
    db.destroy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_grows_the_backlog_and_it_drains_in_order_when_back() {
    if !postgres_available().await {
        return;
    }
    let Some(mut nats) = NatsServer::start() else {
        return;
    };
    let (db, _) = fresh_db().await;
    let service = service();
    let stream = service.to_uppercase();
    let url = nats.url();
    let mut events = EventsConfig::with_sink(SinkKind::Nats {
        url: url.clone(),
        stream: stream.clone(),
    });
    events.relay.min_backoff = Duration::from_millis(50);
    events.relay.max_backoff = Duration::from_millis(300);
    events.relay.poll = Duration::from_millis(100);
    events.relay.degraded_after = Duration::from_millis(500);
    events.relay.max_attempts = 1000;
    let keel = db
        .builder()
        .service_name(&service)
        .events(events)
        .connect()
        .await
        .unwrap();
    let relay = Relay::new(&keel).unwrap();
    relay.start().await.unwrap();
    let ctx = Context::actor("ops");
    let products = keel.service::<product::Entity>();
    let p = products
        .create(&ctx, NewProduct::new("nats-down", 0))
        .await
        .unwrap();
    let wait_pending = async |want: u64| {
        let started = Instant::now();
        loop {
            let stats = OutboxStats::read(&keel).await.unwrap();
            if stats.pending == want {
                return stats;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pending stays {} (want {want})",
                stats.pending
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_pending(0).await;

    nats.stop();
    // Writes go on while the broker is down: updates and domain events on
    // two subjects.
    for price in 1..=10 {
        products
            .update(&ctx, p.id, ProductPatch::default().price_cents(price))
            .await
            .unwrap();
        keel.transaction(&ctx, TxOptions::new(), |tx| async move {
            tx.emit(keel::event::Event::custom(
                tx.context(),
                &tx.keel().config().service_name,
                format!("{}.order.placed", tx.keel().config().service_name),
                serde_json::json!({ "n": price }),
            ));
            Ok(())
        })
        .await
        .unwrap();
    }
    let first = wait_pending(20).await;
    let check = OutboxCheck::new(keel.clone(), Duration::from_millis(500));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let later = OutboxStats::read(&keel).await.unwrap();
    assert_eq!(later.pending, 20, "the backlog waits");
    assert!(
        later.oldest_pending > first.oldest_pending,
        "the lag rises: {:?} then {:?}",
        first.oldest_pending,
        later.oldest_pending
    );
    let observed = check.check().await;
    assert_eq!(observed.status, HealthStatus::Degraded, "{observed:?}");
    let started = Instant::now();
    while relay.stats().failed == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no publish failed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back, with its store: the backlog drains, each subject in order.
    assert!(nats.restart(), "nats-server restarts");
    let drained = Instant::now();
    wait_pending(0).await;
    eprintln!(
        "backlog of 20 drained {:?} after NATS came back",
        drained.elapsed()
    );
    assert_eq!(check.check().await.status, HealthStatus::Healthy);
    let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await.unwrap());
    let published = messages(&js, &stream).await;
    let prices: Vec<i64> = published
        .iter()
        .filter(|(s, _)| s.ends_with(".product.updated"))
        .map(|(_, v)| v["data"]["row"]["price_cents"].as_i64().unwrap())
        .collect();
    assert_eq!(
        prices,
        (1..=10).collect::<Vec<_>>(),
        "updates in commit order"
    );
    let orders: Vec<i64> = published
        .iter()
        .filter(|(s, _)| s.ends_with(".order.placed"))
        .map(|(_, v)| v["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        orders,
        (1..=10).collect::<Vec<_>>(),
        "domain events in order"
    );
    relay.stop().await.unwrap();
    nats.stop();
    db.destroy().await;
}
