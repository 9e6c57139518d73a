//! End-to-end: the shop running on `127.0.0.1:0`, driven over HTTP, on
//! SQLite (in-process cache) and on PostgreSQL and MariaDB with Redis.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keel::event::{Event, Subscription};
use keel_tests::{Backend, TestDb};
use libtest_mimic::{Arguments, Failed, Trial};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use shop::{Config, Server, Tokens};

const ALICE: &str = "alice-token-0123456789abcdef01234567";

/// What a scenario gets: the configuration of an app on a fresh database
/// (start it as often as needed), a client, and the events received.
struct World {
    backend: Backend,
    config: Config,
    client: Client,
    events: Arc<Mutex<Vec<(String, Value, bool)>>>,
}

impl World {
    /// Starts the app; `shop.*` events land in `self.events` with whether
    /// the order they name was already committed when the event arrived.
    async fn start(&self) -> Server {
        let seen = Arc::clone(&self.events);
        let probe = Arc::new(Mutex::new(None::<keel::Keel>));
        let probe_in = Arc::clone(&probe);
        let subscriber = Subscription::new("e2e-orders", "shop.order.*", move |event: Event| {
            let seen = Arc::clone(&seen);
            let probe = Arc::clone(&probe_in);
            async move {
                // `shop.order.*` also matches the order rows' own events
                // (`shop.order.created`, ...): only the domain events count here.
                if !matches!(
                    event.event_type.as_str(),
                    "shop.order.placed" | "shop.order.cancelled"
                ) {
                    return Ok(());
                }
                let keel = probe.lock().expect("probe").clone();
                let order_id = event.data["order_id"].as_i64().unwrap_or_default();
                let committed = match keel {
                    Some(keel) => {
                        use sea_orm::EntityTrait;
                        shop::entities::order::Entity::find_by_id(order_id)
                            .one(keel.db())
                            .await
                            .ok()
                            .flatten()
                            .is_some()
                    }
                    None => false,
                };
                seen.lock().expect("events").push((
                    event.event_type.clone(),
                    event.data.clone(),
                    committed,
                ));
                Ok(())
            }
        });
        let server = shop::start(self.config.clone(), vec![subscriber])
            .await
            .expect("the shop starts");
        *probe.lock().expect("probe") = Some(server.keel.clone());
        server
    }

    async fn call(
        &self,
        server: &Server,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", server.url()));
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, value)
    }
}

const AUTH: (&str, &str) = (
    "authorization",
    "Bearer alice-token-0123456789abcdef01234567",
);

fn product(sku: &str, price: i64, stock: i64) -> Value {
    json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price, "stock": stock})
}

