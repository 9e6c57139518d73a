//! Hostile input, property-based: proptest sends the shop's router (in
//! process, SQLite, tokens required) malformed JSON, wrong types, huge
//! numbers, deep nesting, control characters, SQL metacharacters and odd
//! ids and query parameters on every route, with and without a valid
//! token. Every answer is a 2xx/3xx, or a 4xx in the error envelope; never
//! a 5xx; an anonymous caller never sees a private field (`cost_cents`,
//! `phone`); and a refused request writes nothing (a checksum of every
//! table is unchanged).

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keel_tests::{Backend, TestDb};
use proptest::prelude::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use shop::auth::Tokens;
use tower::ServiceExt;

const TOKEN: &str = "staff-token-0123456789abcdef0123456789";

struct Shop {
    runtime: tokio::runtime::Runtime,
    app: Router,
    keel: keel::Keel,
}

/// One shop per backend for every case (building one per case would take
/// minutes): SQLite, or PostgreSQL with Redis when they answer. `None`
/// when the backend's server does not answer (and is not required).
fn shop(backend: Backend) -> Option<&'static Shop> {
    static SQLITE: OnceLock<Shop> = OnceLock::new();
    static POSTGRES: OnceLock<Option<Shop>> = OnceLock::new();
    match backend {
        Backend::Postgres => POSTGRES
            .get_or_init(|| {
                let probe = keel_tests::probe_backends();
                let up = probe
                    .iter()
                    .any(|p| p.backend == Backend::Postgres && p.status.is_ok());
                up.then(|| build(Backend::Postgres))
            })
            .as_ref(),
        _ => Some(SQLITE.get_or_init(|| build(Backend::Sqlite))),
    }
}

fn build(backend: Backend) -> Shop {
    {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (app, keel) = runtime.block_on(async {
            let db = TestDb::create(backend).await;
            let mut config = shop::Config::for_database(db.url.clone());
            config.tokens = Some(Tokens::parse(&format!("staff:{TOKEN}")).expect("tokens"));
            config.keel.page_token_secret =
                Some(keel::Secret::new("hostile-secret-hostile-secret-hostile"));
            if backend == Backend::Postgres && keel_tests::redis_available() {
                config.keel.cache.redis_url = Some(keel_tests::redis_url());
                config.keel.cache.prefix = format!("hostile{}", std::process::id());
            }
            let keel = shop::connect(&config, Vec::new()).await.expect("connect");
            let lifecycle = keel::lifecycle::Runtime::builder("shop", "1")
                .keel(&keel)
                .build()
                .expect("runtime");
            let app = shop::app(&keel, &lifecycle, None, config.tokens.clone(), None);
            // Some rows to aim at.
            for (sku, price) in [("LAMP-1", 2500), ("MUG-1", 900)] {
                let body = json!({"sku": sku, "name": sku, "price_cents": price, "stock": 5, "cost_cents": price / 2});
                let request = Request::post("/products")
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .body(Body::from(body.to_string()))
                    .expect("request");
                let response = app.clone().oneshot(request).await.expect("answered");
                assert_eq!(response.status(), StatusCode::CREATED);
            }
            (app, keel)
        });
        Shop { runtime, app, keel }
    }
}

/// Every table's row count and versions: what a write would change.
async fn checksum(keel: &keel::Keel) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) AS n, COALESCE(SUM(version), 0) AS v FROM products",
        "SELECT COUNT(*) AS n, COALESCE(SUM(version), 0) AS v FROM customers",
        "SELECT COUNT(*) AS n, COALESCE(SUM(version), 0) AS v FROM orders",
        "SELECT COUNT(*) AS n, CAST(0 AS BIGINT) AS v FROM order_lines",
        "SELECT COUNT(*) AS n, CAST(0 AS BIGINT) AS v FROM keel_audit",
    ] {
        let row = keel
            .db()
            .query_one_raw(Statement::from_string(keel.backend(), sql))
            .await
            .expect("checksum")
            .expect("a row");
        out.push(row.try_get::<i64>("", "n").expect("n"));
        out.push(row.try_get::<i64>("", "v").expect("v"));
    }
    out
}

