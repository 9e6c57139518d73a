//! OpenTelemetry traces across processes: an OTLP/HTTP receiver in the test
//! decodes what `shop serve` and `shop worker` export, and finds one trace
//! from `POST /orders` (continuing the caller's `traceparent`) through the
//! outbox, a relay that restarted in between, NATS and the worker, to the
//! shipment the worker writes, with each span the child of the one before.

mod common;

use std::time::Duration;

use common::{sigterm_and_wait, sigterm_child, start_with, wait_for_shipments};
use keel_tests::otlp::{Exported, grpc_receiver, receiver};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_post_orders_through_the_outbox_and_nats_to_the_worker() {
    let Some(mut nats) = keel_tests::NatsServer::start() else {
        return;
    };
    let (otlp, spans) = receiver().await;
    let nats_url = nats.url();
    let dir = std::env::temp_dir().join(format!("shop-traces-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let shop_env = [
        ("NATS_URL", nats_url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_SERVICE_NAME", "shop"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let client = reqwest::Client::new();

    // The broker is down while the order is placed: its event waits in the
    // outbox, with its trace context, through a restart of the shop.
    let server = start_with(&dir, None, &shop_env);
    let base = server.url.clone();
    let product = common::post(
        &client,
        format!("{base}/products"),
        json!({"sku": "lamp", "name": "Lamp", "price_cents": 900, "stock": 5}),
    )
    .await;
    let customer = common::post(
        &client,
        format!("{base}/customers"),
        json!({"email": "trace@example.com", "name": "Trace"}),
    )
    .await;
    nats.stop();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let placed = client
        .post(format!("{base}/orders"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"customer_id": customer["id"], "lines": [{"product_id": product["id"], "quantity": 1}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(placed.status(), 201, "{:?}", placed.text().await);
    let order: serde_json::Value = placed.json().await.unwrap();
    let order_id = order["id"].as_i64().unwrap();
    assert!(
        tokio::task::spawn_blocking(move || sigterm_and_wait(server))
            .await
            .unwrap()
            .success()
    );
    assert!(nats.restart(), "nats-server restarts");

    // The shop again (its relay publishes the stored event), and the worker.
    let restarted_env = [
        ("NATS_URL", nats_url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_SERVICE_NAME", "shop-restarted"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let server = start_with(&dir, None, &restarted_env);
    let base = server.url.clone();
    let worker_env = [
        ("NATS_URL", nats_url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_SERVICE_NAME", "shop-worker"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("KEEL_LOG_FORMAT", "json"),
    ];
    // The worker's log, to find the trace's ids on its lines.
    let log_path = dir.join("worker.log");
    let mut worker = common::command(&dir, None, &worker_env)
        .arg("worker")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("shop worker starts");
    wait_for_shipments(&client, &base, &[(order_id, "pending")]).await;
    // Stopping flushes what each process has not exported yet.
    assert!(sigterm_child(&mut worker).success());
    assert!(
        tokio::task::spawn_blocking(move || sigterm_and_wait(server))
            .await
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let all = spans.lock().unwrap().clone();
    let trace: Vec<&Exported> = all.iter().filter(|s| s.trace_id == trace_id).collect();
    let describe = || {
        trace
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}<-{} {:?}",
                    s.service, s.name, s.span_id, s.parent, s.attributes
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let find = |service: &str, name: &str| -> &Exported {
        trace
            .iter()
            .find(|s| s.service == service && s.name == name)
            .copied()
            .unwrap_or_else(|| {
                panic!(
                    "no span {name:?} of {service} in the trace:\n{}",
                    describe()
                )
            })
    };
    let by_id = |id: &str| trace.iter().find(|s| s.span_id == id).copied();
    // Walks up from `span` and says whether `ancestor` is on the way.
    let descends = |span: &Exported, ancestor: &Exported| {
        let mut at = span;
        for _ in 0..32 {
            if at.parent == ancestor.span_id {
                return true;
            }
            match by_id(&at.parent) {
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    };

    // The request, a child of the caller's span, with its route and status.
    let request = find("shop", "POST /orders");
    assert_eq!(request.parent, caller_span, "{}", describe());
    assert_eq!(request.attributes["http.route"], "/orders");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.response.status_code"], "201");
    // Inside it: the transaction, an operation, statements, the outbox write.
    let tx = find("shop", "keel.transaction");
    assert!(descends(tx, request), "{}", describe());
    let write = find("shop", "keel.outbox.write");
    assert!(descends(write, request), "{}", describe());
    let lock = find("shop", "product.get_for_update");
    assert_eq!(lock.attributes["keel.resource"], "product");
    assert_eq!(lock.attributes["keel.key"], product["id"].to_string());
    let statements: Vec<&&Exported> = trace
        .iter()
        .filter(|s| s.service == "shop" && s.attributes.contains_key("db.system.name"))
        .collect();
    assert!(
        statements.iter().any(
            |s| s.attributes.get("db.collection.name").map(String::as_str) == Some("orders")
                && s.attributes["db.operation.name"] == "INSERT"
        ),
        "{}",
        describe()
    );
    for s in &statements {
        assert!(descends(s, request), "{}", describe());
        assert!(
            s.attributes
                .values()
                .all(|v| !v.contains("trace@example.com")),
            "no value in a statement span: {:?}",
            s.attributes
        );
    }
    // The worker continues the trace: its handling is the child of the
    // publish by the restarted shop's relay (the first shop's attempts,
    // with NATS down, are spans of their own), which is in the trace of
    // the request that wrote the event.
    let process = find("shop-worker", "process shop.order.placed");
    let publish = by_id(&process.parent)
        .unwrap_or_else(|| panic!("the worker's span has no parent here:\n{}", describe()));
    assert_eq!(
        (publish.service.as_str(), publish.name.as_str()),
        ("shop-restarted", "send shop.order.placed")
    );
    assert_eq!(publish.attributes["messaging.system"], "nats");
    assert!(descends(publish, request), "{}", describe());
    // The shipment's insert is inside the worker's handling.
    let insert = trace
        .iter()
        .find(|s| {
            s.service == "shop-worker"
                && s.attributes.get("db.collection.name").map(String::as_str) == Some("shipments")
                && s.attributes.get("db.operation.name").map(String::as_str) == Some("INSERT")
        })
        .unwrap_or_else(|| panic!("no shipment insert in the trace:\n{}", describe()));
    assert!(descends(insert, process), "{}", describe());

    // The worker's log lines inside the trace carry its ids: the line of
    // the shipment's creation names the trace and the operation's span.
    let create = find("shop-worker", "shipment.create");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["operation"] == "create" && l["entity"] == "shipment")
        .unwrap_or_else(|| panic!("no log line of the shipment's creation:\n{log}"));
    assert_eq!(line["trace_id"], trace_id, "{line}");
    assert_eq!(line["span_id"], create.span_id.as_str(), "{line}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tracing the shop cannot honour stops it at start-up, naming the
/// variable; a collector that refuses costs the requests nothing, and the
/// shop still stops promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tracing_settings_fail_at_start_up_and_a_refusing_collector_costs_nothing() {
    let dir = std::env::temp_dir().join(format!("shop-traces-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    for (bad, names) in [
        (("OTEL_TRACES_SAMPLER", "sometimes"), "OTEL_TRACES_SAMPLER"),
        (("OTEL_TRACES_SAMPLER_ARG", "2"), "OTEL_TRACES_SAMPLER_ARG"),
        (
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (("OTEL_TRACES_EXPORTER", "zipkin"), "OTEL_TRACES_EXPORTER"),
        (
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            "an http:// URL",
        ),
        (
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318"),
            "asks for TLS",
        ),
    ] {
        let mut env = vec![endpoint, ("OTEL_TRACES_SAMPLER", "traceidratio")];
        env.retain(|(k, _)| *k != bad.0);
        env.push(bad);
        let out = common::command(&dir, None, &env)
            .arg("migrate")
            .output()
            .expect("shop runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?} is refused");
        assert!(stderr.contains(names), "{bad:?}: {stderr}");
    }

    // Nothing listens on this port: every export is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused = format!("http://127.0.0.1:{closed}");
    let server = start_with(
        &dir,
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", refused.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    for i in 0..50 {
        let response = client
            .post(format!("{}/products", server.url))
            .json(&json!({"sku": format!("T-{i}"), "name": "Traced", "price_cents": 1, "stock": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "50 writes took {:?} with the collector refusing",
        started.elapsed()
    );
    let stopping = std::time::Instant::now();
    assert!(
        tokio::task::spawn_blocking(move || sigterm_and_wait(server))
            .await
            .unwrap()
            .success()
    );
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "the shop took {:?} to stop",
        stopping.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`: the same spans reach a collector's
/// OTLP trace service over gRPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_grpc_too() {
    let (otlp, spans) = grpc_receiver().await;
    let dir = std::env::temp_dir().join(format!("shop-traces-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let server = start_with(
        &dir,
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "shop-grpc"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let created = reqwest::Client::new()
        .post(format!("{}/products", server.url))
        .json(&json!({"sku": "G-1", "name": "Over gRPC", "price_cents": 1, "stock": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert!(
        tokio::task::spawn_blocking(move || sigterm_and_wait(server))
            .await
            .unwrap()
            .success()
    );
    let all = spans.lock().unwrap().clone();
    let request = all
        .iter()
        .find(|s| s.name == "POST /products")
        .unwrap_or_else(|| panic!("no request span among {} spans", all.len()));
    assert_eq!(request.service, "shop-grpc");
    assert!(
        all.iter()
            .any(|s| s.name == "product.create" && s.parent == request.span_id),
        "the operation is the request's child"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
