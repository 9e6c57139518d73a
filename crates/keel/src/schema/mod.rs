//! The tables Keel creates, and what it checks of the tables it is given.
//!
//! Keel's promises need three things of a table that SQLite and PostgreSQL
//! give by default and MySQL / MariaDB do not:
//!
//! - **text that compares exactly.** A MariaDB database created with the
//!   server's defaults has `utf8mb4_general_ci` columns: `'acme' = 'ACME'`,
//!   `'acme' = 'ácme'` and, with every `PAD SPACE` collation (`utf8mb4_bin`
//!   too), `'acme' = 'acme '`. Tables Keel creates ([`Keel::create_table`],
//!   [`Keel::migrate`]) therefore use a binary `NO PAD` collation
//!   (`utf8mb4_nopad_bin` on MariaDB, `utf8mb4_0900_bin` on MySQL 8).
//!   Keys, tenants and `=` / `!=` / `IN` filters compare exactly on any
//!   collation anyway (see `query::exact`); what a collation still decides
//!   is uniqueness (a unique index on a case-insensitive column refuses
//!   `RUST` next to `rust`), `<` / `>` and the order of `order_by`.
//! - **fractional seconds.** `DATETIME` / `TIMESTAMP` without a precision
//!   keep whole seconds; Keel's timestamps have microseconds, so its tables
//!   use `DATETIME(6)` (`DATETIME`, not `TIMESTAMP`: no 2038 limit, no
//!   session time-zone conversion, no implicit `ON UPDATE`).
//! - **text that sorts exactly.** MySQL and MariaDB sort a text value by
//!   its first `max_sort_length` bytes of collation weights only (1024 by
//!   default: 256 `utf8mb4` characters); values that agree that far tie,
//!   and fall back to the next sort key, while a keyset page's condition
//!   (`col > ?`) compares whole values, so pages would skip and repeat
//!   rows. Every connection Keel opens raises `max_sort_length` as far as
//!   the sort buffer allows ([`MAX_SORT_LENGTH`]: 65,535 bytes, 16,383
//!   `utf8mb4` characters, with the default 2 MiB buffer), which covers
//!   every `utf8mb4` `VARCHAR`; a sortable column that can hold longer
//!   values (`TEXT` and up) cannot be sorted exactly, and `order_by` on it
//!   is refused (see `long_text`).
//!
//! [`Keel::check_schema`] reads a resource's table from
//! `information_schema` and reports each column that falls short, with the
//! statement that fixes it; the first time a service of a resource is made
//! on MySQL, the report is logged as warnings.

use std::fmt;

use sea_orm::sea_query::{Alias, ColumnType, Index, TableCreateStatement};
use sea_orm::{
    ConnectionTrait, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable, PrimaryKeyArity,
    PrimaryKeyToColumn, PrimaryKeyTrait, RelationTrait, Schema, Statement,
};

use crate::{Error, Keel, Resource, Result};

mod long_text;

#[cfg(feature = "mysql")]
pub(crate) use long_text::MAX_SORT_LENGTH;
use long_text::long_text;
pub(crate) use long_text::{LongTextCells, check_sortable};

/// The binary `NO PAD` collations, most preferred first.
const EXACT_COLLATIONS: [&str; 2] = ["utf8mb4_nopad_bin", "utf8mb4_0900_bin"];

/// Whether a MySQL / MariaDB collation compares text exactly.
fn is_exact(collation: &str) -> bool {
    collation.ends_with("_nopad_bin") || collation == "utf8mb4_0900_bin" || collation == "binary"
}

/// The exact collation this MySQL / MariaDB server has (`None` elsewhere, or
/// on a server with none: MySQL before 8.0.17), looked up once per `Keel`.
pub(crate) async fn exact_collation(keel: &Keel) -> Result<Option<&'static str>> {
    if keel.backend() != DbBackend::MySql {
        return Ok(None);
    }
    keel.exact_collation_cell()
        .get_or_try_init(|| async { lookup_exact_collation(keel.db()).await.map_err(Error::from) })
        .await
        .copied()
}

/// The exact collation of the server behind `db`, looked up each time
/// (`None` off MySQL, or on a server with none).
pub(crate) async fn lookup_exact_collation<C: ConnectionTrait>(
    db: &C,
) -> std::result::Result<Option<&'static str>, DbErr> {
    if db.get_database_backend() != DbBackend::MySql {
        return Ok(None);
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLLATION_NAME AS name FROM information_schema.COLLATIONS \
             WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')",
        ))
        .await?;
    let names: Vec<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "name").ok())
        .collect();
    Ok(EXACT_COLLATIONS
        .into_iter()
        .find(|c| names.iter().any(|n| n == c)))
}

