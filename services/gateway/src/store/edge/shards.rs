//! The collections of one data directory: their shards, their write-ahead journal, and the
//! directory lock. Writes are applied and journaled under one lock; checkpoints flush every
//! shard and empty the journal (and wait while a shard is optimized: `maintain.rs`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use qdrant_edge::{
    DEFAULT_VECTOR_NAME, Distance, EdgeConfig, EdgeConfigBuilder, EdgeOptimizersConfig, EdgeShard,
    EdgeSparseVectorParamsBuilder, EdgeVectorParamsBuilder, HnswIndexConfig, Modifier, PointId, PointInsertOperations,
    PointOperations, PointStruct, ScalarQuantizationConfig, ScalarType, UpdateOperation, Vector, Vectors, WalOptions,
};
use serde_json::Value;

use super::super::journal::{Entry, EntryRef, Journal, WriteGuard, sync_dir};
use super::super::{StoreError, check_dimension, point_id};
use super::aliases::Aliases;
use super::schedule::Maintenance;
use super::wal::prune_wal;
use super::{EdgeOptions, STAGING_PREFIX, point_ids};
use crate::retrieval::SPARSE_VECTOR;
use crate::store::index::IndexSettings;
use crate::store::{Point, PointLayouts};

/// The collections, their journal and the directory lock.
pub(super) struct Shards {
    pub(super) root: PathBuf,
    pub(super) shards: RwLock<HashMap<String, Arc<EdgeShard>>>,
    pub(super) aliases: Aliases,
    /// How configured collections lay out their points.
    pub(super) layouts: Arc<PointLayouts>,
    pub(super) journal: Journal,
    /// A checkpoint runs once the current journal file holds this many bytes.
    checkpoint_bytes: u64,
    /// The size of a new collection's WAL files.
    pub(super) wal_file_bytes: u64,
    pub(super) maintenance: Arc<Maintenance>,
    /// Held for the life of the store: the data directory is ours.
    _lock: File,
}

