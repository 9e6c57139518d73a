//! Tags: i32 auto-increment key, unique name, no version, hard delete.

use keel::{Field, Ops, Resource};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A tag.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tags")]
pub struct Model {
    /// Key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Unique name.
    #[sea_orm(unique)]
    pub name: String,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Patch input.
#[derive(Clone, Debug, Default)]
pub struct TagPatch {
    /// Name.
    pub name: Option<String>,
}

impl Resource for Entity {
    type Key = i32;
    type Create = String;
    type Patch = TagPatch;

    const NAME: &'static str = "tag";
    const PLURAL: &'static str = "tags";
    const FIELDS: &'static [Field<Self>] = &[
        Field::new("id", Column::Id).filter(Ops::ORDERED).sortable(),
        Field::new("name", Column::Name)
            .filter(Ops::ALL)
            .sortable()
            .unique(),
    ];

    fn create_model(name: String) -> ActiveModel {
        ActiveModel {
            name: Set(name),
            ..Default::default()
        }
    }

    fn apply_patch(patch: TagPatch, model: &mut ActiveModel) {
        if let Some(v) = patch.name {
            model.name = Set(v);
        }
    }
}
