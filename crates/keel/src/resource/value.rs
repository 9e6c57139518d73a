//! Conversions between column values, query literals and JSON, driven by the
//! column's value type so each value binds with the type the column has.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{EntityTrait, ModelTrait, Value};
use serde_json::Value as Json;

/// The value type of a column, as sea-orm declares it for the model field.
pub(crate) fn column_type<E: EntityTrait>(column: E::Column) -> ArrayType {
    <E::Model as ModelTrait>::get_value_type(column)
}

/// What the query language can compare a column with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldType {
    Bool,
    Int,
    Float,
    Text,
    Uuid,
    Timestamp,
    Date,
    Other,
}

impl FieldType {
    pub(crate) fn of(ty: &ArrayType) -> FieldType {
        match ty {
            ArrayType::Bool => FieldType::Bool,
            ArrayType::TinyInt
            | ArrayType::SmallInt
            | ArrayType::Int
            | ArrayType::BigInt
            | ArrayType::TinyUnsigned
            | ArrayType::SmallUnsigned
            | ArrayType::Unsigned
            | ArrayType::BigUnsigned => FieldType::Int,
            ArrayType::Float | ArrayType::Double => FieldType::Float,
            ArrayType::String | ArrayType::Char => FieldType::Text,
            ArrayType::Uuid => FieldType::Uuid,
            ArrayType::ChronoDateTime
            | ArrayType::ChronoDateTimeUtc
            | ArrayType::ChronoDateTimeLocal
            | ArrayType::ChronoDateTimeWithTimeZone
            | ArrayType::TimeDateTime
            | ArrayType::TimeDateTimeWithTimeZone => FieldType::Timestamp,
            ArrayType::ChronoDate | ArrayType::TimeDate => FieldType::Date,
            _ => FieldType::Other,
        }
    }

    /// How the type is named in error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            FieldType::Bool => "a boolean",
            FieldType::Int => "an integer",
            FieldType::Float => "a number",
            FieldType::Text => "a string",
            FieldType::Uuid => "a UUID in quotes",
            FieldType::Timestamp => {
                "an RFC 3339 timestamp in quotes, such as \"2026-01-02T03:04:05Z\""
            }
            FieldType::Date => "a date in quotes, such as \"2026-01-02\"",
            FieldType::Other => "a value of an unsupported type",
        }
    }
}

/// The SQL NULL of the column's type.
pub(crate) fn typed_null(ty: &ArrayType) -> Option<Value> {
    Some(match ty {
        ArrayType::Bool => Value::Bool(None),
        ArrayType::TinyInt => Value::TinyInt(None),
        ArrayType::SmallInt => Value::SmallInt(None),
        ArrayType::Int => Value::Int(None),
        ArrayType::BigInt => Value::BigInt(None),
        ArrayType::TinyUnsigned => Value::TinyUnsigned(None),
        ArrayType::SmallUnsigned => Value::SmallUnsigned(None),
        ArrayType::Unsigned => Value::Unsigned(None),
        ArrayType::BigUnsigned => Value::BigUnsigned(None),
        ArrayType::Float => Value::Float(None),
        ArrayType::Double => Value::Double(None),
        ArrayType::String => Value::String(None),
        ArrayType::Char => Value::Char(None),
        ArrayType::Uuid => Value::Uuid(None),
        ArrayType::ChronoDateTime => Value::ChronoDateTime(None),
        ArrayType::ChronoDateTimeUtc => Value::ChronoDateTimeUtc(None),
        ArrayType::ChronoDateTimeLocal => Value::ChronoDateTimeLocal(None),
        ArrayType::ChronoDateTimeWithTimeZone => Value::ChronoDateTimeWithTimeZone(None),
        ArrayType::ChronoDate => Value::ChronoDate(None),
        ArrayType::TimeDate => Value::TimeDate(None),
        ArrayType::TimeDateTime => Value::TimeDateTime(None),
        ArrayType::TimeDateTimeWithTimeZone => Value::TimeDateTimeWithTimeZone(None),
        _ => return None,
    })
}

