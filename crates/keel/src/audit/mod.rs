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
pub(crate) mod record;

pub use log::{AuditEntry, AuditLog, HistoryQuery};

pub(crate) use entry::Column as EntryColumn;
#[cfg(feature = "migration")]
pub(crate) use log::drop_table as drop_log_table;
pub(crate) use log::{
    ENTRY_COLUMNS, append, create_table as log_table, entry_values, resource_changes, table,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
