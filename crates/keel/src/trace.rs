//! Keel's spans, for OpenTelemetry traces (cargo feature `otel`).
//!
//! Keel opens a `tracing` span, of target [`SPAN_TARGET`] and level
//! `TRACE`, around each unit of work: the service operation (resource,
//! action, key), each transaction attempt, each cache lookup (tier, hit or
//! miss), each outbox write, each relay publish and each consumer's
//! handling of an event; keel-axum opens one per HTTP request (method, route
//! template, status). With the `otel` feature, `telemetry::init_logging`
//! exports them over OTLP when the `OTEL_*` variables ask for it, with a
//! span of each database statement (system, operation, table; never a
//! value). The names and attributes follow OpenTelemetry's semantic
//! conventions (`http.request.method`, `http.route`,
//! `http.response.status_code`, `db.system.name`, `db.operation.name`,
//! `db.collection.name`, `messaging.system`, `messaging.operation.type`,
//! `messaging.destination.name`, `messaging.message.id`), Keel's own under
//! `keel.`.
//!
//! `TRACE` keeps them away from a log subscriber at any usual level: when
//! tracing is not configured, no layer asks for them, `tracing` never
//! builds them, and they cost a cached callsite check each.
//!
//! A trace crosses processes as a W3C `traceparent` / `tracestate`: taken
//! from an incoming request's headers, stored with each event in the
//! outbox, sent as the CloudEvents distributed-tracing attributes (and a
//! NATS header, a Redis Streams field), and continued by the consumer that
//! handles the event, in whichever process and however long after.

use serde::{Deserialize, Serialize};
use tracing::Span;

/// The `tracing` target of every span Keel opens.
pub const SPAN_TARGET: &str = "keel::span";

/// A W3C trace context: where a trace continues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceContext {
    /// `00-{trace id}-{parent span id}-{flags}`.
    pub traceparent: String,
    /// Vendor entries, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The trace context of the current span, when one is being traced
    /// (`None` without the `otel` feature or outside a traced span).
    pub fn current() -> Option<TraceContext> {
        #[cfg(feature = "otel")]
        {
            otel::current()
        }
        #[cfg(not(feature = "otel"))]
        {
            None
        }
    }

    /// Reads one from headers (`traceparent`, `tracestate`); `None` when
    /// there is no well-formed `traceparent`.
    pub fn from_headers(
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) -> Option<TraceContext> {
        let traceparent = traceparent?.trim();
        if !well_formed(traceparent) {
            return None;
        }
        Some(TraceContext {
            traceparent: traceparent.to_owned(),
            tracestate: tracestate
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.len() <= 512)
                .map(str::to_owned),
        })
    }

    /// Makes `span` a child of this context (nothing without `otel`, or
    /// when the span is not traced).
    pub fn adopt(&self, span: &Span) {
        #[cfg(feature = "otel")]
        otel::set_parent(span, self);
        #[cfg(not(feature = "otel"))]
        let _ = span;
    }
}

/// `version-traceid-spanid-flags`, lowercase hex, ids not all zero.
fn well_formed(traceparent: &str) -> bool {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
        && (parts[0] != "00" || parts.len() == 4)
}

/// The span of one HTTP request a server handles (kind server), named
/// `{method} {route}` (the route template, never the path), continuing
/// the caller's trace when the request carries one. keel-axum's
/// `HttpMetricsLayer` opens it; [`record_status`] ends its story.
pub fn http_request(method: &str, route: &str, parent: Option<&TraceContext>) -> Span {
    let span = tracing::trace_span!(
        target: "keel::span",
        "keel.http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    if let Some(parent) = parent {
        parent.adopt(&span);
    }
    span
}

