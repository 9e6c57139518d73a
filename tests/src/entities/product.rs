//! Products: i64 auto-increment key, soft delete, i32 version, actor columns.

use keel::{Columns, Field, Ops, Resource, ValidationErrors};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A product.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "products")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Stock-keeping unit, unique.
    #[sea_orm(unique)]
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Optional description.
    pub description: Option<String>,
    /// Price.
    pub price_cents: i64,
    /// Units in stock.
    pub stock: i32,
    /// Average rating, unknown for new products.
    pub rating: Option<f64>,
    /// Whether it is on sale.
    pub active: bool,
    /// Optimistic lock.
    pub version: i32,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last written.
    pub updated_at: DateTimeUtc,
    /// Creator.
    pub created_by: String,
    /// Last writer.
    pub updated_by: String,
    /// Soft delete.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Create input.
#[derive(Clone, Debug)]
pub struct NewProduct {
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Price.
    pub price_cents: i64,
    /// Stock.
    pub stock: i32,
    /// Rating.
    pub rating: Option<f64>,
}

impl NewProduct {
    /// A product with the given SKU and price, the rest defaulted.
    pub fn new(sku: impl Into<String>, price_cents: i64) -> Self {
        let sku = sku.into();
        NewProduct {
            name: format!("Product {sku}"),
            sku,
            description: None,
            price_cents,
            stock: 0,
            rating: None,
        }
    }
}

/// Patch input.
#[derive(Clone, Debug, Default)]
pub struct ProductPatch {
    /// Name.
    pub name: Option<String>,
    /// Description: `Some(None)` clears.
    pub description: Option<Option<String>>,
    /// Price.
    pub price_cents: Option<i64>,
    /// Stock.
    pub stock: Option<i32>,
    /// Rating: `Some(None)` clears.
    pub rating: Option<Option<f64>>,
    /// Active flag.
    pub active: Option<bool>,
    /// Expected version.
    pub version: Option<i64>,
}

impl Resource for Entity {
    type Key = i64;
    type Create = NewProduct;
    type Patch = ProductPatch;

    const NAME: &'static str = "product";
    const PLURAL: &'static str = "products";
    const COLUMNS: Columns<Self> = Columns {
        version: Some(Column::Version),
        created_at: Some(Column::CreatedAt),
        updated_at: Some(Column::UpdatedAt),
        created_by: Some(Column::CreatedBy),
        updated_by: Some(Column::UpdatedBy),
        deleted_at: Some(Column::DeletedAt),
        tenant: None,
    };
    const FIELDS: &'static [Field<Self>] = &[
        Field::new("id", Column::Id).filter(Ops::ORDERED).sortable(),
        Field::new("sku", Column::Sku)
            .filter(Ops::EQUALITY.with(Ops::HAS))
            .sortable()
            .unique(),
        Field::new("name", Column::Name).filter(Ops::ALL).sortable(),
        Field::new("description", Column::Description).filter(Ops::EQUALITY.with(Ops::HAS)),
        Field::new("price_cents", Column::PriceCents)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("stock", Column::Stock)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("rating", Column::Rating)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("active", Column::Active).filter(Ops::EQUALITY),
        Field::new("created_at", Column::CreatedAt)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("created_by", Column::CreatedBy),
    ];

    fn create_model(input: NewProduct) -> ActiveModel {
        ActiveModel {
            sku: Set(input.sku),
            name: Set(input.name),
            description: Set(input.description),
            price_cents: Set(input.price_cents),
            stock: Set(input.stock),
            rating: Set(input.rating),
            active: Set(true),
            ..Default::default()
        }
    }

    fn apply_patch(patch: ProductPatch, model: &mut ActiveModel) {
        if let Some(v) = patch.name {
            model.name = Set(v);
        }
        if let Some(v) = patch.description {
            model.description = Set(v);
        }
        if let Some(v) = patch.price_cents {
            model.price_cents = Set(v);
        }
        if let Some(v) = patch.stock {
            model.stock = Set(v);
        }
        if let Some(v) = patch.rating {
            model.rating = Set(v);
        }
        if let Some(v) = patch.active {
            model.active = Set(v);
        }
    }

    fn patch_version(patch: &ProductPatch) -> Option<i64> {
        patch.version
    }

    fn validate_create(input: &NewProduct) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if input.sku.is_empty() || input.sku.chars().count() > 64 {
            errors.add("/sku", "LENGTH", "must be 1 to 64 characters");
        }
        if input.price_cents < 0 {
            errors.add("/price_cents", "OUT_OF_RANGE", "must be at least 0");
        }
        errors.into_result()
    }

    fn validate_patch(patch: &ProductPatch) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if patch.price_cents.is_some_and(|p| p < 0) {
            errors.add("/price_cents", "OUT_OF_RANGE", "must be at least 0");
        }
        errors.into_result()
    }
}
