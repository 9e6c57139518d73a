//! The shop's tables: products, customers, orders and their lines. Each is a
//! plain sea-orm entity plus `#[derive(keel::Service)]`.

/// A product: the contract the benchmark harness also speaks.
pub mod product {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A row of `products`.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        Eq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        keel::Service,
        keel::Audit,
    )]
    #[sea_orm(table_name = "products")]
    #[service(name = "product", soft_delete = "deleted_at", cache(ttl = "60s"))]
    pub struct Model {
        /// Server-assigned.
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        /// Unique, 1-64 characters.
        #[sea_orm(unique)]
        #[service(filter(eq, ne, has, in), sort, validate(length(min = 1, max = 64)))]
        pub sku: String,
        /// 1-200 characters.
        #[service(filter(eq, ne, has, in), sort, validate(length(min = 1, max = 200)))]
        pub name: String,
        /// Free text up to 2,000 characters; neither filtered nor sorted.
        #[service(validate(length(max = 2000)))]
        pub description: Option<String>,
        /// The price in cents, >= 0.
        #[service(filter, sort, validate(range(min = 0)))]
        pub price_cents: i64,
        /// Units in stock, >= 0.
        #[service(filter, sort, validate(range(min = 0)))]
        pub stock: i32,
        /// What the shop pays its supplier: private (token holders only:
        /// absent for anonymous callers, who can neither filter nor sort by
        /// it) and kept out of the audit log and events (`[redacted]` there).
        #[audit(redact)]
        #[service(private, filter, sort, validate(range(min = 0)))]
        pub cost_cents: Option<i64>,
        /// 1 on create, +1 per update; the ETag.
        #[service(version, filter, sort)]
        pub version: i32,
        /// Server-set.
        #[service(created_at, filter, sort)]
        pub created_at: DateTimeUtc,
        /// Server-set.
        #[service(updated_at, filter, sort)]
        pub updated_at: DateTimeUtc,
        /// Set while the product is deleted.
        pub deleted_at: Option<DateTimeUtc>,
    }

    /// No relations are navigated from a product.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A customer.
pub mod customer {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A row of `customers`.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        Eq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        keel::Service,
        keel::Audit,
    )]
    #[sea_orm(table_name = "customers")]
    #[service(name = "customer")]
    pub struct Model {
        /// A UUID (v7), server-assigned.
        #[sea_orm(primary_key, auto_increment = false)]
        #[service(filter(eq, in))]
        pub id: Uuid,
        /// Unique, a valid address.
        #[sea_orm(unique)]
        #[service(filter(eq, has), sort, validate(email, length(max = 254)))]
        pub email: String,
        /// 1-200 characters.
        #[service(filter(eq, has), sort, validate(length(min = 1, max = 200)))]
        pub name: String,
        /// Private (token holders only) and redacted in the audit log and
        /// events.
        #[audit(redact)]
        #[service(private, validate(length(min = 3, max = 32)))]
        pub phone: Option<String>,
        /// The ETag.
        #[service(version)]
        pub version: i32,
        /// Server-set.
        #[service(created_at, filter, sort)]
        pub created_at: DateTimeUtc,
        /// Server-set.
        #[service(updated_at)]
        pub updated_at: DateTimeUtc,
    }

    /// No relations are navigated from a customer.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An order; its lines are [`order_line`]s. Orders are written only by
/// `POST /orders` and `POST /orders/{id}/cancel`.
pub mod order {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A row of `orders`.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        Eq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        keel::Service,
        keel::Audit,
    )]
    #[sea_orm(table_name = "orders")]
    #[service(name = "order")]
    pub struct Model {
        /// Server-assigned.
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        /// The customer who placed it.
        #[service(filter(eq, in))]
        pub customer_id: Uuid,
        /// `placed` or `cancelled`.
        #[service(filter(eq, ne, in), sort)]
        pub status: String,
        /// The sum of the lines.
        #[service(filter, sort, validate(range(min = 0)))]
        pub total_cents: i64,
        /// The ETag.
        #[service(version)]
        pub version: i32,
        /// Server-set.
        #[service(created_at, filter, sort)]
        pub created_at: DateTimeUtc,
        /// Server-set.
        #[service(updated_at)]
        pub updated_at: DateTimeUtc,
        /// Who placed it.
        #[service(created_by, filter(eq))]
        pub created_by: String,
        /// Who changed it last.
        #[service(updated_by)]
        pub updated_by: String,
    }

    /// The customer an order belongs to.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// `orders.customer_id` → `customers.id`.
        #[sea_orm(
            belongs_to = "super::customer::Entity",
            from = "Column::CustomerId",
            to = "super::customer::Column::Id"
        )]
        Customer,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// One line of an order: a product, a quantity and the unit price paid.
pub mod order_line {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A row of `order_lines`.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        Eq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        keel::Service,
        keel::Audit,
    )]
    #[sea_orm(table_name = "order_lines")]
    #[service(name = "order_line")]
    pub struct Model {
        /// Server-assigned.
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        /// The order.
        #[sea_orm(indexed)]
        #[service(filter(eq, in))]
        pub order_id: i64,
        /// The product.
        #[service(filter(eq, in))]
        pub product_id: i64,
        /// Units, >= 1.
        #[service(validate(range(min = 1)))]
        pub quantity: i32,
        /// The product's price when the order was placed.
        #[service(validate(range(min = 0)))]
        pub unit_price_cents: i64,
    }

    /// The order and the product of a line.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        /// `order_lines.order_id` → `orders.id`.
        #[sea_orm(
            belongs_to = "super::order::Entity",
            from = "Column::OrderId",
            to = "super::order::Column::Id"
        )]
        Order,
        /// `order_lines.product_id` → `products.id`.
        #[sea_orm(
            belongs_to = "super::product::Entity",
            from = "Column::ProductId",
            to = "super::product::Column::Id"
        )]
        Product,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// A shipment: one per placed order, written by the shipments consumer
/// ([`crate::shipments`]) from `shop.order.placed`, cancelled by
/// `shop.order.cancelled`. Read-only over HTTP.
pub mod shipment {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A row of `shipments`.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        Eq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        keel::Service,
        keel::Audit,
    )]
    #[sea_orm(table_name = "shipments")]
    #[service(name = "shipment")]
    pub struct Model {
        /// Server-assigned.
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        /// The order shipped; one shipment per order.
        #[sea_orm(unique)]
        #[service(filter(eq, in), sort)]
        pub order_id: i64,
        /// Who bought.
        #[service(filter(eq, in))]
        pub customer_id: Uuid,
        /// Units in the parcel.
        pub units: i32,
        /// `pending` or `cancelled`.
        #[service(filter(eq, ne, in), sort)]
        pub status: String,
        /// The event it was made from: `shop.order.placed`'s id.
        pub event_id: Uuid,
        /// The ETag.
        #[service(version)]
        pub version: i32,
        /// Server-set.
        #[service(created_at, filter, sort)]
        pub created_at: DateTimeUtc,
        /// Server-set.
        #[service(updated_at)]
        pub updated_at: DateTimeUtc,
    }

    /// No relations.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
