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
mod context;
mod error;
mod fallback;
mod handlers;
mod layers;
mod openapi;
mod ops;
mod panic;
mod policy;
mod precondition;
mod rate;
mod resource;
mod serve;

pub use body::JsonBody;
pub use context::{Ctx, Identity, PathId, REQUEST_ID, RequestDeadline, RequestId, request_id};
pub use error::{ApiError, status_of};
pub use fallback::{no_route, wrong_method};
pub use handlers::parse_id;
pub use layers::{HttpMetricsLayer, InFlightLayer, RequestIdLayer};
pub use openapi::{ApiDoc, docs_routes, docs_routes_by_view};
pub use ops::{http_metrics, info_routes, ops_routes, probe_routes, report_routes};
pub use panic::{PanicResponse, catch_panic};
pub use policy::{Access, Authorize, Operation, reveal_to_identified, writes_need_identity};
pub use precondition::{etag, if_match};
pub use rate::RateLimit;
pub use resource::{BODY_LIMIT, Routes, resource, routes};
pub use serve::{ServeConfig, serve};
