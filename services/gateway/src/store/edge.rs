//! qdrant-edge in process: one shard per collection under `<data-dir>/collections/<name>`, and a
//! write-ahead journal under `<data-dir>/journal` that makes every acknowledged write survive a
//! crash (see `journal.rs` for why qdrant-edge needs one). The shard API is synchronous, so every
//! call runs on the blocking pool. qdrant-edge lets one process own a data directory; an
//! exclusive lock on `<data-dir>/LOCK` makes that explicit.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use qdrant_edge::{
    DEFAULT_VECTOR_NAME, Distance, EdgeConfigBuilder, EdgeShard, EdgeVectorParamsBuilder, NamedQuery, PointId,
    PointInsertOperations, PointOperations, PointStruct, QueryEnum, SearchRequest, UpdateOperation,
    WithPayloadInterface,
};
use serde_json::Value;

use super::journal::{Entry, EntryRef, Journal, WriteGuard, sync_dir};
use super::{
    CollectionInfo, Found, Point, SearchFilter, StoreError, VectorStore, check_dimension, id_and_hash, point_id,
};
use crate::engines::BoxFuture;

/// A collection being created lives here until it is whole; leftovers are removed at start-up.
const STAGING_PREFIX: &str = ".new-";

/// The collections, their journal and the directory lock.
struct Shards {
    root: PathBuf,
    shards: RwLock<HashMap<String, Arc<EdgeShard>>>,
    journal: Journal,
    /// A checkpoint runs once the current journal file holds this many bytes.
    checkpoint_bytes: u64,
    /// Held for the life of the store: the data directory is ours.
    _lock: File,
}

impl Shards {
    /// Opens (creating if needed) the data directory and every collection in it, replays the
    /// writes its journal holds and checkpoints. `checkpoint_bytes` bounds the journal (and so
    /// the replay at the next start) between checkpoints.
    fn open(data_dir: &Path, checkpoint_bytes: u64) -> Result<Self, String> {
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
            if !path.is_dir() || super::validate_collection_name(&name).is_err() {
                continue;
            }
            let shard = EdgeShard::load(&path, None).map_err(|e| format!("cannot load collection {name:?}: {e}"))?;
            shards.insert(name, Arc::new(shard));
        }
        let journal_dir = data_dir.join("journal");
        let (journal, pending) =
            Journal::open(&journal_dir).map_err(|e| format!("cannot open {}: {e}", journal_dir.display()))?;
        let store = Self { root, shards: RwLock::new(shards), journal, checkpoint_bytes, _lock: lock };
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

    fn shard(&self, collection: &str) -> Result<Arc<EdgeShard>, StoreError> {
        let shards = self.shards.read().unwrap_or_else(|p| p.into_inner());
        shards.get(collection).cloned().ok_or_else(|| StoreError::NotFound(collection.to_string()))
    }

    /// The collection's shard, created with `dimension` if it does not exist yet. The shard is
    /// built and flushed under a staging name, then renamed: a crash never leaves half of one.
    fn shard_or_create(&self, collection: &str, dimension: usize) -> Result<Arc<EdgeShard>, StoreError> {
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
        let config = EdgeConfigBuilder::new()
            .on_disk_payload(true)
            .vector(DEFAULT_VECTOR_NAME, EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build())
            .build();
        // Dropping the new shard flushes it.
        drop(EdgeShard::new(&staging, config).map_err(failed)?);
        sync_tree(&staging).map_err(|e| io("sync", e))?;
        std::fs::rename(&staging, &path).map_err(|e| io("create", e))?;
        sync_dir(&self.root).map_err(|e| io("sync", e))?;
        let shard = Arc::new(EdgeShard::load(&path, None).map_err(failed)?);
        tracing::info!(collection, dimension, "created collection");
        shards.insert(collection.to_string(), shard.clone());
        Ok(shard)
    }

    /// Applies a write to its shard (an upsert creates the collection first).
    fn apply(&self, entry: &EntryRef<'_>) -> Result<(), StoreError> {
        match *entry {
            EntryRef::Upsert { collection, points } => {
                let Some(dimension) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
                let shard = self.shard_or_create(collection, dimension)?;
                check_dimension(collection, dimension_of(&shard), points.iter().map(|p| p.vector.len()))?;
                let points = points
                    .iter()
                    .map(|p| {
                        let id = PointId::Uuid(point_id(&p.id));
                        PointStruct::new(id, p.vector.clone(), Value::Object(p.stored_payload())).into()
                    })
                    .collect();
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
    fn write(&self, entry: &EntryRef<'_>) -> Result<(), StoreError> {
        let ticket = {
            let mut guard = self.journal.lock();
            self.apply(entry)?;
            let ticket = guard.append(entry).map_err(failed)?;
            if guard.bytes() >= self.checkpoint_bytes
                && let Err(e) = self.checkpoint_locked(&mut guard)
            {
                tracing::error!(error = %e, "checkpoint failed; the journal keeps every write meanwhile");
            }
            ticket
        };
        self.journal.commit(ticket).map_err(failed)
    }

    /// Flushes every shard to disk and starts a new journal file (done at start-up, whenever the
    /// journal grows past its bound, and at shutdown).
    fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_locked(&mut self.journal.lock())
    }

    fn checkpoint_locked(&self, guard: &mut WriteGuard<'_>) -> Result<(), StoreError> {
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

    /// Flushes every collection and empties the journal, at shutdown.
    fn flush(&self) {
        if let Err(e) = self.checkpoint() {
            tracing::error!(error = %e, "final checkpoint failed; the journal will be replayed at the next start");
        }
    }
}

/// qdrant-edge with a write-ahead journal; clones share the same collections.
#[derive(Clone)]
pub struct EdgeStore(Arc<Shards>);

impl EdgeStore {
    /// See [`Shards::open`].
    pub fn open(data_dir: &Path, checkpoint_bytes: u64) -> Result<Self, String> {
        Shards::open(data_dir, checkpoint_bytes).map(|shards| Self(Arc::new(shards)))
    }

    /// Flushes every collection and empties the journal, at shutdown. (Dropped without it, the
    /// shards still flush themselves; the journal is then replayed once more, harmlessly.)
    pub fn flush(&self) {
        self.0.flush();
    }
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
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            sync_tree(&entry.path())?;
        }
    }
    sync_dir(dir)
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(e.to_string())
}

fn dimension_of(shard: &EdgeShard) -> usize {
    shard.config().vectors.get(DEFAULT_VECTOR_NAME).map_or(0, |v| v.size)
}

/// Runs a shard call on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Failed(format!("store task failed: {e}")))?
}

