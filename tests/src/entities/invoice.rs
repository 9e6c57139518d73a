//! Invoices: a UUID v7 key, a string enum, a JSON column, a nullable date, a
//! bool, an f64 sort key, a `Redacted` field, soft delete, a version; cached.

use keel::{Audit, Redacted, Service};
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Where an invoice stands. Its JSON form and its stored form differ on
/// purpose (`"written_off"` is stored as `"void"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(12))")]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not sent yet.
    #[sea_orm(string_value = "draft")]
    Draft,
    /// Sent, waiting for payment.
    #[sea_orm(string_value = "sent")]
    Sent,
    /// Paid.
    #[sea_orm(string_value = "paid")]
    Paid,
    /// Given up on.
    #[sea_orm(string_value = "void")]
    WrittenOff,
}

/// An invoice.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
#[sea_orm(table_name = "invoices")]
#[service(soft_delete = "deleted_at", cache(ttl = "5m"))]
pub struct Model {
    /// Key: a UUID v7 made by the service.
    #[sea_orm(primary_key, auto_increment = false)]
    #[service(filter, sort)]
    pub id: Uuid,
    /// The customer's name.
    #[service(filter, sort, validate(length(min = 1, max = 100)))]
    pub customer: String,
    /// Where it stands.
    #[service(filter, sort)]
    pub state: State,
    /// The amount, in a currency with fractions nobody rounds.
    #[service(filter, sort)]
    pub amount: f64,
    /// Whether it was sent by post.
    #[service(filter)]
    pub by_post: bool,
    /// When it is due, if it is.
    #[service(filter, sort)]
    pub due_on: Option<Date>,
    /// Lines, as the client sent them.
    pub lines: Json,
    /// The bank account to pay into: never in `Debug`, audit rows or
    /// events (the type implies `#[audit(redact)]`).
    pub iban: Redacted<String>,
    /// Optimistic lock.
    #[service(version)]
    pub version: i32,
    /// Created.
    #[service(created_at, filter, sort)]
    pub created_at: DateTimeUtc,
    /// Last written.
    #[service(updated_at)]
    pub updated_at: DateTimeUtc,
    /// Soft delete.
    pub deleted_at: Option<DateTimeUtc>,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl NewInvoice {
    /// A draft invoice for `customer` over `amount`.
    pub fn new(customer: &str, amount: f64) -> Self {
        NewInvoice {
            customer: customer.to_owned(),
            state: State::Draft,
            amount,
            by_post: false,
            due_on: None,
            lines: serde_json::json!([{"item": "work", "amount": amount}]),
            iban: Redacted::new("DE89370400440532013000".to_owned()),
        }
    }
}
