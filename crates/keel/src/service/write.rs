//! The write side: create, update, delete, restore.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    IntoActiveModel, Iterable, ModelTrait, PrimaryKeyTrait, QueryFilter, QuerySelect,
    SqliteTransactionMode, TransactionOptions, TransactionTrait, Value,
};

use super::BaseService;
use crate::query::primary_key_column;
use crate::resource::value::{self, column_type};
use crate::{Context, Error, Resource, Result, WriteAction, audit};

pub(super) type ActiveModelOf<E> = <E as EntityTrait>::ActiveModel;

/// The clock of the server-owned timestamps, at the microsecond precision every backend stores.
pub(super) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl<E: Resource> BaseService<E> {
    /// Creates a row from `input` and returns it as stored.
    ///
    /// The service fills the server-owned columns (generated key, version 1,
    /// timestamps, actor, tenant). Errors: `VALIDATION_FAILED`,
    /// `ALREADY_EXISTS` (naming the unique field), `FOREIGN_KEY`.
    pub async fn create(&self, ctx: &Context, input: E::Create) -> Result<E::Model> {
        E::validate_create(&input)?;
        let mut model = E::create_model(input);
        self.fill_new(ctx, &mut model)?;
        let unique = Self::unique_candidates(&model);
        ctx.within_deadline(self.retrying(|| {
            let model = model.clone();
            let unique = unique.clone();
            async move {
                let tx = self.begin().await?;
                match model.insert(&tx).await {
                    Ok(row) => {
                        self.finish(tx, ctx, WriteAction::Created, &row, None, Some(&row))
                            .await?;
                        Ok(row)
                    }
                    Err(err) => {
                        rollback(tx).await;
                        Err(self.write_error(err, unique, None).await)
                    }
                }
            }
        }))
        .await
    }

    /// Applies `patch` to the row with key `id` and returns the row as stored.
    ///
    /// Fields absent from the patch keep their value; for nullable fields an
    /// explicit `null` clears it. A patch that changes nothing writes nothing
    /// and returns the row unchanged. When the patch carries an expected
    /// version that differs from the row's, nothing is written and the error
    /// is `VERSION_CONFLICT` with both versions.
    pub async fn update(
        &self,
        ctx: &Context,
        id: impl Into<E::Key>,
        patch: E::Patch,
    ) -> Result<E::Model> {
        let id = id.into();
        E::validate_patch(&patch)?;
        let expected = E::patch_version(&patch);
        Self::check_versioned(expected)?;
        ctx.within_deadline(self.retrying(|| self.update_once(ctx, &id, patch.clone(), expected)))
            .await
    }

    async fn update_once(
        &self,
        ctx: &Context,
        id: &E::Key,
        patch: E::Patch,
        expected: Option<i64>,
    ) -> Result<E::Model> {
        let tx = self.begin().await?;
        let old = self.lock_row(&tx, ctx, id, false).await?;
        Self::check_version(expected, &old)?;
        let mut model: ActiveModelOf<E> = old.clone().into_active_model();
        E::apply_patch(patch, &mut model);
        self.keep_server_columns(&mut model, &old)?;
        let changed = Self::drop_unchanged(&mut model, &old);
        if !changed {
            rollback(tx).await;
            return Ok(old);
        }
        let unique = Self::unique_candidates(&model);
        self.stamp_write(ctx, &mut model, &old)?;
        self.save(tx, ctx, WriteAction::Updated, model, &old, unique, id)
            .await
    }

    /// Deletes the row with key `id`: sets `deleted_at` for a soft-deleted
    /// resource, removes the row otherwise. `NOT_FOUND` if there is no such
    /// (live) row.
    pub async fn delete(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<()> {
        let id = id.into();
        ctx.within_deadline(self.retrying(|| self.delete_once(ctx, &id, None)))
            .await
    }

    /// Like [`delete`](Self::delete), but only if the row is at version `expected`;
    /// otherwise `VERSION_CONFLICT` and nothing is written.
    pub async fn delete_if_version(
        &self,
        ctx: &Context,
        id: impl Into<E::Key>,
        expected: i64,
    ) -> Result<()> {
        let id = id.into();
        Self::check_versioned(Some(expected))?;
        ctx.within_deadline(self.retrying(|| self.delete_once(ctx, &id, Some(expected))))
            .await
    }

    async fn delete_once(&self, ctx: &Context, id: &E::Key, expected: Option<i64>) -> Result<()> {
        let tx = self.begin().await?;
        let old = self.lock_row(&tx, ctx, id, false).await?;
        Self::check_version(expected, &old)?;
        match self.delete_locked(&tx, ctx, &old).await {
            Ok(()) => self.commit(tx).await,
            Err(err) => {
                rollback(tx).await;
                Err(err)
            }
        }
    }

    /// Deletes one row already locked in `tx` (soft or hard), with its audit
    /// row; the caller commits.
    pub(super) async fn delete_locked(
        &self,
        tx: &DatabaseTransaction,
        ctx: &Context,
        old: &E::Model,
    ) -> Result<()> {
        let pk = primary_key_column::<E>();
        let written = if let Some(deleted_at) = E::COLUMNS.deleted_at {
            let mut model: ActiveModelOf<E> = old.clone().into_active_model();
            Self::set(
                &mut model,
                deleted_at,
                value::timestamp(&column_type::<E>(deleted_at), now()),
                "deleted_at",
            )?;
            self.stamp_write(ctx, &mut model, old)?;
            Self::write_row(tx, model, old).await.map(Some)
        } else {
            let mut delete = E::delete_many().filter(pk.eq(old.get(pk)));
            if let Some(version) = E::COLUMNS.version {
                delete = delete.filter(version.eq(old.get(version)));
            }
            match delete.exec(tx).await {
                Ok(result) if result.rows_affected == 1 => Ok(None),
                Ok(_) => Err(DbErr::RecordNotUpdated),
                Err(err) => Err(err),
            }
        };
        let outcome = match &written {
            Ok(new) => {
                Self::record(
                    tx,
                    ctx,
                    WriteAction::Deleted,
                    new.as_ref().unwrap_or(old),
                    Some(old),
                    new.as_ref(),
                )
                .await
            }
            Err(_) => Ok(()),
        };
        match (written, outcome) {
            (Ok(_), Ok(())) => Ok(()),
            (Err(DbErr::RecordNotUpdated), _) => {
                match <E::Key as crate::Key>::from_value(old.get(pk)) {
                    Some(id) => Err(self.conflict_after_race(&id, old).await),
                    None => Err(Error::internal(format!(
                        "{}: the primary key does not fit the Key type",
                        E::NAME
                    ))),
                }
            }
            (Err(err), _) | (Ok(_), Err(err)) => Err(self.db_error(err)),
        }
    }

    /// Brings back a soft-deleted row and returns it. A row that is not
    /// deleted is returned as it is.
    pub async fn restore(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<E::Model> {
        let id = id.into();
        let Some(deleted_at) = E::COLUMNS.deleted_at else {
            return Err(Error::invalid_argument(
                "id",
                format!(
                    "{} are not soft-deleted, so they cannot be restored",
                    E::PLURAL
                ),
            ));
        };
        ctx.within_deadline(self.retrying(|| async {
            let tx = self.begin().await?;
            let old = self.lock_row(&tx, ctx, &id, true).await?;
            if value::is_null(&old.get(deleted_at)) {
                rollback(tx).await;
                return Ok(old);
            }
            let mut model: ActiveModelOf<E> = old.clone().into_active_model();
            Self::set(
                &mut model,
                deleted_at,
                value::typed_null(&column_type::<E>(deleted_at)),
                "deleted_at",
            )?;
            self.stamp_write(ctx, &mut model, &old)?;
            self.save(tx, ctx, WriteAction::Restored, model, &old, Vec::new(), &id)
                .await
        }))
        .await
    }

    // ----- the steps every write shares -----

    /// Runs `op` again, with exponential backoff and jitter, while it fails with `ABORTED`.
    pub(super) async fn retrying<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(5))
            .with_max_delay(Duration::from_millis(250))
            .with_jitter()
            .with_max_times(self.keel.config().write_retries);
        op.retry(policy)
            .sleep(tokio::time::sleep)
            .when(|e: &Error| matches!(e, Error::Aborted { .. }))
            .notify(|e: &Error, delay: Duration| {
                tracing::debug!(resource = E::NAME, error = %e, ?delay, "retrying a write that lost a race");
            })
            .await
    }

    /// Opens a write transaction; on SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`) so concurrent writers queue instead of failing.
    pub(super) async fn begin(&self) -> Result<DatabaseTransaction> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        };
        self.db()
            .begin_with_options(options)
            .await
            .map_err(|e| self.db_error(e))
    }

    /// The end of every write: its audit row, then commit.
    async fn finish(
        &self,
        tx: DatabaseTransaction,
        ctx: &Context,
        action: WriteAction,
        row: &E::Model,
        old: Option<&E::Model>,
        new: Option<&E::Model>,
    ) -> Result<()> {
        if let Err(err) = Self::record(&tx, ctx, action, row, old, new).await {
            rollback(tx).await;
            return Err(self.db_error(err));
        }
        self.commit(tx).await
    }

    /// `UPDATE` of the changed columns, guarded by the version the row was read at.
    pub(super) async fn write_row(
        tx: &DatabaseTransaction,
        model: ActiveModelOf<E>,
        old: &E::Model,
    ) -> std::result::Result<E::Model, DbErr> {
        let mut update = E::update(model).validate()?;
        if let Some(version) = E::COLUMNS.version {
            update = update.filter(version.eq(old.get(version)));
        }
        update.exec(tx).await
    }

    /// What every write leaves in its transaction besides the change itself:
    /// the audit row (and, with the outbox, the event's row).
    pub(super) async fn record(
        tx: &DatabaseTransaction,
        ctx: &Context,
        action: WriteAction,
        row: &E::Model,
        old: Option<&E::Model>,
        new: Option<&E::Model>,
    ) -> std::result::Result<(), DbErr> {
        let pk = primary_key_column::<E>();
        let id = <E::Key as crate::Key>::from_value(row.get(pk))
            .map(|k| k.to_string())
            .unwrap_or_default();
        let changes = audit::resource_changes::<E>(old, new);
        audit::append::<E, _>(tx, ctx, action, id, now(), &changes).await
        // The outbox row carrying the write's event joins the transaction here.
    }

    pub(super) async fn commit(&self, tx: DatabaseTransaction) -> Result<()> {
        tx.commit().await.map_err(|e| self.db_error(e))
    }

    /// Reads the row for writing: `SELECT ... FOR UPDATE` where the database has it.
    pub(super) async fn lock_row(
        &self,
        tx: &DatabaseTransaction,
        ctx: &Context,
        id: &E::Key,
        include_deleted: bool,
    ) -> Result<E::Model> {
        let mut select = E::find()
            .filter(Self::by_key(id))
            .filter(self.scope(ctx, include_deleted)?);
        if self.keel.backend() != DbBackend::Sqlite {
            select = select.lock_exclusive();
        }
        select
            .one(tx)
            .await
            .map_err(|e| self.db_error(e))?
            .ok_or_else(|| Self::not_found(id))
    }

    /// Writes the changed columns, guarded by the row's version, and commits.
    #[allow(clippy::too_many_arguments)]
    async fn save(
        &self,
        tx: DatabaseTransaction,
        ctx: &Context,
        action: WriteAction,
        model: ActiveModelOf<E>,
        old: &E::Model,
        unique: Vec<(&'static str, E::Column, Value)>,
        id: &E::Key,
    ) -> Result<E::Model> {
        match Self::write_row(&tx, model, old).await {
            Ok(row) => {
                self.finish(tx, ctx, action, &row, Some(old), Some(&row))
                    .await?;
                Ok(row)
            }
            Err(DbErr::RecordNotUpdated) => {
                rollback(tx).await;
                Err(self.conflict_after_race(id, old).await)
            }
            Err(err) => {
                rollback(tx).await;
                Err(self.write_error(err, unique, Some(id)).await)
            }
        }
    }

    /// The row changed between our read and our write (only possible without
    /// row locks): report its current version, or that it is gone.
    async fn conflict_after_race(&self, id: &E::Key, old: &E::Model) -> Error {
        let current = E::find().filter(Self::by_key(id)).one(self.db()).await;
        match (current, Self::version_of(old)) {
            (Ok(Some(row)), Some(expected)) => Error::VersionConflict {
                expected,
                current: Self::version_of(&row).unwrap_or(expected),
            },
            (Ok(_), _) => Self::not_found(id),
            (Err(err), _) => self.db_error(err),
        }
    }

    pub(super) fn check_versioned(expected: Option<i64>) -> Result<()> {
        if expected.is_some() && E::COLUMNS.version.is_none() {
            return Err(Error::invalid_argument(
                "version",
                format!(
                    "{} have no version column, so an expected version cannot be checked",
                    E::PLURAL
                ),
            ));
        }
        Ok(())
    }

    fn check_version(expected: Option<i64>, row: &E::Model) -> Result<()> {
        match (expected, Self::version_of(row)) {
            (Some(expected), Some(current)) if expected != current => {
                Err(Error::VersionConflict { expected, current })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn set(
        model: &mut ActiveModelOf<E>,
        column: E::Column,
        v: Option<Value>,
        what: &str,
    ) -> Result<()> {
        let v = v.ok_or_else(|| {
            Error::internal(format!(
                "{}: the {what} column has a type Keel cannot fill",
                E::NAME
            ))
        })?;
        model
            .try_set(column, v)
            .map_err(|e| Error::internal(format!("{}: cannot set the {what} column: {e}", E::NAME)))
    }

    /// The server-owned columns, as `(column, role)`.
    fn server_columns() -> impl Iterator<Item = (E::Column, &'static str)> {
        let c = E::COLUMNS;
        [
            (c.version, "version"),
            (c.created_at, "created_at"),
            (c.updated_at, "updated_at"),
            (c.created_by, "created_by"),
            (c.updated_by, "updated_by"),
            (c.deleted_at, "deleted_at"),
            (c.tenant, "tenant"),
        ]
        .into_iter()
        .filter_map(|(column, role)| column.map(|column| (column, role)))
    }

    /// Fills the server-owned columns of a new row, whatever the input set.
    pub(super) fn fill_new(&self, ctx: &Context, model: &mut ActiveModelOf<E>) -> Result<()> {
        let pk = primary_key_column::<E>();
        if <E::PrimaryKey as PrimaryKeyTrait>::auto_increment() {
            model.not_set(pk);
        } else if !model.get(pk).is_set() {
            if column_type::<E>(pk) == sea_orm::sea_query::ArrayType::Uuid {
                Self::set(
                    model,
                    pk,
                    Some(Value::Uuid(Some(uuid::Uuid::now_v7()))),
                    "primary key",
                )?;
            } else {
                return Err(Error::validation("/id", "REQUIRED", "the key is required"));
            }
        }
        for (column, _) in Self::server_columns() {
            model.not_set(column);
        }
        let c = E::COLUMNS;
        let at = now();
        if let Some(version) = c.version {
            Self::set(
                model,
                version,
                value::integer(&column_type::<E>(version), 1),
                "version",
            )?;
        }
        for column in [c.created_at, c.updated_at].into_iter().flatten() {
            Self::set(
                model,
                column,
                value::timestamp(&column_type::<E>(column), at),
                "timestamp",
            )?;
        }
        for column in [c.created_by, c.updated_by].into_iter().flatten() {
            Self::set(
                model,
                column,
                Some(Value::String(Some(ctx.actor_name().to_owned()))),
                "actor",
            )?;
        }
        if let Some(deleted_at) = c.deleted_at {
            Self::set(
                model,
                deleted_at,
                value::typed_null(&column_type::<E>(deleted_at)),
                "deleted_at",
            )?;
        }
        if let Some(tenant) = c.tenant {
            let t = ctx.tenant().ok_or_else(|| Error::PermissionDenied {
                message: format!("{} requires a tenant", E::PLURAL),
            })?;
            Self::set(
                model,
                tenant,
                Some(Value::String(Some(t.to_owned()))),
                "tenant",
            )?;
        }
        Ok(())
    }

    /// Undoes anything a patch did to the key or a server-owned column.
    pub(super) fn keep_server_columns(
        &self,
        model: &mut ActiveModelOf<E>,
        old: &E::Model,
    ) -> Result<()> {
        let pk = primary_key_column::<E>();
        if model.get(pk).is_set() {
            // The statement filters on the key and never writes it.
            Self::set(model, pk, Some(old.get(pk)), "primary key")?;
        }
        for (column, _) in Self::server_columns() {
            model.not_set(column);
        }
        Ok(())
    }

    /// Leaves out of the write every column the patch set to the value it
    /// already has. Returns whether anything is left to write.
    pub(super) fn drop_unchanged(model: &mut ActiveModelOf<E>, old: &E::Model) -> bool {
        let pk = primary_key_column::<E>();
        let mut changed = false;
        for column in E::Column::iter() {
            if column.as_column_ref() == pk.as_column_ref() {
                continue;
            }
            if let ActiveValue::Set(v) = model.get(column) {
                if v == old.get(column) {
                    model.not_set(column);
                } else {
                    changed = true;
                }
            }
        }
        changed
    }

    /// Version + 1, `updated_at`, `updated_by`.
    pub(super) fn stamp_write(
        &self,
        ctx: &Context,
        model: &mut ActiveModelOf<E>,
        old: &E::Model,
    ) -> Result<()> {
        let c = E::COLUMNS;
        if let (Some(column), Some(version)) = (c.version, Self::version_of(old)) {
            Self::set(
                model,
                column,
                value::integer(&column_type::<E>(column), version + 1),
                "version",
            )?;
        }
        if let Some(column) = c.updated_at {
            Self::set(
                model,
                column,
                value::timestamp(&column_type::<E>(column), now()),
                "updated_at",
            )?;
        }
        if let Some(column) = c.updated_by {
            Self::set(
                model,
                column,
                Some(Value::String(Some(ctx.actor_name().to_owned()))),
                "updated_by",
            )?;
        }
        Ok(())
    }

    /// The unique fields this write sets, to name the one that collides.
    pub(super) fn unique_candidates(
        model: &ActiveModelOf<E>,
    ) -> Vec<(&'static str, E::Column, Value)> {
        let pk = primary_key_column::<E>();
        let mut out: Vec<_> = E::FIELDS
            .iter()
            .filter(|f| f.unique || f.column.as_column_ref() == pk.as_column_ref())
            .filter_map(|f| match model.get(f.column) {
                ActiveValue::Set(v) => Some((f.name, f.column, v)),
                _ => None,
            })
            .collect();
        if !E::FIELDS
            .iter()
            .any(|f| f.column.as_column_ref() == pk.as_column_ref())
            && let ActiveValue::Set(v) = model.get(pk)
        {
            out.push(("id", pk, v));
        }
        out
    }
}

pub(super) async fn rollback(tx: DatabaseTransaction) {
    if let Err(err) = tx.rollback().await {
        tracing::warn!(error = %err, "rollback failed; the connection is discarded");
    }
}
