//! The audit log, and field-level diffs with redaction.
//!
//! Every write of a [`BaseService`](crate::BaseService) appends one row to
//! the `keel_audit` table, in the same transaction as the change: entity,
//! entity id, action, actor, tenant, request id, time, and the changed fields
//! (`[{field, old, new}]`). Fields the resource marks `#[audit(skip)]` are
//! left out; fields marked `#[audit(redact)]` are recorded as changed with
//! both values `"[redacted]"`. [`AuditLog::history`] reads a row's entries,
//! newest first. Create the table with [`Keel::migrate`](crate::Keel::migrate).
//!
//! `#[derive(Audit)]` implements the [`Audit`] trait, the same diff for any
//! struct, typed.

mod entry;
mod log;

pub use log::{AuditEntry, AuditLog, HistoryQuery};

pub(crate) use entry::Column as EntryColumn;
pub(crate) use log::{
    ENTRY_COLUMNS, append, create_table as log_table, entry_values, resource_changes, table,
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a redacted value is shown as.
pub const REDACTED: &str = "[redacted]";

/// One changed field: `{field, old, new}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The field's name.
    pub field: String,
    /// Its value before (JSON; `"[redacted]"` for redacted fields).
    pub old: Value,
    /// Its value after.
    pub new: Value,
}

/// A model whose changes can be recorded.
pub trait Audit {
    /// Names of the fields shown as `"[redacted]"`.
    const REDACTED_FIELDS: &'static [&'static str];

    /// The fields that differ between `old` and `new`, in declaration order.
    fn diff(old: &Self, new: &Self) -> Vec<Change>;

    /// The row as JSON for audit rows and event payloads: skipped fields
    /// left out, redacted fields replaced by `"[redacted]"`.
    fn snapshot(&self) -> Value;
}

/// Records `name` if it changed. Used by the derive.
pub fn field<T: Serialize + PartialEq>(changes: &mut Vec<Change>, name: &str, old: &T, new: &T) {
    if old != new {
        changes.push(Change {
            field: name.to_owned(),
            old: to_json(old),
            new: to_json(new),
        });
    }
}

/// Records that redacted field `name` changed, without its values. Used by the derive.
pub fn redacted<T: PartialEq>(changes: &mut Vec<Change>, name: &str, old: &T, new: &T) {
    if old != new {
        changes.push(Change {
            field: name.to_owned(),
            old: Value::String(REDACTED.to_owned()),
            new: Value::String(REDACTED.to_owned()),
        });
    }
}

/// Adds `name` to a snapshot. Used by the derive.
pub fn put<T: Serialize>(snapshot: &mut Map<String, Value>, name: &str, value: &T) {
    snapshot.insert(name.to_owned(), to_json(value));
}

/// Adds redacted field `name` to a snapshot. Used by the derive.
pub fn put_redacted(snapshot: &mut Map<String, Value>, name: &str) {
    snapshot.insert(name.to_owned(), Value::String(REDACTED.to_owned()));
}

fn to_json<T: Serialize>(value: &T) -> Value {
    // Serialising a column value to JSON fails only for maps with non-string
    // keys, which no column type has.
    serde_json::to_value(value).unwrap_or(Value::Null)
}
