//! Writes that are one statement: create and update on PostgreSQL.
//!
//! A write in a transaction of its own costs PostgreSQL five statements
//! (`BEGIN`, `SELECT … FOR UPDATE`, the write, the audit `INSERT`,
//! `COMMIT`). When nothing needs that transaction (no hooks, no transaction
//! of the caller's), a create or an update runs instead as one statement,
//! which commits on its own: one round trip. The row and its audit entry
//! still commit together or not at all.
//!
//! An update reads the row, locks it, checks the expected version, writes
//! the changed columns, works out the diff and appends the audit entry, all
//! in one statement; it returns the row before and after:
//!
//! ```sql
//! WITH "keel_old" AS (SELECT * FROM "products" WHERE "id" = $1 AND "deleted_at" IS NULL FOR UPDATE),
//!      "keel_new" AS (UPDATE "products" AS "keel_t" SET "price_cents" = $2, "updated_at" = $3,
//!                       "version" = "keel_t"."version" + 1
//!                     FROM "keel_old" WHERE "keel_t"."id" = "keel_old"."id"
//!                       AND ("keel_t"."price_cents" IS DISTINCT FROM $2)
//!                     RETURNING "keel_t".*),
//!      "keel_entry" AS (INSERT INTO "keel_audit" (…, "changes")
//!                       SELECT $4, …, <the diff of keel_old and keel_new> FROM "keel_old", "keel_new"
//!                       RETURNING "changes")
//! SELECT false AS "keel_is_new", …, "keel_old".* UNION ALL SELECT true, …, "keel_new".*
//! ```
//!
//! The diff covers the written columns only, and PostgreSQL encodes each
//! value once, as the model serialises it; so only columns whose JSON
//! PostgreSQL writes exactly as serde does take this path (integers, text,
//! booleans, UUIDs and `DateTime<Utc>` timestamps in `timestamptz`; debug
//! builds check every such diff against the one worked out in Rust). The
//! statement's text depends only on the resource and on which columns are
//! written, and is built once for each.
//!
//! A create works out its audit entry before the statement runs, so only
//! creates whose stored values are known in advance take this path: every
//! value written is of a type PostgreSQL stores exactly as sent; the one
//! value the database assigns, an auto-increment key, is put into the entry
//! by the statement itself:
//!
//! ```sql
//! WITH "keel_row" AS (INSERT INTO "products" (…) VALUES (…) RETURNING …),
//!      "keel_entry" AS (INSERT INTO "keel_audit" (…) SELECT $7, … FROM "keel_row")
//! SELECT * FROM "keel_row"
//! ```
//!
//! With the transactional outbox on, the event is one more part of the same
//! statement: a create builds it from the predicted row (the assigned key
//! put into its subject and row by the statement); an update builds its
//! envelope, and the statement adds the row (every column must be one
//! PostgreSQL writes exactly) and the changes of its audit entry:
//! `"keel_outbox" AS (INSERT INTO keel_outbox (…) SELECT $n, $m, $p || json_build_object(…)::text || … FROM "keel_new")`.
//! Debug builds check each such event against the transaction path's.
//!
//! Anything else takes the general path, a transaction.
//!
//! Once sent, a one-statement write is a commit, which nothing cuts off
//! half way: the context's deadline is checked before it is sent, and an
//! update hands the time left to PostgreSQL as the statement's own
//! `lock_timeout`, so a deadline that passes while it waits for the row's
//! lock fails the statement there (nothing written). It runs on a task of its own,
//! together with what follows its commit (cache invalidation, event), so a
//! caller that goes away meanwhile (a closed connection) cannot leave a
//! committed write with its cached row still served.

use std::any::TypeId;
use std::sync::Arc;

use sea_orm::sea_query::{Alias, ArrayType, ColumnType, Expr, PostgresQueryBuilder, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName,
    EntityTrait, FromQueryResult, IdenStatic, Iterable, ModelTrait, PrimaryKeyTrait, QueryTrait,
    Statement, Value,
};

use super::BaseService;
use super::plan::WritePlan;
use super::texts::Texts;
use super::write::{ActiveModelOf, HookSlice};
use crate::audit::{self, Change, EntryColumn};
use crate::event::Event;
use crate::query::primary_key_column;
use crate::resource::SchemaType;
use crate::resource::value::{self, FieldType, column_type};
use crate::{Context, Error, Resource, Result, WriteAction};

/// What became of a write offered to the one-statement path.
pub(super) enum Single<T> {
    /// It ran as one statement; this is its outcome.
    Ran(Result<T>),
    /// It cannot run as one statement: take the general path.
    Declined,
}

/// Where the audit entry's `entity_id` comes from.
enum EntityId {
    /// Known before the statement.
    Known,
    /// The key the statement assigns; its value also goes into the entry's
    /// changes at this index, if the key is among them.
    Assigned(Option<usize>),
}

