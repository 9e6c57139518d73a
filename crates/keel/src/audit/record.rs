//! What `#[derive(Audit)]` writes calls: one function per field. Reached
//! through `keel::__private::audit`, not part of the public API.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Change, REDACTED};

/// Records `name` if it changed.
pub fn field<T: Serialize + PartialEq>(changes: &mut Vec<Change>, name: &str, old: &T, new: &T) {
    if old != new {
        changes.push(Change {
            field: name.to_owned(),
            old: to_json(old),
            new: to_json(new),
        });
    }
}

/// Records that redacted field `name` changed, without its values.
pub fn redacted<T: PartialEq>(changes: &mut Vec<Change>, name: &str, old: &T, new: &T) {
    if old != new {
        changes.push(Change {
            field: name.to_owned(),
            old: Value::String(REDACTED.to_owned()),
            new: Value::String(REDACTED.to_owned()),
        });
    }
}

/// Adds `name` to a snapshot.
pub fn put<T: Serialize>(snapshot: &mut Map<String, Value>, name: &str, value: &T) {
    snapshot.insert(name.to_owned(), to_json(value));
}

/// Adds redacted field `name` to a snapshot.
pub fn put_redacted(snapshot: &mut Map<String, Value>, name: &str) {
    snapshot.insert(name.to_owned(), Value::String(REDACTED.to_owned()));
}

fn to_json<T: Serialize>(value: &T) -> Value {
    // Serialising a column value to JSON fails only for maps with non-string
    // keys, which no column type has.
    serde_json::to_value(value).unwrap_or(Value::Null)
}
