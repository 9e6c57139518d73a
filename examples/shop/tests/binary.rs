//! The `shop` binary as users run it: it starts with no server, says when it
//! runs in the open development mode, serves, shuts down gracefully on
//! SIGTERM (exit code 0), and keeps its data across a restart.

mod common;

use common::{sigterm_and_wait, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_it_gracefully_and_data_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("shop-bin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let client = reqwest::Client::new();

    let first = start(&dir, None);
    assert!(
        first
            .banner
            .iter()
            .any(|l| l.contains("OPEN DEVELOPMENT MODE")),
        "{:?}",
        first.banner
    );
    let created = client
        .post(format!("{}/products", first.url))
        .json(&serde_json::json!({"sku": "KEEP-1", "name": "Kept", "price_cents": 5, "stock": 2}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.expect("json");
    // A request sent just before SIGTERM is still answered.
    let slow = {
        let client = client.clone();
        let url = format!("{}/products?page_size=100", first.url);
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
    };
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(first))
        .await
        .expect("wait task");
    assert!(status.success(), "exit status {status}");
    assert_eq!(slow.await.expect("task").expect("answered"), 200);

    // Data on disk (shop.db in the working directory) survives; with tokens
    // set, writes need one.
    let second = start(&dir, Some("alice:s3cret-s3cret-s3cret-s3cret-s3cret-s3"));
    assert!(
        !second
            .banner
            .iter()
            .any(|l| l.contains("OPEN DEVELOPMENT MODE"))
    );
    let got: serde_json::Value = client
        .get(format!("{}/products/{}", second.url, created["id"]))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    // With tokens set, an anonymous reader does not see the private cost.
    let mut public = created.clone();
    public
        .as_object_mut()
        .expect("a row")
        .shift_remove("cost_cents");
    assert_eq!(got, public);
    let refused = client
        .post(format!("{}/products", second.url))
        .json(&serde_json::json!({"sku": "X", "name": "X", "price_cents": 1, "stock": 1}))
        .send()
        .await
        .expect("create");
    assert_eq!(refused.status(), 401);
    let accepted = client
        .post(format!("{}/products", second.url))
        .bearer_auth("s3cret-s3cret-s3cret-s3cret-s3cret-s3")
        .json(&serde_json::json!({"sku": "X", "name": "X", "price_cents": 1, "stock": 1}))
        .send()
        .await
        .expect("create");
    assert_eq!(accepted.status(), 201);
    let status = tokio::task::spawn_blocking(move || sigterm_and_wait(second))
        .await
        .expect("wait task");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
