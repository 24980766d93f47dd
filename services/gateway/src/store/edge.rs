//! qdrant-edge in process: one shard per collection under `<data-dir>/collections/<name>`. The
//! shard API is synchronous, so every call runs on the blocking pool. qdrant-edge lets one
//! process own a data directory; an exclusive lock on `<data-dir>/LOCK` makes that explicit.

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

use super::{CollectionInfo, Found, Point, SearchFilter, StoreError, VectorStore, id_and_hash, point_id};
use crate::engines::BoxFuture;

pub struct EdgeStore {
    root: PathBuf,
    shards: RwLock<HashMap<String, Arc<EdgeShard>>>,
    /// Held for the life of the store: the data directory is ours.
    _lock: File,
}

impl EdgeStore {
    /// Opens (creating if needed) the data directory and every collection in it.
    pub fn open(data_dir: &Path) -> Result<Self, String> {
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
            if !path.is_dir() || super::validate_collection_name(&name).is_err() {
                continue;
            }
            let shard = EdgeShard::load(&path, None).map_err(|e| format!("cannot load collection {name:?}: {e}"))?;
            tracing::info!(collection = %name, points = shard.info().points_count, "loaded collection");
            shards.insert(name, Arc::new(shard));
        }
        Ok(Self { root, shards: RwLock::new(shards), _lock: lock })
    }

    fn shard(&self, collection: &str) -> Result<Arc<EdgeShard>, StoreError> {
        let shards = self.shards.read().unwrap_or_else(|p| p.into_inner());
        shards.get(collection).cloned().ok_or_else(|| StoreError::NotFound(collection.to_string()))
    }

    /// The collection's shard, created with `dimension` if it does not exist yet.
    fn shard_or_create(&self, collection: &str, dimension: usize) -> Result<Arc<EdgeShard>, StoreError> {
        let mut shards = self.shards.write().unwrap_or_else(|p| p.into_inner());
        if let Some(shard) = shards.get(collection) {
            return Ok(shard.clone());
        }
        let path = self.root.join(collection);
        std::fs::create_dir_all(&path)
            .map_err(|e| StoreError::Failed(format!("cannot create {}: {e}", path.display())))?;
        let config = EdgeConfigBuilder::new()
            .on_disk_payload(true)
            .vector(DEFAULT_VECTOR_NAME, EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build())
            .build();
        let shard = Arc::new(EdgeShard::new(&path, config).map_err(failed)?);
        tracing::info!(collection, dimension, "created collection");
        shards.insert(collection.to_string(), shard.clone());
        Ok(shard)
    }

    /// Flushes every collection to disk (also done when the store is dropped).
    pub fn flush(&self) {
        let shards: Vec<_> = self.shards.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for shard in shards {
            shard.flush();
        }
    }
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
            let shard = self.shard(collection)?;
            let expected = dimension_of(&shard);
            if vector.len() != expected {
                return Err(StoreError::Dimension { collection: collection.into(), expected, got: vector.len() });
            }
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
            let Some(dimension) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
            let shard = self.shard_or_create(collection, dimension)?;
            let expected = dimension_of(&shard);
            if let Some(p) = points.iter().find(|p| p.vector.len() != expected) {
                return Err(StoreError::Dimension { collection: collection.into(), expected, got: p.vector.len() });
            }
            let points = points
                .into_iter()
                .map(|p| {
                    PointStruct::new(
                        PointId::Uuid(point_id(&p.id)),
                        p.vector.clone(),
                        Value::Object(p.stored_payload()),
                    )
                    .into()
                })
                .collect();
            let operation = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
                PointInsertOperations::PointsList(points),
            ));
            blocking(move || shard.update(operation).map_err(failed)).await
        })
    }

    fn delete<'a>(&'a self, collection: &'a str, document_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let shard = self.shard(collection)?;
            let ids = point_ids(&[document_id.to_string()]);
            let operation = UpdateOperation::PointOperation(PointOperations::DeletePoints { ids });
            blocking(move || shard.update(operation).map_err(failed)).await
        })
    }

    fn info<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<CollectionInfo, StoreError>> {
        Box::pin(async move {
            let shard = self.shard(collection)?;
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

    fn content_hashes<'a>(
        &'a self,
        collection: &'a str,
        document_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            let shard = match self.shard(collection) {
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
