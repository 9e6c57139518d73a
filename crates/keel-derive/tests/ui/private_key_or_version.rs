use keel::Service;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
#[sea_orm(table_name = "things")]

pub struct Model {
    #[sea_orm(primary_key)]
    #[service(private)]
    pub id: i64,
    #[service(private)]
    pub name: String,
    #[service(version, private)]
    pub version: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