async fn create_product(w: &World, s: &Server, sku: &str, price: i64, stock: i64) -> Value {
    let (status, _, body) = w
        .call(
            s,
            Method::POST,
            "/products",
            Some(product(sku, price, stock)),
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn create_customer(w: &World, s: &Server, email: &str) -> String {
    let (status, _, body) = w
        .call(
            s,
            Method::POST,
            "/customers",
            Some(json!({"email": email, "name": "Ann", "phone": "+44 20 7946 0000"})),
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("a UUID").to_owned()
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Create, read, update, delete, restore, history; ETags; tokens.
async fn crud(w: World) {
    let s = w.start().await;
    let (status, headers, created) = w
        .call(
            &s,
            Method::POST,
            "/products",
            Some(json!({"sku": "LAMP-1", "name": "Lamp", "description": "warm", "price_cents": 2500, "stock": 4, "cost_cents": 900})),
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().expect("an id");
    assert_eq!(headers["location"], format!("/products/{id}").as_str());
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(created["version"], 1);
    for field in ["created_at", "updated_at"] {
        let text = created[field].as_str().expect("a timestamp");
        chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
    }

    let path = format!("/products/{id}");
    let (status, _, got) = w.call(&s, Method::GET, &path, None, &[AUTH]).await;
    assert_eq!((status, &got), (StatusCode::OK, &created));
    // Anonymous callers read the same row without its private `cost_cents`.
    let (status, _, got) = w.call(&s, Method::GET, &path, None, &[]).await;
    let mut public = created.clone();
    public
        .as_object_mut()
        .expect("a row")
        .shift_remove("cost_cents");
    assert_eq!((status, &got), (StatusCode::OK, &public));
    assert_eq!(
        got.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        public
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        "the other fields keep their order"
    );
    let (status, _, _) = w
        .call(&s, Method::GET, &path, None, &[("if-none-match", "\"1\"")])
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // Writes need a valid token.
    let patch = json!({"price_cents": 2200});
    let (status, _, body) = w
        .call(&s, Method::PATCH, &path, Some(patch.clone()), &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    let (status, _, body) = w
        .call(
            &s,
            Method::PATCH,
            &path,
            Some(patch.clone()),
            &[("authorization", "Bearer wrong")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );

    let (status, headers, updated) = w
        .call(
            &s,
            Method::PATCH,
            &path,
            Some(patch.clone()),
            &[AUTH, ("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (&updated["price_cents"], &updated["version"]),
        (&json!(2200), &json!(2))
    );
    assert_eq!(headers["etag"], "\"2\"");
    let (status, _, body) = w
        .call(
            &s,
            Method::PATCH,
            &path,
            Some(patch),
            &[AUTH, ("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED")
    );
    let (status, _, body) = w
        .call(
            &s,
            Method::DELETE,
            &path,
            None,
            &[AUTH, ("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED")
    );
    // The cached row is the new one.
    let (_, _, got) = w.call(&s, Method::GET, &path, None, &[AUTH]).await;
    assert_eq!(got, updated);

    let (status, _, _) = w
        .call(
            &s,
            Method::DELETE,
            &path,
            None,
            &[AUTH, ("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = w.call(&s, Method::GET, &path, None, &[]).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    let (status, _, restored) = w
        .call(&s, Method::POST, &format!("{path}/restore"), None, &[AUTH])
        .await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    // The audit history (actors, request ids) and deleted rows are the
    // staff's: anonymous callers get 401.
    let (status, _, body) = w
        .call(&s, Method::GET, &format!("{path}/history"), None, &[])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED")
    );
    for url in [
        "/products?show_deleted=true",
        "/products/count?show_deleted=true",
    ] {
        let (status, _, _) = w.call(&s, Method::GET, url, None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{url}");
        let (status, _, _) = w.call(&s, Method::GET, url, None, &[AUTH]).await;
        assert_eq!(status, StatusCode::OK, "{url}");
    }
    let (status, _, history) = w
        .call(&s, Method::GET, &format!("{path}/history"), None, &[AUTH])
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["restored", "deleted", "updated", "created"]);
    let text = history.to_string();
    // No value written anywhere in the log is the cost (900); timestamps
    // may well contain the digits, so compare values, not text.
    let cost_shown = history["items"]
        .as_array()
        .expect("items")
        .iter()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
        .any(|c| c["old"] == json!(900) || c["new"] == json!(900));
    assert!(!cost_shown, "the cost is redacted: {text}");
    assert!(text.contains("[redacted]"));
    assert!(
        history["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|e| e["actor"] == "alice")
    );
    s.shutdown().await;
}

/// Every kind of bad input: a clear 4xx with a stable code, nothing written.
async fn bad_input(w: World) {
    let s = w.start().await;
    let lamp = create_product(&w, &s, "LAMP-1", 100, 1).await;
    let id = lamp["id"].as_i64().expect("id");
    let raw = |body: &'static str, content_type: &'static str| {
        let client = w.client.clone();
        let url = format!("{}/products", s.url());
        async move {
            let r = client
                .post(url)
                .header("content-type", content_type)
                .header(
                    "authorization",
                    "Bearer alice-token-0123456789abcdef01234567",
                )
                .body(body)
                .send()
                .await
                .expect("answered");
            let status = r.status();
            let body: Value = r.json().await.expect("a JSON error");
            (status, body)
        }
    };
    let cases: Vec<(StatusCode, &str, (StatusCode, Value))> = vec![
        (
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            raw("{\"sku\": ", "application/json").await,
        ),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            raw("{}", "text/plain").await,
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            raw(
                r#"{"sku":"X","name":"x","price_cents":1,"stock":1,"colour":"red"}"#,
                "application/json",
            )
            .await,
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            raw(
                r#"{"sku":"X","name":"x","price_cents":1,"stock":1,"version":7}"#,
                "application/json",
            )
            .await,
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
            raw(
                r#"{"sku":"","name":"x","price_cents":-1,"stock":-5}"#,
                "application/json",
            )
            .await,
        ),
        (
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            raw(
                r#"{"sku":"LAMP-1","name":"x","price_cents":1,"stock":1}"#,
                "application/json",
            )
            .await,
        ),
    ];
    for (status, expected, (got, body)) in cases {
        assert_eq!((got, code(&body)), (status, expected), "{body}");
        let text = body.to_string();
        for leak in [
            "SELECT",
            "INSERT",
            "sqlx",
            "duplicate key",
            "UNIQUE constraint",
        ] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
    }
    // Per-field pointers.
    let (_, body) = raw(
        r#"{"sku":"","name":"x","price_cents":-1,"stock":-5}"#,
        "application/json",
    )
    .await;
    let pointers: Vec<&str> = body["error"]["details"]["errors"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| f["pointer"].as_str().unwrap_or(""))
        .collect();
    for p in ["/sku", "/price_cents", "/stock"] {
        assert!(pointers.contains(&p), "{p} in {pointers:?}");
    }
    let big = format!(
        r#"{{"sku":"B","name":"{}","price_cents":1,"stock":1}}"#,
        "x".repeat(1_100_000)
    );
    let r = w
        .client
        .post(format!("{}/products", s.url()))
        .header("content-type", "application/json")
        .header(
            "authorization",
            "Bearer alice-token-0123456789abcdef01234567",
        )
        .body(big)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // A description has a length rule; an order of 30,000 lines draws one
    // short error, not one per line.
    let long = format!(
        r#"{{"sku":"D","name":"x","price_cents":1,"stock":1,"description":"{}"}}"#,
        "d".repeat(2001)
    );
    let (status, _, body) = w
        .call(
            &s,
            Method::POST,
            "/products",
            Some(serde_json::from_str(&long).expect("json")),
            &[AUTH],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED")
    );
    assert_eq!(
        body["error"]["details"]["errors"][0]["pointer"],
        "/description"
    );
    let lines: Vec<Value> = (0..30_000)
        .map(|_| serde_json::json!({"product_id": id, "quantity": 0}))
        .collect();
    let order = serde_json::json!({"customer_id": uuid::Uuid::nil(), "lines": lines});
    let (status, _, body) = w
        .call(&s, Method::POST, "/orders", Some(order), &[AUTH])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["details"]["errors"].as_array().map(Vec::len),
        Some(1)
    );
    assert!(body.to_string().len() < 1000, "a short answer");
    for (path, status, expected) in [
        ("/products/abc", StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        (
            "/products?colour=red",
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "/products?filter=description%20%3D%20%22x%22",
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "/products?order_by=description",
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "/products?page_size=0",
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        (
            "/products?page_token=garbage",
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
        ),
        ("/products/999999", StatusCode::NOT_FOUND, "NOT_FOUND"),
        ("/orders/1", StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        ("/no/such/route", StatusCode::NOT_FOUND, "NOT_FOUND"),
    ] {
        let (got, headers, body) = w.call(&s, Method::GET, path, None, &[]).await;
        assert_eq!((got, code(&body)), (status, expected), "{path}: {body}");
        assert!(headers.contains_key("x-request-id"));
        assert!(body["error"]["details"]["request_id"].is_string(), "{body}");
    }
    let (status, _, body) = w
        .call(
            &s,
            Method::PUT,
            &format!("/products/{id}"),
            Some(json!({})),
            &[AUTH],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED")
    );
    // Nothing was half-written: still exactly one product, untouched.
    let (_, _, count) = w.call(&s, Method::GET, "/products/count", None, &[]).await;
    assert_eq!(count, json!({"count": 1}));
    let (_, _, got) = w
        .call(&s, Method::GET, &format!("/products/{id}"), None, &[AUTH])
        .await;
    assert_eq!(got, lamp);
    s.shutdown().await;
}

/// Filters, ordering, counts, and paging through 1,000 products.
async fn lists(w: World) {
    let s = w.start().await;
    shop::seed::products(&s.keel, 1000, false)
        .await
        .expect("seeded");
    // Every product exactly once, page by page.
    let mut seen = std::collections::BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/products?page_size=100&page_token={t}"),
            None => "/products?page_size=100".to_owned(),
        };
        let (status, _, page) = w.call(&s, Method::GET, &path, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for item in page["items"].as_array().expect("items") {
            assert!(
                seen.insert(item["id"].as_i64().expect("id")),
                "a product came twice"
            );
        }
        pages += 1;
        match page["next_page_token"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    assert_eq!((seen.len(), pages), (1000, 10));
    assert_eq!(
        seen.iter().copied().collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );

    // Without order_by: by id. skip works.
    let (_, _, page) = w
        .call(&s, Method::GET, "/products?page_size=20&skip=40", None, &[])
        .await;
    let ids: Vec<i64> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["id"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(ids, (41..=60).collect::<Vec<_>>());

    // Filter + order + total.
    let (status, _, page) = w
        .call(
            &s,
            Method::GET,
            "/products?filter=stock%20%3E%3D%20490&order_by=stock%20desc,id&page_size=100&count=true",
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().expect("items");
    assert_eq!(page["total_size"], json!(items.len()));
    assert_eq!(items.len(), 20, "stock is i % 500: 490..499 twice");
    let stocks: Vec<i64> = items
        .iter()
        .map(|p| p["stock"].as_i64().unwrap_or(-1))
        .collect();
    assert!(stocks.windows(2).all(|w| w[0] >= w[1]), "{stocks:?}");
    assert!(stocks.iter().all(|&s| s >= 490));
    let (_, _, count) = w
        .call(
            &s,
            Method::GET,
            "/products/count?filter=stock%20%3E%3D%20490",
            None,
            &[],
        )
        .await;
    assert_eq!(count, json!({"count": 20}));
    let (_, _, page) = w
        .call(
            &s,
            Method::GET,
            "/products?filter=name%20%3A%20%22Product%2099%22&order_by=id&page_size=100",
            None,
            &[],
        )
        .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or(""))
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.contains("Product 99")),
        "{names:?}"
    );
    // Every field but description filters and sorts.
    for field in [
        "id",
        "sku",
        "name",
        "price_cents",
        "stock",
        "created_at",
        "updated_at",
        "version",
    ] {
        let (status, _, body) = w
            .call(
                &s,
                Method::GET,
                &format!("/products?order_by={field}%20desc&page_size=1"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "order_by {field}: {body}");
    }
    // A cached count is invalidated by a write.
    let (_, _, before) = w.call(&s, Method::GET, "/products/count", None, &[]).await;
    create_product(&w, &s, "NEW-1", 1, 1).await;
    let (_, _, after) = w.call(&s, Method::GET, "/products/count", None, &[]).await;
    assert_eq!(
        after["count"].as_i64(),
        before["count"].as_i64().map(|n| n + 1)
    );
    s.shutdown().await;
}

/// Concurrent orders against limited stock; events after commit only; cancel.
async fn orders(w: World) {
    let s = w.start().await;
    let lamp = create_product(&w, &s, "LAMP-1", 2500, 10).await;
    let mug = create_product(&w, &s, "MUG-1", 900, 100).await;
    let (lamp_id, mug_id) = (
        lamp["id"].as_i64().expect("id"),
        mug["id"].as_i64().expect("id"),
    );
    let ann = create_customer(&w, &s, "ann@example.com").await;

    let mut tasks = Vec::new();
    for _ in 0..30 {
        let client = w.client.clone();
        let url = format!("{}/orders", s.url());
        let body = json!({"customer_id": ann, "lines": [
            {"product_id": mug_id, "quantity": 1}, {"product_id": lamp_id, "quantity": 1}]});
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .header(
                    "authorization",
                    "Bearer alice-token-0123456789abcdef01234567",
                )
                .json(&body)
                .send()
                .await
                .expect("answered");
            let status = r.status();
            (status, r.json::<Value>().await.expect("JSON"))
        }));
    }
    let (mut placed, mut refused) = (0, 0);
    for t in tasks {
        let (status, body) = t.await.expect("task");
        match status {
            StatusCode::CREATED => placed += 1,
            StatusCode::CONFLICT if code(&body) == "INSUFFICIENT_STOCK" => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((placed, refused), (10, 20));
    let (_, _, lamp) = w
        .call(&s, Method::GET, &format!("/products/{lamp_id}"), None, &[])
        .await;
    let (_, _, mug) = w
        .call(&s, Method::GET, &format!("/products/{mug_id}"), None, &[])
        .await;
    assert_eq!(
        (lamp["stock"].as_i64(), mug["stock"].as_i64()),
        (Some(0), Some(90))
    );
    let (_, _, count) = w
        .call(&s, Method::GET, "/orders/count", None, &[AUTH])
        .await;
    assert_eq!(count, json!({"count": 10}));

    // A refused order changes nothing at all.
    let (status, _, body) = w
        .call(
            &s,
            Method::POST,
            "/orders",
            Some(json!({"customer_id": ann, "lines": [
                {"product_id": mug_id, "quantity": 5}, {"product_id": lamp_id, "quantity": 1}]})),
            &[AUTH],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "INSUFFICIENT_STOCK")
    );
    let (_, _, mug_now) = w
        .call(&s, Method::GET, &format!("/products/{mug_id}"), None, &[])
        .await;
    assert_eq!(mug_now["stock"], 90);
    for (body, status, expected) in [
        (
            json!({"customer_id": ann, "lines": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"customer_id": ann, "lines": [{"product_id": mug_id, "quantity": 0}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"customer_id": uuid::Uuid::nil(), "lines": [{"product_id": mug_id, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"customer_id": ann, "lines": [{"product_id": 424242, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
        (
            json!({"customer_id": ann, "lines": [], "coupon": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION_FAILED",
        ),
    ] {
        let (got, _, reply) = w
            .call(&s, Method::POST, "/orders", Some(body.clone()), &[AUTH])
            .await;
        assert_eq!((got, code(&reply)), (status, expected), "{body} -> {reply}");
    }
    let (status, _, _) = w
        .call(
            &s,
            Method::POST,
            "/orders",
            Some(json!({"customer_id": ann, "lines": [{"product_id": mug_id, "quantity": 1}]})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Read one with its lines, cancel it.
    let (_, _, page) = w
        .call(
            &s,
            Method::GET,
            "/orders?order_by=id&page_size=1",
            None,
            &[AUTH],
        )
        .await;
    let order_id = page["items"][0]["id"].as_i64().expect("an order");
    let (status, headers, order) = w
        .call(
            &s,
            Method::GET,
            &format!("/orders/{order_id}"),
            None,
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(order["lines"].as_array().map(Vec::len), Some(2));
    assert_eq!(order["total_cents"], 3400);
    assert_eq!(order["created_by"], "alice");
    let cancel = format!("/orders/{order_id}/cancel");
    let (status, _, body) = w
        .call(
            &s,
            Method::POST,
            &cancel,
            None,
            &[AUTH, ("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED")
    );
    let (status, _, cancelled) = w.call(&s, Method::POST, &cancel, None, &[AUTH]).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let (status, _, body) = w.call(&s, Method::POST, &cancel, None, &[AUTH]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "ORDER_NOT_CANCELLABLE")
    );
    let (_, _, lamp) = w
        .call(&s, Method::GET, &format!("/products/{lamp_id}"), None, &[])
        .await;
    assert_eq!(lamp["stock"], 1);

    // Events: one per placed order and one cancellation, each seen only
    // once its transaction had committed.
    s.keel.events().idle().await;
    let events = w.events.lock().expect("events").clone();
    let placed_events: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "shop.order.placed")
        .collect();
    let cancelled_events: Vec<_> = events
        .iter()
        .filter(|e| e.0 == "shop.order.cancelled")
        .collect();
    assert_eq!(
        (placed_events.len(), cancelled_events.len()),
        (10, 1),
        "{events:?}"
    );
    assert!(
        events.iter().all(|e| e.2),
        "every event came after its commit"
    );
    assert_eq!(cancelled_events[0].1["order_id"], order_id);
    s.shutdown().await;
}

/// Customers: validated and unique email, redacted phone, private reads.
async fn customers(w: World) {
    let s = w.start().await;
    let id = create_customer(&w, &s, "bea@example.com").await;
    let (status, _, body) = w
        .call(
            &s,
            Method::POST,
            "/customers",
            Some(json!({"email": "bea@example.com", "name": "B"})),
            &[AUTH],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "ALREADY_EXISTS")
    );
    let (status, _, body) = w
        .call(
            &s,
            Method::POST,
            "/customers",
            Some(json!({"email": "not-an-email", "name": "B"})),
            &[AUTH],
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED")
    );
    assert_eq!(body["error"]["details"]["errors"][0]["pointer"], "/email");
    let path = format!("/customers/{id}");
    let (status, _, _) = w.call(&s, Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, got) = w.call(&s, Method::GET, &path, None, &[AUTH]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["phone"], "+44 20 7946 0000");
    let (status, _, body) = w
        .call(&s, Method::GET, "/customers/42", None, &[AUTH])
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
    );
    let (_, _, history) = w
        .call(&s, Method::GET, &format!("{path}/history"), None, &[AUTH])
        .await;
    // The phone itself, not a digit run a timestamp or an id may contain
    // (`.579466Z` once made this fail).
    let text = history.to_string();
    assert!(!text.contains("20 7946 0000"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    s.shutdown().await;
}

/// The read-side field policy: a product's `cost_cents` and a customer's
/// `phone` are private. Anonymous callers never see them (get, cached get,
/// list, OpenAPI) and cannot filter or sort by them; token holders can.
async fn private_fields(w: World) {
    let s = w.start().await;
    let mut body = product("COST-1", 100, 5);
    body["cost_cents"] = json!(40);
    let (status, _, created) = w
        .call(&s, Method::POST, "/products", Some(body), &[AUTH])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["cost_cents"], 40, "the staff see what they wrote");
    create_product(&w, &s, "COST-2", 200, 5).await;
    let path = format!("/products/{}", created["id"]);

    // A get, then again (the in-process tier serves the second one), then
    // the staff's get of the same cached entry, then anonymous once more.
    for who in [&[][..], &[][..], &[AUTH][..], &[][..], &[AUTH][..]] {
        let (status, headers, got) = w.call(&s, Method::GET, &path, None, who).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["sku"], "COST-1");
        assert!(headers.get("etag").is_some());
        let object = got.as_object().expect("a row");
        if who.is_empty() {
            assert!(!object.contains_key("cost_cents"), "anonymous: {got}");
        } else {
            assert_eq!(got["cost_cents"], 40, "staff: {got}");
        }
    }
    // Lists, with and without a token.
    let (status, _, page) = w.call(&s, Method::GET, "/products", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert!(!page.to_string().contains("cost_cents"), "{page}");
    let (_, _, page) = w.call(&s, Method::GET, "/products", None, &[AUTH]).await;
    assert_eq!(page["items"][0]["cost_cents"], 40, "{page}");

    // Not filterable, not sortable, not countable by it, as if it did not exist.
    for query in [
        "/products?filter=cost_cents%20%3E%2010",
        "/products?filter=cost_cents%20%3D%20null",
        "/products?order_by=cost_cents%20desc",
        "/products/count?filter=cost_cents%20%3E%2010",
    ] {
        let (status, _, body) = w.call(&s, Method::GET, query, None, &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            "{query}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("`cost_cents`") && !message.contains("cost_cents,"),
            "{query}: the message names only public fields: {message}"
        );
        let (status, _, body) = w.call(&s, Method::GET, query, None, &[AUTH]).await;
        assert_eq!(status, StatusCode::OK, "staff, {query}: {body}");
    }
    let (_, _, page) = w
        .call(
            &s,
            Method::GET,
            "/products?filter=cost_cents%20%3E%2010",
            None,
            &[AUTH],
        )
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");

    // An update answers the row in the caller's view too.
    let (status, _, updated) = w
        .call(
            &s,
            Method::PATCH,
            &path,
            Some(json!({"cost_cents": 45})),
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["cost_cents"], 45);
    let (_, _, got) = w.call(&s, Method::GET, &path, None, &[]).await;
    assert!(got.get("cost_cents").is_none(), "{got}");
    assert_eq!(got["version"], 2, "the anonymous read is fresh: {got}");

    // The OpenAPI document: anonymous callers get the public one.
    let (status, headers, public) = w.call(&s, Method::GET, "/openapi.json", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("vary").map(|v| v.to_str().unwrap_or("")),
        Some("Authorization")
    );
    let row = &public["components"]["schemas"]["Product"];
    assert!(row["properties"]["sku"].is_object(), "{row}");
    assert!(row["properties"]["cost_cents"].is_null(), "{row}");
    assert!(public["components"]["schemas"]["Customer"]["properties"]["phone"].is_null());
    let list = public["paths"]["/products"]["get"].to_string();
    assert!(!list.contains("cost_cents"), "{list}");
    // A read the policy keeps to token holders may answer 401: documented.
    for path in ["/customers/{id}", "/products", "/products/{id}/history"] {
        let get = &public["paths"][path]["get"];
        assert!(get["responses"]["401"].is_object(), "{path}: {get}");
        assert_eq!(get["security"], json!([{}, {"bearer": []}]), "{path}");
    }
    let (_, _, full) = w
        .call(&s, Method::GET, "/openapi.json", None, &[AUTH])
        .await;
    let row = &full["components"]["schemas"]["Product"];
    assert!(row["properties"]["cost_cents"].is_object(), "{row}");
    assert!(
        !row["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("cost_cents"))),
        "a private field is optional: {row}"
    );
    assert!(
        full["paths"]["/products"]["get"]
            .to_string()
            .contains("`cost_cents` (private)")
    );

    // Customers are the staff's altogether; the phone is theirs too.
    let id = create_customer(&w, &s, "cy@example.com").await;
    let (_, _, got) = w
        .call(&s, Method::GET, &format!("/customers/{id}"), None, &[AUTH])
        .await;
    assert_eq!(got["phone"], "+44 20 7946 0000");
    s.shutdown().await;
}

/// Health, readiness, metrics by route template, the OpenAPI document and
/// the docs page; the data survives a restart.
async fn operations_and_restart(w: World) {
    let s = w.start().await;
    let lamp = create_product(&w, &s, "LAMP-1", 100, 3).await;
    let ann = create_customer(&w, &s, "ann@example.com").await;
    let (status, _, order) = w
        .call(
            &s,
            Method::POST,
            "/orders",
            Some(json!({"customer_id": ann, "lines": [{"product_id": lamp["id"], "quantity": 2}]})),
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    w.call(&s, Method::GET, "/products/1", None, &[]).await;

    // The full report, the metrics and the build are the staff's; the
    // probes are public.
    for path in ["/health", "/metrics", "/info"] {
        let (status, _, body) = w.call(&s, Method::GET, path, None, &[]).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
            "{path}"
        );
    }
    let (status, _, health) = w.call(&s, Method::GET, "/health", None, &[AUTH]).await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["status"], "healthy");
    assert!(health["checks"]["database"].is_object(), "{health}");
    let (status, _, _) = w.call(&s, Method::GET, "/health/ready", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = w.call(&s, Method::GET, "/health/live", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = w.call(&s, Method::GET, "/health/started", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, info) = w.call(&s, Method::GET, "/info", None, &[AUTH]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["name"], "shop", "{info}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        info["keel_features"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{info}"
    );
    let (status, _, metrics) = w.call(&s, Method::GET, "/metrics", None, &[AUTH]).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = metrics.as_str().expect("text").to_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keel_http_requests_total")
                && l.contains("route=\"/products/{id}\"")
                && l.contains("status=\"200\"")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("keel_build_info{service=\"shop\"") && l.ends_with(" 1")),
        "{metrics}"
    );
    let (status, _, doc) = w.call(&s, Method::GET, "/openapi.json", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/products", "get"),
        ("/products", "post"),
        ("/products/{id}", "patch"),
        ("/products/{id}/restore", "post"),
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{id}/cancel", "post"),
        ("/health", "get"),
        ("/health/started", "get"),
        ("/info", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(
        doc["paths"]["/orders/{id}"]["patch"].is_null(),
        "orders are not patched"
    );
    let product = &doc["components"]["schemas"]["NewProduct"];
    assert_eq!(product["properties"]["sku"]["maxLength"], 64);
    assert_eq!(product["properties"]["stock"]["minimum"], 0);
    let docs = w
        .client
        .get(format!("{}/docs/", s.url()))
        .send()
        .await
        .expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.expect("html").contains("swagger"));

    // Shut down, start again on the same database: everything is there.
    s.shutdown().await;
    let s = w.start().await;
    let (status, _, again) = w
        .call(
            &s,
            Method::GET,
            &format!("/products/{}", lamp["id"]),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["stock"], 1);
    let (status, _, again) = w
        .call(
            &s,
            Method::GET,
            &format!("/orders/{}", order["id"]),
            None,
            &[AUTH],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, order);
    let (_, _, count) = w
        .call(&s, Method::GET, "/customers/count", None, &[AUTH])
        .await;
    assert_eq!(count, json!({"count": 1}));
    s.shutdown().await;
}

/// Past the rate limit: 429 with Retry-After.
async fn rate_limit(mut w: World) {
    w.config.rate_limit = std::num::NonZeroU32::new(5);
    let s = w.start().await;
    let mut limited = 0;
    for _ in 0..20 {
        let (status, headers, body) = w.call(&s, Method::GET, "/products", None, &[AUTH]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert_eq!(code(&body), "RATE_LIMITED");
            assert!(headers.contains_key("retry-after"));
        }
    }
    assert!(limited >= 10, "{limited} of 20 were limited");
    // Probes are outside the rate limit: an orchestrator keeps polling them.
    for _ in 0..20 {
        let (status, _, _) = w.call(&s, Method::GET, "/health/ready", None, &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    s.shutdown().await;
}

/// Wrong tokens: 401, and past ten a minute from one client, 429 before any
/// token is looked at (a right one included).
async fn failed_sign_ins_are_rate_limited(w: World) {
    let s = w.start().await;
    let wrong = (
        "authorization",
        "Bearer wrong-wrong-wrong-wrong-wrong-wrong",
    );
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let (status, _, body) = w.call(&s, Method::GET, "/customers", None, &[wrong]).await;
        statuses.push((status, code(&body).to_owned()));
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|(s, c)| *s == StatusCode::UNAUTHORIZED && c == "UNAUTHENTICATED"),
        "{statuses:?}"
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|(s, c)| *s == StatusCode::TOO_MANY_REQUESTS && c == "RATE_LIMITED"),
        "{statuses:?}"
    );
    let (status, headers, _) = w.call(&s, Method::GET, "/customers", None, &[AUTH]).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "blocked before the token check"
    );
    assert!(headers.contains_key("retry-after"));
    // Requests without a token are not sign-ins: still served.
    let (status, _, _) = w.call(&s, Method::GET, "/products", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    s.shutdown().await;
}

/// The open development mode (anyone may write) starts only on loopback,
/// unless asked for explicitly.
async fn open_mode_only_on_loopback(mut w: World) {
    w.config.tokens = None;
    w.config.bind = "0.0.0.0:0".to_owned();
    let refused = shop::start(w.config.clone(), Vec::new())
        .await
        .err()
        .expect("refused");
    assert!(refused.contains("SHOP_TOKENS"), "{refused}");
    w.config.allow_open = true;
    let server = shop::start(w.config.clone(), Vec::new())
        .await
        .expect("started when asked for");
    server.shutdown().await;
    w.config.allow_open = false;
    w.config.bind = "127.0.0.1:0".to_owned();
    let server = shop::start(w.config.clone(), Vec::new())
        .await
        .expect("loopback is fine");
    server.shutdown().await;
}

type Scenario = fn(World) -> Pin<Box<dyn Future<Output = ()> + Send>>;

const SCENARIOS: &[(&str, Scenario, bool)] = &[
    ("crud", |w| Box::pin(crud(w)), true),
    ("bad_input", |w| Box::pin(bad_input(w)), true),
    ("lists", |w| Box::pin(lists(w)), true),
    ("orders", |w| Box::pin(orders(w)), true),
    ("customers", |w| Box::pin(customers(w)), true),
    ("private_fields", |w| Box::pin(private_fields(w)), true),
    (
        "operations_and_restart",
        |w| Box::pin(operations_and_restart(w)),
        true,
    ),
    ("rate_limit", |w| Box::pin(rate_limit(w)), false),
    (
        "failed_sign_ins_are_rate_limited",
        |w| Box::pin(failed_sign_ins_are_rate_limited(w)),
        false,
    ),
    (
        "open_mode_only_on_loopback",
        |w| Box::pin(open_mode_only_on_loopback(w)),
        false,
    ),
];

fn run(backend: Backend, scenario: Scenario) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    rt.block_on(async move {
        let db = TestDb::create(backend).await;
        let mut config = Config::for_database(db.url.clone());
        config.keel.page_token_secret =
            Some(keel::Secret::new("e2e-secret-e2e-secret-e2e-secret-e2e"));
        config.tokens = Some(
            Tokens::parse(&format!(
                "alice:{ALICE},bob:bob-token-0123456789abcdef0123456789"
            ))
            .expect("tokens"),
        );
        if backend != Backend::Sqlite && keel_tests::redis_available() {
            config.keel.cache.redis_url = Some(keel_tests::redis_url());
            config.keel.cache.prefix = format!("shop-e2e-{}", uuid::Uuid::new_v4().simple());
        }
        let world = World {
            backend,
            config,
            client: Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            events: Arc::default(),
        };
        let _ = world.backend;
        let outcome = tokio::spawn(scenario(world)).await;
        db.destroy().await;
        match outcome {
            Ok(()) => Ok(()),
            Err(e) if e.is_panic() => {
                let panic = e.into_panic();
                Err(panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "the scenario panicked".into())
                    .into())
            }
            Err(e) => Err(e.to_string().into()),
        }
    })
}

fn main() {
    let args = Arguments::from_args();
    let probes = keel_tests::probe_backends();
    let mut trials = Vec::new();
    for &(name, scenario, every_backend) in SCENARIOS {
        for probe in &probes {
            let backend = probe.backend;
            if !every_backend && backend != Backend::Sqlite {
                continue;
            }
            trials.push(
                Trial::test(format!("{}::{name}", backend.name()), move || {
                    run(backend, scenario)
                })
                .with_kind(backend.name())
                .with_ignored_flag(probe.status.is_err()),
            );
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
