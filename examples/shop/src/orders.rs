//! Orders: placed in one transaction that locks the products, checks and
//! takes the stock, writes the order and its lines and emits
//! `shop.order.placed`; cancelled in one that puts the stock back.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use keel::event::DomainEvent;
use keel::prelude::*;
use keel::tx::{Isolation, RetryPolicy};
use keel::{Error, FieldError, ValidationErrors};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::entities::{customer, order, order_line, product};
use keel_axum::{ApiError, Ctx, Identity, JsonBody, PathId};

/// The most lines one order may have.
pub const MAX_LINES: usize = 100;

/// `POST /orders`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// Who buys.
    pub customer_id: Uuid,
    /// What: 1 to [`MAX_LINES`] lines.
    pub lines: Vec<LineInput>,
}

/// One line of [`PlaceOrder`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    /// The product.
    pub product_id: i64,
    /// Units, at least 1.
    pub quantity: i32,
}

/// An order with its lines, as `GET /orders/{id}` answers it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct OrderWithLines {
    /// The order.
    #[serde(flatten)]
    pub order: order::Model,
    /// Its lines, in product order.
    pub lines: Vec<order_line::Model>,
}

/// The event of a placed order: `shop.order.placed`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: i64,
    /// Who bought.
    pub customer_id: Uuid,
    /// The sum of the lines.
    pub total_cents: i64,
    /// `(product, quantity)` per line.
    pub lines: Vec<(i64, i32)>,
}

impl DomainEvent for OrderPlaced {
    const TYPE: &'static str = "order.placed";
    fn subject(&self) -> Option<String> {
        Some(self.order_id.to_string())
    }
}

/// The event of a cancelled order: `shop.order.cancelled`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: i64,
    /// `(product, quantity)` put back in stock.
    pub restocked: Vec<(i64, i32)>,
}

impl DomainEvent for OrderCancelled {
    const TYPE: &'static str = "order.cancelled";
    fn subject(&self) -> Option<String> {
        Some(self.order_id.to_string())
    }
}

/// `POST /orders`, `GET /orders/{id}` (with lines), `POST /orders/{id}/cancel`.
/// The list, count and history of orders are the generic resource routes.
pub fn routes(keel: Keel, open: bool) -> Router {
    Router::new()
        .route("/orders", post(place))
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/cancel", post(cancel))
        .layer(axum::extract::DefaultBodyLimit::max(keel_axum::BODY_LIMIT))
        .with_state(Shop { keel, open })
}

#[derive(Clone)]
struct Shop {
    keel: Keel,
    /// Development mode: no tokens needed.
    open: bool,
}

impl Shop {
    fn require(&self, identity: Option<&Extension<Identity>>) -> Result<(), ApiError> {
        if self.open || identity.is_some() {
            Ok(())
        } else {
            Err(ApiError::unauthenticated(
                "orders need a valid bearer token (Authorization: Bearer ...)",
            ))
        }
    }
}

/// The request's lines, merged per product and sorted by product id (so
/// that concurrent orders lock products in one order and never deadlock).
fn check(input: &PlaceOrder) -> Result<BTreeMap<i64, i32>, Error> {
    let mut errors = ValidationErrors::new();
    if input.lines.is_empty() || input.lines.len() > MAX_LINES {
        errors.push(FieldError::new(
            "/lines",
            "LENGTH",
            format!("an order has 1 to {MAX_LINES} lines"),
        ));
        // Nothing more to say: one error, however long the order.
        return Err(errors.into());
    }
    let mut merged = BTreeMap::new();
    for (i, line) in input.lines.iter().enumerate() {
        if line.quantity < 1 {
            errors.push(FieldError::new(
                format!("/lines/{i}/quantity"),
                "RANGE",
                "quantity must be at least 1",
            ));
            continue;
        }
        let total: &mut i32 = merged.entry(line.product_id).or_default();
        *total = total.saturating_add(line.quantity);
    }
    errors.into_result()?;
    Ok(merged)
}

async fn place(
    State(shop): State<Shop>,
    Ctx(ctx): Ctx,
    identity: Option<Extension<Identity>>,
    body: Result<JsonBody<PlaceOrder>, ApiError>,
) -> Result<Response, ApiError> {
    shop.require(identity.as_ref())?;
    let JsonBody(input) = body?;
    let merged = check(&input)?;
    let placed = place_order(&shop.keel, &ctx, input.customer_id, &merged).await?;
    let mut response = (StatusCode::CREATED, Json(&placed)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/orders/{}", placed.order.id)) {
        headers.insert(header::LOCATION, v);
    }
    if let Some(v) = keel_axum::etag::<order::Entity>(&placed.order) {
        headers.insert(header::ETAG, v);
    }
    Ok::<_, ApiError>(response)
}

