//! `BaseService<E>`: create, get, update, delete, list and count for any resource.
//!
//! Reads go straight to the pool. Every write runs in its own transaction
//! (SQLite: `BEGIN IMMEDIATE`; PostgreSQL and MySQL lock the row with
//! `SELECT ... FOR UPDATE`), fills the server-owned columns, checks the
//! expected version, and is retried with exponential backoff and jitter when
//! it loses a race the database reports as retriable.

mod bulk;
mod read;
mod write;

use std::marker::PhantomData;

use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, ModelTrait, PaginatorTrait, QueryFilter, Value,
};

use crate::error::{DbFailure, classify};
use crate::query::primary_key_column;
use crate::resource::value;
use crate::{Context, Error, Keel, Resource, Result};

/// The service of resource `E`: every CRUD operation, generic over the entity.
///
/// Get one from [`Keel::service`]. Cloning is cheap.
pub struct BaseService<E: Resource> {
    keel: Keel,
    entity: PhantomData<fn() -> E>,
}

impl<E: Resource> Clone for BaseService<E> {
    fn clone(&self) -> Self {
        BaseService::new(self.keel.clone())
    }
}

impl<E: Resource> std::fmt::Debug for BaseService<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseService")
            .field("resource", &E::NAME)
            .finish()
    }
}

impl<E: Resource> BaseService<E> {
    pub(crate) fn new(keel: Keel) -> Self {
        BaseService {
            keel,
            entity: PhantomData,
        }
    }

    /// The [`Keel`] this service belongs to.
    pub fn keel(&self) -> &Keel {
        &self.keel
    }

    fn db(&self) -> &DatabaseConnection {
        self.keel.db()
    }

    /// The conditions every statement carries: the caller's tenant, and
    /// (unless asked otherwise) only rows that are not soft-deleted.
    fn scope(&self, ctx: &Context, include_deleted: bool) -> Result<Condition> {
        let mut scope = Condition::all();
        if let Some(tenant) = E::COLUMNS.tenant {
            let Some(t) = ctx.tenant() else {
                return Err(Error::PermissionDenied {
                    message: format!("{} requires a tenant", E::PLURAL),
                });
            };
            scope = scope.add(tenant.eq(t));
        }
        if let (Some(deleted_at), false) = (E::COLUMNS.deleted_at, include_deleted) {
            scope = scope.add(deleted_at.is_null());
        }
        Ok(scope)
    }

    fn by_key(id: &E::Key) -> Condition {
        Condition::all().add(primary_key_column::<E>().eq(id.clone()))
    }

    fn not_found(id: &E::Key) -> Error {
        Error::NotFound {
            resource: E::NAME,
            id: id.to_string(),
        }
    }

    /// Classifies a database error and names the resource in it.
    fn db_error(&self, err: DbErr) -> Error {
        self.db_error_from(classify(err))
    }

    /// Like [`db_error`](Self::db_error), and for a unique violation finds out
    /// which of the unique fields the write set collided: the only one, or
    /// the first that another row holds, checked once the failed
    /// transaction is gone.
    async fn write_error(
        &self,
        err: DbErr,
        candidates: Vec<(&'static str, E::Column, Value)>,
        exclude: Option<&E::Key>,
    ) -> Error {
        let failure = classify(err);
        if !matches!(failure, DbFailure::Unique(_)) {
            return self.db_error_from(failure);
        }
        // The write set a single unique field: it is the one that collided
        // (possibly with a row changed earlier in the same, rolled-back batch).
        if let [(name, _, _)] = candidates.as_slice() {
            return Error::AlreadyExists {
                resource: E::NAME,
                field: Some((*name).to_owned()),
            };
        }
        for (name, column, v) in candidates {
            let mut q = E::find().filter(column.eq(v));
            if let Some(id) = exclude {
                q = q.filter(primary_key_column::<E>().ne(id.clone()));
            }
            if q.count(self.db()).await.is_ok_and(|n| n > 0) {
                return Error::AlreadyExists {
                    resource: E::NAME,
                    field: Some(name.to_owned()),
                };
            }
        }
        self.db_error_from(failure)
    }

    fn db_error_from(&self, failure: DbFailure) -> Error {
        let error = failure.into_error(E::NAME);
        if let Error::Internal { source } = &error {
            tracing::error!(resource = E::NAME, error = %source, "database error");
        }
        error
    }

    /// The version of a row, if the resource has a version column.
    fn version_of(model: &E::Model) -> Option<i64> {
        E::COLUMNS
            .version
            .and_then(|c| value::as_i64(&model.get(c)))
    }
}
