//! Fallbacks in the error envelope: no route, wrong method.

use axum::response::Response;

use crate::ApiError;

/// A fallback for paths no route matches: `404 NOT_FOUND` in the error
/// envelope (axum's own is an empty body). `Router::fallback(keel_axum::no_route)`.
pub async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    use axum::response::IntoResponse;
    ApiError::http(
        axum::http::StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route for {method} {}", uri.path()),
    )
    .into_response()
}

/// A fallback for a known path with another method: `405
/// METHOD_NOT_ALLOWED` in the error envelope.
/// `Router::method_not_allowed_fallback(keel_axum::wrong_method)`.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    use axum::response::IntoResponse;
    ApiError::http(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{} does not take {method}", uri.path()),
    )
    .into_response()
}
