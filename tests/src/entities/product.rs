//! Products: i64 auto-increment key, soft delete, i32 version, actor columns,
//! validation rules and a redacted field.

use keel::{Audit, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A product.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "products")]
#[service(soft_delete = "deleted_at", cache(ttl = "5m"))]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    #[service(filter, sort)]
    pub id: i64,
    /// Stock-keeping unit, unique.
    #[sea_orm(unique)]
    #[service(filter(eq, ne, has), sort, validate(length(min = 1, max = 64)))]
    pub sku: String,
    /// Display name.
    #[service(filter, sort)]
    pub name: String,
    /// Optional description.
    #[service(filter(eq, ne, has))]
    pub description: Option<String>,
    /// Price.
    #[service(filter, sort, validate(range(min = 0)))]
    pub price_cents: i64,
    /// Units in stock.
    #[service(filter, sort)]
    pub stock: i32,
    /// Average rating, unknown for new products.
    #[service(filter, sort)]
    pub rating: Option<f64>,
    /// Whether it is on sale.
    #[service(filter)]
    pub active: bool,
    /// A secret of the supplier's: never shown in audit rows or events.
    #[audit(redact)]
    pub supplier_token: Option<String>,
    /// Optimistic lock.
    #[service(version)]
    pub version: i32,
    /// Created.
    #[service(created_at, filter, sort)]
    pub created_at: DateTimeUtc,
    /// Last written.
    #[service(updated_at)]
    pub updated_at: DateTimeUtc,
    /// Creator.
    #[service(created_by)]
    pub created_by: String,
    /// Last writer.
    #[service(updated_by)]
    #[audit(skip)]
    pub updated_by: String,
    /// Soft delete.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

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
            active: true,
            supplier_token: None,
        }
    }
}
