//! Bulk writes: `create_many`, `update_many`, `delete_many`.
//!
//! Each runs in one transaction (or savepoint) and goes through the same
//! steps as a single write for every row (validation, hooks, server-owned
//! columns, version guard, one audit row and one event per row), so a bulk
//! write is all or nothing.

use sea_orm::{DbBackend, QueryFilter, QueryOrder, QuerySelect};

use super::BaseService;
use super::write::HookSlice;
use crate::query::{Filter, primary_key_column};
use crate::tx::Tx;
use crate::{Context, Error, FieldError, Resource, Result, ValidationErrors};

impl<E: Resource> BaseService<E> {
    /// Creates every input, or none: all inputs are validated first (field
    /// pointers are prefixed with the input's index, as in `/2/sku`), then
    /// inserted in one transaction, each with its hooks, audit row and event.
    pub async fn create_many(
        &self,
        ctx: &Context,
        inputs: Vec<E::Create>,
    ) -> Result<Vec<E::Model>> {
        self.observe(ctx, "create_many", async {
            let mut errors = ValidationErrors::new();
            for (index, input) in inputs.iter().enumerate() {
                if let Err(found) = E::validate_create(input) {
                    for e in found {
                        errors.push(FieldError::new(
                            format!("/{index}{}", e.pointer),
                            &e.code,
                            e.message,
                        ));
                    }
                }
            }
            errors.into_result()?;
            let hooks = self.hooks();
            let hooks: HookSlice<'_, E> = &hooks;
            let inputs = &inputs;
            self.write(ctx, |tx| async move {
                let mut rows = Vec::with_capacity(inputs.len());
                for input in inputs {
                    rows.push(self.create_in(&tx, ctx, hooks, input.clone()).await?);
                }
                Ok(rows)
            })
            .await
        })
        .await
    }

    /// Applies `patch` to every row matching `filter` (an AIP-160 filter, as
    /// for `list`; it may not be empty) and returns how many rows changed.
    /// Rows the patch would not change are left alone. One transaction; for
    /// each changed row its hooks, one audit row and one event. A patch may
    /// not carry an expected version.
    pub async fn update_many(&self, ctx: &Context, filter: &str, patch: E::Patch) -> Result<u64> {
        self.observe(ctx, "update_many", async {
            E::validate_patch(&patch)?;
            if E::patch_version(&patch).is_some() {
                return Err(Error::invalid_argument(
                    "version",
                    "an expected version applies to one row; update_many takes none",
                ));
            }
            let filter = &self.bulk_filter(filter, "update_many")?;
            let hooks = self.hooks();
            let hooks: HookSlice<'_, E> = &hooks;
            let patch = &patch;
            self.write(ctx, |tx| async move {
                let rows = self.lock_matching(&tx, ctx, filter).await?;
                let mut changed = 0;
                for old in rows {
                    let new = self
                        .update_locked(&tx, ctx, hooks, &old, patch.clone())
                        .await?;
                    changed += u64::from(new.is_some());
                }
                Ok(changed)
            })
            .await
        })
        .await
    }

    /// Deletes every row matching `filter` (soft or hard, as `delete` does)
    /// and returns how many. One transaction; for each row its hooks, one
    /// audit row and one event.
    pub async fn delete_many(&self, ctx: &Context, filter: &str) -> Result<u64> {
        self.observe(ctx, "delete_many", async {
            let filter = &self.bulk_filter(filter, "delete_many")?;
            let hooks = self.hooks();
            let hooks: HookSlice<'_, E> = &hooks;
            self.write(ctx, |tx| async move {
                let rows = self.lock_matching(&tx, ctx, filter).await?;
                let count = rows.len() as u64;
                for old in rows {
                    self.delete_locked(&tx, ctx, hooks, &old).await?;
                }
                Ok(count)
            })
            .await
        })
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
        tx: &Tx,
        ctx: &Context,
        filter: &Filter<E>,
    ) -> Result<Vec<E::Model>> {
        let mut select = E::find()
            .filter(self.scope(ctx, false)?)
            .filter(filter.condition(self.keel.backend()))
            .order_by_asc(primary_key_column::<E>());
        if self.keel.backend() != DbBackend::Sqlite {
            select = select.lock_exclusive();
        }
        select.all(tx.db()).await.map_err(|e| self.db_error(e))
    }
}
