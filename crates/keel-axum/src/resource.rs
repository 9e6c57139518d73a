//! The routes of one resource.

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use keel::{BaseService, Error, HistoryQuery, ListQuery, Page, Resource, View};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use std::sync::Arc;

use axum::Extension;

use crate::{ApiError, Ctx, Identity, JsonBody, PathId};

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
    /// [`reveal_to_identified`] reveals them to every caller with an
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
/// anonymous callers do not (see [`Routes::reveal_private`]).
pub fn reveal_to_identified(access: &Access<'_>) -> bool {
    access.identity.is_some()
}

struct Shared<E: Resource> {
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
    fn allow(
        &self,
        operation: Operation,
        id: Option<&str>,
        identity: Option<&Identity>,
    ) -> Result<(&BaseService<E>, View), ApiError> {
        self.allow_deleted(operation, id, identity, false)
    }

    fn allow_deleted(
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

/// The caller's identity, when authentication set one.
type Who = Option<Extension<Identity>>;

fn who(who: &Who) -> Option<&Identity> {
    who.as_ref().map(|Extension(identity)| identity)
}

type Reply = Result<Response, ApiError>;

/// The query parameters of a list; any other is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    filter: Option<String>,
    order_by: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
    skip: Option<u64>,
    count: Option<bool>,
    show_deleted: Option<bool>,
}

impl ListParams {
    fn query(self) -> ListQuery {
        let mut q = ListQuery::new()
            .show_deleted(self.show_deleted.unwrap_or(false))
            .total_size(self.count.unwrap_or(false));
        // Passed on as it is, blank or not: its length counts.
        if let Some(f) = self.filter {
            q = q.filter(f);
        }
        if let Some(o) = self.order_by.filter(|o| !o.trim().is_empty()) {
            q = q.order_by(o);
        }
        if let Some(n) = self.page_size {
            q = q.page_size(n);
        }
        if let Some(t) = self.page_token.filter(|t| !t.is_empty()) {
            q = q.page_token(t);
        }
        if let Some(s) = self.skip {
            q = q.skip(s);
        }
        q
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CountParams {
    filter: Option<String>,
    show_deleted: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    page_size: Option<u32>,
    page_token: Option<String>,
}

fn with_id<T>(ctx: &Ctx, result: Result<T, ApiError>) -> Result<T, ApiError> {
    result.map_err(|e| e.with_request_id(ctx.0.request_id()))
}

/// A path id parsed as resource `E`'s key, or `400 INVALID_ARGUMENT`
/// naming it (for routes of the application's own).
pub fn parse_id<E: Resource>(raw: &str) -> Result<E::Key, ApiError> {
    raw.parse::<E::Key>().map_err(|_| {
        Error::invalid_argument("id", format!("{raw:?} is not a valid {} id", E::NAME)).into()
    })
}

/// The `ETag` of a row: its version, quoted (`"3"`); `None` without a
/// version column.
pub fn etag<E: Resource>(row: &E::Model) -> Option<HeaderValue> {
    BaseService::<E>::version_of(row).and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok())
}

/// What an `If-Match` / `If-None-Match` header names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    /// `*`: any version.
    Any,
    /// One version: `"3"`, `W/"3"` or `3`.
    Version(i64),
}

/// Parses a precondition header: `*`, or one ETag `"3"` (also `W/"3"` or
/// a bare `3`), at most 18 digits. `None` when it is not that grammar.
fn tag(value: &HeaderValue) -> Option<Tag> {
    let text = value.to_str().ok()?;
    if text == "*" {
        return Some(Tag::Any);
    }
    let digits = match text.strip_prefix("W/").unwrap_or(text) {
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            &quoted[1..quoted.len() - 1]
        }
        bare if bare.len() == text.len() => bare,
        _ => return None,
    };
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Tag::Version)
}

/// The precondition header `name`, `400 INVALID_ARGUMENT` when malformed.
fn precondition_header(
    headers: &HeaderMap,
    name: header::HeaderName,
    label: &'static str,
) -> Result<Option<Tag>, ApiError> {
    match headers.get(&name) {
        None => Ok(None),
        Some(v) => tag(v).map(Some).ok_or_else(|| {
            Error::invalid_argument(
                label,
                format!("{label} must be `*` or an ETag such as \"3\""),
            )
            .into()
        }),
    }
}

/// The version an `If-Match` header expects (`"3"`, `W/"3"`, `3`); `None`
/// without one or for `*` (any version); `400 INVALID_ARGUMENT` when it is
/// not one of those.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    Ok(
        match precondition_header(headers, header::IF_MATCH, "If-Match")? {
            Some(Tag::Version(v)) => Some(v),
            Some(Tag::Any) | None => None,
        },
    )
}

/// A conflict with the version `If-Match` named is a failed precondition.
fn precondition(err: Error, expected: Option<i64>) -> ApiError {
    match (err, expected) {
        (Error::VersionConflict { expected, current }, Some(_)) => {
            ApiError::precondition_failed(expected, current)
        }
        (err, _) => err.into(),
    }
}

