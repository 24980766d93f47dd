//! Writing documents: embed the texts (passage prefix), upsert the points, bump the collection's
//! cache generation. Used by the HTTP routes and by `ingest`.

use serde::Deserialize;
use serde_json::{Map, Value};
use shared::tokenize::InputType;

use crate::Gateway;
use crate::error::ApiError;
use crate::store::{HASH_KEY, ID_KEY, Point, TEXT_KEY, validate_collection_name};

/// Texts per embedding call (embed-service accepts 256 per request by default).
pub const EMBED_CHUNK: usize = 64;
/// Longest accepted document id, in bytes.
const MAX_ID_BYTES: usize = 512;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub payload: Option<Map<String, Value>>,
}

impl Document {
    /// Rejects what could not be stored faithfully.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.len() > MAX_ID_BYTES {
            return Err(format!("document ids must be 1-{MAX_ID_BYTES} bytes long"));
        }
        if let Some(key) =
            self.payload.iter().flat_map(|p| p.keys()).find(|k| [ID_KEY, TEXT_KEY, HASH_KEY].contains(&k.as_str()))
        {
            return Err(format!("payload key {key:?} is reserved (document {:?})", self.id));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertRequest {
    pub documents: Vec<Document>,
}

/// Embeds and stores `documents` (later duplicates of an id win), then invalidates the
/// collection's cached results. Returns how many distinct documents were written.
pub async fn upsert(gateway: &Gateway, collection: &str, documents: Vec<Document>) -> Result<usize, ApiError> {
    validate_collection_name(collection).map_err(ApiError::Invalid)?;
    let mut unique: Vec<Document> = Vec::with_capacity(documents.len());
    let mut position = std::collections::HashMap::new();
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
    let mut points = Vec::with_capacity(unique.len());
    for chunk in unique.chunks(EMBED_CHUNK) {
        let texts = chunk.iter().map(|d| d.text.clone()).collect();
        let vectors = gateway
            .embedder
            .embed(texts, InputType::Passage, gateway.limits.embed_timeout)
            .await
            .inspect_err(|_| gateway.metrics.dependency_error("embedder"))?;
        points.extend(chunk.iter().zip(vectors).map(|(d, vector)| Point {
            id: d.id.clone(),
            text: d.text.clone(),
            payload: d.payload.clone().unwrap_or_default(),
            vector,
        }));
    }
    let written = points.len();
    let result = gateway.store.upsert(collection, points).await;
    // Bumped even after a failure: part of the batch may have been written.
    gateway.cache.bump(collection).await;
    result?;
    Ok(written)
}

pub async fn delete(gateway: &Gateway, collection: &str, id: &str) -> Result<(), ApiError> {
    validate_collection_name(collection).map_err(ApiError::Invalid)?;
    let result = gateway.store.delete(collection, id).await;
    if result.is_ok() {
        gateway.cache.bump(collection).await;
    }
    Ok(result?)
}
