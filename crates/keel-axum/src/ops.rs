//! Operations routes: health probes, Prometheus metrics, HTTP metrics.

use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel::health::{HealthCoordinator, HealthStatus};
use keel::lifecycle::BuildInfo;
use keel::metrics::Metrics;

#[derive(Clone)]
struct Ops {
    health: HealthCoordinator,
    metrics: Option<Metrics>,
}

/// `/health` (the full report: 200 when Healthy or Degraded, 503 when
/// Unhealthy), `/health/started`, `/health/live` and `/health/ready` (200
/// or 503), and, with a recorder, `/metrics` (Prometheus text). Probes read
/// the coordinator's latest snapshot; they never run a check.
pub fn ops_routes(health: HealthCoordinator, metrics: Option<Metrics>) -> Router {
    probe_routes(health.clone()).merge(report_routes(health, metrics))
}

/// `/health/started`, `/health/live` and `/health/ready` alone: what
/// orchestrators poll (Kubernetes' startup, liveness and readiness
/// probes), safe to leave public and outside rate limits (they say only
/// yes or no).
pub fn probe_routes(health: HealthCoordinator) -> Router {
    Router::new()
        .route("/health/started", get(started))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(Ops {
            health,
            metrics: None,
        })
}

/// `/health` (the full report: every check, its latency and last error)
/// and, with a recorder, `/metrics`: what operators read, worth keeping to
/// them (`Router::route_layer` with an authorisation middleware).
pub fn report_routes(health: HealthCoordinator, metrics: Option<Metrics>) -> Router {
    let mut router = Router::new().route("/health", get(report));
    if metrics.is_some() {
        router = router.route("/metrics", get(prometheus));
    }
    router.with_state(Ops { health, metrics })
}

async fn report(State(ops): State<Ops>) -> Response {
    let report = ops.health.report();
    let status = match report.status {
        HealthStatus::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    (status, Json(report)).into_response()
}

fn probe(ok: bool) -> Response {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({ "ok": ok }))).into_response()
}

async fn started(State(ops): State<Ops>) -> Response {
    probe(ops.health.is_started())
}

async fn live(State(ops): State<Ops>) -> Response {
    probe(ops.health.is_live())
}

async fn ready(State(ops): State<Ops>) -> Response {
    probe(ops.health.is_ready())
}

/// `/info`: the service's name, version, source revision, and the Keel
/// it runs on with its cargo features (`Runtime::build_info`). What an
/// operator asks first of an instance; like `/health`, worth keeping to
/// them.
pub fn info_routes(info: BuildInfo) -> Router {
    Router::new().route("/info", get(move || async move { Json(info.clone()) }))
}

async fn prometheus(State(ops): State<Ops>) -> Response {
    let text = ops
        .metrics
        .as_ref()
        .map(Metrics::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Middleware: `keel_http_requests_total{route, method, status}` and
/// `keel_http_request_duration_seconds{route, method}`, labelled with the
/// route template (`/products/{id}`), never the raw path; requests that
/// match no route are `route="unmatched"`, and a method outside HTTP's
/// standard nine is `method="other"`: what a caller sends never makes a new
/// series.
pub async fn http_metrics(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let (counter, histogram) = http_handles(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        method,
        response.status(),
    );
    counter.increment(1);
    histogram.record(started.elapsed().as_secs_f64());
    response
}

/// The counter and histogram of one route, method and status.
type HttpHandles = (metrics::Counter, metrics::Histogram);

/// The handles of one route template, by method and status.
type RouteHandles = Vec<(&'static str, StatusCode, HttpHandles)>;

/// The method as a metric label: one of the nine standard methods, or `other`.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Handles registered so far, by route template, then method and status:
/// looked up without building a metric key per request.
static HTTP_HANDLES: LazyLock<RwLock<HashMap<Box<str>, RouteHandles>>> =
    LazyLock::new(Default::default);

pub(crate) fn http_handles(route: &str, method: &'static str, status: StatusCode) -> HttpHandles {
    let cached = Metrics::is_installed();
    if cached {
        let known = HTTP_HANDLES.read().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, handles)) = known
            .get(route)
            .and_then(|v| v.iter().find(|(m, s, _)| *m == method && *s == status))
        {
            return handles.clone();
        }
    }
    let handles = (
        metrics::counter!(
            "keel_http_requests_total",
            "route" => route.to_owned(),
            "method" => method,
            "status" => status.as_u16().to_string()
        ),
        metrics::histogram!(
            "keel_http_request_duration_seconds",
            "route" => route.to_owned(),
            "method" => method
        ),
    );
    if cached {
        HTTP_HANDLES
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(route.into())
            .or_default()
            .push((method, status, handles.clone()));
    }
    handles
}
