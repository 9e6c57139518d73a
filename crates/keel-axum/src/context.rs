//! Who is calling, for which request: the request id, the identity, the
//! deadline, and the Keel [`Context`] they make.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use keel::Context;

use crate::ApiError;

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
pub(crate) fn incoming_or_new_id(request: &Request) -> Arc<str> {
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
/// extensions, and echoes it on the response. [`RequestIdLayer`](crate::RequestIdLayer) does the
/// same as a tower layer, without the clone and box of the inner service
/// that `axum::middleware::from_fn` makes for every request.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = incoming_or_new_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = crate::panic::CURRENT_REQUEST_ID
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

/// When the request must be answered by: [`serve`](crate::serve) puts it in every
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
