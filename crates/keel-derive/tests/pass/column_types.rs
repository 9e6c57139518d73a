//! Nullable fields, enums, JSON columns, chrono and time types.

use keel::{Audit, Resource, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Status {
    #[sea_orm(string_value = "draft")]
    Draft,
    #[sea_orm(string_value = "live")]
    Live,
}

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    #[service(filter)]
    pub status: Status,
    #[service(filter)]
    pub maybe_status: Option<Status>,
    pub payload: Json,
    pub extra: Option<Json>,
    #[service(filter, sort)]
    pub starts_at: DateTimeUtc,
    #[service(filter, sort)]
    pub local_start: DateTimeWithTimeZone,
    #[service(filter, sort)]
    pub naive: DateTime,
    #[service(filter, sort)]
    pub day: Date,
    pub opens: Option<Time>,
    #[service(filter, sort)]
    pub t_at: TimeDateTimeWithTimeZone,
    #[service(filter, sort)]
    pub t_day: Option<TimeDate>,
    #[service(filter, sort, validate(range(min = 0.0, max = 1.5)))]
    pub ratio: Option<f64>,
    #[service(filter, validate(length(max = 10)))]
    pub note: Option<String>,
    #[service(created_at)]
    pub created_at: TimeDateTimeWithTimeZone,
    #[service(updated_at)]
    pub updated_at: DateTimeWithTimeZone,
    #[sea_orm(ignore)]
    pub computed: u8,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {
    assert_eq!(Entity::NAME, "event");
    let patch = EventPatch::default().extra(None).status(Status::Live).ratio(Some(0.5));
    assert_eq!(patch.extra, Some(None));
    assert!(Entity::validate_patch(&EventPatch::default().ratio(Some(2.0))).is_err());
    assert!(Entity::validate_patch(&EventPatch::default().note(Some("0123456789A".into()))).is_err());
    assert!(Entity::validate_patch(&EventPatch::default().note(None)).is_ok());
}
