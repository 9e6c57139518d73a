//! Transactions, hooks and events: a small shop that sells a scarce item.
//!
//! ```sh
//! cargo run -p keel-rs --example transactions
//! ```
//!
//! Runs on an in-memory SQLite database; set `DATABASE_URL` (`postgres://…`,
//! `mysql://…`) to run the same program against another database.

// An example binary: its `pub` items are public only so the entity module can
// be written exactly as in a library.
#![allow(unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keel::event::{DomainEvent, Subscription};
use keel::prelude::*;
use keel::tx::{Isolation, RetryPolicy};
use keel::{Error, Result};
use serde::{Deserialize, Serialize};

mod item {
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
    #[sea_orm(table_name = "example_items")]
    #[service(name = "item")]
    pub struct Model {
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        #[sea_orm(unique)]
        #[service(filter(eq))]
        pub sku: String,
        #[service(filter, sort)]
        pub stock: i32,
        /// Never shown in audit rows or events.
        #[audit(redact)]
        pub supplier_price_cents: i64,
        #[service(version)]
        pub version: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use item::{ItemPatch, NewItem};

/// A domain event of the shop, typed.
#[derive(Debug, Serialize, Deserialize)]
struct OrderPlaced {
    item_id: i64,
    buyer: String,
}

impl DomainEvent for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    fn subject(&self) -> Option<String> {
        Some(self.item_id.to_string())
    }
}

/// A hook: stock never goes below zero, whoever writes it.
struct NoNegativeStock;

impl Hooks<item::Entity> for NoNegativeStock {
    async fn before_update(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _old: &item::Model,
        patch: &ItemPatch,
    ) -> Result<()> {
        match patch.stock {
            Some(stock) if stock < 0 => Err(Error::rejected(
                "NEGATIVE_STOCK",
                "stock cannot go below zero",
            )),
            _ => Ok(()),
        }
    }
}

/// One order: lock the item, check and decrement its stock, emit the event.
/// Re-runnable: Keel runs it again if the database aborts it for a lost race.
async fn place_order(keel: &Keel, buyer: &str, item_id: i64) -> Result<()> {
    let ctx = Context::actor(buyer);
    let options = TxOptions::new()
        .isolation(Isolation::ReadCommitted)
        .retry(RetryPolicy::attempts(5));
    keel.transaction(&ctx, options, |tx| async move {
        let items = tx.service::<item::Entity>();
        let item = items.get_for_update(tx.context(), item_id).await?;
        if item.stock < 1 {
            return Err(Error::rejected("INSUFFICIENT_STOCK", "sold out"));
        }
        items
            .update(
                tx.context(),
                item_id,
                ItemPatch::default().stock(item.stock - 1),
            )
            .await?;
        tx.emit_domain(&OrderPlaced {
            item_id,
            buyer: tx.context().actor_name().to_owned(),
        })?;
        Ok(())
    })
    .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let keel = Keel::builder()
        .database_url(url)
        .service_name("shop")
        .connect()
        .await?;
    keel.create_table(item::Entity).await?;
    keel.add_hooks::<item::Entity>(NoNegativeStock);

    // Subscribers run after commit only, each on its own.
    let placed = Arc::new(AtomicUsize::new(0));
    let counter = placed.clone();
    keel.events().subscribe(Subscription::domain(
        "order-counter",
        move |order: OrderPlaced, event| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                println!(
                    "  event {} for {}: {}",
                    event.event_type, order.item_id, order.buyer
                );
                Ok(())
            }
        },
    ))?;
    keel.events()
        .subscribe(Subscription::entity::<item::Entity, _, _>(
            "item-log",
            |event| async move {
                // Redacted fields arrive masked.
                assert_eq!(event.data["row"]["supplier_price_cents"], "[redacted]");
                Ok(())
            },
        ))?;

    let admin = Context::actor("admin");
    let items = keel.service::<item::Entity>();
    let sku = format!("lamp-{}", uuid_suffix());
    let lamp = items
        .create(
            &admin,
            NewItem {
                sku,
                stock: 5,
                supplier_price_cents: 1234,
            },
        )
        .await?;

    // 20 buyers at once, 5 lamps.
    println!("20 concurrent orders against stock {}:", lamp.stock);
    let mut orders = Vec::new();
    for i in 0..20 {
        let keel = keel.clone();
        orders.push(tokio::spawn(async move {
            place_order(&keel, &format!("buyer-{i}"), lamp.id).await
        }));
    }
    let (mut sold, mut refused) = (0, 0);
    for order in orders {
        match order.await.expect("order task") {
            Ok(()) => sold += 1,
            Err(err) if err.code() == "INSUFFICIENT_STOCK" => refused += 1,
            Err(err) => return Err(err),
        }
    }
    keel.events().idle().await;
    let lamp = items.get(&admin, lamp.id).await?;
    println!(
        "sold {sold}, refused {refused}, stock now {}, events delivered {}",
        lamp.stock,
        placed.load(Ordering::SeqCst)
    );
    assert_eq!((sold, refused, lamp.stock), (5, 15, 0));

    // A rollback leaves nothing; a savepoint undoes only its own part.
    let err = keel
        .transaction(&admin, TxOptions::new(), |tx| async move {
            let items = tx.service::<item::Entity>();
            items
                .update(tx.context(), lamp.id, ItemPatch::default().stock(100))
                .await?;
            let inner = tx
                .transaction(|sp| async move {
                    sp.service::<item::Entity>()
                        .update(sp.context(), lamp.id, ItemPatch::default().stock(-1))
                        .await
                })
                .await;
            println!("savepoint: {}", inner.unwrap_err());
            Err::<(), _>(Error::rejected("CHANGED_MY_MIND", "roll it all back"))
        })
        .await
        .unwrap_err();
    println!("transaction: {} ({})", err, err.code());
    assert_eq!(items.get(&admin, lamp.id).await?.stock, 0);

    let history = keel
        .audit_log()
        .history::<item::Entity>(&admin, lamp.id, &Default::default())
        .await?;
    println!("audit entries for the lamp: {}", history.items.len());
    assert_eq!(history.items.len(), 6, "created + 5 sales");
    keel.close().await
}

fn uuid_suffix() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().to_string())
        .unwrap_or_default()
}
