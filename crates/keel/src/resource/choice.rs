//! The values of an enum field (a sea-orm `ActiveEnum`): what clients write
//! and read (the variant's JSON form) and what the column stores.

use std::marker::PhantomData;

use sea_orm::{ActiveEnum, Iterable, Value};
use serde::Serialize;
use serde_json::Value as Json;

/// One value an enum field can take.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The variant as the API shows it: its JSON form (`"written_off"`).
    pub json: Json,
    /// The value the column stores (`"void"`).
    pub stored: Value,
}

/// Lists the choices of a field type: every variant of an `ActiveEnum`,
/// nothing for any other type. Generated code calls it as
/// `(&&Probe::<T>::new()).choices()` (autoref specialisation: the
/// `ActiveEnum` impl is found first when it applies).
#[doc(hidden)]
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// A probe of type `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

/// The choices of an `ActiveEnum`.
#[doc(hidden)]
pub trait EnumChoices {
    /// Every variant, in declaration order.
    fn choices(&self) -> Vec<Choice>;
}

impl<T: ActiveEnum + Serialize> EnumChoices for &Probe<T> {
    fn choices(&self) -> Vec<Choice> {
        <T as Iterable>::iter()
            .map(|variant| Choice {
                json: serde_json::to_value(&variant).unwrap_or(Json::Null),
                stored: variant.into_value().into(),
            })
            .collect()
    }
}

/// No choices: any other type.
#[doc(hidden)]
pub trait NoChoices {
    /// Nothing.
    fn choices(&self) -> Vec<Choice>;
}

impl<T> NoChoices for Probe<T> {
    fn choices(&self) -> Vec<Choice> {
        Vec::new()
    }
}

/// The choices' JSON forms as a filter's error message lists them:
/// strings bare, anything else as JSON.
pub(crate) fn describe(choices: &[Choice]) -> String {
    choices
        .iter()
        .map(|c| match &c.json {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
