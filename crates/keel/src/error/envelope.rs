//! The wire representation of an error, shared by every transport.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Error;

/// `{"error": {...}}`: the body a transport sends for a failed call.
///
/// ```
/// let err = keel::Error::NotFound { resource: "product", id: "7".into() };
/// let body = serde_json::to_value(err.to_envelope(Some("req-1"))).unwrap();
/// assert_eq!(body["error"]["code"], "NOT_FOUND");
/// assert_eq!(body["error"]["details"]["request_id"], "req-1");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The error itself.
    pub error: ErrorBody,
}

/// The inside of an [`Envelope`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Broad category, such as `validation` or `not_found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Stable code, such as `VALIDATION_FAILED`.
    pub code: String,
    /// Client-safe message.
    pub message: String,
    /// Structured details: field errors, versions, the request id.
    pub details: Map<String, Value>,
}

impl Envelope {
    /// An envelope with no details: how a transport reports an error of its
    /// own (a malformed body, an unknown route, a rate limit) in the same
    /// shape as Keel's.
    ///
    /// ```
    /// let body = keel::Envelope::new("rate_limited", "RATE_LIMITED", "too many requests")
    ///     .with_request_id(Some("req-1"));
    /// assert_eq!(body.error.details["request_id"], "req-1");
    /// ```
    pub fn new(
        kind: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Envelope {
        Envelope {
            error: ErrorBody {
                kind: kind.into(),
                code: code.into(),
                message: message.into(),
                details: Map::new(),
            },
        }
    }

    /// Adds `details.request_id`, when there is one.
    pub fn with_request_id(mut self, request_id: Option<&str>) -> Envelope {
        if let Some(id) = request_id {
            self.error.details.insert("request_id".into(), json!(id));
        }
        self
    }
}

pub(super) fn build(err: &Error, request_id: Option<&str>) -> Envelope {
    let mut details = Map::new();
    match err {
        Error::NotFound { resource, id } => {
            details.insert("resource".into(), json!(resource));
            details.insert("id".into(), json!(id));
        }
        Error::Validation(errors) => {
            details.insert("errors".into(), json!(errors.errors()));
        }
        Error::InvalidArgument { argument, .. } => {
            details.insert("argument".into(), json!(argument));
        }
        Error::AlreadyExists { resource, field } => {
            details.insert("resource".into(), json!(resource));
            if let Some(field) = field {
                details.insert("field".into(), json!(field));
            }
        }
        Error::VersionConflict { expected, current } => {
            details.insert("expected_version".into(), json!(expected));
            details.insert("current_version".into(), json!(current));
        }
        Error::ForeignKey { resource } => {
            details.insert("resource".into(), json!(resource));
        }
        Error::Unavailable { .. }
        | Error::DeadlineExceeded
        | Error::PermissionDenied { .. }
        | Error::Aborted { .. }
        | Error::CommitOutcomeUnknown { .. }
        | Error::Rejected { .. }
        | Error::Internal { .. } => {}
    }
    if err.is_retriable() {
        details.insert("retriable".into(), json!(true));
    }
    let mut envelope = Envelope::new(err.kind(), err.code(), err.to_string());
    envelope.error.details = details;
    envelope.with_request_id(request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldError, ValidationErrors};

    #[test]
    fn validation_envelope_has_the_seed_shape() {
        let mut errors = ValidationErrors::new();
        errors.push(FieldError::new("/sku", "TOO_LONG", "at most 64 characters"));
        errors.push(FieldError::new(
            "/price_cents",
            "OUT_OF_RANGE",
            "at least 0",
        ));
        let body = serde_json::to_value(Error::Validation(errors).to_envelope(Some("r1"))).unwrap();
        assert_eq!(
            body,
            json!({"error": {
                "type": "validation",
                "code": "VALIDATION_FAILED",
                "message": "2 fields are invalid",
                "details": {
                    "errors": [
                        {"pointer": "/sku", "code": "TOO_LONG", "message": "at most 64 characters"},
                        {"pointer": "/price_cents", "code": "OUT_OF_RANGE", "message": "at least 0"}
                    ],
                    "request_id": "r1"
                }
            }})
        );
    }

    #[test]
    fn internal_envelope_carries_only_the_request_id() {
        let err = Error::internal(std::io::Error::other("password=hunter2"));
        let body = serde_json::to_value(err.to_envelope(Some("r2"))).unwrap();
        assert_eq!(body["error"]["message"], "internal error");
        assert_eq!(body["error"]["details"], json!({"request_id": "r2"}));
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn version_conflict_names_both_versions() {
        let err = Error::VersionConflict {
            expected: 3,
            current: 5,
        };
        let body = serde_json::to_value(err.to_envelope(None)).unwrap();
        assert_eq!(body["error"]["code"], "VERSION_CONFLICT");
        assert_eq!(body["error"]["details"]["expected_version"], 3);
        assert_eq!(body["error"]["details"]["current_version"], 5);
    }
}
