//! Settings read from the environment: the one parser every module's
//! `from_env` uses. A leaf: it imports nothing of Keel but the error type.

use crate::{Error, Result};

/// The variable `name`, parsed; `None` when unset or blank, an
/// `INVALID_ARGUMENT` naming it when it does not parse.
pub(crate) fn parse<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map(Some).map_err(|_| {
            Error::invalid_argument(
                "configuration",
                format!("{name} has an invalid value {v:?}"),
            )
        }),
        _ => Ok(None),
    }
}
