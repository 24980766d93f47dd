//! The vector store: qdrant-edge in process (the default) or a Qdrant server over gRPC. Both keep
//! the same point layout, so the same filter finds the same documents in either.
//!
//! A document becomes one point: its id is a UUIDv5 of the caller's id, its vector the passage
//! embedding, its payload the caller's payload plus three reserved keys (`keys`, where configured
//! collections' own layouts are kept too).

mod edge;
mod filter;
pub mod index;
mod journal;
mod keys;
mod qdrant;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use edge::{EdgeOptions, EdgeStore};
pub use filter::SearchFilter;
pub use keys::{HASH_KEY, ID_KEY, PointKeys, PointLayouts, TEXT_KEY};
pub use qdrant::{Layout, QdrantStore};

use crate::BoxFuture;
use crate::retrieval::{Retrieval, SparseVector, StoreQuery};

/// Namespace of point ids: UUIDv5(namespace, document id).
const POINT_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_4c1e_8a7b_4c53_9d0e_5ab4_1f3e_2c77);

/// The point id of a document id; the same on every run and in both backends.
pub fn point_id(document_id: &str) -> Uuid {
    Uuid::new_v5(&POINT_NAMESPACE, document_id.as_bytes())
}

/// What identifies a document's stored content: its text and its payload (canonical JSON).
pub fn content_hash(text: &str, payload: &Map<String, Value>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(text.len().to_le_bytes());
    hasher.update(text.as_bytes());
    let mut json = String::new();
    canonical_json(&Value::Object(payload.clone()), &mut json);
    hasher.update(json.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted (maps may keep insertion order), so that equal values print
/// equally whatever their key order.
pub fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by_key(|(k, _)| k.as_str());
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A document ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: String,
    pub text: String,
    pub payload: Map<String, Value>,
    pub vector: Vec<f32>,
    /// The text's BM25 vector; dropped when written to a collection without sparse vectors.
    pub sparse: Option<SparseVector>,
}

impl Point {
    /// The stored payload: the caller's keys plus the text and id under the collection's keys
    /// (the reserved ones and the content hash, in the gateway's own collections).
    fn stored_payload(&self, keys: &PointKeys) -> Map<String, Value> {
        let mut payload = self.payload.clone();
        if let Some(id_key) = &keys.id {
            payload.insert(id_key.clone(), Value::String(self.id.clone()));
        }
        payload.insert(keys.text.clone(), Value::String(self.text.clone()));
        if keys.hash {
            payload.insert(HASH_KEY.into(), Value::String(content_hash(&self.text, &self.payload)));
        }
        payload
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub id: String,
    pub score: f32,
    pub text: Option<String>,
    pub payload: Map<String, Value>,
}

impl Found {
    /// Splits a stored payload back into the document id, text and the caller's payload. In the
    /// gateway's collections the reserved keys are taken out; a configured collection's payload
    /// is returned as stored. Points without an id key keep their point id.
    fn from_stored(point_id: String, score: f32, mut payload: Map<String, Value>, keys: &PointKeys) -> Self {
        let (id, text) = if keys.hash {
            payload.remove(HASH_KEY);
            let id = keys.id.as_ref().and_then(|k| payload.remove(k));
            (id, payload.remove(&keys.text))
        } else {
            (keys.id.as_ref().and_then(|k| payload.get(k).cloned()), payload.get(&keys.text).cloned())
        };
        let id = match id {
            Some(Value::String(id)) => id,
            Some(Value::Number(n)) => n.to_string(),
            _ => point_id,
        };
        let text = match text {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        Self { id, score, text, payload }
    }
}

/// The filter that finds a configured collection's document by its id key.
fn id_filter(id_key: &str, document_id: &str) -> Result<SearchFilter, StoreError> {
    SearchFilter::parse(&serde_json::json!({"must": [{"key": id_key, "match": {"value": document_id}}]}))
        .map_err(StoreError::Failed)
}

/// What a search found, and by which retrieval (a collection without sparse vectors answers a
/// hybrid search dense-only).
#[derive(Debug, Clone, PartialEq)]
pub struct Searched {
    pub found: Vec<Found>,
    pub retrieval: Retrieval,
}

impl Searched {
    /// The engine's answer made deterministic: sorted by score, ties broken by id, cut to
    /// `limit`. The engines do not break ties, and fused scores tie often (at the default RRF
    /// weights dense's 20th place scores as BM25's 1st), so the same search could come back in
    /// another order from another process; a hybrid search asks for the whole union of its
    /// prefetches (`StoreQuery::engine_limit`) so that the cut happens here.
    fn settled(mut found: Vec<Found>, limit: usize, retrieval: Retrieval) -> Self {
        found.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        found.truncate(limit);
        Self { found, retrieval }
    }
}

/// The retrieval a collection can run for `asked`: dense in place of sparse or hybrid when it
/// has no sparse vectors (a sparse-only query it refuses).
fn runnable(collection: &str, query: &StoreQuery, has_sparse: bool) -> Result<Retrieval, StoreError> {
    match (query.asked(), has_sparse) {
        (asked, true) => Ok(asked),
        (Retrieval::Sparse, false) => Err(StoreError::BadRequest(format!(
            "collection {collection:?} has no sparse vectors (it was built before hybrid retrieval): search it \
             with \"retrieval\": \"dense\", or reindex it to add them"
        ))),
        _ => Ok(Retrieval::Dense),
    }
}

/// A page of a collection: its documents and where the next page starts, if there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub documents: Vec<Found>,
    pub next: Option<String>,
}

/// An error naming the first of `got` (vector lengths) that is not the collection's `expected`.
fn check_dimension(collection: &str, expected: usize, got: impl IntoIterator<Item = usize>) -> Result<(), StoreError> {
    match got.into_iter().find(|&n| n != expected) {
        Some(got) => Err(StoreError::Dimension { collection: collection.to_string(), expected, got }),
        None => Ok(()),
    }
}

/// `(document id, text hash)` of a stored payload, if it has both (for incremental ingest).
fn id_and_hash(payload: &Map<String, Value>) -> Option<(String, String)> {
    match (payload.get(ID_KEY), payload.get(HASH_KEY)) {
        (Some(Value::String(id)), Some(Value::String(hash))) => Some((id.clone(), hash.clone())),
        _ => None,
    }
}

/// A collection's size, vector configuration and index state.
#[derive(Debug, Clone, serde::Serialize, PartialEq, utoipa::ToSchema)]
#[schema(example = json!({"name": "profiles", "points_count": 1200, "dimension": 1024, "distance": "cosine", "backend": "qdrant-edge", "sparse": true, "segments": 2, "indexed_vectors": 1000, "optimizing": false, "disk_bytes": 9000000, "ram_bytes": 4915200}))]
pub struct CollectionInfo {
    pub name: String,
    /// Documents stored.
    pub points_count: u64,
    /// Floats per vector.
    pub dimension: usize,
    /// The vector distance (`cosine`).
    pub distance: &'static str,
    /// Where it is stored: `qdrant-edge` (in process) or `qdrant` (a server).
    pub backend: &'static str,
    /// Whether its documents carry BM25 sparse vectors (needed by `sparse` and `hybrid`
    /// retrieval; `reindex` adds them to a collection built before them).
    pub sparse: bool,
    /// Segments it is stored in.
    pub segments: u64,
    /// Vectors in an index, dense (HNSW) and sparse, as Qdrant counts them; the others are
    /// searched by a scan until the optimizer, which runs after writes, indexes them.
    pub indexed_vectors: u64,
    /// Whether the optimizer (indexing, merging segments, vacuuming deletions) is running on it.
    pub optimizing: bool,
    /// Bytes on disk (qdrant-edge; a Qdrant server does not say).
    pub disk_bytes: Option<u64>,
    /// Bytes of RAM its dense vectors take by its settings: the originals unless on disk, and
    /// their int8 copies (qdrant-edge; an estimate leaving out HNSW links and payloads).
    pub ram_bytes: Option<u64>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("no collection named {0:?}")]
    NotFound(String),
    #[error("collection {collection:?} holds {expected}-dimensional vectors, not {got}")]
    Dimension { collection: String, expected: usize, got: usize },
    #[error("{0}")]
    BadFilter(String),
    #[error("the vector store is unavailable: {0}")]
    Unavailable(String),
    #[error("the vector store failed: {0}")]
    Failed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
}

/// What the gateway needs of a vector store.
pub trait VectorStore: Send + Sync {
    fn backend(&self) -> &'static str;
    /// The `query.limit` best points, with their payloads: nearest by cosine similarity, by
    /// BM25, or both fused by the engine (prefetch + fusion), as `query` asks and the collection
    /// can.
    fn search<'a>(
        &'a self,
        collection: &'a str,
        query: StoreQuery,
        filter: Option<&'a SearchFilter>,
    ) -> BoxFuture<'a, Result<Searched, StoreError>>;
    /// Inserts or replaces points; creates the collection (cosine, the vectors' dimension, and
    /// the sparse vector when the points carry one) first if it does not exist.
    fn upsert<'a>(&'a self, collection: &'a str, points: Vec<Point>) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Removes a document; removing one that is not there is not an error.
    fn delete<'a>(&'a self, collection: &'a str, document_id: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    fn info<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<CollectionInfo, StoreError>>;
    /// The names of the store's collections, sorted.
    fn collections(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// Up to `limit` documents in point-id order, from the cursor `after` (a page's `next`).
    fn scroll<'a>(
        &'a self,
        collection: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;
    /// Removes a collection and the aliases pointing at it; `false` if there was none.
    fn delete_collection<'a>(&'a self, collection: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Every alias and the collection it names.
    fn aliases(&self) -> BoxFuture<'_, Result<std::collections::HashMap<String, String>, StoreError>>;
    /// Points `alias` at `collection` in one step (replacing where it pointed before).
    fn set_alias<'a>(&'a self, alias: &'a str, collection: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// One stored document (its `score` is 0), or `None` if the collection has no such id.
    fn document<'a>(
        &'a self,
        collection: &'a str,
        document_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, StoreError>>;
    /// The stored content hash of each of `document_ids` that exists (to skip unchanged ones).
    fn content_hashes<'a>(
        &'a self,
        collection: &'a str,
        document_ids: &'a [String],
    ) -> BoxFuture<'a, Result<std::collections::HashMap<String, String>, StoreError>>;
}