fn point_ids(document_ids: &[String]) -> Vec<PointId> {
    document_ids.iter().map(|id| PointId::Uuid(point_id(id))).collect()
}

impl VectorStore for EdgeStore {
    fn backend(&self) -> &'static str {
        "qdrant-edge"
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        vector: Vec<f32>,
        limit: usize,
        filter: Option<&'a SearchFilter>,
    ) -> BoxFuture<'a, Result<Vec<Found>, StoreError>> {
        Box::pin(async move {
            let shard = self.0.shard(collection)?;
            check_dimension(collection, dimension_of(&shard), [vector.len()])?;
            let request = SearchRequest {
                query: QueryEnum::Nearest(NamedQuery::default_dense(vector)),
                filter: filter.map(|f| f.parsed.clone()),
                params: None,
                limit,
                offset: 0,
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: None,
                score_threshold: None,
            };
            let points = blocking(move || shard.search(request).map_err(failed)).await?;
            Ok(points
                .into_iter()
                .map(|p| Found::from_stored(p.id.to_string(), p.score, p.payload.map(|p| p.0).unwrap_or_default()))
                .collect())
        })
    }

    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<Point>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (store, collection) = (self.0.clone(), collection.to_string());
            blocking(move || store.write(&EntryRef::Upsert { collection: &collection, points: &points })).await
        })
    }

    fn delete<'a>(&'a self, collection: &'a str, document_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let (store, collection, id) = (self.0.clone(), collection.to_string(), document_id.to_string());
            blocking(move || store.write(&EntryRef::Delete { collection: &collection, document_id: &id })).await
        })
    }

    fn info<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<CollectionInfo, StoreError>> {
        Box::pin(async move {
            let shard = self.0.shard(collection)?;
            let name = collection.to_string();
            blocking(move || {
                Ok(CollectionInfo {
                    name,
                    points_count: shard.info().points_count as u64,
                    dimension: dimension_of(&shard),
                    distance: "cosine",
                    backend: "qdrant-edge",
                })
            })
            .await
        })
    }

    fn collections(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let shards = self.0.shards.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = shards.keys().cloned().collect();
        names.sort();
        Box::pin(std::future::ready(Ok(names)))
    }

    fn document<'a>(
        &'a self,
        collection: &'a str,
        document_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, StoreError>> {
        Box::pin(async move {
            let shard = self.0.shard(collection)?;
            let ids = point_ids(&[document_id.to_string()]);
            let records = blocking(move || shard.retrieve(&ids, None, None).map_err(failed)).await?;
            Ok(records
                .into_iter()
                .next()
                .map(|r| Found::from_stored(r.id.to_string(), 0.0, r.payload.map(|p| p.0).unwrap_or_default())))
        })
    }

    fn content_hashes<'a>(
        &'a self,
        collection: &'a str,
        document_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            let shard = match self.0.shard(collection) {
                Ok(shard) => shard,
                Err(StoreError::NotFound(_)) => return Ok(HashMap::new()),
                Err(e) => return Err(e),
            };
            let ids = point_ids(document_ids);
            let records = blocking(move || shard.retrieve(&ids, None, None).map_err(failed)).await?;
            Ok(records.into_iter().filter_map(|r| r.payload.and_then(|p| id_and_hash(&p.0))).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn point(id: &str, dimension: usize) -> Point {
        Point { id: id.into(), text: format!("text {id}"), payload: Map::new(), vector: vec![0.5; dimension] }
    }

    #[tokio::test]
    async fn a_wrong_dimension_is_refused_and_not_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), 1 << 20).unwrap();
        store.upsert("c", vec![point("a", 4)]).await.unwrap();
        let refused = store.upsert("c", vec![point("b", 4), point("c", 3)]).await.unwrap_err();
        assert_eq!(refused, StoreError::Dimension { collection: "c".into(), expected: 4, got: 3 });
        let query = store.search("c", vec![0.5; 5], 3, None).await.unwrap_err();
        assert!(matches!(query, StoreError::Dimension { expected: 4, got: 5, .. }), "{query:?}");
        drop(store);
        let store = EdgeStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.info("c").await.unwrap().points_count, 1, "only the accepted write");
        assert!(store.document("c", "b").await.unwrap().is_none());
    }
}