/// Whether table `name` exists in the connection's database (its current
/// schema on PostgreSQL). Asked of the catalog, so it is safe inside a
/// PostgreSQL transaction, where a failed probe would abort it.
pub(crate) async fn table_exists<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> std::result::Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = $1 LIMIT 1"
        }
        DbBackend::MySql => {
            "SELECT 1 FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ? LIMIT 1"
        }
        _ => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? LIMIT 1",
    };
    Ok(db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [name.into()]))
        .await?
        .is_some())
}

#[cfg(feature = "migration")]
/// Creates entity `E`'s table (as [`create_table`] writes it) and its
/// indexes when they do not exist, on `db`.
pub(crate) async fn create_entity_table<C: ConnectionTrait, E: EntityTrait>(
    db: &C,
    entity: E,
) -> std::result::Result<(), DbErr> {
    let collation = lookup_exact_collation(db).await?;
    create_entity_table_with(db, entity, collation).await
}

pub(crate) async fn create_entity_table_with<C: ConnectionTrait, E: EntityTrait>(
    db: &C,
    entity: E,
    collation: Option<&str>,
) -> std::result::Result<(), DbErr> {
    let backend = db.get_database_backend();
    let mut table = create_table(entity, backend, collation);
    table.if_not_exists();
    db.execute(&table).await?;
    for mut index in Schema::new(backend).create_index_from_entity(entity) {
        index.if_not_exists();
        db.execute(&index).await?;
    }
    Ok(())
}

/// `CREATE TABLE` for entity `E`, as sea-orm writes it, except on MySQL:
/// the table's text gets `collation` and its timestamps microseconds.
pub(crate) fn create_table<E: EntityTrait>(
    entity: E,
    backend: DbBackend,
    collation: Option<&str>,
) -> TableCreateStatement {
    let schema = Schema::new(backend);
    let mut table = TableCreateStatement::new();
    if let Some(comment) = entity.comment() {
        table.comment(comment);
    }
    for column in E::Column::iter() {
        let mut def = schema.get_column_def::<E>(column);
        if backend == DbBackend::MySql
            && let Some(precise) = def.get_column_type().and_then(with_microseconds)
        {
            def.custom(Alias::new(precise));
        }
        table.col(&mut def);
    }
    if <<E::PrimaryKey as PrimaryKeyTrait>::ValueType as PrimaryKeyArity>::ARITY > 1 {
        let mut pk = Index::create();
        for key in E::PrimaryKey::iter() {
            pk.col(key.into_column());
        }
        table.primary_key(pk.name(format!("pk-{}", entity.table_name())).primary());
    }
    for relation in E::Relation::iter() {
        let relation = relation.def();
        if relation.is_owner || relation.skip_fk {
            continue;
        }
        table.foreign_key(&mut relation.into());
    }
    if backend == DbBackend::MySql
        && let Some(collation) = collation
    {
        table.character_set("utf8mb4").collate(collation);
    }
    table.table(entity.table_ref()).take()
}

/// The MySQL type with microseconds of a time column type.
fn with_microseconds(ty: &ColumnType) -> Option<&'static str> {
    match ty {
        ColumnType::DateTime | ColumnType::Timestamp | ColumnType::TimestampWithTimeZone => {
            Some("datetime(6)")
        }
        ColumnType::Time => Some("time(6)"),
        _ => None,
    }
}

/// What [`Keel::check_schema`] found wrong with one column.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemaProblem {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// What is wrong and what it breaks.
    pub problem: String,
    /// The statement that fixes it.
    pub fix: String,
}

impl fmt::Display for SchemaProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}: {}; fix: {}",
            self.table, self.column, self.problem, self.fix
        )
    }
}

/// The result of [`Keel::check_schema`]: every column of a resource's table
/// that does not give Keel's guarantees on this database (empty when all do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaReport {
    problems: Vec<SchemaProblem>,
}

impl SchemaReport {
    /// The columns that fall short.
    pub fn problems(&self) -> &[SchemaProblem] {
        &self.problems
    }

