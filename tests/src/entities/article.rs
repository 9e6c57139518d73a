//! Articles: sortable text longer than MySQL / MariaDB sort by default, a
//! `VARCHAR(1000)` title and a `TEXT` body.

use keel::Service;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// An article.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
#[sea_orm(table_name = "articles")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    /// Up to 1,000 characters (`VARCHAR(1000)`).
    #[sea_orm(column_type = "String(StringLen::N(1000))")]
    #[service(filter, sort)]
    pub title: String,
    /// Any length (`TEXT`).
    #[sea_orm(column_type = "Text")]
    #[service(sort)]
    pub body: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