fn odd_id() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_owned()),
        Just("2".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("9223372036854775808".to_owned()),
        Just("1.5".to_owned()),
        Just("abc".to_owned()),
        Just("%FF".to_owned()),
        Just("%00".to_owned()),
        Just("1%27%20OR%20%271%27%3D%271".to_owned()),
        Just("00000000-0000-0000-0000-000000000000".to_owned()),
        "[a-zA-Z0-9%._~-]{1,20}",
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("'; DROP TABLE products; --".to_owned()),
        Just("\u{0}".to_owned()),
        Just("a\u{7}b\u{1b}[0m".to_owned()),
        Just("%_!\\".to_owned()),
        Just("x".repeat(5000)),
        ".{0,40}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1e300)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(2_147_483_648_i64)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
    ]
}

/// A JSON value of any shape, nested up to a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_./~]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body aimed at a resource: its real fields with hostile values, plus
/// strays.
fn body() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("sku"),
        Just("name"),
        Just("price_cents"),
        Just("stock"),
        Just("cost_cents"),
        Just("description"),
        Just("email"),
        Just("phone"),
        Just("customer_id"),
        Just("lines"),
        Just("id"),
        Just("version"),
        Just("created_at"),
    ];
    let object = prop::collection::vec((field, any_json()), 0..6).prop_map(|pairs| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string()
    });
    prop_oneof![
        4 => object,
        1 => any_json().prop_map(|v| v.to_string()),
        1 => Just("[".repeat(10_000)),
        1 => Just("{\"sku\": ".to_owned()),
        1 => ".{0,30}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("price_cents%20%3E%201".to_owned()),
        Just("name%20%3A%20%22%25%22".to_owned()),
        Just("sku%20%3D%20%22%27%3B%20DROP%20TABLE%20products%3B%22".to_owned()),
        Just("%00".to_owned()),
        Just("(((((((((((((((((((((((((a%20%3D%201)))))))))))))))))))))))))".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("name%20desc,%20name".to_owned()),
        "[a-zA-Z0-9%._~-]{0,16}",
    ];
    let param = prop_oneof![
        Just("filter"),
        Just("order_by"),
        Just("page_size"),
        Just("page_token"),
        Just("skip"),
        Just("count"),
        Just("show_deleted"),
        Just("colour"),
    ];
    prop::collection::vec((param, value), 0..3).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[derive(Debug, Clone)]
struct Call {
    method: &'static str,
    path: String,
    body: Option<String>,
    content_type: Option<&'static str>,
    authorised: bool,
    if_match: Option<String>,
}

/// A route the shop serves (most of the time) or not (some of the time).
fn route() -> impl Strategy<Value = (&'static str, String)> {
    let id = prop_oneof![3 => Just("1".to_owned()), 2 => Just("2".to_owned()), 3 => odd_id()];
    let real = (
        prop_oneof![
            Just(("GET", "/products")),
            Just(("GET", "/products/count")),
            Just(("GET", "/products/{id}")),
            Just(("POST", "/products")),
            Just(("PATCH", "/products/{id}")),
            Just(("DELETE", "/products/{id}")),
            Just(("GET", "/products/{id}/history")),
            Just(("POST", "/products/{id}/restore")),
            Just(("GET", "/customers")),
            Just(("POST", "/customers")),
            Just(("PATCH", "/customers/{id}")),
            Just(("GET", "/customers/{id}")),
            Just(("GET", "/orders")),
            Just(("GET", "/orders/count")),
            Just(("POST", "/orders")),
            Just(("GET", "/orders/{id}")),
            Just(("POST", "/orders/{id}/cancel")),
            Just(("GET", "/health")),
            Just(("GET", "/metrics")),
        ],
        id,
    )
        .prop_map(|((method, template), id)| (method, template.replace("{id}", &id)));
    let odd = (
        prop_oneof![Just("PUT"), Just("BREW"), Just("DELETE"), Just("GET")],
        prop_oneof![
            Just("/products/1/cancel"),
            Just("/nowhere"),
            Just("/products/count/1")
        ],
    )
        .prop_map(|(m, p)| (m, p.to_owned()));
    prop_oneof![9 => real, 1 => odd]
}

fn call() -> impl Strategy<Value = Call> {
    let path = (route(), query()).prop_map(|((method, path), q)| {
        let path = if q.is_empty() {
            path
        } else {
            format!("{path}?{q}")
        };
        (method, path)
    });
    let if_match = prop_oneof![
        3 => Just(None),
        1 => prop_oneof![Just("\"1\"".to_owned()), Just("*".to_owned()), Just("W/\"x\"".to_owned()), Just(String::new()), "[ -~]{0,8}"].prop_map(Some),
    ];
    (
        path,
        prop::option::of(body()),
        prop_oneof![
            4 => Just(Some("application/json")),
            1 => Just(Some("text/plain")),
            1 => Just(None)
        ],
        prop_oneof![4 => Just(true), 1 => Just(false)],
        if_match,
    )
        .prop_map(
            |((method, path), body, content_type, authorised, if_match)| Call {
                method,
                path,
                body,
                content_type,
                authorised,
                if_match,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KEEL_HOSTILE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn on_sqlite(call in call()) {
        hostile(Backend::Sqlite, &call)?;
    }

    #[test]
    fn on_postgres_and_redis(call in call()) {
        hostile(Backend::Postgres, &call)?;
    }
}

/// Whether `value` has, at any depth, a key the shop keeps from anonymous
/// callers (a product's `cost_cents`, a customer's `phone`).
fn has_private_field(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k == "cost_cents" || k == "phone" || has_private_field(v)),
        Value::Array(items) => items.iter().any(has_private_field),
        _ => false,
    }
}

/// Sends `call`; every answer clean, anonymous ones without private
/// fields, a refused one writes nothing.
fn hostile(backend: Backend, call: &Call) -> Result<(), TestCaseError> {
    {
        let Some(shop) = shop(backend) else {
            return Ok(());
        };
        let (status, body, before, after) = shop.runtime.block_on(async {
            let mut request = Request::builder().method(call.method).uri(&call.path);
            if let Some(ct) = call.content_type {
                request = request.header("content-type", ct);
            }
            if call.authorised {
                request = request.header("authorization", format!("Bearer {TOKEN}"));
            }
            if let Some(tag) = &call.if_match
                && let Ok(value) = axum::http::HeaderValue::from_str(tag)
            {
                request = request.header("if-match", value);
            }
            let request = match request.body(Body::from(call.body.clone().unwrap_or_default())) {
                Ok(r) => r,
                // A URI the HTTP library refuses never reaches a server.
                Err(_) => return (StatusCode::BAD_REQUEST, Value::Null, vec![], vec![]),
            };
            let before = checksum(&shop.keel).await;
            let response = shop.app.clone().oneshot(request).await.expect("answered");
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("a body")
                .to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let after = checksum(&shop.keel).await;
            (status, body, before, after)
        });
        prop_assert!(
            !status.is_server_error(),
            "{call:?} answered {status}: {body}"
        );
        prop_assert!(
            call.authorised || !has_private_field(&body),
            "{call:?} showed an anonymous caller a private field: {body}"
        );
        if status.is_client_error() {
            prop_assert!(
                body["error"]["code"].is_string(),
                "{call:?} answered {status} without the envelope: {body}"
            );
            prop_assert_eq!(
                before,
                after,
                "{:?} was refused ({}) but wrote",
                call,
                status
            );
        }
    }
    Ok(())
}
