//! Field validation rules, on top of the `validator` crate.
//!
//! `#[derive(Service)]` turns `#[service(validate(...))]` attributes into
//! calls to these functions; each failed rule adds a [`FieldError`] with the
//! field's JSON pointer and a stable code. Not public API: generated code
//! reaches them through `keel::__private::validate`. A hand-written
//! `Resource` reports its own rules the same way, with
//! [`ValidationErrors::add`].
//!
//! | rule | code |
//! |---|---|
//! | [`length`] | `TOO_SHORT`, `TOO_LONG` |
//! | [`range`] | `OUT_OF_RANGE` |
//! | [`email`] | `INVALID_EMAIL` |
//! | [`url`] | `INVALID_URL` |
//! | [`pattern`] | `PATTERN_MISMATCH` |
//! | [`custom`] | the code the custom function chose |
//! | [`text`] | `CONTROL_CHARACTER` (every text field, without an attribute) |
//!
//! ```
//! use keel::ValidationErrors;
//! use keel::__private::validate;
//! let mut errors = ValidationErrors::new();
//! validate::length(&mut errors, "/sku", "", Some(1), Some(64));
//! validate::range(&mut errors, "/price_cents", -5_i64, Some(0), None);
//! validate::email(&mut errors, "/email", &"not-an-email");
//! let codes: Vec<_> = errors.errors().iter().map(|e| e.code.as_str()).collect();
//! assert_eq!(codes, ["TOO_SHORT", "OUT_OF_RANGE", "INVALID_EMAIL"]);
//! ```

use std::fmt::Display;

use validator::{ValidateEmail, ValidateLength, ValidateRange, ValidateRegex, ValidateUrl};

use crate::{FieldError, ValidationErrors};

/// Whether `c` is a C0 control character other than tab, line feed and
/// carriage return: what text fields and filter strings refuse.
pub fn is_forbidden_control(c: char) -> bool {
    c < ' ' && !matches!(c, '\t' | '\n' | '\r')
}

/// Text without C0 control characters other than tab, line feed and
/// carriage return. `#[derive(Service)]` checks every text field with it:
/// NUL cannot be stored in PostgreSQL text at all (and stops SQLite's
/// `LIKE`), and the others are never meant as data.
///
/// ```
/// use keel::ValidationErrors;
/// use keel::__private::validate;
/// let mut errors = ValidationErrors::new();
/// validate::text(&mut errors, "/name", "two\nlines\tare fine");
/// validate::text(&mut errors, "/note", "a\u{0}b");
/// assert_eq!(errors.errors().len(), 1);
/// assert_eq!(errors.errors()[0].code, "CONTROL_CHARACTER");
/// ```
pub fn text(errors: &mut ValidationErrors, pointer: &str, value: &str) {
    if let Some(c) = value.chars().find(|c| is_forbidden_control(*c)) {
        errors.add(
            pointer,
            "CONTROL_CHARACTER",
            format!(
                "must not contain control characters (found U+{:04X}); tab, line feed and carriage return are allowed",
                u32::from(c)
            ),
        );
    }
}

/// Length in characters (strings) or items (collections) between `min` and `max`.
pub fn length<V: ValidateLength<u64> + ?Sized>(
    errors: &mut ValidationErrors,
    pointer: &str,
    value: &V,
    min: Option<u64>,
    max: Option<u64>,
) {
    if value.validate_length(min, max, None) {
        return;
    }
    let too_short = matches!((value.length(), min), (Some(len), Some(min)) if len < min);
    let (code, message) = match (too_short, min, max) {
        (true, Some(1), _) => ("TOO_SHORT", "must not be empty".to_owned()),
        (true, Some(min), _) => (
            "TOO_SHORT",
            format!("must be at least {min} characters long"),
        ),
        (_, _, Some(max)) => ("TOO_LONG", format!("must be at most {max} characters long")),
        _ => ("TOO_SHORT", "has the wrong length".to_owned()),
    };
    errors.add(pointer, code, message);
}

/// A number between `min` and `max`, both inclusive.
pub fn range<T>(
    errors: &mut ValidationErrors,
    pointer: &str,
    value: T,
    min: Option<T>,
    max: Option<T>,
) where
    T: ValidateRange<T> + Display + Copy,
{
    if value.validate_range(min, max, None, None) {
        return;
    }
    let message = match (min, max) {
        (Some(min), Some(max)) => format!("must be between {min} and {max}"),
        (Some(min), None) => format!("must be at least {min}"),
        (None, Some(max)) => format!("must be at most {max}"),
        (None, None) => "is out of range".to_owned(),
    };
    errors.add(pointer, "OUT_OF_RANGE", message);
}

/// An email address (HTML5 rules, as the `validator` crate checks them).
pub fn email<V: ValidateEmail + ?Sized>(errors: &mut ValidationErrors, pointer: &str, value: &V) {
    if !value.validate_email() {
        errors.add(pointer, "INVALID_EMAIL", "must be an email address");
    }
}

/// An absolute URL.
pub fn url<V: ValidateUrl + ?Sized>(errors: &mut ValidationErrors, pointer: &str, value: &V) {
    if !value.validate_url() {
        errors.add(pointer, "INVALID_URL", "must be a URL");
    }
}

/// Text matching `regex` (written `pattern` in messages).
pub fn pattern<V: ValidateRegex + ?Sized>(
    errors: &mut ValidationErrors,
    pointer: &str,
    value: &V,
    regex: &regex::Regex,
) {
    if !value.validate_regex(regex) {
        errors.add(
            pointer,
            "PATTERN_MISMATCH",
            format!("must match the pattern {}", regex.as_str()),
        );
    }
}

/// The outcome of a custom rule: its error is placed at `pointer`.
pub fn custom(errors: &mut ValidationErrors, pointer: &str, outcome: Result<(), FieldError>) {
    if let Err(mut error) = outcome {
        error.pointer = pointer.to_owned();
        errors.push(error);
    }
}
