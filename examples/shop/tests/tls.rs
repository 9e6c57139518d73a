//! The shop over TLS to every server it uses: PostgreSQL (`hostssl` only)
//! and then MariaDB (`require_secure_transport`), each with Redis
//! (`rediss://`, TLS only) and NATS (`tls://`, TLS required), all servers
//! of the test's own with certificates it makes, trusted through
//! `KEEL_TLS_CA_FILE`. Orders placed over HTTP get their shipments from
//! `shop worker` through JetStream, reads are cached in Redis, `/health`
//! is healthy, traces reach a collector (one trace from `POST /orders` to
//! the worker's handling) and gRPC health serves; with another authority
//! the shop refuses to start, naming the server.

mod common;

use std::process::Stdio;

use common::{
    command, place_orders, post, sigterm_and_wait, sigterm_child, start_with, start_worker,
    wait_for_shipments,
};
use keel_tests::otlp::receiver;
use keel_tests::tls::{Certs, TlsMariaDb, TlsNats, TlsPostgres, TlsRedis};
use serde_json::{Value, json};

const SECRET: &str = "shop-tls-secret-0123456789abcdef-012345";

/// Runs the shop and its worker on `database_url` with TLS Redis and NATS.
async fn shop_over_tls(certs: &Certs, database_url: &str) {
    let (Some(redis), Some(nats)) = (TlsRedis::start(certs, false), TlsNats::start(certs)) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("shop-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (redis_url, nats_url) = (
        redis.url("rediss", "localhost"),
        nats.url("tls", "localhost"),
    );
    let ca = certs.ca.display().to_string();
    let (otlp, spans) = receiver().await;
    let env = [
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis_url.as_str()),
        ("NATS_URL", nats_url.as_str()),
        ("KEEL_TLS_CA_FILE", ca.as_str()),
        ("KEEL_PAGE_TOKEN_SECRET", SECRET),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let grpc = format!("127.0.0.1:{}", keel_tests::RedisServer::free_port());
    let mut serve_env = env.to_vec();
    serve_env.push(("KEEL_GRPC_HEALTH_BIND", grpc.as_str()));
    let server = start_with(&dir, None, &serve_env);
    let client = reqwest::Client::new();
    let base = server.url.clone();

    let (first, second) = place_orders(&client, &base).await;
    let mut worker = start_worker(&dir, &env);
    wait_for_shipments(&client, &base, &[(first, "pending"), (second, "cancelled")]).await;

    // gRPC health serves beside the TLS connections.
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .expect("gRPC health answers");
    // Within a few seconds: on a loaded machine a check round over TLS can
    // run late.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gRPC health: {status:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let lamp = post(
        &client,
        format!("{base}/products"),
        json!({"sku": "LAMP-TLS", "name": "Lamp", "price_cents": 2500, "stock": 3}),
    )
    .await;
    let url = format!("{base}/products/{}", lamp["id"]);
    for _ in 0..2 {
        let got: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        assert_eq!(got["sku"], "LAMP-TLS");
    }
    let health: Value = client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keel_cache_requests_total{") && l.contains("hit")),
        "reads were served from the cache"
    );

    assert!(sigterm_child(&mut worker).success());
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(server))
        .await
        .unwrap();
    assert!(status.success());

    // Traced over TLS too: an order's request and the worker's handling of
    // its event share one trace.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let exported = spans.lock().unwrap().clone();
    let traced = exported
        .iter()
        .filter(|s| s.name == "POST /orders")
        .any(|request| {
            exported
                .iter()
                .any(|s| s.trace_id == request.trace_id && s.name == "process shop.order.placed")
        });
    assert!(
        traced,
        "no trace from POST /orders to the worker in {} spans",
        exported.len()
    );

    // Another authority: the shop does not start, and says why.
    let other = certs.other_ca.display().to_string();
    let mut refused = env;
    refused[3] = ("KEEL_TLS_CA_FILE", other.as_str());
    let out = command(&dir, None, &refused)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("the shop runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("TLS handshake failed")
            && stderr.contains("not signed by a trusted authority"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_runs_over_tls_to_every_server() {
    let Some(certs) = Certs::generate() else {
        return;
    };
    if let Some(pg) = TlsPostgres::start(&certs) {
        shop_over_tls(&certs, &pg.url("localhost", "sslmode=verify-full")).await;
    }
    if let Some(mariadb) = TlsMariaDb::start(&certs) {
        let ca = certs.ca.display().to_string();
        let admin = mariadb.url(
            "localhost",
            &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={ca}"),
        );
        let db = sea_orm::Database::connect(admin)
            .await
            .expect("MariaDB over TLS");
        sea_orm::ConnectionTrait::execute_unprepared(&db, "CREATE DATABASE shop")
            .await
            .unwrap();
        let _ = db.close().await;
        let url = format!(
            "mysql://root@localhost:{}/shop?ssl-mode=VERIFY_IDENTITY",
            mariadb.port
        );
        shop_over_tls(&certs, &url).await;
    }
}
