//! The write side: create, update, delete, restore, and the steps every
//! write shares.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    Iterable, ModelTrait, PrimaryKeyTrait, QueryFilter, QuerySelect, Value,
};

use super::plan::WritePlan;
use super::single::Single;
use super::{BaseService, WriteError};
use crate::event::Event;
use crate::hooks::DynHooks;
use crate::query::primary_key_column;
use crate::resource::value::{self, column_type};
use crate::tx::Tx;
use crate::{Context, Error, Resource, Result, WriteAction, audit};

pub(super) type ActiveModelOf<E> = <E as EntityTrait>::ActiveModel;

/// An update's active model and the unique fields it sets.
pub(super) type PatchedModel<E> = (
    ActiveModelOf<E>,
    Vec<(&'static str, <E as EntityTrait>::Column, Value)>,
);

/// The hooks of a resource, as the write steps take them.
pub(super) type HookSlice<'a, E> = &'a [std::sync::Arc<dyn DynHooks<E>>];

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
    /// `ALREADY_EXISTS` (naming the unique field), `FOREIGN_KEY`, or the
    /// error of a hook.
    pub async fn create(&self, ctx: &Context, input: E::Create) -> Result<E::Model> {
        self.observe(ctx, "create", async {
            E::validate_create(&input)?;
            let hooks = self.hooks();
            let hooks: HookSlice<'_, E> = &hooks;
            if let Single::Ran(outcome) = self.create_single(ctx, hooks, &input).await {
                return outcome;
            }
            self.write(ctx, |tx| {
                let input = input.clone();
                async move { self.create_in(&tx, ctx, hooks, input).await }
            })
            .await
        })
        .await
    }

    /// Inserts one validated input in `tx`: hooks, statement, audit row, event.
    pub(super) async fn create_in(
        &self,
        tx: &Tx,
        ctx: &Context,
        hooks: HookSlice<'_, E>,
        input: E::Create,
    ) -> Result<E::Model, WriteError<E>> {
        for hook in hooks {
            hook.before_create(ctx, tx, &input).await?;
        }
        let mut model = E::create_model(input);
        self.fill_new(ctx, &mut model)?;
        let unique = Self::unique_candidates(&model);
        let row = model
            .insert(tx.db())
            .await
            .map_err(|e| self.statement_error(e, unique, None))?;
        self.record(tx, ctx, WriteAction::Created, &row, None, Some(&row))
            .await?;
        for hook in hooks {
            hook.after_create(ctx, tx, &row).await?;
        }
        Ok(row)
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
        self.observe(ctx, "update", async {
            let expected = E::patch_version(&patch);
            self.update_checked(ctx, id.into(), patch, expected).await
        })
        .await
    }

    /// Like [`update`](Self::update), but only if the row is at version
    /// `expected` (whatever version the patch carries); otherwise
    /// `VERSION_CONFLICT` and nothing is written. A resource without a
    /// version column cannot check it: `INVALID_ARGUMENT`, and nothing is
    /// written either.
    pub async fn update_if_version(
        &self,
        ctx: &Context,
        id: impl Into<E::Key>,
        patch: E::Patch,
        expected: i64,
    ) -> Result<E::Model> {
        self.observe(ctx, "update_if_version", async {
            self.update_checked(ctx, id.into(), patch, Some(expected))
                .await
        })
        .await
    }

    async fn update_checked(
        &self,
        ctx: &Context,
        id: E::Key,
        mut patch: E::Patch,
        expected: Option<i64>,
    ) -> Result<E::Model> {
        crate::trace::record_key(&id);
        E::validate_patch(&patch)?;
        Self::check_versioned(expected)?;
        if let Some(version) = expected {
            E::set_patch_version(&mut patch, version);
        }
        let hooks = self.hooks();
        let hooks: HookSlice<'_, E> = &hooks;
        let id = &id;
        if let Single::Ran(outcome) = self.update_single(ctx, hooks, id, &patch, expected).await {
            return outcome;
        }
        self.write(ctx, |tx| {
            let patch = patch.clone();
            async move {
                let old = self.lock_row(&tx, ctx, id, false).await?;
                Self::check_version(expected, &old)?;
                let new = self.update_locked(&tx, ctx, hooks, &old, patch).await?;
                Ok(new.unwrap_or(old))
            }
        })
        .await
    }

    /// Updates one row already locked in `tx`: hooks, statement, audit row,
    /// event. `None` when the patch changes nothing (and nothing is written).
    pub(super) async fn update_locked(
        &self,
        tx: &Tx,
        ctx: &Context,
        hooks: HookSlice<'_, E>,
        old: &E::Model,
        patch: E::Patch,
    ) -> Result<Option<E::Model>, WriteError<E>> {
        for hook in hooks {
            hook.before_update(ctx, tx, old, &patch).await?;
        }
        let Some((model, unique)) = self.patched(ctx, old, patch)? else {
            return Ok(None);
        };
        let new = self.write_row(tx, model, old, unique).await?;
        self.record(tx, ctx, WriteAction::Updated, &new, Some(old), Some(&new))
            .await?;
        for hook in hooks {
            hook.after_update(ctx, tx, old, &new).await?;
        }
        Ok(Some(new))
    }

    /// What an update of `old` writes: the patch applied, the key and the
    /// server-owned columns kept, columns set to their current value left
    /// out, version and `updated_*` stamped; with the unique fields it sets.
    /// `None` when the patch changes nothing.
    pub(super) fn patched(
        &self,
        ctx: &Context,
        old: &E::Model,
        patch: E::Patch,
    ) -> Result<Option<PatchedModel<E>>> {
        let mut model: ActiveModelOf<E> = old.clone().into_active_model();
        E::apply_patch(patch, &mut model);
        self.keep_server_columns(&mut model, old)?;
        if !Self::drop_unchanged(&mut model, old) {
            return Ok(None);
        }
        let unique = Self::unique_candidates(&model);
        self.stamp_write(ctx, &mut model, old)?;
        Ok(Some((model, unique)))
    }

    /// Whether the events of `action` are wanted: always with the outbox
    /// on, else when an in-process subscriber wants them.
    pub(super) fn wants_event(&self, action: WriteAction) -> bool {
        if self.keel.outbox_enabled() {
            return true;
        }
        let service = &self.keel.config().service_name;
        self.keel
            .events()
            .wants(&format!("{service}.{}", E::event_type(action)))
    }

    /// The event of a write, when a subscriber wants it (no one listening:
    /// the event is not built, nor its changes worked out).
    pub(super) fn write_event(
        &self,
        ctx: &Context,
        action: WriteAction,
        key: String,
        row: &E::Model,
        changes: impl FnOnce() -> Vec<audit::Change>,
    ) -> Option<Event> {
        self.wants_event(action).then(|| {
            let service = &self.keel.config().service_name;
            let diff = (action == WriteAction::Updated).then(changes);
            Event::for_write::<E>(ctx, service, action, key, row, diff.as_deref())
        })
    }

    /// Deletes the row with key `id`: sets `deleted_at` for a soft-deleted
    /// resource, removes the row otherwise. `NOT_FOUND` if there is no such
    /// (live) row.
    pub async fn delete(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<()> {
        self.observe(ctx, "delete", async {
            self.delete_checked(ctx, id.into(), None).await
        })
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
        self.observe(ctx, "delete_if_version", async {
            Self::check_versioned(Some(expected))?;
            self.delete_checked(ctx, id.into(), Some(expected)).await
        })
        .await
    }

    async fn delete_checked(&self, ctx: &Context, id: E::Key, expected: Option<i64>) -> Result<()> {
        crate::trace::record_key(&id);
        let hooks = self.hooks();
        let hooks: HookSlice<'_, E> = &hooks;
        let id = &id;
        self.write(ctx, |tx| async move {
            let old = self.lock_row(&tx, ctx, id, false).await?;
            Self::check_version(expected, &old)?;
            self.delete_locked(&tx, ctx, hooks, &old).await
        })
        .await
    }

    /// Deletes one row already locked in `tx` (soft or hard): hooks,
    /// statement, audit row, event.
    pub(super) async fn delete_locked(
        &self,
        tx: &Tx,
        ctx: &Context,
        hooks: HookSlice<'_, E>,
        old: &E::Model,
    ) -> Result<(), WriteError<E>> {
        for hook in hooks {
            hook.before_delete(ctx, tx, old).await?;
        }
        let pk = primary_key_column::<E>();
        let new = if let Some(deleted_at) = E::COLUMNS.deleted_at {
            let mut model: ActiveModelOf<E> = old.clone().into_active_model();
            Self::set(
                &mut model,
                deleted_at,
                value::timestamp(&column_type::<E>(deleted_at), now()),
                "deleted_at",
            )?;
            self.stamp_write(ctx, &mut model, old)?;
            Some(self.write_row(tx, model, old, Vec::new()).await?)
        } else {
            let mut delete = E::delete_many().filter(pk.eq(old.get(pk)));
            if let Some(version) = E::COLUMNS.version {
                delete = delete.filter(version.eq(old.get(version)));
            }
            match delete.exec(tx.db()).await {
                Ok(result) if result.rows_affected == 1 => None,
                Ok(_) => return Err(self.race(old)),
                Err(err) => return Err(self.statement_error(err, Vec::new(), None)),
            }
        };
        let row = new.as_ref().unwrap_or(old);
        self.record(tx, ctx, WriteAction::Deleted, row, Some(old), new.as_ref())
            .await?;
        for hook in hooks {
            hook.after_delete(ctx, tx, old).await?;
        }
        Ok(())
    }

    /// Brings back a soft-deleted row and returns it. A row that is not
    /// deleted is returned as it is.
    pub async fn restore(&self, ctx: &Context, id: impl Into<E::Key>) -> Result<E::Model> {
        self.observe(ctx, "restore", async {
            let id = id.into();
            crate::trace::record_key(&id);
            let Some(deleted_at) = E::COLUMNS.deleted_at else {
                return Err(Error::invalid_argument(
                    "id",
                    format!(
                        "{} are not soft-deleted, so they cannot be restored",
                        E::PLURAL
                    ),
                ));
            };
            let hooks = self.hooks();
            let hooks: HookSlice<'_, E> = &hooks;
            let id = &id;
            self.write(ctx, |tx| async move {
                let old = self.lock_row(&tx, ctx, id, true).await?;
                if value::is_null(&old.get(deleted_at)) {
                    return Ok(old);
                }
                for hook in hooks {
                    hook.before_restore(ctx, &tx, &old).await?;
                }
                let mut model: ActiveModelOf<E> = old.clone().into_active_model();
                Self::set(
                    &mut model,
                    deleted_at,
                    value::typed_null(&column_type::<E>(deleted_at)),
                    "deleted_at",
                )?;
                self.stamp_write(ctx, &mut model, &old)?;
                let new = self.write_row(&tx, model, &old, Vec::new()).await?;
                for hook in hooks {
                    hook.after_restore(ctx, &tx, &new).await?;
                }
                self.record(
                    &tx,
                    ctx,
                    WriteAction::Restored,
                    &new,
                    Some(&old),
                    Some(&new),
                )
                .await?;
                Ok(new)
            })
            .await
        })
        .await
    }

    // ----- the steps every write shares -----

    /// `UPDATE` of the changed columns, guarded by the version the row was read at.
    async fn write_row(
        &self,
        tx: &Tx,
        model: ActiveModelOf<E>,
        old: &E::Model,
        unique: Vec<(&'static str, E::Column, Value)>,
    ) -> Result<E::Model, WriteError<E>> {
        let mut update = E::update(model)
            .validate()
            .map_err(|e| WriteError::Done(self.db_error(e)))?;
        if let Some(version) = E::COLUMNS.version {
            update = update.filter(version.eq(old.get(version)));
        }
        match update.exec(tx.db()).await {
            Ok(row) => Ok(row),
            Err(DbErr::RecordNotUpdated) => Err(self.race(old)),
            Err(err) => Err(self.statement_error(err, unique, Self::key_of(old))),
        }
    }

    /// The primary key of `row`, typed (`None` only if the column holds a
    /// value the key type cannot take, which a row read by Keel never does).
    ///
    /// ```no_run
    /// # async fn demo<E: keel::Resource>(service: keel::BaseService<E>, ctx: keel::Context, row: E::Model) {
    /// let key = keel::BaseService::<E>::key_of(&row);
    /// # }
    /// ```
    pub fn key_of(row: &E::Model) -> Option<E::Key> {
        <E::Key as crate::Key>::from_value(row.get(primary_key_column::<E>()))
    }

    /// The row changed (or vanished) between our read and our write.
    fn race(&self, old: &E::Model) -> WriteError<E> {
        match Self::key_of(old) {
            Some(id) => WriteError::Race {
                id,
                old: Box::new(old.clone()),
            },
            None => WriteError::Done(Error::internal(format!(
                "{}: the primary key does not fit the Key type",
                E::NAME
            ))),
        }
    }

    /// What every write leaves in its transaction besides the change itself:
    /// its plan's audit entry, and its invalidation and event queued for
    /// after the outermost commit.
    async fn record(
        &self,
        tx: &Tx,
        ctx: &Context,
        action: WriteAction,
        row: &E::Model,
        old: Option<&E::Model>,
        new: Option<&E::Model>,
    ) -> Result<(), WriteError<E>> {
        let key = Self::key_of(row).map(|k| k.to_string()).unwrap_or_default();
        let plan = WritePlan::new(action, key);
        let changes = audit::resource_changes::<E>(old, new);
        audit::append(tx.db(), plan.audit_values::<E>(ctx), &changes)
            .await
            .map_err(|e| WriteError::Done(self.db_error(e)))?;
        plan.after_commit(self, ctx, row, || changes).queue(tx);
        Ok(())
    }

    /// Reads the row for writing: `SELECT ... FOR UPDATE` where the database has it.
    pub(super) async fn lock_row(
        &self,
        tx: &Tx,
        ctx: &Context,
        id: &E::Key,
        include_deleted: bool,
    ) -> Result<E::Model> {
        let mut select = E::find()
            .filter(self.by_key(id))
            .filter(self.scope(ctx, include_deleted)?);
        if self.keel.backend() != DbBackend::Sqlite {
            select = select.lock_exclusive();
        }
        select
            .one(tx.db())
            .await
            .map_err(|e| self.db_error(e))?
            .ok_or_else(|| Self::not_found(id))
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

    pub(super) fn check_version(expected: Option<i64>, row: &E::Model) -> Result<()> {
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
    pub(super) fn server_columns() -> impl Iterator<Item = (E::Column, &'static str)> {
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
            let t = self.tenant_of(ctx)?;
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
