//! Two resources derived in a crate that knows keel as `engine`: `note`
//! through the dependency's name, `label` through an explicit
//! `#[service(crate = "...")]` path to a re-export.

/// Keel under a name of this crate's own, as a facade crate would offer it.
pub mod facade {
    pub use ::engine as keel;
}

/// A note: found through the renamed dependency.
pub mod note {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A note.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        engine::Service,
        engine::Audit,
    )]
    #[sea_orm(table_name = "notes")]
    #[service(soft_delete = "deleted_at")]
    pub struct Model {
        /// Key.
        #[sea_orm(primary_key)]
        #[service(filter, sort)]
        pub id: i64,
        /// Text.
        #[service(filter(eq, has), sort, validate(length(min = 1, max = 100)))]
        pub body: String,
        /// A secret.
        pub pin: Option<engine::Redacted<String>>,
        /// Optimistic lock.
        #[service(version)]
        pub version: i32,
        /// Soft delete.
        pub deleted_at: Option<DateTimeUtc>,
    }

    /// None.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A label: generated code reaches keel through `crate::facade::keel`.
pub mod label {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A label.
    #[derive(
        Clone,
        Debug,
        PartialEq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        crate::facade::keel::Service,
        crate::facade::keel::Audit,
    )]
    #[sea_orm(table_name = "labels")]
    #[service(crate = "crate::facade::keel")]
    pub struct Model {
        /// Key.
        #[sea_orm(primary_key, auto_increment = false)]
        #[service(filter, sort)]
        pub slug: String,
        /// Colour.
        #[service(filter, validate(length(max = 20)))]
        pub colour: String,
    }

    /// None.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