    /// Whether nothing falls short.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for SchemaReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return f.write_str("no problem found");
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// One column as `information_schema.COLUMNS` describes it.
struct ColumnInfo {
    name: String,
    column_type: String,
    nullable: bool,
    collation: Option<String>,
    data_type: String,
    precision: Option<u32>,
    /// Whether it has a DEFAULT or an ON UPDATE, which `MODIFY` drops.
    extras: bool,
}

/// Checks resource `E`'s table (see [`Keel::check_schema`]).
pub(crate) async fn check<E: Resource>(keel: &Keel) -> Result<SchemaReport> {
    if keel.backend() != DbBackend::MySql {
        return Ok(SchemaReport::default());
    }
    let table = E::default().table_name().to_owned();
    let rows = keel
        .db()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COLUMN_NAME AS name, COLUMN_TYPE AS column_type, IS_NULLABLE AS nullable, \
             COLLATION_NAME AS collation, DATA_TYPE AS data_type, DATETIME_PRECISION AS `precision`, \
             (COLUMN_DEFAULT IS NOT NULL AND COLUMN_DEFAULT <> 'NULL') OR EXTRA <> '' AS extras \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            [table.clone().into()],
        ))
        .await
        .map_err(Error::from)?;
    let columns: Vec<ColumnInfo> = rows
        .iter()
        .filter_map(|r| {
            Some(ColumnInfo {
                name: r.try_get("", "name").ok()?,
                column_type: r.try_get("", "column_type").ok()?,
                nullable: r.try_get::<String>("", "nullable").ok()? == "YES",
                collation: r.try_get("", "collation").ok()?,
                data_type: r.try_get("", "data_type").ok()?,
                precision: r
                    .try_get::<Option<u64>>("", "precision")
                    .ok()?
                    .and_then(|p| u32::try_from(p).ok()),
                extras: r.try_get::<bool>("", "extras").unwrap_or(false),
            })
        })
        .collect();
    let exact = exact_collation(keel).await?.unwrap_or(EXACT_COLLATIONS[0]);
    let long = long_text::<E>(keel).await?;
    let mut problems = Vec::new();
    // `MODIFY` restates the whole column: its type and nullability here;
    // a DEFAULT or ON UPDATE it had must be added back by hand.
    let modify = |c: &ColumnInfo, ty: &str, extra: &str| {
        let keep = if c.extras {
            " -- then add back its DEFAULT / ON UPDATE (SHOW CREATE TABLE has them)"
        } else {
            ""
        };
        format!(
            "ALTER TABLE `{table}` MODIFY `{}` {ty}{extra}{}{keep}",
            c.name,
            if c.nullable { " NULL" } else { " NOT NULL" }
        )
    };
    for column in E::Column::iter() {
        let name = column.as_str();
        let Some(info) = columns.iter().find(|c| c.name == name) else {
            continue;
        };
        let field = E::FIELDS.iter().find(|f| f.column.as_str() == name);
        if let Some(collation) = info.collation.as_deref()
            && !is_exact(collation)
        {
            let key = crate::query::primary_key_column::<E>().as_str() == name;
            let unique = key || field.is_some_and(|f| f.unique);
            let ordered = field.is_some_and(|f| f.sortable || f.ops.contains(crate::Ops::LT));
            if unique || ordered {
                let mut breaks = Vec::new();
                if unique {
                    breaks.push(
                        "its unique index refuses values that differ only by case, accents or trailing spaces",
                    );
                }
                if ordered {
                    breaks.push("`<`, `>` and `order_by` follow the collation, not the bytes");
                }
                problems.push(SchemaProblem {
                    table: table.clone(),
                    column: name.to_owned(),
                    problem: format!(
                        "collation {collation} does not compare text exactly: {}",
                        breaks.join("; ")
                    ),
                    fix: modify(
                        info,
                        &info.column_type,
                        &format!(" CHARACTER SET utf8mb4 COLLATE {exact}"),
                    ),
                });
            }
        }
        if let Some(found) = long
            .iter()
            .find(|l| field.is_some_and(|f| f.name == l.field))
        {
            let exact = info
                .collation
                .as_deref()
                .filter(|c| is_exact(c))
                .unwrap_or(exact);
            problems.push(SchemaProblem {
                table: table.clone(),
                column: name.to_owned(),
                problem: found.problem(),
                fix: format!(
                    "{} (if every value fits), or take `sort` off the field",
                    modify(
                        info,
                        &format!("varchar({})", found.sorted_chars.min(16_383)),
                        &format!(" CHARACTER SET utf8mb4 COLLATE {exact}"),
                    )
                ),
            });
        }
        let stamped = [
            E::COLUMNS.created_at,
            E::COLUMNS.updated_at,
            E::COLUMNS.deleted_at,
        ]
        .into_iter()
        .flatten()
        .any(|c| c.as_str() == name);
        if stamped
            && matches!(info.data_type.as_str(), "datetime" | "timestamp")
            && info.precision.unwrap_or(0) < 6
        {
            problems.push(SchemaProblem {
                table: table.clone(),
                column: name.to_owned(),
                problem: format!(
                    "{} keeps {} fractional digits: Keel's timestamps have microseconds, and \
                     writes within one second would tie",
                    info.column_type,
                    info.precision.unwrap_or(0)
                ),
                fix: modify(info, &format!("{}(6)", info.data_type), ""),
            });
        }
    }
    Ok(SchemaReport { problems })
}

