//! Namespace tests that time what clients see (an echo within a second, every datagram
//! on the right node, no fence) with three agents each: on a two-core machine, two such
//! farms at once starve each other's agents. A test that must not share the machine
//! with another holds `one_at_a_time` for its run, whatever `--test-threads` says.
use std::sync::{Mutex, MutexGuard};

/// Held for a test's run: the tests of one binary that take it run one after another.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
