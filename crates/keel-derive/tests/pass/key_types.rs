//! Every supported key type.

use keel::Resource;

macro_rules! entity {
    ($module:ident, $table:literal, $key:ty, $($key_attr:tt)*) => {
        mod $module {
            use keel::Service;
            use sea_orm::entity::prelude::*;
            use serde::{Deserialize, Serialize};

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize, Service)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key $($key_attr)*)]
                #[service(filter, sort)]
                pub id: $key,
                #[service(filter)]
                pub label: String,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

entity!(small, "smalls", i32,);
entity!(big, "bigs", i64,);
entity!(uuid_keyed, "uuid_keyeds", Uuid, , auto_increment = false);
entity!(text_keyed, "text_keyeds", String, , auto_increment = false);

fn key<E: Resource>(_: E) {}

fn main() {
    key::<small::Entity>(small::Entity);
    key::<big::Entity>(big::Entity);
    // Generated keys are not input; a client-chosen String key is.
    let _ = small::NewSmall { label: "a".into() };
    let _ = big::NewBig { label: "a".into() };
    let _ = uuid_keyed::NewUuidKeyed { label: "a".into() };
    let _ = text_keyed::NewTextKeyed { id: "k".into(), label: "a".into() };
    let _: i32 = small::Entity::FIELDS.len() as i32;
    let _: Option<<uuid_keyed::Entity as Resource>::Key> = None::<sea_orm::prelude::Uuid>;
    let _: Option<<text_keyed::Entity as Resource>::Key> = None::<String>;
}
