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
    /// Optimistic lock.
    #[service(version)]
    pub version: i32,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
