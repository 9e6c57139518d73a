//! Statement texts built once and kept for the life of the process.
//!
//! A statement's text depends only on the resource and on its shape (which
//! columns it writes, whether it has a tenant, the database); its values
//! are bound per call. Building the text with sea-query on every request
//! shows in a profile (the expressions built, rendered and dropped), so the
//! services build each shape's text once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, RwLock};

use sea_orm::DbBackend;

use crate::sync::Unpoison as _;

/// Texts by key; `None` is kept too (a shape that has no such statement).
pub(super) struct Texts<K>(OnceLock<RwLock<HashMap<K, Option<Arc<str>>>>>);

impl<K: Hash + Eq> Texts<K> {
    /// An empty store, for a `static`.
    pub(super) const fn new() -> Self {
        Texts(OnceLock::new())
    }

    /// The text of `key`, built by `build` the first time it is asked for.
    pub(super) fn get_or_build(
        &self,
        key: K,
        build: impl FnOnce() -> Option<String>,
    ) -> Option<Arc<str>> {
        let texts = self.0.get_or_init(Default::default);
        if let Some(text) = texts.read().unpoisoned().get(&key) {
            return text.clone();
        }
        let text: Option<Arc<str>> = build().map(Into::into);
        texts
            .write()
            .unpoisoned()
            .entry(key)
            .or_insert(text)
            .clone()
    }
}

/// `backend` as part of a key (`DbBackend` is not `Hash`).
pub(super) fn backend_tag(backend: DbBackend) -> u8 {
    match backend {
        DbBackend::Postgres => 0,
        DbBackend::MySql => 1,
        DbBackend::Sqlite => 2,
        // sea-orm's enum is not exhaustive; a new backend gets a tag of its own.
        _ => u8::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_built_once_per_key_and_none_is_kept() {
        static TEXTS: Texts<(u8, bool)> = Texts::new();
        let mut builds = 0;
        for _ in 0..3 {
            let text = TEXTS.get_or_build((1, true), || {
                builds += 1;
                Some("SELECT 1".to_owned())
            });
            assert_eq!(text.as_deref(), Some("SELECT 1"));
        }
        assert_eq!(builds, 1);
        for _ in 0..2 {
            assert!(
                TEXTS
                    .get_or_build((1, false), || {
                        builds += 1;
                        None
                    })
                    .is_none()
            );
        }
        assert_eq!(builds, 2);
    }
}
