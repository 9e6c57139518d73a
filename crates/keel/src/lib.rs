//! # Keel
//!
//! A generic async CRUD service layer on [sea-orm](https://www.sea-ql.org/SeaORM/) 2.
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
//!   SQLSTATE / error numbers / result codes.
//!
//! ```no_run
//! use keel::prelude::*;
//! # #[derive(Clone, Debug, Default)] struct E;
//! # async fn demo<E: Resource<Key = i64>>(input: E::Create, patch: E::Patch) -> keel::Result<()> {
//! let keel = Keel::from_env().await?; // DATABASE_URL, or the SQLite file keel.db
//! let products = keel.service::<E>();
//! let ctx = Context::actor("alice");
//! let page = products
//!     .list(&ctx, &ListQuery::new().filter("price_cents > 100").order_by("price_cents desc"))
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! See `examples/quickstart.rs` for a complete program, with a hand-written
//! [`Resource`] impl.

mod config;
mod context;
mod error;
mod keel;
pub mod query;
mod resource;
mod service;

pub use config::{DEFAULT_DATABASE_URL, KeelConfig, PoolConfig, Secret};
pub use context::Context;
pub use error::{BoxError, Envelope, Error, ErrorBody, FieldError, Result, ValidationErrors};
pub use keel::{Keel, KeelBuilder};
pub use query::{ListQuery, Page, PageConfig, QueryLimits};
pub use resource::{Columns, Field, Key, Ops, Resource};
pub use service::BaseService;

/// Re-export of the sea-orm version Keel is built on.
pub use sea_orm;

/// The names most programs need: `use keel::prelude::*;`.
pub mod prelude {
    pub use crate::{BaseService, Columns, Context, Field, Keel, ListQuery, Ops, Page, Resource};
}
