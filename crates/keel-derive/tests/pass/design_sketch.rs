//! The entity of the design's first section, as written there.

use keel::prelude::*;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
#[sea_orm(table_name = "products")]
#[service(name = "product", cache(ttl = "5m"), soft_delete = "deleted_at")]
pub struct Model {
    #[sea_orm(primary_key)]
    #[service(filter, sort)]            // read-only by default: it is the key
    pub id: i64,
    #[sea_orm(unique)]
    #[service(filter(eq, in), sort, validate(length(min = 1, max = 64)))]
    pub sku: String,
    pub description: Option<String>,   // PATCH: absent = keep, null = clear
    #[service(filter, sort, validate(range(min = 0)))]
    pub price_cents: i64,
    #[audit(redact)]
    pub supplier_token: String,
    #[service(version)]     pub version: i32,
    #[service(created_at)]  pub created_at: DateTimeUtc,
    #[service(updated_at)]  pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

#[allow(dead_code)]
async fn tour() -> keel::Result<()> {
    let keel = Keel::from_env().await?;
    let products = keel.service::<Entity>();
    let ctx = Context::actor("alice");
    let p = products
        .create(&ctx, NewProduct { sku: "A1".into(), description: None, price_cents: 100, supplier_token: "t".into() })
        .await?;
    let p = products.update(&ctx, p.id, ProductPatch::default().price_cents(990).if_version(p.version)).await?;
    let _page = products
        .list(&ctx, &ListQuery::new().filter("price_cents > 100").order_by("price_cents desc").page_size(20))
        .await?;
    let _ = p;
    Ok(())
}

fn main() {
    assert_eq!(Entity::REDACTED_FIELDS, ["supplier_token"]);
    assert_eq!(Entity::CACHE.ttl.as_secs(), 300);
}
