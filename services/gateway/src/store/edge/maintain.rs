//! Background maintenance of the collections, off the request path: qdrant-edge's optimizer
//! (HNSW indexing, segment merging, vacuuming deleted points), and pruning of each shard's own
//! write-ahead log, which qdrant-edge never truncates.
//!
//! After writes settle (at most once per `DELAY` under a steady load) and once at start-up, one
//! thread runs `EdgeShard::optimize` on each collection written to, while searches and writes go
//! on: the optimizer works on proxies of the segments and swaps the result in. Two rules keep
//! that safe:
//! - A shard is never flushed while it is optimized (qdrant-edge's `flush` panics if the
//!   optimizer holds its segments at that moment), so a checkpoint that falls due meanwhile waits:
//!   the journal keeps those writes until the optimization ends (nothing acknowledged is lost;
//!   the journal is only longer for a while).
//! - The shard's own WAL is never read back (the journal is what replays), but the index of its
//!   next entry must go on rising: points keep the number of the operation that wrote them, and
//!   an operation with a lower number is ignored. So pruning deletes the oldest closed WAL files
//!   only, keeping the newest, whose name carries the numbering, and only while the shard is
//!   closed (at start-up, or in a short reopen once enough has piled up). Deleted oldest first,
//!   what is left after a crash is always a contiguous suffix that opens as before.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use qdrant_edge::EdgeShard;

use super::super::StoreError;
use super::super::journal::sync_dir;
use super::shards::{Shards, failed};

/// How long writes are left to settle before an optimization (and its longest wait under load).
const DELAY: Duration = Duration::from_millis(500);
/// How long a reopen waits for the searches still holding the shard.
const DRAIN: Duration = Duration::from_secs(30);

/// What the maintenance thread is told and what it is doing.
#[derive(Default)]
pub(super) struct Maintenance {
    state: Mutex<State>,
    /// Signalled when a collection is written to, and at shutdown.
    wake: Condvar,
    /// Signalled when an optimization, or a pass over the collections written to, ends.
    idle: Condvar,
}

#[derive(Default)]
struct State {
    dirty: BTreeSet<String>,
    busy: HashSet<String>,
    /// A pass over the collections written to is under way.
    running: bool,
    stop: bool,
}

