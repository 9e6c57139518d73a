//! The shop end to end through a broker: `shop serve` with `NATS_URL`
//! publishes its order events to JetStream (a nats-server of the test's
//! own, on a free loopback port), `shop worker` consumes them, and each
//! order placed over HTTP gets exactly one shipment; a cancelled order's
//! shipment is cancelled. A worker restarted mid-way makes no duplicate.
//! Without `NATS_URL` the same happens in process.

mod common;

use std::time::Duration;

use common::{
    place_orders, post, sigterm_and_wait, sigterm_child, start, start_with, start_worker,
    wait_for_shipments,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_placed_over_http_get_one_shipment_each_through_nats_and_the_worker() {
    let Some(nats) = keel_tests::NatsServer::start() else {
        return;
    };
    let nats_url = nats.url();
    let dir = std::env::temp_dir().join(format!("shop-worker-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let env = [("NATS_URL", nats_url.as_str())];
    let server = start_with(&dir, None, &env);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("NATS JetStream stream SHOP")),
        "{:?}",
        server.banner
    );
    let client = reqwest::Client::new();
    let base = server.url.clone();
    // Events published before the worker runs wait in the stream.
    let (first, second) = place_orders(&client, &base).await;
    let mut worker = start_worker(&dir, &env);
    let page =
        wait_for_shipments(&client, &base, &[(first, "pending"), (second, "cancelled")]).await;
    assert_eq!(page["items"][0]["units"], 2);
    // A restarted worker resumes its durable consumer: nothing twice.
    assert!(
        sigterm_child(&mut worker).success(),
        "the worker stops on SIGTERM with 0"
    );
    let third = post(
        &client,
        format!("{base}/orders"),
        json!({"customer_id": page["items"][0]["customer_id"], "lines": [{"product_id": 1, "quantity": 1}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let mut worker = start_worker(&dir, &env);
    wait_for_shipments(
        &client,
        &base,
        &[
            (first, "pending"),
            (second, "cancelled"),
            (third, "pending"),
        ],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_shipments(
        &client,
        &base,
        &[
            (first, "pending"),
            (second, "cancelled"),
            (third, "pending"),
        ],
    )
    .await;
    assert!(sigterm_child(&mut worker).success());
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(server))
        .await
        .unwrap();
    assert!(status.success());
    drop(nats);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_broker_the_shipments_are_made_in_process() {
    let dir = std::env::temp_dir().join(format!("shop-inproc-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start(&dir, None);
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("outbox -> in-process bus")),
        "{:?}",
        server.banner
    );
    let client = reqwest::Client::new();
    let base = server.url.clone();
    let (first, second) = place_orders(&client, &base).await;
    wait_for_shipments(&client, &base, &[(first, "pending"), (second, "cancelled")]).await;
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(server))
        .await
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
