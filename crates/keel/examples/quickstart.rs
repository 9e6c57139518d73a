//! Quickstart: a product service on SQLite, no server needed.
//!
//! ```sh
//! cargo run -p keel --example quickstart
//! ```
//!
//! Set `DATABASE_URL` (`postgres://…`, `mysql://…`) to run the same program
//! against another database.

// An example binary: its `pub` items are public only so the entity module can
// be written exactly as in a library.
#![allow(unreachable_pub)]

use keel::prelude::*;
use keel::{Error, ValidationErrors};

/// The sea-orm entity, as you would write it for sea-orm alone.
mod product {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "quickstart_products")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub sku: String,
        pub name: String,
        pub description: Option<String>,
        pub price_cents: i64,
        pub version: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub created_by: String,
        pub updated_by: String,
        pub deleted_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What a client may send to create a product: no id, version, timestamps or actor.
#[derive(Clone, Debug)]
pub struct NewProduct {
    sku: String,
    name: String,
    description: Option<String>,
    price_cents: i64,
}

/// A partial update. `description: Some(None)` clears it, `None` keeps it.
#[derive(Clone, Debug, Default)]
pub struct ProductPatch {
    name: Option<String>,
    description: Option<Option<String>>,
    price_cents: Option<i64>,
    expected_version: Option<i64>,
}

/// The hand-written description of the resource (the `Service` derive will generate it).
impl Resource for product::Entity {
    type Key = i64;
    type Create = NewProduct;
    type Patch = ProductPatch;

    const NAME: &'static str = "product";
    const PLURAL: &'static str = "products";
    const COLUMNS: Columns<Self> = Columns {
        version: Some(product::Column::Version),
        created_at: Some(product::Column::CreatedAt),
        updated_at: Some(product::Column::UpdatedAt),
        created_by: Some(product::Column::CreatedBy),
        updated_by: Some(product::Column::UpdatedBy),
        deleted_at: Some(product::Column::DeletedAt),
        ..Columns::NONE
    };
    const FIELDS: &'static [Field<Self>] = &[
        Field::new("id", product::Column::Id)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("sku", product::Column::Sku)
            .filter(Ops::EQUALITY.with(Ops::HAS))
            .sortable()
            .unique(),
        Field::new("name", product::Column::Name)
            .filter(Ops::ALL)
            .sortable(),
        Field::new("description", product::Column::Description)
            .filter(Ops::EQUALITY.with(Ops::HAS)),
        Field::new("price_cents", product::Column::PriceCents)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("created_at", product::Column::CreatedAt)
            .filter(Ops::ORDERED)
            .sortable(),
    ];

    fn create_model(input: NewProduct) -> product::ActiveModel {
        use sea_orm::ActiveValue::Set;
        product::ActiveModel {
            sku: Set(input.sku),
            name: Set(input.name),
            description: Set(input.description),
            price_cents: Set(input.price_cents),
            ..Default::default()
        }
    }

    fn apply_patch(patch: ProductPatch, model: &mut product::ActiveModel) {
        use sea_orm::ActiveValue::Set;
        if let Some(v) = patch.name {
            model.name = Set(v);
        }
        if let Some(v) = patch.description {
            model.description = Set(v);
        }
        if let Some(v) = patch.price_cents {
            model.price_cents = Set(v);
        }
    }

    fn patch_version(patch: &ProductPatch) -> Option<i64> {
        patch.expected_version
    }

    fn validate_create(input: &NewProduct) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if input.sku.is_empty() || input.sku.len() > 64 {
            errors.add("/sku", "LENGTH", "must be 1 to 64 characters");
        }
        if input.price_cents < 0 {
            errors.add("/price_cents", "OUT_OF_RANGE", "must be at least 0");
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

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
            ProductPatch {
                price_cents: Some(2200),
                expected_version: Some(lamp.version.into()),
                ..Default::default()
            },
        )
        .await?;
    println!(
        "updated  price {}c, v{}, by {}",
        lamp.price_cents, lamp.version, lamp.updated_by
    );
    let lamp = products
        .update(
            &bob,
            lamp.id,
            ProductPatch {
                description: Some(None),
                ..Default::default()
            },
        )
        .await?;
    println!(
        "cleared  description -> {:?}, v{}",
        lamp.description, lamp.version
    );
    match products
        .update(
            &bob,
            lamp.id,
            ProductPatch {
                name: Some("Lamp".into()),
                expected_version: Some(1),
                ..Default::default()
            },
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
