//! The write plan: what one write leaves besides the change of its row.
//!
//! Every write (create, update, delete, restore; single or bulk; in a
//! transaction or as one statement) has the same consequences: an entry in
//! the audit log, committed with the row; and, once committed, the cached
//! row and the cached lists and counts of its resource invalidated, then its
//! event delivered. A [`WritePlan`] is made once per write and decides all of
//! them; its two executors only differ in how they carry them out:
//!
//! - the transaction path (`write.rs`) inserts the audit entry in the
//!   write's transaction and queues the rest for after the outermost commit;
//! - the one-statement path (`single.rs`) writes the audit entry in the
//!   write's own statement and runs the rest as soon as that statement
//!   returns (it committed on its own).

use chrono::{DateTime, Utc};
use sea_orm::Value;

use super::BaseService;
use super::write::now;
use crate::audit::{self, Change, EntryColumn};
use crate::cache::Scope;
use crate::event::Event;
use crate::{Context, Resource, WriteAction};

/// One write's consequences, decided before it runs.
pub(super) struct WritePlan {
    /// What the write does.
    pub(super) action: WriteAction,
    /// The key of its row, as the audit log and the cache name it.
    pub(super) key: String,
    /// When it happens: the audit entry's time (and the row's `updated_at`
    /// where the write stamps one).
    pub(super) at: DateTime<Utc>,
}

/// What runs once a write committed: the invalidation, then the event
/// (or, when the write put its event in the outbox, the relay's wake-up).
pub(super) struct AfterCommit {
    invalidate: Option<(Scope, String)>,
    event: Option<Event>,
    wake: bool,
}

impl WritePlan {
    /// The plan of `action` on the row with key `key`, happening now.
    pub(super) fn new(action: WriteAction, key: String) -> Self {
        WritePlan {
            action,
            key,
            at: now(),
        }
    }

    /// The audit entry's columns other than its changes, with their values.
    pub(super) fn audit_values<E: Resource>(&self, ctx: &Context) -> [(EntryColumn, Value); 7] {
        audit::entry_values::<E>(ctx, self.action, &self.key, self.at)
    }

    /// What the write leaves for after its commit, given the row it wrote
    /// (the old row for a removal) and its changes.
    pub(super) fn after_commit<E: Resource>(
        &self,
        service: &BaseService<E>,
        ctx: &Context,
        row: &E::Model,
        changes: impl FnOnce() -> Vec<Change>,
    ) -> AfterCommit {
        AfterCommit {
            invalidate: self.invalidation(service, ctx),
            event: service.write_event(ctx, self.action, self.key.clone(), row, changes),
            wake: false,
        }
    }

    /// The row's cache entries (and its resource's lists) to drop.
    fn invalidation<E: Resource>(
        &self,
        service: &BaseService<E>,
        ctx: &Context,
    ) -> Option<(Scope, String)> {
        service
            .write_scope(ctx)
            .map(|scope| (scope, self.key.clone()))
    }

    /// What a one-statement write leaves for after its commit: with the
    /// outbox on, its statement wrote the event, and the relay is woken.
    pub(super) fn after_statement<E: Resource>(
        &self,
        service: &BaseService<E>,
        ctx: &Context,
        row: &E::Model,
        changes: impl FnOnce() -> Vec<Change>,
    ) -> AfterCommit {
        if service.keel().outbox_enabled() {
            AfterCommit {
                invalidate: self.invalidation(service, ctx),
                event: None,
                wake: true,
            }
        } else {
            self.after_commit(service, ctx, row, changes)
        }
    }
}

impl AfterCommit {
    /// Runs it now: the write has committed.
    pub(super) async fn run(self, keel: &crate::Keel) {
        if let Some((scope, key)) = self.invalidate {
            keel.cache()
                .invalidate(&scope, std::slice::from_ref(&key))
                .await;
        }
        if let Some(event) = self.event {
            keel.events().publish(event);
        }
        if self.wake {
            keel.outbox_committed();
        }
    }

    /// Queues it in `tx`, for after the outermost commit.
    pub(super) fn queue(self, tx: &crate::tx::Tx) {
        if let Some(event) = self.event {
            tx.emit(event);
        }
        if let Some((scope, key)) = self.invalidate {
            let cache = tx.keel().cache().clone();
            tx.after_commit(move || async move { cache.invalidate(&scope, &[key]).await });
        }
    }
}
