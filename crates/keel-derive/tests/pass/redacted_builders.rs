//! The patch builder takes a field's own value type, `Redacted<T>` or not:
//! `impl Into<T>` for a column that cannot be NULL, `Option<T>` for one
//! that can (`None` clears it).

use keel::Redacted;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, keel::Service)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub name: String,
    pub nickname: Option<String>,
    pub iban: Redacted<String>,
    pub swift: Option<Redacted<String>>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {
    let patch = AccountPatch::default()
        .name("Ada")
        .nickname(Some("ada".to_owned()))
        .iban("DE89370400440532013000")
        .swift(Some("COBADEFFXXX".to_owned()));
    assert_eq!(patch.name.as_deref(), Some("Ada"));
    assert_eq!(patch.nickname, Some(Some("ada".to_owned())));
    assert_eq!(patch.iban.as_ref().map(|v| v.as_str()), Some("DE89370400440532013000"));
    assert_eq!(
        patch.swift.as_ref().map(|v| v.as_ref().map(|s| s.as_str())),
        Some(Some("COBADEFFXXX"))
    );
    let cleared = AccountPatch::default().nickname(None).swift(None);
    assert_eq!(cleared.nickname, Some(None));
    assert!(matches!(cleared.swift, Some(None)));
    // The values stay out of `Debug`.
    let debug = format!("{patch:?}");
    assert!(!debug.contains("DE89") && !debug.contains("COBA"), "{debug}");
}
