//! Quickstart: a product service on SQLite, no server needed.
//!
//! (The `Resource` trait's documentation shows the same kind of impl written
//! by hand.)
//!
//! ```sh
//! cargo run -p keel-rs --example quickstart
//! ```
//!
//! Set `DATABASE_URL` (`postgres://…`, `mysql://…`) to run the same program
//! against another database.

// An example binary: its `pub` items are public only so the entity module can
// be written exactly as in a library.
#![allow(unreachable_pub)]

use keel::Error;
use keel::prelude::*;

/// A sea-orm entity plus one derive: `#[derive(Service)]` writes the
/// `Resource` impl, `NewProduct`, `ProductPatch` and `ProductService`.
mod product {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(
        Clone,
        Debug,
        PartialEq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        keel::Service,
        keel::Audit,
    )]
    #[sea_orm(table_name = "quickstart_products")]
    #[service(name = "product", soft_delete = "deleted_at")]
    pub struct Model {
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        #[sea_orm(unique)]
        #[service(filter(eq, has), sort, validate(length(min = 1, max = 64)))]
        pub sku: String,
        #[service(filter, sort)]
        pub name: String,
        #[service(filter(eq, ne, has))]
        pub description: Option<String>,
        #[service(filter, sort, validate(range(min = 0)))]
        pub price_cents: i64,
        #[service(version)]
        pub version: i32,
        #[service(created_at, filter, sort)]
        pub created_at: DateTimeUtc,
        #[service(updated_at)]
        pub updated_at: DateTimeUtc,
        #[service(created_by)]
        pub created_by: String,
        #[service(updated_by)]
        pub updated_by: String,
        pub deleted_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use product::{NewProduct, ProductPatch};

#[tokio::main]
async fn main() -> keel::Result<()> {
    let keel = Keel::from_env().await?;
    println!("database: {:?}", keel.backend());
    keel.create_table(product::Entity).await?;
    let products = keel.service::<product::Entity>();
    let alice = Context::actor("alice");

    // Start from a clean table so the program can run again.
    for p in products
        .list(&alice, &ListQuery::new().show_deleted(true).page_size(100))
        .await?
        .items
    {
        if p.deleted_at.is_none() {
            products.delete(&alice, p.id).await?;
        }
    }
    use sea_orm::EntityTrait;
    product::Entity::delete_many().exec(keel.db()).await?;

    // create
    let lamp = products
        .create(
            &alice,
            NewProduct {
                sku: "LAMP-1".into(),
                name: "Desk lamp".into(),
                description: Some("warm light".into()),
                price_cents: 2500,
            },
        )
        .await?;
    println!(
        "created  #{} {} v{} by {} at {}",
        lamp.id, lamp.sku, lamp.version, lamp.created_by, lamp.created_at
    );
    for (sku, name, price) in [
        ("MUG-1", "Mug", 900),
        ("PEN-1", "Pen", 150),
        ("DESK-1", "Desk", 19900),
    ] {
        products
            .create(
                &alice,
                NewProduct {
                    sku: sku.into(),
                    name: name.into(),
                    description: None,
                    price_cents: price,
                },
            )
            .await?;
    }

    // get / find
    let got = products.get(&alice, lamp.id).await?;
    println!("get      #{} {} {}c", got.id, got.name, got.price_cents);
    println!(
        "find #999 -> {:?}",
        products.find(&alice, 999_999).await?.map(|p| p.id)
    );
    match products.get(&alice, 999_999).await {
        Err(e) => println!("get #999 -> {}: {e}", e.code()),
        Ok(_) => unreachable!(),
    }

    // update: partial, then clear the description, then a stale version
    let bob = Context::actor("bob");
    let lamp = products
        .update(
            &bob,
            lamp.id,
            ProductPatch::default()
                .price_cents(2200)
                .if_version(lamp.version),
        )
        .await?;
    println!(
        "updated  price {}c, v{}, by {}",
        lamp.price_cents, lamp.version, lamp.updated_by
    );
    let lamp = products
        .update(&bob, lamp.id, ProductPatch::default().description(None))
        .await?;
    println!(
        "cleared  description -> {:?}, v{}",
        lamp.description, lamp.version
    );
    match products
        .update(
            &bob,
            lamp.id,
            ProductPatch::default().name("Lamp").if_version(1),
        )
        .await
    {
        Err(e @ Error::VersionConflict { .. }) => println!("stale    {}: {e}", e.code()),
        other => panic!("expected a version conflict, got {other:?}"),
    }

    // validation and unique errors
    let bad = products
        .create(
            &alice,
            NewProduct {
                sku: String::new(),
                name: "x".into(),
                description: None,
                price_cents: -1,
            },
        )
        .await;
    println!(
        "invalid  {}",
        serde_json::to_string(&bad.unwrap_err().to_envelope(Some(alice.request_id()))).unwrap()
    );
    let dup = products
        .create(
            &alice,
            NewProduct {
                sku: "MUG-1".into(),
                name: "Mug".into(),
                description: None,
                price_cents: 1,
            },
        )
        .await;
    println!("dup      {}", dup.unwrap_err());

    // list: filter, order, keyset pages
    let query = ListQuery::new()
        .filter("price_cents >= 100 AND NOT name : \"desk\"")
        .order_by("price_cents desc")
        .page_size(1);
    let first = products.list(&alice, &query).await?;
    println!(
        "list p1  {:?}",
        first.items.iter().map(|p| &p.sku).collect::<Vec<_>>()
    );
    let second = products
        .list(
            &alice,
            &query.clone().page_token(first.next_page_token.unwrap()),
        )
        .await?;
    println!(
        "list p2  {:?} (more: {})",
        second.items.iter().map(|p| &p.sku).collect::<Vec<_>>(),
        second.next_page_token.is_some()
    );
    match products
        .list(&alice, &ListQuery::new().filter("colour = \"red\""))
        .await
    {
        Err(e) => println!("bad filter -> {}: {e}", e.code()),
        Ok(_) => unreachable!(),
    }

    // count, soft delete, restore
    println!(
        "count    {}",
        products.count(&alice, &ListQuery::new()).await?
    );
    products.delete(&alice, lamp.id).await?;
    println!(
        "deleted  #{}; count {}; get -> {}",
        lamp.id,
        products.count(&alice, &ListQuery::new()).await?,
        products.get(&alice, lamp.id).await.unwrap_err().code()
    );
    println!(
        "with deleted: {}",
        products
            .count(&alice, &ListQuery::new().show_deleted(true))
            .await?
    );
    let back = products.restore(&alice, lamp.id).await?;
    println!(
        "restored #{} v{}; count {}",
        back.id,
        back.version,
        products.count(&alice, &ListQuery::new()).await?
    );

    keel.close().await?;
    Ok(())
}
