//! Generations of the in-process tier, one per stripe of keys, each behind
//! a lock, so "store only if nothing was invalidated since I started
//! reading" is atomic against invalidations.

use std::sync::Mutex;

use crate::sync::Unpoison as _;

const STRIPES: usize = 256;

pub(super) struct Stripes {
    slots: Vec<Mutex<u64>>,
}

impl Stripes {
    pub(super) fn new() -> Self {
        Stripes {
            slots: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
        }
    }

    fn slot(&self, hash: u64) -> &Mutex<u64> {
        &self.slots[hash as usize % STRIPES]
    }

    fn lock(slot: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
        slot.lock().unpoisoned()
    }

    /// The generation of the key's stripe now.
    pub(super) fn generation(&self, key: u64) -> u64 {
        *Self::lock(self.slot(key))
    }

    /// Runs `store` if the key's stripe is still at `generation`.
    pub(super) fn if_unchanged(&self, key: u64, generation: u64, store: impl FnOnce()) -> bool {
        let current = Self::lock(self.slot(key));
        if *current == generation {
            store();
            true
        } else {
            false
        }
    }

    /// Moves the key's stripe on and runs `evict` under its lock.
    pub(super) fn bump_and(&self, key: u64, evict: impl FnOnce()) {
        let mut current = Self::lock(self.slot(key));
        *current += 1;
        evict();
    }

    /// Moves every stripe on.
    pub(super) fn bump_all(&self) {
        for slot in &self.slots {
            *Self::lock(slot) += 1;
        }
    }
}
