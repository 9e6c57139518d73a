//! Running the `shop` binary as a user does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `shop serve`.
pub(crate) struct Running {
    /// The process.
    pub(crate) child: Child,
    /// Its base URL.
    pub(crate) url: String,
    /// What it printed before serving.
    pub(crate) banner: Vec<String>,
}

/// `shop` with a clean environment (no database, Redis or broker from the
/// caller's), in `dir`, with `tokens` and the extra `env`.
pub(crate) fn command(
    dir: &std::path::Path,
    tokens: Option<&str>,
    env: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    command
        .current_dir(dir)
        .env("BIND", "127.0.0.1:0")
        .env("KEEL_DRAIN_DELAY_MS", "100")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("NATS_URL")
        .env_remove("KEEL_EVENTS_SINK")
        .env_remove("SHOP_RATE_LIMIT");
    match tokens {
        Some(t) => command.env("SHOP_TOKENS", t),
        None => command.env_remove("SHOP_TOKENS"),
    };
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Starts `shop serve` in `dir` and reads its banner.
pub(crate) fn start(dir: &std::path::Path, tokens: Option<&str>) -> Running {
    start_with(dir, tokens, &[])
}

/// [`start`] with extra environment variables.
pub(crate) fn start_with(
    dir: &std::path::Path,
    tokens: Option<&str>,
    env: &[(&str, &str)],
) -> Running {
    let mut child = command(dir, tokens, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the shop binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    let mut url = None;
    // Logs come first; the banner ends with the line about authentication.
    loop {
        let line = lines.next().expect("a banner line").expect("text");
        if let Some(rest) = line.strip_prefix("shop listening on ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        let last = line.starts_with("OPEN DEVELOPMENT MODE") || line.starts_with("bearer tokens");
        banner.push(line);
        if last {
            break;
        }
    }
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running {
        child,
        url: url.expect("the banner names the URL"),
        banner,
    }
}

/// Sends SIGTERM to `child` and waits (at most 20 s) for it to exit.
pub(crate) fn sigterm_child(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the shop did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`sigterm_child`] for a running server.
pub(crate) fn sigterm_and_wait(mut running: Running) -> std::process::ExitStatus {
    sigterm_child(&mut running.child)
}

/// `shop worker` in `dir` with `env`.
pub(crate) fn start_worker(dir: &std::path::Path, env: &[(&str, &str)]) -> Child {
    command(dir, None, env)
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("shop worker starts")
}

pub(crate) async fn post(client: &reqwest::Client, url: String, body: Value) -> Value {
    let response = client.post(url).json(&body).send().await.expect("request");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("JSON")
}

/// Places two orders and cancels the second; returns their ids.
pub(crate) async fn place_orders(client: &reqwest::Client, base: &str) -> (i64, i64) {
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
pub(crate) async fn wait_for_shipments(
    client: &reqwest::Client,
    base: &str,
    want: &[(i64, &str)],
) -> Value {
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