/// Collection names become directory names (qdrant-edge) and URL segments: keep them plain.
pub fn validate_collection_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) || name.starts_with('-') {
        return Err(format!(
            "invalid collection name {name:?}: use 1-64 characters from A-Z, a-z, 0-9, '_' and '-', not starting with '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn point_ids_are_deterministic_and_distinct() {
        assert_eq!(point_id("profile-1"), point_id("profile-1"));
        assert_ne!(point_id("profile-1"), point_id("profile-2"));
        assert_eq!(point_id("profile-1").get_version_num(), 5);
    }

    #[test]
    fn stored_payload_round_trips_to_the_callers_payload() {
        let point = Point {
            id: "p1".into(),
            text: "hello".into(),
            payload: json!({"city": "Paris"}).as_object().unwrap().clone(),
            vector: vec![1.0],
            sparse: None,
        };
        let keys = PointKeys::gateway();
        let stored = point.stored_payload(&keys);
        assert_eq!(stored[HASH_KEY], json!(content_hash("hello", &point.payload)));
        let found = Found::from_stored("uuid".into(), 0.5, stored, &keys);
        assert_eq!((found.id.as_str(), found.text.as_deref()), ("p1", Some("hello")));
        assert_eq!(Value::Object(found.payload), json!({"city": "Paris"}));
    }

    #[test]
    fn a_configured_collection_keeps_its_own_payload() {
        let keys = PointKeys { text: "document".into(), id: Some("profile_id".into()), hash: false, vector: None };
        let point = Point {
            id: "p1".into(),
            text: "hello".into(),
            payload: json!({"city": "Paris"}).as_object().unwrap().clone(),
            vector: vec![1.0],
            sparse: None,
        };
        let stored = point.stored_payload(&keys);
        assert_eq!(Value::Object(stored.clone()), json!({"city": "Paris", "document": "hello", "profile_id": "p1"}));
        let found = Found::from_stored("uuid".into(), 0.5, stored, &keys);
        assert_eq!((found.id.as_str(), found.text.as_deref()), ("p1", Some("hello")));
        assert_eq!(Value::Object(found.payload), json!({"city": "Paris", "document": "hello", "profile_id": "p1"}));
        let numeric = json!({"profile_id": 7, "document": "x"}).as_object().unwrap().clone();
        assert_eq!(Found::from_stored("uuid".into(), 0.0, numeric, &keys).id, "7", "numeric ids read as text");
    }

    #[test]
    fn content_hashes_see_text_and_payload_but_not_key_order() {
        let payload = |v: Value| v.as_object().unwrap().clone();
        let a = content_hash("t", &payload(json!({"x": 1, "y": [1, {"b": 2, "a": 1}]})));
        assert_eq!(a, content_hash("t", &payload(json!({"y": [1, {"a": 1, "b": 2}], "x": 1}))));
        assert_ne!(a, content_hash("t", &payload(json!({"x": 2, "y": [1, {"b": 2, "a": 1}]}))));
        assert_ne!(a, content_hash("u", &payload(json!({"x": 1, "y": [1, {"b": 2, "a": 1}]}))));
    }

    #[test]
    fn foreign_points_keep_their_point_id() {
        let payload = json!({"name": "x"}).as_object().unwrap().clone();
        let found = Found::from_stored("42".into(), 0.1, payload, &PointKeys::gateway());
        assert_eq!((found.id.as_str(), found.text), ("42", None));
    }

    #[test]
    fn collection_names_are_plain() {
        for good in ["profiles", "a", "people_2024-v1"] {
            assert!(validate_collection_name(good).is_ok(), "{good}");
        }
        for bad in ["", "../x", "a/b", "-x", "é", &"x".repeat(65)] {
            assert!(validate_collection_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_answer_is_settled_by_score_then_id_whatever_order_the_engine_gave() {
        let found = |id: &str, score| Found { id: id.into(), score, text: None, payload: Map::new() };
        let ids = |s: Searched| s.found.into_iter().map(|f| f.id).collect::<Vec<_>>();
        let engine = vec![found("c", 0.5), found("b", 0.25), found("a", 0.5), found("d", 0.9)];
        let mut reversed = engine.clone();
        reversed.reverse();
        assert_eq!(ids(Searched::settled(engine, 3, Retrieval::Hybrid)), ["d", "a", "c"]);
        assert_eq!(ids(Searched::settled(reversed, 3, Retrieval::Hybrid)), ["d", "a", "c"]);
    }
}
