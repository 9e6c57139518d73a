//! Keel's own tables as [sea-orm-migration](https://docs.rs/sea-orm-migration)
//! migrations, for an application that manages its schema with a
//! `Migrator` (cargo feature `migration`).
//!
//! [`migrations()`] returns the migrations of Keel's tables, oldest
//! first: `keel_audit` (the audit log), `keel_outbox` (with
//! `keel_outbox_lock` and `keel_outbox_claims`: the transactional outbox
//! and its relays' leases) and `keel_inbox` (what each consumer has
//! handled). Put them before your own, once, and never reorder them:
//!
//! ```no_run
//! use sea_orm_migration::prelude::*;
//!
//! pub struct Migrator;
//!
//! impl MigratorTrait for Migrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut migrations = keel::migration::migrations();
//!         // migrations.push(Box::new(m20270101_000001_products::Migration));
//!         migrations
//!     }
//! }
//!
//! # async fn demo(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr> {
//! // At start-up, or in a deployment job: one instance migrates, the
//! // others wait for it (see `up`).
//! keel::migration::up::<Migrator>(db, None).await?;
//! # Ok(()) }
//! ```
//!
//! Each `up` creates what does not exist yet (`IF NOT EXISTS`), so a
//! database [`Keel::migrate`](crate::Keel::migrate) set up earlier adopts
//! the migrator without a step of its own, and on MySQL / MariaDB the
//! audit migration also brings a `keel_audit` made by an older Keel up to
//! date (exact text, microsecond times), as `Keel::migrate` does. Each
//! `down` drops its tables, with what they hold: the audit history, the
//! events not yet sent, the consumers' record of what they handled.
//!
//! [`create_table`], [`create_indexes`] and [`drop_indexes`] do for the
//! application's own migrations what [`Keel::create_table`] and
//! [`Keel::create_indexes`] do at start-up: tables whose text compares
//! exactly and whose timestamps keep microseconds on MySQL, and the
//! indexes of a resource's declared queries.
//!
//! [`Keel::create_table`]: crate::Keel::create_table
//! [`Keel::create_indexes`]: crate::Keel::create_indexes

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Statement};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager, async_trait};

use crate::Resource;

/// The name of the audit log's migration (`keel_audit`).
pub const AUDIT: &str = "m20261206_000001_keel_audit";
/// The name of the outbox's migration (`keel_outbox`, `keel_outbox_lock`,
/// `keel_outbox_claims`).
pub const OUTBOX: &str = "m20261206_000002_keel_outbox";
/// The name of the inbox's migration (`keel_inbox`).
pub const INBOX: &str = "m20261206_000003_keel_inbox";

/// Keel's migrations, oldest first: [`AUDIT`], [`OUTBOX`], [`INBOX`].
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(AuditLog), Box::new(Outbox), Box::new(Inbox)]
}

/// A migration: its type, its name, and what `up` and `down` call on the
/// migration's connection.
macro_rules! migration {
    ($ty:ident, $name:expr, up: $up:expr, down: $down:expr $(,)?) => {
        struct $ty;

        impl MigrationName for $ty {
            fn name(&self) -> &str {
                $name
            }
        }

        // `SchemaManager` without its lifetime: as the trait declares it
        // (async-trait).
        #[allow(elided_lifetimes_in_paths)]
        #[async_trait::async_trait]
        impl MigrationTrait for $ty {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $up(manager.get_connection()).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                $down(manager.get_connection()).await
            }
        }
    };
}

migration!(AuditLog, AUDIT, up: audit_up, down: crate::audit::drop_log_table);
migration!(
    Outbox,
    OUTBOX,
    up: crate::outbox::create_outbox_tables,
    down: crate::outbox::drop_outbox_tables,
);
migration!(
    Inbox,
    INBOX,
    up: crate::outbox::create_inbox_table,
    down: crate::outbox::drop_inbox_table,
);

/// `keel_audit`, with the server's exact collation on MySQL, or an older
/// one brought up to date.
async fn audit_up<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let collation = crate::schema::lookup_exact_collation(db).await?;
    crate::audit::log_table(db, collation).await
}

/// Creates entity `E`'s table and the indexes its definition names, if they
/// do not exist: as [`Keel::create_table`](crate::Keel::create_table) does,
/// so on MySQL / MariaDB its text compares exactly (a binary `NO PAD`
/// collation) and its timestamps keep microseconds (`DATETIME(6)`).
pub async fn create_table<E: EntityTrait>(
    manager: &SchemaManager<'_>,
    entity: E,
) -> Result<(), DbErr> {
    crate::schema::create_entity_table(manager.get_connection(), entity).await
}

