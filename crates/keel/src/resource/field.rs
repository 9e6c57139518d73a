//! Field and column descriptions of a resource.

use std::fmt;

use sea_orm::EntityTrait;

use super::schema::Choices;

/// A set of filter operators allowed on a field.
///
/// ```
/// use keel::Ops;
/// let ops = Ops::EQ.with(Ops::HAS);
/// assert!(ops.contains(Ops::HAS));
/// assert!(!ops.contains(Ops::LT));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ops(u8);

impl Ops {
    /// No operator: the field cannot be filtered on.
    pub const NONE: Ops = Ops(0);
    /// `=`
    pub const EQ: Ops = Ops(1);
    /// `!=`
    pub const NE: Ops = Ops(1 << 1);
    /// `<`
    pub const LT: Ops = Ops(1 << 2);
    /// `<=`
    pub const LE: Ops = Ops(1 << 3);
    /// `>`
    pub const GT: Ops = Ops(1 << 4);
    /// `>=`
    pub const GE: Ops = Ops(1 << 5);
    /// `:` (has / contains, case-insensitive substring on text)
    pub const HAS: Ops = Ops(1 << 6);
    /// `IN (a, b, ...)`: equal to one of a list of values.
    pub const IN: Ops = Ops(1 << 7);
    /// `=` and `!=`.
    pub const EQUALITY: Ops = Ops(Self::EQ.0 | Self::NE.0);
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`.
    pub const ORDERED: Ops =
        Ops(Self::EQUALITY.0 | Self::LT.0 | Self::LE.0 | Self::GT.0 | Self::GE.0);
    /// Every operator.
    pub const ALL: Ops = Ops(Self::ORDERED.0 | Self::HAS.0 | Self::IN.0);

    /// The union of two sets.
    #[must_use]
    pub const fn with(self, other: Ops) -> Ops {
        Ops(self.0 | other.0)
    }

    /// Whether every operator of `other` is in `self`.
    pub const fn contains(self, other: Ops) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Ops {
    /// The operators of the set as written in a filter.
    pub fn symbols(self) -> Vec<&'static str> {
        const NAMES: [(Ops, &str); 8] = [
            (Ops::EQ, "="),
            (Ops::NE, "!="),
            (Ops::LT, "<"),
            (Ops::LE, "<="),
            (Ops::GT, ">"),
            (Ops::GE, ">="),
            (Ops::HAS, ":"),
            (Ops::IN, "IN"),
        ];
        NAMES
            .iter()
            .filter(|(op, _)| self.contains(*op))
            .map(|(_, name)| *name)
            .collect()
    }
}

/// `= != <`: the operators, space-separated.
impl fmt::Display for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbols().join(" "))
    }
}

impl fmt::Debug for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ops({self})")
    }
}

/// One API field of a resource: its name, its column, and what the query
/// language may do with it.
///
/// ```
/// # mod product {
/// #     use sea_orm::entity::prelude::*;
/// #     #[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize)]
/// #     #[sea_orm(table_name = "products")]
/// #     pub struct Model { #[sea_orm(primary_key)] pub id: i64, pub sku: String }
/// #     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// #     pub enum Relation {}
/// #     impl ActiveModelBehavior for ActiveModel {}
/// # }
/// use keel::{Field, Ops};
/// use product::{Column, Entity};
///
/// const FIELDS: &[Field<Entity>] = &[
///     Field::new("id", Column::Id).filter(Ops::ORDERED).sortable(),
///     Field::new("sku", Column::Sku).filter(Ops::EQUALITY.with(Ops::HAS)).unique(),
/// ];
/// assert!(FIELDS[1].unique && !FIELDS[1].sortable);
/// ```
pub struct Field<E: EntityTrait> {
    /// The API name (the model's field name, as serialised).
    pub name: &'static str,
    /// The column it maps to.
    pub column: E::Column,
    /// Operators allowed in filters; [`Ops::NONE`] means not filterable.
    pub ops: Ops,
    /// Whether `order_by` may name it.
    pub sortable: bool,
    /// Whether a unique index covers it alone (used to name the field of an
    /// `ALREADY_EXISTS` error).
    pub unique: bool,
    /// The values an enum field takes: filter literals must be one of their
    /// JSON forms, and are bound as the stored value.
    pub choices: Option<Choices>,
}

impl<E: EntityTrait> Field<E> {
    /// A field that can be neither filtered nor sorted yet.
    pub const fn new(name: &'static str, column: E::Column) -> Self {
        Field {
            name,
            column,
            ops: Ops::NONE,
            sortable: false,
            unique: false,
            choices: None,
        }
    }

    /// Allows these filter operators.
    #[must_use]
    pub const fn filter(mut self, ops: Ops) -> Self {
        self.ops = ops;
        self
    }

    /// Allows sorting by this field.
    #[must_use]
    pub const fn sortable(mut self) -> Self {
        self.sortable = true;
        self
    }

    /// Marks the field as covered by a unique index.
    #[must_use]
    pub const fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The values of an enum field (see [`Choice`](crate::Choice)); an
    /// empty list means any value of the column's type.
    #[must_use]
    pub const fn choices(mut self, choices: Choices) -> Self {
        self.choices = Some(choices);
        self
    }

    /// The values of an enum field; empty for any other field.
    pub fn choice_list(&self) -> &'static [crate::Choice] {
        self.choices.map_or(&[], |f| f())
    }
}

impl<E: EntityTrait> Clone for Field<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: EntityTrait> Copy for Field<E> {}

impl<E: EntityTrait> fmt::Debug for Field<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("name", &self.name)
            .field("ops", &self.ops)
            .field("sortable", &self.sortable)
            .field("unique", &self.unique)
            .field("choices", &self.choice_list())
            .finish()
    }
}

/// The server-owned columns of a resource; `None` where the entity has no such column.
pub struct Columns<E: EntityTrait> {
    /// Integer column for optimistic locking: 1 on create, +1 per write.
    pub version: Option<E::Column>,
    /// Timestamp set on create.
    pub created_at: Option<E::Column>,
    /// Timestamp set on every write.
    pub updated_at: Option<E::Column>,
    /// Text column set to the actor on create.
    pub created_by: Option<E::Column>,
    /// Text column set to the actor on every write.
    pub updated_by: Option<E::Column>,
    /// Nullable timestamp: its presence turns on soft delete.
    pub deleted_at: Option<E::Column>,
    /// Text column scoping rows to the context's tenant.
    pub tenant: Option<E::Column>,
}

impl<E: EntityTrait> Columns<E> {
    /// No server-owned column.
    pub const NONE: Self = Columns {
        version: None,
        created_at: None,
        updated_at: None,
        created_by: None,
        updated_by: None,
        deleted_at: None,
        tenant: None,
    };
}

impl<E: EntityTrait> Clone for Columns<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: EntityTrait> Copy for Columns<E> {}

impl<E: EntityTrait> fmt::Debug for Columns<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Columns")
            .field("version", &self.version.is_some())
            .field("created_at", &self.created_at.is_some())
            .field("updated_at", &self.updated_at.is_some())
            .field("created_by", &self.created_by.is_some())
            .field("updated_by", &self.updated_by.is_some())
            .field("deleted_at", &self.deleted_at.is_some())
            .field("tenant", &self.tenant.is_some())
            .finish()
    }
}
