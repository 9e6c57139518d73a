//! `order_by` (Google AIP-132): `price_cents desc, id`.

use std::fmt;

use sea_orm::sea_query::{Condition, Expr, NullOrdering, Order};
use sea_orm::{ColumnTrait, EntityTrait, Iterable, PrimaryKeyToColumn, Value};

use super::filter::find_field;
use crate::resource::value;
use crate::{Error, Resource, View};

/// One sort key.
pub struct SortKey<E: EntityTrait> {
    /// The API name of the field.
    pub name: &'static str,
    /// Its column.
    pub column: E::Column,
    /// Descending when true.
    pub descending: bool,
}

impl<E: EntityTrait> Clone for SortKey<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: EntityTrait> Copy for SortKey<E> {}

impl<E: EntityTrait> fmt::Debug for SortKey<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            self.name,
            if self.descending { " desc" } else { "" }
        )
    }
}

impl<E: EntityTrait> SortKey<E> {
    fn nullable(&self) -> bool {
        self.column.def().is_null()
    }

    /// NULLs sort as the largest value: last ascending, first descending.
    pub(crate) fn order(&self) -> (Order, Option<NullOrdering>) {
        let nulls = self.nullable().then_some(if self.descending {
            NullOrdering::First
        } else {
            NullOrdering::Last
        });
        (
            if self.descending {
                Order::Desc
            } else {
                Order::Asc
            },
            nulls,
        )
    }

    /// Rows equal to `v` on this key.
    fn equal(&self, v: &Value) -> Expr {
        if value::is_null(v) {
            self.column.is_null()
        } else {
            self.column.eq(v.clone())
        }
    }

    /// Rows strictly after `v` in this key's order; `None` when nothing can be after it.
    fn after(&self, v: &Value) -> Option<Condition> {
        let null = value::is_null(v);
        match (self.descending, null) {
            (false, true) => None,
            (false, false) => {
                let gt = Condition::all().add(self.column.gt(v.clone()));
                Some(if self.nullable() {
                    Condition::any().add(gt).add(self.column.is_null())
                } else {
                    gt
                })
            }
            (true, true) => Some(Condition::all().add(self.column.is_not_null())),
            (true, false) => Some(Condition::all().add(self.column.lt(v.clone()))),
        }
    }
}

/// A parsed `order_by`: the keys the caller asked for, then the primary key as tie-breaker.
pub struct OrderBy<E: EntityTrait> {
    keys: Vec<SortKey<E>>,
    requested: usize,
}

impl<E: EntityTrait> Clone for OrderBy<E> {
    fn clone(&self) -> Self {
        OrderBy {
            keys: self.keys.clone(),
            requested: self.requested,
        }
    }
}

impl<E: EntityTrait> fmt::Debug for OrderBy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrderBy({self})")
    }
}

/// The canonical text: every key, tie-breaker included, `asc` implicit.
impl<E: EntityTrait> fmt::Display for OrderBy<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key:?}")?;
        }
        Ok(())
    }
}

impl<E: Resource> OrderBy<E> {
    /// Parses `text` (`""` means by primary key).
    pub fn parse(text: &str) -> Result<Self, Error> {
        Self::parse_in(text, View::All)
    }

    /// Parses `text` for a caller with `view`: in [`View::Public`] the
    /// resource's private fields cannot be sorted by.
    pub fn parse_in(text: &str, view: View) -> Result<Self, Error> {
        let mut keys: Vec<SortKey<E>> = Vec::new();
        if !text.trim().is_empty() {
            for (index, part) in text.split(',').enumerate() {
                let position = index + 1;
                let words: Vec<&str> = part.split_whitespace().collect();
                let (name, descending) = match words.as_slice() {
                    [name] => (*name, false),
                    [name, dir] if dir.eq_ignore_ascii_case("desc") => (*name, true),
                    [name, dir] if dir.eq_ignore_ascii_case("asc") => (*name, false),
                    [] => return Err(order_err(format!("sort key {position} is empty"))),
                    _ => {
                        return Err(order_err(format!(
                            "sort key {position} `{}` must be a field name optionally followed by `asc` or `desc`",
                            part.trim()
                        )));
                    }
                };
                let field = find_field::<E>(name, view).filter(|f| f.sortable).ok_or_else(|| {
                    let sortable: Vec<&str> = E::FIELDS
                        .iter()
                        .filter(|f| f.sortable && view.shows::<E>(f.name))
                        .map(|f| f.name)
                        .collect();
                    order_err(format!(
                        "cannot sort by `{name}` (sort key {position}); sortable fields are: {}",
                        sortable.join(", ")
                    ))
                })?;
                if keys.iter().any(|k| k.name == field.name) {
                    return Err(order_err(format!(
                        "field `{name}` appears twice in order_by"
                    )));
                }
                keys.push(SortKey {
                    name: field.name,
                    column: field.column,
                    descending,
                });
            }
        }
        let requested = keys.len();
        let pk = primary_key_column::<E>();
        if !keys
            .iter()
            .any(|k| k.column.as_column_ref() == pk.as_column_ref())
        {
            let name = E::FIELDS
                .iter()
                .find(|f| f.column.as_column_ref() == pk.as_column_ref())
                .map_or("id", |f| f.name);
            keys.push(SortKey {
                name,
                column: pk,
                descending: false,
            });
        }
        Ok(OrderBy { keys, requested })
    }

    /// Every key, the tie-breaker last.
    pub fn keys(&self) -> &[SortKey<E>] {
        &self.keys
    }

    /// How many keys the caller wrote.
    pub fn requested(&self) -> usize {
        self.requested
    }

    /// Rows strictly after the row whose sort-key values are `last`.
    pub(crate) fn after(&self, last: &[Value]) -> Condition {
        let mut any = Condition::any();
        for (i, key) in self.keys.iter().enumerate() {
            let Some(after) = key.after(&last[i]) else {
                continue;
            };
            let mut all = Condition::all();
            for (prev, v) in self.keys[..i].iter().zip(last) {
                all = all.add(prev.equal(v));
            }
            any = any.add(all.add(after));
        }
        any
    }
}

fn order_err(message: String) -> Error {
    Error::invalid_argument("order_by", format!("invalid order_by: {message}"))
}

/// The single primary-key column of `E`.
pub(crate) fn primary_key_column<E: EntityTrait>() -> E::Column {
    E::PrimaryKey::iter()
        .next()
        .map(PrimaryKeyToColumn::into_column)
        .expect("a sea-orm entity always has a primary key")
}
