//! Reviews: reference a product through a foreign key.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A review of a product.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    /// The product reviewed.
    #[service(filter(eq))]
    pub product_id: i64,
    /// Stars.
    #[service(validate(range(min = 1, max = 5)))]
    pub stars: i32,
}

/// The product a review belongs to.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `reviews.product_id -> products.id`
    #[sea_orm(
        belongs_to = "super::product::Entity",
        from = "Column::ProductId",
        to = "super::product::Column::Id"
    )]
    Product,
}

impl ActiveModelBehavior for ActiveModel {}
