//! How the derived inputs (`NewX`, `XPatch`) read their fields from JSON,
//! beyond what serde's derive does alone:
//!
//! - an integer field takes an integral number written with a fraction or
//!   an exponent (`1177.0`, `1e3`), as JSON Schema counts it an integer,
//!   and refuses any other number (`1.5`) or one out of the type's range;
//! - a patch field whose column is not nullable refuses `null` (absent
//!   keeps the value; `null` would mean "clear", which it cannot be);
//! - an input is read from an object only: serde's derive also reads a
//!   struct from an array of its fields in order, so `[]` would be an empty
//!   patch.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Unexpected, Visitor};

/// A derived input, read field by field from a map (serde's derive, kept as
/// an inherent function with `#[serde(remote = "Self")]`).
pub trait Fields<'de>: Sized {
    /// Reads the input from a deserializer that holds a map.
    fn from_fields<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

/// Reads input `T` from an object, and from nothing else.
pub fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Fields<'de>,
{
    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Fields<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_fields(MapAccessDeserializer::new(map))
    }
}

/// An integer type a column can have.
pub trait Integer: Sized {
    /// The type's name in error messages (`i32`).
    const NAME: &'static str;
    /// The value, if it fits.
    fn from_i128(value: i128) -> Option<Self>;
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl Integer for $t {
            const NAME: &'static str = stringify!($t);
            fn from_i128(value: i128) -> Option<Self> {
                <$t>::try_from(value).ok()
            }
        }
    )*};
}

integers!(i8, i16, i32, i64, u8, u16, u32, u64);

impl<T: Integer> Integer for crate::Redacted<T> {
    const NAME: &'static str = T::NAME;
    fn from_i128(value: i128) -> Option<Self> {
        T::from_i128(value).map(crate::Redacted)
    }
}

/// An integer read from any integral JSON number.
struct Int<T>(T);

impl<'de, T: Integer> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(IntVisitor(PhantomData))
            .map(Int)
    }
}

struct IntVisitor<T>(PhantomData<T>);

impl<T: Integer> IntVisitor<T> {
    fn fit<E: de::Error>(value: i128, unexpected: Unexpected<'_>) -> Result<T, E> {
        T::from_i128(value).ok_or_else(|| E::invalid_value(unexpected, &T::NAME))
    }
}

impl<T: Integer> Visitor<'_> for IntVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", T::NAME)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Self::fit(i128::from(v), Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Self::fit(i128::from(v), Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // Every integer a column holds is below 2^64, where f64 keeps whole
        // numbers exact; `as` saturates, and the range check decides.
        #[allow(clippy::cast_possible_truncation)]
        if v.fract() == 0.0 && v.abs() < 1.9e19 {
            Self::fit(v as i128, Unexpected::Float(v))
        } else {
            Err(E::invalid_type(Unexpected::Float(v), &T::NAME))
        }
    }
}

/// A required integer field.
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    Int::deserialize(deserializer).map(|Int(v)| v)
}

/// A nullable integer field of a create input (`null` or absent: `None`).
pub fn optional_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    Option::<Int<T>>::deserialize(deserializer).map(|v| v.map(|Int(v)| v))
}

/// A patch field of a column that is not nullable: present means a value
/// (`null` is refused); absent, with `#[serde(default)]`, is `None`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// [`present`] for an integer.
pub fn present_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    integer(deserializer).map(Some)
}

/// A patch field of a nullable integer column: absent `None`, `null`
/// `Some(None)`, a number `Some(Some(n))`.
pub fn double_option_integer<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Integer,
{
    optional_integer(deserializer).map(Some)
}

/// A patch field of a nullable column: present (even `null`) is `Some`, so
/// that with `#[serde(default)]` absent is `None` and `null` is `Some(None)`.
pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Deserialize::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Input {
        #[serde(deserialize_with = "super::integer")]
        n: i32,
        #[serde(default, deserialize_with = "super::optional_integer")]
        m: Option<u8>,
        #[serde(default, deserialize_with = "super::present")]
        name: Option<String>,
        #[serde(default, deserialize_with = "super::double_option_integer")]
        k: Option<Option<i64>>,
    }

    fn read(json: &str) -> Result<Input, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_are_integers() {
        let input = read(r#"{"n": 1177.0, "m": 2e0, "k": -3.0}"#).unwrap();
        assert_eq!((input.n, input.m, input.k), (1177, Some(2), Some(Some(-3))));
        assert_eq!(read(r#"{"n": 5, "k": null}"#).unwrap().k, Some(None));
        assert_eq!(read(r#"{"n": 5}"#).unwrap().k, None);
        assert!(read(r#"{"n": 1.5}"#).unwrap_err().contains("expected i32"));
        assert!(
            read(r#"{"n": 3000000000}"#)
                .unwrap_err()
                .contains("expected i32")
        );
        assert!(read(r#"{"n": 1, "m": 256}"#).is_err());
        assert!(read(r#"{"n": 1, "m": -1.0}"#).is_err());
        assert!(read(r#"{"n": "1"}"#).is_err());
        assert!(read(r#"{"n": 1e300}"#).is_err());
    }

    #[test]
    fn a_value_that_cannot_be_cleared_refuses_null() {
        assert_eq!(
            read(r#"{"n": 1, "name": "x"}"#).unwrap().name,
            Some("x".into())
        );
        assert_eq!(read(r#"{"n": 1}"#).unwrap().name, None);
        assert!(read(r#"{"n": 1, "name": null}"#).is_err());
    }
}