/// An update's rows: before, and after (`None`: it wrote nothing), with the
/// changes its audit entry recorded.
struct Updated<M> {
    old: Option<M>,
    new: Option<M>,
    changes: Option<serde_json::Value>,
}

impl<E: Resource> BaseService<E> {
    /// Whether a write may run as one statement at all.
    fn single_statement(&self, hooks: HookSlice<'_, E>) -> bool {
        self.tx.is_none() && hooks.is_empty() && self.keel.backend() == DbBackend::Postgres
    }

    /// Runs `work` (one statement and what follows its commit) on a task of
    /// its own, so that it finishes even if the caller is dropped; refused
    /// if the context's deadline has passed already.
    async fn detached<T: Send + 'static>(
        &self,
        ctx: &Context,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        if ctx
            .deadline()
            .is_some_and(|d| tokio::time::Instant::now() >= d)
        {
            return Err(Error::DeadlineExceeded);
        }
        match tokio::spawn(work).await {
            Ok(value) => Ok(value),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(Error::internal(format!(
                "{}: the runtime shut down during a write",
                E::NAME
            ))),
        }
    }

    /// [`create`](Self::create) as one statement, if it can be.
    pub(super) async fn create_single(
        &self,
        ctx: &Context,
        hooks: HookSlice<'_, E>,
        input: &E::Create,
    ) -> Single<E::Model> {
        if !self.single_statement(hooks) {
            return Single::Declined;
        }
        let Some(key_name) = E::SCHEMA.iter().find(|f| f.key).map(|f| f.name) else {
            return Single::Declined;
        };
        let pk = primary_key_column::<E>();
        let assigned = <E::PrimaryKey as PrimaryKeyTrait>::auto_increment();
        let mut model = E::create_model(input.clone());
        if let Err(err) = self.fill_new(ctx, &mut model) {
            return Single::Ran(Err(err));
        }
        for column in E::Column::iter() {
            match model.get(column) {
                ActiveValue::Set(v) if stored_exactly(column.def().get_column_type(), &v) => {}
                ActiveValue::NotSet if assigned && is_same(column, pk) => {}
                _ => return Single::Declined,
            }
        }
        // The row as it will be stored; an assigned key is a stand-in until
        // the statement knows it.
        let mut full = model.clone();
        if assigned {
            let Some(stand_in) = value::integer(&column_type::<E>(pk), 0) else {
                return Single::Declined;
            };
            if full.try_set(pk, stand_in).is_err() {
                return Single::Declined;
            }
        }
        let Some(predicted) = E::row_of(full) else {
            return Single::Declined;
        };
        let changes = audit::resource_changes::<E>(None, Some(&predicted));
        let (entity_id, key) = if assigned {
            let at = changes
                .iter()
                .position(|c| c.field == key_name && !E::REDACTED_FIELDS.contains(&key_name));
            (EntityId::Assigned(at), String::new())
        } else {
            match Self::key_of(&predicted) {
                Some(key) => (EntityId::Known, key.to_string()),
                None => return Single::Declined,
            }
        };
        let mut plan = WritePlan::new(WriteAction::Created, key);
        // With the outbox on, the event is one more part of the statement:
        // built here from the predicted row, the assigned key (in its
        // subject and its row) put in by the statement.
        let outbox = self.keel.outbox_enabled().then(|| {
            let nonce = OutboxRow::nonce();
            let subject = if assigned {
                nonce.clone()
            } else {
                plan.key.clone()
            };
            let service = &self.keel.config().service_name;
            let mut event = Event::for_write::<E>(
                ctx,
                service,
                WriteAction::Created,
                subject,
                &predicted,
                None,
            );
            if assigned
                && let Some(v) = event.data["row"].get_mut(key_name)
                && !E::REDACTED_FIELDS.contains(&key_name)
            {
                *v = serde_json::Value::String(nonce.clone());
            }
            OutboxRow::new(&event, &nonce)
        });
        let unique = Self::unique_candidates(&model);
        // Every column is set (but an assigned key), so the statement's
        // text depends only on the resource and on where the key goes in
        // the entry: built once, its values bound per call.
        let inserted: Vec<Value> = E::Column::iter()
            .filter_map(|column| match model.get(column) {
                ActiveValue::Set(v) => Some(v),
                _ => None,
            })
            .collect();
        let build = || {
            let mut insert = E::insert(model.clone()).into_query();
            insert.returning(returning::<E>());
            DbBackend::Postgres.build(&insert)
        };
        static TEXTS: Texts<(TypeId, Option<Option<usize>>, Option<usize>)> = Texts::new();
        let shape = match entity_id {
            EntityId::Known => None,
            EntityId::Assigned(at) => Some(at),
        };
        let gaps = outbox.as_ref().map(OutboxRow::gaps);
        let Some(sql) = TEXTS.get_or_build((TypeId::of::<E>(), shape, gaps), || {
            let insert = build();
            Some(insert_with_entry_sql::<E>(
                &insert.sql,
                inserted.len(),
                &entity_id,
                gaps,
            ))
        }) else {
            return Single::Declined;
        };
        let mut values =
            insert_with_entry_values(inserted, plan.audit_values::<E>(ctx), &entity_id, &changes);
        let event_id = outbox.as_ref().map(|o| o.event_id.clone());
        if let Some(outbox) = outbox {
            values.extend(outbox.values());
        }
        if cfg!(debug_assertions) {
            // The text and the values are sea-query's, in its order.
            let insert = build();
            let built = insert_with_entry_sql::<E>(
                &insert.sql,
                insert.values.as_ref().map_or(0, |v| v.0.len()),
                &entity_id,
                gaps,
            );
            debug_assert_eq!(&*sql, built.as_str());
            let expected = insert.values.map(|v| v.0).unwrap_or_default();
            debug_assert_eq!(&values[..expected.len()], &expected[..]);
        }
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql.as_ref(), values);
        let (service, task_ctx) = (self.clone(), ctx.clone());
        let outcome = self
            .detached(ctx, async move {
                let row = match service.keel.db().query_one_raw(statement).await? {
                    Some(row) => E::Model::from_query_result(&row, "")?,
                    None => return Ok(None),
                };
                if let Some(key) = Self::key_of(&row) {
                    plan.key = key.to_string();
                    if let Some(id) = &event_id {
                        debug_assert_event::<E>(&service, &task_ctx, id, &plan.key, &row, None)
                            .await;
                    }
                    plan.after_statement(&service, &task_ctx, &row, Vec::new)
                        .run(&service.keel)
                        .await;
                }
                Ok::<_, DbErr>(Some(row))
            })
            .await;
        match outcome {
            Err(err) => Single::Ran(Err(err)),
            Ok(Ok(Some(row))) => {
                if cfg!(debug_assertions) {
                    let mut predicted = predicted;
                    if assigned {
                        predicted.set(pk, row.get(pk));
                    }
                    debug_assert_same_row::<E>(&predicted, &row);
                }
                Single::Ran(Ok(row))
            }
            Ok(Ok(None)) => Single::Ran(Err(Error::internal(format!(
                "{}: the insert returned no row",
                E::NAME
            )))),
            Ok(Err(err)) => {
                let failure = self.statement_error(err, unique, None);
                Single::Ran(Err(self.explain(ctx, failure).await))
            }
        }
    }

    /// [`update`](Self::update) as one statement, if it can be.
    pub(super) async fn update_single(
        &self,
        ctx: &Context,
        hooks: HookSlice<'_, E>,
        id: &E::Key,
        patch: &E::Patch,
        expected: Option<i64>,
    ) -> Single<E::Model> {
        if !self.single_statement(hooks) {
            return Single::Declined;
        }
        let c = E::COLUMNS;
        // The deadline bounds the wait for the row's lock: PostgreSQL's
        // `lock_timeout`, set for this statement alone, by the statement.
        let lock_timeout = ctx.deadline().map(|d| {
            let left = d.saturating_duration_since(tokio::time::Instant::now());
            format!("{}ms", left.as_millis().max(1))
        });
        let mut values: Vec<Value> = vec![id.clone().into(), Value::String(lock_timeout)];
        if c.tenant.is_some() {
            match self.tenant_of(ctx) {
                Ok(tenant) => values.push(tenant.into()),
                Err(err) => return Single::Ran(Err(err)),
            }
        }
        if let Some(expected) = expected {
            let Some(expected) = c
                .version
                .and_then(|v| value::integer(&column_type::<E>(v), expected))
            else {
                return Single::Declined;
            };
            values.push(expected);
        }
        // What the patch writes: never the key nor a server-owned column.
        let mut model = <ActiveModelOf<E> as ActiveModelTrait>::default();
        E::apply_patch(patch.clone(), &mut model);
        model.not_set(primary_key_column::<E>());
        for (column, _) in Self::server_columns() {
            model.not_set(column);
        }
        let mut shape = Shape {
            written: 0,
            compared: 0,
            expected: expected.is_some(),
            event: self.keel.outbox_enabled(),
        };
        for (i, column) in E::Column::iter().enumerate() {
            if model.get(column).is_set() {
                shape.compared |= bit(i);
            }
        }
        if shape.compared == 0 {
            // Nothing to write: the general path reads the row and returns it.
            return Single::Declined;
        }
        let plan = WritePlan::new(WriteAction::Updated, id.to_string());
        if let Some(column) = c.updated_at
            && let Err(err) = Self::set(
                &mut model,
                column,
                value::timestamp(&column_type::<E>(column), plan.at),
                "updated_at",
            )
        {
            return Single::Ran(Err(err));
        }
        if let Some(column) = c.updated_by
            && let Err(err) = Self::set(
                &mut model,
                column,
                Some(Value::String(Some(ctx.actor_name().to_owned()))),
                "updated_by",
            )
        {
            return Single::Ran(Err(err));
        }
        for (i, column) in E::Column::iter().enumerate() {
            let ActiveValue::Set(v) = model.get(column) else {
                continue;
            };
            if i >= 64 {
                return Single::Declined;
            }
            shape.written |= bit(i);
            values.push(v);
        }
        // `None`: a written column PostgreSQL cannot diff as the model
        // would (decided once per shape, with the statement's text).
        let Some(sql) = update_sql::<E>(shape) else {
            return Single::Declined;
        };
        let unique = Self::unique_candidates(&model);
        values.extend(plan.audit_values::<E>(ctx).into_iter().map(|(_, v)| v));
        // The row before is sent back when it is the answer (nothing written,
        // or a version conflict), and in debug builds, which check the diff;
        // the changes, when the event wants them (and in debug builds).
        let debug = cfg!(debug_assertions);
        values.push(Value::Bool(Some(debug)));
        // (With the outbox on, the statement writes the event itself.)
        values.push(Value::Bool(Some(
            debug || (!shape.event && self.wants_event(WriteAction::Updated)),
        )));
        // With the outbox on, the event is one more part of the statement:
        // its envelope built here, its row and changes by the statement.
        let event_id = shape.event.then(|| {
            let nonce = OutboxRow::nonce();
            let event = Event::write_shell::<E>(
                ctx,
                &self.keel.config().service_name,
                WriteAction::Updated,
                plan.key.clone(),
                serde_json::json!({ "row": nonce, "changes": nonce }),
            );
            let outbox = OutboxRow::new(&event, &nonce);
            let id = outbox.event_id.clone();
            values.extend(outbox.values());
            id
        });
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql.as_ref(), values);
        let (service, task_ctx) = (self.clone(), ctx.clone());
        let outcome = self
            .detached(ctx, async move {
                let rows = service.keel.db().query_all_raw(statement).await?;
                let mut updated = Updated {
                    old: None,
                    new: None,
                    changes: None,
                };
                for row in &rows {
                    let model = E::Model::from_query_result(row, "")?;
                    if row.try_get::<bool>("", "keel_is_new")? {
                        updated.changes = row.try_get("", "keel_changes")?;
                        updated.new = Some(model);
                    } else {
                        updated.old = Some(model);
                    }
                }
                if let Some(new) = &updated.new {
                    let changes = &updated.changes;
                    if let Some(id) = &event_id {
                        let recorded = recorded(changes);
                        debug_assert_event::<E>(
                            &service,
                            &task_ctx,
                            id,
                            &plan.key,
                            new,
                            Some(&recorded),
                        )
                        .await;
                    }
                    plan.after_statement(&service, &task_ctx, new, || recorded(changes))
                        .run(&service.keel)
                        .await;
                }
                Ok::<_, DbErr>(updated)
            })
            .await;
        let updated = match outcome {
            Err(err) => return Single::Ran(Err(err)),
            Ok(Ok(updated)) => updated,
            Ok(Err(_))
                if ctx
                    .deadline()
                    .is_some_and(|d| tokio::time::Instant::now() >= d) =>
            {
                // Out of time waiting for the lock: nothing was written.
                return Single::Ran(Err(Error::DeadlineExceeded));
            }
            Ok(Err(err)) => {
                let failure = self.statement_error(err, unique, Some(id.clone()));
                return Single::Ran(Err(self.explain(ctx, failure).await));
            }
        };
        match (updated.old, updated.new) {
            // Written: the statement checked the expected version.
            (old, Some(new)) => {
                if cfg!(debug_assertions) {
                    let old = old.expect("debug builds get the row before");
                    assert_eq!(
                        recorded(&updated.changes),
                        audit::resource_changes::<E>(Some(&old), Some(&new)),
                        "{}: PostgreSQL's diff differs from the model's",
                        E::NAME
                    );
                }
                Single::Ran(Ok(new))
            }
            // Another version than expected, or a patch that changed
            // nothing: nothing was written.
            (Some(old), None) => match Self::check_version(expected, &old) {
                Ok(()) => Single::Ran(Ok(old)),
                Err(err) => Single::Ran(Err(err)),
            },
            (None, None) => Single::Ran(Err(Self::not_found(id))),
        }
    }
}