impl Maintenance {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
    fn next(&self) -> Option<BTreeSet<String>> {
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

    fn pass_done(&self) {
        self.lock().running = false;
        self.idle.notify_all();
    }
}

/// Starts the maintenance thread of `shards`; it ends with the store (or at `stop`).
pub(super) fn start(shards: &Arc<Shards>) {
    let (maintenance, weak): (Arc<Maintenance>, Weak<Shards>) = (shards.maintenance.clone(), Arc::downgrade(shards));
    for name in shards.names() {
        maintenance.written(&name);
    }
    let spawned = std::thread::Builder::new().name("store-maintenance".into()).spawn(move || {
        while let Some(collections) = maintenance.next() {
            for collection in collections {
                let Some(shards) = weak.upgrade() else { return };
                shards.maintain(&collection);
            }
            maintenance.pass_done();
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the store's maintenance thread: collections stay unoptimized");
    }
}

impl Shards {
    /// Optimizes one collection, runs the checkpoint that waited for it, and prunes its WAL if
    /// enough has piled up.
    fn maintain(&self, collection: &str) {
        let Ok(shard) = self.shard(collection) else { return };
        {
            // Under the journal lock: no checkpoint is flushing this shard as it becomes busy.
            let _journal = self.journal.lock();
            self.maintenance.lock().busy.insert(collection.to_string());
        }
        let started = Instant::now();
        tracing::debug!(collection, "optimizing");
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shard.optimize()));
        {
            self.maintenance.lock().busy.remove(collection);
            self.maintenance.idle.notify_all();
        }
        let info = shard.info();
        match result {
            Ok(Ok(true)) => tracing::info!(
                collection,
                ms = started.elapsed().as_secs_f64() * 1e3,
                segments = info.segments_count,
                indexed_vectors = info.indexed_vectors_count,
                "optimized"
            ),
            Ok(Ok(false)) => tracing::debug!(collection, "nothing to optimize"),
            Ok(Err(e)) => tracing::error!(collection, error = %e, "optimization failed; retried after the next write"),
            Err(_) => tracing::error!(collection, "optimization panicked; retried after the next write"),
        }
        drop(shard);
        if let Err(e) = self.checkpoint_if_due() {
            tracing::error!(error = %e, "checkpoint failed; the journal keeps every write meanwhile");
        }
        let path = self.root.join(collection);
        // Reopened once four WAL files and a quarter of the segments' size can go.
        let bound = (4 * self.wal_file_bytes).max(dir_bytes(&path.join("segments")) / 4);
        if prunable_wal_bytes(&path.join("wal")) >= bound
            && let Err(e) = self.reopen(collection)
        {
            tracing::error!(collection, error = %e, "cannot reopen the collection to prune its WAL");
        }
    }

    /// Closes a collection's shard, prunes its WAL and opens it again. Writes wait (the journal
    /// lock) and so do new searches (the shards lock) while the searches in flight finish.
    fn reopen(&self, collection: &str) -> Result<(), StoreError> {
        let _journal = self.journal.lock();
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        let Some(mut shard) = shards.remove(collection) else { return Ok(()) };
        let started = Instant::now();
        let shard = loop {
            match Arc::try_unwrap(shard) {
                Ok(shard) => break shard,
                Err(held) if started.elapsed() < DRAIN => {
                    shard = held;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(held) => {
                    shards.insert(collection.to_string(), held);
                    return Err(StoreError::Failed("searches held the shard too long; pruning later".into()));
                }
            }
        };
        drop(shard);
        let path = self.root.join(collection);
        let pruned = prune_wal(&path.join("wal")).map_err(failed)?;
        let shard = EdgeShard::load(&path, None).map_err(failed)?;
        shards.insert(collection.to_string(), Arc::new(shard));
        tracing::info!(collection, pruned_bytes = pruned, ms = started.elapsed().as_secs_f64() * 1e3, "pruned the WAL");
        Ok(())
    }
}

/// The closed WAL files of a shard, oldest first, with their sizes.
fn closed_wal_files(wal: &Path) -> std::io::Result<Vec<(u64, std::path::PathBuf, u64)>> {
    let mut closed = Vec::new();
    for entry in std::fs::read_dir(wal)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(start) = name.to_str().and_then(|n| n.strip_prefix("closed-")).and_then(|n| n.parse().ok()) else {
            continue;
        };
        closed.push((start, entry.path(), std::os::unix::fs::MetadataExt::blocks(&entry.metadata()?) * 512));
    }
    closed.sort_unstable_by_key(|(start, ..)| *start);
    Ok(closed)
}

/// The bytes that pruning would free: every closed WAL file but the newest.
pub(super) fn prunable_wal_bytes(wal: &Path) -> u64 {
    let closed = closed_wal_files(wal).unwrap_or_default();
    closed.iter().rev().skip(1).map(|(.., bytes)| bytes).sum()
}

/// Deletes a closed shard's WAL files but the newest closed one (and the open ones), oldest
/// first; returns the bytes freed.
pub(super) fn prune_wal(wal: &Path) -> std::io::Result<u64> {
    let closed = match closed_wal_files(wal) {
        Ok(closed) => closed,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut freed = 0;
    for (_, path, bytes) in closed.iter().take(closed.len().saturating_sub(1)) {
        std::fs::remove_file(path)?;
        freed += bytes;
    }
    if freed > 0 {
        sync_dir(wal)?;
    }
    Ok(freed)
}

/// The disk the files under `path` take (0 if it is not there): their allocated blocks, as `du`
/// counts them, not their lengths (qdrant-edge sizes many files far ahead of their data).
pub(super) fn dir_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path()),
            Ok(_) => entry.metadata().map_or(0, |m| m.blocks() * 512),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_closed_file_and_the_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        // Sizes count allocated blocks: files of 1, 2 and 3 blocks of 4 KiB.
        for (name, blocks) in [("closed-0", 1), ("closed-40", 2), ("closed-7", 3), ("open-3", 1), ("first-index", 1)] {
            std::fs::write(dir.path().join(name), vec![1u8; blocks * 4096]).unwrap();
        }
        assert_eq!(prunable_wal_bytes(dir.path()), 4 * 4096, "closed-0 and closed-7");
        assert_eq!(prune_wal(dir.path()).unwrap(), 4 * 4096);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["closed-40", "first-index", "open-3"]);
        assert_eq!(prune_wal(dir.path()).unwrap(), 0, "nothing more to prune");
    }
}

#[cfg(test)]
#[path = "maintain_tests.rs"]
mod store_tests;
