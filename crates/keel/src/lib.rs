//! # Keel
//!
//! A generic async CRUD service layer on [sea-orm](https://www.sea-ql.org/SeaORM/) 2.
//!
//! The package is `keel-rs` (`cargo add keel-rs`); its library is `keel`,
//! so code writes `use keel::...`.
//!
//! Describe a sea-orm entity as a [`Resource`] and [`Keel::service`] gives you
//! a [`BaseService`] with `create`, `get`, `find`, `update`, `delete`,
//! `restore`, `list` and `count`, on SQLite, PostgreSQL and MySQL/MariaDB:
//!
//! - server-owned columns (generated key, `version`, `created_at`,
//!   `updated_at`, `created_by`, `updated_by`, tenant) filled by the service,
//!   never by input;
//! - optimistic locking: an expected version that does not match is
//!   `VERSION_CONFLICT` and writes nothing, under any concurrency;
//! - soft delete and restore when the entity has a `deleted_at` column;
//! - a typed query language: AIP-160 filters and AIP-132 ordering over
//!   allow-listed fields, keyset pagination with signed page tokens;
//! - one [`Error`] type with stable codes, database errors classified from
//!   SQLSTATE / error numbers / result codes;
//! - one write path: every create, update, delete and restore, single or
//!   bulk, runs validation, [`Hooks`], the statement, its [audit] row
//!   and its [event] in one transaction, and the event reaches the
//!   in-process subscribers after the commit only;
//! - explicit [transactions](tx) (`keel.transaction(&ctx, options, |tx| ...)`)
//!   retried when they lose a race, savepoints for nesting, row locks with
//!   `get_for_update`;
//! - a read-through [cache] (in process and Redis) that is never stale after
//!   an acknowledged write and fails open;
//! - a [runtime](lifecycle) of components with ordered start and graceful
//!   shutdown, three-state [health] checks, [resilience] (retry, circuit
//!   breaker), Prometheus [metrics] and structured logs.
//!
//! ```no_run
//! use keel::prelude::*;
//! use sea_orm::entity::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service, Audit)]
//! #[sea_orm(table_name = "products")]
//! #[service(soft_delete = "deleted_at")]
//! pub struct Model {
//!     #[sea_orm(primary_key)]
//!     #[service(filter, sort)]
//!     pub id: i64,
//!     #[sea_orm(unique)]
//!     #[service(filter(eq, has), validate(length(min = 1, max = 64)))]
//!     pub sku: String,
//!     #[service(filter, sort, validate(range(min = 0)))]
//!     pub price_cents: i64,
//!     #[service(version)]
//!     pub version: i32,
//!     pub deleted_at: Option<DateTimeUtc>,
//! }
//!
//! #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! pub enum Relation {}
//!
//! impl ActiveModelBehavior for ActiveModel {}
//!
//! # async fn demo() -> keel::Result<()> {
//! let keel = Keel::from_env().await?; // DATABASE_URL, or the SQLite file ./keel.db
//! let products: ProductService = keel.service::<Entity>();
//! let ctx = Context::actor("alice");
//! let p = products.create(&ctx, NewProduct { sku: "A1".into(), price_cents: 500 }).await?;
//! let p = products.update(&ctx, p.id, ProductPatch::default().price_cents(990).if_version(p.version)).await?;
//! let page = products
//!     .list(&ctx, &ListQuery::new().filter("price_cents > 100").order_by("price_cents desc").page_size(20))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! The derives are documented on [`Service`](macro@Service) and
//! [`Audit`](macro@Audit); the [`Resource`] trait's documentation shows the
//! same description written by hand. `examples/quickstart.rs` is a complete
//! program.
//!
//! # Feature flags
//!
//! Keel uses cargo features to leave out what an application does not use.
//! The default set is everything but NATS; a program on one database with no
//! Redis needs only that database's feature:
//!
//! ```toml
//! keel-rs = { version = "0.1", default-features = false, features = ["sqlite"] }
//! ```
//!
//! | feature | enables | default |
//! |---|---|---|
//! | `postgres` | PostgreSQL through sqlx, and the outbox relay's `LISTEN` wake-up | yes |
//! | `mysql` | MySQL and MariaDB through sqlx | yes |
//! | `sqlite` | SQLite through sqlx (the `DATABASE_URL` default) | yes |
//! | `redis` | the Redis cache tier ([`cache`]), [`cache::RedisCheck`], Redis Streams as an event sink and consumer transport | yes |
//! | `prometheus` | the Prometheus exporter, [`metrics::Metrics`] (`keel-axum` turns it on for `/metrics`) | yes |
//! | `telemetry` | [`telemetry::init_logging`]: a `tracing` subscriber writing text or JSON lines | yes |
//! | `volume-check` | [`health::VolumeCheck`]: free space of a disk volume | yes |
//! | `tls` | TLS to the database (`sslmode` / `ssl-mode`), Redis (`rediss://`) and NATS with rustls, no OpenSSL; [`tls::TlsConfig`] for a private authority | yes |
//! | `nats` | NATS JetStream as an event sink and consumer transport ([`outbox`]) | no |
//! | `migration` | [`migration`]: Keel's tables as sea-orm-migration migrations for an application's `Migrator`, a locked `up` / `down`, and helpers for the application's own migrations; needs a database feature beside it | no |
//! | `otel` | OpenTelemetry traces over OTLP (HTTP/protobuf or gRPC) from the standard `OTEL_*` variables, set up by [`telemetry::init_logging`]; the spans are listed in [`trace`] | no |
//! | `grpc-health` | `grpc.health.v1.Health` (`Check`, `Watch`) served by the runtime on `KEEL_GRPC_HEALTH_BIND` ([`health::GrpcHealth`], tonic) | no |
//! | `test-seams` | `cache::PauseHook`, for tests that stop a cache reader mid-way | no |
//!
//! A setting that needs a feature the build lacks (a `postgres://`
//! `DATABASE_URL` without `postgres`, a `REDIS_URL` without `redis`,
//! `KEEL_EVENTS_SINK=nats` without `nats`) is a configuration error that
//! names the feature, reported by [`KeelConfig::check`] when Keel connects.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod cache;
mod config;
mod context;
mod env;
mod error;
pub mod event;
pub mod health;
mod hooks;
mod input;
mod keel;
pub mod lifecycle;
pub mod metrics;
#[cfg(feature = "migration")]
pub mod migration;
pub mod outbox;
pub mod query;
mod redacted;
pub mod resilience;
mod resource;
mod schema;
mod service;
mod sync;
pub mod telemetry;
pub mod tls;
pub mod trace;
pub mod tx;
mod validate;

