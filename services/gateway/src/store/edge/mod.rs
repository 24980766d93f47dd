//! qdrant-edge in process: one shard per collection under `<data-dir>/collections/<name>`, and a
//! write-ahead journal under `<data-dir>/journal` that makes every acknowledged write survive a
//! crash (see `journal.rs` for why qdrant-edge needs one). The shard API is synchronous, so every
//! call runs on the blocking pool. qdrant-edge lets one process own a data directory; an
//! exclusive lock on `<data-dir>/LOCK` makes that explicit.

mod aliases;
mod maintain;
mod query;
mod schedule;
mod shards;
mod wal;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use qdrant_edge::{PointId, ScrollRequest, WithPayloadInterface};

use super::journal::EntryRef;
use super::{
    CollectionInfo, Found, Page, Point, SearchFilter, Searched, StoreError, VectorStore, check_dimension, id_and_hash,
    id_filter, point_id, runnable,
};
use crate::BoxFuture;
use crate::retrieval::StoreQuery;
use crate::store::PointLayouts;
use shards::{Shards, dimension_of, failed, has_sparse, settings_of};

/// A collection being created (or deleted) lives here until it is whole (or gone); leftovers are
/// removed at start-up.
const STAGING_PREFIX: &str = ".new-";

/// How a data directory's files are bounded.
#[derive(Debug, Clone, Copy)]
pub struct EdgeOptions {
    /// A checkpoint runs once the journal holds this many bytes (bounding the replay at the
    /// next start).
    pub checkpoint_bytes: u64,
    /// The size of a new collection's WAL files; a shard's WAL is pruned once four of them (and
    /// a quarter of its segments' size) can go.
    pub wal_file_bytes: u64,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        Self { checkpoint_bytes: 64 << 20, wal_file_bytes: 4 << 20 }
    }
}

/// qdrant-edge with a write-ahead journal; clones share the same collections.
#[derive(Clone)]
pub struct EdgeStore(Arc<Shards>);

impl EdgeStore {
    /// Opens (creating if needed) the data directory and every collection in it, replays the
    /// writes its journal holds, checkpoints, and starts the maintenance (the optimizer, WAL
    /// pruning) in the background; `layouts` say how configured collections lay out their
    /// points and are indexed.
    pub fn open(data_dir: &Path, options: EdgeOptions, layouts: Arc<PointLayouts>) -> Result<Self, String> {
        let shards = Arc::new(Shards::open(data_dir, options, layouts)?);
        maintain::start(&shards);
        Ok(Self(shards))
    }

    /// Waits until every collection written to so far has been optimized (and its WAL pruned if
    /// due): for tests and benches, which measure the result.
    pub fn settle(&self) {
        self.0.maintenance.settle();
    }

    /// Whether the maintenance thread is optimizing `collection` now (what
    /// `GET /collections/{name}` reports as `optimizing`, without reading the shard).
    pub fn is_optimizing(&self, collection: &str) -> bool {
        self.0.maintenance.is_busy(collection)
    }

