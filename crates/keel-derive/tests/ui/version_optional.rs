use keel::Service;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
#[sea_orm(table_name = "things")]

pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[service(version)]
    pub version: Option<i32>,
    #[service(updated_by)]
    pub updated_by: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