impl Shards {
    /// Opens (creating if needed) the data directory and every collection in it, replays the
    /// writes its journal holds and checkpoints.
    pub(super) fn open(data_dir: &Path, options: EdgeOptions, layouts: Arc<PointLayouts>) -> Result<Self, String> {
        let root = data_dir.join("collections");
        std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let lock_path = data_dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            return Err(format!(
                "the data directory {} is in use by another process (qdrant-edge lets one process own a data \
                 directory): stop that process, or go through it (e.g. ingest with --gateway-url)",
                data_dir.display()
            ));
        }
        let mut shards = HashMap::new();
        let entries = std::fs::read_dir(&root).map_err(|e| format!("cannot read {}: {e}", root.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else { continue };
            if name.starts_with(STAGING_PREFIX) {
                // Creation was cut short; no write to it was recorded before it was whole.
                std::fs::remove_dir_all(&path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                continue;
            }
            if !path.is_dir() || crate::store::validate_collection_name(&name).is_err() {
                continue;
            }
            // Closed, its WAL can be pruned, and an optimization cut short leaves its work here.
            prune_wal(&path.join("wal")).map_err(|e| format!("cannot prune the WAL of {name:?}: {e}"))?;
            let temp = path.join("temp_segments");
            if temp.exists() {
                std::fs::remove_dir_all(&temp).map_err(|e| format!("cannot remove {}: {e}", temp.display()))?;
            }
            let shard = EdgeShard::load(&path, None).map_err(|e| format!("cannot load collection {name:?}: {e}"))?;
            shards.insert(name, Arc::new(shard));
        }
        let journal_dir = data_dir.join("journal");
        let (journal, pending) =
            Journal::open(&journal_dir).map_err(|e| format!("cannot open {}: {e}", journal_dir.display()))?;
        let aliases = Aliases::open(data_dir)?;
        let store = Self {
            root,
            shards: RwLock::new(shards),
            aliases,
            layouts,
            journal,
            checkpoint_bytes: options.checkpoint_bytes,
            wal_file_bytes: options.wal_file_bytes,
            maintenance: Arc::default(),
            _lock: lock,
        };
        if !pending.is_empty() {
            let count = pending.len();
            for entry in pending {
                if let Err(e) = store.apply(&entry.as_ref()) {
                    tracing::error!(error = %e, "a journaled write cannot be applied again; skipped");
                }
            }
            tracing::info!(writes = count, "replayed the journal");
        }
        store.checkpoint().map_err(|e| format!("cannot checkpoint {}: {e}", data_dir.display()))?;
        for (name, shard) in store.shards.read().unwrap_or_else(|p| p.into_inner()).iter() {
            tracing::info!(collection = %name, points = shard.info().points_count, "loaded collection");
        }
        Ok(store)
    }

    pub(super) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shards.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    pub(super) fn shard(&self, collection: &str) -> Result<Arc<EdgeShard>, StoreError> {
        let shards = self.shards.read().unwrap_or_else(|p| p.into_inner());
        shards.get(collection).cloned().ok_or_else(|| StoreError::NotFound(collection.to_string()))
    }

    /// The collection's shard, created with `dimension` (and the BM25 sparse vector, with the
    /// engine's IDF, if `sparse`) if it does not exist yet. The shard is built and flushed under
    /// a staging name, then renamed: a crash never leaves half of one.
    fn shard_or_create(&self, collection: &str, dimension: usize, sparse: bool) -> Result<Arc<EdgeShard>, StoreError> {
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        if let Some(shard) = shards.get(collection) {
            return Ok(shard.clone());
        }
        let staging = self.root.join(format!("{STAGING_PREFIX}{collection}"));
        let path = self.root.join(collection);
        let io = |what: &str, e: std::io::Error| StoreError::Failed(format!("cannot {what} {}: {e}", path.display()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| io("clear the staging directory of", e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| io("create", e))?;
        let index = self.layouts.index(collection);
        let config = shard_config(dimension, sparse, &index, self.wal_file_bytes);
        // Dropping the new shard flushes it.
        drop(EdgeShard::new(&staging, config).map_err(failed)?);
        sync_tree(&staging).map_err(|e| io("sync", e))?;
        std::fs::rename(&staging, &path).map_err(|e| io("create", e))?;
        sync_dir(&self.root).map_err(|e| io("sync", e))?;
        let shard = Arc::new(EdgeShard::load(&path, None).map_err(failed)?);
        tracing::info!(collection, dimension, sparse, ?index, "created collection");
        shards.insert(collection.to_string(), shard.clone());
        Ok(shard)
    }

    /// Applies a write to its shard (an upsert creates the collection first).
    fn apply(&self, entry: &EntryRef<'_>) -> Result<(), StoreError> {
        match *entry {
            EntryRef::Upsert { collection, points } => {
                let Some(dimension) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
                let shard = self.shard_or_create(collection, dimension, points.iter().any(|p| p.sparse.is_some()))?;
                check_dimension(collection, dimension_of(&shard), points.iter().map(|p| p.vector.len()))?;
                let (keys, sparse) = (self.layouts.keys(collection), has_sparse(&shard));
                let points = points
                    .iter()
                    .map(|p| {
                        let id = PointId::Uuid(point_id(&p.id));
                        let payload = Value::Object(p.stored_payload(&keys));
                        Ok(PointStruct::new(id, vectors(p, sparse)?, payload).into())
                    })
                    .collect::<Result<_, StoreError>>()?;
                let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                    PointInsertOperations::PointsList(points),
                ));
                shard.update(operation).map_err(failed)
            }
            EntryRef::Delete { collection, document_id } => {
                let shard = self.shard(collection)?;
                let ids = point_ids(&[document_id.to_string()]);
                shard.update(UpdateOperation::PointOperation(PointOperations::DeletePoints { ids })).map_err(failed)
            }
        }
    }

    /// Applies and journals a write, and returns once it is durable.
    pub(super) fn write(&self, entry: &EntryRef<'_>) -> Result<(), StoreError> {
        let ticket = {
            let mut guard = self.journal.lock();
            self.apply(entry)?;
            let ticket = guard.append(entry).map_err(failed)?;
            self.maintenance.written(entry.collection());
            if guard.bytes() >= self.checkpoint_bytes
                && let Err(e) = self.checkpoint_locked(&mut guard)
            {
                tracing::error!(error = %e, "checkpoint failed; the journal keeps every write meanwhile");
            }
            ticket
        };
        self.journal.commit(ticket).map_err(failed)
    }

    /// Removes a collection: after a checkpoint (so no journaled write brings it back at the next
    /// start), its directory is renamed to a staging name (removed at start-up if a crash
    /// interrupts the removal) and deleted, and the aliases naming it go.
    pub(super) fn delete_collection(&self, collection: &str) -> Result<bool, StoreError> {
        let mut guard = self.journal.lock();
        if self.shard(collection).is_err() {
            return Ok(false);
        }
        // The checkpoint must flush every shard; no optimization starts while the lock is held.
        self.maintenance.wait_idle();
        self.checkpoint_locked(&mut guard)?;
        let Some(shard) = self.shards.write().unwrap_or_else(|p| p.into_inner()).remove(collection) else {
            return Ok(false);
        };
        // Whoever still holds the shard (the maintenance thread just after an optimization, a
        // search in flight) lets go first: the last holder flushes it, into its directory.
        match sole(shard) {
            Ok(shard) => drop(shard),
            Err(held) => {
                self.shards.write().unwrap_or_else(|p| p.into_inner()).insert(collection.to_string(), held);
                return Err(StoreError::Failed(format!("collection {collection:?} is still in use; retry")));
            }
        }
        let (path, doomed) = (self.root.join(collection), self.root.join(format!("{STAGING_PREFIX}{collection}")));
        let io = |e: std::io::Error| StoreError::Failed(format!("cannot remove {}: {e}", path.display()));
        std::fs::rename(&path, &doomed).map_err(io)?;
        sync_dir(&self.root).map_err(io)?;
        std::fs::remove_dir_all(&doomed).map_err(io)?;
        self.aliases.update(|map| map.retain(|_, target| target != collection)).map_err(io)?;
        tracing::info!(collection, "deleted collection");
        Ok(true)
    }

    /// Flushes every shard to disk and starts a new journal file (done at start-up, whenever the
    /// journal grows past its bound, and at shutdown).
    fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_locked(&mut self.journal.lock())
    }

