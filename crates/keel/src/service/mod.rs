//! `BaseService<E>`: create, get, update, delete, list and count for any resource.
//!
//! A service is either free or bound to a transaction ([`BaseService::with`],
//! [`Tx::service`]). A free service reads from the pool and runs every write
//! in a transaction of its own (SQLite: `BEGIN IMMEDIATE`; PostgreSQL and
//! MySQL lock the row with `SELECT ... FOR UPDATE`), retried with exponential
//! backoff and jitter when it loses a race. A bound service reads in the
//! transaction and runs every write in a savepoint of it, so a failed write
//! leaves the transaction usable.
//!
//! Every write, single or bulk, takes the same steps in its transaction:
//! validate the input; `before_*` hooks; the statement (server-owned
//! columns filled, `WHERE version = expected`); `after_*` hooks; the audit
//! row and the queued event (the place where the outbox row will be
//! written); commit; then, after the outermost commit only, the queued
//! after-commit work and event dispatch.
//!
//! On PostgreSQL a free service's create and update take a shorter road
//! when nothing needs the transaction (no hooks): the write and its audit
//! row are one statement (see `single.rs`). The outcome is the same; the
//! cost is one statement instead of five. Both roads carry out the same
//! [`WritePlan`](plan::WritePlan): audit entry, invalidation, event.

mod bulk;
mod plan;
mod read;
mod single;
mod texts;
mod write;

use std::marker::PhantomData;

use sea_orm::sea_query::Condition;
use sea_orm::{ColumnTrait, DbErr, ModelTrait, PaginatorTrait, QueryFilter, Value};

use crate::error::{DbFailure, classify};
use crate::hooks::HookList;
use crate::query::{exact, primary_key_column};
use crate::resource::value;
use crate::tx::{Conn, RetryPolicy, Tx, TxFailure, TxOptions};
use crate::{Context, Error, Keel, Resource, Result};

/// The service of resource `E`: every CRUD operation, generic over the entity.
///
/// Get one from [`Keel::service`], or bound to a transaction from
/// [`Tx::service`] / [`BaseService::with`]. Cloning is cheap.
pub struct BaseService<E: Resource> {
    keel: Keel,
    tx: Option<Tx>,
    entity: PhantomData<fn() -> E>,
}

impl<E: Resource> Clone for BaseService<E> {
    fn clone(&self) -> Self {
        BaseService {
            keel: self.keel.clone(),
            tx: self.tx.clone(),
            entity: PhantomData,
        }
    }
}

impl<E: Resource> std::fmt::Debug for BaseService<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseService")
            .field("resource", &E::NAME)
            .field("in_transaction", &self.tx.is_some())
            .finish()
    }
}

/// A row and its JSON: what [`BaseService::get_json`] returns, so that an
/// HTTP layer can send a cached row without encoding it again.
#[derive(Clone, Debug)]
pub struct RowJson<M> {
    /// The row.
    pub row: M,
    /// `serde_json::to_vec(&row)`, in the view asked for (see
    /// [`BaseService::get_json_in`]).
    pub json: bytes::Bytes,
}

/// A write that failed, with what is needed to explain it once its
/// transaction (or savepoint) is gone.
pub(super) enum WriteError<E: Resource> {
    /// Explained already.
    Done(Error),
    /// A unique index rejected the write; which field is found afterwards.
    Unique {
        source: DbErr,
        candidates: Vec<(&'static str, E::Column, Value)>,
        exclude: Option<E::Key>,
    },
    /// The row changed between our read and our write.
    Race { id: E::Key, old: Box<E::Model> },
}

impl<E: Resource> From<Error> for WriteError<E> {
    fn from(err: Error) -> Self {
        WriteError::Done(err)
    }
}

impl<E: Resource> TxFailure for WriteError<E> {
    fn error(&self) -> Option<&Error> {
        match self {
            WriteError::Done(err) => Some(err),
            _ => None,
        }
    }
}

impl<E: Resource> BaseService<E> {
    pub(crate) fn new(keel: Keel) -> Self {
        BaseService {
            keel,
            tx: None,
            entity: PhantomData,
        }
    }

    pub(crate) fn bound(tx: Tx) -> Self {
        BaseService {
            keel: tx.keel().clone(),
            tx: Some(tx),
            entity: PhantomData,
        }
    }

    /// This service bound to `tx`: its reads and writes run in that
    /// transaction (each write in a savepoint of it). Drop it before the
    /// transaction's closure returns.
    pub fn with(&self, tx: &Tx) -> Self {
        BaseService::bound(tx.clone())
    }

    /// The transaction this service is bound to, if any.
    pub fn transaction(&self) -> Option<&Tx> {
        self.tx.as_ref()
    }

    /// The [`Keel`] this service belongs to.
    pub fn keel(&self) -> &Keel {
        &self.keel
    }

