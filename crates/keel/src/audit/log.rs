//! Appending to and reading the audit log.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::entry::{self, Column, Entity as AuditTable};
use super::{Change, REDACTED};
use crate::query::{Page, exact};
use crate::{Context, Error, Keel, Resource, Result, WriteAction};

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log (grows with every entry).
    pub id: i64,
    /// Resource name, such as `product`.
    pub entity: String,
    /// The row's key, as text.
    pub entity_id: String,
    /// What happened.
    pub action: String,
    /// Who did it.
    pub actor: String,
    /// For which tenant, if any.
    pub tenant: Option<String>,
    /// The request it was part of.
    pub request_id: String,
    /// When (the write's clock).
    pub at: DateTime<Utc>,
    /// The fields that changed; redacted fields show `"[redacted]"`.
    pub changes: Vec<Change>,
}

impl From<entry::Model> for AuditEntry {
    fn from(row: entry::Model) -> Self {
        AuditEntry {
            id: row.id,
            entity: row.entity,
            entity_id: row.entity_id,
            action: row.action,
            actor: row.actor,
            tenant: row.tenant,
            request_id: row.request_id,
            at: row.at,
            changes: serde_json::from_value(row.changes).unwrap_or_default(),
        }
    }
}

/// Which page of a row's history to read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Entries per page (default and maximum as for lists).
    pub page_size: Option<u32>,
    /// The `next_page_token` of the previous page.
    pub page_token: Option<String>,
}

/// The fields that changed between `old` and `new` (either may be absent:
/// a creation or a removal), compared as the JSON the model serialises to,
/// with the resource's skipped fields left out and its redacted fields masked.
pub(crate) fn resource_changes<E: Resource>(
    old: Option<&E::Model>,
    new: Option<&E::Model>,
) -> Vec<Change> {
    let as_map = |m: Option<&E::Model>| -> Map<String, Value> {
        match m.map(serde_json::to_value) {
            Some(Ok(Value::Object(map))) => map,
            _ => Map::new(),
        }
    };
    let (old, new) = (as_map(old), as_map(new));
    let keys = new
        .keys()
        .chain(old.keys().filter(|k| !new.contains_key(*k)));
    let mut changes = Vec::new();
    for key in keys {
        if E::AUDIT_SKIPPED.contains(&key.as_str()) {
            continue;
        }
        let (before, after) = (
            old.get(key).unwrap_or(&Value::Null),
            new.get(key).unwrap_or(&Value::Null),
        );
        if before == after {
            continue;
        }
        let redacted = E::REDACTED_FIELDS.contains(&key.as_str());
        let mask = |v: &Value| {
            if redacted {
                Value::String(REDACTED.to_owned())
            } else {
                v.clone()
            }
        };
        changes.push(Change {
            field: key.clone(),
            old: mask(before),
            new: mask(after),
        });
    }
    changes
}

/// The columns [`entry_values`] fills, in its order.
pub(crate) const ENTRY_COLUMNS: [Column; 7] = [
    Column::EntityId,
    Column::Entity,
    Column::Action,
    Column::Actor,
    Column::Tenant,
    Column::RequestId,
    Column::At,
];

/// The columns of an audit entry that a write fills before its changes are
/// known, with their values for one write: entity id, entity, action, actor,
/// tenant, request id and time. The key is the database's; the changes
/// ([`Column::Changes`]) are the caller's to add.
pub(crate) fn entry_values<E: Resource>(
    ctx: &Context,
    action: WriteAction,
    entity_id: &str,
    at: DateTime<Utc>,
) -> [(Column, sea_orm::Value); 7] {
    let [
        entity_id_c,
        entity,
        action_c,
        actor,
        tenant,
        request_id,
        at_c,
    ] = ENTRY_COLUMNS;
    [
        (entity_id_c, entity_id.into()),
        (entity, E::NAME.into()),
        (action_c, action.as_str().into()),
        (actor, ctx.actor_name().into()),
        (
            tenant,
            sea_orm::Value::String(ctx.tenant().map(str::to_owned)),
        ),
        (request_id, ctx.request_id().into()),
        (at_c, sea_orm::Value::ChronoDateTimeUtc(Some(at))),
    ]
}

/// The audit table's name and its `changes` column, for statements that
/// write an entry themselves.
pub(crate) fn table() -> AuditTable {
    AuditTable
}