    /// Flushes every collection and empties the journal, at shutdown. (Dropped without it, the
    /// shards still flush themselves; the journal is then replayed once more, harmlessly.)
    pub fn flush(&self) {
        self.0.flush();
    }
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

/// A point id as text (a UUID or a number), as scroll cursors and id-less collections give it.
fn parse_point_id(text: &str) -> Result<PointId, StoreError> {
    if let Ok(n) = text.parse::<u64>() {
        return Ok(PointId::NumId(n));
    }
    uuid::Uuid::parse_str(text)
        .map(PointId::Uuid)
        .map_err(|_| StoreError::BadRequest(format!("{text:?} is not a point id (a UUID or a number)")))
}

impl VectorStore for EdgeStore {
    fn backend(&self) -> &'static str {
        "qdrant-edge"
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: StoreQuery,
        filter: Option<&'a SearchFilter>,
    ) -> BoxFuture<'a, Result<Searched, StoreError>> {
        Box::pin(async move {
            let shard = self.0.shard(collection)?;
            if let Some(dense) = &query.dense {
                check_dimension(collection, dimension_of(&shard), [dense.len()])?;
            }
            let retrieval = runnable(collection, &query, has_sparse(&shard))?;
            let filter = filter.map(|f| f.parsed.clone());
            let limit = query.limit;
            let points = blocking(move || query::run(&shard, query, retrieval, filter).map_err(failed)).await?;
            let keys = self.0.layouts.keys(collection);
            let found = points
                .into_iter()
                .map(|p| {
                    Found::from_stored(p.id.to_string(), p.score, p.payload.map(|p| p.0).unwrap_or_default(), &keys)
                })
                .collect();
            Ok(Searched::settled(found, limit, retrieval))
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
            let (name, optimizing) = (collection.to_string(), self.0.maintenance.is_busy(collection));
            blocking(move || {
                let info = shard.info();
                let dimension = dimension_of(&shard);
                Ok(CollectionInfo {
                    name,
                    points_count: info.points_count as u64,
                    dimension,
                    distance: "cosine",
                    backend: "qdrant-edge",
                    sparse: has_sparse(&shard),
                    segments: info.segments_count as u64,
                    indexed_vectors: info.indexed_vectors_count as u64,
                    optimizing,
                    disk_bytes: Some(wal::dir_bytes(shard.path())),
                    ram_bytes: Some(settings_of(&shard).vector_ram_bytes(info.points_count as u64, dimension)),
                })
            })
            .await
        })
    }

    fn collections(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.0.names())))
    }

    fn scroll<'a>(
        &'a self,
        collection: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let shard = self.0.shard(collection)?;
            let offset = after.map(parse_point_id).transpose()?;
            let request = ScrollRequest {
                offset,
                limit: Some(limit.max(1)),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                ..Default::default()
            };
            let (records, next) = blocking(move || shard.scroll(request).map_err(failed)).await?;
            let keys = self.0.layouts.keys(collection);
            let documents = records
                .into_iter()
                .map(|r| Found::from_stored(r.id.to_string(), 0.0, r.payload.map(|p| p.0).unwrap_or_default(), &keys))
                .collect();
            Ok(Page { documents, next: next.map(|id| id.to_string()) })
        })
    }

    fn delete_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (store, collection) = (self.0.clone(), collection.to_string());
        Box::pin(blocking(move || store.delete_collection(&collection)))
    }

    fn aliases(&self) -> BoxFuture<'_, Result<HashMap<String, String>, StoreError>> {
        Box::pin(std::future::ready(Ok(self.0.aliases.all())))
    }

    fn set_alias<'a>(&'a self, alias: &'a str, collection: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.0.shard(collection)?;
            if self.0.shard(alias).is_ok() {
                return Err(StoreError::Conflict(format!("{alias:?} is a collection; an alias cannot take its name")));
            }
            let (store, alias, collection) = (self.0.clone(), alias.to_string(), collection.to_string());
            blocking(move || {
                store.aliases.update(|map| drop(map.insert(alias, collection))).map_err(failed)?;
                Ok(())
            })
            .await
        })
    }

    fn document<'a>(
        &'a self,
        collection: &'a str,
        document_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, StoreError>> {
        Box::pin(async move {
            let shard = self.0.shard(collection)?;
            let keys = self.0.layouts.keys(collection);
            let records = match (&keys.id, keys.hash) {
                // A configured collection's own points: found by their id key, or their point id.
                (Some(id_key), false) => {
                    let filter = id_filter(id_key, document_id)?.parsed;
                    let request = ScrollRequest { limit: Some(1), filter: Some(filter), ..Default::default() };
                    blocking(move || shard.scroll(request).map_err(failed)).await?.0
                }
                (None, _) => match parse_point_id(document_id) {
                    Ok(id) => blocking(move || shard.retrieve(&[id], None, None).map_err(failed)).await?,
                    Err(_) => Vec::new(),
                },
                _ => {
                    let ids = point_ids(&[document_id.to_string()]);
                    blocking(move || shard.retrieve(&ids, None, None).map_err(failed)).await?
                }
            };
            Ok(records
                .into_iter()
                .next()
                .map(|r| Found::from_stored(r.id.to_string(), 0.0, r.payload.map(|p| p.0).unwrap_or_default(), &keys)))
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

    fn small() -> EdgeOptions {
        EdgeOptions { checkpoint_bytes: 1 << 20, ..EdgeOptions::default() }
    }

    fn point(id: &str, dimension: usize) -> Point {
        Point {
            id: id.into(),
            text: format!("text {id}"),
            payload: Map::new(),
            vector: vec![0.5; dimension],
            sparse: None,
        }
    }

    #[tokio::test]
    async fn a_wrong_dimension_is_refused_and_not_journaled() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(dir.path(), small(), Arc::default()).unwrap();
        store.upsert("c", vec![point("a", 4)]).await.unwrap();
        let refused = store.upsert("c", vec![point("b", 4), point("c", 3)]).await.unwrap_err();
        assert_eq!(refused, StoreError::Dimension { collection: "c".into(), expected: 4, got: 3 });
        let query = store.search("c", StoreQuery::dense(vec![0.5; 5], 3), None).await.unwrap_err();
        assert!(matches!(query, StoreError::Dimension { expected: 4, got: 5, .. }), "{query:?}");
        drop(store);
        let store = EdgeStore::open(dir.path(), small(), Arc::default()).unwrap();
        assert_eq!(store.info("c").await.unwrap().points_count, 1, "only the accepted write");
        assert!(store.document("c", "b").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sparse_and_hybrid_searches_run_in_the_engine_and_survive_a_reopen() {
        use crate::retrieval::{Bm25, Retrieval};
        let dir = tempfile::tempdir().unwrap();
        let bm25 = Bm25::default();
        let texts = ["rust engineer in berlin", "python developer in paris", "chef in lyon"];
        let points: Vec<Point> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| Point {
                id: format!("d{i}"),
                text: text.to_string(),
                payload: Map::new(),
                // The dense vectors point away from the words: d2 is nearest to the query vector.
                vector: vec![i as f32, 1.0],
                sparse: Some(bm25.document(text)),
            })
            .collect();
        let store = EdgeStore::open(dir.path(), small(), Arc::default()).unwrap();
        store.upsert("c", points).await.unwrap();
        store.upsert("dense_only", vec![point("a", 2)]).await.unwrap();
        drop(store);
        let store = EdgeStore::open(dir.path(), small(), Arc::default()).unwrap();
        assert!(store.info("c").await.unwrap().sparse);
        let sparse =
            StoreQuery { dense: None, sparse: Some(bm25.query("paris python")), ..StoreQuery::dense(vec![], 3) };
        let found = store.search("c", sparse.clone(), None).await.unwrap();
        assert_eq!(found.retrieval, Retrieval::Sparse);
        assert_eq!(found.found.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["d1"], "only the matching words");
        let hybrid = StoreQuery { dense: Some(vec![1.0, 0.0]), ..sparse.clone() };
        let found = store.search("c", hybrid.clone(), None).await.unwrap();
        assert_eq!(found.retrieval, Retrieval::Hybrid);
        let ids: Vec<&str> = found.found.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        assert!(ids.contains(&"d1") && ids.contains(&"d2"), "both rankings contribute: {ids:?}");
        // A collection without sparse vectors answers hybrid dense-only, and refuses sparse-only.
        let found = store.search("dense_only", hybrid, None).await.unwrap();
        assert_eq!((found.retrieval, found.found.len()), (Retrieval::Dense, 1));
        assert!(!store.info("dense_only").await.unwrap().sparse);
        let refused = store.search("dense_only", sparse, None).await.unwrap_err();
        assert!(matches!(refused, StoreError::BadRequest(ref why) if why.contains("reindex")), "{refused:?}");
    }
}
