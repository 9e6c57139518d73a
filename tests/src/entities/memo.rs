//! Memos: a plain table, no version, no soft delete, no timestamps; one
//! private field.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A memo.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "memos")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    /// The text.
    #[service(filter, sort)]
    pub body: String,
    /// Who it is for, if anyone: private (see `View`).
    #[service(private, filter, sort)]
    pub recipient: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
