//! Writing documents: skip the unchanged ones, embed the rest (passage prefix), upsert the
//! points, bump the collection's cache generation. Used by the HTTP routes and by `ingest`.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};
use shared::Priority;

use crate::cache::CacheLayer;
use crate::collections::Collections;
use crate::error::ApiError;
use crate::metrics::GatewayMetrics;
use crate::store::{HASH_KEY, ID_KEY, Point, TEXT_KEY, VectorStore, content_hash, validate_collection_name};

/// Texts per embedding call (embed-service accepts 256 per request by default).
pub const EMBED_CHUNK: usize = 64;
/// Longest accepted document id, in bytes.
const MAX_ID_BYTES: usize = 512;

/// A document to index.
#[derive(Debug, Clone, serde::Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"id": "p-42", "text": "Rust engineer in Berlin, search and ML serving", "payload": {"city": "Berlin"}}))]
pub struct Document {
    /// The app's id for it, 1-512 bytes; upserting the same id again replaces the document.
    #[schema(min_length = 1)]
    pub id: String,
    /// The text to embed (with the passage prefix) and rerank against.
    pub text: String,
    /// Anything to return with the hits and filter on; the keys the gateway keeps itself
    /// (`_doc_id`, `_text`, `_content_hash`) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Map<String, Value>>,
}

impl Document {
    /// Rejects what could not be stored faithfully.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.len() > MAX_ID_BYTES {
            return Err(format!("document ids must be 1-{MAX_ID_BYTES} bytes long"));
        }
        let reserved = [ID_KEY, TEXT_KEY, HASH_KEY];
        if let Some(key) = self.payload.iter().flat_map(|p| p.keys()).find(|k| reserved.contains(&k.as_str())) {
            return Err(format!("payload key {key:?} is reserved (document {:?})", self.id));
        }
        Ok(())
    }

    fn hash(&self) -> String {
        content_hash(&self.text, self.payload.as_ref().unwrap_or(&Map::new()))
    }
}

/// Documents to upsert.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    /// 1 to --max-upsert-documents documents (1000 by default); more is 413
    /// `too_many_documents`. A later duplicate of an id wins.
    #[schema(min_items = 1)]
    pub documents: Vec<Document>,
    /// `interactive` (default) or `bulk`: batch jobs (`ingest`, `reindex`) send `bulk`, whose
    /// embeddings yield to searches on the same engine.
    #[serde(default)]
    pub priority: Priority,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Upserted {
    /// Documents embedded and written.
    pub upserted: usize,
    /// Documents already stored with the same text and payload, left as they were.
    pub unchanged: usize,
}

/// What writing needs; borrowed from the gateway, or built by `ingest`.
pub struct Writer<'a> {
    pub collections: &'a Collections,
    pub store: &'a dyn VectorStore,
    pub cache: &'a CacheLayer,
    pub metrics: &'a GatewayMetrics,
    pub embed_timeout: Duration,
}

impl Writer<'_> {
    /// Embeds and stores `documents` (a later duplicate of an id wins), skipping those stored
    /// unchanged, then invalidates the collection's cached results.
    pub async fn upsert(&self, name: &str, documents: Vec<Document>, priority: Priority) -> Result<Upserted, ApiError> {
        validate_collection_name(name).map_err(ApiError::Invalid)?;
        let collection = &self.collections.resolve(name).await;
        self.collections.profiles.check_writable(collection).map_err(ApiError::ReadOnly)?;
        self.write(name, collection, documents, priority).await
    }

    /// [`Self::upsert`] into a collection from its own source table (`crate::sync`), which the
    /// API may not write to.
    pub async fn upsert_from_source(
        &self,
        collection: &str,
        documents: Vec<Document>,
        priority: Priority,
    ) -> Result<Upserted, ApiError> {
        self.write(collection, collection, documents, priority).await
    }

    async fn write(
        &self,
        name: &str,
        collection: &str,
        documents: Vec<Document>,
        priority: Priority,
    ) -> Result<Upserted, ApiError> {
        let mut unique: Vec<Document> = Vec::with_capacity(documents.len());
        let mut position = HashMap::new();
        for document in documents {
            document.validate().map_err(ApiError::Invalid)?;
            match position.get(&document.id) {
                Some(&i) => unique[i] = document,
                None => {
                    position.insert(document.id.clone(), unique.len());
                    unique.push(document);
                }
            }
        }
        let ids: Vec<String> = unique.iter().map(|d| d.id.clone()).collect();
        // Configured collections keep no content hash: their documents are always written.
        let stored = match self.collections.profiles.keys(collection).hash {
            true => self.store.content_hashes(collection, &ids).await?,
            false => HashMap::new(),
        };
        let total = unique.len();
        unique.retain(|d| stored.get(&d.id) != Some(&d.hash()));
        let unchanged = total - unique.len();
        if unique.is_empty() {
            return Ok(Upserted { upserted: 0, unchanged });
        }
        let mut points = Vec::with_capacity(unique.len());
        let (_, input_type) = self.collections.profiles.input_types(collection);
        let embedder = self.collections.embedder(collection);
        let bm25 = self.collections.profiles.sparse(collection).then(|| self.collections.bm25(collection));
        for chunk in unique.chunks(EMBED_CHUNK) {
            let texts = chunk.iter().map(|d| d.text.clone()).collect();
            let vectors = embedder
                .embed(texts, input_type, priority, self.embed_timeout)
                .await
                .inspect_err(|_| self.metrics.dependency_error("embedder"))?;
            points.extend(chunk.iter().zip(vectors).map(|(d, vector)| Point {
                id: d.id.clone(),
                text: d.text.clone(),
                payload: d.payload.clone().unwrap_or_default(),
                vector,
                sparse: bm25.map(|bm25| bm25.document(&d.text)),
            }));
        }
        let upserted = points.len();
        let result = self.store.upsert(collection, points).await;
        // Bumped even after a failure: part of the batch may have been written.
        self.invalidate(name, collection).await;
        result?;
        Ok(Upserted { upserted, unchanged })
    }

    /// Deletes a document of a collection that follows a table (`crate::sync`).
    pub async fn delete_from_source(&self, collection: &str, id: &str) -> Result<(), ApiError> {
        let result = self.store.delete(collection, id).await;
        if result.is_ok() {
            self.invalidate(collection, collection).await;
        }
        Ok(result?)
    }

    pub async fn delete(&self, name: &str, id: &str) -> Result<(), ApiError> {
        validate_collection_name(name).map_err(ApiError::Invalid)?;
        let collection = &self.collections.resolve(name).await;
        let profile = self.collections.profiles.get(collection);
        self.collections.profiles.check_writable(collection).map_err(ApiError::ReadOnly)?;
        if profile.is_some_and(|p| p.id_key.is_some()) {
            // Its points' ids are not derived from document ids: not deletable by id here.
            return Err(ApiError::Conflict(format!(
                "documents of {collection:?} are found by their id key, not deletable by id; reindex it instead"
            )));
        }
        let result = self.store.delete(collection, id).await;
        if result.is_ok() {
            self.invalidate(name, collection).await;
        }
        Ok(result?)
    }

    /// Invalidates the cached results of `collection`, and of `name` if that is its alias.
    async fn invalidate(&self, name: &str, collection: &str) {
        self.cache.bump(collection).await;
        if name != collection {
            self.cache.bump(name).await;
        }
    }
}
