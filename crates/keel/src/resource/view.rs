//! Which fields of a resource a caller sees: the read-side field policy.

use bytes::Bytes;
use serde::{Serialize, Serializer};

use super::Resource;
use crate::{Error, Result};

/// Which fields of a resource a caller may see.
///
/// A resource's private fields ([`Resource::PRIVATE_FIELDS`],
/// `#[service(private)]` with the derive) are part of the
/// [`All`](View::All) view only. In the [`Public`](View::Public) view they
/// do not exist: responses leave them out, and a filter or `order_by` that
/// names one is refused as an unknown field, so that neither the value nor
/// an order by it can be read; keel-axum also refuses them in the create
/// and patch bodies of such callers (a caller who may not read a field may
/// not write it). Which callers get which view is the application's
/// decision (keel-axum asks its routes' policy per request).
///
/// ```
/// use keel::View;
/// assert_eq!(View::default(), View::All);
/// assert!(View::Public.is_public());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Every field: what the service's own calls see.
    #[default]
    All,
    /// Every field but the private ones.
    Public,
}

impl View {
    /// Whether this view leaves the private fields out.
    pub const fn is_public(self) -> bool {
        matches!(self, View::Public)
    }

    /// Whether a caller with this view sees field `name` of resource `E`.
    pub fn shows<E: Resource>(self, name: &str) -> bool {
        !(self.is_public() && E::PRIVATE_FIELDS.contains(&name))
    }

    /// The fields of `E` this view leaves out.
    pub fn hidden<E: Resource>(self) -> &'static [&'static str] {
        if self.is_public() {
            E::PRIVATE_FIELDS
        } else {
            &[]
        }
    }

    /// `row` as this view shows it, for serialising: the private fields
    /// are left out of the [`Public`](View::Public) view.
    pub fn project<E: Resource>(self, row: &E::Model) -> Projected<'_, E::Model> {
        Projected {
            row,
            hidden: self.hidden::<E>(),
        }
    }

    /// `row` as JSON in this view (`serde_json::to_vec` of
    /// [`project`](Self::project)).
    pub fn to_json<E: Resource>(self, row: &E::Model) -> Result<Bytes> {
        project_json(row, self.hidden::<E>())
    }
}

/// A row without some of its fields, as [`View::project`] gives it: it
/// serialises as the row does, minus those fields.
#[derive(Debug)]
pub struct Projected<'a, M> {
    row: &'a M,
    hidden: &'static [&'static str],
}

impl<M: Serialize> Serialize for Projected<'_, M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        if self.hidden.is_empty() {
            return self.row.serialize(serializer);
        }
        without(self.row, self.hidden)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// `value` as a JSON value, without the top-level keys `hidden`.
fn without<M: Serialize>(
    value: &M,
    hidden: &[&str],
) -> std::result::Result<serde_json::Value, serde_json::Error> {
    let mut json = serde_json::to_value(value)?;
    if let serde_json::Value::Object(map) = &mut json {
        for name in hidden {
            // Keeps the order of the other fields (`remove` would swap).
            map.shift_remove(*name);
        }
    }
    Ok(json)
}

/// `value` as JSON bytes without the top-level keys `hidden`.
pub(crate) fn project_json<M: Serialize>(value: &M, hidden: &[&str]) -> Result<Bytes> {
    let encoded = if hidden.is_empty() {
        serde_json::to_vec(value)
    } else {
        without(value, hidden).and_then(|json| serde_json::to_vec(&json))
    };
    encoded.map(Bytes::from).map_err(Error::internal)
}
