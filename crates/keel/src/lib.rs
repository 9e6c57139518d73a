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

pub mod audit;
mod config;
mod context;
mod error;
mod keel;
pub mod query;
mod resource;
mod service;
pub mod validate;

pub use audit::{Audit, Change};
pub use config::{DEFAULT_DATABASE_URL, KeelConfig, PoolConfig, Secret};
pub use context::Context;
pub use error::{BoxError, Envelope, Error, ErrorBody, FieldError, Result, ValidationErrors};
pub use keel::{Keel, KeelBuilder};
/// Derives [`Audit`] for a model; see the [derive's documentation](keel_derive::Audit).
pub use keel_derive::Audit;
/// Derives [`Resource`] and the input types for a sea-orm model; see the
/// [derive's documentation](keel_derive::Service).
pub use keel_derive::Service;
pub use query::{ListQuery, Page, PageConfig, QueryLimits};
pub use resource::{CachePolicy, Columns, Field, Key, Ops, Resource, WriteAction};
pub use service::BaseService;

/// Re-export of the sea-orm version Keel is built on.
pub use sea_orm;

/// The names most programs need: `use keel::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Audit, BaseService, Columns, Context, Field, Keel, ListQuery, Ops, Page, Resource, Service,
    };
}

/// What generated code uses. Not part of the public API: it may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::audit::{self, Audit, Change};
    pub use crate::validate;
    pub use crate::{
        BaseService, CachePolicy, Columns, Field, FieldError, Ops, Resource, ValidationErrors,
        WriteAction,
    };
    pub use regex;
    pub use sea_orm;
    pub use sea_orm::ActiveValue::Set;
    pub use serde;
    pub use serde_json;

    /// Deserialises a present field (even `null`) as `Some`, so that with
    /// `#[serde(default)]` an absent field is `None` and `null` is `Some(None)`.
    pub fn double_option<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: serde::Deserialize<'de>,
        D: serde::Deserializer<'de>,
    {
        serde::Deserialize::deserialize(deserializer).map(Some)
    }
}
