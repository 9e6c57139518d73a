//! `#[service(private)]` lists the field in `PRIVATE_FIELDS`; the public
//! view leaves it out of the row and out of filters and orders.

use keel::query::{Filter, OrderBy};
use keel::{QueryLimits, Resource, View};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
#[sea_orm(table_name = "suppliers")]
pub struct Model {
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    #[service(filter, sort)]
    pub name: String,
    #[service(private, filter, sort)]
    pub cost_cents: Option<i64>,
    #[service(private)]
    pub phone: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {
    assert_eq!(Entity::PRIVATE_FIELDS, ["cost_cents", "phone"]);
    let row = Model { id: 1, name: "Acme".into(), cost_cents: Some(40), phone: None };
    let public = serde_json::to_value(View::Public.project::<Entity>(&row)).unwrap();
    assert_eq!(public, serde_json::json!({"id": 1, "name": "Acme"}));
    let all = serde_json::to_value(View::All.project::<Entity>(&row)).unwrap();
    assert_eq!(all["cost_cents"], 40);
    let limits = QueryLimits::default();
    assert!(Filter::<Entity>::parse_in("cost_cents > 1", &limits, View::All).is_ok());
    let err = Filter::<Entity>::parse_in("cost_cents > 1", &limits, View::Public).unwrap_err();
    assert!(err.to_string().contains("unknown field `cost_cents`"), "{err}");
    assert!(err.to_string().ends_with("filterable fields are: id, name"), "{err}");
    assert!(OrderBy::<Entity>::parse_in("cost_cents desc", View::Public).is_err());
    assert!(OrderBy::<Entity>::parse_in("cost_cents desc", View::All).is_ok());
}
