//! Countries: String key chosen by the client, no server-owned columns, hard delete.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A country.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "countries")]
#[service(plural = "countries")]
pub struct Model {
    /// ISO code, the key.
    #[sea_orm(primary_key, auto_increment = false)]
    #[service(filter, sort, validate(length(min = 2, max = 2), regex = "^[A-Z]{2}$"))]
    pub code: String,
    /// Name.
    #[service(filter, sort)]
    pub name: String,
    /// Population in millions.
    #[service(filter, sort, validate(range(min = 0)))]
    pub population: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