/// Records the response's status on an [`http_request`] span (a 5xx marks
/// it an error).
pub fn record_status(span: &Span, status: u16) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one service operation.
pub(crate) fn operation(resource: &'static str, action: &'static str) -> Span {
    tracing::trace_span!(
        target: "keel::span",
        "keel.operation",
        otel.name = %format_args!("{resource}.{action}"),
        keel.resource = resource,
        keel.action = action,
        keel.key = tracing::field::Empty,
        keel.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

/// Records the key an operation works on, on the current operation span.
pub(crate) fn record_key(key: &dyn std::fmt::Display) {
    if tracing::enabled!(target: "keel::span", tracing::Level::TRACE) {
        Span::current().record("keel.key", tracing::field::display(key));
    }
}

/// Records the outcome of an operation (and `ERROR` for a failure that is
/// the server's).
pub(crate) fn record_outcome(span: &Span, outcome: &str, server_fault: bool) {
    if span.is_disabled() {
        return;
    }
    span.record("keel.outcome", outcome);
    if server_fault {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one attempt of a transaction.
pub(crate) fn transaction_attempt(attempt: u32) -> Span {
    tracing::trace_span!(
        target: "keel::span",
        "keel.transaction",
        keel.tx.attempt = attempt,
        keel.tx.retry = attempt > 1,
        keel.outcome = tracing::field::Empty,
    )
}

/// The span of one cache lookup in `tier` (`memory` or `redis`).
pub(crate) fn cache_lookup(tier: &'static str) -> Span {
    tracing::trace_span!(
        target: "keel::span",
        "keel.cache.get",
        keel.cache.tier = tier,
        keel.cache.hit = tracing::field::Empty,
    )
}

/// The span of one outbox write of `events` events.
pub(crate) fn outbox_write(events: usize) -> Span {
    tracing::trace_span!(
        target: "keel::span",
        "keel.outbox.write",
        messaging.batch.message_count = events,
    )
}

/// The span of one publish by a relay (kind producer).
pub(crate) fn publish(system: &str, topic: &str, id: &str) -> Span {
    tracing::trace_span!(
        target: "keel::span",
        "keel.relay.publish",
        otel.name = %format_args!("send {topic}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.destination.name = topic,
        messaging.message.id = id,
        otel.status_code = tracing::field::Empty,
    )
}

/// The span of one consumer's handling of an event (kind consumer).
pub(crate) fn consume(consumer: &str, topic: &str, id: &str) -> Span {
    tracing::trace_span!(
        target: "keel::span",
        "keel.consumer.process",
        otel.name = %format_args!("process {topic}"),
        otel.kind = "consumer",
        messaging.operation.type = "process",
        messaging.consumer.group.name = consumer,
        messaging.destination.name = topic,
        messaging.message.id = id,
        keel.outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}

#[cfg(feature = "otel")]
pub(crate) mod otel {
    //! The OpenTelemetry side: trace contexts in and out of spans, and the
    //! spans of database statements.

    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer};
    use opentelemetry::{KeyValue, global};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    pub(crate) fn current() -> Option<TraceContext> {
        // Every event asks: without an exporter, answer before looking up
        // the current span.
        if !crate::telemetry::tracing_active() {
            return None;
        }
        let span = Span::current();
        if span.is_disabled() {
            return None;
        }
        let cx = span.context();
        if !cx.span().span_context().is_valid() {
            return None;
        }
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        Some(TraceContext {
            traceparent: carrier.remove("traceparent")?,
            tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
        })
    }

    pub(crate) fn set_parent(span: &Span, parent: &TraceContext) {
        if span.is_disabled() {
            return;
        }
        let mut carrier: HashMap<String, String> = HashMap::new();
        carrier.insert("traceparent".to_owned(), parent.traceparent.clone());
        if let Some(state) = &parent.tracestate {
            carrier.insert("tracestate".to_owned(), state.clone());
        }
        let cx = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(cx);
    }

    /// Records a span for one database statement that ran for `elapsed`
    /// and ended now, as a child of the current span: `db.system.name`,
    /// `db.operation.name` and `db.collection.name` from the statement's
    /// text (never its values).
    pub(crate) fn statement(
        system: &'static str,
        sql: &str,
        elapsed: std::time::Duration,
        failed: bool,
    ) {
        let span = Span::current();
        if span.is_disabled() {
            return;
        }
        let parent = span.context();
        if !parent.span().span_context().is_sampled() {
            return;
        }
        let (operation, table) = super::sql_summary(sql);
        let end = std::time::SystemTime::now();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        let name = match table {
            Some(table) => format!("{operation} {table}"),
            None => operation.to_owned(),
        };
        let mut attributes = vec![
            KeyValue::new("db.system.name", system),
            KeyValue::new("db.operation.name", operation.to_owned()),
        ];
        if let Some(table) = table {
            attributes.push(KeyValue::new("db.collection.name", table.to_owned()));
        }
        let tracer = global::tracer("keel");
        let mut otel = tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent);
        if failed {
            otel.set_status(opentelemetry::trace::Status::error("statement failed"));
        }
        otel.end_with_timestamp(end);
    }
}

#[cfg_attr(not(feature = "otel"), allow(dead_code))]
/// The operation (first keyword, upper case) and the table a statement
/// names, read from its text: `INSERT INTO t`, `UPDATE t`, `DELETE FROM
/// t`, `SELECT ... FROM t`. Quotes go; nothing else of the text is kept.
pub(crate) fn sql_summary(sql: &str) -> (&'static str, Option<&str>) {
    let mut words = sql.split_ascii_whitespace();
    let first = words.next().unwrap_or("");
    let operation = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "WITH",
        "CREATE",
        "ALTER",
        "DROP",
        "SET",
        "LISTEN",
        "NOTIFY",
    ]
    .into_iter()
    .find(|op| first.eq_ignore_ascii_case(op))
    .unwrap_or("OTHER");
    let table_after = |keyword: &str| -> Option<&str> {
        let mut words = sql.split_ascii_whitespace();
        words.find(|w| w.eq_ignore_ascii_case(keyword))?;
        let name = words.next()?;
        let name = name.trim_matches(|c| c == '"' || c == '`' || c == '(' || c == ',');
        let name = name.rsplit('.').next().unwrap_or(name);
        let name = name.trim_matches(|c| c == '"' || c == '`');
        (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .then_some(name)
    };
    let table = match operation {
        "INSERT" => table_after("INTO"),
        "UPDATE" => table_after("UPDATE"),
        "DELETE" | "SELECT" | "WITH" => table_after("FROM"),
        _ => None,
    };
    (operation, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_summarised_without_their_values() {
        assert_eq!(
            sql_summary(r#"SELECT "products"."id" FROM "products" WHERE "id" = $1"#),
            ("SELECT", Some("products"))
        );
        assert_eq!(
            sql_summary("INSERT INTO `keel_outbox` (`a`) VALUES (?)"),
            ("INSERT", Some("keel_outbox"))
        );
        assert_eq!(
            sql_summary(r#"UPDATE "public"."orders" SET "x" = 'secret'"#),
            ("UPDATE", Some("orders"))
        );
        assert_eq!(sql_summary("COMMIT"), ("COMMIT", None));
        assert_eq!(sql_summary("pragma x"), ("OTHER", None));
    }

    #[test]
    fn only_well_formed_traceparents_are_taken() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(TraceContext::from_headers(Some(good), None).is_some());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(
                TraceContext::from_headers(Some(bad), None).is_none(),
                "{bad}"
            );
        }
    }
}
