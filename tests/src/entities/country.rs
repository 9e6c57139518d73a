//! Countries: String key given by the client, no server-owned columns, hard delete.

use keel::{Field, Ops, Resource};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A country.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "countries")]
pub struct Model {
    /// ISO code, the key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    /// Name.
    pub name: String,
    /// Population.
    pub population: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Create input (the key is the client's).
#[derive(Clone, Debug)]
pub struct NewCountry {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Population.
    pub population: i64,
}

/// Patch input.
#[derive(Clone, Debug, Default)]
pub struct CountryPatch {
    /// Name.
    pub name: Option<String>,
    /// Population.
    pub population: Option<i64>,
    /// Expected version (countries have none: using it is an error).
    pub version: Option<i64>,
}

impl Resource for Entity {
    type Key = String;
    type Create = NewCountry;
    type Patch = CountryPatch;

    const NAME: &'static str = "country";
    const PLURAL: &'static str = "countries";
    const FIELDS: &'static [Field<Self>] = &[
        Field::new("code", Column::Code)
            .filter(Ops::ORDERED)
            .sortable(),
        Field::new("name", Column::Name).filter(Ops::ALL).sortable(),
        Field::new("population", Column::Population)
            .filter(Ops::ORDERED)
            .sortable(),
    ];

    fn create_model(input: NewCountry) -> ActiveModel {
        ActiveModel {
            code: Set(input.code),
            name: Set(input.name),
            population: Set(input.population),
        }
    }

    fn apply_patch(patch: CountryPatch, model: &mut ActiveModel) {
        if let Some(v) = patch.name {
            model.name = Set(v);
        }
        if let Some(v) = patch.population {
            model.population = Set(v);
        }
    }

    fn patch_version(patch: &CountryPatch) -> Option<i64> {
        patch.version
    }
}
