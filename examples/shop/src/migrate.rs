//! The shop's schema, as numbered migrations recorded in `shop_migrations`;
//! each runs once, in order, at start-up.

use keel::{Error, Keel};
use sea_orm::{ConnectionTrait, Statement};

use crate::entities::{customer, order, order_line, product, shipment};

/// The migrations, in order: (version, name).
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, "keel tables (audit log)"),
    (2, "products"),
    (3, "customers"),
    (4, "orders and order lines"),
    (5, "indexes for the declared queries"),
    (6, "keel tables (outbox and inbox)"),
    (7, "shipments"),
];

async fn apply(keel: &Keel, version: i64) -> keel::Result<()> {
    match version {
        1 => keel.migrate().await,
        2 => keel.create_table(product::Entity).await,
        3 => keel.create_table(customer::Entity).await,
        4 => {
            keel.create_table(order::Entity).await?;
            keel.create_table(order_line::Entity).await
        }
        5 => {
            keel.create_indexes::<product::Entity>().await?;
            keel.create_indexes::<customer::Entity>().await?;
            keel.create_indexes::<order::Entity>().await?;
            keel.create_indexes::<order_line::Entity>().await?;
            Ok(())
        }
        6 => keel.migrate().await,
        7 => {
            keel.create_table(shipment::Entity).await?;
            keel.create_indexes::<shipment::Entity>().await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs the migrations not yet recorded; returns how many ran.
pub async fn run(keel: &Keel) -> keel::Result<usize> {
    let db = keel.db();
    let backend = db.get_database_backend();
    db.execute_unprepared(
        "CREATE TABLE IF NOT EXISTS shop_migrations (version BIGINT PRIMARY KEY, name VARCHAR(200) NOT NULL)",
    )
    .await
    .map_err(Error::from)?;
    let rows = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM shop_migrations",
        ))
        .await
        .map_err(Error::from)?;
    let done: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect();
    let mut ran = 0;
    for &(version, name) in MIGRATIONS {
        if done.contains(&version) {
            continue;
        }
        apply(keel, version).await?;
        let insert = Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DbBackend::Postgres => {
                    "INSERT INTO shop_migrations (version, name) VALUES ($1, $2)"
                }
                _ => "INSERT INTO shop_migrations (version, name) VALUES (?, ?)",
            },
            [version.into(), name.into()],
        );
        match db.execute_raw(insert).await.map_err(Error::from) {
            // Another instance starting at the same time recorded it first
            // (the steps themselves are idempotent).
            Ok(_) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        tracing::info!(version, name, "migration applied");
        ran += 1;
    }
    Ok(ran)
}
