//! The handlers of a resource's routes.

use axum::Extension;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel::{BaseService, Error, HistoryQuery, ListQuery, Page, Resource, View};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::body::{Input, JsonBytes, parse_in_view};
use crate::policy::Operation;
use crate::precondition::{Tag, etag, if_match, precondition, precondition_header};
use crate::resource::Shared;
use crate::{ApiError, Ctx, Identity, PathId};

/// The caller's identity, when authentication set one.
type Who = Option<Extension<Identity>>;

fn who(who: &Who) -> Option<&Identity> {
    who.as_ref().map(|Extension(identity)| identity)
}

type Reply = Result<Response, ApiError>;

/// The query parameters of a list; any other is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
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
pub(crate) struct CountParams {
    filter: Option<String>,
    show_deleted: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    page_size: Option<u32>,
    page_token: Option<String>,
}

/// A path id parsed as resource `E`'s key, or `400 INVALID_ARGUMENT`
/// naming it (for routes of the application's own).
pub fn parse_id<E: Resource>(raw: &str) -> Result<E::Key, ApiError> {
    raw.parse::<E::Key>().map_err(|_| {
        Error::invalid_argument("id", format!("{raw:?} is not a valid {} id", E::NAME)).into()
    })
}

fn row_response<E: Resource>(status: StatusCode, row: &E::Model, view: View) -> Response {
    let mut response = (status, Json(view.project::<E>(row))).into_response();
    if let Some(tag) = etag::<E>(row) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

pub(crate) async fn list<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Reply {
    let deleted = params
        .as_ref()
        .is_ok_and(|Query(p)| p.show_deleted == Some(true));
    let (service, view) = shared.allow_deleted(Operation::List, None, who(&identity), deleted)?;
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

pub(crate) async fn count<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    params: Result<Query<CountParams>, QueryRejection>,
) -> Reply {
    let deleted = params
        .as_ref()
        .is_ok_and(|Query(p)| p.show_deleted == Some(true));
    let (service, view) = shared.allow_deleted(Operation::Count, None, who(&identity), deleted)?;
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

pub(crate) async fn get_one<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Reply {
    let (service, view) = shared.allow(Operation::Get, Some(&id), who(&identity))?;
    let id = parse_id::<E>(&id)?;
    let keel::RowJson { row, json } = service.get_json_in(&ctx.0, id, view).await?;
    let current = BaseService::<E>::version_of(&row);
    let not_modified = match precondition_header(&headers, header::IF_NONE_MATCH, "If-None-Match")?
    {
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

pub(crate) async fn create<E>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    body: Result<JsonBytes, ApiError>,
) -> Reply
where
    E: Resource,
    E::Create: DeserializeOwned,
{
    let (service, view) = shared.allow(Operation::Create, None, who(&identity))?;
    // A create that needs a field this caller may not write.
    if E::SCHEMA
        .iter()
        .any(|f| f.in_create && !f.nullable && !view.shows::<E>(f.name))
    {
        return Err(ApiError::permission_denied(format!(
            "creating a {} needs fields this caller may not write",
            E::NAME
        )));
    }
    let JsonBytes(bytes) = body?;
    let input: E::Create = parse_in_view::<E, _>(&bytes, view, Input::Create)?;
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

/// What a key may hold unescaped in a path segment: RFC 3986's unreserved
/// characters; everything else is percent-encoded.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) async fn patch<E>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Result<JsonBytes, ApiError>,
) -> Reply
where
    E: Resource,
    E::Patch: DeserializeOwned,
{
    let (service, view) = shared.allow(Operation::Update, Some(&id), who(&identity))?;
    let id = parse_id::<E>(&id)?;
    let expected = if_match(&headers)?;
    let JsonBytes(bytes) = body?;
    let patch: E::Patch = parse_in_view::<E, _>(&bytes, view, Input::Patch)?;
    let row = match expected {
        Some(version) => service.update_if_version(&ctx.0, id, patch, version).await,
        None => service.update(&ctx.0, id, patch).await,
    }
    .map_err(|e| precondition(e, expected))?;
    Ok(row_response::<E>(StatusCode::OK, &row, view))
}

pub(crate) async fn delete<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Reply {
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

pub(crate) async fn restore<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
) -> Reply {
    let (service, view) = shared.allow(Operation::Restore, Some(&id), who(&identity))?;
    let id = parse_id::<E>(&id)?;
    let row = service.restore(&ctx.0, id).await?;
    Ok(row_response::<E>(StatusCode::OK, &row, view))
}

pub(crate) async fn history<E: Resource>(
    State(shared): State<Shared<E>>,
    ctx: Ctx,
    identity: Who,
    PathId(id): PathId,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Reply {
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