/// Places an order in one transaction; `INSUFFICIENT_STOCK` (409) changes nothing.
pub async fn place_order(
    keel: &Keel,
    ctx: &Context,
    customer_id: Uuid,
    lines: &BTreeMap<i64, i32>,
) -> keel::Result<OrderWithLines> {
    let options = TxOptions::new()
        .isolation(Isolation::ReadCommitted)
        .retry(RetryPolicy::attempts(5));
    keel.transaction(ctx, options, |tx| async move {
        let ctx = tx.context();
        if tx
            .service::<customer::Entity>()
            .find(ctx, customer_id)
            .await?
            .is_none()
        {
            return Err(Error::validation(
                "/customer_id",
                "UNKNOWN_CUSTOMER",
                format!("there is no customer {customer_id}"),
            ));
        }
        let products = tx.service::<product::Entity>();
        let mut priced = Vec::with_capacity(lines.len());
        for (&product_id, &quantity) in lines {
            let item = match products.get_for_update(ctx, product_id).await {
                Ok(item) => item,
                Err(Error::NotFound { .. }) => {
                    return Err(Error::validation(
                        "/lines",
                        "UNKNOWN_PRODUCT",
                        format!("there is no product {product_id}"),
                    ));
                }
                Err(e) => return Err(e),
            };
            if item.stock < quantity {
                return Err(Error::rejected(
                    "INSUFFICIENT_STOCK",
                    format!(
                        "product {product_id} has {} in stock, the order asks for {quantity}",
                        item.stock
                    ),
                ));
            }
            products
                .update(
                    ctx,
                    product_id,
                    product::ProductPatch::default().stock(item.stock - quantity),
                )
                .await?;
            priced.push((product_id, quantity, item.price_cents));
        }
        let total_cents = priced.iter().try_fold(0i64, |sum, (_, q, price)| {
            price
                .checked_mul(i64::from(*q))
                .and_then(|line| sum.checked_add(line))
                .ok_or_else(|| Error::validation("/lines", "RANGE", "the order total is too large"))
        })?;
        let order = tx
            .service::<order::Entity>()
            .create(
                ctx,
                order::NewOrder {
                    customer_id,
                    status: "placed".into(),
                    total_cents,
                },
            )
            .await?;
        let new_lines = priced
            .iter()
            .map(
                |&(product_id, quantity, unit_price_cents)| order_line::NewOrderLine {
                    order_id: order.id,
                    product_id,
                    quantity,
                    unit_price_cents,
                },
            )
            .collect();
        let mut lines = tx
            .service::<order_line::Entity>()
            .create_many(ctx, new_lines)
            .await?;
        lines.sort_by_key(|l| l.product_id);
        tx.emit_domain(&OrderPlaced {
            order_id: order.id,
            customer_id,
            total_cents,
            lines: priced.iter().map(|&(p, q, _)| (p, q)).collect(),
        })?;
        Ok(OrderWithLines { order, lines })
    })
    .await
}

/// An order's lines, in product order, read on `db` (the pool or a transaction).
async fn lines_of(
    db: &impl sea_orm::ConnectionTrait,
    order_id: i64,
) -> keel::Result<Vec<order_line::Model>> {
    order_line::Entity::find()
        .filter(order_line::Column::OrderId.eq(order_id))
        .order_by_asc(order_line::Column::ProductId)
        .all(db)
        .await
        .map_err(Error::from)
}

async fn get_order(
    State(shop): State<Shop>,
    Ctx(ctx): Ctx,
    identity: Option<Extension<Identity>>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    shop.require(identity.as_ref())?;
    let id = keel_axum::parse_id::<order::Entity>(&id)?;
    let order = shop.keel.service::<order::Entity>().get(&ctx, id).await?;
    let lines = lines_of(shop.keel.db(), id).await?;
    let etag = keel_axum::etag::<order::Entity>(&order);
    let mut response = Json(OrderWithLines { order, lines }).into_response();
    if let Some(v) = etag {
        response.headers_mut().insert(header::ETAG, v);
    }
    Ok::<_, ApiError>(response)
}

async fn cancel(
    State(shop): State<Shop>,
    Ctx(ctx): Ctx,
    identity: Option<Extension<Identity>>,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    shop.require(identity.as_ref())?;
    let id = keel_axum::parse_id::<order::Entity>(&id)?;
    let expected = keel_axum::if_match(&headers)?;
    let cancelled = cancel_order(&shop.keel, &ctx, id, expected).await?;
    Ok::<_, ApiError>(Json(cancelled).into_response())
}

