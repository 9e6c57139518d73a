//! The shop end to end through a broker: `shop serve` with `NATS_URL`
//! publishes its order events to JetStream (a nats-server of the test's
//! own, on a free loopback port), `shop worker` consumes them, and each
//! order placed over HTTP gets exactly one shipment; a cancelled order's
//! shipment is cancelled. A worker restarted mid-way makes no duplicate.
//! Without `NATS_URL` the same happens in process.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{command, sigterm_and_wait, sigterm_child, start, start_with};
use serde_json::{Value, json};

/// `shop worker` in `dir` with `env`.
fn start_worker(dir: &std::path::Path, env: &[(&str, &str)]) -> Child {
    command(dir, None, env)
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("shop worker starts")
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client.post(url).json(&body).send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("JSON")
}

/// Places two orders and cancels the second; returns their ids.
async fn place_orders(client: &reqwest::Client, base: &str) -> (i64, i64) {
    let product = post(
        client,
        format!("{base}/products"),
        json!({"sku": "mug", "name": "Mug", "price_cents": 1200, "stock": 10}),
    )
    .await;
    let customer = post(
        client,
        format!("{base}/customers"),
        json!({"email": "ann@example.com", "name": "Ann"}),
    )
    .await;
    let order = |quantity: i32| json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": quantity}]});
    let first = post(client, format!("{base}/orders"), order(2)).await;
    let second = post(client, format!("{base}/orders"), order(3)).await;
    let second_id = second["id"].as_i64().unwrap();
    post(
        client,
        format!("{base}/orders/{second_id}/cancel"),
        json!({}),
    )
    .await;
    (first["id"].as_i64().unwrap(), second_id)
}

/// Waits until `GET /shipments` shows `want` (order id, status) pairs.
async fn wait_for_shipments(client: &reqwest::Client, base: &str, want: &[(i64, &str)]) -> Value {
    let started = Instant::now();
    loop {
        let page: Value = client
            .get(format!("{base}/shipments?order_by=order_id"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got: Vec<(i64, String)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["order_id"].as_i64().unwrap(),
                    s["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        if got
            .iter()
            .map(|(o, s)| (*o, s.as_str()))
            .eq(want.iter().copied())
        {
            return page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "shipments are {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
