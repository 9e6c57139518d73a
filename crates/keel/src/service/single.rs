//! Writes that are one statement: create and update on PostgreSQL.
//!
//! A write in a transaction of its own costs PostgreSQL five statements
//! (`BEGIN`, `SELECT … FOR UPDATE`, the write, the audit `INSERT`,
//! `COMMIT`). When nothing needs that transaction (no hooks, no deadline, no
//! transaction of the caller's), a create or an update runs instead as one
//! statement, which commits on its own:
//!
//! ```sql
//! WITH "keel_row" AS (UPDATE "products" SET … WHERE "id" = $1 AND "version" = $2 … RETURNING …),
//!      "keel_entry" AS (INSERT INTO "keel_audit" (…) SELECT $7, … FROM "keel_row")
//! SELECT * FROM "keel_row"
//! ```
//!
//! The row and its audit entry still commit together or not at all. The
//! entry's changes are worked out before the statement runs, so only writes
//! whose stored values are known in advance take this path: every value
//! written is of a type PostgreSQL stores exactly as sent (integers,
//! floats, booleans, text, UUIDs, timestamps at microsecond precision, and
//! `NULL` in any column); the one value
//! the database assigns, an auto-increment key, is put into the entry by the
//! statement itself. Anything else takes the general path.
//!
//! An update reads the row with a plain `SELECT` and writes only if the row
//! is still at the version read (optimistic locking). When another write got
//! in between, it reads again; after a few lost races it takes the general
//! path, which locks the row, so it always makes progress.

use sea_orm::sea_query::{ColumnType, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    FromQueryResult, IdenStatic, Iterable, ModelTrait, PrimaryKeyTrait, QueryFilter, QueryTrait,
    Statement, Value,
};

use super::BaseService;
use super::write::{HookSlice, now};
use crate::audit::{self, Change};
use crate::query::primary_key_column;
use crate::resource::value::{self, column_type};
use crate::{Context, Error, Resource, Result, WriteAction};

/// Reads an update may redo after losing a race before it locks the row instead.
const OPTIMISTIC_ATTEMPTS: u32 = 3;

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
    Known(String),
    /// The key the statement assigns; its value also goes into the entry's
    /// changes at this index, if the key is among them.
    Assigned(Option<usize>),
}

impl<E: Resource> BaseService<E> {
    /// Whether a write of `ctx` may run as one statement at all.
    fn single_statement(&self, ctx: &Context, hooks: HookSlice<'_, E>) -> bool {
        self.tx.is_none()
            && hooks.is_empty()
            && ctx.deadline().is_none()
            && self.keel.backend() == DbBackend::Postgres
    }