/// A timestamp in the column's type.
pub(crate) fn timestamp(ty: &ArrayType, at: DateTime<Utc>) -> Option<Value> {
    Some(match ty {
        ArrayType::ChronoDateTimeUtc => Value::ChronoDateTimeUtc(Some(at)),
        ArrayType::ChronoDateTimeWithTimeZone => {
            Value::ChronoDateTimeWithTimeZone(Some(at.fixed_offset()))
        }
        ArrayType::ChronoDateTimeLocal => Value::ChronoDateTimeLocal(Some(at.into())),
        ArrayType::ChronoDateTime => Value::ChronoDateTime(Some(at.naive_utc())),
        ArrayType::TimeDateTimeWithTimeZone => Value::TimeDateTimeWithTimeZone(Some(to_time(at)?)),
        ArrayType::TimeDateTime => {
            let t = to_time(at)?;
            Value::TimeDateTime(Some(time::PrimitiveDateTime::new(t.date(), t.time())))
        }
        _ => return None,
    })
}

fn to_time(at: DateTime<Utc>) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.timestamp_nanos_opt()?)).ok()
}

fn from_time(t: time::OffsetDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_nanos(i64::try_from(t.unix_timestamp_nanos()).ok()?).into()
}

const DATE_FORMAT: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// An integer in the column's type, if it fits.
pub(crate) fn integer(ty: &ArrayType, n: i64) -> Option<Value> {
    Some(match ty {
        ArrayType::TinyInt => Value::TinyInt(Some(n.try_into().ok()?)),
        ArrayType::SmallInt => Value::SmallInt(Some(n.try_into().ok()?)),
        ArrayType::Int => Value::Int(Some(n.try_into().ok()?)),
        ArrayType::BigInt => Value::BigInt(Some(n)),
        ArrayType::TinyUnsigned => Value::TinyUnsigned(Some(n.try_into().ok()?)),
        ArrayType::SmallUnsigned => Value::SmallUnsigned(Some(n.try_into().ok()?)),
        ArrayType::Unsigned => Value::Unsigned(Some(n.try_into().ok()?)),
        ArrayType::BigUnsigned => Value::BigUnsigned(Some(n.try_into().ok()?)),
        _ => return None,
    })
}

/// A float in the column's type.
pub(crate) fn float(ty: &ArrayType, x: f64) -> Option<Value> {
    Some(match ty {
        #[allow(clippy::cast_possible_truncation)]
        ArrayType::Float => Value::Float(Some(x as f32)),
        ArrayType::Double => Value::Double(Some(x)),
        _ => return None,
    })
}

/// Text in the column's type: strings, and the types written as strings.
pub(crate) fn text(ty: &ArrayType, s: &str) -> Option<Value> {
    Some(match ty {
        ArrayType::String => Value::String(Some(s.to_owned())),
        ArrayType::Char => {
            let mut chars = s.chars();
            let c = chars.next()?;
            if chars.next().is_some() {
                return None;
            }
            Value::Char(Some(c))
        }
        ArrayType::Uuid => Value::Uuid(Some(s.parse().ok()?)),
        ArrayType::ChronoDate => {
            Value::ChronoDate(Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?))
        }
        ArrayType::TimeDate => Value::TimeDate(Some(time::Date::parse(s, DATE_FORMAT).ok()?)),
        ArrayType::ChronoDateTime
        | ArrayType::ChronoDateTimeUtc
        | ArrayType::ChronoDateTimeLocal
        | ArrayType::ChronoDateTimeWithTimeZone
        | ArrayType::TimeDateTime
        | ArrayType::TimeDateTimeWithTimeZone => {
            let at = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
            timestamp(ty, at)?
        }
        _ => return None,
    })
}

/// A value read back as an integer (versions).
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::TinyInt(v) => v.map(i64::from),
        Value::SmallInt(v) => v.map(i64::from),
        Value::Int(v) => v.map(i64::from),
        Value::BigInt(v) => *v,
        Value::TinyUnsigned(v) => v.map(i64::from),
        Value::SmallUnsigned(v) => v.map(i64::from),
        Value::Unsigned(v) => v.map(i64::from),
        Value::BigUnsigned(v) => v.and_then(|v| i64::try_from(v).ok()),
        _ => None,
    }
}

/// Whether the value is SQL NULL.
pub(crate) fn is_null(value: &Value) -> bool {
    typed_null(&value.array_type()).is_some_and(|null| &null == value)
        || matches!(value, Value::Json(None) | Value::Bytes(None))
}

