//! The `keel_audit` table.

use sea_orm::entity::prelude::*;

/// One row of `keel_audit`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "keel_audit")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub(crate) id: i64,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub(crate) entity: String,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub(crate) entity_id: String,
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub(crate) action: String,
    pub(crate) actor: String,
    pub(crate) tenant: Option<String>,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub(crate) request_id: String,
    pub(crate) at: DateTimeUtc,
    pub(crate) changes: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
