//! Primary key types.

use std::fmt::{Debug, Display};
use std::str::FromStr;

use sea_orm::Value;

/// A primary key type Keel supports: `i32`, `i64`, [`uuid::Uuid`] and `String`.
///
/// Keys are parsed from text (a URL path segment) with [`FromStr`] and shown
/// with [`Display`] in errors.
pub trait Key:
    Clone + Debug + Display + FromStr + PartialEq + Into<Value> + Send + Sync + 'static
{
    /// Reads a key back from a column value.
    fn from_value(value: Value) -> Option<Self>;
}

impl Key for i32 {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Int(v) => v,
            Value::SmallInt(v) => v.map(i32::from),
            Value::BigInt(v) => v.and_then(|v| i32::try_from(v).ok()),
            _ => None,
        }
    }
}

impl Key for i64 {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::BigInt(v) => v,
            Value::Int(v) => v.map(i64::from),
            Value::SmallInt(v) => v.map(i64::from),
            _ => None,
        }
    }
}

impl Key for uuid::Uuid {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Uuid(v) => v,
            Value::String(v) => v.and_then(|s| s.parse().ok()),
            _ => None,
        }
    }
}

impl Key for String {
    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::String(v) => v,
            _ => None,
        }
    }
}
