//! The program docs/guide.md builds, step by step: a cached, audited product
//! resource served over REST. Every Rust snippet of the guide is a part of
//! this file (a test checks it).
//!
//! ```sh
//! cargo run -p keel-axum --example guide            # serves http://127.0.0.1:3000
//! cargo run -p keel-axum --example guide -- --demo  # the service calls of the guide, then exits
//! ```

#![allow(unreachable_pub)]

// guide:entity
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
    #[sea_orm(table_name = "guide_products")]
    #[service(name = "product", soft_delete = "deleted_at", cache(ttl = "5m"))]
    pub struct Model {
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        #[sea_orm(unique)]
        #[service(filter(eq, has), sort, validate(length(min = 1, max = 64)))]
        pub sku: String,
        pub description: Option<String>, // PATCH: absent keeps, null clears
        #[service(filter, sort, validate(range(min = 0)))]
        pub price_cents: i64,
        #[service(filter, sort, validate(range(min = 0)))]
        pub stock: i32,
        #[audit(redact)]
        pub supplier_ref: Option<String>, // "[redacted]" in the audit log and events
        #[service(version)]
        pub version: i32,
        #[service(created_at)]
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
// guide:end

use std::time::Duration;

use keel::prelude::*;
use keel::tx::RetryPolicy;
use keel::{Error, HistoryQuery};
use product::{NewProduct, ProductPatch};

// guide:main
#[tokio::main]
async fn main() -> keel::Result<()> {
    // DATABASE_URL (default: the SQLite file ./keel.db), REDIS_URL (optional).
    let keel = Keel::from_env().await?;
    keel.create_table(product::Entity).await?;
    if std::env::args().any(|a| a == "--demo") {
        return demo(&keel).await;
    }

    let products = keel.service::<product::Entity>();
    let doc = keel_axum::ApiDoc::new("guide", "1.0.0")
        .resource::<product::Entity>()
        .build();
    let app = keel_axum::routes(products)
        .authorize(keel_axum::writes_need_identity)
        .into_router()
        .merge(keel_axum::docs_routes(doc))
        .layer(axum::middleware::from_fn(authenticate))
        .layer(axum::middleware::from_fn(keel_axum::request_id));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .map_err(Error::internal)?;
    println!("serving http://127.0.0.1:3000/products, docs at /docs");
    // Header, body and request timeouts, a connection cap, a bounded drain.
    let limits = keel_axum::ServeConfig::new();
    keel_axum::serve(listener, app, keel::lifecycle::shutdown_signal(), limits)
        .await
        .map_err(Error::internal)
}
// guide:end

// guide:auth
/// Who is calling: here, anyone who sends `Authorization: Bearer <name>` is
/// `<name>`. A real app checks a token or a session; Keel only needs the
/// `Identity` in the request's extensions.
async fn authenticate(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let actor = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some(actor) = actor {
        request.extensions_mut().insert(keel_axum::Identity {
            actor,
            tenant: None,
        });
    }
    next.run(request).await
}
// guide:end

/// The service calls of the guide's section 4, in order.
async fn demo(keel: &Keel) -> keel::Result<()> {
    let incoming_id = "req-1";
    // guide:service
    let products = keel.service::<product::Entity>(); // cheap to clone, share it
    let ctx = Context::actor("alice")
        .with_request_id(incoming_id)
        .with_timeout(Duration::from_secs(2));
    let lamp = products
        .create(
            &ctx,
            NewProduct {
                sku: format!("LAMP-{}", uuid::Uuid::new_v4().simple()),
                description: None,
                price_cents: 2500,
                stock: 10,
                supplier_ref: Some("ACME-7".into()),
            },
        )
        .await?;
    let lamp = products
        .update(
            &ctx,
            lamp.id,
            ProductPatch::default()
                .price_cents(2200)
                .if_version(lamp.version),
        )
        .await?; // VERSION_CONFLICT if someone wrote first
    let page = products
        .list(
            &ctx,
            &ListQuery::new()
                .filter("price_cents > 1000 AND sku : \"lamp\"")
                .order_by("price_cents desc"),
        )
        .await?; // page.next_page_token continues it
    // guide:end
    println!(
        "lamp v{} at {}c; {} on the first page",
        lamp.version,
        lamp.price_cents,
        page.items.len()
    );

    // guide:history
    let page = keel
        .audit_log()
        .history::<product::Entity>(&ctx, lamp.id, &HistoryQuery::default())
        .await?;
    for entry in page.items {
        println!("{} {} by {}", entry.at, entry.action, entry.actor);
    }
    // guide:end

    let id = lamp.id;
    // guide:transaction
    let options = TxOptions::new().retry(RetryPolicy::attempts(5));
    keel.transaction(&ctx, options, |tx| async move {
        let products = tx.service::<product::Entity>();
        let p = products.get_for_update(tx.context(), id).await?;
        if p.stock < 1 {
            return Err(Error::rejected("INSUFFICIENT_STOCK", "sold out"));
        }
        let patch = ProductPatch::default().stock(p.stock - 1);
        products.update(tx.context(), id, patch).await?;
        Ok(())
    })
    .await?;
    // guide:end
    println!("stock now {}", products.get(&ctx, id).await?.stock);
    keel.close().await
}

/// The guide's "Migrations": Keel's tables in a sea-orm-migration
/// `Migrator`, before the application's own (compiled here; the shop's
/// `src/migrate.rs` runs a complete one).
#[allow(dead_code)]
mod migrations {
    use keel::{KeelBuilder, KeelConfig};
    use sea_orm_migration::prelude::*;

    mod m20270101_000001_products {
        use sea_orm_migration::prelude::*;

        /// The products table, as `Keel::create_table` makes it.
        pub struct Migration;

        impl MigrationName for Migration {
            fn name(&self) -> &str {
                "m20270101_000001_products"
            }
        }

        #[allow(elided_lifetimes_in_paths)]
        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                keel::migration::create_table(manager, crate::product::Entity).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                manager
                    .get_connection()
                    .execute_unprepared("DROP TABLE products")
                    .await
                    .map(|_| ())
            }
        }
    }

    // guide:migrator
    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut migrations = keel::migration::migrations();
            migrations.push(Box::new(m20270101_000001_products::Migration));
            migrations
        }
    }
    // guide:end

    pub async fn run() -> keel::Result<()> {
        // guide:migrate
        // Keel creates nothing itself; the migrator does, one instance at a time.
        let keel = KeelBuilder::from_config(KeelConfig::from_env()?)
            .auto_migrate(false)
            .connect()
            .await?;
        keel::migration::up::<Migrator>(keel.db(), None).await?;
        // guide:end
        keel.close().await
    }
}
