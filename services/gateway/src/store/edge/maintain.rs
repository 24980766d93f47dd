//! Background maintenance of the collections, off the request path: qdrant-edge's optimizer
//! (HNSW indexing, segment merging, vacuuming deleted points), and pruning of each shard's own
//! write-ahead log, which qdrant-edge never truncates.
//!
//! After writes settle (at most once per `schedule::DELAY` under a steady load) and once at start-up, one
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

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use qdrant_edge::EdgeShard;

use super::super::StoreError;
use super::schedule::Maintenance;
use super::shards::{Shards, failed, sole};
use super::wal::{dir_bytes, prunable_wal_bytes, prune_wal};

/// The maintenance thread's nice value: the optimizer's own work (merging, copying, quantizing)
/// yields to the searches, as qdrant-edge's HNSW build threads do (it runs them at nice 10), but
/// is not starved by a steady load (at 19 it would get 1.5% of a busy core; at 10, 10%).
const MAINTENANCE_NICE: i32 = 10;

/// Starts the maintenance thread of `shards`; it ends with the store (or at `stop`).
pub(super) fn start(shards: &Arc<Shards>) {
    let (maintenance, weak): (Arc<Maintenance>, Weak<Shards>) = (shards.maintenance.clone(), Arc::downgrade(shards));
    for name in shards.names() {
        maintenance.written(&name);
    }
    let spawned = std::thread::Builder::new().name("store-maintenance".into()).spawn(move || {
        if let Err(e) = shared::niceness::lower_this_thread(MAINTENANCE_NICE) {
            tracing::warn!(error = %e, "cannot lower the maintenance thread's priority");
        }
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
        let Some(shard) = shards.remove(collection) else { return Ok(()) };
        let started = Instant::now();
        let shard = match sole(shard) {
            Ok(shard) => shard,
            Err(held) => {
                shards.insert(collection.to_string(), held);
                return Err(StoreError::Failed("searches held the shard too long; pruning later".into()));
            }
        };
        let closing = Instant::now();
        drop(shard);
        let path = self.root.join(collection);
        let pruned = prune_wal(&path.join("wal")).map_err(failed)?;
        let loading = Instant::now();
        let shard = EdgeShard::load(&path, None).map_err(failed)?;
        shards.insert(collection.to_string(), Arc::new(shard));
        // Searches of the collection waited all of `ms`: the drain, the close (and the prune), the load.
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::info!(
            collection,
            pruned_bytes = pruned,
            ms = ms(started.elapsed()),
            drain_ms = ms(closing - started),
            close_ms = ms(loading - closing),
            load_ms = ms(loading.elapsed()),
            "pruned the WAL"
        );
        Ok(())
    }
}

#[cfg(test)]
#[path = "maintain_tests.rs"]
mod store_tests;
