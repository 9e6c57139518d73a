//! Serving a router with the limits a public server needs: `axum::serve`
//! sets no header-read, body-read or request timeout and no connection
//! limit, and its graceful shutdown waits for every open connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

use crate::{ApiError, RequestDeadline};

/// The limits [`serve`] puts on every connection and request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServeConfig {
    /// How long a client may take to send a request's headers; the
    /// connection is closed after it (default 10 s).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body (default 30 s):
    /// a body read that stalls past it fails, and the request is refused.
    pub body_timeout: Duration,
    /// How long a request may take in all, handler included (default 30 s):
    /// past it the client gets `503 UNAVAILABLE` and the handler is dropped.
    pub request_timeout: Duration,
    /// Most connections open at once (default 1024); further clients wait
    /// in the listen backlog until one closes.
    pub max_connections: usize,
    /// After shutdown begins, how long open connections get to finish their
    /// requests before they are closed (default 10 s).
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl ServeConfig {
    /// The defaults.
    pub fn new() -> Self {
        ServeConfig::default()
    }

    /// The defaults, with `KEEL_HTTP_HEADER_TIMEOUT_MS`,
    /// `KEEL_HTTP_BODY_TIMEOUT_MS`, `KEEL_HTTP_REQUEST_TIMEOUT_MS` and
    /// `KEEL_HTTP_MAX_CONNECTIONS` from the environment; a malformed value
    /// is `INVALID_ARGUMENT` naming the variable.
    pub fn from_env() -> keel::Result<Self> {
        let mut config = ServeConfig::default();
        let read = |name: &'static str| -> keel::Result<Option<u64>> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
                    keel::Error::invalid_argument(
                        name,
                        format!("{name} must be a positive integer, got {v:?}"),
                    )
                }),
                _ => Ok(None),
            }
        };
        if let Some(ms) = read("KEEL_HTTP_HEADER_TIMEOUT_MS")? {
            config.header_read_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = read("KEEL_HTTP_BODY_TIMEOUT_MS")? {
            config.body_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = read("KEEL_HTTP_REQUEST_TIMEOUT_MS")? {
            config.request_timeout = Duration::from_millis(ms.max(1));
        }
        if let Some(n) = read("KEEL_HTTP_MAX_CONNECTIONS")? {
            config.max_connections = usize::try_from(n).unwrap_or(usize::MAX).max(1);
        }
        Ok(config)
    }

    /// Sets [`header_read_timeout`](Self::header_read_timeout).
    #[must_use]
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// Sets [`body_timeout`](Self::body_timeout).
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`max_connections`](Self::max_connections) (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }
}

/// Serves `app` on `listener` (HTTP/1.1) until `shutdown` resolves, within
/// `config`'s limits:
///
/// - a header-read timeout per connection (hyper's), a body-read timeout
///   and a request timeout per request (tower-http's), a cap on open
///   connections;
/// - a request that times out gets the error envelope (`503 UNAVAILABLE`),
///   like every other error; the peer address is in the request's
///   extensions as `ConnectInfo<SocketAddr>` (for [`RateLimit`](crate::RateLimit));
/// - when `shutdown` resolves it stops accepting, lets open connections
///   finish their requests for at most `drain_timeout`, closes what is
///   left, and returns: a slow client cannot keep the process alive.
///
/// ```no_run
/// # async fn demo(app: axum::Router) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// keel_axum::serve(listener, app, keel::lifecycle::shutdown_signal(), keel_axum::ServeConfig::new()).await
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
    config: ServeConfig,
) -> std::io::Result<()> {
    let service = ServiceBuilder::new()
        .map_response(bare_error_as_envelope)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(RequestBodyTimeoutLayer::new(config.body_timeout))
        .service(app);
    let connections = Arc::new(Semaphore::new(config.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Forget the connections that are done.
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // A refused or reset connection, or out of descriptors:
                    // wait a little and go on, as axum::serve does.
                    tracing::debug!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let request_timeout = config.request_timeout;
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<hyper::body::Incoming>| {
                let extensions = request.extensions_mut();
                extensions.insert(ConnectInfo::<SocketAddr>(peer));
                extensions.insert(RequestDeadline(
                    tokio::time::Instant::now() + request_timeout,
                ));
                request
            })
            .service(service.clone());
        // HTTP/1.1 without upgrades (no WebSocket): a REST API needs none.
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tasks.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(config.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_timeout = ?config.drain_timeout,
            open = tasks.len(),
            "drain timeout: closing the connections still open"
        );
        // Their handlers are dropped with them: nothing keeps running on
        // behalf of a connection that is gone.
        tasks.abort_all();
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// An error status a layer answered without a body (a timeout's 503, a
/// 408) gets the error envelope, as every other error has.
fn bare_error_as_envelope(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let (code, message) = match status {
        StatusCode::SERVICE_UNAVAILABLE => ("UNAVAILABLE", "the request took too long"),
        StatusCode::REQUEST_TIMEOUT => ("REQUEST_TIMEOUT", "the request was not sent in time"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("METHOD_NOT_ALLOWED", "the route does not take this method")
        }
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no route matches the path"),
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "the body is larger than the limit"),
        status if status.is_client_error() => ("INVALID_ARGUMENT", "the request is not valid"),
        _ => ("INTERNAL", "internal error"),
    };
    let mut envelope = ApiError::http(status, code, message).into_response();
    // What the bare answer said in headers (`Allow`, `Retry-After`) stays.
    for (name, value) in response.headers() {
        if name != header::CONTENT_LENGTH && !envelope.headers().contains_key(name) {
            envelope.headers_mut().insert(name.clone(), value.clone());
        }
    }
    envelope
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of `status` without a body.
    fn bare(status: StatusCode) -> Response<Body> {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = status;
        response
    }

    #[test]
    fn bare_errors_get_the_envelope() {
        let wrapped = bare_error_as_envelope(bare(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(wrapped.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(wrapped.headers()[header::CONTENT_TYPE], "application/json");
        let ok = bare_error_as_envelope(bare(StatusCode::NO_CONTENT));
        assert!(!ok.headers().contains_key(header::CONTENT_TYPE));
        let mut not_allowed = bare(StatusCode::METHOD_NOT_ALLOWED);
        not_allowed
            .headers_mut()
            .insert(header::ALLOW, "GET,HEAD".parse().unwrap());
        let wrapped = bare_error_as_envelope(not_allowed);
        assert_eq!(wrapped.headers()[header::ALLOW], "GET,HEAD", "headers stay");
        assert_eq!(wrapped.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