/// Cancels a placed order: puts its lines' stock back (products deleted
/// since are left as they are), status `cancelled`, `shop.order.cancelled`.
pub async fn cancel_order(
    keel: &Keel,
    ctx: &Context,
    id: i64,
    expected_version: Option<i64>,
) -> Result<OrderWithLines, ApiError> {
    let options = TxOptions::new()
        .isolation(Isolation::ReadCommitted)
        .retry(RetryPolicy::attempts(5));
    keel.transaction(ctx, options, |tx| async move {
        let ctx = tx.context();
        let orders = tx.service::<order::Entity>();
        let current = orders.get_for_update(ctx, id).await?;
        if let Some(v) = expected_version
            && v != i64::from(current.version)
        {
            return Ok(Err(ApiError::precondition_failed(
                v,
                i64::from(current.version),
            )));
        }
        if current.status == "cancelled" {
            return Err(Error::rejected(
                "ORDER_NOT_CANCELLABLE",
                format!("order {id} is cancelled already"),
            ));
        }
        let lines = order_line::Entity::find()
            .filter(order_line::Column::OrderId.eq(id))
            .order_by_asc(order_line::Column::ProductId)
            .all(tx.db())
            .await
            .map_err(Error::from)?;
        let products = tx.service::<product::Entity>();
        let mut restocked = Vec::new();
        for line in &lines {
            match products.get_for_update(ctx, line.product_id).await {
                Ok(item) => {
                    products
                        .update(
                            ctx,
                            line.product_id,
                            product::ProductPatch::default()
                                .stock(item.stock.saturating_add(line.quantity)),
                        )
                        .await?;
                    restocked.push((line.product_id, line.quantity));
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let order = orders
            .update(
                ctx,
                id,
                order::OrderPatch::default()
                    .status("cancelled".to_owned())
                    .if_version(current.version),
            )
            .await?;
        tx.emit_domain(&OrderCancelled {
            order_id: id,
            restocked,
        })?;
        Ok(Ok(OrderWithLines { order, lines }))
    })
    .await?
}

/// Adds the shop's own order routes and schemas to the OpenAPI document.
pub fn document(doc: keel_axum::ApiDoc, bearer: bool) -> keel_axum::ApiDoc {
    use serde_json::json;
    let security = if bearer {
        json!([{"bearer": []}])
    } else {
        json!([])
    };
    let error = keel_axum::ApiDoc::error_response;
    let with_lines = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OrderWithLines"}}}});
    let id = keel_axum::ApiDoc::id_parameter::<order::Entity>();
    doc.schema(
        "PlaceOrder",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["customer_id", "lines"],
            "properties": {
                "customer_id": {"type": "string", "format": "uuid"},
                "lines": {"type": "array", "minItems": 1, "maxItems": MAX_LINES, "items": {
                    "type": "object", "additionalProperties": false,
                    "required": ["product_id", "quantity"],
                    "properties": {
                        "product_id": {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX},
                        "quantity": {"type": "integer", "format": "int32", "minimum": 1, "maximum": i32::MAX},
                    },
                }},
            },
        }),
    )
    .schema(
        "OrderWithLines",
        json!({"allOf": [
            {"$ref": "#/components/schemas/Order"},
            {"type": "object", "required": ["lines"], "properties": {
                "lines": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "integer", "format": "int64"},
                    "order_id": {"type": "integer", "format": "int64"},
                    "product_id": {"type": "integer", "format": "int64"},
                    "quantity": {"type": "integer", "format": "int32"},
                    "unit_price_cents": {"type": "integer", "format": "int64"},
                }}},
            }},
        ]}),
    )
    .path(
        "/orders",
        json!({"post": {
            "tags": ["orders"], "operationId": "place_order",
            "summary": "Place an order: one transaction locks the products, takes the stock, writes the order and its lines, emits shop.order.placed",
            "security": security,
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PlaceOrder"}}}},
            "responses": {
                "201": with_lines("The order, with its lines"),
                "400": error("INVALID_ARGUMENT: malformed JSON"),
                "409": error("INSUFFICIENT_STOCK: nothing was changed"),
                "413": error("PAYLOAD_TOO_LARGE"),
                "415": error("UNSUPPORTED_MEDIA_TYPE"),
                "422": error("VALIDATION_FAILED: no lines, a quantity below 1, an unknown customer or product"),
            },
        }}),
    )
    .path(
        "/orders/{id}",
        json!({"get": {
            "tags": ["orders"], "operationId": "get_order", "summary": "An order with its lines",
            "security": security, "parameters": [id],
            "responses": {"200": with_lines("The order"), "400": error("INVALID_ARGUMENT: a malformed id"), "404": error("NOT_FOUND")},
        }}),
    )
    .path(
        "/orders/{id}/cancel",
        json!({"post": {
            "tags": ["orders"], "operationId": "cancel_order",
            "summary": "Cancel an order: its stock goes back, shop.order.cancelled is emitted",
            "security": security,
            "parameters": [id, keel_axum::ApiDoc::if_match_parameter()],
            "responses": {
                "200": with_lines("The cancelled order"),
                "400": error("INVALID_ARGUMENT: a malformed id or If-Match"),
                "404": error("NOT_FOUND"),
                "409": error("ORDER_NOT_CANCELLABLE: cancelled already"),
                "412": error("PRECONDITION_FAILED"),
            },
        }}),
    )
}
