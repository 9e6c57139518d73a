//! Locks that outlive a panic.
//!
//! Keel's `std` locks guard maps and counters that every write leaves
//! whole (an insert, a swap, an increment): a thread that panics while
//! holding one cannot leave it half-changed. So a poisoned lock is taken as
//! it is, instead of turning one panic into a panic of every later caller.

use std::sync::{LockResult, PoisonError};

/// `lock()`, `read()`, `write()` and `into_inner()` of a lock a panic may
/// have poisoned, taken as they are: `mutex.lock().unpoisoned()`.
pub(crate) trait Unpoison<T> {
    /// The guard (or value), poisoned or not.
    fn unpoisoned(self) -> T;
}

impl<T> Unpoison<T> for LockResult<T> {
    fn unpoisoned(self) -> T {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}