/// The changes an update's audit entry recorded, as PostgreSQL wrote them.
fn recorded(changes: &Option<serde_json::Value>) -> Vec<Change> {
    changes
        .as_ref()
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

/// Which columns a one-statement update writes (bit `i`: the `i`th column),
/// which of them the patch set (the statement writes only if one of those
/// changes), and whether it checks an expected version. The statement's text
/// depends on nothing else.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Shape {
    written: u64,
    compared: u64,
    expected: bool,
    /// Whether the statement writes the event to the outbox.
    event: bool,
}

fn bit(i: usize) -> u64 {
    1u64.checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// The text of the one-statement update of `shape`, built once per resource
/// and shape; `None` (also kept) when the shape cannot be one statement.
fn update_sql<E: Resource>(shape: Shape) -> Option<Arc<str>> {
    static TEXTS: Texts<(TypeId, Shape)> = Texts::new();
    TEXTS.get_or_build((TypeId::of::<E>(), shape), || build_update_sql::<E>(shape))
}

/// Builds the statement `update_single` runs. Its parameters, in order: the
/// key; the lock timeout (`NULL`: the session's); the tenant, if the
/// resource has one; the expected version, if
/// `shape` checks one; the value of each written column, in column order;
/// the audit entry's values (`audit::entry_values`); whether to send the
/// row before back even when the row was written; whether to send the
/// recorded changes back. `None` when a written column (or the version) is
/// not one whose JSON PostgreSQL writes as the model serialises it.
fn build_update_sql<E: Resource>(shape: Shape) -> Option<String> {
    let c = E::COLUMNS;
    let table = table_ref::<E>();
    let pk = quoted(primary_key_column::<E>().as_str());
    let mut n = 2;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    // `set_config(…, true)` lasts until the end of the transaction, which is
    // this statement; it runs before the row is locked (the lock is taken
    // on the rows the scan and its filters return).
    let mut old_where = vec![
        format!("{pk} = $1"),
        "coalesce(set_config('lock_timeout', $2, true), '') IS NOT NULL".to_owned(),
    ];
    if let Some(tenant) = c.tenant {
        old_where.push(format!("{} = {}", quoted(tenant.as_str()), next()));
    }
    if let Some(deleted_at) = c.deleted_at {
        old_where.push(format!("{} IS NULL", quoted(deleted_at.as_str())));
    }
    let mut new_where = vec![format!("\"keel_t\".{pk} = \"keel_old\".{pk}")];
    if let (true, Some(version)) = (shape.expected, c.version) {
        new_where.push(format!(
            "\"keel_old\".{} = {}",
            quoted(version.as_str()),
            next()
        ));
    }
    let mut sets = Vec::new();
    let mut distinct = Vec::new();
    let mut diffs = Vec::new();
    for (i, column) in E::Column::iter().enumerate() {
        let col = quoted(column.as_str());
        let is_version = c.version.is_some_and(|v| is_same(v, column));
        if shape.written & bit(i) != 0 {
            let p = next();
            if shape.compared & bit(i) != 0 {
                distinct.push(format!("\"keel_t\".{col} IS DISTINCT FROM {p}"));
            }
            sets.push(format!("{col} = {p}"));
        } else if is_version {
            sets.push(format!("{col} = \"keel_t\".{col} + 1"));
        } else {
            continue;
        }
        let (name, json) = (field_name::<E>(column)?, json_of::<E>(column)?);
        if E::AUDIT_SKIPPED.contains(&name) {
            continue;
        }
        let (old, new) = (format!("\"keel_old\".{col}"), format!("\"keel_new\".{col}"));
        let (old_json, new_json) = if E::REDACTED_FIELDS.contains(&name) {
            let masked = format!("to_jsonb({}::text)", literal(audit::REDACTED));
            (masked.clone(), masked)
        } else {
            (json.sql(&old), json.sql(&new))
        };
        diffs.push(format!(
            "CASE WHEN {old} IS DISTINCT FROM {new} THEN jsonb_build_object('field', {}, 'old', {old_json}, 'new', {new_json}) END",
            literal(name)
        ));
    }
    new_where.push(format!("({})", distinct.join(" OR ")));
    let changes = if diffs.is_empty() {
        "'[]'::jsonb".to_owned()
    } else {
        format!(
            "to_jsonb(array_remove(ARRAY[{}]::jsonb[], NULL))",
            diffs.join(", ")
        )
    };
    let changes_column = quoted(EntryColumn::Changes.as_str());
    let mut entry_columns = Vec::new();
    let mut entry_values = Vec::new();
    for column in audit::ENTRY_COLUMNS {
        entry_columns.push(quoted(column.as_str()));
        entry_values.push(next());
    }
    entry_columns.push(changes_column.clone());
    entry_values.push(changes);
    let (old_always, send_changes) = (next(), next());
    // The event's row, as the model serialises it (redacted fields
    // masked): every column must be one PostgreSQL writes exactly.
    let outbox = if shape.event {
        let mut fields = Vec::new();
        for column in E::Column::iter() {
            let (name, json) = (field_name::<E>(column)?, json_of::<E>(column)?);
            let value = if E::REDACTED_FIELDS.contains(&name) {
                format!("to_jsonb({}::text)", literal(audit::REDACTED))
            } else {
                json.sql(&format!("\"keel_new\".{}", quoted(column.as_str())))
            };
            fields.push(format!("{}, {value}", literal(name)));
        }
        let row = format!("json_build_object({})::text", fields.join(", "));
        let changes = format!("(SELECT {changes_column}::text FROM \"keel_entry\")");
        format!(
            ", {}",
            outbox_cte(&mut next, "\"keel_new\"", &[row, changes])
        )
    } else {
        String::new()
    };
    Some(format!(
        "WITH \"keel_old\" AS (SELECT * FROM {table} WHERE {} FOR UPDATE), \
         \"keel_new\" AS (UPDATE {table} AS \"keel_t\" SET {} FROM \"keel_old\" WHERE {} RETURNING \"keel_t\".*), \
         \"keel_entry\" AS (INSERT INTO {} ({}) SELECT {} FROM \"keel_old\", \"keel_new\" RETURNING {changes_column}){outbox} \
         SELECT false AS \"keel_is_new\", NULL::jsonb AS \"keel_changes\", {} FROM \"keel_old\" \
         WHERE {old_always} OR NOT EXISTS (SELECT 1 FROM \"keel_new\") \
         UNION ALL SELECT true, CASE WHEN {send_changes} THEN (SELECT {changes_column}::jsonb FROM \"keel_entry\") END, {} \
         FROM \"keel_new\"",
        old_where.join(" AND "),
        sets.join(", "),
        new_where.join(" AND "),
        quoted(audit::table().table_name()),
        entry_columns.join(", "),
        entry_values.join(", "),
        select_list::<E>("keel_old"),
        select_list::<E>("keel_new"),
    ))
}

/// How PostgreSQL writes a column's value as the JSON the model serialises
/// it to.
#[derive(Clone, Copy)]
enum Json {
    /// `to_jsonb` is exact: integers, text, booleans, UUIDs.
    Plain,
    /// `DateTime<Utc>` in a `timestamptz`: RFC 3339 in UTC with `Z`, and 0,
    /// 3 or 6 fractional digits, as chrono writes it.
    Utc,
}

impl Json {
    fn sql(self, expr: &str) -> String {
        match self {
            Json::Plain => format!("to_jsonb({expr})"),
            Json::Utc => {
                let t = format!("({expr} AT TIME ZONE 'UTC')");
                format!(
                    "to_jsonb(to_char({t}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE \
                     WHEN extract(microseconds FROM {t})::bigint % 1000000 = 0 THEN '' \
                     WHEN extract(microseconds FROM {t})::bigint % 1000 = 0 THEN to_char({t}, '.MS') \
                     ELSE to_char({t}, '.US') END || 'Z')"
                )
            }
        }
    }
}

/// How PostgreSQL writes `column`'s JSON, if it can write it exactly as the
/// model serialises it.
fn json_of<E: Resource>(column: E::Column) -> Option<Json> {
    let name = field_name::<E>(column)?;
    let schema = E::SCHEMA.iter().find(|f| f.name == name)?;
    let stored = column.def().get_column_type().clone();
    let value = column_type::<E>(column);
    match (schema.ty, FieldType::of(&value), stored) {
        (SchemaType::Int32 | SchemaType::Int64, FieldType::Int, ty) if is_integer(&ty) => {
            Some(Json::Plain)
        }
        (SchemaType::String, FieldType::Text, ColumnType::String(_) | ColumnType::Text)
            if value == ArrayType::String =>
        {
            Some(Json::Plain)
        }
        (SchemaType::Boolean, FieldType::Bool, ColumnType::Boolean)
        | (SchemaType::Uuid, FieldType::Uuid, ColumnType::Uuid) => Some(Json::Plain),
        (SchemaType::DateTime, _, ColumnType::TimestampWithTimeZone)
            if value == ArrayType::ChronoDateTimeUtc =>
        {
            Some(Json::Utc)
        }
        _ => None,
    }
}

/// The API name of `column`.
fn field_name<E: Resource>(column: E::Column) -> Option<&'static str> {
    E::FIELDS
        .iter()
        .find(|f| is_same(f.column, column))
        .map(|f| f.name)
}

