//! The routes of one resource.

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use keel::{BaseService, Error, HistoryQuery, ListQuery, Resource};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{ApiError, Ctx};

/// The default body limit: 1 MiB (413 beyond).
pub const BODY_LIMIT: usize = 1 << 20;

/// The routes of resource `E` (see the crate documentation), with the
/// default body limit.
pub fn resource<E>(service: BaseService<E>) -> Router
where
    E: Resource,
    E::Create: DeserializeOwned,
    E::Patch: DeserializeOwned,
{
    let plural = E::PLURAL;
    Router::new()
        .route(&format!("/{plural}"), get(list::<E>).post(create::<E>))
        .route(&format!("/{plural}/count"), get(count::<E>))
        .route(
            &format!("/{plural}/{{id}}"),
            get(get_one::<E>).patch(patch::<E>).delete(delete::<E>),
        )
        .route(&format!("/{plural}/{{id}}/history"), get(history::<E>))
        .route(&format!("/{plural}/{{id}}/restore"), post(restore::<E>))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(service)
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
            .with_total_size(self.count.unwrap_or(false));
        if let Some(f) = self.filter.filter(|f| !f.trim().is_empty()) {
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

fn parse_id<E: Resource>(raw: &str) -> Result<E::Key, ApiError> {
    raw.parse::<E::Key>().map_err(|_| {
        Error::invalid_argument("id", format!("{raw:?} is not a valid {} id", E::NAME)).into()
    })
}

fn etag<E: Resource>(row: &E::Model) -> Option<HeaderValue> {
    BaseService::<E>::version_of(row).and_then(|v| HeaderValue::from_str(&format!("\"{v}\"")).ok())
}

/// The version an `If-Match` / `If-None-Match` names: `"3"`, `W/"3"` or `3`.
fn tag_version(value: &HeaderValue) -> Option<i64> {
    let text = value.to_str().ok()?.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    text.trim_matches('"').parse().ok()
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) if v.to_str().is_ok_and(|s| s.trim() == "*") => Ok(None),
        Some(v) => tag_version(v).map(Some).ok_or_else(|| {
            Error::invalid_argument("If-Match", "If-Match must be an ETag such as \"3\"").into()
        }),
    }
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

fn row_response<E: Resource>(status: StatusCode, row: &E::Model) -> Response {
    let mut response = (status, Json(row)).into_response();
    if let Some(tag) = etag::<E>(row) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

async fn list<E: Resource>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let Query(params) = params?;
            let page = service.list(&ctx.0, &params.query()).await?;
            Ok(Json(page).into_response())
        }
        .await,
    )
}

async fn count<E: Resource>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    params: Result<Query<CountParams>, QueryRejection>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let Query(params) = params?;
            let mut q = ListQuery::new().show_deleted(params.show_deleted.unwrap_or(false));
            if let Some(f) = params.filter.filter(|f| !f.trim().is_empty()) {
                q = q.filter(f);
            }
            let n = service.count(&ctx.0, &q).await?;
            Ok(Json(serde_json::json!({ "count": n })).into_response())
        }
        .await,
    )
}

async fn get_one<E: Resource>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    with_id(
        &ctx,
        async {
            let id = parse_id::<E>(&id)?;
            let row = service.get(&ctx.0, id).await?;
            let current = BaseService::<E>::version_of(&row);
            let not_modified = headers
                .get(header::IF_NONE_MATCH)
                .and_then(tag_version)
                .is_some_and(|v| Some(v) == current);
            if not_modified {
                let mut response = StatusCode::NOT_MODIFIED.into_response();
                if let Some(tag) = etag::<E>(&row) {
                    response.headers_mut().insert(header::ETAG, tag);
                }
                return Ok(response);
            }
            Ok(row_response::<E>(StatusCode::OK, &row))
        }
        .await,
    )
}

async fn create<E>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    body: Result<Json<E::Create>, JsonRejection>,
) -> Reply
where
    E: Resource,
    E::Create: DeserializeOwned,
{
    with_id(
        &ctx,
        async {
            let Json(input) = body?;
            let row = service.create(&ctx.0, input).await?;
            let mut response = row_response::<E>(StatusCode::CREATED, &row);
            let key = sea_orm_key::<E>(&row);
            if let Ok(location) = HeaderValue::from_str(&format!("/{}/{key}", E::PLURAL)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        .await,
    )
}

/// The row's key as text, as the routes take it.
fn sea_orm_key<E: Resource>(row: &E::Model) -> String {
    use keel::sea_orm::{Iterable, ModelTrait, PrimaryKeyToColumn};
    E::PrimaryKey::iter()
        .next()
        .map(|pk| row.get(pk.into_column()))
        .and_then(<E::Key as keel::Key>::from_value)
        .map(|k| k.to_string())
        .unwrap_or_default()
}

async fn patch<E>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<E::Patch>, JsonRejection>,
) -> Reply
where
    E: Resource,
    E::Patch: DeserializeOwned,
{
    with_id(
        &ctx,
        async {
            let id = parse_id::<E>(&id)?;
            let expected = if_match(&headers)?;
            let Json(mut patch) = body?;
            if let Some(version) = expected {
                E::set_patch_version(&mut patch, version);
            }
            let row = service
                .update(&ctx.0, id, patch)
                .await
                .map_err(|e| precondition(e, expected))?;
            Ok(row_response::<E>(StatusCode::OK, &row))
        }
        .await,
    )
}

async fn delete<E: Resource>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Reply {
    with_id(
        &ctx,
        async {
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
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let id = parse_id::<E>(&id)?;
            let row = service.restore(&ctx.0, id).await?;
            Ok(row_response::<E>(StatusCode::OK, &row))
        }
        .await,
    )
}

async fn history<E: Resource>(
    State(service): State<BaseService<E>>,
    ctx: Ctx,
    Path(id): Path<String>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Reply {
    with_id(
        &ctx,
        async {
            let id = parse_id::<E>(&id)?;
            let Query(params) = params?;
            let query = HistoryQuery {
                page_size: params.page_size,
                page_token: params.page_token,
            };
            let page = service
                .keel()
                .audit_log()
                .history::<E>(&ctx.0, id, &query)
                .await?;
            Ok(Json(page).into_response())
        }
        .await,
    )
}
