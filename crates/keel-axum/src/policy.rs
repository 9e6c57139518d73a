//! Authorisation of a resource's routes: the operation, what a request
//! asks, the policy that judges it.

use crate::{ApiError, Identity};

/// One operation of a resource's routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `GET /{plural}`
    List,
    /// `GET /{plural}/count`
    Count,
    /// `GET /{plural}/{id}`
    Get,
    /// `POST /{plural}`
    Create,
    /// `PATCH /{plural}/{id}`
    Update,
    /// `DELETE /{plural}/{id}`
    Delete,
    /// `GET /{plural}/{id}/history`
    History,
    /// `POST /{plural}/{id}/restore`
    Restore,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 8] = [
        Operation::List,
        Operation::Count,
        Operation::Get,
        Operation::Create,
        Operation::Update,
        Operation::Delete,
        Operation::History,
        Operation::Restore,
    ];

    /// Whether the operation writes (create, update, delete, restore).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Update | Operation::Delete | Operation::Restore
        )
    }
}

/// What a request asks to do, for an [`Authorize`] policy to judge.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Access<'a> {
    /// The resource's name, such as `product`.
    pub resource: &'static str,
    /// The operation.
    pub operation: Operation,
    /// The row's id as the path gave it, for operations on one row.
    pub id: Option<&'a str>,
    /// Who is calling, when authentication put an [`Identity`] in the
    /// request; `None` for an anonymous caller.
    pub identity: Option<&'a Identity>,
    /// Whether a list or count asks for soft-deleted rows too
    /// (`show_deleted=true`). (The audit history is its own operation,
    /// [`Operation::History`].)
    pub show_deleted: bool,
}

/// A per-route authorisation policy: called before each operation.
/// Any `Fn(&Access<'_>) -> Result<(), ApiError>` is one.
pub trait Authorize: Send + Sync + 'static {
    /// `Ok` lets the operation run; `Err` is the answer.
    fn authorize(&self, access: &Access<'_>) -> Result<(), ApiError>;
}

impl<F> Authorize for F
where
    F: Fn(&Access<'_>) -> Result<(), ApiError> + Send + Sync + 'static,
{
    fn authorize(&self, access: &Access<'_>) -> Result<(), ApiError> {
        self(access)
    }
}

/// A policy: reads are open, writes need an [`Identity`] (else `401
/// UNAUTHENTICATED`).
pub fn writes_need_identity(access: &Access<'_>) -> Result<(), ApiError> {
    if access.operation.is_write() && access.identity.is_none() {
        return Err(ApiError::unauthenticated(
            "this operation needs a valid bearer token",
        ));
    }
    Ok(())
}

/// A reveal policy: callers with an [`Identity`] see private fields,
/// anonymous callers do not (see [`Routes::reveal_private`](crate::Routes::reveal_private)).
pub fn reveal_to_identified(access: &Access<'_>) -> bool {
    access.identity.is_some()
}