/// The table of `E`, quoted (with its schema, if it names one).
fn table_ref<E: EntityTrait>() -> String {
    let entity = E::default();
    match entity.schema_name() {
        Some(schema) => format!("{}.{}", quoted(schema), quoted(entity.table_name())),
        None => quoted(entity.table_name()),
    }
}

/// Every column of `E` read from `from`, as the model expects it (enum
/// columns cast to text, for instance): `"from".*` when no column needs
/// more than its name, which keeps the statement's text short.
fn select_list<E: EntityTrait>(from: &str) -> String {
    let render = |cast: bool| {
        let mut select = Query::select();
        for column in E::Column::iter() {
            let read = Expr::col((Alias::new(from), column));
            select.expr_as(
                if cast { column.select_as(read) } else { read },
                Alias::new(column.as_str()),
            );
        }
        let sql = select.to_string(PostgresQueryBuilder);
        sql.strip_prefix("SELECT ").unwrap_or(&sql).to_owned()
    };
    let cast = render(true);
    if cast == render(false) {
        format!("{}.*", quoted(from))
    } else {
        cast
    }
}

/// The text of `insert` (an insert returning the row, with `inserted`
/// parameters) with the insert of its audit entry, as one statement. Its
/// parameters after the insert's: the entry's values
/// ([`audit::ENTRY_COLUMNS`], but the entity id when the statement assigns
/// the key), then the changes as JSON text.
fn insert_with_entry_sql<E: Resource>(
    insert: &str,
    inserted: usize,
    entity_id: &EntityId,
    gaps: Option<usize>,
) -> String {
    let mut n = inserted;
    let mut param = || {
        n += 1;
        format!("${n}")
    };
    let key = quoted(primary_key_column::<E>().as_str());
    let mut columns = Vec::new();
    let mut exprs = Vec::new();
    for column in audit::ENTRY_COLUMNS {
        columns.push(quoted(column.as_str()));
        exprs.push(match (entity_id, column) {
            (EntityId::Assigned(_), EntryColumn::EntityId) => format!("\"keel_row\".{key}::text"),
            _ => param(),
        });
    }
    let changes = param();
    columns.push(quoted(EntryColumn::Changes.as_str()));
    // Sent as text and read as `jsonb` by the statement: encoded once,
    // without a `serde_json::Value` tree in between.
    exprs.push(match entity_id {
        EntityId::Assigned(Some(at)) => {
            format!("jsonb_set({changes}::jsonb, '{{{at},new}}', to_jsonb(\"keel_row\".{key}))")
        }
        _ => format!("{changes}::jsonb"),
    });
    // The event: the assigned key goes into its subject (a string), then
    // into its row.
    let outbox = match gaps {
        Some(n) => {
            let gaps: Vec<String> = (0..n)
                .map(|i| {
                    if i == 0 {
                        format!("'\"' || \"keel_row\".{key}::text || '\"'")
                    } else {
                        format!("\"keel_row\".{key}::text")
                    }
                })
                .collect();
            format!(", {}", outbox_cte(&mut param, "\"keel_row\"", &gaps))
        }
        None => String::new(),
    };
    format!(
        "WITH \"keel_row\" AS ({insert}), \"keel_entry\" AS (INSERT INTO {} ({}) \
         SELECT {} FROM \"keel_row\"){outbox} SELECT * FROM \"keel_row\"",
        quoted(audit::table().table_name()),
        columns.join(", "),
        exprs.join(", ")
    )
}