fn row_response<E: Resource>(status: StatusCode, row: &E::Model, view: View) -> Response {
    let mut response = (status, Json(view.project::<E>(row))).into_response();
    if let Some(tag) = etag::<E>(row) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

async fn list<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let deleted = params
                .as_ref()
                .is_ok_and(|Query(p)| p.show_deleted == Some(true));
            let (service, view) =
                shared.allow_deleted(Operation::List, None, who(&identity), deleted)?;
            let Query(params) = params?;
            let page = service.list(&ctx.0, &params.query().view(view)).await?;
            if view == View::All {
                return Ok(Json(page).into_response());
            }
            let projected = Page {
                items: page
                    .items
                    .iter()
                    .map(|row| view.project::<E>(row))
                    .collect(),
                next_page_token: page.next_page_token,
                total_size: page.total_size,
            };
            Ok(Json(projected).into_response())
        }
        .await,
    )
}

async fn count<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    params: Result<Query<CountParams>, QueryRejection>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let deleted = params
                .as_ref()
                .is_ok_and(|Query(p)| p.show_deleted == Some(true));
            let (service, view) =
                shared.allow_deleted(Operation::Count, None, who(&identity), deleted)?;
            let Query(params) = params?;
            let mut q = ListQuery::new()
                .show_deleted(params.show_deleted.unwrap_or(false))
                .view(view);
            if let Some(f) = params.filter {
                q = q.filter(f);
            }
            let n = service.count(&ctx.0, &q).await?;
            Ok(Json(serde_json::json!({ "count": n })).into_response())
        }
        .await,
    )
}

async fn get_one<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Reply {
    with_id(
        &ctx,
        async {
            let (service, view) = shared.allow(Operation::Get, Some(&id), who(&identity))?;
            let id = parse_id::<E>(&id)?;
            let keel::RowJson { row, json } = service.get_json_in(&ctx.0, id, view).await?;
            let current = BaseService::<E>::version_of(&row);
            let not_modified =
                match precondition_header(&headers, header::IF_NONE_MATCH, "If-None-Match")? {
                    Some(Tag::Any) => true,
                    Some(Tag::Version(v)) => Some(v) == current,
                    None => false,
                };
            if not_modified {
                let mut response = StatusCode::NOT_MODIFIED.into_response();
                if let Some(tag) = etag::<E>(&row) {
                    response.headers_mut().insert(header::ETAG, tag);
                }
                return Ok(response);
            }
            // The JSON a cache hit already had: the row is not encoded again.
            let mut response = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                json,
            )
                .into_response();
            if let Some(tag) = etag::<E>(&row) {
                response.headers_mut().insert(header::ETAG, tag);
            }
            Ok(response)
        }
        .await,
    )
}

async fn create<E>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    body: Result<JsonBody<E::Create>, ApiError>,
) -> Reply
where
    E: Resource,
    E::Create: DeserializeOwned,
{
    with_id(
        &ctx,
        async {
            let (service, view) = shared.allow(Operation::Create, None, who(&identity))?;
            let JsonBody(input) = body?;
            let row = service.create(&ctx.0, input).await?;
            let mut response = row_response::<E>(StatusCode::CREATED, &row, view);
            let key = BaseService::<E>::key_of(&row)
                .map(|k| k.to_string())
                .unwrap_or_default();
            let key = percent_encoding::utf8_percent_encode(&key, PATH_SEGMENT);
            if let Ok(location) = HeaderValue::from_str(&format!("/{}/{key}", E::PLURAL)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        .await,
    )
}

/// What a key may hold unescaped in a path segment: RFC 3986's unreserved
/// characters; everything else is percent-encoded.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

async fn patch<E>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Result<JsonBody<E::Patch>, ApiError>,
) -> Reply
where
    E: Resource,
    E::Patch: DeserializeOwned,
{
    with_id(
        &ctx,
        async {
            let (service, view) = shared.allow(Operation::Update, Some(&id), who(&identity))?;
            let id = parse_id::<E>(&id)?;
            let expected = if_match(&headers)?;
            let JsonBody(patch) = body?;
            let row = match expected {
                Some(version) => service.update_if_version(&ctx.0, id, patch, version).await,
                None => service.update(&ctx.0, id, patch).await,
            }
            .map_err(|e| precondition(e, expected))?;
            Ok(row_response::<E>(StatusCode::OK, &row, view))
        }
        .await,
    )
}

async fn delete<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Reply {
    with_id(
        &ctx,
        async {
            let (service, _) = shared.allow(Operation::Delete, Some(&id), who(&identity))?;
            let id = parse_id::<E>(&id)?;
            let expected = if_match(&headers)?;
            match expected {
                Some(version) => service.delete_if_version(&ctx.0, id, version).await,
                None => service.delete(&ctx.0, id).await,
            }
            .map_err(|e| precondition(e, expected))?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn restore<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
) -> Reply {
    with_id(
        &ctx,
        async {
            let (service, view) = shared.allow(Operation::Restore, Some(&id), who(&identity))?;
            let id = parse_id::<E>(&id)?;
            let row = service.restore(&ctx.0, id).await?;
            Ok(row_response::<E>(StatusCode::OK, &row, view))
        }
        .await,
    )
}

async fn history<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let (service, view) = shared.allow(Operation::History, Some(&id), who(&identity))?;
            let id = parse_id::<E>(&id)?;
            let Query(params) = params?;
            let query = HistoryQuery {
                page_size: params.page_size,
                page_token: params.page_token,
            };
            let mut page = service
                .keel()
                .audit_log()
                .history::<E>(&ctx.0, id, &query)
                .await?;
            for entry in &mut page.items {
                entry.changes.retain(|c| view.shows::<E>(&c.field));
            }
            Ok(Json(page).into_response())
        }
        .await,
    )
}
