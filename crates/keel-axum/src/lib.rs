//! # keel-axum
//!
//! REST routes for Keel services on [axum](https://docs.rs/axum) 0.8.
//! [`resource`] turns a `BaseService<E>` into a `Router`:
//!
//! | route | does |
//! |---|---|
//! | `GET /{plural}` | list: `filter`, `order_by`, `page_size`, `page_token`, `skip`, `count=true` for `total_size`, `show_deleted`; answers `{"items": [...], "next_page_token": "..."}` (absent at the end) |
//! | `GET /{plural}/count` | `{"count": N}` for `filter` |
//! | `GET /{plural}/{id}` | the row; `ETag` is its version; `If-None-Match` answers 304 |
//! | `POST /{plural}` | creates: 201 with `Location` and `ETag` |
//! | `PATCH /{plural}/{id}` | a partial update; `If-Match` answers 412 on a version mismatch (400 on a resource without a version) |
//! | `DELETE /{plural}/{id}` | 204; `If-Match` as for PATCH |
//! | `GET /{plural}/{id}/history` | the audit entries, newest first, paginated |
//! | `POST /{plural}/{id}/restore` | brings back a soft-deleted row |
//!
//! Every error is the envelope `{"error": {type, code, message, details}}`
//! with its status ([`ApiError`]): malformed JSON, a wrong content type,
//! unknown or server-owned fields (with their RFC 6901 pointer, see
//! [`JsonBody`]), a non-numeric id, an unknown query parameter, a body over
//! the limit (1 MiB) are all 4xx with stable codes.
//! [`request_id`] accepts or makes the `X-Request-Id` of each request and
//! echoes it; put an [`Identity`] in the request's extensions (from your
//! authentication middleware) to set the actor and tenant, and give
//! [`routes`] an [`Authorize`] policy to decide per operation who may do
//! what (401 / 403), and [`Routes::reveal_private`] who sees the resource's
//! private fields (by default no one). [`RateLimit`] answers 429 with `Retry-After` past a
//! per-caller rate. [`ops_routes`] serves `/health`, `/health/live`,
//! `/health/ready` and `/metrics`; [`http_metrics`] counts requests by route
//! template, method and status. [`ApiDoc`] builds the OpenAPI 3.1 document
//! from the derive, and [`docs_routes`] serves it at `/openapi.json` with an
//! interactive page at `/docs` (assets built in, no network).
//!
//! ```no_run
//! # async fn demo<E>(keel: keel::Keel) where E: keel::Resource, E::Create: serde::de::DeserializeOwned, E::Patch: serde::de::DeserializeOwned {
//! let app = keel_axum::resource(keel.service::<E>())
//!     .layer(axum::middleware::from_fn(keel_axum::request_id));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! keel_axum::serve(listener, app, keel::lifecycle::shutdown_signal(), keel_axum::ServeConfig::new())
//!     .await
//!     .unwrap();
//! # }
//! ```

mod body;
mod error;
mod layers;
mod openapi;
mod ops;
mod panic;
mod rate;
mod resource;
mod serve;

pub use body::JsonBody;
pub use error::{ApiError, status_of};
pub use layers::{HttpMetricsLayer, InFlightLayer, RequestIdLayer};
pub use openapi::{ApiDoc, docs_routes, docs_routes_by_view};
pub use ops::{http_metrics, ops_routes, probe_routes, report_routes};
pub use panic::{PanicResponse, catch_panic};
pub use rate::RateLimit;
pub use resource::{
    Access, Authorize, BODY_LIMIT, Operation, Routes, etag, if_match, parse_id, resource,
    reveal_to_identified, routes, writes_need_identity,
};
pub use serve::{ServeConfig, serve};

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use keel::Context;

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request (an extension set by [`request_id`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub Arc<str>);

/// Who is calling, for which tenant: put it in the request's extensions
/// from your authentication middleware. Without it, the actor is `anonymous`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The actor, written to `created_by` / `updated_by` and the audit log.
    pub actor: String,
    /// The tenant, for tenant-scoped resources.
    pub tenant: Option<String>,
}