/// Brings an existing `keel_audit` made by an older Keel up to date on
/// MySQL: exact text and microsecond times. Nothing to do elsewhere.
pub(crate) async fn upgrade_audit_table<C: ConnectionTrait>(
    db: &C,
    collation: Option<&str>,
) -> std::result::Result<(), DbErr> {
    let Some(collation) = collation else {
        return Ok(());
    };
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLUMN_NAME AS name, COLLATION_NAME AS collation, DATETIME_PRECISION AS `precision` \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'keel_audit'",
        ))
        .await?;
    let mut text_inexact = false;
    let mut at_whole_seconds = false;
    for row in &rows {
        let name: String = row.try_get("", "name").unwrap_or_default();
        let collation: Option<String> = row.try_get("", "collation").unwrap_or(None);
        let precision: Option<u64> = row.try_get("", "precision").unwrap_or(None);
        if name != "changes" && collation.as_deref().is_some_and(|c| !is_exact(c)) {
            text_inexact = true;
        }
        if name == "at" && precision.unwrap_or(0) < 6 {
            at_whole_seconds = true;
        }
    }
    if text_inexact {
        tracing::info!(
            "keel_audit: converting its text to {collation} (exact comparison of ids and tenants)"
        );
        db.execute_unprepared(&format!(
            "ALTER TABLE keel_audit CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
        ))
        .await?;
    }
    if at_whole_seconds {
        tracing::info!("keel_audit: `at` to DATETIME(6) (microseconds)");
        db.execute_unprepared("ALTER TABLE keel_audit MODIFY at DATETIME(6) NOT NULL")
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::MysqlQueryBuilder;

    #[allow(unreachable_pub)]
    mod stamp {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "stamps")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub slug: String,
            #[sea_orm(unique)]
            pub title: String,
            pub at: DateTimeUtc,
            pub seen: Option<DateTime>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    #[test]
    fn mysql_tables_get_exact_text_and_microseconds() {
        let sql = create_table(stamp::Entity, DbBackend::MySql, Some("utf8mb4_nopad_bin"))
            .to_string(MysqlQueryBuilder);
        assert_eq!(
            sql,
            "CREATE TABLE `stamps` ( `slug` varchar(255) NOT NULL PRIMARY KEY, \
             `title` varchar(255) NOT NULL UNIQUE, `at` datetime(6) NOT NULL, `seen` datetime(6) ) \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
        );
    }

    #[test]
    fn exact_collations() {
        for c in [
            "utf8mb4_nopad_bin",
            "utf8mb4_0900_bin",
            "binary",
            "utf8mb3_nopad_bin",
        ] {
            assert!(is_exact(c), "{c}");
        }
        for c in [
            "utf8mb4_bin",
            "utf8mb4_general_ci",
            "utf8mb4_0900_ai_ci",
            "latin1_swedish_ci",
        ] {
            assert!(!is_exact(c), "{c}");
        }
    }
}

/// One index [`Keel::create_indexes`] makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueryIndex {
    /// Its name: `{table}_keel_{field}`.
    pub(crate) name: String,
    /// `CREATE INDEX …` for the backend.
    pub(crate) sql: String,
}