pub use audit::{Audit, AuditEntry, AuditLog, Change, HistoryQuery};
pub use config::{
    DEFAULT_DATABASE_URL, DEFAULT_SERVICE_NAME, KeelConfig, MIN_SECRET_LENGTH, PoolConfig, Secret,
};
pub use context::Context;
pub use error::{BoxError, Envelope, Error, ErrorBody, FieldError, Result, ValidationErrors};
pub use hooks::Hooks;
pub use keel::{Keel, KeelBuilder, PoolConnections};
/// Derives [`Audit`] for a model; see the [derive's documentation](keel_derive::Audit).
pub use keel_derive::Audit;
/// Derives [`Resource`] and the input types for a sea-orm model; see the
/// [derive's documentation](keel_derive::Service).
pub use keel_derive::Service;
pub use query::{ListQuery, Page, PageConfig, QueryLimits};
pub use redacted::Redacted;
pub use resource::{
    CachePolicy, Choice, Choices, Columns, Field, FieldSchema, Key, Ops, Projected, Resource,
    SchemaType, View, WriteAction,
};
pub use schema::{SchemaProblem, SchemaReport};
pub use service::{BaseService, RowJson};

/// Re-export of the sea-orm version Keel is built on.
pub use sea_orm;

/// The names most programs need: `use keel::prelude::*;`.
pub mod prelude {
    pub use crate::tx::{Tx, TxOptions};
    pub use crate::{
        Audit, BaseService, Columns, Context, Field, Hooks, Keel, ListQuery, Ops, Page, Redacted,
        Resource, Service,
    };
}

/// What generated code uses. Not part of the public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::audit::{Audit, Change};
    pub use crate::resource::{EnumChoices, NoChoices, Probe};
    /// What derived validation calls, rule by rule.
    pub mod validate {
        pub use crate::validate::*;
    }
    pub use crate::{
        BaseService, CachePolicy, Choice, Columns, Field, FieldError, FieldSchema, Ops, Redacted,
        Resource, SchemaType, ValidationErrors, WriteAction,
    };
    pub use regex;
    pub use sea_orm;
    pub use sea_orm::ActiveValue::Set;
    pub use sea_orm::TryIntoModel;
    pub use serde;
    pub use serde_json;

    pub use crate::input::double_option;

    /// What `#[derive(Audit)]` calls, field by field.
    pub mod audit {
        pub use crate::audit::record::{field, put, put_redacted, redacted};
        pub use crate::audit::{Audit, Change, REDACTED};
    }

    /// How derived inputs read their fields.
    pub mod input {
        pub use crate::input::{
            Fields, Integer, double_option, double_option_integer, integer, object,
            optional_integer, present, present_integer,
        };
    }
}