/// The request's id: its `X-Request-Id` if it is up to 128 visible ASCII
/// characters, a fresh UUID v7 otherwise.
fn incoming_or_new_id(request: &Request) -> Arc<str> {
    request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || {
                let mut buffer = uuid::Uuid::encode_buffer();
                Arc::from(&*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer))
            },
            Arc::from,
        )
}

/// Middleware: takes the incoming `X-Request-Id` (up to 128 visible ASCII
/// characters) or makes one (a UUID v7), puts it in the request's
/// extensions, and echoes it on the response. [`RequestIdLayer`] does the
/// same as a tower layer, without the clone and box of the inner service
/// that `axum::middleware::from_fn` makes for every request.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = incoming_or_new_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = panic::CURRENT_REQUEST_ID
        .scope(id.clone(), next.run(request))
        .await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The `{id}` segment of a route, percent-decoded. One that does not decode
/// to UTF-8 (`/products/%FF`) is `400 INVALID_ARGUMENT` in the error
/// envelope, with the request id, like every other error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(id)) => Ok(PathId(id)),
            Err(rejection) => Err(ApiError::from(rejection).for_request(&parts.extensions)),
        }
    }
}

/// When the request must be answered by: [`serve`] puts it in every
/// request's extensions (now plus the request timeout), and [`Ctx`] makes it
/// the context's deadline, so that Keel gives up on a call the client will
/// no longer wait for (`DEADLINE_EXCEEDED`) instead of holding a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestDeadline(pub tokio::time::Instant);

/// The Keel [`Context`] of a request: its [`Identity`] (or `anonymous`), its
/// [`RequestId`] (or a fresh one), and its [`RequestDeadline`] if any.
#[derive(Clone, Debug)]
pub struct Ctx(pub Context);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let identity = parts.extensions.get::<Identity>();
        let actor = identity.map_or("anonymous", |i| i.actor.as_str());
        let mut ctx = match parts.extensions.get::<RequestId>() {
            Some(RequestId(id)) => Context::for_request(actor, id.clone()),
            None => Context::actor(actor),
        };
        if let Some(tenant) = identity.and_then(|i| i.tenant.as_deref()) {
            ctx = ctx.with_tenant(tenant);
        }
        if let Some(RequestDeadline(at)) = parts.extensions.get::<RequestDeadline>() {
            ctx = ctx.with_deadline(*at);
        }
        Ok(Ctx(ctx))
    }
}

/// A fallback for paths no route matches: `404 NOT_FOUND` in the error
/// envelope (axum's own is an empty body). `Router::fallback(keel_axum::no_route)`.
pub async fn no_route(
    method: axum::http::Method,
    uri: axum::http::Uri,
    request_id: Option<axum::Extension<RequestId>>,
) -> Response {
    use axum::response::IntoResponse;
    let err = ApiError::http(
        axum::http::StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route for {method} {}", uri.path()),
    );
    match request_id {
        Some(axum::Extension(RequestId(id))) => err.with_request_id(&*id),
        None => err,
    }
    .into_response()
}

/// A fallback for a known path with another method: `405
/// METHOD_NOT_ALLOWED` in the error envelope.
/// `Router::method_not_allowed_fallback(keel_axum::wrong_method)`.
pub async fn wrong_method(
    method: axum::http::Method,
    uri: axum::http::Uri,
    request_id: Option<axum::Extension<RequestId>>,
) -> Response {
    use axum::response::IntoResponse;
    let err = ApiError::http(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{} does not take {method}", uri.path()),
    );
    match request_id {
        Some(axum::Extension(RequestId(id))) => err.with_request_id(&*id),
        None => err,
    }
    .into_response()
}
