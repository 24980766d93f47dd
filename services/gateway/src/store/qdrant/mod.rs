//! A Qdrant server over gRPC (`qdrant-client`), with the same point layout as qdrant-edge.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qdrant_client::Qdrant;
use qdrant_client::qdrant::CollectionStatus;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfig;

use super::PointLayouts;
use super::{
    CollectionInfo, Found, Page, Point, SearchFilter, Searched, StoreError, VectorStore, check_dimension, id_and_hash,
    id_filter, runnable,
};
use crate::BoxFuture;
use crate::retrieval::{SPARSE_VECTOR, StoreQuery};

mod convert;
mod requests;

use convert::{ids, in_collection, point_id_text, refused_key, store_error, text_point_id, to_json};

pub struct QdrantStore {
    client: Qdrant,
    url: String,
    layout: Layout,
    /// How configured collections lay out their points.
    point_layouts: Arc<PointLayouts>,
    /// Collections known to exist, with their vectors' dimension and whether they have the
    /// sparse vector, so writes and searches do not ask every time (Qdrant refuses a wrong
    /// dimension as an invalid argument, not by name).
    known: Mutex<HashMap<String, Known>>,
    /// Held while a collection is being created: concurrent first writes (ingest's batches)
    /// would otherwise race to create it, and the loser could fail before the winner's
    /// collection is visible.
    creating: tokio::sync::Mutex<()>,
}

/// How the collections the gateway creates are spread over a Qdrant cluster; unset values take
/// Qdrant's defaults (one shard per node, one copy of each, writes acknowledged by one copy).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Layout {
    pub shards: Option<u32>,
    pub replication_factor: Option<u32>,
    pub write_consistency: Option<u32>,
}

/// What the store remembers of an existing collection.
#[derive(Debug, Clone, Copy)]
struct Known {
    dimension: usize,
    sparse: bool,
}

impl QdrantStore {
    /// Connects lazily: a server that is down shows up as 503s, not as a start-up failure.
    pub fn connect(
        url: &str,
        api_key: Option<String>,
        timeout: Duration,
        layout: Layout,
        point_layouts: Arc<PointLayouts>,
    ) -> Result<Self, String> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .skip_compatibility_check()
            .build()
            .map_err(|e| format!("invalid Qdrant URL {url:?}: {e}"))?;
        let (known, creating) = (Mutex::default(), Default::default());
        Ok(Self { client, url: url.to_string(), layout, point_layouts, known, creating })
    }

    /// Asks the server once at start-up: a refused API key is a configuration error (`Err`, one
    /// line); a server that cannot be reached yet is only logged, since it may start later.
    pub async fn check_access(&self) -> Result<(), String> {
        let url = &self.url;
        match tokio::time::timeout(Duration::from_secs(5), self.client.list_collections()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if refused_key(&e) => {
                Err(format!("the Qdrant server at {url} refused the API key (QDRANT_API_KEY)"))
            }
            Ok(Err(e)) => {
                tracing::warn!(url, error = %e, "the Qdrant server cannot be reached yet; searches and writes answer 503 until it can");
                Ok(())
            }
            Err(_) => {
                tracing::warn!(
                    url,
                    "the Qdrant server did not answer within 5 s; searches and writes answer 503 until it does"
                );
                Ok(())
            }
        }
    }

    /// The dimension and sparse vector of an existing collection (remembered after the first ask).
    async fn known(&self, collection: &str) -> Result<Known, StoreError> {
        if let Some(&known) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(collection) {
            return Ok(known);
        }
        let info = self.info(collection).await?;
        let known = Known { dimension: info.dimension, sparse: info.sparse };
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(collection.to_string(), known);
        Ok(known)
    }

    /// Creates the collection with `dimension` (and the sparse vector if `sparse`) unless it
    /// exists; returns what it has.
    async fn ensure_collection(&self, collection: &str, dimension: usize, sparse: bool) -> Result<Known, StoreError> {
        if let Some(&existing) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(collection) {
            return Ok(existing);
        }
        let _creating = self.creating.lock().await;
        if let Some(&existing) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(collection) {
            return Ok(existing);
        }
        if !self.client.collection_exists(collection).await.map_err(store_error)? {
            let vector = self.point_layouts.keys(collection).vector;
            let index = self.point_layouts.index(collection);
            let create =
                requests::create_collection(collection, dimension, vector.as_deref(), sparse, self.layout, &index);
            if let Err(e) = self.client.create_collection(create).await {
                // Another process may have created it meanwhile; that is fine.
                if !self.client.collection_exists(collection).await.map_err(store_error)? {
                    return Err(store_error(e));
                }
            }
            tracing::info!(collection, dimension, sparse, layout = ?self.layout, "created collection");
        }
        self.known(collection).await
    }

    /// Forgets a collection that turned out to be gone (it may come back with another dimension).
    fn forget_if_gone(&self, collection: &str, error: StoreError) -> StoreError {
        if matches!(error, StoreError::NotFound(_)) {
            self.known.lock().unwrap_or_else(|p| p.into_inner()).remove(collection);
        }
        error
    }
}

