//! The routes of a resource over HTTP (in process, through tower), on SQLite.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use keel_tests::entities::product;
use keel_tests::{Backend, TestDb, create_tables};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn app() -> (Router, TestDb) {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let app = keel_axum::resource(keel.service::<product::Entity>())
        .layer(axum::middleware::from_fn(keel_axum::request_id));
    (app, db)
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn new_product(sku: &str, price: i64) -> String {
    json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price, "stock": 1, "active": true})
        .to_string()
}

#[tokio::test]
async fn crud_with_etags_and_preconditions() {
    let (app, db) = app().await;
    let created = send(
        &app,
        "POST",
        "/products",
        Some(&new_product("A-1", 100)),
        &[],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.headers[header::LOCATION], format!("/products/{id}"));
    assert_eq!(created.headers[header::ETAG], "\"1\"");

    let got = send(&app, "GET", &format!("/products/{id}"), None, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["sku"], "A-1");
    let unchanged = send(
        &app,
        "GET",
        &format!("/products/{id}"),
        None,
        &[("if-none-match", "\"1\"")],
    )
    .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);

    let stale = send(
        &app,
        "PATCH",
        &format!("/products/{id}"),
        Some(r#"{"price_cents": 150}"#),
        &[("if-match", "\"7\"")],
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.body
    );
    assert_eq!(stale.body["error"]["code"], "PRECONDITION_FAILED");
    let patched = send(
        &app,
        "PATCH",
        &format!("/products/{id}"),
        Some(r#"{"price_cents": 150}"#),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["price_cents"], 150);
    assert_eq!(patched.headers[header::ETAG], "\"2\"");

    let stale_delete = send(
        &app,
        "DELETE",
        &format!("/products/{id}"),
        None,
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let deleted = send(&app, "DELETE", &format!("/products/{id}"), None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = send(&app, "GET", &format!("/products/{id}"), None, &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.body["error"]["code"], "NOT_FOUND");
    let restored = send(&app, "POST", &format!("/products/{id}/restore"), None, &[]).await;
    assert_eq!(restored.status, StatusCode::OK);
    let history = send(
        &app,
        "GET",
        &format!("/products/{id}/history?page_size=2"),
        None,
        &[],
    )
    .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let actions: Vec<_> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(actions, [json!("restored"), json!("deleted")]);
    assert!(history.body["next_page_token"].is_string());
    db.destroy().await;
}

#[tokio::test]
async fn lists_and_counts() {
    let (app, db) = app().await;
    for i in 0..5 {
        let r = send(
            &app,
            "POST",
            "/products",
            Some(&new_product(&format!("L-{i}"), 100 * i)),
            &[],
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let page = send(&app, "GET", "/products?filter=price_cents%20%3E%3D%20100&order_by=price_cents%20desc&page_size=2&count=true", None, &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(page.body["items"][0]["sku"], "L-4");
    assert_eq!(page.body["total_size"], 4);
    let token = page.body["next_page_token"].as_str().unwrap().to_owned();
    let next = send(&app, "GET", &format!("/products?filter=price_cents%20%3E%3D%20100&order_by=price_cents%20desc&page_size=2&page_token={token}"), None, &[]).await;
    assert_eq!(next.body["items"][0]["sku"], "L-2");
    assert!(next.body.get("total_size").is_none(), "only when asked");
    let count = send(
        &app,
        "GET",
        "/products/count?filter=price_cents%20%3C%20300",
        None,
        &[],
    )
    .await;
    assert_eq!(count.body, json!({"count": 3}));
    db.destroy().await;
}

/// Method, path, body, headers, expected status, expected code.
type Case = (
    &'static str,
    &'static str,
    Option<String>,
    &'static [(&'static str, &'static str)],
    StatusCode,
    &'static str,
);

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let (app, db) = app().await;
    let cases: Vec<Case> = vec![
        ("POST", "/products", Some("{not json".into()), &[], StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ("POST", "/products", Some(r#"{"sku": "X", "name": "x", "price_cents": 1, "stock": 1, "active": true, "colour": "red"}"#.into()), &[], StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
        ("POST", "/products", Some(r#"{"sku": "X", "name": "x", "price_cents": 1, "stock": 1, "active": true, "version": 9}"#.into()), &[], StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
        ("POST", "/products", Some(r#"{"sku": "", "name": "x", "price_cents": -1, "stock": 1, "active": true}"#.into()), &[], StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
        ("POST", "/products", Some(format!("{{\"sku\": \"{}\"}}", "x".repeat(2 << 20))), &[], StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
        ("GET", "/products/abc", None, &[], StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ("GET", "/products?colour=red", None, &[], StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ("GET", "/products?filter=colour%20%3D%201", None, &[], StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ("GET", "/products?page_size=1000", None, &[], StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ("PATCH", "/products/1", Some(r#"{"stock": 1}"#.into()), &[("if-match", "yes")], StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
    ];
    for (method, uri, body, headers, status, code) in cases {
        let reply = send(&app, method, uri, body.as_deref(), headers).await;
        assert_eq!(reply.status, status, "{method} {uri}: {}", reply.body);
        assert_eq!(
            reply.body["error"]["code"], code,
            "{method} {uri}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["details"]["request_id"].is_string(),
            "{}",
            reply.body
        );
    }
    // A wrong content type.
    let request = Request::builder()
        .method("POST")
        .uri("/products")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(new_product("T-1", 1)))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let count = send(&app, "GET", "/products/count", None, &[]).await;
    assert_eq!(count.body, json!({"count": 0}), "nothing was written");
    db.destroy().await;
}

#[tokio::test]
async fn request_ids_are_accepted_or_made_and_always_echoed() {
    let (app, db) = app().await;
    let given = send(
        &app,
        "GET",
        "/products/999",
        None,
        &[("x-request-id", "req-42")],
    )
    .await;
    assert_eq!(given.headers["x-request-id"], "req-42");
    assert_eq!(given.body["error"]["details"]["request_id"], "req-42");
    let made = send(&app, "GET", "/products", None, &[]).await;
    assert!(!made.headers["x-request-id"].is_empty());
    db.destroy().await;
}

#[tokio::test]
async fn health_probes_and_metrics_with_route_templates() {
    let metrics = keel::metrics::Metrics::install().unwrap();
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let runtime = keel::lifecycle::Runtime::builder("shop", "1.0.0")
        .revision("3f2a9c1d")
        .keel(&keel)
        .build()
        .unwrap();
    let probes = keel_axum::probe_routes(runtime.health().clone());
    assert_eq!(
        send(&probes, "GET", "/health/started", None, &[])
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE,
        "not started yet"
    );
    runtime.start().await.unwrap();
    let app = keel_axum::resource(keel.service::<product::Entity>())
        .merge(keel_axum::ops_routes(
            runtime.health().clone(),
            Some(metrics.clone()),
        ))
        .merge(keel_axum::info_routes(runtime.build_info().clone()))
        .layer(axum::middleware::from_fn(keel_axum::http_metrics))
        .layer(axum::middleware::from_fn(keel_axum::request_id));

    let created = send(&app, "POST", "/products", Some(&new_product("M-1", 5)), &[]).await;
    let id = created.body["id"].as_i64().unwrap();
    for _ in 0..2 {
        send(&app, "GET", &format!("/products/{id}"), None, &[]).await;
    }
    send(&app, "GET", "/products/12345", None, &[]).await;
    send(&app, "GET", "/nowhere", None, &[]).await;
    // Invented methods share one label: no new series per caller's whim.
    for i in 0..50 {
        send(
            &app,
            &format!("BREW{i}"),
            &format!("/products/{id}"),
            None,
            &[],
        )
        .await;
    }

    let health = send(&app, "GET", "/health", None, &[]).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(health.body["status"], "healthy");
    assert_eq!(health.body["checks"]["database"]["critical"], true);
    assert_eq!(
        send(&app, "GET", "/health/live", None, &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/health/ready", None, &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/health/started", None, &[]).await.status,
        StatusCode::OK
    );
    let info = send(&app, "GET", "/info", None, &[]).await.body;
    assert_eq!(
        (&info["name"], &info["version"], &info["revision"]),
        (&json!("shop"), &json!("1.0.0"), &json!("3f2a9c1d"))
    );
    assert_eq!(info["keel_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        info["keel_features"]
            .as_array()
            .unwrap()
            .contains(&json!("prometheus")),
        "{info}"
    );

    let text = send(&app, "GET", "/metrics", None, &[]).await.body;
    let text = text.as_str().unwrap();
    for line in [
        "keel_http_requests_total{route=\"/products/{id}\",method=\"GET\",status=\"200\"} 2",
        "keel_http_requests_total{route=\"/products/{id}\",method=\"GET\",status=\"404\"} 1",
        "keel_http_requests_total{route=\"/products\",method=\"POST\",status=\"201\"} 1",
        "keel_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"} 1",
        "keel_http_request_duration_seconds_bucket{route=\"/products/{id}\",method=\"GET\",le=",
        "keel_http_requests_total{route=\"/products/{id}\",method=\"other\",status=\"405\"} 50",
        "keel_build_info{service=\"shop\",version=\"1.0.0\",revision=\"3f2a9c1d\",keel_version=\"",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
    assert!(!text.contains("BREW"), "{text}");
    runtime.shutdown().await;
    db.destroy().await;
}

/// An app whose policy: reads open; writes, history and deleted rows need
/// an identity (401); only `admin` deletes (403). Identity comes from an
/// `x-user` header here.
async fn guarded() -> (Router, TestDb) {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let app = keel_axum::routes(keel.service::<product::Entity>())
        .authorize(|access: &keel_axum::Access<'_>| {
            keel_axum::writes_need_identity(access)?;
            let staff = access.operation == keel_axum::Operation::History || access.show_deleted;
            if staff && access.identity.is_none() {
                return Err(keel_axum::ApiError::unauthenticated("staff only"));
            }
            match (access.operation, access.identity) {
                (keel_axum::Operation::Delete, Some(who)) if who.actor != "admin" => Err(
                    keel_axum::ApiError::permission_denied("only admin deletes products"),
                ),
                _ => Ok(()),
            }
        })
        .into_router()
        .layer(axum::middleware::from_fn(
            |mut request: axum::extract::Request, next: axum::middleware::Next| async move {
                let user = request
                    .headers()
                    .get("x-user")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if let Some(actor) = user {
                    request.extensions_mut().insert(keel_axum::Identity {
                        actor,
                        tenant: None,
                    });
                }
                next.run(request).await
            },
        ))
        .layer(axum::middleware::from_fn(keel_axum::request_id));
    (app, db)
}

#[tokio::test]
async fn authorisation_per_operation() {
    let (app, db) = guarded().await;
    let body = new_product("G-1", 5);
    let anonymous = send(&app, "POST", "/products", Some(&body), &[]).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"]["code"], "UNAUTHENTICATED");
    assert!(anonymous.body["error"]["details"]["request_id"].is_string());
    let created = send(&app, "POST", "/products", Some(&body), &[("x-user", "bob")]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["created_by"], "bob");
    let id = created.body["id"].as_i64().unwrap();
    let path = format!("/products/{id}");
    assert_eq!(
        send(&app, "GET", &path, None, &[]).await.status,
        StatusCode::OK
    );
    let denied = send(&app, "DELETE", &path, None, &[("x-user", "bob")]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body["error"]["code"], "PERMISSION_DENIED");
    // The refused delete did nothing.
    assert_eq!(
        send(&app, "GET", &path, None, &[]).await.status,
        StatusCode::OK
    );
    let deleted = send(&app, "DELETE", &path, None, &[("x-user", "admin")]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // The policy sees history and show_deleted for what they are.
    for url in [
        format!("{path}/history"),
        "/products?show_deleted=true".to_owned(),
        "/products/count?show_deleted=true".to_owned(),
    ] {
        assert_eq!(
            send(&app, "GET", &url, None, &[]).await.status,
            StatusCode::UNAUTHORIZED,
            "{url}"
        );
        let staff = send(&app, "GET", &url, None, &[("x-user", "bob")]).await;
        assert_eq!(staff.status, StatusCode::OK, "{url}");
    }
    let live = send(&app, "GET", "/products?show_deleted=false", None, &[]).await;
    assert_eq!(live.status, StatusCode::OK);
    db.destroy().await;
}

#[tokio::test]
async fn only_some_operations() {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let ops = [keel_axum::Operation::List, keel_axum::Operation::Get];
    let app = keel_axum::routes(keel.service::<product::Entity>())
        .only(&ops)
        .into_router();
    assert_eq!(
        send(&app, "GET", "/products", None, &[]).await.status,
        StatusCode::OK
    );
    let post = send(&app, "POST", "/products", Some(&new_product("O-1", 1)), &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    // Without the count route, `count` is taken for an id.
    let count = send(&app, "GET", "/products/count", None, &[]).await;
    assert_eq!(count.status, StatusCode::BAD_REQUEST);
    let doc = keel_axum::ApiDoc::new("t", "1")
        .resource_only::<product::Entity>(&ops)
        .to_json();
    assert!(doc["paths"]["/products"]["get"].is_object());
    assert!(doc["paths"]["/products"]["post"].is_null());
    assert!(doc["paths"]["/products/count"].is_null());
    db.destroy().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let limit = keel_axum::RateLimit::with_burst(
        std::num::NonZeroU32::new(1).unwrap(),
        std::num::NonZeroU32::new(3).unwrap(),
    );
    let app = keel_axum::resource(keel.service::<product::Entity>())
        .layer(axum::middleware::from_fn_with_state(
            limit,
            keel_axum::RateLimit::middleware,
        ))
        .layer(axum::middleware::from_fn(keel_axum::request_id));
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&app, "GET", "/products", None, &[]).await);
    }
    let ok = statuses
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 3, "a burst of 3");
    let limited = statuses.last().unwrap();
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"]["code"], "RATE_LIMITED");
    assert_eq!(limited.headers[header::RETRY_AFTER], "1");
    assert!(limited.headers.contains_key("x-request-id"));
    db.destroy().await;
}

#[tokio::test]
async fn openapi_document_and_docs_page() {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let doc = keel_axum::ApiDoc::new("test", "1.0.0")
        .bearer_auth()
        .resource::<product::Entity>()
        .ops();
    let json = doc.to_json();
    let app = keel_axum::resource(keel.service::<product::Entity>())
        .merge(keel_axum::docs_routes(doc.build()));
    let served = send(&app, "GET", "/openapi.json", None, &[]).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body["openapi"], "3.1.0");
    assert_eq!(served.body["paths"], json["paths"]);
    let paths = &served.body["paths"];
    for (path, method, statuses) in [
        ("/products", "get", &["200", "400"][..]),
        (
            "/products",
            "post",
            &["201", "401", "409", "413", "415", "422"][..],
        ),
        ("/products/count", "get", &["200"][..]),
        ("/products/{id}", "get", &["200", "304", "404"][..]),
        ("/products/{id}", "patch", &["200", "412", "422"][..]),
        ("/products/{id}", "delete", &["204", "412"][..]),
        ("/products/{id}/history", "get", &["200"][..]),
    ] {
        for status in statuses {
            assert!(
                paths[path][method]["responses"][status].is_object(),
                "{method} {path} {status}"
            );
        }
    }
    let schemas = &served.body["components"]["schemas"];
    for name in [
        "Product",
        "NewProduct",
        "ProductPatch",
        "ProductPage",
        "Error",
        "Count",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
    // Server-owned fields are read-only in the row and absent from inputs.
    assert_eq!(
        schemas["Product"]["properties"]["version"]["readOnly"],
        true
    );
    assert!(schemas["NewProduct"]["properties"]["version"].is_null());
    assert!(schemas["NewProduct"]["properties"]["id"].is_null());
    let required = schemas["ProductPatch"]["required"].as_array();
    assert!(required.is_none_or(Vec::is_empty), "{required:?}");
    let page = send(&app, "GET", "/docs/", None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.to_string().contains("swagger"), "{}", page.body);
    db.destroy().await;
}

async fn shapes() -> (Router, TestDb) {
    use keel_tests::entities::{label, memo};
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let app = Router::new()
        .merge(keel_axum::resource(keel.service::<memo::Entity>()))
        .merge(keel_axum::resource(keel.service::<label::Entity>()))
        .merge(keel_axum::resource(keel.service::<product::Entity>()))
        .layer(axum::middleware::from_fn(keel_axum::request_id));
    (app, db)
}

#[tokio::test]
async fn if_match_on_a_resource_without_a_version_is_refused_alike() {
    let (app, db) = shapes().await;
    let created = send(&app, "POST", "/memos", Some(r#"{"body": "keep"}"#), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(
        created.headers.get(header::ETAG).is_none(),
        "no version, no ETag"
    );
    let id = created.body["id"].as_i64().unwrap();
    let url = format!("/memos/{id}");
    for (method, body) in [("PATCH", Some(r#"{"body": "changed"}"#)), ("DELETE", None)] {
        let reply = send(&app, method, &url, body, &[("if-match", "\"1\"")]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{method}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["code"], "INVALID_ARGUMENT", "{method}");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no version column"),
            "{method}: {}",
            reply.body
        );
    }
    let still = send(&app, "GET", &url, None, &[]).await;
    assert_eq!(still.body["body"], "keep", "nothing was written");
    // `*` asks only that the row exists: it can be checked.
    let star = send(
        &app,
        "PATCH",
        &url,
        Some(r#"{"body": "new"}"#),
        &[("if-match", "*")],
    )
    .await;
    assert_eq!(star.status, StatusCode::OK, "{}", star.body);
    db.destroy().await;
}

#[tokio::test]
async fn preconditions_take_exactly_their_grammar() {
    let (app, db) = shapes().await;
    let created = send(&app, "POST", "/products", Some(&new_product("P-1", 1)), &[]).await;
    let url = format!("/products/{}", created.body["id"]);
    for bad in [
        "",
        "+1",
        "-1",
        "\"1",
        "1\"",
        "W/1",
        "\"\"",
        "abc",
        "\"1\", \"2\"",
        "1234567890123456789",
    ] {
        let reply = send(&app, "GET", &url, None, &[("if-none-match", bad)]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "If-None-Match {bad:?}"
        );
        let reply = send(&app, "DELETE", &url, None, &[("if-match", bad)]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "If-Match {bad:?}");
    }
    for good in ["\"1\"", "W/\"1\"", "1", "*"] {
        let reply = send(&app, "GET", &url, None, &[("if-none-match", good)]).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_MODIFIED,
            "If-None-Match {good:?}"
        );
    }
    let other = send(&app, "GET", &url, None, &[("if-none-match", "\"7\"")]).await;
    assert_eq!(other.status, StatusCode::OK);
    db.destroy().await;
}

#[tokio::test]
async fn bodies_point_at_the_culprit_and_numbers_are_read_as_json_schema_does() {
    let (app, db) = shapes().await;
    for (body, pointer) in [
        (r#"{"sku": "a", "colour.name": 1}"#, "/colour.name"),
        (r#"{"sku": "a", "a/b": 1}"#, "/a~1b"),
        (r#"{"sku": "a", "m~n": 1}"#, "/m~0n"),
    ] {
        let reply = send(&app, "POST", "/products", Some(body), &[]).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let error = &reply.body["error"]["details"]["errors"][0];
        assert_eq!(error["pointer"], pointer, "{}", reply.body);
        assert_eq!(error["code"], "UNKNOWN_FIELD");
    }
    // An integral number with a fraction is an integer; 1.5 is not.
    let body =
        r#"{"sku": "F-1", "name": "n", "price_cents": 1177.0, "stock": 2e0, "active": true}"#;
    let reply = send(&app, "POST", "/products", Some(body), &[]).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["price_cents"], 1177);
    let url = format!("/products/{}", reply.body["id"]);
    let reply = send(&app, "PATCH", &url, Some(r#"{"stock": 1.5}"#), &[]).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        reply.body["error"]["details"]["errors"][0]["pointer"],
        "/stock"
    );
    // A field that cannot be cleared refuses null; one that can, clears.
    let reply = send(&app, "PATCH", &url, Some(r#"{"name": null}"#), &[]).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body["error"]["details"]["errors"][0]["pointer"],
        "/name"
    );
    let reply = send(&app, "PATCH", &url, Some(r#"{"rating": 4.5}"#), &[]).await;
    assert_eq!(reply.body["rating"], 4.5);
    let reply = send(&app, "PATCH", &url, Some(r#"{"rating": null}"#), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["rating"].is_null());
    // An offset past what databases take is refused, not a dropped connection.
    let reply = send(&app, "GET", "/products?skip=9223372036854775808", None, &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = send(&app, "GET", "/products?skip=9223372036854775807", None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    db.destroy().await;
}

#[tokio::test]
async fn location_percent_encodes_a_string_key() {
    let (app, db) = shapes().await;
    let body = r#"{"slug": "a b/ü?#%", "title": "odd"}"#;
    let created = send(&app, "POST", "/labels", Some(body), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let location = created.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(location, "/labels/a%20b%2F%C3%BC%3F%23%25");
    let fetched = send(&app, "GET", &location, None, &[]).await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.body);
    assert_eq!(fetched.body["slug"], "a b/ü?#%");
    db.destroy().await;
}

#[tokio::test]
async fn an_input_is_an_object_and_nothing_else() {
    let (app, db) = shapes().await;
    let created = send(&app, "POST", "/products", Some(&new_product("O-1", 1)), &[]).await;
    let url = format!("/products/{}", created.body["id"]);
    for body in ["[]", "[\"O-2\"]", "null", "3", "\"x\""] {
        let reply = send(&app, "PATCH", &url, Some(body), &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "PATCH {body}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["details"]["errors"][0]["code"],
            "INVALID_TYPE"
        );
        let reply = send(&app, "POST", "/products", Some(body), &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "POST {body}: {}",
            reply.body
        );
    }
    let unchanged = send(&app, "GET", &url, None, &[]).await;
    assert_eq!(unchanged.body["version"], 1, "nothing was written");
    db.destroy().await;
}

#[tokio::test]
async fn a_panicking_handler_answers_the_500_envelope_and_the_server_goes_on() {
    let app = Router::new()
        .route(
            "/boom",
            axum::routing::get(|| async {
                let v: Vec<i32> = Vec::new();
                v[3].to_string()
            }),
        )
        .route("/fine", axum::routing::get(|| async { "fine" }))
        .layer(keel_axum::catch_panic())
        .layer(axum::middleware::from_fn(keel_axum::request_id));
    let reply = send(&app, "GET", "/boom", None, &[("x-request-id", "req-42")]).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.body["error"]["code"], "INTERNAL");
    assert_eq!(reply.body["error"]["message"], "internal error");
    assert_eq!(reply.body["error"]["details"]["request_id"], "req-42");
    assert_eq!(reply.headers["x-request-id"], "req-42");
    assert!(
        !reply.body.to_string().contains("index out of bounds"),
        "no panic text reaches the client"
    );
    let fine = send(&app, "GET", "/fine", None, &[]).await;
    assert_eq!(fine.status, StatusCode::OK);
}

#[tokio::test]
async fn an_id_that_does_not_decode_answers_the_envelope() {
    let (app, db) = shapes().await;
    for url in ["/products/%FF", "/labels/%C3%28", "/memos/%FF%FE"] {
        let reply = send(&app, "GET", url, None, &[("x-request-id", "r-1")]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(
            reply.body["error"]["code"], "INVALID_ARGUMENT",
            "{url}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["details"]["request_id"], "r-1");
        let reply = send(&app, "DELETE", url, None, &[]).await;
        assert_eq!(
            reply.body["error"]["code"], "INVALID_ARGUMENT",
            "{url}: {}",
            reply.body
        );
    }
    db.destroy().await;
}

/// Gives requests that send `x-staff` an identity, as authentication would.
async fn staff_identity(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.headers().contains_key("x-staff") {
        request.extensions_mut().insert(keel_axum::Identity {
            actor: "staff".into(),
            tenant: None,
        });
    }
    next.run(request).await
}

/// Private fields: by default no caller sees them; a reveal policy decides
/// per request. Hidden means absent from rows (get, list, create, update),
/// from history changes, unknown to filters, orders and counts, and to the
/// create and patch bodies: a caller who may not read a field may not
/// write it.
#[tokio::test]
async fn private_fields_are_served_only_to_whom_the_app_reveals_them() {
    use keel_tests::entities::memo;
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let service = keel.service::<memo::Entity>();
    // The default: revealed to no one.
    let hidden = keel_axum::routes(service.clone()).into_router();
    // Revealed to callers who send `x-staff` (the identity comes from a
    // middleware, as authentication would set it).
    let revealed = keel_axum::routes(service)
        .reveal_private(keel_axum::reveal_to_identified)
        .into_router()
        .layer(axum::middleware::from_fn(staff_identity));
    // A caller who does not see `recipient` cannot write it either: it is
    // an unknown field, and the refusal names only the fields it may send.
    for (app, headers) in [(&hidden, &[("x-staff", "1")][..]), (&revealed, &[][..])] {
        let refused = send(
            app,
            "POST",
            "/memos",
            Some(r#"{"body": "hello", "recipient": "ann"}"#),
            headers,
        )
        .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        let error = &refused.body["error"]["details"]["errors"][0];
        assert_eq!(error["pointer"], "/recipient", "{}", refused.body);
        assert_eq!(error["code"], "UNKNOWN_FIELD");
        let refused = send(
            app,
            "POST",
            "/memos",
            Some(r#"{"body": "x", "bcc": 1}"#),
            headers,
        )
        .await;
        let message = refused.body["error"]["details"]["errors"][0]["message"].to_string();
        assert!(
            message.contains("`bcc`") && !message.contains("recipient"),
            "{message}"
        );
    }
    let created = send(
        &revealed,
        "POST",
        "/memos",
        Some(r#"{"body": "hello", "recipient": "ann"}"#),
        &[("x-staff", "1")],
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["recipient"], "ann");
    let id = created.body["id"].as_i64().unwrap();
    let row = format!("/memos/{id}");
    let created = send(&hidden, "POST", "/memos", Some(r#"{"body": "hi"}"#), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(created.body.get("recipient").is_none(), "{}", created.body);

    for (app, staff) in [(&hidden, false), (&hidden, true), (&revealed, false)] {
        let headers: &[(&str, &str)] = if staff { &[("x-staff", "1")] } else { &[] };
        let got = send(app, "GET", &row, None, headers).await;
        assert_eq!(got.status, StatusCode::OK);
        assert!(got.body.get("recipient").is_none(), "{}", got.body);
        let list = send(app, "GET", "/memos", None, headers).await;
        assert!(
            !list.body.to_string().contains("recipient"),
            "{}",
            list.body
        );
        let history = send(app, "GET", &format!("{row}/history"), None, headers).await;
        assert_eq!(history.status, StatusCode::OK);
        let text = history.body.to_string();
        assert!(
            text.contains("\"body\"") && !text.contains("recipient"),
            "{text}"
        );
        for query in [
            "/memos?filter=recipient%20%3D%20%22ann%22",
            "/memos?order_by=recipient",
            "/memos/count?filter=recipient%20%3D%20%22ann%22",
        ] {
            let refused = send(app, "GET", query, None, headers).await;
            assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
            assert_eq!(refused.body["error"]["code"], "INVALID_ARGUMENT");
        }
        let patched = send(app, "PATCH", &row, Some(r#"{"body": "hi"}"#), headers).await;
        assert_eq!(patched.status, StatusCode::OK);
        assert!(patched.body.get("recipient").is_none(), "{}", patched.body);
        let refused = send(app, "PATCH", &row, Some(r#"{"recipient": null}"#), headers).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(
            refused.body["error"]["details"]["errors"][0]["pointer"],
            "/recipient"
        );
    }

    let staff: &[(&str, &str)] = &[("x-staff", "1")];
    let got = send(&revealed, "GET", &row, None, staff).await;
    assert_eq!(got.body["recipient"], "ann", "{}", got.body);
    let found = send(
        &revealed,
        "GET",
        "/memos?filter=recipient%20%3D%20%22ann%22&order_by=recipient",
        None,
        staff,
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["items"][0]["recipient"], "ann");
    let history = send(&revealed, "GET", &format!("{row}/history"), None, staff).await;
    assert!(
        history.body.to_string().contains("recipient"),
        "{}",
        history.body
    );

    // The OpenAPI document in each view.
    let full = keel_axum::ApiDoc::new("t", "1")
        .resource::<memo::Entity>()
        .to_json();
    let public = keel_axum::ApiDoc::new("t", "1")
        .view(keel::View::Public)
        .resource::<memo::Entity>()
        .to_json();
    let schema = |doc: &Value, name: &str| doc["components"]["schemas"][name].clone();
    for name in ["Memo", "NewMemo", "MemoPatch"] {
        assert!(
            schema(&full, name)["properties"]["recipient"].is_object(),
            "{name}"
        );
        assert!(
            schema(&public, name)["properties"]["recipient"].is_null(),
            "{name}"
        );
    }
    assert!(
        schema(&full, "NewMemo")["properties"]["recipient"]["description"]
            .to_string()
            .contains("may send it")
    );
    assert!(
        !public["paths"]["/memos"]["get"]
            .to_string()
            .contains("recipient")
    );
    db.destroy().await;
}

/// A vault's `pin` is private and required: only a caller who may write
/// private fields can create one.
#[allow(unreachable_pub)]
mod vault {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A vault.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
    #[sea_orm(table_name = "vaults")]
    pub struct Model {
        /// Key.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Public.
        pub label: String,
        /// Private and required.
        #[service(private)]
        pub pin: String,
    }

    /// None.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A create that needs a private field is refused (403) to callers who may
/// not write it, and their OpenAPI document has no `POST` for it; they may
/// still read and patch what they see.
#[tokio::test]
async fn a_create_that_needs_a_private_field_is_for_those_who_see_it() {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    keel.create_table(vault::Entity).await.unwrap();
    let app = keel_axum::routes(keel.service::<vault::Entity>())
        .reveal_private(keel_axum::reveal_to_identified)
        .into_router()
        .layer(axum::middleware::from_fn(staff_identity));
    let body = Some(r#"{"label": "a", "pin": "1234"}"#);
    let refused = send(&app, "POST", "/vaults", body, &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "PERMISSION_DENIED");
    let refused = send(&app, "POST", "/vaults", Some(r#"{"label": "a"}"#), &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let created = send(&app, "POST", "/vaults", body, &[("x-staff", "1")]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let patched = send(&app, "PATCH", "/vaults/1", Some(r#"{"label": "b"}"#), &[]).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body, json!({"id": 1, "label": "b"}));

    let public = keel_axum::ApiDoc::new("t", "1")
        .view(keel::View::Public)
        .resource::<vault::Entity>()
        .to_json();
    let full = keel_axum::ApiDoc::new("t", "1")
        .resource::<vault::Entity>()
        .to_json();
    assert!(
        public["paths"]["/vaults"]["post"].is_null(),
        "{}",
        public["paths"]
    );
    assert!(public["paths"]["/vaults"]["get"].is_object());
    assert!(full["paths"]["/vaults"]["post"].is_object());
    db.destroy().await;
}

/// `RequestIdLayer` does what `from_fn(request_id)` does: an incoming id is
/// kept (an invalid one replaced), echoed on every response, given to the
/// handler's errors, and to the 500 envelope of a handler that panics.
#[tokio::test]
async fn the_request_id_layer_does_what_the_middleware_does() {
    let db = TestDb::create(Backend::Sqlite).await;
    let keel = db.builder().connect().await.unwrap();
    create_tables(&keel).await;
    let app = keel_axum::resource(keel.service::<product::Entity>())
        .route(
            "/boom",
            axum::routing::get(|| async {
                let v: Vec<i32> = Vec::new();
                v[3].to_string()
            }),
        )
        .layer(keel_axum::catch_panic())
        .layer(keel_axum::HttpMetricsLayer)
        .layer(keel_axum::RequestIdLayer);
    let given = send(
        &app,
        "GET",
        "/products/999",
        None,
        &[("x-request-id", "req-42")],
    )
    .await;
    assert_eq!(given.status, StatusCode::NOT_FOUND);
    assert_eq!(given.headers["x-request-id"], "req-42");
    assert_eq!(given.body["error"]["details"]["request_id"], "req-42");
    let made = send(
        &app,
        "GET",
        "/products",
        None,
        &[("x-request-id", "bad id")],
    )
    .await;
    let id = made.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        !id.is_empty() && id != "bad id",
        "an invalid id is replaced: {id}"
    );
    let boom = send(&app, "GET", "/boom", None, &[("x-request-id", "req-43")]).await;
    assert_eq!(boom.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(boom.body["error"]["details"]["request_id"], "req-43");
    assert_eq!(boom.headers["x-request-id"], "req-43");
    db.destroy().await;
}

#[tokio::test]
async fn the_in_flight_layer_counts_a_request_until_its_response_is_ready() {
    let runtime = keel::lifecycle::Runtime::builder("svc", "1")
        .build()
        .unwrap();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let wait = release.clone();
    let app = Router::new()
        .route(
            "/slow",
            axum::routing::get(move || async move {
                wait.notified().await;
                "done"
            }),
        )
        .layer(keel_axum::InFlightLayer::new(runtime.clone()));
    let request = || Request::get("/slow").body(Body::empty()).unwrap();
    let served = tokio::spawn(app.clone().oneshot(request()));
    while runtime.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runtime.in_flight(), 1);
    release.notify_one();
    let response = served.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(runtime.in_flight(), 0, "released with the response");
    // A request whose caller goes away is released too.
    let abandoned = tokio::spawn(app.oneshot(request()));
    while runtime.in_flight() == 0 {
        tokio::task::yield_now().await;
    }
    abandoned.abort();
    let _ = abandoned.await;
    assert_eq!(runtime.in_flight(), 0, "released when dropped");
}
