//! Generated code names only absolute paths. The crate has its own items
//! called `Result`, `Error`, `Option` and `Context`; the entity's module has
//! its own `Context`, `Default`, `Vec`, `Set`, `Cow` and items named like
//! Keel's. (sea-orm's `DeriveEntityModel` itself needs the prelude's
//! `Option` and `Result` in the entity's module, so those are shadowed next
//! to the `Audit` derive, which needs no sea-orm.)

#![allow(dead_code)]

pub type Result<T> = core::result::Result<T, Error>;
pub struct Error;
pub enum Option {
    Nothing,
}
pub struct Context;

mod shop {
    pub mod product {
        use sea_orm::entity::prelude::*;

        pub struct Context;
        pub struct Default;
        pub struct Vec;
        pub struct Set;
        pub struct Cow;
        pub struct Resource;
        pub struct Field;
        pub struct Ops;
        pub struct Columns;
        pub struct BaseService;
        pub struct ValidationErrors;
        pub struct Audit;
        pub struct Change;

        #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize, keel::Service, keel::Audit)]
        #[sea_orm(table_name = "products")]
        #[service(soft_delete = "deleted_at")]
        pub struct Model {
            #[sea_orm(primary_key)]
            #[service(filter, sort)]
            pub id: i64,
            #[service(filter, validate(length(min = 1), regex = "^[a-z]+$"))]
            pub sku: std::string::String,
            pub description: core::option::Option<std::string::String>,
            #[service(version)]
            pub version: i32,
            #[service(created_at)]
            pub created_at: DateTimeUtc,
            pub deleted_at: core::option::Option<DateTimeUtc>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}

        fn _uses() -> impl EntityTrait {
            Entity
        }
    }
}

mod audited {
    pub struct Result;
    pub struct Error;
    pub struct Context;
    pub struct Vec;
    pub struct String;
    pub enum Option {
        Some,
        None,
    }
    pub struct Some;
    pub struct None;

    #[derive(keel::Audit)]
    pub struct Customer {
        pub email: std::string::String,
        #[audit(redact)]
        pub phone: core::option::Option<std::string::String>,
    }
}

fn main() {
    use keel::Audit;
    let c = audited::Customer { email: "a".into(), phone: None };
    assert_eq!(audited::Customer::diff(&c, &c), std::vec::Vec::new());
    let _ = shop::product::NewProduct { sku: "a".into(), description: None };
    let _: core::option::Option<shop::product::ProductService> = None;
}
