//! Labels: keyed by a slug the client chooses, with a second unique field,
//! cached, no version.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A label, such as `rust` titled `Rust`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "labels")]
#[service(cache(ttl = "5m"))]
pub struct Model {
    /// The key, chosen by the client.
    #[sea_orm(primary_key, auto_increment = false)]
    #[service(filter, sort, validate(length(min = 1, max = 40)))]
    pub slug: String,
    /// A second unique field.
    #[sea_orm(unique)]
    #[service(filter, sort)]
    pub title: String,
    /// A colour, if any.
    #[service(filter(eq, ne, has, in))]
    pub colour: Option<String>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl NewLabel {
    /// A label `slug` titled `title`, without colour.
    pub fn new(slug: &str, title: &str) -> Self {
        NewLabel {
            slug: slug.to_owned(),
            title: title.to_owned(),
            colour: None,
        }
    }
}
