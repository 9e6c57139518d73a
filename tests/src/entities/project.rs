//! Projects: scoped to a tenant, with a derived `Resource`; cached in Redis
//! only (no in-process tier), for the strict freshness across instances.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A project of one tenant.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "projects")]
#[service(cache(ttl = "5m", l1 = false))]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    /// The tenant it belongs to: set from the context, never from input.
    #[service(tenant)]
    pub tenant: String,
    /// Name.
    #[service(filter, sort)]
    pub name: String,
    /// A short code, unique (across tenants: one index on the column).
    #[sea_orm(unique)]
    pub code: Option<String>,
    /// A handle, unique too.
    #[sea_orm(unique)]
    pub handle: Option<String>,
    /// Optimistic lock.
    #[service(version)]
    pub version: i32,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl NewProject {
    /// A project named `name`, without code or handle.
    pub fn named(name: impl Into<String>) -> Self {
        NewProject {
            name: name.into(),
            code: None,
            handle: None,
        }
    }
}