/// The indexes the declared queries of `E` need on `backend`: for the key
/// and for each sortable field, an index on (tenant, field, key) over the
/// rows that are not soft-deleted. PostgreSQL and SQLite make it partial
/// (`WHERE deleted_at IS NULL`); MySQL / MariaDB have no partial indexes,
/// so `deleted_at` comes before the field instead, after the tenant:
/// (tenant, deleted_at, field, key). The key gets one only when
/// its primary key alone does not serve (a soft-deleted or tenant-scoped
/// resource). A text column MySQL cannot index whole (`TEXT`) gets none.
pub(crate) fn query_indexes<E: Resource>(backend: DbBackend) -> Vec<QueryIndex> {
    let entity = E::default();
    let table = entity.table_name();
    let pk = crate::query::primary_key_column::<E>();
    let c = E::COLUMNS;
    let quote = |ident: &str| match backend {
        DbBackend::MySql => format!("`{}`", ident.replace('`', "``")),
        _ => format!("\"{}\"", ident.replace('"', "\"\"")),
    };
    let qualified = match entity.schema_name() {
        Some(schema) => format!("{}.{}", quote(schema), quote(table)),
        None => quote(table),
    };
    let mut out = Vec::new();
    for field in E::FIELDS {
        let is_key = field.column.as_str() == pk.as_str();
        if is_key && c.deleted_at.is_none() && c.tenant.is_none() {
            continue;
        }
        if !is_key && !field.sortable {
            continue;
        }
        if backend == DbBackend::MySql
            && matches!(
                sea_orm::ColumnTrait::def(&field.column).get_column_type(),
                ColumnType::Text | ColumnType::Blob | ColumnType::Json | ColumnType::JsonBinary
            )
        {
            continue;
        }
        let mut columns = Vec::new();
        if let Some(tenant) = c.tenant {
            columns.push(tenant.as_str());
        }
        if let (DbBackend::MySql, Some(deleted_at)) = (backend, c.deleted_at) {
            columns.push(deleted_at.as_str());
        }
        columns.push(field.column.as_str());
        if !is_key {
            columns.push(pk.as_str());
        }
        let mut name = format!("{table}_keel_{}", field.name);
        if name.len() > 60 {
            // PostgreSQL keeps 63 bytes of a name, MySQL 64.
            let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            let mut cut = 47;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name = format!("{}_{hash:012x}", &name[..cut]);
            name.truncate(60);
        }
        let partial = match (backend, c.deleted_at) {
            (DbBackend::MySql, _) | (_, None) => String::new(),
            (_, Some(deleted_at)) => format!(" WHERE {} IS NULL", quote(deleted_at.as_str())),
        };
        let columns: Vec<String> = columns.into_iter().map(quote).collect();
        let sql = format!(
            "CREATE INDEX {}{} ON {qualified} ({}){partial}",
            if backend == DbBackend::MySql {
                ""
            } else {
                "IF NOT EXISTS "
            },
            quote(&name),
            columns.join(", ")
        );
        out.push(QueryIndex { name, sql });
    }
    out
}

/// Creates the missing [`query_indexes`] of `E`; returns the names of those it created.
pub(crate) async fn create_indexes<E: Resource, C: ConnectionTrait>(
    db: &C,
) -> std::result::Result<Vec<String>, DbErr> {
    let backend = db.get_database_backend();
    let mut created = Vec::new();
    let table = E::default().table_name().to_owned();
    for index in query_indexes::<E>(backend) {
        let (sql, values): (&str, Vec<sea_orm::Value>) = match backend {
            // MySQL has no `CREATE INDEX IF NOT EXISTS`.
            DbBackend::MySql => (
                "SELECT 1 FROM information_schema.statistics \
                 WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ? LIMIT 1",
                vec![table.as_str().into(), index.name.as_str().into()],
            ),
            DbBackend::Postgres => (
                "SELECT 1 FROM pg_indexes WHERE tablename = $1 AND indexname = $2 LIMIT 1",
                vec![table.as_str().into(), index.name.as_str().into()],
            ),
            _ => (
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ? LIMIT 1",
                vec![table.as_str().into(), index.name.as_str().into()],
            ),
        };
        let exists = db
            .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
            .is_some();
        if exists {
            continue;
        }
        db.execute_unprepared(&index.sql).await?;
        created.push(index.name);
    }
    Ok(created)
}

#[cfg(feature = "migration")]
/// Drops the [`query_indexes`] of `E` that exist.
pub(crate) async fn drop_indexes<E: Resource, C: ConnectionTrait>(
    db: &C,
) -> std::result::Result<(), DbErr> {
    let backend = db.get_database_backend();
    let table = E::default().table_name().to_owned();
    for index in query_indexes::<E>(backend) {
        let sql = match backend {
            // MySQL has no `DROP INDEX IF EXISTS`, and names the table.
            DbBackend::MySql => {
                let exists = db
                    .query_one_raw(Statement::from_sql_and_values(
                        backend,
                        "SELECT 1 FROM information_schema.statistics \
                         WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ? LIMIT 1",
                        [table.as_str().into(), index.name.as_str().into()],
                    ))
                    .await?
                    .is_some();
                if !exists {
                    continue;
                }
                format!("DROP INDEX `{}` ON `{table}`", index.name)
            }
            _ => format!("DROP INDEX IF EXISTS \"{}\"", index.name),
        };
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}
