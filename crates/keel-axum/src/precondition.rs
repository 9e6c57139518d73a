//! ETags and `If-Match`: a row's version as HTTP preconditions.

use axum::http::{HeaderMap, HeaderValue, header};
use keel::{BaseService, Error, Resource};

use crate::ApiError;

/// The `ETag` of a row: its version, quoted (`"3"`); `None` without a
/// version column.
pub fn etag<E: Resource>(row: &E::Model) -> Option<HeaderValue> {
    BaseService::<E>::version_of(row).and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok())
}

/// What an `If-Match` / `If-None-Match` header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tag {
    /// `*`: any version.
    Any,
    /// One version: `"3"`, `W/"3"` or `3`.
    Version(i64),
}

/// Parses a precondition header: `*`, or one ETag `"3"` (also `W/"3"` or
/// a bare `3`), at most 18 digits. `None` when it is not that grammar.
fn tag(value: &HeaderValue) -> Option<Tag> {
    let text = value.to_str().ok()?;
    if text == "*" {
        return Some(Tag::Any);
    }
    let digits = match text.strip_prefix("W/").unwrap_or(text) {
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            &quoted[1..quoted.len() - 1]
        }
        bare if bare.len() == text.len() => bare,
        _ => return None,
    };
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Tag::Version)
}

/// The precondition header `name`, `400 INVALID_ARGUMENT` when malformed.
pub(crate) fn precondition_header(
    headers: &HeaderMap,
    name: header::HeaderName,
    label: &'static str,
) -> Result<Option<Tag>, ApiError> {
    match headers.get(&name) {
        None => Ok(None),
        Some(v) => tag(v).map(Some).ok_or_else(|| {
            Error::invalid_argument(
                label,
                format!("{label} must be `*` or an ETag such as \"3\""),
            )
            .into()
        }),
    }
}

/// The version an `If-Match` header expects (`"3"`, `W/"3"`, `3`); `None`
/// without one or for `*` (any version); `400 INVALID_ARGUMENT` when it is
/// not one of those.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    Ok(
        match precondition_header(headers, header::IF_MATCH, "If-Match")? {
            Some(Tag::Version(v)) => Some(v),
            Some(Tag::Any) | None => None,
        },
    )
}

/// A conflict with the version `If-Match` named is a failed precondition.
pub(crate) fn precondition(err: Error, expected: Option<i64>) -> ApiError {
    match (err, expected) {
        (Error::VersionConflict { expected, current }, Some(_)) => {
            ApiError::precondition_failed(expected, current)
        }
        (err, _) => err.into(),
    }
}