/// Appends the entry of one write (its [`entry_values`] and its changes),
/// inside the write's transaction.
pub(crate) async fn append<C: ConnectionTrait>(
    conn: &C,
    values: [(Column, sea_orm::Value); 7],
    changes: &[Change],
) -> Result<(), DbErr> {
    let mut row = entry::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        changes: sea_orm::ActiveValue::Set(serde_json::to_value(changes).unwrap_or(Value::Null)),
        ..Default::default()
    };
    for (column, value) in values {
        sea_orm::ActiveModelTrait::set(&mut row, column, value);
    }
    AuditTable::insert(row).exec_without_returning(conn).await?;
    Ok(())
}

/// Reads the audit log.
///
/// ```no_run
/// # async fn demo<E: keel::Resource<Key = i64>>(keel: keel::Keel) -> keel::Result<()> {
/// let ctx = keel::Context::actor("auditor");
/// let page = keel.audit_log().history::<E>(&ctx, 7, &Default::default()).await?;
/// for entry in page.items {
///     println!("{} {} by {}: {:?}", entry.at, entry.action, entry.actor, entry.changes);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct AuditLog {
    keel: Keel,
}

impl AuditLog {
    pub(crate) fn new(keel: Keel) -> Self {
        AuditLog { keel }
    }

    /// The entries of row `id` of resource `E`, newest first, one page at a time.
    ///
    /// For a tenant-scoped resource only the context's tenant's entries are
    /// returned. Errors: `INVALID_ARGUMENT` for a page size out of range or a
    /// token that is not this history's.
    pub async fn history<E: Resource>(
        &self,
        ctx: &Context,
        id: impl Into<E::Key>,
        query: &HistoryQuery,
    ) -> Result<Page<AuditEntry>> {
        let id = id.into().to_string();
        let config = self.keel.config();
        let size = config.page.size(query.page_size)?;
        let backend = self.keel.backend();
        let mut scope = Condition::all()
            .add(Column::Entity.eq(E::NAME))
            .add(exact::eq(backend, Column::EntityId, id.clone().into()));
        if E::COLUMNS.tenant.is_some() {
            let tenant = ctx.require_tenant(E::PLURAL)?;
            scope = scope.add(exact::eq(backend, Column::Tenant, tenant.into()));
        }
        let shape = format!("{}|{id}|{}", E::NAME, ctx.tenant().unwrap_or(""));
        if let Some(token) = &query.page_token {
            let last = self.keel.signer().open(token, "keel_audit", &shape)?;
            let before = last.first().and_then(Value::as_i64).ok_or_else(|| {
                Error::invalid_argument("page_token", "page_token is invalid or was tampered with")
            })?;
            scope = scope.add(Column::Id.lt(before));
        }
        let rows = ctx
            .within_deadline(async {
                AuditTable::find()
                    .filter(scope)
                    .order_by_desc(Column::Id)
                    .limit(u64::from(size) + 1)
                    .all(self.keel.db())
                    .await
                    .map_err(Error::from)
            })
            .await?;
        let more = rows.len() > size as usize;
        let items: Vec<AuditEntry> = rows
            .into_iter()
            .take(size as usize)
            .map(AuditEntry::from)
            .collect();
        let next_page_token = match (more, items.last()) {
            (true, Some(last)) => Some(self.keel.signer().issue(
                "keel_audit",
                &shape,
                vec![Value::from(last.id)],
            )),
            _ => None,
        };
        Ok(Page {
            items,
            next_page_token,
            total_size: None,
        })
    }
}

/// Creates `keel_audit` and its index when the table does not exist yet,
/// and brings one made by an older Keel up to date (MySQL: exact text,
/// microsecond times). `collation` is the server's exact collation (MySQL).
pub(crate) async fn create_table<C: ConnectionTrait>(
    db: &C,
    collation: Option<&str>,
) -> std::result::Result<(), DbErr> {
    if crate::schema::table_exists(db, "keel_audit").await? {
        return crate::schema::upgrade_audit_table(db, collation).await;
    }
    db.execute(&crate::schema::create_table(
        AuditTable,
        db.get_database_backend(),
        collation,
    ))
    .await?;
    let index = sea_orm::sea_query::Index::create()
        .name("keel_audit_entity_row")
        .table(AuditTable)
        .col(Column::Entity)
        .col(Column::EntityId)
        .col(Column::Id)
        .to_owned();
    db.execute(&index).await?;
    Ok(())
}

#[cfg(feature = "migration")]
/// Drops `keel_audit` (with its history).
pub(crate) async fn drop_table<C: ConnectionTrait>(db: &C) -> std::result::Result<(), DbErr> {
    db.execute_unprepared("DROP TABLE IF EXISTS keel_audit")
        .await
        .map(|_| ())
}
