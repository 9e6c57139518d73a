//! The `shop` binary as users run it: it starts with no server, says when it
//! runs in the open development mode, serves, shuts down gracefully on
//! SIGTERM (exit code 0), and keeps its data across a restart.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    url: String,
    banner: Vec<String>,
}

fn start(dir: &std::path::Path, tokens: Option<&str>) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shop"));
    command
        .current_dir(dir)
        .env("BIND", "127.0.0.1:0")
        .env("KEEL_DRAIN_DELAY_MS", "100")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("SHOP_RATE_LIMIT")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match tokens {
        Some(t) => command.env("SHOP_TOKENS", t),
        None => command.env_remove("SHOP_TOKENS"),
    };
    let mut child = command.spawn().expect("the shop binary starts");
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

fn sigterm_and_wait(mut running: Running) -> std::process::ExitStatus {
    let pid = running.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the shop did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
