//! How a collection's points keep what the gateway reads: the payload keys of its text and id,
//! whether they carry the gateway's content hash, and the vector's name. The gateway's own
//! collections use the reserved keys below; configured ones (`--collections-config`) their own.

use std::collections::HashMap;

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

/// The layout of every collection that has one of its own; the others are the gateway's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointLayouts(HashMap<String, PointKeys>);

impl PointLayouts {
    pub fn new(layouts: HashMap<String, PointKeys>) -> Self {
        Self(layouts)
    }

    /// How `collection`'s points are laid out.
    pub fn keys(&self, collection: &str) -> PointKeys {
        self.0.get(collection).cloned().unwrap_or_else(PointKeys::gateway)
    }
}