impl VectorStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: StoreQuery,
        filter: Option<&'a SearchFilter>,
    ) -> BoxFuture<'a, Result<Searched, StoreError>> {
        Box::pin(async move {
            let known = self.known(collection).await?;
            if let Some(dense) = &query.dense {
                check_dimension(collection, known.dimension, [dense.len()])?;
            }
            let retrieval = runnable(collection, &query, known.sparse)?;
            let keys = self.point_layouts.keys(collection);
            let filter = filter.map(SearchFilter::to_grpc).transpose().map_err(StoreError::BadFilter)?;
            let limit = query.limit;
            let request = requests::query(collection, query, retrieval, keys.vector.as_deref(), filter);
            let response = self.client.query(request).await.map_err(in_collection(collection))?;
            let found = response
                .result
                .into_iter()
                .map(|p| Found::from_stored(point_id_text(p.id), p.score, to_json(p.payload), &keys))
                .collect();
            Ok(Searched::settled(found, limit, retrieval))
        })
    }

    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<Point>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(dimension) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
            let sparse = points.iter().any(|p| p.sparse.is_some());
            let known = self.ensure_collection(collection, dimension, sparse).await?;
            check_dimension(collection, known.dimension, points.iter().map(|p| p.vector.len()))?;
            let keys = self.point_layouts.keys(collection);
            let upsert = requests::upsert(collection, &points, &keys, known.sparse);
            let result = self.client.upsert_points(upsert).await.map_err(in_collection(collection));
            result.map_err(|e| self.forget_if_gone(collection, e))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, collection: &'a str, document_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let delete = requests::delete(collection, document_id);
            self.client.delete_points(delete).await.map_err(in_collection(collection))?;
            Ok(())
        })
    }

    fn info<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<CollectionInfo, StoreError>> {
        Box::pin(async move {
            let response = self.client.collection_info(collection).await.map_err(in_collection(collection))?;
            let info = response.result.unwrap_or_default();
            let params = info.config.and_then(|c| c.params);
            let sparse = params
                .as_ref()
                .and_then(|p| p.sparse_vectors_config.as_ref())
                .is_some_and(|s| s.map.contains_key(SPARSE_VECTOR));
            let params = params.and_then(|p| p.vectors_config).and_then(|v| v.config);
            let vector = self.point_layouts.keys(collection).vector;
            let mismatch = |what: String| {
                StoreError::Conflict(format!("collection {collection:?} {what} (see `vector` in --collections-config)"))
            };
            let dimension = match (params, vector) {
                (Some(VectorsConfig::Params(p)), None) => p.size as usize,
                (Some(VectorsConfig::ParamsMap(map)), Some(name)) => match map.map.get(&name) {
                    Some(p) => p.size as usize,
                    None => return Err(mismatch(format!("has no vector named {name:?}"))),
                },
                (Some(VectorsConfig::ParamsMap(map)), None) => {
                    let names: Vec<&String> = map.map.keys().collect();
                    return Err(mismatch(format!("has named vectors {names:?} and none was named")));
                }
                (Some(VectorsConfig::Params(_)), Some(name)) => {
                    return Err(mismatch(format!("has one unnamed vector, not {name:?}")));
                }
                (None, _) => 0,
            };
            Ok(CollectionInfo {
                name: collection.to_string(),
                points_count: info.points_count.unwrap_or(0),
                dimension,
                distance: "cosine",
                backend: "qdrant",
                sparse,
                segments: info.segments_count,
                indexed_vectors: info.indexed_vectors_count.unwrap_or(0),
                // Yellow: optimizations are in progress.
                optimizing: info.status == CollectionStatus::Yellow as i32,
                disk_bytes: None,
                ram_bytes: None,
            })
        })
    }

    fn collections(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let response = self.client.list_collections().await.map_err(store_error)?;
            let mut names: Vec<String> = response.collections.into_iter().map(|c| c.name).collect();
            names.sort();
            Ok(names)
        })
    }

    fn scroll<'a>(
        &'a self,
        collection: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let scroll = requests::page(collection, after, limit);
            let response = self.client.scroll(scroll).await.map_err(in_collection(collection))?;
            let keys = self.point_layouts.keys(collection);
            let documents = response
                .result
                .into_iter()
                .map(|p| Found::from_stored(point_id_text(p.id), 0.0, to_json(p.payload), &keys))
                .collect();
            let next = response.next_page_offset.map(|id| point_id_text(Some(id)));
            Ok(Page { documents, next })
        })
    }

    fn delete_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            if !self.client.collection_exists(collection).await.map_err(store_error)? {
                return Ok(false);
            }
            self.client.delete_collection(collection).await.map_err(in_collection(collection))?;
            self.known.lock().unwrap_or_else(|p| p.into_inner()).remove(collection);
            tracing::info!(collection, "deleted collection");
            Ok(true)
        })
    }

    fn aliases(&self) -> BoxFuture<'_, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            let response = self.client.list_aliases().await.map_err(store_error)?;
            Ok(response.aliases.into_iter().map(|a| (a.alias_name, a.collection_name)).collect())
        })
    }

    fn set_alias<'a>(&'a self, alias: &'a str, collection: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client
                .create_alias(requests::set_alias(alias, collection))
                .await
                .map_err(in_collection(collection))?;
            Ok(())
        })
    }

    fn document<'a>(
        &'a self,
        collection: &'a str,
        document_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, StoreError>> {
        Box::pin(async move {
            let keys = self.point_layouts.keys(collection);
            let points = match (&keys.id, keys.hash) {
                // A configured collection's own points: found by their id key, or their point id.
                (Some(id_key), false) => {
                    let filter = id_filter(id_key, document_id)?.to_grpc().map_err(StoreError::Failed)?;
                    let scroll = requests::first_match(collection, filter);
                    self.client.scroll(scroll).await.map_err(in_collection(collection))?.result
                }
                (None, _) => {
                    let get = requests::get(collection, vec![text_point_id(document_id)]);
                    self.client.get_points(get).await.map_err(in_collection(collection))?.result
                }
                _ => {
                    let get = requests::get(collection, ids(&[document_id.to_string()]));
                    self.client.get_points(get).await.map_err(in_collection(collection))?.result
                }
            };
            Ok(points
                .into_iter()
                .next()
                .map(|p| Found::from_stored(point_id_text(p.id), 0.0, to_json(p.payload), &keys)))
        })
    }

    fn content_hashes<'a>(
        &'a self,
        collection: &'a str,
        document_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            let get = requests::get(collection, ids(document_ids));
            let response = match self.client.get_points(get).await.map_err(in_collection(collection)) {
                Ok(response) => response,
                Err(StoreError::NotFound(_)) => return Ok(HashMap::new()),
                Err(e) => return Err(e),
            };
            Ok(response.result.into_iter().filter_map(|p| id_and_hash(&to_json(p.payload))).collect())
        })
    }
}
