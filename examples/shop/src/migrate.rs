//! The shop's schema as sea-orm-migration migrations: Keel's own tables
//! first (`keel::migration::migrations()`), then the shop's, recorded in
//! `seaql_migrations`. `shop migrate` applies the pending ones (the server
//! and the worker also do at start-up), `shop migrate status` lists them,
//! `shop migrate down [N]` rolls back the last N (1 by default).
//!
//! Before sea-orm-migration, the shop numbered its migrations itself in
//! `shop_migrations` (1 to 7); a database made then is adopted as it is:
//! the migrations it had applied are recorded under their new names (no
//! table is touched) and `shop_migrations` goes.

use keel::migration::{self as keel_migration, create_indexes, create_table, drop_indexes};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait};
use sea_orm_migration::{
    MigrationName, MigrationStatus, MigrationTrait, MigratorTrait, SchemaManager, async_trait,
};

use crate::entities::{customer, order, order_line, product, shipment};

/// The shop's migrator: Keel's migrations, then the shop's own.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = keel_migration::migrations();
        migrations.push(Box::new(Products));
        migrations.push(Box::new(Customers));
        migrations.push(Box::new(Orders));
        migrations.push(Box::new(QueryIndexes));
        migrations.push(Box::new(Shipments));
        migrations
    }
}

const PRODUCTS: &str = "m20261206_000101_products";
const CUSTOMERS: &str = "m20261206_000102_customers";
const ORDERS: &str = "m20261206_000103_orders";
const QUERY_INDEXES: &str = "m20261206_000104_query_indexes";
const SHIPMENTS: &str = "m20261206_000105_shipments";

/// The numbering the shop kept in `shop_migrations` before, and what each
/// number became.
const OLD_NUMBERING: &[(i64, &[&str])] = &[
    (1, &[keel_migration::AUDIT]),
    (2, &[PRODUCTS]),
    (3, &[CUSTOMERS]),
    (4, &[ORDERS]),
    (5, &[QUERY_INDEXES]),
    (6, &[keel_migration::OUTBOX, keel_migration::INBOX]),
    (7, &[SHIPMENTS]),
];

macro_rules! migration {
    ($ty:ident, $name:expr, up($m:ident) $up:block, down($d:ident) $down:block) => {
        struct $ty;

        impl MigrationName for $ty {
            fn name(&self) -> &str {
                $name
            }
        }

        // `SchemaManager` without its lifetime: as the trait declares it.
        #[allow(elided_lifetimes_in_paths)]
        #[async_trait::async_trait]
        impl MigrationTrait for $ty {
            async fn up(&self, $m: &SchemaManager) -> Result<(), DbErr> $up

            async fn down(&self, $d: &SchemaManager) -> Result<(), DbErr> $down
        }
    };
}

migration!(Products, PRODUCTS,
    up(m) { create_table(m, product::Entity).await },
    down(m) { drop(m, "products").await });

migration!(Customers, CUSTOMERS,
    up(m) { create_table(m, customer::Entity).await },
    down(m) { drop(m, "customers").await });

migration!(Orders, ORDERS,
up(m) {
    create_table(m, order::Entity).await?;
    create_table(m, order_line::Entity).await
},
down(m) {
    drop(m, "order_lines").await?;
    drop(m, "orders").await
});

migration!(QueryIndexes, QUERY_INDEXES,
up(m) {
    create_indexes::<product::Entity>(m).await?;
    create_indexes::<customer::Entity>(m).await?;
    create_indexes::<order::Entity>(m).await?;
    create_indexes::<order_line::Entity>(m).await?;
    Ok(())
},
down(m) {
    drop_indexes::<order_line::Entity>(m).await?;
    drop_indexes::<order::Entity>(m).await?;
    drop_indexes::<customer::Entity>(m).await?;
    drop_indexes::<product::Entity>(m).await
});

migration!(Shipments, SHIPMENTS,
    up(m) {
        create_table(m, shipment::Entity).await?;
        create_indexes::<shipment::Entity>(m).await?;
        Ok(())
    },
    down(m) { drop(m, "shipments").await });

async fn drop(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .map(|_| ())
}

/// Applies the pending migrations, one instance at a time (see
/// `keel::migration::up`), after adopting a database of the old numbering;
/// returns how many ran.
pub async fn up(db: &DatabaseConnection) -> Result<usize, DbErr> {
    adopt_old_numbering(db).await?;
    Ok(keel_migration::up::<Migrator>(db, None).await?.len())
}

/// Rolls back the last `steps` applied migrations; returns their names,
/// last first.
pub async fn down(db: &DatabaseConnection, steps: u32) -> Result<Vec<String>, DbErr> {
    keel_migration::down::<Migrator>(db, Some(steps)).await
}

/// Each migration, in order, with whether it is applied.
pub async fn status(db: &DatabaseConnection) -> Result<Vec<(String, bool)>, DbErr> {
    adopt_old_numbering(db).await?;
    Ok(Migrator::get_migration_with_status(db)
        .await?
        .iter()
        .map(|m| (m.name().to_owned(), m.status() == MigrationStatus::Applied))
        .collect())
}

/// Records the migrations a database of the old numbering (`shop_migrations`)
/// has applied under their new names, then drops `shop_migrations`; nothing
/// when there is no such table. Idempotent, and safe for instances doing it
/// at once (a name recorded twice is ignored).
pub async fn adopt_old_numbering(db: &DatabaseConnection) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let exists = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'shop_migrations'"
        }
        DbBackend::MySql => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = 'shop_migrations'"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'shop_migrations'",
    };
    if db
        .query_one_raw(Statement::from_string(backend, exists))
        .await?
        .is_none()
    {
        return Ok(());
    }
    Migrator::install(db).await?;
    let txn = db.begin().await?;
    let done: Vec<i64> = txn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM shop_migrations",
        ))
        .await?
        .iter()
        .filter_map(|r| r.try_get_by_index::<i64>(0).ok())
        .collect();
    let now = chrono::Utc::now().timestamp();
    let insert = match backend {
        DbBackend::Postgres => {
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        }
        DbBackend::MySql => {
            "INSERT IGNORE INTO seaql_migrations (version, applied_at) VALUES (?, ?)"
        }
        _ => "INSERT OR IGNORE INTO seaql_migrations (version, applied_at) VALUES (?, ?)",
    };
    for (version, names) in OLD_NUMBERING {
        if !done.contains(version) {
            continue;
        }
        for name in *names {
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                insert,
                [(*name).into(), now.into()],
            ))
            .await?;
        }
    }
    txn.execute_unprepared("DROP TABLE IF EXISTS shop_migrations")
        .await?;
    txn.commit().await?;
    tracing::info!(
        adopted = done.len(),
        "the shop's old migrations (shop_migrations) recorded in seaql_migrations"
    );
    Ok(())
}
