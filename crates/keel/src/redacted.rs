//! [`Redacted`]: a column value kept out of every `Debug`, audit row and event.

use std::fmt;
use std::ops::{Deref, DerefMut};

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr};
use sea_orm::{ColIdx, QueryResult, TryGetError, TryGetable, Value};
use serde::{Deserialize, Serialize};

/// A column value that never shows in logs: its `Debug` is `[redacted]`.
///
/// sea-orm's `DeriveEntityModel` needs the model to be `Debug`, and the
/// active model it generates is `Debug` too, so a plain `String` field
/// prints its value wherever a model, an active model or an input is
/// logged or unwrapped in a panic. Give the field the type
/// `Redacted<String>` instead: the column, its JSON and its value are the
/// same (it stores, filters, serialises and deserialises as the `String`),
/// but every `Debug` of it, derived ones included, prints `[redacted]`, and
/// `#[derive(Service, Audit)]` treat it as `#[audit(redact)]` (`"[redacted]"`
/// in audit rows and events). It is still served by the API as is: hiding
/// a field from readers is a read policy, not a type.
///
/// ```
/// use keel::Redacted;
///
/// let iban = Redacted::new(String::from("DE89370400440532013000"));
/// assert_eq!(format!("{iban:?}"), "[redacted]");
/// assert_eq!(iban.len(), 22, "the value itself is at hand");
/// assert_eq!(serde_json::to_string(&iban).unwrap(), "\"DE89370400440532013000\"");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(pub T);

impl<T> Redacted<T> {
    /// Wraps a value.
    pub const fn new(value: T) -> Self {
        Redacted(value)
    }

    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// A reference to the value.
    pub const fn get(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::audit::REDACTED)
    }
}

impl<T> Deref for Redacted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Redacted<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> From<T> for Redacted<T> {
    fn from(value: T) -> Self {
        Redacted(value)
    }
}

impl<T: Into<Value>> From<Redacted<T>> for Value {
    fn from(value: Redacted<T>) -> Value {
        value.0.into()
    }
}

impl<T: ValueType> ValueType for Redacted<T> {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        T::try_from(v).map(Redacted)
    }

    fn type_name() -> String {
        format!("Redacted<{}>", T::type_name())
    }

    fn array_type() -> ArrayType {
        T::array_type()
    }

    fn column_type() -> ColumnType {
        T::column_type()
    }

    fn enum_type_name() -> Option<&'static str> {
        T::enum_type_name()
    }
}

impl<T: Nullable> Nullable for Redacted<T> {
    fn null() -> Value {
        T::null()
    }
}

impl<T: TryGetable> TryGetable for Redacted<T> {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        T::try_get_by(res, index).map(Redacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_is_the_inner_value_everywhere_but_debug() {
        let secret = Redacted::new(String::from("hunter2"));
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some([redacted])");
        assert_eq!(Value::from(secret.clone()), Value::from("hunter2"));
        assert_eq!(
            <Redacted<String> as ValueType>::try_from(Value::from("hunter2")).unwrap(),
            secret
        );
        assert_eq!(
            <Redacted<String> as ValueType>::column_type(),
            <String as ValueType>::column_type()
        );
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, "\"hunter2\"");
        assert_eq!(
            serde_json::from_str::<Redacted<String>>(&json).unwrap(),
            secret
        );
        assert_eq!(<Redacted<i64> as Nullable>::null(), Value::BigInt(None));
    }
}