    /// A turn to run a list or count on the pool: at most
    /// `PoolConfig::query_permits` at once, so that the reserved connections
    /// stay free for reads by key, writes and health checks. Inside a
    /// transaction, which has its connection, none is needed.
    async fn query_permit(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>> {
        if self.tx.is_some() {
            return Ok(None);
        }
        let wait = self.keel.config().pool.acquire_timeout;
        match tokio::time::timeout(wait, self.keel.query_permits().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(Error::Unavailable {
                reason: "too many lists and counts at once; try again",
                source: None,
            }),
        }
    }

    /// Where statements run: the bound transaction, or the pool.
    fn conn(&self) -> Conn<'_> {
        match &self.tx {
            Some(tx) => tx.conn(),
            None => Conn::Pool(self.keel.db()),
        }
    }

    /// The cache scope of this resource for `ctx`, when reads of it are
    /// cached here: never inside a transaction, which may have written.
    pub(super) fn cache_scope(&self, ctx: &Context) -> Result<Option<crate::cache::Scope>> {
        if !E::CACHE.enabled || self.tx.is_some() || !self.keel.config().cache.reads {
            return Ok(None);
        }
        let tenant = match E::COLUMNS.tenant {
            Some(_) => Some(self.tenant_of(ctx)?),
            None => None,
        };
        Ok(Some(self.keel.cache().scope(E::NAME, tenant)))
    }

    /// The cache scope a write of `ctx` invalidates.
    pub(super) fn write_scope(&self, ctx: &Context) -> Option<crate::cache::Scope> {
        if !E::CACHE.enabled {
            return None;
        }
        let tenant = E::COLUMNS.tenant.and(ctx.tenant());
        Some(self.keel.cache().scope(E::NAME, tenant))
    }

    /// The hooks of `E`, in the order they were added (often none).
    fn hooks(&self) -> HookList<E> {
        self.keel.hooks::<E>().unwrap_or_default()
    }

    /// Runs one public operation: its metrics (`keel_operations_total`,
    /// `keel_operation_duration_seconds`) and its log line.
    ///
    /// The operation's future goes to the heap here, once: it is large
    /// (the cache and database futures it awaits are kept inline), and every
    /// layer above (the caller's own future, an HTTP handler's) would
    /// otherwise copy all of it again each time it is built or moved.
    pub(super) fn observe<'a, T, F>(
        &'a self,
        ctx: &'a Context,
        operation: &'static str,
        work: F,
    ) -> impl Future<Output = Result<T>> + 'a
    where
        F: Future<Output = Result<T>> + 'a,
        T: 'a,
    {
        let span = crate::trace::operation(E::NAME, operation);
        let work = Box::pin(tracing::Instrument::instrument(work, span.clone()));
        async move {
            let started = std::time::Instant::now();
            let result = work.await;
            let took = started.elapsed();
            let outcome = match &result {
                Ok(_) => "ok",
                Err(err) => err.code(),
            };
            crate::metrics::record_operation(E::NAME, operation, outcome, took.as_secs_f64());
            let duration_ms = took.as_secs_f64() * 1000.0;
            let entered = span.enter();
            match &result {
                Err(err @ (Error::Internal { .. } | Error::CommitOutcomeUnknown { .. })) => {
                    crate::trace::record_outcome(&span, outcome, true);
                    let cause = std::error::Error::source(err)
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    tracing::error!(
                        target: "keel::operation",
                        entity = E::NAME,
                        operation,
                        outcome,
                        duration_ms,
                        request_id = ctx.request_id(),
                        cause = %cause,
                        "operation failed"
                    );
                }
                _ => {
                    crate::trace::record_outcome(&span, outcome, false);
                    tracing::info!(
                        target: "keel::operation",
                        entity = E::NAME,
                        operation,
                        outcome,
                        duration_ms,
                        request_id = ctx.request_id(),
                        "operation"
                    );
                }
            }
            drop(entered);
            result
        }
    }

    /// Runs `body` as one write: in a savepoint of the bound transaction, or
    /// in a transaction of its own, run again when it loses a race.
    pub(super) async fn write<T, F, Fut>(&self, ctx: &Context, body: F) -> Result<T>
    where
        F: FnMut(Tx) -> Fut,
        Fut: Future<Output = Result<T, WriteError<E>>>,
    {
        let outcome = match &self.tx {
            Some(tx) if tx.is_read_only() => {
                return Err(Error::invalid_argument(
                    "transaction",
                    format!("cannot write {} in a read-only transaction", E::PLURAL),
                ));
            }
            Some(tx) => match ctx.deadline() {
                None => tx.savepoint(body).await,
                Some(deadline) if tokio::time::Instant::now() >= deadline => {
                    return Err(Error::DeadlineExceeded);
                }
                Some(deadline) => tokio::time::timeout_at(deadline, tx.savepoint(body))
                    .await
                    .unwrap_or(Err(WriteError::Done(Error::DeadlineExceeded))),
            },
            None => {
                let retries = self.keel.config().write_retries;
                let options = TxOptions::new().retry(RetryPolicy::attempts(retries + 1));
                crate::tx::run(&self.keel, ctx, &options, body).await
            }
        };
        match outcome {
            Ok(value) => Ok(value),
            Err(failure) => Err(self.explain(ctx, failure).await),
        }
    }

