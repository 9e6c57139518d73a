//! Sortable text longer than MySQL / MariaDB sort exactly.
//!
//! They sort a text value by its first `max_sort_length` bytes of
//! collation weights (1024 by default: 256 `utf8mb4` characters); values
//! that agree that far tie, and fall back to the next sort key, while a
//! keyset page's condition (`col > ?`) compares whole values: pages would
//! skip and repeat rows. Every connection Keel opens raises the setting
//! (`MAX_SORT_LENGTH`), which covers every `utf8mb4` `VARCHAR`; a column
//! that can hold longer values than a sort compares (`TEXT` and up) is
//! refused as a sort key ([`check_sortable`]) and reported by
//! [`Keel::check_schema`].

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sea_orm::{ConnectionTrait, DbBackend, IdenStatic, Statement};

use crate::query::OrderBy;
use crate::sync::Unpoison as _;
use crate::{Error, Keel, Resource, Result};

/// Run on each new MySQL / MariaDB connection: text sorts compare up to
/// 65,535 bytes of weights (16,383 `utf8mb4` characters), or less where the
/// sort buffer is small. A sort whose keys may be `max_sort_length` long
/// needs about 16 of them in its buffer (else `Out of sort memory`, even
/// when sorting a `MEDIUMTEXT` the application's own queries ask for), so
/// it stays at a 32nd of `sort_buffer_size`, and never lowers the
/// server's own setting.
#[cfg(feature = "mysql")]
pub(crate) const MAX_SORT_LENGTH: &str = "SET SESSION max_sort_length = \
     GREATEST(@@max_sort_length, LEAST(65535, @@sort_buffer_size DIV 32))";

/// The sortable text columns of a resource its database cannot sort
/// exactly, looked up once per resource.
pub(crate) type LongTextCells = Mutex<HashMap<TypeId, Arc<tokio::sync::OnceCell<Arc<[LongText]>>>>>;

/// A sortable column that can hold text longer than MySQL / MariaDB
/// compare when they sort.
#[derive(Clone, Debug)]
pub(crate) struct LongText {
    /// The field's API name.
    pub(crate) field: &'static str,
    /// The column's type (`text`, `varchar`, ...).
    pub(crate) data_type: String,
    /// The longest value it can hold, in characters.
    pub(crate) max_chars: i64,
    /// The characters a sort compares (`max_sort_length` / the character
    /// set's bytes per character).
    pub(crate) sorted_chars: i64,
}

impl LongText {
    pub(super) fn problem(&self) -> String {
        format!(
            "`order_by` on it is refused: this server sorts text by its first {} characters, \
             and a {} column holds up to {} (rows that agree that far would tie, and keyset \
             pages skip or repeat them)",
            self.sorted_chars, self.data_type, self.max_chars
        )
    }
}

/// Refuses an order the database cannot give exactly: on MySQL / MariaDB,
/// a sort key whose column can hold text longer than the server compares.
pub(crate) async fn check_sortable<E: Resource>(keel: &Keel, order: &OrderBy<E>) -> Result<()> {
    use sea_orm::sea_query::ArrayType;
    if keel.backend() != DbBackend::MySql {
        return Ok(());
    }
    let requested = &order.keys()[..order.requested()];
    let texts = || {
        requested.iter().filter(|k| {
            matches!(
                crate::resource::value::column_type::<E>(k.column),
                ArrayType::String | ArrayType::Char | ArrayType::Bytes
            )
        })
    };
    if texts().next().is_none() {
        return Ok(());
    }
    let long = long_text::<E>(keel).await?;
    for key in texts() {
        if let Some(found) = long.iter().find(|l| l.field == key.name) {
            return Err(Error::invalid_argument(
                "order_by",
                format!(
                    "invalid order_by: cannot sort by `{}` on this database: it compares the first \
                     {} characters of a value when it sorts, and `{}` can hold longer values",
                    key.name, found.sorted_chars, key.name
                ),
            ));
        }
    }
    Ok(())
}

/// The sortable fields of `E` whose column can hold more characters than a
/// sort compares (MySQL), looked up once per resource and `Keel`.
pub(super) async fn long_text<E: Resource>(keel: &Keel) -> Result<Arc<[LongText]>> {
    let cell = keel
        .long_text_cells()
        .lock()
        .unpoisoned()
        .entry(TypeId::of::<E>())
        .or_default()
        .clone();
    cell.get_or_try_init(|| lookup_long_text::<E>(keel))
        .await
        .cloned()
}

async fn lookup_long_text<E: Resource>(keel: &Keel) -> Result<Arc<[LongText]>> {
    let table = E::default().table_name().to_owned();
    let rows = keel
        .db()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT c.COLUMN_NAME AS name, c.DATA_TYPE AS data_type, \
             CAST(c.CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS max_chars, \
             CAST(COALESCE(cs.MAXLEN, 1) AS SIGNED) AS bytes_per_char, \
             CAST(@@max_sort_length AS SIGNED) AS sort_bytes \
             FROM information_schema.COLUMNS c LEFT JOIN information_schema.CHARACTER_SETS cs \
             ON cs.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME \
             WHERE c.TABLE_SCHEMA = DATABASE() AND c.TABLE_NAME = ? \
             AND c.CHARACTER_MAXIMUM_LENGTH IS NOT NULL",
            [table.into()],
        ))
        .await
        .map_err(Error::from)?;
    let mut long = Vec::new();
    for row in &rows {
        let (Ok(name), Ok(data_type), Ok(max_chars), Ok(per_char), Ok(sort_bytes)) = (
            row.try_get::<String>("", "name"),
            row.try_get::<String>("", "data_type"),
            row.try_get::<i64>("", "max_chars"),
            row.try_get::<i64>("", "bytes_per_char"),
            row.try_get::<i64>("", "sort_bytes"),
        ) else {
            continue;
        };
        let Some(field) = E::FIELDS
            .iter()
            .find(|f| f.sortable && f.column.as_str() == name)
        else {
            continue;
        };
        let sorted_chars = sort_bytes / per_char.max(1);
        if max_chars > sorted_chars {
            long.push(LongText {
                field: field.name,
                data_type,
                max_chars,
                sorted_chars,
            });
        }
    }
    Ok(long.into())
}
