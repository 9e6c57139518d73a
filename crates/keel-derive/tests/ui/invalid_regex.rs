use keel::Service;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
#[sea_orm(table_name = "things")]

pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[service(validate(regex = "^[A-Z"))]
    pub code: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
