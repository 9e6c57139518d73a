//! The JSON body extractor: the body's content type, size and syntax
//! checked as axum's `Json` does, and a body of the wrong shape answered with
//! the RFC 6901 JSON pointer of the field at fault.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use keel::Error;
use std::collections::BTreeMap;

use keel::{Resource, View};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use crate::ApiError;

/// A JSON request body deserialised into `T`.
///
/// Like axum's `Json`, it needs `Content-Type: application/json` (or a
/// `+json` type; else `415 UNSUPPORTED_MEDIA_TYPE`), stays within the body
/// limit (`413 PAYLOAD_TOO_LARGE`) and refuses malformed JSON
/// (`400 INVALID_ARGUMENT`). A body that is JSON but not a `T` is a
/// `422 VALIDATION_FAILED` whose field error points at the culprit with an
/// RFC 6901 pointer: `/lines/0/quantity` `INVALID_TYPE`, `/sku` `REQUIRED`,
/// `/colour.name` or `/a~1b` `UNKNOWN_FIELD`.
///
/// ```
/// use keel_axum::{ApiError, JsonBody};
///
/// #[derive(serde::Deserialize)]
/// struct Rename { name: String }
///
/// async fn rename(body: Result<JsonBody<Rename>, ApiError>) -> Result<String, ApiError> {
///     let JsonBody(input) = body?;
///     Ok(input.name)
/// }
/// # let _ = axum::Router::<()>::new().route("/", axum::routing::post(rename));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        parse(&bytes).map(JsonBody).map_err(ApiError::from)
    }
}

/// A JSON request body as it came: its content type and size checked as
/// [`JsonBody`] does, parsed by the handler once it knows what the caller
/// may send ([`parse_in_view`]).
pub(crate) struct JsonBytes(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::http(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "the body is larger than the limit",
                )
            } else {
                Error::invalid_argument("body", "the body could not be read").into()
            }
        })?;
        Ok(JsonBytes(bytes))
    }
}

/// Which input of a resource a body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// The create input (`New...`).
    Create,
    /// A patch (`...Patch`).
    Patch,
}

/// Parses a create or patch body of resource `E` for a caller with `view`.
/// In [`View::Public`] the private fields do not exist, for writing as for
/// reading: a body naming one is refused as naming any field the input
/// does not have (422 `UNKNOWN_FIELD`), and the refusal lists only the
/// fields the caller may send.
pub(crate) fn parse_in_view<E: Resource, T: DeserializeOwned>(
    bytes: &[u8],
    view: View,
    input: Input,
) -> Result<T, Error> {
    if view.is_public() && !E::PRIVATE_FIELDS.is_empty() {
        // Only the top level's names; a body that is not an object is
        // reported by the parse below.
        if let Ok(fields) = serde_json::from_slice::<BTreeMap<String, serde::de::IgnoredAny>>(bytes)
        {
            let allowed: Vec<&str> = E::SCHEMA
                .iter()
                .filter(|f| match input {
                    Input::Create => f.in_create,
                    Input::Patch => f.in_patch,
                })
                .filter(|f| view.shows::<E>(f.name))
                .map(|f| f.name)
                .collect();
            if let Some(name) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
                let expected: Vec<String> = allowed.iter().map(|f| format!("`{f}`")).collect();
                return Err(Error::validation(
                    format!("/{}", escape(name)),
                    "UNKNOWN_FIELD",
                    format!(
                        "unknown field `{name}`, expected one of {}",
                        expected.join(", ")
                    ),
                ));
            }
        }
    }
    parse(bytes)
}

/// `application/json`, or any `application/*+json`.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Deserialises `bytes` as a `T`, or explains why not.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| explain(&e))?;
    de.end().map_err(|e| not_json(&e))?;
    Ok(value)
}

/// `400 INVALID_ARGUMENT`: the body is not JSON at all.
fn not_json(err: &serde_json::Error) -> Error {
    Error::invalid_argument(
        "body",
        format!("the body is not valid JSON: {}", without_position(err)),
    )
}

/// serde_json's message without its ` at line 1 column 5`.
fn without_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&suffix) {
        Some(message) if err.line() > 0 => message.to_owned(),
        _ => text,
    }
}

/// A body that is JSON but not of the expected shape, as a field error
/// with the JSON pointer of the culprit.
fn explain(err: &serde_path_to_error::Error<serde_json::Error>) -> Error {
    let inner = err.inner();
    if !inner.is_data() {
        return not_json(inner);
    }
    let message = without_position(inner);
    let mut pointer: String = err
        .path()
        .iter()
        .filter_map(|segment| match segment {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .map(|token| format!("/{}", escape(&token)))
        .collect();
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('`'))
            .and_then(|rest| rest.split('`').next())
            .map(escape)
    };
    // The path of an unknown field ends with it; a missing field's is its
    // parent's.
    let mut name_it = |name: String| {
        if !pointer.ends_with(&format!("/{name}")) {
            pointer.push('/');
            pointer.push_str(&name);
        }
    };
    let code = if let Some(name) = named("unknown field ") {
        name_it(name);
        "UNKNOWN_FIELD"
    } else if let Some(name) = named("missing field ") {
        name_it(name);
        "REQUIRED"
    } else {
        "INVALID_TYPE"
    };
    Error::validation(pointer, code, message)
}

/// One reference token of an RFC 6901 pointer: `~` as `~0`, `/` as `~1`.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        quantity: i32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Order {
        sku: String,
        #[serde(default)]
        lines: Vec<Line>,
        #[serde(default)]
        tags: BTreeMap<String, i32>,
    }

    fn field(body: &str) -> (String, String, String) {
        match parse::<Order>(body.as_bytes()).unwrap_err() {
            Error::Validation(errors) => {
                let f = &errors.errors()[0];
                (f.pointer.clone(), f.code.clone(), f.message.clone())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        let (pointer, code, message) = field(r#"{"sku": "a", "colour.name": 1}"#);
        assert_eq!(
            (pointer.as_str(), code.as_str()),
            ("/colour.name", "UNKNOWN_FIELD")
        );
        assert!(
            message.starts_with("unknown field `colour.name`"),
            "{message}"
        );
        assert_eq!(field(r#"{"sku": "a", "a/b": 1}"#).0, "/a~1b");
        assert_eq!(field(r#"{"sku": "a", "m~n": 1}"#).0, "/m~0n");
        assert_eq!(
            field(r#"{"sku": "a", "lines": [{"quantity": 1}, {"quantity": "x"}]}"#),
            (
                "/lines/1/quantity".into(),
                "INVALID_TYPE".into(),
                "invalid type: string \"x\", expected i32".into()
            )
        );
        assert_eq!(
            field(r#"{"sku": "a", "lines": [{"quantity": 1, "x/y": 2}]}"#).0,
            "/lines/0/x~1y"
        );
        assert_eq!(
            field(r#"{"sku": "a", "tags": {"a/b": "x"}}"#).0,
            "/tags/a~1b"
        );
        assert_eq!(
            field(r#"{"lines": []}"#),
            (
                "/sku".into(),
                "REQUIRED".into(),
                "missing field `sku`".into()
            )
        );
        assert_eq!(field(r#"{"sku": 5}"#).0, "/sku");
    }

    #[test]
    fn malformed_json_is_an_invalid_argument() {
        for body in ["{", r#"{"sku": "a"} x"#, "", "nul"] {
            let err = parse::<Order>(body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), "INVALID_ARGUMENT", "{body:?}: {err:?}");
        }
        assert!(parse::<Order>(br#" {"sku": "a"} "#).is_ok());
    }
}
