//! Text equality that is exact on every database, whatever the collation.
//!
//! PostgreSQL (with its deterministic collations) and SQLite (`BINARY`)
//! compare text byte for byte. MySQL and MariaDB compare with the column's
//! collation, and a database created with the server's defaults
//! (`utf8mb4_general_ci` on MariaDB, `utf8mb4_0900_ai_ci` on MySQL 8) makes
//! `'acme' = 'ACME'` true, and every `PAD SPACE` collation (`utf8mb4_bin`
//! too) makes `'acme' = 'acme '` true. Tables Keel creates use a binary
//! `NO PAD` collation, but tables made by the application's own migrations
//! keep whatever their database had.
//!
//! So on MySQL every key, tenant and `=` / `!=` / `IN` comparison of a text
//! value is also compared as bytes: `col = ? AND col = CAST(? AS BINARY)`.
//! The first half lets an index on `col` find the candidates (the
//! collation's notion of equal is wider than the bytes'), the second keeps
//! only the exact ones. Orderings (`<`, `>`, `order_by`) keep the
//! collation's order, which keyset pagination relies on being consistent.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, DbBackend, Value};

pub(crate) fn is_text(value: &Value) -> bool {
    matches!(value, Value::String(Some(_)) | Value::Char(Some(_)))
}

fn bytes_of(value: Value) -> Expr {
    Func::cast_as(value, Alias::new("BINARY")).into()
}

fn column<C: ColumnTrait>(column: C) -> Expr {
    Expr::col(column.as_column_ref())
}

/// `column = value`, exact for text on every backend.
pub(crate) fn eq<C: ColumnTrait>(backend: DbBackend, col: C, value: Value) -> Expr {
    if backend == DbBackend::MySql && is_text(&value) {
        col.eq(value.clone()).and(column(col).eq(bytes_of(value)))
    } else {
        col.eq(value)
    }
}

/// `column != value`, exact for text on every backend (a row with NULL
/// matches neither `=` nor `!=`, as in SQL).
pub(crate) fn ne<C: ColumnTrait>(backend: DbBackend, col: C, value: Value) -> Expr {
    if backend == DbBackend::MySql && is_text(&value) {
        column(col).ne(bytes_of(value))
    } else {
        col.ne(value)
    }
}

/// `column IN (values)`, exact for text on every backend.
pub(crate) fn is_in<C: ColumnTrait>(backend: DbBackend, col: C, values: &[Value]) -> Expr {
    if backend == DbBackend::MySql && values.iter().any(is_text) {
        let bytes: Vec<Expr> = values.iter().cloned().map(bytes_of).collect();
        col.is_in(values.iter().cloned())
            .and(column(col).is_in(bytes))
    } else {
        col.is_in(values.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait, QueryFilter, QueryTrait};

    use super::*;

    #[allow(unreachable_pub)]
    mod label {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
        #[sea_orm(table_name = "labels")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub slug: String,
            pub stars: i32,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
    use label::Column;

    fn sql(backend: DbBackend, expr: Expr) -> String {
        label::Entity::find()
            .filter(expr)
            .build(backend)
            .to_string()
            .split(" WHERE ")
            .nth(1)
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn text_is_compared_as_bytes_on_mysql_only() {
        let rust = || Value::String(Some("rust".into()));
        let mysql = DbBackend::MySql;
        assert_eq!(
            sql(mysql, eq(mysql, Column::Slug, rust())),
            "`labels`.`slug` = 'rust' AND `labels`.`slug` = CAST('rust' AS BINARY)"
        );
        assert_eq!(
            sql(mysql, ne(mysql, Column::Slug, rust())),
            "`labels`.`slug` <> CAST('rust' AS BINARY)"
        );
        assert_eq!(
            sql(mysql, is_in(mysql, Column::Slug, &[rust()])),
            "`labels`.`slug` IN ('rust') AND `labels`.`slug` IN (CAST('rust' AS BINARY))"
        );
        let pg = DbBackend::Postgres;
        assert_eq!(
            sql(pg, eq(pg, Column::Slug, rust())),
            r#""labels"."slug" = 'rust'"#
        );
        // Numbers need nothing.
        assert_eq!(
            sql(mysql, eq(mysql, Column::Stars, Value::Int(Some(3)))),
            "`labels`.`stars` = 3"
        );
    }
}
