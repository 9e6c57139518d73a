//! Field-level validation errors with JSON pointers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One invalid field: where it is (a JSON pointer such as `/sku`), a stable
/// code (`TOO_LONG`, `OUT_OF_RANGE`, `REQUIRED`, ...) and a human message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer (RFC 6901) to the field in the request body, such as `/sku`.
    pub pointer: String,
    /// Stable machine-readable code.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// An error for a custom rule; the pointer is filled in where the rule is applied.
    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new("", code, message)
    }

    /// Builds a field error.
    pub fn new(pointer: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        FieldError {
            pointer: pointer.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The list of field errors of one rejected input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationErrors {
    errors: Vec<FieldError>,
}

impl ValidationErrors {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an error.
    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Adds an error for the field at `pointer`.
    pub fn add(&mut self, pointer: impl Into<String>, code: &str, message: impl Into<String>) {
        self.push(FieldError::new(pointer, code, message));
    }

    /// Whether there is no error.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors, in the order they were found.
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// `Ok(())` when empty, else `Err(self)`; `?` turns the list into an
    /// [`Error::Validation`](crate::Error::Validation).
    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("the input is invalid"),
            [one] if one.pointer.is_empty() => f.write_str(&one.message),
            [one] => write!(f, "{}: {}", one.pointer, one.message),
            many => write!(f, "{} fields are invalid", many.len()),
        }
    }
}

impl IntoIterator for ValidationErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}
