//! A Qdrant server over gRPC (`qdrant-client`), with the same point layout as qdrant-edge.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::vectors_config::Config as VectorsConfig;
use qdrant_client::qdrant::{
    CreateCollectionBuilder, DeletePointsBuilder, Distance, GetPointsBuilder, PointId, PointStruct, PointsIdsList,
    Query, QueryPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::{Map, Value};

use super::{CollectionInfo, Found, Point, SearchFilter, StoreError, VectorStore, id_and_hash, point_id};
use crate::engines::BoxFuture;

pub struct QdrantStore {
    client: Qdrant,
    /// Collections known to exist, so upserts do not ask every time.
    known: Mutex<HashSet<String>>,
}

impl QdrantStore {
    /// Connects lazily: a server that is down shows up as 503s, not as a start-up failure.
    pub fn connect(url: &str, api_key: Option<String>, timeout: Duration) -> Result<Self, String> {
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .skip_compatibility_check()
            .build()
            .map_err(|e| format!("invalid Qdrant URL {url:?}: {e}"))?;
        Ok(Self { client, known: Mutex::default() })
    }

    async fn ensure_collection(&self, collection: &str, dimension: usize) -> Result<(), StoreError> {
        if self.known.lock().unwrap_or_else(|p| p.into_inner()).contains(collection) {
            return Ok(());
        }
        if !self.client.collection_exists(collection).await.map_err(store_error)? {
            let create = CreateCollectionBuilder::new(collection)
                .vectors_config(VectorParamsBuilder::new(dimension as u64, Distance::Cosine));
            if let Err(e) = self.client.create_collection(create).await {
                // Another writer may have created it meanwhile; that is fine.
                if !self.client.collection_exists(collection).await.map_err(store_error)? {
                    return Err(store_error(e));
                }
            }
            tracing::info!(collection, dimension, "created collection");
        }
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(collection.to_string());
        Ok(())
    }
}

fn store_error(e: QdrantError) -> StoreError {
    match &e {
        QdrantError::ResponseError { status } => match status.code() {
            tonic::Code::NotFound => StoreError::NotFound(status.message().to_string()),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown => {
                StoreError::Unavailable(status.message().to_string())
            }
            // qdrant-client reports a refused connection as an internal error.
            tonic::Code::Internal if status.message().contains("Failed to connect") => {
                StoreError::Unavailable(status.message().to_string())
            }
            tonic::Code::InvalidArgument => StoreError::BadFilter(status.message().to_string()),
            _ => StoreError::Failed(e.to_string()),
        },
        QdrantError::ResourceExhaustedError { .. } => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Failed(e.to_string()),
    }
}

/// Not-found errors name the collection the caller asked for.
fn in_collection(collection: &str) -> impl Fn(QdrantError) -> StoreError + '_ {
    move |e| match store_error(e) {
        StoreError::NotFound(_) => StoreError::NotFound(collection.to_string()),
        other => other,
    }
}

fn to_json(payload: HashMap<String, qdrant_client::qdrant::Value>) -> Map<String, Value> {
    Map::from(Payload::from(payload))
}

fn point_id_text(id: Option<PointId>) -> String {
    use qdrant_client::qdrant::point_id::PointIdOptions;
    match id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Num(n)) => n.to_string(),
        Some(PointIdOptions::Uuid(u)) => u,
        None => String::new(),
    }
}

fn ids(document_ids: &[String]) -> Vec<PointId> {
    document_ids.iter().map(|id| PointId::from(point_id(id).to_string())).collect()
}

impl VectorStore for QdrantStore {
    fn backend(&self) -> &'static str {
        "qdrant"
    }

    fn search<'a>(
        &'a self,
        collection: &'a str,
        vector: Vec<f32>,
        limit: usize,
        filter: Option<&'a SearchFilter>,
    ) -> BoxFuture<'a, Result<Vec<Found>, StoreError>> {
        Box::pin(async move {
            let mut query = QueryPointsBuilder::new(collection)
                .query(Query::new_nearest(vector))
                .limit(limit as u64)
                .with_payload(true);
            if let Some(filter) = filter {
                query = query.filter(filter.to_grpc().map_err(StoreError::BadFilter)?);
            }
            let response = self.client.query(query).await.map_err(in_collection(collection))?;
            Ok(response
                .result
                .into_iter()
                .map(|p| Found::from_stored(point_id_text(p.id), p.score, to_json(p.payload)))
                .collect())
        })
    }

    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<Point>) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let Some(dimension) = points.first().map(|p| p.vector.len()) else { return Ok(()) };
            self.ensure_collection(collection, dimension).await?;
            let points: Vec<PointStruct> = points
                .iter()
                .map(|p| {
                    PointStruct::new(point_id(&p.id).to_string(), p.vector.clone(), Payload::from(p.stored_payload()))
                })
                .collect();
            let upsert = UpsertPointsBuilder::new(collection, points).wait(true);
            self.client.upsert_points(upsert).await.map_err(in_collection(collection))?;
            Ok(())
        })
    }

    fn delete<'a>(&'a self, collection: &'a str, document_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let selector = PointsSelectorOneOf::Points(PointsIdsList { ids: ids(&[document_id.to_string()]) });
            let delete = DeletePointsBuilder::new(collection).points(selector).wait(true);
            self.client.delete_points(delete).await.map_err(in_collection(collection))?;
            Ok(())
        })
    }

    fn info<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<CollectionInfo, StoreError>> {
        Box::pin(async move {
            let response = self.client.collection_info(collection).await.map_err(in_collection(collection))?;
            let info = response.result.unwrap_or_default();
            let params = info.config.and_then(|c| c.params).and_then(|p| p.vectors_config).and_then(|v| v.config);
            let dimension = match params {
                Some(VectorsConfig::Params(p)) => p.size as usize,
                _ => 0,
            };
            Ok(CollectionInfo {
                name: collection.to_string(),
                points_count: info.points_count.unwrap_or(0),
                dimension,
                distance: "cosine",
                backend: "qdrant",
            })
        })
    }

    fn document<'a>(
        &'a self,
        collection: &'a str,
        document_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, StoreError>> {
        Box::pin(async move {
            let get = GetPointsBuilder::new(collection, ids(&[document_id.to_string()])).with_payload(true);
            let response = self.client.get_points(get).await.map_err(in_collection(collection))?;
            Ok(response
                .result
                .into_iter()
                .next()
                .map(|p| Found::from_stored(point_id_text(p.id), 0.0, to_json(p.payload))))
        })
    }

    fn content_hashes<'a>(
        &'a self,
        collection: &'a str,
        document_ids: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, String>, StoreError>> {
        Box::pin(async move {
            let get = GetPointsBuilder::new(collection, ids(document_ids)).with_payload(true);
            let response = match self.client.get_points(get).await.map_err(in_collection(collection)) {
                Ok(response) => response,
                Err(StoreError::NotFound(_)) => return Ok(HashMap::new()),
                Err(e) => return Err(e),
            };
            Ok(response.result.into_iter().filter_map(|p| id_and_hash(&to_json(p.payload))).collect())
        })
    }
}