/// A column value as JSON, for page tokens. `None` for types a sort key cannot have.
pub(crate) fn to_json(value: &Value) -> Option<Json> {
    if is_null(value) {
        return Some(Json::Null);
    }
    Some(match value {
        Value::Bool(Some(b)) => Json::Bool(*b),
        Value::Float(Some(x)) => serde_json::Number::from_f64(f64::from(*x))?.into(),
        Value::Double(Some(x)) => serde_json::Number::from_f64(*x)?.into(),
        Value::String(Some(s)) => Json::String(s.clone()),
        Value::Char(Some(c)) => Json::String(c.to_string()),
        Value::Uuid(Some(u)) => Json::String(u.to_string()),
        Value::ChronoDate(Some(d)) => Json::String(d.format("%Y-%m-%d").to_string()),
        Value::ChronoDateTimeUtc(Some(t)) => Json::String(rfc3339(*t)),
        Value::ChronoDateTimeLocal(Some(t)) => Json::String(rfc3339(t.with_timezone(&Utc))),
        Value::ChronoDateTimeWithTimeZone(Some(t)) => Json::String(rfc3339(t.with_timezone(&Utc))),
        Value::ChronoDateTime(Some(t)) => Json::String(rfc3339(t.and_utc())),
        Value::TimeDateTimeWithTimeZone(Some(t)) => Json::String(rfc3339(from_time(*t)?)),
        Value::TimeDateTime(Some(t)) => Json::String(rfc3339(from_time(t.assume_utc())?)),
        Value::TimeDate(Some(d)) => Json::String(d.format(DATE_FORMAT).ok()?),
        Value::BigUnsigned(Some(n)) => Json::from(*n),
        other => Json::from(as_i64(other)?),
    })
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The inverse of [`to_json`] for a column of type `ty`.
pub(crate) fn from_json(ty: &ArrayType, json: &Json) -> Option<Value> {
    match json {
        Json::Null => typed_null(ty),
        Json::Bool(b) if *ty == ArrayType::Bool => Some(Value::Bool(Some(*b))),
        Json::Number(n) => match FieldType::of(ty) {
            FieldType::Int if *ty == ArrayType::BigUnsigned => {
                Some(Value::BigUnsigned(Some(n.as_u64()?)))
            }
            FieldType::Int => integer(ty, n.as_i64()?),
            FieldType::Float => float(ty, n.as_f64()?),
            _ => None,
        },
        Json::String(s) => text(ty, s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_each_sort_key_type() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let cases = [
            (ArrayType::Int, Value::Int(Some(-7))),
            (ArrayType::BigInt, Value::BigInt(Some(1 << 40))),
            (ArrayType::Double, Value::Double(Some(0.1))),
            // A value serde_json reads back one step off without its
            // `float_roundtrip` feature.
            (
                ArrayType::Double,
                Value::Double(Some(1_000.366_666_666_666_7)),
            ),
            (ArrayType::Float, Value::Float(Some(1000.3667))),
            (ArrayType::String, Value::String(Some("a\"b".into()))),
            (ArrayType::Bool, Value::Bool(Some(true))),
            (ArrayType::Uuid, Value::Uuid(Some(uuid::Uuid::now_v7()))),
            (
                ArrayType::ChronoDateTimeUtc,
                Value::ChronoDateTimeUtc(Some(at)),
            ),
            (ArrayType::ChronoDateTimeUtc, Value::ChronoDateTimeUtc(None)),
            (
                ArrayType::TimeDate,
                Value::TimeDate(Some(time::macros::date!(2026 - 12 - 24))),
            ),
            (
                ArrayType::TimeDateTimeWithTimeZone,
                Value::TimeDateTimeWithTimeZone(Some(
                    time::macros::datetime!(2026-01-02 03:04:05.123456 UTC),
                )),
            ),
            (
                ArrayType::ChronoDate,
                Value::ChronoDate(NaiveDate::from_ymd_opt(2026, 2, 28)),
            ),
            (ArrayType::String, Value::String(None)),
        ];
        for (ty, value) in cases {
            let json = to_json(&value).unwrap();
            assert_eq!(from_json(&ty, &json), Some(value.clone()), "{json}");
            // Through text, as a page token carries it.
            let text = serde_json::to_string(&json).unwrap();
            let back: Json = serde_json::from_str(&text).unwrap();
            assert_eq!(from_json(&ty, &back), Some(value), "{text}");
        }
    }

    #[test]
    fn integers_out_of_range_are_rejected() {
        assert_eq!(integer(&ArrayType::Int, i64::from(i32::MAX) + 1), None);
        assert_eq!(integer(&ArrayType::Int, 5), Some(Value::Int(Some(5))));
    }
}