/// The values of [`insert_with_entry_sql`]'s statement, in its order.
fn insert_with_entry_values(
    mut values: Vec<Value>,
    entry: [(EntryColumn, Value); 7],
    entity_id: &EntityId,
    changes: &[Change],
) -> Vec<Value> {
    values.reserve(entry.len() + 1);
    for (column, value) in entry {
        if !matches!(
            (entity_id, column),
            (EntityId::Assigned(_), EntryColumn::EntityId)
        ) {
            values.push(value);
        }
    }
    values.push(Value::String(Some(
        serde_json::to_string(changes).unwrap_or_else(|_| "[]".to_owned()),
    )));
    values
}

/// The outbox row of a one-statement write: its event's id and type, and
/// its payload cut where the statement puts in what only it knows (the
/// assigned key; an update's row and changes).
struct OutboxRow {
    event_id: String,
    topic: String,
    parts: Vec<String>,
}

impl OutboxRow {
    /// A stand-in no payload contains by chance.
    fn nonce() -> String {
        format!("keel-{}", uuid::Uuid::new_v4().simple())
    }

    /// `event`, serialised and cut at each `"{nonce}"`.
    fn new(event: &Event, nonce: &str) -> OutboxRow {
        let payload = serde_json::to_string(event).unwrap_or_default();
        OutboxRow {
            event_id: event.id.to_string(),
            topic: event.event_type.clone(),
            parts: payload
                .split(&format!("\"{nonce}\""))
                .map(str::to_owned)
                .collect(),
        }
    }

