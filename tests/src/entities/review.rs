//! Reviews: reference a product through a foreign key.

use keel::{Field, Ops, Resource};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A review of a product.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The product reviewed.
    pub product_id: i64,
    /// Stars.
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

/// Create input.
#[derive(Clone, Debug)]
pub struct NewReview {
    /// Product.
    pub product_id: i64,
    /// Stars.
    pub stars: i32,
}

impl Resource for Entity {
    type Key = i64;
    type Create = NewReview;
    type Patch = NewReview;

    const NAME: &'static str = "review";
    const PLURAL: &'static str = "reviews";
    const FIELDS: &'static [Field<Self>] = &[
        Field::new("id", Column::Id).filter(Ops::ORDERED).sortable(),
        Field::new("product_id", Column::ProductId).filter(Ops::EQUALITY),
    ];

    fn create_model(input: NewReview) -> ActiveModel {
        ActiveModel {
            product_id: Set(input.product_id),
            stars: Set(input.stars),
            ..Default::default()
        }
    }

    fn apply_patch(patch: NewReview, model: &mut ActiveModel) {
        model.product_id = Set(patch.product_id);
        model.stars = Set(patch.stars);
    }
}
