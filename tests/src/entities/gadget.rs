//! Gadgets: a table with a CHECK constraint (created by hand-written DDL).

use keel::Service;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A gadget whose weight the database requires to be at least 0.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
#[sea_orm(table_name = "gadgets")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i32,
    /// Weight in grams; `CHECK (weight >= 0)` in the database, no rule here.
    pub weight: i32,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The DDL of the table, per backend.
pub fn ddl(backend: sea_orm::DbBackend) -> &'static str {
    match backend {
        sea_orm::DbBackend::Postgres => {
            "CREATE TABLE gadgets (id SERIAL PRIMARY KEY, weight INTEGER NOT NULL CHECK (weight >= 0))"
        }
        sea_orm::DbBackend::MySql => {
            "CREATE TABLE gadgets (id INT AUTO_INCREMENT PRIMARY KEY, weight INT NOT NULL, CONSTRAINT weight_positive CHECK (weight >= 0))"
        }
        _ => {
            "CREATE TABLE gadgets (id INTEGER PRIMARY KEY AUTOINCREMENT, weight INTEGER NOT NULL CHECK (weight >= 0))"
        }
    }
}