    /// The error of a failed write, looked up after its transaction (or
    /// savepoint) was rolled back.
    async fn explain(&self, ctx: &Context, failure: WriteError<E>) -> Error {
        match failure {
            WriteError::Done(err) => err,
            WriteError::Unique {
                source,
                candidates,
                exclude,
            } => {
                self.unique_error(ctx, source, candidates, exclude.as_ref())
                    .await
            }
            WriteError::Race { id, old } => self.conflict_after_race(&id, &old).await,
        }
    }

    /// A failed statement of a write: a unique violation is explained later.
    pub(super) fn statement_error(
        &self,
        err: DbErr,
        candidates: Vec<(&'static str, E::Column, Value)>,
        exclude: Option<E::Key>,
    ) -> WriteError<E> {
        match classify(err) {
            DbFailure::Unique(source) => WriteError::Unique {
                source,
                candidates,
                exclude,
            },
            other => WriteError::Done(self.db_error_from(other)),
        }
    }

    /// The conditions every statement carries: the caller's tenant, and
    /// (unless asked otherwise) only rows that are not soft-deleted.
    fn scope(&self, ctx: &Context, include_deleted: bool) -> Result<Condition> {
        let mut scope = Condition::all();
        if let Some(tenant) = E::COLUMNS.tenant {
            let t = self.tenant_of(ctx)?;
            scope = scope.add(exact::eq(self.keel.backend(), tenant, t.into()));
        }
        if let (Some(deleted_at), false) = (E::COLUMNS.deleted_at, include_deleted) {
            scope = scope.add(deleted_at.is_null());
        }
        Ok(scope)
    }

    /// `ctx`'s tenant, which every request to a tenant-scoped resource needs.
    pub(super) fn tenant_of<'c>(&self, ctx: &'c Context) -> Result<&'c str> {
        ctx.require_tenant(E::PLURAL)
    }

    /// The row with key `id`: exact for text keys on every database.
    fn by_key(&self, id: &E::Key) -> Condition {
        Condition::all().add(exact::eq(
            self.keel.backend(),
            primary_key_column::<E>(),
            id.clone().into(),
        ))
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

    /// Finds out which of the unique fields a write set collided: the only
    /// one, or the first that another row holds, checked once the failed
    /// transaction (or savepoint) is gone.
    async fn unique_error(
        &self,
        ctx: &Context,
        source: DbErr,
        candidates: Vec<(&'static str, E::Column, Value)>,
        exclude: Option<&E::Key>,
    ) -> Error {
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
            // Only the caller's tenant's rows: naming a field because another
            // tenant holds the value would tell one tenant of the other's data.
            if let (Some(tenant), Some(t)) = (E::COLUMNS.tenant, ctx.tenant()) {
                q = q.filter(exact::eq(self.keel.backend(), tenant, t.into()));
            }
            if q.count(&self.conn()).await.is_ok_and(|n| n > 0) {
                return Error::AlreadyExists {
                    resource: E::NAME,
                    field: Some(name.to_owned()),
                };
            }
        }
        self.db_error_from(DbFailure::Unique(source))
    }

    /// The row changed between our read and our write (only possible without
    /// row locks): report its current version, or that it is gone.
    async fn conflict_after_race(&self, id: &E::Key, old: &E::Model) -> Error {
        let current = E::find().filter(self.by_key(id)).one(&self.conn()).await;
        match (current, Self::version_of(old)) {
            (Ok(Some(row)), Some(expected)) => Error::VersionConflict {
                expected,
                current: Self::version_of(&row).unwrap_or(expected),
            },
            (Ok(_), _) => Self::not_found(id),
            (Err(err), _) => self.db_error(err),
        }
    }

    fn db_error_from(&self, failure: DbFailure) -> Error {
        let error = failure.into_error(E::NAME);
        if let Error::Internal { source } = &error {
            tracing::error!(resource = E::NAME, error = %source, "database error");
        }
        error
    }

    /// The version of a row, if the resource has a version column (what an
    /// HTTP layer sends as the `ETag`).
    pub fn version_of(model: &E::Model) -> Option<i64> {
        E::COLUMNS
            .version
            .and_then(|c| value::as_i64(&model.get(c)))
    }
}
