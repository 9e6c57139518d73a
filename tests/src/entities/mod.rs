//! The entities the suite serves, with hand-written `Resource` impls.
//!
//! Between them they cover every key type (i32, i64, UUID, String), soft and
//! hard delete, i32 and i64 versions, actor and tenant columns, unique
//! columns, a foreign key, a CHECK constraint, string enums, JSON columns,
//! chrono and `time` timestamps and dates, bools and f64s, a redacted field,
//! a private field, sortable text longer than MySQL sorts by default, and a
//! plain table with no server-owned column. Every entity but `note`
//! uses `#[derive(Service)]`; `note` keeps a hand-written `Resource` impl.

pub mod article;
pub mod country;
pub mod gadget;
pub mod invoice;
pub mod label;
pub mod memo;
pub mod note;
pub mod product;
pub mod project;
pub mod review;
pub mod tag;
pub mod ticket;
