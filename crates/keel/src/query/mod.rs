//! The query language: typed filters, ordering and keyset pagination.
//!
//! Filters are a subset of [Google AIP-160](https://google.aip.dev/160)
//! (`=, !=, <, <=, >, >=`, `:` for contains, `AND`, `OR`, `NOT`/`-`,
//! parentheses, string / integer / float / bool / null literals, RFC 3339
//! timestamps as strings); ordering is [AIP-132](https://google.aip.dev/132)
//! `order_by` (`price_cents desc, id`). Both are parsed into a typed AST
//! ([`Filter`], [`OrderBy`]) built only from the fields and operators the
//! [`Resource`](crate::Resource) allows, and translated into sea-query
//! conditions where every value is a bound parameter.
//!
//! Pagination is keyset by default: a page token is opaque, signed with
//! HMAC-SHA256, and carries the last row's sort keys plus a hash of the
//! filter and order; the primary key is always the last sort key. NULLs sort
//! as the largest value (last ascending, first descending) on every database.
//! `skip` is an offset fallback.

pub(crate) mod exact;
mod filter;
mod lexer;
mod list;
mod order;
pub(crate) mod token;

pub use filter::{Comparison, Filter, Literal, QueryLimits};
pub use lexer::Comparator;
pub use list::{ListQuery, Page, PageConfig};
pub use order::{OrderBy, SortKey};

pub(crate) use order::primary_key_column;