    /// [`create`](Self::create) as one statement, if it can be.
    pub(super) async fn create_single(
        &self,
        ctx: &Context,
        hooks: HookSlice<'_, E>,
        input: &E::Create,
    ) -> Single<E::Model> {
        if !self.single_statement(ctx, hooks) {
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
        let entity_id = if assigned {
            let at = changes
                .iter()
                .position(|c| c.field == key_name && !E::REDACTED_FIELDS.contains(&key_name));
            EntityId::Assigned(at)
        } else {
            match Self::key_of(&predicted) {
                Some(key) => EntityId::Known(key.to_string()),
                None => return Single::Declined,
            }
        };
        let unique = Self::unique_candidates(&model);
        let mut insert = E::insert(model).into_query();
        insert.returning(returning::<E>());
        let statement = DbBackend::Postgres.build(&insert);
        let outcome = self
            .run_single(ctx, WriteAction::Created, statement, entity_id, &changes)
            .await;
        match outcome {
            Ok(Some(row)) => {
                if cfg!(debug_assertions) {
                    let mut predicted = predicted;
                    if assigned {
                        predicted.set(pk, row.get(pk));
                    }
                    debug_assert_same_row::<E>(&predicted, &row);
                }
                if let Some(key) = Self::key_of(&row) {
                    self.after_single(ctx, WriteAction::Created, key.to_string(), &row, None)
                        .await;
                }
                Single::Ran(Ok(row))
            }
            Ok(None) => Single::Ran(Err(Error::internal(format!(
                "{}: the insert returned no row",
                E::NAME
            )))),
            Err(err) => {
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
        let Some(version) = E::COLUMNS.version else {
            return Single::Declined;
        };
        if !self.single_statement(ctx, hooks) {
            return Single::Declined;
        }
        let scope = match self.scope(ctx, false) {
            Ok(scope) => scope,
            Err(err) => return Single::Ran(Err(err)),
        };
        for _ in 0..OPTIMISTIC_ATTEMPTS {
            let read = E::find()
                .filter(self.by_key(id))
                .filter(scope.clone())
                .one(self.keel.db())
                .await;
            let old = match read {
                Ok(Some(old)) => old,
                Ok(None) => return Single::Ran(Err(Self::not_found(id))),
                Err(err) => return Single::Ran(Err(self.db_error(err))),
            };
            if let Err(err) = Self::check_version(expected, &old) {
                return Single::Ran(Err(err));
            }
            let (model, unique) = match self.patched(ctx, &old, patch.clone()) {
                Ok(Some(patched)) => patched,
                Ok(None) => return Single::Ran(Ok(old)),
                Err(err) => return Single::Ran(Err(err)),
            };
            // The row as it will be stored.
            let mut predicted = old.clone();
            for column in E::Column::iter() {
                if let ActiveValue::Set(v) = model.get(column)
                    && (!stored_exactly(column.def().get_column_type(), &v)
                        || predicted.try_set(column, v).is_err())
                {
                    return Single::Declined;
                }
            }
            let Some(key) = Self::key_of(&old) else {
                return Single::Declined;
            };
            let changes = audit::resource_changes::<E>(Some(&old), Some(&predicted));
            let mut update = E::update_many()
                .set(model)
                .filter(self.by_key(id))
                .filter(version.eq(old.get(version)))
                .filter(scope.clone())
                .into_query();
            update.returning(returning::<E>());
            let statement = DbBackend::Postgres.build(&update);
            let key = key.to_string();
            let outcome = self
                .run_single(
                    ctx,
                    WriteAction::Updated,
                    statement,
                    EntityId::Known(key.clone()),
                    &changes,
                )
                .await;
            match outcome {
                Ok(Some(row)) => {
                    debug_assert_same_row::<E>(&predicted, &row);
                    self.after_single(ctx, WriteAction::Updated, key, &row, Some(&changes))
                        .await;
                    return Single::Ran(Ok(row));
                }
                // Another write got in between: read again.
                Ok(None) => {}
                Err(err) => {
                    let failure = self.statement_error(err, unique, Some(id.clone()));
                    return Single::Ran(Err(self.explain(ctx, failure).await));
                }
            }
        }
        tracing::debug!(
            resource = E::NAME,
            "update lost {OPTIMISTIC_ATTEMPTS} races; locking the row instead"
        );
        Single::Declined
    }

    /// Runs the write `statement` together with the insert of its audit
    /// entry, and returns the row it wrote (`None`: it wrote nothing).
    async fn run_single(
        &self,
        ctx: &Context,
        action: WriteAction,
        statement: Statement,
        entity_id: EntityId,
        changes: &[Change],
    ) -> Result<Option<E::Model>, DbErr> {
        let Statement { sql, values, .. } = statement;
        let mut values = values.map(|v| v.0).unwrap_or_default();
        let mut param = |v: Value| {
            values.push(v);
            format!("${}", values.len())
        };
        let key = quoted(primary_key_column::<E>().as_str());
        let changes = Value::Json(Some(Box::new(
            serde_json::to_value(changes).unwrap_or(serde_json::Value::Null),
        )));
        let (entity_id, changes) = match entity_id {
            EntityId::Known(id) => (param(Value::from(id)), format!("{}::jsonb", param(changes))),
            EntityId::Assigned(at) => {
                let changes = param(changes);
                let changes = match at {
                    Some(at) => {
                        format!(
                            "jsonb_set({changes}::jsonb, '{{{at},new}}', to_jsonb(\"keel_row\".{key}))"
                        )
                    }
                    None => format!("{changes}::jsonb"),
                };
                (format!("\"keel_row\".{key}::text"), changes)
            }
        };
        let entry = [
            entity_id,
            param(Value::from(E::NAME)),
            param(Value::from(action.as_str())),
            param(Value::from(ctx.actor_name())),
            param(Value::String(ctx.tenant().map(str::to_owned))),
            param(Value::from(ctx.request_id())),
            param(Value::ChronoDateTimeUtc(Some(now()))),
            changes,
        ]
        .join(", ");
        let sql = format!(
            "WITH \"keel_row\" AS ({sql}), \"keel_entry\" AS (INSERT INTO \"keel_audit\" \
             (\"entity_id\", \"entity\", \"action\", \"actor\", \"tenant\", \"request_id\", \"at\", \"changes\") \
             SELECT {entry} FROM \"keel_row\") SELECT * FROM \"keel_row\""
        );
        let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
        match self.keel.db().query_one_raw(statement).await? {
            Some(row) => Ok(Some(E::Model::from_query_result(&row, "")?)),
            None => Ok(None),
        }
    }

    /// After a one-statement write committed: what the general path does
    /// after its commit (cache invalidation, then the event).
    async fn after_single(
        &self,
        ctx: &Context,
        action: WriteAction,
        key: String,
        row: &E::Model,
        changes: Option<&[Change]>,
    ) {
        if let Some(scope) = self.write_scope(ctx) {
            self.keel
                .cache()
                .invalidate(&scope, std::slice::from_ref(&key))
                .await;
        }
        if let Some(event) = self.write_event(ctx, action, key, row, changes.unwrap_or(&[])) {
            self.keel.events().publish(event);
        }
    }
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

fn quoted(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Whether PostgreSQL stores `v` in a column of type `ty` exactly as sent, so
/// that the row can be known before the statement runs.
fn stored_exactly(ty: &ColumnType, v: &Value) -> bool {
    if value::is_null(v) {
        return true;
    }
    let exact_type = matches!(
        ty,
        ColumnType::String(_)
            | ColumnType::Text
            | ColumnType::TinyInteger
            | ColumnType::SmallInteger
            | ColumnType::Integer
            | ColumnType::BigInteger
            | ColumnType::TinyUnsigned
            | ColumnType::SmallUnsigned
            | ColumnType::Unsigned
            | ColumnType::BigUnsigned
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
