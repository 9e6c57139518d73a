//! Who is calling, for which tenant, under which request id and deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// The caller of a service method.
///
/// Every service method takes a `&Context`. The actor is written to
/// `created_by` / `updated_by` columns (and, later, to the audit log); the
/// tenant scopes every read and write of a tenant-aware resource; the request
/// id ties log lines and error responses together; the deadline bounds the
/// whole call.
///
/// ```
/// use keel::Context;
/// use std::time::Duration;
///
/// let ctx = Context::actor("alice").with_tenant("acme").with_timeout(Duration::from_secs(2));
/// assert_eq!(ctx.actor_name(), "alice");
/// assert_eq!(ctx.tenant(), Some("acme"));
/// assert!(!ctx.request_id().is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    actor: Arc<str>,
    tenant: Option<Arc<str>>,
    request_id: Arc<str>,
    deadline: Option<Instant>,
}

impl Context {
    /// A context acting as `actor`, with a fresh request id (a UUID v7).
    pub fn actor(actor: impl Into<Arc<str>>) -> Self {
        Self::for_request(actor, uuid::Uuid::now_v7().to_string())
    }

    /// A context acting as `actor` in the request whose id is `request_id`
    /// (an HTTP layer's, say): no id is made.
    pub fn for_request(actor: impl Into<Arc<str>>, request_id: impl Into<Arc<str>>) -> Self {
        Context {
            actor: actor.into(),
            tenant: None,
            request_id: request_id.into(),
            deadline: None,
        }
    }

    /// A context for work the system does on its own behalf (actor `system`).
    pub fn system() -> Self {
        Self::actor("system")
    }

    /// A context for an unauthenticated caller (actor `anonymous`).
    pub fn anonymous() -> Self {
        Self::actor("anonymous")
    }

    /// Scopes the context to a tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<Arc<str>>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Replaces the generated request id (for instance with an incoming `X-Request-Id`).
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<Arc<str>>) -> Self {
        self.request_id = request_id.into();
        self
    }

    /// Sets an absolute deadline for every call made with this context.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets the deadline to `timeout` from now.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.with_deadline(Instant::now() + timeout)
    }

    /// The actor's name.
    pub fn actor_name(&self) -> &str {
        &self.actor
    }

    /// The tenant, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// The tenant, which every call on a tenant-scoped resource (`plural`)
    /// needs: `PERMISSION_DENIED` without one. The one tenant check of the
    /// services and the audit log.
    pub(crate) fn require_tenant(&self, plural: &str) -> crate::Result<&str> {
        self.tenant().ok_or_else(|| crate::Error::PermissionDenied {
            message: format!("{plural} requires a tenant"),
        })
    }

    /// The request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Runs `fut` within the deadline, if there is one.
    pub(crate) async fn within_deadline<T>(
        &self,
        fut: impl Future<Output = crate::Result<T>>,
    ) -> crate::Result<T> {
        match self.deadline {
            None => fut.await,
            Some(deadline) => {
                if Instant::now() >= deadline {
                    return Err(crate::Error::DeadlineExceeded);
                }
                tokio::time::timeout_at(deadline, fut)
                    .await
                    .unwrap_or(Err(crate::Error::DeadlineExceeded))
            }
        }
    }
}
