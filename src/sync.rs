//! Poison-tolerant locking, shared by every module that holds a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning: a poisoned lock only means a panic elsewhere, and every
/// update made under these locks is a few plain assignments, so the data is still whole.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
