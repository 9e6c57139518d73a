//! Bulk writes: `create_many`, `update_many`, `delete_many`.
//!
//! Each runs in one transaction and goes through the same steps as a single
//! write for every row (validation, server-owned columns, version guard,
//! one audit row per row), so a bulk write is all or nothing.

use sea_orm::{
    ActiveModelTrait, DatabaseTransaction, DbBackend, IntoActiveModel, ModelTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::BaseService;
use super::write::{ActiveModelOf, rollback};
use crate::query::{Filter, primary_key_column};
use crate::{Context, Error, FieldError, Resource, Result, ValidationErrors, WriteAction};

impl<E: Resource> BaseService<E> {
    /// Creates every input, or none: all inputs are validated first (field
    /// pointers are prefixed with the input's index, as in `/2/sku`), then
    /// inserted in one transaction, each with its audit row.
    pub async fn create_many(
        &self,
        ctx: &Context,
        inputs: Vec<E::Create>,
    ) -> Result<Vec<E::Model>> {
        let mut errors = ValidationErrors::new();
        let mut models = Vec::with_capacity(inputs.len());
        for (index, input) in inputs.into_iter().enumerate() {
            if let Err(found) = E::validate_create(&input) {
                for e in found {
                    errors.push(FieldError::new(
                        format!("/{index}{}", e.pointer),
                        &e.code,
                        e.message,
                    ));
                }
            }
            let mut model = E::create_model(input);
            self.fill_new(ctx, &mut model)?;
            models.push(model);
        }
        errors.into_result()?;
        ctx.within_deadline(self.retrying(|| async {
            let tx = self.begin().await?;
            let mut rows = Vec::with_capacity(models.len());
            for model in &models {
                let unique = Self::unique_candidates(model);
                let outcome = match model.clone().insert(&tx).await {
                    Ok(row) => Self::record(&tx, ctx, WriteAction::Created, &row, None, Some(&row))
                        .await
                        .map(|()| row),
                    Err(err) => Err(err),
                };
                match outcome {
                    Ok(row) => rows.push(row),
                    Err(err) => {
                        rollback(tx).await;
                        return Err(self.write_error(err, unique, None).await);
                    }
                }
            }
            self.commit(tx).await?;
            Ok(rows)
        }))
        .await
    }

    /// Applies `patch` to every row matching `filter` (an AIP-160 filter, as
    /// for `list`; it may not be empty) and returns how many rows changed.
    /// Rows the patch would not change are left alone. One transaction, one
    /// audit row per changed row. A patch may not carry an expected version.
    pub async fn update_many(&self, ctx: &Context, filter: &str, patch: E::Patch) -> Result<u64> {
        E::validate_patch(&patch)?;
        if E::patch_version(&patch).is_some() {
            return Err(Error::invalid_argument(
                "version",
                "an expected version applies to one row; update_many takes none",
            ));
        }
        let filter = self.bulk_filter(filter, "update_many")?;
        ctx.within_deadline(self.retrying(|| async {
            let tx = self.begin().await?;
            let rows = self.lock_matching(&tx, ctx, &filter).await?;
            let mut changed = 0;
            for old in rows {
                let mut model: ActiveModelOf<E> = old.clone().into_active_model();
                E::apply_patch(patch.clone(), &mut model);
                self.keep_server_columns(&mut model, &old)?;
                if !Self::drop_unchanged(&mut model, &old) {
                    continue;
                }
                let unique = Self::unique_candidates(&model);
                self.stamp_write(ctx, &mut model, &old)?;
                let outcome = match Self::write_row(&tx, model, &old).await {
                    Ok(new) => {
                        Self::record(&tx, ctx, WriteAction::Updated, &new, Some(&old), Some(&new))
                            .await
                    }
                    Err(err) => Err(err),
                };
                if let Err(err) = outcome {
                    rollback(tx).await;
                    let id = <E::Key as crate::Key>::from_value(old.get(primary_key_column::<E>()));
                    return Err(self.write_error(err, unique, id.as_ref()).await);
                }
                changed += 1;
            }
            self.commit(tx).await?;
            Ok(changed)
        }))
        .await
    }

    /// Deletes every row matching `filter` (soft or hard, as `delete` does)
    /// and returns how many. One transaction, one audit row per row.
    pub async fn delete_many(&self, ctx: &Context, filter: &str) -> Result<u64> {
        let filter = self.bulk_filter(filter, "delete_many")?;
        ctx.within_deadline(self.retrying(|| async {
            let tx = self.begin().await?;
            let rows = self.lock_matching(&tx, ctx, &filter).await?;
            let count = rows.len() as u64;
            for old in rows {
                let outcome = self.delete_locked(&tx, ctx, &old).await;
                if let Err(err) = outcome {
                    rollback(tx).await;
                    return Err(err);
                }
            }
            self.commit(tx).await?;
            Ok(count)
        }))
        .await
    }

    fn bulk_filter(&self, text: &str, method: &str) -> Result<Filter<E>> {
        Filter::<E>::parse_with(text, &self.keel.config().limits)?.ok_or_else(|| {
            Error::invalid_argument(
                "filter",
                format!("{method} needs a filter; it never touches every row by accident"),
            )
        })
    }

    /// The live rows matching `filter`, locked for writing, in key order (so
    /// concurrent bulk writes lock in the same order and do not deadlock).
    async fn lock_matching(
        &self,
        tx: &DatabaseTransaction,
        ctx: &Context,
        filter: &Filter<E>,
    ) -> Result<Vec<E::Model>> {
        let mut select = E::find()
            .filter(self.scope(ctx, false)?)
            .filter(filter.condition())
            .order_by_asc(primary_key_column::<E>());
        if self.keel.backend() != DbBackend::Sqlite {
            select = select.lock_exclusive();
        }
        select.all(tx).await.map_err(|e| self.db_error(e))
    }
}
