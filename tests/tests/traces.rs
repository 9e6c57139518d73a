//! A trace across Redis Streams: an event emitted inside a traced span is
//! published by the relay with its trace context in a `traceparent` field
//! of the stream entry, and the consumer's handling is the child of the
//! publish. Tracing is set up as an application does
//! (`init_logging_with` and `TracingConfig::http`), once for this test
//! binary, exporting to an OTLP/HTTP receiver in the test.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use keel::event::DomainEvent;
use keel::outbox::{Consumer, EventsConfig, Relay, SinkKind};
use keel::telemetry::{LogFormat, TracingConfig, flush_traces, init_logging_with};
use keel::tx::TxOptions;
use keel::{Context, KeelBuilder, KeelConfig};
use keel_tests::otlp::receiver;
use keel_tests::{Backend, TestDb};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

#[derive(Serialize, Deserialize)]
struct Traced {
    n: i64,
}

impl DomainEvent for Traced {
    const TYPE: &'static str = "thing.traced";
}

#[test]
fn a_trace_crosses_redis_streams_from_the_write_to_the_consumer() {
    if !keel_tests::redis_available() {
        eprintln!("SKIPPED: no Redis");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (endpoint, spans) = runtime.block_on(receiver());
    runtime.block_on(async {
        init_logging_with(
            LogFormat::Text,
            Some(TracingConfig::http(&endpoint).expect("an http endpoint")),
        )
        .expect("tracing is set up");
        let db = TestDb::create(Backend::Sqlite).await;
        let service = format!("traces{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let prefix = format!("keel-trace-{}:", uuid::Uuid::new_v4().simple());
        let mut config = KeelConfig::new(db.url.clone());
        config.service_name = service.clone();
        let keel = KeelBuilder::from_config(config)
            .page_token_secret("traces-test-secret-0123456789abcdef")
            .events(EventsConfig::with_sink(SinkKind::Redis {
                url: keel_tests::redis_url(),
                prefix: prefix.clone(),
                max_len: 100,
            }))
            .connect()
            .await
            .unwrap();
        let consumer = Consumer::domain(&keel, "traced", |_tx, _event: Traced, _raw| async {
            Ok(())
        });
        keel::lifecycle::Component::start(&consumer).await.unwrap();

        let root = tracing::info_span!("test.request");
        keel.transaction(
            &Context::actor("alice"),
            TxOptions::new(),
            |tx| async move { tx.emit_domain(&Traced { n: 1 }) },
        )
        .instrument(root.clone())
        .await
        .unwrap();
        // Closed: exported with the rest.
        drop(root);
        Relay::new(&keel).unwrap().drain().await.unwrap();
        let started = Instant::now();
        while consumer.stats().handled < 1 {
            assert!(started.elapsed() < Duration::from_secs(10), "never handled");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        keel::lifecycle::Component::stop(&consumer).await.unwrap();

        // The stream entry carries the publish's trace context.
        let mut conn = redis::Client::open(keel_tests::redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let key = format!("{prefix}{service}.thing.traced");
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .unwrap();
        let traceparent = entries[0]
            .1
            .get("traceparent")
            .cloned()
            .expect("a traceparent field");
        let _: i64 = redis::cmd("DEL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();

        flush_traces();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let all = spans.lock().unwrap().clone();
        let find = |name: &str| {
            all.iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| {
                    panic!(
                        "no span {name:?} among {:?}",
                        all.iter().map(|s| &s.name).collect::<Vec<_>>()
                    )
                })
                .clone()
        };
        let request = find("test.request");
        let publish = find(&format!("send {service}.thing.traced"));
        let process = find(&format!("process {service}.thing.traced"));
        assert_eq!(publish.trace_id, request.trace_id);
        assert_eq!(publish.attributes["messaging.system"], "redis");
        assert_eq!(process.trace_id, request.trace_id);
        assert_eq!(
            process.parent, publish.span_id,
            "the handling is the publish's child"
        );
        assert_eq!(
            traceparent,
            format!("00-{}-{}-01", publish.trace_id, publish.span_id),
            "the stream entry names the publish span"
        );
        let _ = keel.close().await;
        db.destroy().await;
    });
}
