//! What the core needs to know about an entity to serve it.
//!
//! A [`Resource`] is a sea-orm entity plus a description: its API name, its
//! input and patch types, which columns the service owns (version,
//! timestamps, actor, soft delete, tenant) and which fields may be filtered
//! and sorted. `#[derive(Service)]` writes this impl; the [`Resource`]
//! trait's example shows it written by hand.

mod choice;
mod field;
mod key;
mod policy;
mod schema;
pub(crate) mod value;
mod view;

pub use choice::Choice;
pub(crate) use choice::describe as describe_choices;
#[doc(hidden)]
pub use choice::{EnumChoices, NoChoices, Probe};
pub use field::{Columns, Field, Ops};
pub use key::Key;
pub use policy::{CachePolicy, WriteAction};
pub use schema::{Choices, FieldSchema, SchemaType};
pub(crate) use view::project_json;
pub use view::{Projected, View};

use sea_orm::{EntityTrait, IntoActiveModel};
use serde::Serialize;

use crate::error::ValidationErrors;

/// A sea-orm entity that [`BaseService`](crate::BaseService) can serve.
///
/// The model must be `Serialize` (it is what the service returns) and
/// convertible into its active model (sea-orm's derive provides that).
///
/// # Server-owned columns
///
/// The columns named in [`COLUMNS`](Resource::COLUMNS) are filled by the
/// service and never taken from input: `version` starts at 1 and grows by one
/// per write, `created_at` / `updated_at` are set from the clock,
/// `created_by` / `updated_by` from the context's actor, `tenant` from the
/// context's tenant, and `deleted_at` by [`delete`](crate::BaseService::delete)
/// and [`restore`](crate::BaseService::restore). A generated primary key is
/// server-owned too: an auto-increment key is left to the database, and a
/// UUID key the input leaves unset gets a fresh UUID v7.
///
/// # Example
///
/// ```
/// use keel::{Columns, Field, Ops, Resource};
/// use sea_orm::ActiveValue::Set;
///
/// mod tag {
///     use sea_orm::entity::prelude::*;
///
///     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
///     #[sea_orm(table_name = "tags")]
///     pub struct Model {
///         #[sea_orm(primary_key)]
///         pub id: i32,
///         #[sea_orm(unique)]
///         pub name: String,
///         pub version: i32,
///     }
///
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// /// The create input: only what a client may choose.
/// #[derive(Clone)]
/// pub struct NewTag {
///     pub name: String,
/// }
///
/// /// The patch: every field optional, plus the version the client saw.
/// #[derive(Clone, Default)]
/// pub struct TagPatch {
///     pub name: Option<String>,
///     pub version: Option<i64>,
/// }
///
/// impl Resource for tag::Entity {
///     type Key = i32;
///     type Create = NewTag;
///     type Patch = TagPatch;
///
///     const NAME: &'static str = "tag";
///     const PLURAL: &'static str = "tags";
///     const COLUMNS: Columns<Self> = Columns {
///         version: Some(tag::Column::Version),
///         ..Columns::NONE
///     };
///     const FIELDS: &'static [Field<Self>] = &[
///         Field::new("id", tag::Column::Id).filter(Ops::ORDERED).sortable(),
///         Field::new("name", tag::Column::Name).filter(Ops::ALL).sortable().unique(),
///     ];
///
///     fn create_model(input: NewTag) -> tag::ActiveModel {
///         tag::ActiveModel { name: Set(input.name), ..Default::default() }
///     }
///
///     fn apply_patch(patch: TagPatch, model: &mut tag::ActiveModel) {
///         if let Some(name) = patch.name {
///             model.name = Set(name);
///         }
///     }
///
///     fn patch_version(patch: &TagPatch) -> Option<i64> {
///         patch.version
///     }
/// }
/// ```
pub trait Resource:
    EntityTrait<
        Model: Serialize
                   + serde::de::DeserializeOwned
                   + Clone
                   + Send
                   + Sync
                   + IntoActiveModel<<Self as EntityTrait>::ActiveModel>,
        ActiveModel: Send + Sync,
    > + Default
    + Send
    + Sync
    + 'static
{
    /// The primary key type: `i32`, `i64`, `Uuid` or `String`.
    type Key: Key;
    /// The input of `create`. It has no field for a server-owned column.
    type Create: Clone + Send + Sync + 'static;
    /// The input of `update`: every field optional, nullable columns as
    /// `Option<Option<T>>` (absent keeps, `null` clears).
    type Patch: Clone + Send + Sync + 'static;

    /// The resource's singular API name, such as `product`.
    const NAME: &'static str;
    /// The plural, such as `products`.
    const PLURAL: &'static str;
    /// The server-owned columns.
    const COLUMNS: Columns<Self> = Columns::NONE;
    /// The API fields the query language and error messages know about, with
    /// their allowed filter operators and whether they sort and are unique.
    const FIELDS: &'static [Field<Self>] = &[];
    /// Every field of the model as a client sees it (JSON type, input or
    /// server-owned, validation rules): what the OpenAPI document is made of.
    const SCHEMA: &'static [FieldSchema] = &[];

    /// Fields the audit log and events record as changed but show as
    /// `"[redacted]"` (`#[audit(redact)]` with the derive).
    const REDACTED_FIELDS: &'static [&'static str] = &[];
    /// Fields the audit log leaves out (`#[audit(skip)]` with the derive).
    const AUDIT_SKIPPED: &'static [&'static str] = &[];

    /// Private fields (`#[service(private)]` with the derive): absent from
    /// the [`View::Public`] of a row, and unknown to the filters and orders
    /// of a query in that view. Who gets which view is the application's
    /// decision; the service's own calls see every field.
    const PRIVATE_FIELDS: &'static [&'static str] = &[];

    /// How reads are cached (off unless the resource opts in).
    const CACHE: CachePolicy = CachePolicy::DISABLED;

    /// The event type of a write, such as `product.created`.
    fn event_type(action: WriteAction) -> std::borrow::Cow<'static, str> {
        format!("{}.{action}", Self::NAME).into()
    }

    /// Turns the create input into an active model; leave server-owned columns unset.
    fn create_model(input: Self::Create) -> <Self as EntityTrait>::ActiveModel;

    /// Sets, on `model`, each field the patch carries; leaves the others untouched.
    fn apply_patch(patch: Self::Patch, model: &mut <Self as EntityTrait>::ActiveModel);

    /// The row `model` describes when every column is set, `None` otherwise.
    ///
    /// Lets a create on PostgreSQL work out its audit entry before the
    /// statement runs, and so write the row and its audit entry in one
    /// statement. The derive implements it; the default (`None`) makes such
    /// creates take the general path, a transaction.
    fn row_of(_model: <Self as EntityTrait>::ActiveModel) -> Option<<Self as EntityTrait>::Model> {
        None
    }

    /// The version the patch expects the row to have, if it carries one.
    fn patch_version(_patch: &Self::Patch) -> Option<i64> {
        None
    }

    /// Sets the version a patch expects (an HTTP `If-Match`); a no-op for a
    /// resource without a version column.
    fn set_patch_version(_patch: &mut Self::Patch, _version: i64) {}

    /// Checks the create input; field errors carry JSON pointers such as `/sku`.
    fn validate_create(_input: &Self::Create) -> Result<(), ValidationErrors> {
        Ok(())
    }

    /// Checks the patch; only fields present in the patch are checked.
    fn validate_patch(_patch: &Self::Patch) -> Result<(), ValidationErrors> {
        Ok(())
    }
}
