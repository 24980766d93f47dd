//! What the maintenance thread (`maintain.rs`) is told and what it is doing: the collections
//! written to since its last pass, the ones being optimized (whose shards must not be flushed
//! meanwhile), and whether the store is shutting down.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long writes are left to settle before an optimization (and its longest wait under load).
const DELAY: Duration = Duration::from_millis(500);

/// What the maintenance thread is told and what it is doing.
#[derive(Default)]
pub(super) struct Maintenance {
    state: Mutex<State>,
    /// Signalled when a collection is written to, and at shutdown.
    wake: Condvar,
    /// Signalled when an optimization, or a pass over the collections written to, ends.
    pub(super) idle: Condvar,
}

#[derive(Default)]
pub(super) struct State {
    dirty: BTreeSet<String>,
    pub(super) busy: HashSet<String>,
    /// A pass over the collections written to is under way.
    running: bool,
    stop: bool,
}

impl Maintenance {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `collection` was written to: it is optimized once the writes settle.
    pub(super) fn written(&self, collection: &str) {
        let mut state = self.lock();
        if state.dirty.insert(collection.to_string()) {
            self.wake.notify_all();
        }
    }

    /// Whether any collection is being optimized (its shard must not be flushed meanwhile).
    pub(super) fn any_busy(&self) -> bool {
        !self.lock().busy.is_empty()
    }

    pub(super) fn is_busy(&self, collection: &str) -> bool {
        self.lock().busy.contains(collection)
    }

    /// Waits until no collection is being optimized.
    pub(super) fn wait_idle(&self) {
        let mut state = self.lock();
        while !state.busy.is_empty() {
            state = self.idle.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Waits until every collection written to so far has been maintained.
    pub(super) fn settle(&self) {
        let mut state = self.lock();
        while (!state.dirty.is_empty() || state.running) && !state.stop {
            state = self.idle.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub(super) fn stop(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
        self.idle.notify_all();
    }

    /// The next collections to optimize, once writes have settled; `None` at shutdown.
    pub(super) fn next(&self) -> Option<BTreeSet<String>> {
        let mut state = self.lock();
        while state.dirty.is_empty() && !state.stop {
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let until = Instant::now() + DELAY;
        while !state.stop && Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            state = self.wake.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        state.running = !state.stop;
        (!state.stop).then(|| std::mem::take(&mut state.dirty))
    }

    pub(super) fn pass_done(&self) {
        self.lock().running = false;
        self.idle.notify_all();
    }
}