    /// The checkpoint that fell due while a shard was optimized.
    pub(super) fn checkpoint_if_due(&self) -> Result<(), StoreError> {
        let mut guard = self.journal.lock();
        if guard.bytes() < self.checkpoint_bytes {
            return Ok(());
        }
        self.checkpoint_locked(&mut guard)
    }

    /// Flushes every shard and empties the journal; put off (the journal keeps every write) while
    /// a shard is optimized, as flushing it then is not safe.
    fn checkpoint_locked(&self, guard: &mut WriteGuard<'_>) -> Result<(), StoreError> {
        if self.maintenance.any_busy() {
            tracing::debug!(journal_bytes = guard.bytes(), "checkpoint put off: a collection is being optimized");
            return Ok(());
        }
        let shards: Vec<_> = self.shards.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let started = std::time::Instant::now();
        tracing::debug!(journal_bytes = guard.bytes(), "checkpoint: flushing collections");
        for shard in shards {
            shard.flush();
        }
        guard.checkpointed().map_err(failed)?;
        tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "checkpoint: done");
        Ok(())
    }

    /// Stops the maintenance, flushes every collection and empties the journal, at shutdown (if an
    /// optimization still runs, the journal is kept and replayed at the next start).
    pub(super) fn flush(&self) {
        self.maintenance.stop();
        if let Err(e) = self.checkpoint() {
            tracing::error!(error = %e, "final checkpoint failed; the journal will be replayed at the next start");
        }
    }
}

