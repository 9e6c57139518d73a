//! Tags: i32 auto-increment key, unique name, no version, hard delete.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A tag.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "tags")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i32,
    /// Unique name.
    #[sea_orm(unique)]
    #[service(filter, sort)]
    pub name: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl NewTag {
    /// A tag named `name`.
    pub fn named(name: &str) -> Self {
        NewTag {
            name: name.to_owned(),
        }
    }
}
