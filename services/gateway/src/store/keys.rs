//! How a collection's points keep what the gateway reads: the payload keys of its text and id,
//! whether they carry the gateway's content hash, and the vector's name. The gateway's own
//! collections use the reserved keys below; configured ones (`--collections-config`) their own.

use std::collections::HashMap;

use super::index::IndexSettings;

/// Payload key holding the caller's document id.
pub const ID_KEY: &str = "_doc_id";
/// Payload key holding the document text (what the reranker reads).
pub const TEXT_KEY: &str = "_text";
/// Payload key holding the SHA-256 of the text and payload (unchanged documents are skipped).
pub const HASH_KEY: &str = "_content_hash";

/// Where a collection's points keep what the gateway reads.
#[derive(Debug, Clone, PartialEq)]
pub struct PointKeys {
    pub text: String,
    /// `None`: the point id is the document id.
    pub id: Option<String>,
    /// Whether points carry the gateway's content hash (so unchanged documents are skipped).
    pub hash: bool,
    pub vector: Option<String>,
}

impl PointKeys {
    /// The layout of the collections the gateway builds.
    pub fn gateway() -> Self {
        Self { text: TEXT_KEY.into(), id: Some(ID_KEY.into()), hash: true, vector: None }
    }
}

/// The layout of every collection that has one of its own (the others are the gateway's), and
/// the index settings of those that have some (the others take Qdrant's defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointLayouts {
    keys: HashMap<String, PointKeys>,
    indexes: HashMap<String, IndexSettings>,
}

impl PointLayouts {
    pub fn new(keys: HashMap<String, PointKeys>) -> Self {
        Self { keys, indexes: HashMap::new() }
    }

    pub fn with_indexes(self, indexes: HashMap<String, IndexSettings>) -> Self {
        Self { indexes, ..self }
    }

    /// How `collection`'s points are laid out.
    pub fn keys(&self, collection: &str) -> PointKeys {
        self.keys.get(collection).cloned().unwrap_or_else(PointKeys::gateway)
    }

    /// How `collection` is indexed when it is created.
    pub fn index(&self, collection: &str) -> IndexSettings {
        self.indexes.get(collection).copied().unwrap_or_default()
    }
}