/// A new shard's configuration: cosine over `dimension` floats, the BM25 sparse vector (IDF by
/// the engine) if `sparse`, payloads on disk, the collection's index settings, and WAL files of
/// `wal_file_bytes` (pruning keeps the newest of them).
fn shard_config(dimension: usize, sparse: bool, index: &IndexSettings, wal_file_bytes: u64) -> EdgeConfig {
    let mut vector = EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).on_disk(index.vectors_on_disk());
    if index.int8() {
        let int8 = ScalarQuantizationConfig { r#type: ScalarType::Int8, quantile: None, always_ram: Some(true) };
        vector = vector.quantization_config(int8.into());
    }
    let hnsw = HnswIndexConfig {
        m: index.hnsw_m(),
        ef_construct: index.hnsw_ef_construct(),
        max_indexing_threads: indexing_threads(),
        ..HnswIndexConfig::default()
    };
    let optimizers = EdgeOptimizersConfig {
        indexing_threshold: index.indexing_threshold_kb,
        default_segment_number: index.default_segment_number,
        max_segment_size: index.max_segment_size_kb,
        ..Default::default()
    };
    let wal = WalOptions { segment_capacity: wal_file_bytes as usize, ..WalOptions::default() };
    let mut config = EdgeConfigBuilder::new()
        .on_disk_payload(true)
        .vector(DEFAULT_VECTOR_NAME, vector.build())
        .hnsw_config(hnsw)
        .optimizers(optimizers)
        .wal_options(wal);
    if sparse {
        config =
            config.sparse_vector(SPARSE_VECTOR, EdgeSparseVectorParamsBuilder::new().modifier(Modifier::Idf).build());
    }
    config.build()
}

/// Threads an index build may use: all cores but one, which stays with the searches.
fn indexing_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Entry {
    fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::Upsert { collection, points } => EntryRef::Upsert { collection, points },
            Entry::Delete { collection, document_id } => EntryRef::Delete { collection, document_id },
        }
    }
}

/// Makes a directory tree's entries durable (its files are synced by whoever wrote them).
pub(super) fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}

pub(super) fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

/// A point's vectors: the dense one, and its sparse one where the collection has sparse vectors
/// (a collection built before them keeps working dense-only).
fn vectors(point: &Point, sparse: bool) -> Result<Vectors, StoreError> {
    match point.sparse.as_ref().filter(|_| sparse) {
        Some(s) => {
            let sparse = Vector::new_sparse(s.indices.clone(), s.values.clone()).map_err(failed)?;
            Ok(Vectors::new_named([
                (DEFAULT_VECTOR_NAME, Vector::new_dense(point.vector.clone())),
                (SPARSE_VECTOR, sparse),
            ]))
        }
        None => Ok(point.vector.clone().into()),
    }
}

pub(super) fn has_sparse(shard: &EdgeShard) -> bool {
    shard.config().sparse_vectors.contains_key(SPARSE_VECTOR)
}

pub(super) fn dimension_of(shard: &EdgeShard) -> usize {
    shard.config().vectors.get(DEFAULT_VECTOR_NAME).map_or(0, |v| v.size)
}

/// The index settings a shard was created with, as far as its RAM depends on them.
pub(super) fn settings_of(shard: &EdgeShard) -> IndexSettings {
    let config = shard.config();
    let vector = config.vectors.get(DEFAULT_VECTOR_NAME);
    let int8 = vector.and_then(|v| v.quantization_config.as_ref()).or(config.quantization_config.as_ref()).is_some();
    IndexSettings {
        quantization: int8.then_some(crate::store::index::Quantization::Int8),
        vectors_on_disk: vector.and_then(|v| v.on_disk),
        ..IndexSettings::default()
    }
}

/// How long a reopen or a delete waits for the others holding a shard.
const DRAIN: Duration = Duration::from_secs(30);

/// `shard` once nobody else holds it (searches in flight, the maintenance thread), waiting up to
/// [`DRAIN`]; else it is given back.
pub(super) fn sole(mut shard: Arc<EdgeShard>) -> Result<EdgeShard, Arc<EdgeShard>> {
    let started = Instant::now();
    loop {
        match Arc::try_unwrap(shard) {
            Ok(shard) => return Ok(shard),
            Err(held) if started.elapsed() < DRAIN => {
                shard = held;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(held) => return Err(held),
        }
    }
}
