//! Hooks: code of yours that runs inside every write of a resource.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crate::sync::Unpoison as _;
use crate::tx::Tx;
use crate::{Context, Resource, Result};

/// Code that runs inside every write of resource `E`, in the write's
/// transaction, for single and bulk writes alike (once per row).
///
/// Every method has a no-op default; implement the ones you need. They
/// receive the caller's context and the write's transaction, so they can
/// read and write other resources in it (`tx.service::<Other>()`), emit
/// events (`tx.emit`) or queue after-commit work. An error from any hook
/// rolls the whole write back and is returned to the caller unchanged; for a
/// `before_*` hook, nothing was written yet.
///
/// Register hooks at start-up with [`Keel::add_hooks`](crate::Keel::add_hooks);
/// several hooks for one resource run in the order they were added.
///
/// ```
/// use keel::{Context, Error, Hooks, Result, tx::Tx};
/// # mod product {
/// #     use keel::prelude::*;
/// #     use sea_orm::entity::prelude::*;
/// #     use serde::{Deserialize, Serialize};
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
/// #     #[sea_orm(table_name = "products")]
/// #     pub struct Model {
/// #         #[sea_orm(primary_key)]
/// #         pub id: i64,
/// #         pub name: String,
/// #         pub stock: i32,
/// #     }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
///
/// struct NoNegativeStock;
///
/// impl Hooks<product::Entity> for NoNegativeStock {
///     async fn before_update(
///         &self,
///         _ctx: &Context,
///         _tx: &Tx,
///         _old: &product::Model,
///         patch: &product::ProductPatch,
///     ) -> Result<()> {
///         match patch.stock {
///             Some(stock) if stock < 0 => Err(Error::rejected("NEGATIVE_STOCK", "stock cannot go below zero")),
///             _ => Ok(()),
///         }
///     }
/// }
/// ```
pub trait Hooks<E: Resource>: Send + Sync + 'static {
    /// Before a row is inserted, with the validated input.
    fn before_create(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _input: &E::Create,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// After a row is inserted, with the row as stored.
    fn after_create(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _row: &E::Model,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Before a row is updated, with the row as it is and the patch.
    fn before_update(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _old: &E::Model,
        _patch: &E::Patch,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// After a row is updated, with the row before and after.
    fn after_update(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _old: &E::Model,
        _new: &E::Model,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Before a row is deleted (or soft-deleted).
    fn before_delete(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _old: &E::Model,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// After a row is deleted (or soft-deleted), with the row as it was.
    fn after_delete(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _old: &E::Model,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Before a soft-deleted row is restored.
    fn before_restore(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _old: &E::Model,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// After a soft-deleted row is restored, with the row as it is now.
    fn after_restore(
        &self,
        _ctx: &Context,
        _tx: &Tx,
        _row: &E::Model,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// [`Hooks`] behind a pointer.
pub(crate) trait DynHooks<E: Resource>: Send + Sync {
    fn before_create<'a>(&'a self, c: &'a Context, t: &'a Tx, i: &'a E::Create) -> HookFuture<'a>;
    fn after_create<'a>(&'a self, c: &'a Context, t: &'a Tx, r: &'a E::Model) -> HookFuture<'a>;
    fn before_update<'a>(
        &'a self,
        c: &'a Context,
        t: &'a Tx,
        o: &'a E::Model,
        p: &'a E::Patch,
    ) -> HookFuture<'a>;
    fn after_update<'a>(
        &'a self,
        c: &'a Context,
        t: &'a Tx,
        o: &'a E::Model,
        n: &'a E::Model,
    ) -> HookFuture<'a>;
    fn before_delete<'a>(&'a self, c: &'a Context, t: &'a Tx, o: &'a E::Model) -> HookFuture<'a>;
    fn after_delete<'a>(&'a self, c: &'a Context, t: &'a Tx, o: &'a E::Model) -> HookFuture<'a>;
    fn before_restore<'a>(&'a self, c: &'a Context, t: &'a Tx, o: &'a E::Model) -> HookFuture<'a>;
    fn after_restore<'a>(&'a self, c: &'a Context, t: &'a Tx, r: &'a E::Model) -> HookFuture<'a>;
}

impl<E: Resource, H: Hooks<E>> DynHooks<E> for H {
    fn before_create<'a>(&'a self, c: &'a Context, t: &'a Tx, i: &'a E::Create) -> HookFuture<'a> {
        Box::pin(Hooks::before_create(self, c, t, i))
    }
    fn after_create<'a>(&'a self, c: &'a Context, t: &'a Tx, r: &'a E::Model) -> HookFuture<'a> {
        Box::pin(Hooks::after_create(self, c, t, r))
    }
    fn before_update<'a>(
        &'a self,
        c: &'a Context,
        t: &'a Tx,
        o: &'a E::Model,
        p: &'a E::Patch,
    ) -> HookFuture<'a> {
        Box::pin(Hooks::before_update(self, c, t, o, p))
    }
    fn after_update<'a>(
        &'a self,
        c: &'a Context,
        t: &'a Tx,
        o: &'a E::Model,
        n: &'a E::Model,
    ) -> HookFuture<'a> {
        Box::pin(Hooks::after_update(self, c, t, o, n))
    }
    fn before_delete<'a>(&'a self, c: &'a Context, t: &'a Tx, o: &'a E::Model) -> HookFuture<'a> {
        Box::pin(Hooks::before_delete(self, c, t, o))
    }
    fn after_delete<'a>(&'a self, c: &'a Context, t: &'a Tx, o: &'a E::Model) -> HookFuture<'a> {
        Box::pin(Hooks::after_delete(self, c, t, o))
    }
    fn before_restore<'a>(&'a self, c: &'a Context, t: &'a Tx, o: &'a E::Model) -> HookFuture<'a> {
        Box::pin(Hooks::before_restore(self, c, t, o))
    }
    fn after_restore<'a>(&'a self, c: &'a Context, t: &'a Tx, r: &'a E::Model) -> HookFuture<'a> {
        Box::pin(Hooks::after_restore(self, c, t, r))
    }
}

/// The hooks of one resource, in the order they were added.
pub(crate) type HookList<E> = Arc<Vec<Arc<dyn DynHooks<E>>>>;

/// The hooks of every resource of a [`Keel`](crate::Keel).
#[derive(Default)]
pub(crate) struct HookRegistry {
    by_resource: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl HookRegistry {
    pub(crate) fn add<E: Resource>(&self, hooks: impl Hooks<E>) {
        let mut map = self.by_resource.write().unpoisoned();
        let mut list: Vec<Arc<dyn DynHooks<E>>> = map
            .get(&TypeId::of::<E>())
            .and_then(|any| any.clone().downcast::<Vec<Arc<dyn DynHooks<E>>>>().ok())
            .map(|list| list.as_ref().clone())
            .unwrap_or_default();
        list.push(Arc::new(hooks));
        map.insert(TypeId::of::<E>(), Arc::new(list));
    }

    pub(crate) fn get<E: Resource>(&self) -> Option<HookList<E>> {
        let map = self.by_resource.read().unpoisoned();
        map.get(&TypeId::of::<E>())
            .and_then(|any| any.clone().downcast::<Vec<Arc<dyn DynHooks<E>>>>().ok())
    }
}

impl std::fmt::Debug for HookRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.by_resource.read().map(|m| m.len()).unwrap_or_default();
        f.debug_struct("HookRegistry")
            .field("resources", &n)
            .finish()
    }
}
