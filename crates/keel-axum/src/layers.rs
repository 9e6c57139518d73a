//! [`request_id`](crate::request_id) and [`http_metrics`](crate::http_metrics)
//! as tower layers, and [`InFlightLayer`], which counts each request as
//! work a graceful shutdown waits for.
//!
//! `axum::middleware::from_fn` clones the inner service and boxes it, and
//! boxes the middleware's future, on every request. These layers do the
//! same work as the functions with neither: the inner service is called as
//! it is and its future wrapped in place.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::http::Response;
use keel::lifecycle::{Runtime, WorkGuard};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use crate::{REQUEST_ID, RequestId};

/// [`request_id`](crate::request_id) as a layer:
/// `.layer(keel_axum::RequestIdLayer)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B> Service<Request> for RequestIdService<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = RequestIdFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let id = crate::context::incoming_or_new_id(&request);
        let header = HeaderValue::from_str(&id).ok();
        request.extensions_mut().insert(RequestId(id.clone()));
        RequestIdFuture {
            inner: crate::panic::CURRENT_REQUEST_ID.scope(id, self.inner.call(request)),
            header,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestIdService`]: the inner one, with the
    /// request id in its task-local scope, stamping the id on the response.
    pub struct RequestIdFuture<F> {
        #[pin]
        inner: TaskLocalFuture<std::sync::Arc<str>, F>,
        header: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for RequestIdFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = std::task::ready!(this.inner.poll(cx))?;
        if let Some(value) = this.header.take() {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        Poll::Ready(Ok(response))
    }
}

/// [`http_metrics`](crate::http_metrics) as a layer:
/// `.layer(keel_axum::HttpMetricsLayer)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpMetricsLayer;

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService { inner }
    }
}

/// The service of [`HttpMetricsLayer`].
#[derive(Clone, Debug)]
pub struct HttpMetricsService<S> {
    inner: S,
}

impl<S, B> Service<Request> for HttpMetricsService<S>
where
    S: Service<Request, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = HttpMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = crate::ops::method_label(request.method());
        let span = http_span(&request, method, route.as_ref());
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        HttpMetricsFuture {
            inner: tracing::Instrument::instrument(inner, span.clone()),
            route,
            method,
            started: Instant::now(),
            span,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`HttpMetricsService`]: the inner one,
    /// counting and timing the response when it is ready.
    pub struct HttpMetricsFuture<F> {
        #[pin]
        inner: tracing::instrument::Instrumented<F>,
        route: Option<MatchedPath>,
        method: &'static str,
        started: Instant,
        span: tracing::Span,
    }
}

impl<F, B, E> Future for HttpMetricsFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let (counter, histogram) = crate::ops::http_handles(
            this.route.as_ref().map_or("unmatched", MatchedPath::as_str),
            this.method,
            response.status(),
        );
        counter.increment(1);
        histogram.record(this.started.elapsed().as_secs_f64());
        keel::trace::record_status(this.span, response.status().as_u16());
        Poll::Ready(Ok(response))
    }
}

/// The request's span ([`keel::trace::http_request`]), a child of the
/// caller's trace when the request has a `traceparent` header. Built only
/// when traces are collected: otherwise a disabled span, and the headers
/// are not read.
fn http_span(request: &Request, method: &str, route: Option<&MatchedPath>) -> tracing::Span {
    if !tracing::enabled!(target: "keel::span", tracing::Level::TRACE) {
        return tracing::Span::none();
    }
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
    let parent =
        keel::trace::TraceContext::from_headers(header("traceparent"), header("tracestate"));
    keel::trace::http_request(
        method,
        route.map_or("unmatched", MatchedPath::as_str),
        parent.as_ref(),
    )
}

/// Counts every request as in-flight work of a [`Runtime`] until its
/// response is ready, so that [`Runtime::drain`] waits for it:
/// `.layer(keel_axum::InFlightLayer::new(runtime.clone()))`.
#[derive(Clone, Debug)]
pub struct InFlightLayer {
    runtime: Runtime,
}

impl InFlightLayer {
    /// Requests become `runtime`'s in-flight work.
    pub fn new(runtime: Runtime) -> Self {
        InFlightLayer { runtime }
    }
}

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlightService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService {
            inner,
            runtime: self.runtime.clone(),
        }
    }
}

/// The service of [`InFlightLayer`].
#[derive(Clone, Debug)]
pub struct InFlightService<S> {
    inner: S,
    runtime: Runtime,
}

impl<S> Service<Request> for InFlightService<S>
where
    S: Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InFlightFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let guard = self.runtime.work();
        InFlightFuture {
            inner: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`InFlightService`]: the inner one, holding
    /// the work guard until the response is ready (or the request is
    /// dropped).
    pub struct InFlightFuture<F> {
        #[pin]
        inner: F,
        guard: Option<WorkGuard>,
    }
}

impl<F: Future> Future for InFlightFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        this.guard.take();
        Poll::Ready(output)
    }
}
