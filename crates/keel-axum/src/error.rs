//! The one HTTP form of every error: the seed envelope with the right status.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keel::{Envelope, Error};
use serde_json::Value;

/// An error as the REST layer answers it: a Keel error, or one that only
/// HTTP knows (a missing token, a failed `If-Match`, a body too large, a
/// wrong content type), with the request id it belongs to.
#[derive(Debug)]
pub struct ApiError {
    kind: Kind,
    request_id: Option<String>,
}

#[derive(Debug)]
enum Kind {
    Keel(Error),
    Http {
        status: StatusCode,
        code: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        ApiError {
            kind: Kind::Keel(err),
            request_id: None,
        }
    }
}

impl ApiError {
    /// An error only HTTP knows, with its status and stable code.
    pub fn http(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            kind: Kind::Http {
                status,
                code,
                message: message.into(),
                retry_after: None,
            },
            request_id: None,
        }
    }

    /// `403 PERMISSION_DENIED`: the caller is known but may not do this.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Error::PermissionDenied {
            message: message.into(),
        }
        .into()
    }

    /// `429 RATE_LIMITED`, with `Retry-After` in whole seconds (at least 1).
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        ApiError {
            kind: Kind::Http {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "RATE_LIMITED",
                message: format!("too many requests; retry in {} s", seconds.max(1)),
                retry_after: Some(seconds.max(1)),
            },
            request_id: None,
        }
    }

    /// `401 UNAUTHENTICATED`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::http(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// `412 PRECONDITION_FAILED`: an `If-Match` that does not match.
    pub fn precondition_failed(expected: i64, current: i64) -> Self {
        Self::http(
            StatusCode::PRECONDITION_FAILED,
            "PRECONDITION_FAILED",
            format!("If-Match expected version {expected}, the current version is {current}"),
        )
    }

    /// Ties the error to a request id (echoed in the body's details).
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Ties the error to the request whose extensions these are, when
    /// [`request_id`](crate::request_id) gave it one (for middleware and
    /// extractors that answer before a handler runs).
    #[must_use]
    pub fn for_request(self, extensions: &axum::http::Extensions) -> Self {
        match extensions.get::<crate::RequestId>() {
            Some(crate::RequestId(id)) => self.with_request_id(&**id),
            None => self,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            Kind::Http { status, .. } => *status,
            Kind::Keel(err) => status_of(err),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match &self.kind {
            Kind::Http { code, .. } => code,
            Kind::Keel(err) => err.code(),
        }
    }

    /// The Keel error inside, if it is one.
    pub fn keel(&self) -> Option<&Error> {
        match &self.kind {
            Kind::Keel(err) => Some(err),
            Kind::Http { .. } => None,
        }
    }
}

/// The status of each Keel error.
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
        Error::AlreadyExists { .. }
        | Error::VersionConflict { .. }
        | Error::ForeignKey { .. }
        | Error::Aborted { .. } => StatusCode::CONFLICT,
        // The application's own codes (`Error::rejected`): a conflict with
        // the current state.
        Error::Rejected { .. } => StatusCode::CONFLICT,
        Error::Unavailable { .. } | Error::CommitOutcomeUnknown { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Error::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        // `Internal`, and any variant a later Keel adds before this crate
        // knows it: a server error, never a claim about the client's request.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        // An error made inside a request that `request_id` (or
        // `RequestIdLayer`) serves carries that request's id, without every
        // handler stamping it.
        if self.request_id.is_none() {
            self.request_id = crate::panic::CURRENT_REQUEST_ID
                .try_with(|id| id.to_string())
                .ok();
        }
        let status = self.status();
        let body = match &self.kind {
            Kind::Keel(err) => {
                if status.is_server_error() {
                    tracing::error!(
                        code = err.code(),
                        request_id = self.request_id.as_deref().unwrap_or(""),
                        error = %err,
                        cause = ?std::error::Error::source(err).map(ToString::to_string),
                        "request failed"
                    );
                }
                serde_json::to_value(err.to_envelope(self.request_id.as_deref()))
                    .unwrap_or(Value::Null)
            }
            Kind::Http { code, message, .. } => serde_json::to_value(
                Envelope::new(http_kind(status), *code, message.as_str())
                    .with_request_id(self.request_id.as_deref()),
            )
            .unwrap_or(Value::Null),
        };
        let mut response = (status, Json(body)).into_response();
        if let Kind::Http {
            retry_after: Some(seconds),
            ..
        } = &self.kind
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if let Some(id) = self
            .request_id
            .as_deref()
            .and_then(|id| HeaderValue::from_str(id).ok())
        {
            response.headers_mut().insert(crate::REQUEST_ID, id);
        }
        response
    }
}

fn http_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "unauthenticated",
        403 => "permission",
        404 => "not_found",
        405 => "invalid_argument",
        412 | 409 => "conflict",
        413 | 415 | 400 => "invalid_argument",
        429 => "rate_limited",
        _ => "internal",
    }
}

/// For handlers that take axum's own `Json`: prefer [`JsonBody`](crate::JsonBody),
/// whose shape errors carry the JSON pointer of the field at fault.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "the body must be JSON, sent with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(err) => Error::invalid_argument(
                "body",
                format!("the body is not valid JSON: {}", inner(&err.body_text())),
            )
            .into(),
            // `JsonBody` knows which field is at fault; axum's `Json` only
            // says so in text.
            JsonRejection::JsonDataError(err) => {
                Error::validation("", "INVALID_TYPE", inner(&err.body_text())).into()
            }
            JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::http(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "the body is larger than the limit",
                )
            }
            other => Error::invalid_argument("body", other.body_text()).into(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Error::invalid_argument("query", inner(&rejection.body_text())).into()
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Error::invalid_argument("id", inner(&rejection.body_text())).into()
    }
}

/// The part of an extractor's message after its generic prefix, such as
/// "unknown field `colour`, expected ..." from "Failed to deserialize ...: unknown field ...".
fn inner(text: &str) -> String {
    text.rsplit_once(": ")
        .map_or(text, |(_, rest)| rest)
        .to_owned()
}