    /// How many places the statement fills.
    fn gaps(&self) -> usize {
        self.parts.len() - 1
    }

    /// The values of [`outbox_cte`]'s parameters, in its order.
    fn values(self) -> Vec<Value> {
        let mut values = Vec::with_capacity(self.parts.len() + 3);
        values.push(self.event_id.into());
        values.push(self.topic.into());
        values.extend(self.parts.into_iter().map(Value::from));
        values.push(crate::outbox::now_ms().into());
        values
    }
}

/// The common table expression that writes the outbox row of a
/// one-statement write, one row per row of `from`: its parameters (from
/// `next`) are the event id, the topic, the payload's parts with `gaps`
/// between them, and the time.
fn outbox_cte(next: &mut impl FnMut() -> String, from: &str, gaps: &[String]) -> String {
    let (id, topic) = (next(), next());
    let mut payload = next();
    for gap in gaps {
        payload = format!("{payload} || {gap} || {}", next());
    }
    let created = next();
    format!(
        "\"keel_outbox\" AS (INSERT INTO keel_outbox (event_id, topic, payload, created_ms) \
         SELECT {id}, {topic}, {payload}, {created} FROM {from})"
    )
}

/// In debug builds (the test suite), checks that the event a statement
/// wrote to the outbox is the one the transaction path would have written.
async fn debug_assert_event<E: Resource>(
    service: &BaseService<E>,
    ctx: &Context,
    event_id: &str,
    key: &str,
    row: &E::Model,
    changes: Option<&[Change]>,
) {
    if !cfg!(debug_assertions) {
        return;
    }
    let stored = service
        .keel()
        .db()
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT payload FROM keel_outbox WHERE event_id = $1",
            [event_id.into()],
        ))
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<String>("", "payload").ok())
        .expect("the statement wrote its outbox row");
    let stored: Event = serde_json::from_str(&stored).expect("the stored event decodes");
    let action = if changes.is_some() {
        WriteAction::Updated
    } else {
        WriteAction::Created
    };
    let mut expected = Event::for_write::<E>(
        ctx,
        &service.keel().config().service_name,
        action,
        key,
        row,
        changes,
    );
    expected.id = stored.id;
    expected.time = stored.time;
    // The trace context is the span's the event was made in (checked end
    // to end by the shop's traces test), not this check's.
    expected.trace = stored.trace.clone();
    assert_eq!(
        stored,
        expected,
        "{}: the one-statement write stored another event than the model's",
        E::NAME
    );
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The audit entry was worked out from `predicted`: in debug builds (the
/// test suite), check that the database stored exactly that.
fn debug_assert_same_row<E: Resource>(predicted: &E::Model, stored: &E::Model) {
    if cfg!(debug_assertions) {
        let (predicted, stored) = (
            serde_json::to_value(predicted).ok(),
            serde_json::to_value(stored).ok(),
        );
        assert_eq!(
            predicted,
            stored,
            "{}: the one-statement write stored another row than it predicted",
            E::NAME
        );
    }
}

/// The columns a write returns, read back as the model expects them.
fn returning<E: EntityTrait>() -> sea_orm::sea_query::ReturningClause {
    Query::returning()
        .exprs(E::Column::iter().map(|c| c.select_as(c.into_returning_expr(DbBackend::Postgres))))
}

fn is_same<C: ColumnTrait>(a: C, b: C) -> bool {
    a.as_column_ref() == b.as_column_ref()
}

/// Whether `ty` is one of the integer column types.
fn is_integer(ty: &ColumnType) -> bool {
    matches!(
        ty,
        ColumnType::TinyInteger
            | ColumnType::SmallInteger
            | ColumnType::Integer
            | ColumnType::BigInteger
            | ColumnType::TinyUnsigned
            | ColumnType::SmallUnsigned
            | ColumnType::Unsigned
            | ColumnType::BigUnsigned
    )
}

fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether PostgreSQL stores `v` in a column of type `ty` exactly as sent, so
/// that the row can be known before the statement runs.
fn stored_exactly(ty: &ColumnType, v: &Value) -> bool {
    if value::is_null(v) {
        return true;
    }
    let exact_type = is_integer(ty)
        || matches!(
            ty,
            ColumnType::String(_)
                | ColumnType::Text
                | ColumnType::Float
                | ColumnType::Double
                | ColumnType::Boolean
                | ColumnType::Uuid
                | ColumnType::DateTime
                | ColumnType::Timestamp
                | ColumnType::TimestampWithTimeZone
        );
    exact_type
        && match v {
            Value::Bool(_)
            | Value::TinyInt(_)
            | Value::SmallInt(_)
            | Value::Int(_)
            | Value::BigInt(_)
            | Value::TinyUnsigned(_)
            | Value::SmallUnsigned(_)
            | Value::Unsigned(_)
            | Value::BigUnsigned(_)
            // Binary floats travel bit for bit.
            | Value::Float(_)
            | Value::Double(_)
            | Value::Uuid(_) => true,
            // PostgreSQL text cannot hold NUL; such a value fails either way.
            Value::String(_) => true,
            Value::ChronoDateTimeUtc(t) => t
                .as_ref()
                .is_none_or(|t| t.timestamp_subsec_nanos() % 1000 == 0),
            Value::ChronoDateTime(t) => {
                t.as_ref()
                    .is_none_or(|t| t.and_utc().timestamp_subsec_nanos() % 1000 == 0)
            }
            _ => false,
        }
}
