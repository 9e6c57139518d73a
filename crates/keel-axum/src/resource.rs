//! The routes of one resource.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use keel::{BaseService, Resource, View};
use serde::de::DeserializeOwned;

use crate::handlers::{count, create, delete, get_one, history, list, patch, restore};
use crate::policy::{Access, Authorize, Operation};
use crate::{ApiError, Identity};

/// The default body limit: 1 MiB (413 beyond).
pub const BODY_LIMIT: usize = 1 << 20;

/// The routes of resource `E` (see the crate documentation), open to every
/// caller, with the default body limit. [`routes`] adds authorisation.
pub fn resource<E>(service: BaseService<E>) -> Router
where
    E: Resource,
    E::Create: DeserializeOwned,
    E::Patch: DeserializeOwned,
{
    routes(service).into_router()
}

/// The routes of resource `E`, to be configured: authorisation per
/// operation, body limit.
///
/// ```no_run
/// # async fn demo<E>(service: keel::BaseService<E>) where E: keel::Resource, E::Create: serde::de::DeserializeOwned, E::Patch: serde::de::DeserializeOwned {
/// use keel_axum::{Access, ApiError};
/// let router = keel_axum::routes(service)
///     .authorize(|access: &Access<'_>| match access.identity {
///         None if access.operation.is_write() => Err(ApiError::unauthenticated("sign in to write")),
///         Some(who) if access.operation == keel_axum::Operation::Delete && who.actor != "admin" => {
///             Err(keel::Error::PermissionDenied { message: "only admin deletes".into() }.into())
///         }
///         _ => Ok(()),
///     })
///     .into_router();
/// # }
/// ```
pub fn routes<E: Resource>(service: BaseService<E>) -> Routes<E> {
    Routes {
        service,
        policy: Arc::new(|_: &Access<'_>| Ok(())),
        reveal: Arc::new(|_: &Access<'_>| false),
        body_limit: BODY_LIMIT,
        operations: Operation::ALL.to_vec(),
    }
}

/// The routes of one resource being configured; see [`routes`].
pub struct Routes<E: Resource> {
    service: BaseService<E>,
    policy: Arc<dyn Authorize>,
    reveal: Arc<Reveal>,
    body_limit: usize,
    operations: Vec<Operation>,
}

/// Decides per request whether the caller sees the resource's private fields.
type Reveal = dyn Fn(&Access<'_>) -> bool + Send + Sync;

impl<E> Routes<E>
where
    E: Resource,
    E::Create: DeserializeOwned,
    E::Patch: DeserializeOwned,
{
    /// Decides, before each operation runs, whether the caller may do it:
    /// `Err` is answered as is (`401 UNAUTHENTICATED`, `403
    /// PERMISSION_DENIED`, ...) and nothing is read or written.
    #[must_use]
    pub fn authorize(mut self, policy: impl Authorize) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Decides, per request, whether the caller sees the resource's private
    /// fields (`#[service(private)]`): `true` gives [`View::All`], `false`
    /// [`View::Public`], in which private fields are absent from every row
    /// the routes answer (get, list, create, update, restore), from the
    /// changes of the audit history, and unknown to `filter` and `order_by`
    /// (`400 INVALID_ARGUMENT`, as for a field that does not exist).
    ///
    /// The default reveals them to no one, so a field marked private is
    /// never served until the application says to whom;
    /// [`reveal_to_identified`](crate::reveal_to_identified) reveals them to every caller with an
    /// [`Identity`]. A resource without private fields is not affected.
    #[must_use]
    pub fn reveal_private(
        mut self,
        policy: impl Fn(&Access<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.reveal = Arc::new(policy);
        self
    }

    /// Serves only these operations (the others' routes do not exist, so
    /// the application can serve its own there, such as a create that runs a
    /// transaction of its own).
    #[must_use]
    pub fn only(mut self, operations: &[Operation]) -> Self {
        self.operations = operations.to_vec();
        self
    }

    /// The largest body accepted (413 beyond); default [`BODY_LIMIT`].
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The router.
    pub fn into_router(self) -> Router<()> {
        let plural = E::PLURAL;
        let has = |op: Operation| self.operations.contains(&op);
        let state = Shared {
            service: self.service.clone(),
            policy: Arc::clone(&self.policy),
            reveal: Arc::clone(&self.reveal),
        };
        let mut collection = MethodRouter::new();
        if has(Operation::List) {
            collection = collection.get(list::<E>);
        }
        if has(Operation::Create) {
            collection = collection.post(create::<E>);
        }
        let mut one = MethodRouter::new();
        if has(Operation::Get) {
            one = one.get(get_one::<E>);
        }
        if has(Operation::Update) {
            one = one.patch(patch::<E>);
        }
        if has(Operation::Delete) {
            one = one.delete(delete::<E>);
        }
        let mut router = Router::new();
        if has(Operation::List) || has(Operation::Create) {
            router = router.route(&format!("/{plural}"), collection);
        }
        if has(Operation::Count) {
            router = router.route(&format!("/{plural}/count"), get(count::<E>));
        }
        if has(Operation::Get) || has(Operation::Update) || has(Operation::Delete) {
            router = router.route(&format!("/{plural}/{{id}}"), one);
        }
        if has(Operation::History) {
            router = router.route(&format!("/{plural}/{{id}}/history"), get(history::<E>));
        }
        if has(Operation::Restore) && E::COLUMNS.deleted_at.is_some() {
            router = router.route(&format!("/{plural}/{{id}}/restore"), post(restore::<E>));
        }
        router
            .layer(DefaultBodyLimit::max(self.body_limit))
            .with_state(state)
    }
}

impl<E> From<Routes<E>> for Router
where
    E: Resource,
    E::Create: DeserializeOwned,
    E::Patch: DeserializeOwned,
{
    fn from(routes: Routes<E>) -> Router {
        routes.into_router()
    }
}

pub(crate) struct Shared<E: Resource> {
    service: BaseService<E>,
    policy: Arc<dyn Authorize>,
    reveal: Arc<Reveal>,
}

impl<E: Resource> Clone for Shared<E> {
    fn clone(&self) -> Self {
        Shared {
            service: self.service.clone(),
            policy: Arc::clone(&self.policy),
            reveal: Arc::clone(&self.reveal),
        }
    }
}

impl<E: Resource> Shared<E> {
    /// The service, once the policy allows the operation, and the view the
    /// caller reads its rows in.
    pub(crate) fn allow(
        &self,
        operation: Operation,
        id: Option<&str>,
        identity: Option<&Identity>,
    ) -> Result<(&BaseService<E>, View), ApiError> {
        self.allow_deleted(operation, id, identity, false)
    }

    pub(crate) fn allow_deleted(
        &self,
        operation: Operation,
        id: Option<&str>,
        identity: Option<&Identity>,
        show_deleted: bool,
    ) -> Result<(&BaseService<E>, View), ApiError> {
        let access = Access {
            resource: E::NAME,
            operation,
            id,
            identity,
            show_deleted,
        };
        self.policy.authorize(&access)?;
        // Asked only when there is something to hide.
        let view = if E::PRIVATE_FIELDS.is_empty() || (self.reveal)(&access) {
            View::All
        } else {
            View::Public
        };
        Ok((&self.service, view))
    }
}
