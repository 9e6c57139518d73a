//! The entities the suite serves, with hand-written `Resource` impls.
//!
//! Between them they cover every key type (i32, i64, UUID, String), soft and
//! hard delete, i32 and i64 versions, actor and tenant columns, unique
//! columns, a foreign key, a CHECK constraint, a string enum, a JSON column
//! and chrono and `time` timestamps. Every entity but `note` uses
//! `#[derive(Service)]`; `note` keeps a hand-written `Resource` impl.

pub mod country;
pub mod gadget;
pub mod note;
pub mod product;
pub mod review;
pub mod tag;
pub mod ticket;