/// Creates, if they do not exist, the indexes resource `E`'s declared
/// queries need (see [`Keel::create_indexes`](crate::Keel::create_indexes)),
/// and returns the names of those it made.
pub async fn create_indexes<E: Resource>(
    manager: &SchemaManager<'_>,
) -> Result<Vec<String>, DbErr> {
    crate::schema::create_indexes::<E, _>(manager.get_connection()).await
}

/// Drops the indexes [`create_indexes`] makes for `E`, those that exist.
pub async fn drop_indexes<E: Resource>(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    crate::schema::drop_indexes::<E, _>(manager.get_connection()).await
}

/// The lock migrations take: one number on PostgreSQL (an advisory lock),
/// one name on MySQL (`GET_LOCK`).
const LOCK_KEY: i64 = 0x006b_6565_6c6d_6967; // "keelmig"
const LOCK_NAME: &str = "keel_migrate";
/// How long an instance waits on MySQL for another one's migrations.
const MYSQL_LOCK_WAIT_SECONDS: i64 = 3600;

/// Applies `M`'s pending migrations (`steps`: at most that many) and
/// returns the names of those it applied, holding a database lock while it
/// does, so instances started together migrate one after the other: the
/// first applies them, the others then find none pending. PostgreSQL: a transaction-scoped advisory lock, around
/// migrations that run inside that transaction (savepoints), so a failed
/// one leaves nothing behind; MySQL / MariaDB: `GET_LOCK` on one pinned
/// connection (its DDL commits as it goes, as MySQL's always does);
/// SQLite: its own write lock, statement by statement.
pub async fn up<M: MigratorTrait>(
    db: &DatabaseConnection,
    steps: Option<u32>,
) -> Result<Vec<String>, DbErr> {
    locked::<M>(db, Direction::Up, steps).await
}

/// Rolls back `M`'s last `steps` applied migrations (all with `None`),
/// under the lock [`up`] takes, and returns their names, last first.
pub async fn down<M: MigratorTrait>(
    db: &DatabaseConnection,
    steps: Option<u32>,
) -> Result<Vec<String>, DbErr> {
    locked::<M>(db, Direction::Down, steps).await
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// What `direction` will do now (the names, in the order it does them),
/// then does it.
async fn run<'c, M: MigratorTrait, C>(
    db: &'c C,
    direction: Direction,
    steps: Option<u32>,
) -> Result<Vec<String>, DbErr>
where
    C: ConnectionTrait,
    &'c C: sea_orm_migration::IntoSchemaManagerConnection<'c>,
{
    let mut names: Vec<String> = match direction {
        Direction::Up => M::get_pending_migrations(db).await?,
        Direction::Down => {
            let mut applied = M::get_applied_migrations(db).await?;
            applied.reverse();
            applied
        }
    }
    .iter()
    .map(|m| m.name().to_owned())
    .collect();
    if let Some(steps) = steps {
        names.truncate(steps as usize);
    }
    match direction {
        Direction::Up => M::up(db, steps).await?,
        Direction::Down => M::down(db, steps).await?,
    }
    Ok(names)
}

async fn locked<M: MigratorTrait>(
    db: &DatabaseConnection,
    direction: Direction,
    steps: Option<u32>,
) -> Result<Vec<String>, DbErr> {
    use sea_orm::TransactionTrait;

    let backend = db.get_database_backend();
    match backend {
        DbBackend::Postgres => {
            let txn = db.begin().await?;
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_advisory_xact_lock($1)",
                [LOCK_KEY.into()],
            ))
            .await?;
            let names = run::<M, _>(&txn, direction, steps).await?;
            txn.commit().await?;
            Ok(names)
        }
        DbBackend::MySql => {
            let txn = db.begin().await?;
            let got = txn
                .query_one_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT GET_LOCK(?, ?) AS got",
                    [LOCK_NAME.into(), MYSQL_LOCK_WAIT_SECONDS.into()],
                ))
                .await?
                .and_then(|row| row.try_get::<Option<i64>>("", "got").ok().flatten());
            if got != Some(1) {
                return Err(DbErr::Migration(format!(
                    "another instance has held the migration lock ({LOCK_NAME}) for \
                     {MYSQL_LOCK_WAIT_SECONDS} s"
                )));
            }
            let result = run::<M, _>(&txn, direction, steps).await;
            let released = txn
                .execute_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT RELEASE_LOCK(?)",
                    [LOCK_NAME.into()],
                ))
                .await;
            let names = result?;
            released?;
            txn.commit().await?;
            Ok(names)
        }
        _ => run::<M, _>(db, direction, steps).await,
    }
}
