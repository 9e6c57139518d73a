//! Tickets: derived UUID key, a string enum, a JSON column and `time` crate
//! timestamps.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting.
    #[sea_orm(string_value = "open")]
    Open,
    /// Done.
    #[sea_orm(string_value = "closed")]
    Closed,
}

/// A support ticket.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "tickets")]
pub struct Model {
    /// Key: a UUID v7 made by the service.
    #[sea_orm(primary_key, auto_increment = false)]
    #[service(filter, sort)]
    pub id: Uuid,
    /// Title.
    #[service(filter, sort, validate(length(min = 3, max = 80)))]
    pub title: String,
    /// Status.
    #[service(filter)]
    pub status: Status,
    /// Free-form data.
    pub payload: Json,
    /// Contact address.
    #[service(validate(email))]
    pub contact: Option<String>,
    /// Due date.
    #[service(filter, sort)]
    pub due: Option<TimeDate>,
    /// Optimistic lock.
    #[service(version)]
    pub version: i64,
    /// Created (a `time` timestamp).
    #[service(created_at, filter, sort)]
    pub created_at: TimeDateTimeWithTimeZone,
    /// Last written (a chrono timestamp with offset).
    #[service(updated_at)]
    pub updated_at: DateTimeWithTimeZone,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
