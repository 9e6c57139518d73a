//! A panic in a handler answers the 500 envelope, not a dropped connection.

use std::any::Any;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use crate::ApiError;

tokio::task_local! {
    /// The request id of the request being served, for what has no access
    /// to the request (the panic response).
    pub(crate) static CURRENT_REQUEST_ID: std::sync::Arc<str>;
}

/// A layer (tower-http's `CatchPanicLayer`) that turns a panic in a handler
/// into `500 INTERNAL` with the error envelope and the request id, and logs
/// it once, as a structured `error` event (target `keel_axum::panic`) with
/// the panic's message and the request id. Put it inside
/// [`request_id`](crate::request_id), so that the request id is known.
///
/// ```
/// async fn boom() -> &'static str {
///     panic!("boom")
/// }
///
/// let app: axum::Router = axum::Router::new()
///     .route("/boom", axum::routing::get(boom))
///     .layer(keel_axum::catch_panic())
///     .layer(axum::middleware::from_fn(keel_axum::request_id));
/// # let _ = app;
/// ```
pub fn catch_panic() -> CatchPanicLayer<PanicResponse> {
    CatchPanicLayer::custom(PanicResponse)
}

/// The response [`catch_panic`] gives for a panic.
#[derive(Clone, Copy, Debug, Default)]
pub struct PanicResponse;

impl ResponseForPanic for PanicResponse {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let message = err
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let request_id = CURRENT_REQUEST_ID.try_with(Clone::clone).ok();
        tracing::error!(
            target: "keel_axum::panic",
            request_id = request_id.as_deref().unwrap_or(""),
            panic = %message,
            "a handler panicked"
        );
        // The same body as any other internal error; logged once, above.
        let error = ApiError::http(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error",
        );
        match request_id {
            Some(id) => error.with_request_id(&*id),
            None => error,
        }
        .into_response()
    }
}
